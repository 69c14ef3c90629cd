//! The packed path's plan: its blocking (`KC`, `MC`, `NC` and the rules that pick them
//! from the cache sizes), the microkernel (`Isa`) chosen from the CPU and the layer's
//! width, and how rows and `k` are cut into near-equal parts.

use super::weights::*;
use super::*;

/// The `k` block each kernel call covers.
pub(crate) const KC: usize = 1024;
/// Rows per input block (a multiple of every tile height, 12, 8 and 6; short sums on the
/// 12×32 kernel take 12, see [`SHORT_K`]).
pub(crate) const MC: usize = 24;
/// `KC` and `MC` on cores with at least 2 MiB of L2 (see [`blocking`]).
pub(super) const KC_L2: usize = 512;
pub(super) const MC_L2: usize = 48;
/// Pieces of at most this many rows run as one row block on the 12×32 kernel (three
/// tiles of up to 12 rows; see [`block_rows`]).
pub(super) const MC_ONE: usize = 36;
/// Floats in the input block buffer (before its slack): `MC_ONE·KC` rows by steps (144
/// KiB), which every blocking's row blocks fit in. It is each thread's heap scratch
/// (`super::scratch`), not a stack buffer: no call may need more than a few KiB of
/// its caller's stack.
pub(super) const A_BLOCK: usize = MC_ONE * KC;
const _: () = assert!(
    MC_L2 * KC_L2 <= A_BLOCK
        && MC * KC <= A_BLOCK
        && MC_ONE.is_multiple_of(12)
        && MC_L2.is_multiple_of(12)
        && MC.is_multiple_of(12)
        && MC_L2.is_multiple_of(8)
        && MC.is_multiple_of(8)
);
/// Floats of the input block buffer past its `A_BLOCK`: room for the two that the AVX2
/// packer's last overlapping store writes past the last tile.
pub(super) const PACK_SLACK: usize = 16;
/// The most floats a piece asks of its thread's scratch buffer.
pub(crate) const INPUT_BLOCK_FLOATS: usize = A_BLOCK + PACK_SLACK;
/// Columns per chunk (the epilogue's block width; the input is repacked once per chunk),
/// unless the L2 is large enough to hold a narrower chunk's weight: see [`chunk_cols`].
pub(crate) const NC: usize = 1024;
/// Pieces of at most this many panels read the input in place on the AVX-512 kernel
/// (12×32: where the L1d has 12 ways or more, `simd::l1d_ways`, or its rows share few
/// sets; 8×48: always; see [`reads_in_place`]): a few panels re-read the same input rows,
/// which the L1d then holds, and packing them cost more than it saved (up to 1.35× on an
/// Emerald Rapids Xeon). Wider pieces read in place only while their input (rows × `K`
/// floats) fits in half the L2, its rows are spread over the L1 sets and not a multiple
/// of 4 KiB apart, for sums of at least [`DIRECT_WIDE_MIN_K`]. Measurements:
/// docs/PERFORMANCE.md, "Reading the input in place" and "Wider pieces in place".
pub(super) const DIRECT_PANELS: usize = 4;
/// Pieces wider than [`DIRECT_PANELS`] read the input in place only for sums at least
/// this long. Below it each 12-row input tile is a few short rows, met once per panel,
/// and packing measured up to 1.56× as fast on Zen 4 (docs/PERFORMANCE.md, "Wider pieces
/// in place").
pub(super) const DIRECT_WIDE_MIN_K: usize = 512;
/// Calls with at most this many multiply-adds (`M·K·N`) run the unpacked paths on a
/// row-major copy of the weight, kept when `K·N` is at most this: below it the packed
/// path's fixed costs (input packing, tile set-up) outweigh the products (measured
/// here: 32×4×7 relu 5 GFLOP/s packed vs 11 unpacked; 8×32×32 72 vs 52, in favour of
/// packing).
pub(super) const TINY_MACS: u64 = 4096;

/// The most of `rows` input rows `rs` floats apart that start in one L1 set: x86 L1
/// data caches have 4 KiB ways (64 sets of 64-byte lines; Zen 4 32 KiB × 8, the Xeons
/// measured 48 KiB × 12), so rows a multiple of 4 KiB apart all meet in one set, rows
/// 2 KiB apart in two, and rows 3136 bytes apart (`K = 784`) in none.
pub(super) fn rows_per_l1_set(rs: usize, rows: usize) -> usize {
    let mut count = [0usize; 64];
    for r in 0..rows {
        count[(r.wrapping_mul(rs).wrapping_mul(4) % 4096) / 64] += 1;
    }
    count.iter().copied().max().unwrap_or(0)
}

