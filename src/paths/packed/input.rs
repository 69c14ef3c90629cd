//! Packing the input: row tiles of the block transposed into the order the
//! microkernels read.

use super::plan::*;
use super::*;

/// The `R` row pointers of a tile at row `i0` with `h` real rows, each the start of a
/// checked `ks`-slice of a unit-stride input; rows past `h` repeat the first (their
/// lanes are never read).
#[cfg(target_arch = "x86_64")]
pub(super) fn tile_rows<const R: usize>(
    data: &[f32],
    i0: usize,
    h: usize,
    rs: usize,
    ks: core::ops::Range<usize>,
) -> [*const f32; R] {
    let mut src = [core::ptr::null::<f32>(); R];
    for (r, s) in src.iter_mut().enumerate() {
        let start = (i0 + if r < h { r } else { 0 }) * rs + ks.start;
        *s = data[start..start + ks.len()].as_ptr();
    }
    src
}

/// Packs `input[rows, ks]` into `dst` as `tiles` row tiles (the near-equal [`part`]s
/// of `rows`, each at most `mr` rows): tile `t` at `t·mr·kc`, element `(r, p)` of it at
/// `p·mr + r`. Every `(r, p)` with `r < h` (the tile's real rows) is written; the rest of
/// a short tile is left as it was (uninitialised): the kernels read only `h` rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_input(
    isa: Isa,
    input: MatRef<'_, f32>,
    rows: core::ops::Range<usize>,
    tiles: usize,
    ks: core::ops::Range<usize>,
    mr: usize,
    dst: &mut [MaybeUninit<f32>],
) {
    let kc = ks.len();
    let (rs, cs) = (input.row_stride(), input.col_stride());
    let data = input.data();
    for t in 0..tiles {
        let tr = part(rows.len(), tiles, t);
        let (i0, h) = (rows.start + tr.start, tr.len());
        let tile = &mut dst[t * mr * kc..(t + 1) * mr * kc];
        #[cfg(target_arch = "x86_64")]
        if cs == 1 && isa == Isa::Avx512 && kc >= 16 {
            let src = tile_rows(data, i0, h, rs, ks.clone());
            // SAFETY: packings for AVX-512 are made only when the CPU has it; each row
            // pointer starts a checked `kc`-float slice of the input; the tile holds
            // MR·kc floats (mr = MR here) and is a separate buffer.
            unsafe { crate::simd::sgemm::avx512::pack::<12>(&src, kc, tile.as_mut_ptr().cast()) };
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if cs == 1 && isa == Isa::Avx512N48 && kc >= 16 {
            let src = tile_rows(data, i0, h, rs, ks.clone());
            // SAFETY: as above, with MR8·kc floats in the tile (mr = MR8 here).
            unsafe { crate::simd::sgemm::avx512::pack::<8>(&src, kc, tile.as_mut_ptr().cast()) };
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if cs == 1 && isa == Isa::Avx2 && kc >= 8 {
            let src = tile_rows(data, i0, h, rs, ks.clone());
            // The tile and the two floats after it, which pack_6's last store spills
            // into (the next tile's start, or the buffer's slack: see `PACK_SLACK`).
            let out = &mut dst[t * mr * kc..(t + 1) * mr * kc + 2];
            // SAFETY: AVX2+FMA packings are made only for a CPU that has both; each row
            // pointer starts a checked `kc`-float slice of the input; `out` holds
            // MR·kc + 2 floats (mr = MR here) of a separate buffer.
            unsafe { crate::simd::sgemm::avx2::pack_6(&src, kc, out.as_mut_ptr().cast()) };
            continue;
        }
        if cs == 1 {
            // k-major writes, one contiguous group of `mr` per k, from `h` row slices
            // (each checked once here, so the inner loop indexes within known bounds).
            let mut src: [&[f32]; 16] = [&[]; 16];
            for (r, s) in src.iter_mut().enumerate().take(h) {
                let start = (i0 + r) * rs + ks.start;
                *s = &data[start..start + kc];
            }
            for (p, group) in tile.chunks_exact_mut(mr).enumerate() {
                for (g, s) in group.iter_mut().zip(&src[..h]) {
                    g.write(s[p]);
                }
            }
        } else {
            for r in 0..h {
                let start = (i0 + r) * rs + ks.start * cs;
                for p in 0..kc {
                    tile[p * mr + r].write(data[start + p * cs]);
                }
            }
        }
    }
}