/// Whether a piece of `rows × cols` outputs reads its input (`rs`, `cs` its strides) in
/// place rather than packing it (see the comment in `piece`): the AVX2+FMA kernel for
/// one panel; the 8×48 kernel for up to [`DIRECT_PANELS`]; the 12×32 kernel for up to
/// `DIRECT_PANELS` where the L1d holds its 12 rows (12 ways or more, or fewer than half
/// the ways taken by the rows sharing a set), and for wider pieces only where fewer than
/// half the ways are so taken, whatever the way count, `K` is at least
/// [`DIRECT_WIDE_MIN_K`], the input fits in `direct_input_bytes` and its rows are not a
/// multiple of 4 KiB apart, and, except on Intel CPUs, whose row tiles all have fewer
/// than 12 rows ([`tallest_tile`]); narrow pieces of 12-row tiles, too, read in place
/// only where no other piece reads the same rows (`shared`: the call is split by
/// columns across threads). Each condition marks where reading in place measured slower
/// than packing: rows sharing L1 sets (up to 1.7× slower on Zen 5 with rows 2 KiB
/// apart), twelve input row streams beside the panel's on AMD (1.5–1.8× slower), and two
/// threads reading the same 12-row tiles (1.5–2.0× slower). Measurements:
/// docs/PERFORMANCE.md, "Packed path: the input".
pub(super) fn reads_in_place(
    packed: &PackedKernel,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    shared: bool,
) -> bool {
    let (mr, nr) = packed.isa.tile();
    cs == 1
        && rs > 0
        && match packed.isa {
            Isa::Avx2 => cols <= nr,
            Isa::Avx512N48 => packed.direct_avx512 && cols <= DIRECT_PANELS * nr,
            Isa::Avx512 => {
                let spread = rows_per_l1_set(rs, rows.min(mr)) < packed.l1d_ways / 2;
                let short_tiles = packed.intel || tallest_tile(packed, rows) < mr;
                packed.direct_avx512
                    && (packed.l1d_ways >= 12 || spread)
                    && ((cols <= DIRECT_PANELS * nr && (short_tiles || !shared))
                        || (packed.k >= DIRECT_WIDE_MIN_K
                            && spread
                            && short_tiles
                            && !rs.is_multiple_of(1024)
                            && (rows as u64)
                                .saturating_mul(packed.k as u64)
                                .saturating_mul(4)
                                <= packed.direct_input_bytes as u64))
            }
            Isa::None => false,
        }
}

/// The most rows any row tile of a `rows`-row piece gets: the tallest of its row blocks
/// ([`block_rows`], cut by [`part`]) cut into tiles of at most the kernel's height.
pub(super) fn tallest_tile(packed: &PackedKernel, rows: usize) -> usize {
    let mr = packed.isa.tile().0;
    let block = block_rows(packed.isa, rows, packed.mc);
    let tallest = part(rows, rows.div_ceil(block.max(1)), 0).len();
    part(tallest, tallest.div_ceil(mr), 0).len()
}

/// Where panel `jp`'s rows `k0..k0 + kc` of one `k` block start in the packed body:
/// the blocks follow each other (`k0·panels·nr` floats before block `k0`), and inside
/// one the panels do (`kc·nr` floats each).
#[inline]
pub(super) fn panel_offset(k0: usize, kc: usize, jp: usize, panels: usize, nr: usize) -> usize {
    (k0 * panels + jp * kc) * nr
}

/// Weights of at least this many elements are packed on the rayon pool, panel by panel
/// (a smaller one packs in less time than the pool takes to wake).
pub(super) const PAR_PACK_MIN: usize = 1 << 16;

/// Columns per chunk for a `K`-long sum on a core with `l2` bytes of L2: [`NC`], or, on
/// cores with at least 2 MiB of L2, the widest of `NC`, `NC/2` and `NC/4` whose weight
/// slice (the first `k` block's `kc` rows by the chunk's columns, in `f32`) fits in half
/// the L2, so that the slice stays there while every row block of the chunk passes.
///
/// On a Xeon with 2 MiB of L2, where a `1024 × 1024` slice (4 MiB) streamed from the
/// mesh's L3 for every `MC` rows, 256 columns ran 1.1–1.14× as fast; on Zen 4 (1 MiB of
/// L2, no slice of 256 columns or more fits in half) `NC = 1024` stays, 256 having run
/// 3–7% slower there (docs/PERFORMANCE.md, "`chunk_cols`").
pub(super) fn chunk_cols(k: usize, kc_max: usize, l2: Option<usize>) -> usize {
    let kc = k_blocks(k, kc_max).next().map_or(0, |b| b.len());
    match l2 {
        Some(l2) if l2 >= 2 << 20 => {
            let mut nc = NC;
            while nc > NC / 4 && kc.saturating_mul(nc).saturating_mul(4) > l2 / 2 {
                nc /= 2;
            }
            nc
        }
        _ => NC,
    }
}

/// The longest `k` block and the rows per input block on a core with `l2` bytes of L2:
/// [`KC`] and [`MC`], or, with 2 MiB of L2 or more, [`KC_L2`] = 512 and [`MC_L2`] = 48.
///
/// With 2 MiB of L2 the shorter blocks and taller row blocks ran 1.02–1.05× as fast on an
/// Emerald Rapids Xeon, a 32-row input running as one block of 11-row tiles rather than
/// as 8-row tiles; on Zen 4 (1 MiB of L2) 1024 × 24 ran 1.07–1.14× as fast as 256 × 48
/// and stays, except that there the 12×32 kernel's packings for sums in [`SHORT_K`] take
/// row blocks of one tile (12 rows; see there). Measurements: docs/PERFORMANCE.md,
/// "`blocking`" and "`KC`, `MC`".
pub(super) fn blocking(l2: Option<usize>, isa: Isa, k: usize) -> (usize, usize) {
    match l2 {
        Some(l2) if l2 >= 2 << 20 => (KC_L2, MC_L2),
        _ if isa == Isa::Avx512 && SHORT_K.contains(&k) => (KC, isa.tile().0),
        _ => (KC, MC),
    }
}

/// Sums this long, on the 12×32 kernel with the small-L2 blocking, run row blocks of a
/// single tile: a row block writes its rows of the output across the whole chunk while
/// its panels pass, and for a short sum that output is much of the traffic, from one
/// store stream per row (24 streams against 12): up to 1.17× as fast on Zen 4, neutral
/// or slower outside the range. Measured on Zen 4 only, it applies wherever the small-L2 blocking
/// does (an L2 under 2 MiB, or of unknown size); docs/PERFORMANCE.md, "`SHORT_K`".
pub(super) const SHORT_K: core::ops::Range<usize> = 64..512;

/// The rows per input block for a piece of `rows` rows on `isa`'s kernel, from the
/// packing's `mc`: on the 12×32 kernel, a piece of at most [`MC_ONE`] rows runs as one
/// block, so that each weight panel streams in once per call and meets all its rows
/// (three tiles, the first reading the panel from L3 or memory and the others from L2),
/// where blocks of `mc` rows stream the whole weight once per block: up to 1.23× as fast
/// on Zen 5 (26×4096×1024). Taller pieces keep `mc`, since what gains is one pass over
/// the weight, not taller blocks (docs/PERFORMANCE.md, "`block_rows`"). Blocks only
/// group rows: the sums' order, and so every bit, is the same either way.
pub(super) fn block_rows(isa: Isa, rows: usize, mc: usize) -> usize {
    if isa == Isa::Avx512 && rows <= MC_ONE {
        mc.max(rows)
    } else {
        mc
    }
}

/// The `k` blocks of a `K`-long sum: `K.div_ceil(KC)` near-equal pieces of `0..K`, cut
/// at multiples of [`K_BLOCK`] so that every block of the crate's K-sum lies whole in one
/// (`K = 1100`: 768 + 332 rather than 1024 + 76, no block left short; the kernel is
/// called once per `K_BLOCK` steps inside). Packing and the forward pass cut `K` the
/// same way, so both see the same panels. (`kc_max` is a multiple of `K_BLOCK`.)
pub(super) fn k_blocks(k: usize, kc_max: usize) -> impl Iterator<Item = core::ops::Range<usize>> {
    const { assert!(KC.is_multiple_of(K_BLOCK) && KC_L2.is_multiple_of(K_BLOCK)) };
    let blocks = k.div_ceil(kc_max);
    let units = k.div_ceil(K_BLOCK);
    (0..blocks).map(move |b| {
        let u = part(units, blocks, b);
        (u.start * K_BLOCK).min(k)..(u.end * K_BLOCK).min(k)
    })
}

/// The `i`-th of `parts` near-equal pieces of `0..len` (the first `len % parts` one
/// longer): row blocks and row tiles are cut this way, so that no block or tile is left
/// much shorter than the others (a 64-row input runs as tiles of 11, 11, 11, 11, 10 and
/// 10 rows rather than five of 12 and one of 4).
#[inline]
pub(super) fn part(len: usize, parts: usize, i: usize) -> core::ops::Range<usize> {
    let (base, extra) = (len / parts, len % parts);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// Which microkernel a packing was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// The AVX-512 kernel's 12×32 tile.
    Avx512,
    /// The AVX-512 kernel's 8×48 tile.
    Avx512N48,
    /// `sgemm_6x16_avx2fma`.
    Avx2,
    /// No microkernel on this CPU: the weight kept row-major for matrixmultiply.
    None,
}

impl Isa {
    /// The packing for this CPU: the dispatched SIMD path's microkernel. On AVX2+FMA the
    /// 6×16 packed path measured 1.1–1.4× as fast as the unpacked path, matrixmultiply held
    /// to its own AVX2+FMA kernel (docs/PERFORMANCE.md, "AVX2+FMA: the 6×16 kernel").
    pub(super) fn current() -> Isa {
        match crate::simd_path() {
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => Isa::Avx512,
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2Fma => Isa::Avx2,
            _ => Isa::None,
        }
    }

    /// The packing for a layer of `n` units on this CPU, by the CPU's vendor (`intel`,
    /// [`crate::simd::is_intel`]):
    /// - AMD: layers of at most `DIRECT_PANELS · 48` = 192 units take the 8×48 AVX-512
    ///   kernel, whose pieces read the input in place (see `piece`); wider ones the
    ///   12×32. The 8×48 tile pads narrow layers only to 16 columns (as the 6×16
    ///   AVX2+FMA kernel does, which it replaces here: Zen 4 executes a 512-bit FMA as
    ///   two 256-bit halves, but the 256-bit kernel needs twice the instructions and
    ///   loads per FMA), covers `N = 40, 48` in one tile, and streams 8 input rows, which
    ///   Zen 4's 8-way L1d holds where the 12×32 kernel's 12 in-place rows thrashed it.
    ///   Up to 1.61× as fast on Zen 4; wider layers measured level and keep the 12×32
    ///   kernel, whose 1-row variant reads four panels at once.
    /// - Intel: always the 12×32 kernel, whose 512-bit FMAs run at twice the 256-bit rate on
    ///   the Xeons (two 512-bit FMA ports): up to 1.80× the 6×16 kernel on an Emerald Rapids
    ///   Xeon, narrow layers included once it ran tiles of ≤ 16 columns on one half and read
    ///   the input in place ([`DIRECT_PANELS`]). The 8×48 kernel has not been measured there.
    ///
    /// Measurements: docs/PERFORMANCE.md, "Packed path: which microkernel".
    pub(super) fn for_units(self, n: usize, intel: bool) -> Isa {
        #[cfg(target_arch = "x86_64")]
        if self == Isa::Avx512 && !intel && n <= DIRECT_PANELS * crate::simd::sgemm::avx512::NR48 {
            return Isa::Avx512N48;
        }
        let _ = (n, intel);
        self
    }

    /// [`for_units`](Self::for_units) for a layer of `k` inputs on a core whose L1d has
    /// `l1d_ways` ways: where that is 12 or more (Zen 5), layers of at most 16 units
    /// take the 12×32 kernel's 16-column half tile instead of the 8×48 tile, unless
    /// the input rows (`k` floats apart) put half the ways' worth of its 12 rows in
    /// one L1 set ([`rows_per_l1_set`]): there the half tile ran up to 1.10× as fast on Zen 5,
    /// and 0.96–0.99× with rows 4 KiB or 6 KiB apart, which keep the 8×48 tile (Zen 4's 8-way
    /// L1d keeps it everywhere). Measurements: docs/PERFORMANCE.md, "12-way L1d".
    pub(super) fn for_layer(self, k: usize, n: usize, intel: bool, l1d_ways: Option<usize>) -> Isa {
        let isa = self.for_units(n, intel);
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512N48
            && n <= 16
            && l1d_ways.is_some_and(|w| {
                w >= 12 && rows_per_l1_set(k, crate::simd::sgemm::avx512::MR) < w / 2
            })
        {
            return Isa::Avx512;
        }
        let _ = (k, l1d_ways);
        isa
    }

    /// (tile rows, tile columns).
    pub(super) fn tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (
                crate::simd::sgemm::avx512::MR,
                crate::simd::sgemm::avx512::NR,
            ),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512N48 => (
                crate::simd::sgemm::avx512::MR8,
                crate::simd::sgemm::avx512::NR48,
            ),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (crate::simd::sgemm::avx2::MR, crate::simd::sgemm::avx2::NR),
            _ => (1, 1),
        }
    }
}
