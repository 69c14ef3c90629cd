//! The prepared path: a weight packed once into the panel layout of the crate's own
//! `f32` microkernels ([`crate::simd`]'s AVX-512 kernel in its 12×32 shape; on AMD
//! AVX-512 CPUs, for layers of at most 192 units, its 8×48 shape; and `sgemm_6x16_avx2fma` on CPUs
//! with AVX2+FMA but not AVX-512; see `Isa::current` and `Isa::for_units`), reused by
//! every call, with the bias and (for relu and linear) the activation applied to the
//! accumulator tile in registers; other element-wise activations run on each `mc × nc`
//! output block while it is still in L2.
//!
//! Layout: the kernel's columns in panels of `NR` (32 or 48 on AVX-512, 16 on
//! AVX2+FMA); the weight stored `k` block by `k` block (`K` cut into near-equal blocks
//! of at most `KC` rows, see `k_blocks`), and inside a block panel after panel (`kc`
//! rows of `NR` contiguous floats, the last panel zero-padded), 64-byte aligned: the
//! forward pass then reads each `k` block's panels as one sequential stream. The bias is
//! zero-padded to whole panels.
//!
//! Loop order (GotoBLAS): column chunks of `NC` → `k` blocks of at most `KC` → row
//! blocks of at most `MC` → panels → row tiles. Blocking, for cores with at least 32 KiB
//! of L1d and 1 MiB of L2 (Zen 4: 32 KiB and 1 MiB; the Xeons this project has also run
//! on: 48 KiB and 2 MiB); the measurements behind each choice are in
//! docs/PERFORMANCE.md, "Packed path: blocking" and "Packed path: prefetching":
//! - `KC = 1024`: a kernel call sums up to 1024 steps before its tile of the output
//!   goes back to memory. The weight panel (1024·32·4 = 128 KiB on AVX-512) then
//!   streams from L2 rather than sitting in L1, which the kernel can afford: it needs
//!   128 bytes of panel per 24 FMAs (≈ 5 bytes a cycle, a fraction of L2's bandwidth).
//!   What it saves is the output tile's round trips (one per `k` block, each a dozen
//!   rows of lines that are by then out of L1) and the per-call set-up.
//! - `MC = 24` rows (2 12×32 tiles, 3 8×48 tiles, 4 AVX2 tiles): the input block (`MC × KC`,
//!   96 KiB, in a buffer of 144 KiB) stays in L2 while the chunk's panels pass, and the
//!   chunk's weight slice is re-read half as often as with 12 rows (every `MC` rows),
//!   which matters once many cores share L3. Short sums (`K` in [`SHORT_K`], 64..512) on
//!   the 12×32 kernel take 12-row blocks: there the output's row streams are much of the
//!   traffic. But pieces of at most 36 rows on the 12×32 kernel run as one block
//!   ([`block_rows`], the buffer's 144 KiB): the weight then streams in once per call
//!   rather than once per block.
//! - On cores with 2 MiB of L2 or more (the Xeons), `KC = 512` and `MC = 48` instead
//!   ([`blocking`]; the same 96 KiB input block): a 32-row input then runs as one block
//!   of 11-, 11- and 10-row tiles rather than two of 8-row tiles. The microkernel
//!   prefetches its panel 32 steps ahead (`PREFETCH` in `simd::sgemm`), since at these
//!   `kc` the panel streams from L2.
//! - `NC = 1024` columns per chunk: the output block the element-wise epilogue runs on
//!   (`MC × NC`, 96 KiB, less for 12-row blocks; 48-column panels round `NC` down to
//!   1008) is still in L2 when it runs; the input is repacked once per chunk (a cost of
//!   about 1/`NC` of the products). On cores with 2 MiB of L2 or more, chunks narrow (to
//!   512 or 256 columns) until the chunk's weight slice fits in half the L2
//!   ([`chunk_cols`]), where a 4 MiB slice of 1024 columns streamed from L3 for every row
//!   block.
//! - On the AVX-512 kernels, outputs larger than the L2 whose rows are a multiple of
//!   4 KiB apart (`N` a multiple of 1024) have each tile's rows prefetched before its
//!   first kernel call ([`prefetches_output`]): their stores otherwise found their lines
//!   in L3 or memory.
//!
//! Row blocks and tiles are cut into near-equal parts (64 rows: tiles of 11, 11, 11, 11,
//! 10, 10), so that no tile is left with a few rows: a short tile does few FMAs per
//! weight load.
//!
//! The input is packed too (per block, into the thread's scratch buffer; by an in-register 16×12
//! or 16×8 transpose on AVX-512, 8×8 on AVX2): the kernel's loads are then sequential whatever
//! the input's strides, and input rows a multiple of 4 KiB apart no longer collide in one L1 set.
//!
//! The K-sum order is fixed by `K`'s blocks and the tile kernels, never by the thread split
//! (threads take whole row tiles or whole panels), so results are bitwise the same for
//! any thread count. They are not bitwise those of the unpacked path (matrixmultiply
//! sums in another order); both are within the crate's K-sum bound. The exception is
//! tiny calls (`M·K·N ≤ 4096`), which run the unpacked paths on a row-major copy of the
//! weight kept for small layers (`K·N ≤ 4096`): there the results are the unpacked
//! path's, bit for bit.

use super::block::{Block, SharedOut};
use crate::matrix::MatRef;
use crate::parallel;
use crate::simd::sgemm::{Init, Tile};
use crate::simd::K_BLOCK;
use crate::{Activation, DenseError, SimdPath};
use core::mem::MaybeUninit;

/// The `k` block each kernel call covers.
pub(crate) const KC: usize = 1024;
/// Rows per input block (a multiple of every tile height, 12, 8 and 6; short sums on the
/// 12×32 kernel take 12, see [`SHORT_K`]).
pub(crate) const MC: usize = 24;
/// `KC` and `MC` on cores with at least 2 MiB of L2 (see [`blocking`]).
const KC_L2: usize = 512;
const MC_L2: usize = 48;
/// Pieces of at most this many rows run as one row block on the 12×32 kernel (three
/// tiles of up to 12 rows; see [`block_rows`]).
const MC_ONE: usize = 36;
/// Floats in the input block buffer (before its slack): `MC_ONE·KC` rows by steps (144
/// KiB), which every blocking's row blocks fit in. It is each thread's heap scratch
/// (`super::scratch`), not a stack buffer: no call may need more than a few KiB of
/// its caller's stack.
const A_BLOCK: usize = MC_ONE * KC;
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
const PACK_SLACK: usize = 16;
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
const DIRECT_PANELS: usize = 4;
/// Pieces wider than [`DIRECT_PANELS`] read the input in place only for sums at least
/// this long. Below it each 12-row input tile is a few short rows, met once per panel,
/// and packing measured up to 1.56× as fast on Zen 4 (docs/PERFORMANCE.md, "Wider pieces
/// in place").
const DIRECT_WIDE_MIN_K: usize = 512;
/// Calls with at most this many multiply-adds (`M·K·N`) run the unpacked paths on a
/// row-major copy of the weight, kept when `K·N` is at most this: below it the packed
/// path's fixed costs (input packing, tile set-up) outweigh the products (measured
/// here: 32×4×7 relu 5 GFLOP/s packed vs 11 unpacked; 8×32×32 72 vs 52, in favour of
/// packing).
const TINY_MACS: u64 = 4096;

/// The most of `rows` input rows `rs` floats apart that start in one L1 set: x86 L1
/// data caches have 4 KiB ways (64 sets of 64-byte lines; Zen 4 32 KiB × 8, the Xeons
/// measured 48 KiB × 12), so rows a multiple of 4 KiB apart all meet in one set, rows
/// 2 KiB apart in two, and rows 3136 bytes apart (`K = 784`) in none.
fn rows_per_l1_set(rs: usize, rows: usize) -> usize {
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
fn reads_in_place(
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
fn tallest_tile(packed: &PackedKernel, rows: usize) -> usize {
    let mr = packed.isa.tile().0;
    let block = block_rows(packed.isa, rows, packed.mc);
    let tallest = part(rows, rows.div_ceil(block.max(1)), 0).len();
    part(tallest, tallest.div_ceil(mr), 0).len()
}

/// Where panel `jp`'s rows `k0..k0 + kc` of one `k` block start in the packed body:
/// the blocks follow each other (`k0·panels·nr` floats before block `k0`), and inside
/// one the panels do (`kc·nr` floats each).
#[inline]
fn panel_offset(k0: usize, kc: usize, jp: usize, panels: usize, nr: usize) -> usize {
    (k0 * panels + jp * kc) * nr
}

/// Weights of at least this many elements are packed on the rayon pool, panel by panel
/// (a smaller one packs in less time than the pool takes to wake).
const PAR_PACK_MIN: usize = 1 << 16;

/// Columns per chunk for a `K`-long sum on a core with `l2` bytes of L2: [`NC`], or, on
/// cores with at least 2 MiB of L2, the widest of `NC`, `NC/2` and `NC/4` whose weight
/// slice (the first `k` block's `kc` rows by the chunk's columns, in `f32`) fits in half
/// the L2, so that the slice stays there while every row block of the chunk passes.
///
/// On a Xeon with 2 MiB of L2, where a `1024 × 1024` slice (4 MiB) streamed from the
/// mesh's L3 for every `MC` rows, 256 columns ran 1.1–1.14× as fast; on Zen 4 (1 MiB of
/// L2, no slice of 256 columns or more fits in half) `NC = 1024` stays, 256 having run
/// 3–7% slower there (docs/PERFORMANCE.md, "`chunk_cols`").
fn chunk_cols(k: usize, kc_max: usize, l2: Option<usize>) -> usize {
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
fn blocking(l2: Option<usize>, isa: Isa, k: usize) -> (usize, usize) {
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
const SHORT_K: core::ops::Range<usize> = 64..512;

/// The rows per input block for a piece of `rows` rows on `isa`'s kernel, from the
/// packing's `mc`: on the 12×32 kernel, a piece of at most [`MC_ONE`] rows runs as one
/// block, so that each weight panel streams in once per call and meets all its rows
/// (three tiles, the first reading the panel from L3 or memory and the others from L2),
/// where blocks of `mc` rows stream the whole weight once per block: up to 1.23× as fast
/// on Zen 5 (26×4096×1024). Taller pieces keep `mc`, since what gains is one pass over
/// the weight, not taller blocks (docs/PERFORMANCE.md, "`block_rows`"). Blocks only
/// group rows: the sums' order, and so every bit, is the same either way.
fn block_rows(isa: Isa, rows: usize, mc: usize) -> usize {
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
fn k_blocks(k: usize, kc_max: usize) -> impl Iterator<Item = core::ops::Range<usize>> {
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
fn part(len: usize, parts: usize, i: usize) -> core::ops::Range<usize> {
    let (base, extra) = (len / parts, len % parts);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// Which microkernel a packing was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
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
    fn current() -> Isa {
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
    fn for_units(self, n: usize, intel: bool) -> Isa {
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
    fn for_layer(self, k: usize, n: usize, intel: bool, l1d_ways: Option<usize>) -> Isa {
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
    fn tile(self) -> (usize, usize) {
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

/// A Dense layer's `f32` weight (and bias) packed once for the crate's microkernels:
/// build it with [`PackedKernel::new`], then call
/// [`dense_forward_packed`](crate::dense_forward_packed) as often as needed, from any
/// number of threads (`Send + Sync`, read-only).
///
/// Packing copies the weight once (`K·N` floats, rounded up to whole panels). On a CPU
/// with neither AVX-512 nor AVX2+FMA it keeps a plain row-major copy and the forward
/// pass runs matrixmultiply. `f64` has no packed path: use [`dense_forward`](crate::dense_forward).
///
/// ```
/// use dense_kernel::{dense_forward_packed, Activation, MatMut, MatRef, PackedKernel};
/// let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0]; // (in = 3, units = 2), Keras layout
/// let packed = PackedKernel::new(MatRef::from_slice(&w, 3, 2)?, Some(&[0.5, -10.0]))?;
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut y = [0.0f32; 4];
/// dense_forward_packed(MatRef::from_slice(&x, 2, 3)?, &packed, Activation::Relu,
///                      MatMut::from_slice(&mut y, 2, 2)?)?;
/// assert_eq!(y, [4.5, 0.0, 10.5, 0.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Debug)]
pub struct PackedKernel {
    k: usize,
    n: usize,
    isa: Isa,
    /// Panels (or, for `Isa::None`, the row-major `K × N` weight), starting at `start`.
    data: Vec<f32>,
    start: usize,
    /// The bias, zero-padded to whole panels; empty without a bias.
    bias: Vec<f32>,
    /// The weight row-major (`K × N`) for tiny calls, when `K·N ≤ TINY_MACS`; else
    /// empty.
    small: Vec<f32>,
    has_bias: bool,
    /// Columns per chunk ([`chunk_cols`], from this CPU's L2 size).
    nc: usize,
    /// The longest `k` block and the rows per input block ([`blocking`]). The packing's
    /// `k` blocks follow `kc_max`, so it is fixed at pack time.
    kc_max: usize,
    mc: usize,
    /// Whether the AVX-512 kernel may read the input in place ([`DIRECT_PANELS`]; the
    /// L1d's associativity is known), and that associativity.
    direct_avx512: bool,
    l1d_ways: usize,
    /// Wider pieces read in place too when their input fits in this many bytes (half
    /// the L2; 0 where its size is unknown) and its rows are not a multiple of 4 KiB
    /// apart ([`DIRECT_PANELS`]).
    direct_input_bytes: usize,
    /// This CPU's L2 in bytes (0 where unknown), for [`prefetches_output`].
    l2_bytes: usize,
    /// Whether this is an Intel CPU, where wide pieces of 12-row tiles read their input
    /// in place ([`reads_in_place`]).
    intel: bool,
}

/// A copy with its own buffer, its panels 64-byte aligned in it as in the original (a
/// derived `clone` kept the original's offset, so the copy's panels started wherever the
/// new allocation put them).
impl Clone for PackedKernel {
    fn clone(&self) -> Self {
        let body = self.body();
        let mut data = Vec::with_capacity(body.len() + 16);
        data.resize(body.len() + 16, 0.0);
        let start = data.as_ptr().align_offset(64).min(15);
        data[start..start + body.len()].copy_from_slice(body);
        data.truncate(start + body.len());
        PackedKernel {
            data,
            start,
            bias: self.bias.clone(),
            small: self.small.clone(),
            ..*self
        }
    }
}

impl PackedKernel {
    /// Packs `kernel` (`(in, units)`; a PyTorch `(units, in)` weight as its `.t()` view,
    /// any strides) and `bias` (`units` values, or `None`).
    ///
    /// # Errors
    /// [`DenseError::BiasLength`] for a bias of the wrong length;
    /// [`DenseError::AllocationFailed`] if the packed copy cannot be allocated.
    pub fn new(kernel: MatRef<'_, f32>, bias: Option<&[f32]>) -> Result<Self, DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        Self::new_for(isa, crate::simd::l2_bytes(), kernel, bias, true)
    }

    /// Packs `kernel` and `bias` into this kernel's own buffers, reusing their memory
    /// (no allocation once they are large enough): training packs its changing weights
    /// once per step. After an error the kernel is empty (`0 × 0`).
    pub(crate) fn repack(
        &mut self,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
    ) -> Result<(), DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        // The same layout as before: every padding element is still zero, so the
        // panels need not be cleared first (the packing overwrites the rest).
        let l2 = crate::simd::l2_bytes();
        let same = (self.k, self.n, self.isa, self.kc_max)
            == (
                kernel.rows(),
                kernel.cols(),
                isa,
                blocking(l2, isa, kernel.rows()).0,
            );
        let buffers = (
            std::mem::take(&mut self.data),
            std::mem::take(&mut self.bias),
        );
        // An empty kernel over empty buffers until the new packing is in place.
        self.small.clear();
        (self.k, self.n, self.start, self.has_bias) = (0, 0, 0, false);
        *self = Self::new_into(isa, l2, kernel, bias, false, buffers, same)?;
        Ok(())
    }

    /// [`new`](Self::new) for one call of more than `TINY_MACS` multiply-adds
    /// (`dense_forward`'s narrow layers): no row-major copy for tiny calls.
    pub(crate) fn for_one_call(
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
    ) -> Result<Self, DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        Self::new_for(isa, crate::simd::l2_bytes(), kernel, bias, false)
    }

    /// Packs for `isa`'s microkernel with the blocking of a core with `l2` bytes of L2
    /// ([`blocking`], [`chunk_cols`]).
    fn new_for(
        isa: Isa,
        l2: Option<usize>,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
        keep_small: bool,
    ) -> Result<Self, DenseError> {
        Self::new_into(
            isa,
            l2,
            kernel,
            bias,
            keep_small,
            (Vec::new(), Vec::new()),
            false,
        )
    }

    /// [`new_for`](Self::new_for) into `buffers` (panels, bias), whose memory is
    /// reused when large enough; `same_layout`: the panels hold a packing of the same
    /// shape, ISA and blocking (their padding is zero), so they are not cleared first.
    #[allow(clippy::too_many_arguments)]
    fn new_into(
        isa: Isa,
        l2: Option<usize>,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
        keep_small: bool,
        (mut data, mut b): (Vec<f32>, Vec<f32>),
        same_layout: bool,
    ) -> Result<Self, DenseError> {
        let (k, n) = (kernel.rows(), kernel.cols());
        if let Some(b) = bias {
            if b.len() != n {
                return Err(DenseError::BiasLength {
                    len: b.len(),
                    units: n,
                });
            }
        }
        let (_, nr) = isa.tile();
        let panels = n.div_ceil(nr);
        let (kc_max, mc) = blocking(l2, isa, k);
        let len = panels
            .checked_mul(nr)
            .and_then(|c| c.checked_mul(k))
            .and_then(|l| l.checked_add(16))
            .ok_or(DenseError::AllocationFailed { rows: k, cols: n })?;
        if !(same_layout && data.len() == len) {
            data.clear();
            data.try_reserve_exact(len)
                .map_err(|_| DenseError::AllocationFailed { rows: k, cols: n })?;
            data.resize(len, 0.0);
        }
        // First element on a 64-byte boundary (a whole cache line per panel row).
        let start = data.as_ptr().align_offset(64).min(15);
        let body = &mut data[start..];
        // Element (p, j) of the view: in bounds for p < K, j < N (checked when the view
        // was built), read straight from the slice (no per-element Option).
        let (src, rs, cs) = (kernel.data(), kernel.row_stride(), kernel.col_stride());
        let get = |p: usize, j: usize| src[p * rs + j * cs];
        if n == 0 {
            // Nothing to pack. K may be anything here (an empty view can claim any row
            // count), so no loop below may run over it.
        } else if isa == Isa::None {
            for p in 0..k {
                for j in 0..n {
                    body[p * n + j] = get(p, j);
                }
            }
        } else {
            // k block by k block; inside one, the panels one after another (the order
            // the forward pass reads them in: one sequential stream per k block). Large
            // weights fill their panels on the rayon pool (each panel is its own
            // region: the same bytes for any thread count).
            let fill = |panel: &mut [f32], k0: usize, jp: usize| {
                let w = nr.min(n - jp * nr);
                if cs == 1 {
                    for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                        // Keras layout: the panel row is a contiguous run of the
                        // weight's row (one copy, not `w` indexed reads).
                        let at = (k0 + p) * rs + jp * nr;
                        super::block::copy_small(&mut row[..w], &src[at..at + w]);
                    }
                } else {
                    // Any other layout (a PyTorch weight's `.t()`: `k` contiguous,
                    // columns K apart) in blocks of 16 panel rows: each column's 16
                    // values are then a cache line or two read once, and the block's 16
                    // rows (2 KiB) stay in L1 while its columns fill them. Row by
                    // row, the `w` columns of one row were `w` lines K floats apart,
                    // which for K a multiple of 1024 all fell in one L1 set and were
                    // evicted before their next value was read. On Zen 4, medians:
                    // 1024² 2.7–3.1 ms → 0.69 ms, 512² 0.39 → 0.16 ms, 784×128
                    // 0.11 → 0.05 ms (the Keras layout: 0.20, 0.04, 0.013).
                    for (b, rows) in panel.chunks_mut(16 * nr).enumerate() {
                        let (p0, h) = (k0 + 16 * b, rows.len() / nr);
                        for c in 0..w {
                            if rs == 1 {
                                // The column's h values are contiguous.
                                let at = (jp * nr + c) * cs + p0;
                                let col = &src[at..at + h];
                                for (row, &v) in rows.chunks_exact_mut(nr).zip(col) {
                                    row[c] = v;
                                }
                            } else {
                                for (i, row) in rows.chunks_exact_mut(nr).enumerate() {
                                    row[c] = get(p0 + i, jp * nr + c);
                                }
                            }
                        }
                    }
                }
            };
            let parallel = k.saturating_mul(n) >= PAR_PACK_MIN && rayon::current_num_threads() > 1;
            let mut rest = &mut body[..k * panels * nr];
            for ks in k_blocks(k, kc_max) {
                let (k0, kc) = (ks.start, ks.len());
                let (block, r) = rest.split_at_mut(kc * panels * nr);
                rest = r;
                debug_assert_eq!(panel_offset(k0, kc, 0, panels, nr), k0 * panels * nr);
                if parallel {
                    use rayon::prelude::*;
                    block
                        .par_chunks_mut(kc * nr)
                        .enumerate()
                        .for_each(|(jp, panel)| fill(panel, k0, jp));
                } else {
                    for (jp, panel) in block.chunks_mut(kc * nr).enumerate() {
                        fill(panel, k0, jp);
                    }
                }
            }
        }
        let mut small = Vec::new();
        if keep_small
            && isa != Isa::None
            && n > 0
            && (k as u64).saturating_mul(n as u64) <= TINY_MACS
        {
            small.reserve_exact(k * n);
            for p in 0..k {
                small.extend((0..n).map(|j| get(p, j)));
            }
        }
        b.clear();
        if let Some(bias) = bias {
            b.try_reserve_exact(panels * nr)
                .map_err(|_| DenseError::AllocationFailed { rows: 1, cols: n })?;
            b.extend_from_slice(bias);
            b.resize(if isa == Isa::None { n } else { panels * nr }, 0.0);
        }
        Ok(PackedKernel {
            k,
            n,
            isa,
            data,
            start,
            bias: b,
            small,
            has_bias: bias.is_some(),
            nc: chunk_cols(k, kc_max, l2),
            kc_max,
            mc,
            direct_avx512: crate::simd::l1d_ways().is_some(),
            l1d_ways: crate::simd::l1d_ways().unwrap_or(0),
            direct_input_bytes: l2.map_or(0, |b| b / 2),
            l2_bytes: l2.unwrap_or(0),
            intel: crate::simd::is_intel(),
        })
    }

    /// The input size `K` (`in_features`).
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// The output size `N` (`units`).
    pub fn units(&self) -> usize {
        self.n
    }

    /// Whether a bias was packed.
    pub fn has_bias(&self) -> bool {
        self.has_bias
    }

    /// Bytes held by the packed copy.
    pub fn packed_bytes(&self) -> usize {
        (self.data.capacity() + self.bias.capacity() + self.small.capacity()) * 4
    }

    /// Whether the packing is for one of the crate's own microkernels (AVX-512 or
    /// AVX2+FMA); `false` on CPUs with neither, where the forward pass runs
    /// matrixmultiply.
    pub fn uses_microkernels(&self) -> bool {
        self.isa != Isa::None
    }

    fn body(&self) -> &[f32] {
        &self.data[self.start..]
    }
}

/// The packed forward pass into the row-major `out` (`M × N`), shapes checked by the
/// caller.
///
/// # Errors
/// [`DenseError::ScratchAllocation`] if a thread's scratch buffer cannot be allocated
/// (`out` is then partly written).
pub(crate) fn run(
    input: MatRef<'_, f32>,
    packed: &PackedKernel,
    act: Activation,
    out: &mut [f32],
) -> Result<(), DenseError> {
    let (m, k, n) = (input.rows(), packed.k, packed.n);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let bias = packed.has_bias.then(|| &packed.bias[..n]);
    let elementwise = !act.is_row_wise() && act != Activation::Linear;
    let in_register_relu = act == Activation::Relu;
    let macs = (m as u64).saturating_mul(k as u64).saturating_mul(n as u64);
    if packed.isa == Isa::None || k == 0 {
        // No microkernel on this CPU (the weight was kept row-major), or nothing to sum:
        // the unpacked paths (an empty K = 0 view reads nothing).
        let len = if packed.isa == Isa::None { k * n } else { 0 };
        let kv = MatRef::from_slice(&packed.body()[..len], k, n)?;
        return super::run(super::ForwardPath::Auto, input, kv, bias, act, out);
    }
    if macs <= TINY_MACS && !packed.small.is_empty() {
        // Tiny: the unpacked paths on the row-major copy (bitwise their results).
        let kv = MatRef::from_slice(&packed.small, k, n)?;
        return super::run(super::ForwardPath::Auto, input, kv, bias, act, out);
    }
    let (mr, nr) = packed.isa.tile();
    let panels = n.div_ceil(nr);
    // Split whole row tiles if there are at least as many rows as columns, else whole
    // panels (the operand each piece re-reads is the smaller one); see `splits_by_rows`.
    let by_rows = splits_by_rows(packed.isa, m, n, rayon::current_num_threads());
    let pieces = if by_rows {
        parallel::pieces(macs, m.div_ceil(mr))
    } else {
        parallel::pieces(macs, panels)
    };
    let shared = SharedOut::new(out, m, n);
    parallel::try_for_each(pieces, |p| {
        let (rows, cols) = if by_rows {
            (parallel::split(m, pieces, p, mr), 0..n)
        } else {
            (0..m, parallel::split(n, pieces, p, nr))
        };
        if rows.is_empty() || cols.is_empty() {
            return Ok(());
        }
        // SAFETY: `split` gives the pieces disjoint ranges of rows (or of columns).
        let mut block = unsafe { shared.block(rows, cols) };
        piece(
            input,
            packed,
            act,
            in_register_relu,
            elementwise,
            pieces > 1 && !by_rows,
            &mut block,
        )
    })?;
    if act.is_row_wise() {
        parallel::apply_rows(act, out, n, macs);
    }
    Ok(())
}

/// Whether a call of `m × n` outputs on `isa`'s kernel, on `threads` threads, is split
/// by row tiles (each piece reading the whole weight) rather than by panels (each
/// reading the whole input): where `m ≥ n`, and also where whole row tiles share out
/// more evenly than whole panels (the slowest piece's share of tiles against of
/// panels). A layer of three 48-column panels split two ways gave one thread one panel
/// and the other two: by rows it ran up to 1.72× as fast on two threads of Zen 5; where
/// both split as evenly, by panels stays, having measured faster (docs/PERFORMANCE.md,
/// "`splits_by_rows`").
fn splits_by_rows(isa: Isa, m: usize, n: usize, threads: usize) -> bool {
    let (mr, nr) = isa.tile();
    // The speed-up a split into whole units allows: units over the largest piece.
    let speedup =
        |units: usize| units as f64 / units.div_ceil(threads.clamp(1, units.max(1))) as f64;
    m >= n || speedup(m.div_ceil(mr)) > speedup(n.div_ceil(nr))
}

/// One thread's block, in the module's loop order: for each column chunk (`NC`) and
/// `k` block (≤ `KC`), each row block (≤ `MC` rows, or the whole piece: [`block_rows`])
/// is packed into row tiles (`kc × MR`
/// each, k-major) in this thread's scratch buffer (up to 144 KiB), then every weight panel of the chunk
/// (`kc × NR`, streamed from L2) meets every row tile. After the last `k`
/// block, the element-wise epilogue runs on the row block's `mc × nc` output, just
/// written and still in L2.
fn piece(
    input: MatRef<'_, f32>,
    packed: &PackedKernel,
    act: Activation,
    in_register_relu: bool,
    elementwise: bool,
    shared_rows: bool,
    block: &mut Block<'_, f32>,
) -> Result<(), DenseError> {
    let (k, isa) = (packed.k, packed.isa);
    // `run` took K = 0 (the bias) and empty outputs elsewhere: every view here is
    // non-empty, so each offset below names an element.
    debug_assert!(k > 0 && !block.rows.is_empty() && !block.cols.is_empty());
    let (mr, nr) = isa.tile();
    let (rows, cols) = (block.rows.clone(), block.cols.clone());
    let ld = block.ld();
    let base = block.as_mut_ptr();
    let body = packed.body();
    let panels = packed.n.div_ceil(nr);
    // One row alone runs the 1-row, 4-panel kernel: four weight streams at once, where
    // a 1-row tile reads one panel at a time (memory-bound; relu on Zen 4, alternating
    // runs: 1×1024² 28 → 36 GFLOP/s, 1×4096² 8.5 → 10.9).
    let row4 = isa == Isa::Avx512 && rows.len() == 1;
    // A piece a few panels wide meets each input tile a few times, and packing it costs
    // about what those products do: the kernels then read the input in place. The AVX2+FMA
    // kernel (6 row streams) for one panel (on Zen 4 the packing was a quarter of
    // 512×784×10); the 8-row AVX-512 kernel for up to `DIRECT_PANELS` (8 rows fit Zen
    // 4's 8 ways even 4 KiB apart); the 12-row one for up to `DIRECT_PANELS` where the L1d
    // has 12 ways or more, enough for 12 rows a multiple of 4 KiB apart, which all fall
    // in one set, or, on a smaller L1d, where fewer than half its ways hold the rows
    // that share a set (`rows_per_l1_set`; Zen 4's 8 ways, AVX-512 packings, one
    // process: rows 1 KiB apart, 3 to a set, 64×256×40 1.16–1.17×; 3136 bytes,
    // 128×784×256 1.02×; 2 KiB, 6 to a set, 256×512×100 0.85×; 4 KiB, all 12 in one,
    // 1024×1024×10 0.83×), and for wider pieces whose input sits in L2, whose rows
    // are not 4 KiB apart and whose sum is at least `DIRECT_WIDE_MIN_K` long
    // (`reads_in_place`).
    let (rs, cs) = (input.row_stride(), input.col_stride());
    // A single row (`row4`) is read in place wherever its elements are consecutive,
    // rather than packed as a 12-row tile of copies: relu, one thread, Zen 4, both
    // alternated in one process (medians of 15 rounds), 1×784×256 1.20×, 1×512×320
    // 1.19×, 1×64×320 and 1×64×1280 1.13×, 1×1024² and 1×300×1000 1.11×, 1×16×1280
    // 1.05×, 1×4096² 1.05× (the same values in the same order: the same bits).
    let direct = if row4 {
        cs == 1 && rs > 0
    } else {
        reads_in_place(packed, rows.len(), cols.len(), rs, cs, shared_rows)
    }
    .then(|| input.data());
    // The input block buffer, as much of this thread's scratch as this piece needs
    // (`input_block_floats`; none where the kernels read the input in place).
    let need = if direct.is_some() {
        0
    } else {
        input_block_floats(packed, rows.len())
    };
    let mut run = |a_block: &mut [MaybeUninit<f32>]| {
        // Whole panels per chunk (the 8×48 kernel's 48 columns do not divide `NC`), so
        // that every chunk, like every piece, starts on a panel.
        let nc = (packed.nc / nr).max(1) * nr;
        // Gelu and sigmoid on output rows a multiple of 8 KiB apart run tile by tile
        // (`epilogue_per_tile`), each tile's just after the next tile's products.
        let per_tile = elementwise && !in_register_relu && epilogue_per_tile(isa, act, ld);
        let act32 = act.params_as::<f32>();
        let prefetch_out = matches!(isa, Isa::Avx512 | Isa::Avx512N48)
            && prefetches_output(
                rows.len()
                    .saturating_mul(cols.len())
                    .saturating_mul(core::mem::size_of::<f32>()),
                ld.saturating_mul(core::mem::size_of::<f32>()),
                packed.l2_bytes,
            );
        let apply_tile = |(i, h, j, w): (usize, usize, usize, usize)| {
            // SAFETY: `per_tile` holds only for the AVX-512 kernels, which run only where
            // the CPU has AVX-512 (`Isa::current`); the tile (rows i..i+h, columns j..j+w,
            // as the kernel call that wrote it) lies inside this piece's block, `ld` apart,
            // and no other reference to those elements is live while this runs.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                let done = crate::simd::apply_tile_avx512(
                    act32,
                    base.add((i - rows.start) * ld + (j - cols.start)),
                    h,
                    w,
                    ld,
                );
                debug_assert!(done, "{act} has no tile epilogue");
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (i, h, j, w, act32);
        };
        let mut c0 = cols.start;
        while c0 < cols.end {
            let c1 = (c0 + nc).min(cols.end);
            for ks in k_blocks(k, packed.kc_max) {
                let (k0, kc) = (ks.start, ks.len());
                let (first, last) = (k0 == 0, k0 + kc == k);
                let blocks = rows.len().div_ceil(block_rows(isa, rows.len(), packed.mc));
                for rb in 0..blocks {
                    let rr = part(rows.len(), blocks, rb);
                    let (r0, r1) = (rows.start + rr.start, rows.start + rr.end);
                    // At most `block_rows` rows: at most mc / mr tiles of ≤ mr rows each
                    // (mc a multiple of mr), or, on the 12×32 kernel, ≤ MC_ONE / 12 tiles.
                    let tiles = (r1 - r0).div_ceil(mr);
                    debug_assert!(
                        direct.is_some() || tiles * mr * kc <= a_block.len() - PACK_SLACK
                    );
                    if direct.is_none() {
                        pack_input(isa, input, r0..r1, tiles, k0..k0 + kc, mr, a_block);
                    }
                    let mut pending: Option<(usize, usize, usize, usize)> = None;
                    let mut j = c0;
                    while j < c1 {
                        // A single row takes up to four panels per kernel call (`row4`).
                        let w = if row4 {
                            (4 * nr).min(c1 - j)
                        } else {
                            nr.min(c1 - j)
                        };
                        let panel = j / nr;
                        // SAFETY: j < N, so panel `j / nr` exists, and its rows k0..k0+kc
                        // (k0 + kc ≤ K) of this k block are inside the packed body: they
                        // start at `panel_offset` and hold kc·nr floats, and the blocks up
                        // to and including this one hold (k0 + kc)·panels·nr ≤ K·panels·nr.
                        // Column chunks are whole panels and pieces start at multiples of
                        // nr, so j is a multiple of nr and the tile is the panel's first `w`
                        // columns.
                        let b =
                            unsafe { body.as_ptr().add(panel_offset(k0, kc, panel, panels, nr)) };
                        let bias = if packed.has_bias {
                            // SAFETY: the padded bias holds `panels·nr` floats.
                            unsafe { packed.bias.as_ptr().add(panel * nr) }
                        } else {
                            core::ptr::null()
                        };
                        for ti in 0..tiles {
                            let tr = part(r1 - r0, tiles, ti);
                            let (i, h) = (r0 + tr.start, tr.len());
                            if first && prefetch_out {
                                // The tile's output, not cached since the last call (later
                                // `k` blocks' kernels prefetch the running sum themselves).
                                crate::simd::sgemm::prefetch_rows(
                                    base.wrapping_add((i - rows.start) * ld + (j - cols.start)),
                                    h,
                                    w,
                                    ld,
                                );
                            }
                            // SAFETY: row tile `ti` (rows i..i+h, h ≤ mr) was packed at
                            // `ti·mr·kc` in `a_block` (kc·mr floats, inside the buffer:
                            // `pack_input` wrote them through bounds-checked slices of it,
                            // which `input_block_floats` sized), and its rows < h, all the
                            // kernel reads, were written there; or, `direct`, the kernel
                            // reads input rows i..i+h (< M) at columns k0..k0+kc (≤ K) in
                            // place: unit column stride, so element (i + r, k0 + p) is at
                            // (i + r)·rs + k0 + p, inside the validated view's slice; the
                            // output tile (rows i..i+h, columns j..j+w) lies inside this
                            // piece's block (`base` is its first element; rows and columns
                            // relative to it), which no other piece touches. The kernels
                            // sum the call's steps in blocks of the crate's K-sum
                            // (`K_BLOCK`), which start at multiples of it in K as this
                            // `k` block does (`k_blocks`, asserted here).
                            #[allow(clippy::undocumented_unsafe_blocks)] // the SAFETY above
                            unsafe {
                                debug_assert!(k0.is_multiple_of(K_BLOCK));
                                let t = Tile {
                                    kc,
                                    a: match direct {
                                        Some(x) => x.as_ptr().add(i * rs + k0),
                                        None => a_block.as_ptr().add(ti * mr * kc).cast::<f32>(),
                                    },
                                    lda: if direct.is_some() { rs } else { 0 },
                                    b,
                                    c: base.add((i - rows.start) * ld + (j - cols.start)),
                                    ldc: ld,
                                    cols: w,
                                    init: if first { Init::Bias(bias) } else { Init::Load },
                                    relu: last && in_register_relu,
                                };
                                if row4 {
                                    // (As above, for the w ≤ 4·nr columns: they span the
                                    // w.div_ceil(nr) panels from `panel`, kc·nr floats
                                    // apart in this k block, and the padded bias holds
                                    // as many panels' floats from `panel·nr`.)
                                    row_tile(&t, kc * nr);
                                } else {
                                    tile(isa, h, &t);
                                }
                            }
                            if per_tile && last {
                                // The tile before this one (its output final), while this
                                // one's products are still in flight.
                                if let Some(prev) = pending.replace((i, h, j, w)) {
                                    apply_tile(prev);
                                }
                            }
                        }
                        j += w;
                    }
                    if let Some(prev) = pending.take() {
                        apply_tile(prev);
                    }
                    if last && elementwise && !in_register_relu && !per_tile {
                        // The mc × nc block just finished is still in L2.
                        // SAFETY: rows r0..r1 and columns c0..c1 lie inside this piece's
                        // block; the sub-block is used alone while it lives.
                        let mut sub = unsafe { block.sub(r0..r1, c0..c1) };
                        sub.apply_elementwise(act);
                    }
                }
            }
            c0 = c1;
        }
    };
    if need == 0 {
        run(&mut []);
        Ok(())
    } else {
        debug_assert!(need <= A_BLOCK);
        super::scratch::with_buffer::<f32, _>(need + PACK_SLACK, INPUT_BLOCK_FLOATS, run)
    }
}

/// Floats of packed input a piece of `rows` rows needs at most: its tallest row
/// block's tiles ([`block_rows`]), `mr` rows each, by its longest `k` block
/// ([`k_blocks`]). At most [`A_BLOCK`].
fn input_block_floats(packed: &PackedKernel, rows: usize) -> usize {
    let mr = packed.isa.tile().0;
    let blocks = rows.div_ceil(block_rows(packed.isa, rows, packed.mc).max(1));
    // `part` makes the first block the tallest.
    let block = part(rows, blocks.max(1), 0).len();
    let kc = k_blocks(packed.k, packed.kc_max)
        .map(|b| b.len())
        .max()
        .unwrap_or(0);
    block.div_ceil(mr) * mr * kc
}

/// Whether a piece writing `out_bytes` of output, its rows `ld_bytes` apart, prefetches
/// each tile's output rows just before the tile's first kernel call
/// ([`crate::simd::sgemm::prefetch_rows`]; the kernels prefetch the running sum of
/// later `k` blocks themselves): where the output is larger than the L2 (`l2` bytes,
/// 1 MiB where unknown), so that its lines come from L3 or memory, and its rows are a
/// multiple of 4 KiB apart, so that a tile's rows all fall in one L1 set: the tiles'
/// stores otherwise found their lines in L3 or memory. Up to 1.10× as fast on Zen 5 there;
/// nothing or a loss where rows are not so aligned or the output fits in the L2. Only the
/// AVX-512 kernels take it: the AVX2+FMA kernel measured no gain (docs/PERFORMANCE.md,
/// "`prefetches_output`").
fn prefetches_output(out_bytes: usize, ld_bytes: usize, l2: usize) -> bool {
    out_bytes > if l2 == 0 { 1 << 20 } else { l2 } && ld_bytes.is_multiple_of(4096)
}

/// Output rows this many bytes apart, or a multiple of it, take the tile-by-tile
/// epilogue ([`epilogue_per_tile`]).
const TILE_EPILOGUE_STRIDE: usize = 8 << 10;

/// Whether `piece` applies `act` tile by tile, each tile's outputs just after the next
/// tile's kernel call (still in L1 or L2, and overlapping that call's tail), rather
/// than on the whole `mc × nc` block after its last tile: for the AVX-512 kernels,
/// the activations [`crate::simd::has_tile_epilogue`] lists (gelu, sigmoid), and
/// output rows a multiple of 8 KiB apart (`N` a multiple of 2048). There the block's
/// 24 rows of 4 KiB share few L2 sets (a 1 MiB, 16-way L2 maps addresses 64 KiB apart
/// to one set: rows 16 KiB apart put 6 of the block's rows in each set the block
/// touches, beside the weight slice streaming through), and the block pass found them
/// evicted. Up to 1.10× as fast on Zen 5 where rows are so aligned, nothing or a little
/// loss elsewhere (docs/PERFORMANCE.md, "`epilogue_per_tile`").
fn epilogue_per_tile(isa: Isa, act: Activation, ld: usize) -> bool {
    let avx512 = {
        #[cfg(target_arch = "x86_64")]
        {
            matches!(isa, Isa::Avx512 | Isa::Avx512N48)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = isa;
            false
        }
    };
    avx512
        && crate::simd::has_tile_epilogue(act)
        && ld
            .checked_mul(core::mem::size_of::<f32>())
            .is_some_and(|b| b.is_multiple_of(TILE_EPILOGUE_STRIDE))
}

/// The `R` row pointers of a tile at row `i0` with `h` real rows, each the start of a
/// checked `ks`-slice of a unit-stride input; rows past `h` repeat the first (their
/// lanes are never read).
#[cfg(target_arch = "x86_64")]
fn tile_rows<const R: usize>(
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
fn pack_input(
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

/// Runs one tile on the packing's microkernel.
///
/// # Safety
/// As the microkernels' contracts, for `rows` rows.
#[inline]
unsafe fn tile(isa: Isa, rows: usize, t: &Tile) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: packings for AVX-512 are made only when the dispatched path is AVX-512
        // (the CPU has it); the operand contract is the caller's.
        Isa::Avx512 => unsafe { crate::simd::sgemm::avx512::run(rows, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for `Isa::Avx512` (the 8×48 packing is made only where that one
        // would be).
        Isa::Avx512N48 => unsafe { crate::simd::sgemm::avx512::run48(rows, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2+FMA packings are made only when the CPU has both: when the
        // dispatched path is AVX2+FMA (`Isa::current`; `Isa::for_units` never picks it
        // on an AVX-512 CPU), or by this module's tests after checking the CPU; the
        // operand contract is the caller's.
        Isa::Avx2 => unsafe { crate::simd::sgemm::avx2::run(rows, t) },
        _ => {}
    }
}

/// One input row against the 1..=4 panels `t.cols` spans (the AVX-512 packing only).
///
/// # Safety
/// As `sgemm::avx512::sgemm_1xn_avx512`; the packing is `Isa::Avx512` (the CPU has it).
unsafe fn row_tile(t: &Tile, stride: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract; AVX-512 packings exist only on CPUs with it.
    unsafe {
        crate::simd::sgemm::avx512::run_row(t, stride)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (t, stride);
}

/// Whether this CPU runs a packed microkernel (else packings are row-major copies for
/// matrixmultiply).
pub(crate) fn has_microkernels() -> bool {
    Isa::current() != Isa::None
}

/// Whether a layer of `n` units packs for the 8×48 tile on this CPU (by its width
/// alone: layers of at most 16 units on a 12-way L1d may take the 12×32 half tile
/// instead, [`Isa::for_layer`]; `dense_forward` packs those per call either way).
pub(crate) fn takes_8x48(n: usize) -> bool {
    Isa::current().for_units(n, crate::simd::is_intel()) == Isa::Avx512N48
}

/// The `k` block of [`microkernel_flops`]: short enough for the panel (256·32·4 = 32 KiB)
/// and the input tile to stay in L1 together.
#[cfg(feature = "internals")]
const BENCH_KC: usize = 256;

/// Runs the packed path's microkernel on one full tile `reps` times, with `kc = BENCH_KC`
/// and every operand in L1 (64-byte aligned, as packed weights are), and returns the FLOPs
/// done: the kernel's own rate, for the benches to set beside the whole path's. `None`
/// on CPUs without the microkernels.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn microkernel_flops(reps: usize) -> Option<f64> {
    let isa = Isa::current();
    if isa == Isa::None {
        return None;
    }
    let (mr, nr) = isa.tile();
    let a = vec![0.5f32; BENCH_KC * mr];
    let b = vec![0.25f32; BENCH_KC * nr + 16];
    let off = b.as_ptr().align_offset(64).min(15);
    let mut c = vec![0.0f32; mr * nr];
    for _ in 0..reps {
        let t = Tile {
            kc: BENCH_KC,
            a: a.as_ptr(),
            b: b[off..].as_ptr(),
            c: c.as_mut_ptr(),
            lda: 0,
            ldc: nr,
            cols: nr,
            init: Init::Load,
            relu: false,
        };
        // SAFETY: `isa` is this CPU's; `a` holds BENCH_KC·mr floats, `b` BENCH_KC·nr from `off`, `c`
        // mr rows of nr, all separate buffers.
        unsafe { tile(isa, mr, &t) };
    }
    core::hint::black_box(&c);
    Some((2 * reps * BENCH_KC * mr * nr) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic `M × K` input, `K × N` weight and `N` bias with small exact values.
    fn data(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
            .collect();
        let w = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
            .collect();
        let b = (0..n).map(|i| i as f32 / 3.0 - 1.0).collect();
        (x, w, b)
    }

    /// A repacked kernel (same shape with new values, then other shapes, in either
    /// layout and with or without bias) gives the bits of a freshly packed one: the
    /// panels it reuses without clearing keep their zero padding.
    #[test]
    fn repacking_in_place_equals_packing_afresh() {
        let mut p =
            PackedKernel::for_one_call(MatRef::from_slice(&[0.0f32; 4], 2, 2).unwrap(), None)
                .unwrap();
        for &(m, k, n, bias, torch, salt) in &[
            (7, 33, 45, true, false, 0usize),
            (7, 33, 45, true, false, 1),
            (7, 33, 45, false, true, 2),
            (5, 300, 70, true, false, 3),
            (5, 300, 70, true, false, 4),
            (9, 33, 45, true, true, 5),
            (3, 12, 200, false, false, 6),
        ] {
            let (x, w0, b) = data(m, k, n);
            let w: Vec<f32> = w0.iter().map(|v| v + salt as f32 / 16.0).collect();
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            let kv = if torch {
                MatRef::from_slice(&wt, n, k).unwrap().t()
            } else {
                MatRef::from_slice(&w, k, n).unwrap()
            };
            let bias = bias.then_some(&b[..]);
            p.repack(kv, bias).unwrap();
            let fresh = PackedKernel::for_one_call(kv, bias).unwrap();
            let (mut y1, mut y2) = (vec![0.0f32; m * n], vec![1.0f32; m * n]);
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            crate::dense_forward_packed(
                xv,
                &p,
                Activation::Linear,
                crate::MatMut::from_slice(&mut y1, m, n).unwrap(),
            )
            .unwrap();
            crate::dense_forward_packed(
                xv,
                &fresh,
                Activation::Linear,
                crate::MatMut::from_slice(&mut y2, m, n).unwrap(),
            )
            .unwrap();
            let bits = |v: &[f32]| v.iter().map(|t| t.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&y1),
                bits(&y2),
                "{m}x{k}x{n} bias={} torch={torch} salt={salt}",
                bias.is_some()
            );
        }
    }

    /// Every packing the CPU can run, including the matrixmultiply fallback.
    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::None];
        #[cfg(target_arch = "x86_64")]
        {
            if SimdPath::Avx512.is_available() {
                v.push(Isa::Avx512);
                v.push(Isa::Avx512N48);
            }
            if SimdPath::Avx2Fma.is_available() {
                v.push(Isa::Avx2);
            }
        }
        v
    }

    /// Every kernel at the edges of its tiles, with the output exactly `M × N` long:
    /// `N ≡ 1..=31 (mod 32)` and past the 48-column tiles at one row (the 1-row 4-panel
    /// kernel) and a few, `N < 8` and `N = 8, 9`, sums of one and of several `K` blocks
    /// and `k` blocks (later ones load the running sum), with and without a bias, input
    /// packed and read in place. Debug builds check every output address a kernel forms
    /// (`Tile::c_at`: never past a row's last valid column); the results are checked
    /// against the reference.
    #[test]
    fn kernels_form_no_address_past_the_output_at_any_edge() {
        let widths = (1..=33).chain([40, 47, 48, 49, 63, 65, 95, 96, 97, 100]);
        for isa in isas().into_iter().filter(|&i| i != Isa::None) {
            for n in widths.clone() {
                for &(m, k) in &[(1, 300), (2, 1100), (7, 600)] {
                    let (x, w, b) = data(m, k, n);
                    let kv = MatRef::from_slice(&w, k, n).unwrap();
                    let xv = MatRef::from_slice(&x, m, k).unwrap();
                    for bias in [Some(&b[..]), None] {
                        let mut p =
                            PackedKernel::new_for(isa, Some(1 << 20), kv, bias, false).unwrap();
                        for direct in [false, true] {
                            p.direct_avx512 = direct;
                            p.l1d_ways = 16;
                            let act = [Activation::Relu, Activation::Linear][n % 2];
                            {
                                let mut out = Vec::with_capacity(m * n);
                                out.resize(m * n, f32::NAN);
                                run(xv, &p, act, &mut out).unwrap();
                                crate::reference::check_dense(xv, kv, bias, act, &out)
                                    .unwrap_or_else(|e| {
                                        panic!("{isa:?} {m}x{k}x{n} direct {direct}: {e}")
                                    });
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn clones_keep_their_panels_64_byte_aligned_and_their_results() {
        for isa in isas() {
            let (m, k, n) = (5, 300, 70);
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let p = PackedKernel::new_for(isa, Some(1 << 20), kv, Some(&b), true).unwrap();
            let mut want = vec![f32::NAN; m * n];
            run(xv, &p, Activation::Gelu, &mut want).unwrap();
            // Clones of clones, with allocations of other sizes in between so that the
            // allocator hands out differently aligned blocks.
            let mut c = p.clone();
            let mut keep = Vec::new();
            for i in 0..16 {
                keep.push(vec![0u8; 4 * i + 4]);
                c = c.clone();
                assert_eq!(c.body().as_ptr() as usize % 64, 0, "{isa:?} clone {i}");
                assert_eq!(c.body(), p.body());
                let mut got = vec![f32::NAN; m * n];
                run(xv, &c, Activation::Gelu, &mut got).unwrap();
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{isa:?} clone {i}");
            }
        }
    }

    #[test]
    fn parts_cover_the_range_in_near_equal_pieces() {
        for len in 0..100 {
            for parts in 1..12 {
                let mut next = 0;
                for i in 0..parts {
                    let r = part(len, parts, i);
                    assert_eq!(r.start, next, "{len} in {parts}: part {i} starts");
                    assert!(r.len() == len / parts || r.len() == len / parts + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn narrow_layers_take_the_half_tile_on_a_12_way_l1d() {
        #[cfg(target_arch = "x86_64")]
        {
            let amd = |k, n, ways| Isa::Avx512.for_layer(k, n, false, ways);
            // Zen 5-like: 12 ways. Rows spread over the sets: the 12×32 half tile.
            for (k, n) in [(784, 10), (300, 1), (100, 16), (256, 8), (3000, 16)] {
                assert_eq!(amd(k, n, Some(12)), Isa::Avx512, "{k}x{n}");
            }
            // Rows 2, 4, 6 or 8 KiB apart (6 or 12 of 12 rows in one set), wider
            // layers, Zen 4's 8 ways, an unknown L1d, or Intel: as `for_units`.
            for (k, n, ways) in [
                (512, 10, Some(12)),
                (1024, 10, Some(12)),
                (1536, 10, Some(12)),
                (4096, 16, Some(12)),
                (784, 17, Some(12)),
                (784, 10, Some(8)),
                (784, 10, None),
            ] {
                assert_eq!(amd(k, n, ways), Isa::Avx512N48, "{k}x{n}, {ways:?}");
            }
            assert_eq!(Isa::Avx512.for_layer(784, 10, true, Some(12)), Isa::Avx512);
            assert_eq!(Isa::Avx2.for_layer(784, 10, false, Some(12)), Isa::Avx2);
        }
        assert_eq!(Isa::None.for_layer(784, 10, false, Some(12)), Isa::None);
    }

    #[test]
    fn layers_of_up_to_192_units_take_the_8x48_kernel_on_avx512_amd() {
        #[cfg(target_arch = "x86_64")]
        {
            for n in [0, 1, 10, 16, 17, 40, 48, 100, 144, 191, 192] {
                assert_eq!(
                    Isa::Avx512.for_units(n, false),
                    Isa::Avx512N48,
                    "N = {n}, AMD"
                );
                assert_eq!(
                    Isa::Avx512.for_units(n, true),
                    Isa::Avx512,
                    "N = {n}, Intel"
                );
            }
            for n in [193, 256, 1000, usize::MAX] {
                for intel in [false, true] {
                    assert_eq!(Isa::Avx512.for_units(n, intel), Isa::Avx512, "N = {n}");
                }
            }
        }
        for n in [1, 10, 1000] {
            for intel in [false, true] {
                assert_eq!(Isa::None.for_units(n, intel), Isa::None);
                #[cfg(target_arch = "x86_64")]
                assert_eq!(Isa::Avx2.for_units(n, intel), Isa::Avx2);
            }
        }
    }

    #[test]
    fn every_tile_shape_gives_the_same_bits() {
        // The kernels differ in tile shape and register width, not in the order of any
        // output's K-sum (bias, then p = 0, 1, … one FMA each, k blocks added in turn),
        // so for the in-register activations every packing, packed or read in place,
        // gives the same bits.
        let tiles: Vec<Isa> = isas().into_iter().filter(|&i| i != Isa::None).collect();
        // Widths whose last 48-column panel holds 4, 16, 24, 32, 48, 40 and 1 columns:
        // every vector count of the 8×48 kernel, with and without its 8-column tail.
        for &(m, k, n) in &[
            (37, 300, 100),
            (11, 333, 72),
            (21, 700, 64),
            (13, 1300, 80),
            (9, 2100, 48),
            (100, 784, 40),
            (8, 512, 193),
        ] {
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            for act in [Activation::Linear, Activation::Relu] {
                let mut first: Option<(Isa, Vec<u32>)> = None;
                for &isa in &tiles {
                    for direct in [false, true] {
                        let mut p =
                            PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                                .unwrap();
                        p.direct_avx512 = direct;
                        p.l1d_ways = 16;
                        let mut out = vec![f32::NAN; m * n];
                        run(xv, &p, act, &mut out).unwrap();
                        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                        match &first {
                            None => first = Some((isa, bits)),
                            Some((isa0, bits0)) => assert!(
                                *bits0 == bits,
                                "{m}x{k}x{n} {act}: {isa:?} (direct {direct}) vs {isa0:?}"
                            ),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pieces_of_up_to_36_rows_run_as_one_block_on_the_12x32_kernel() {
        for rows in 1..=MC_ONE {
            assert_eq!(
                rows.div_ceil(block_rows(Isa::Avx512, rows, MC)),
                1,
                "{rows}"
            );
            // The short-sum and large-L2 blockings too.
            assert_eq!(
                rows.div_ceil(block_rows(Isa::Avx512, rows, 12)),
                1,
                "{rows}"
            );
            assert_eq!(block_rows(Isa::Avx512, rows, MC_L2), MC_L2);
        }
        for rows in [MC_ONE + 1, 64, 1000] {
            assert_eq!(block_rows(Isa::Avx512, rows, MC), MC);
            assert_eq!(block_rows(Isa::Avx512, rows, 12), 12);
        }
        for isa in [Isa::Avx512N48, Isa::Avx2, Isa::None] {
            for rows in [1, 25, 32, MC_ONE, 100] {
                assert_eq!(block_rows(isa, rows, MC), MC, "{isa:?} {rows}");
            }
        }
        // Every row block's tiles fit the buffer, for any blocking and tile height.
        for (mc, kc) in [(MC, KC), (12, KC), (MC_L2, KC_L2)] {
            for isa in isas().into_iter().filter(|&i| i != Isa::None) {
                let mr = isa.tile().0;
                for rows in 1..=200 {
                    let b = block_rows(isa, rows, mc);
                    let blocks = rows.div_ceil(b);
                    let tallest = part(rows, blocks, 0).len();
                    assert!(tallest.div_ceil(mr) * mr * kc <= A_BLOCK, "{isa:?} {rows}");
                }
            }
        }
    }

    #[test]
    fn calls_split_by_rows_where_row_tiles_share_out_more_evenly() {
        // m ≥ n: rows.
        assert!(splits_by_rows(Isa::Avx512, 128, 100, 2));
        // Three 48-column panels on two threads: 2 + 1; six 8-row tiles: 3 + 3.
        assert!(splits_by_rows(Isa::Avx512N48, 48, 128, 2));
        assert!(splits_by_rows(Isa::Avx512N48, 36, 128, 2));
        // Three tiles against three panels: as even, panels stay.
        assert!(!splits_by_rows(Isa::Avx512N48, 24, 128, 2));
        // Two panels, or eight: even either way.
        assert!(!splits_by_rows(Isa::Avx512N48, 48, 96, 2));
        assert!(!splits_by_rows(Isa::Avx512, 24, 256, 2));
        // Wide layers keep the panel split; one thread never splits at all.
        assert!(!splits_by_rows(Isa::Avx512, 100, 1000, 2));
        assert!(!splits_by_rows(Isa::Avx512, 512, 1024, 16));
        assert!(!splits_by_rows(Isa::Avx512N48, 48, 128, 1));
    }

    #[test]
    fn the_input_block_buffer_holds_every_row_block() {
        // `piece` sizes its scratch request by `input_block_floats`: every row block's
        // tiles by every `k` block fit it, and it never exceeds the largest buffer.
        for isa in isas().into_iter().filter(|&i| i != Isa::None) {
            let mr = isa.tile().0;
            for l2 in [Some(1 << 20), Some(2 << 20), None] {
                for k in [1, 15, 16, 64, 100, 511, 512, 1024, 1025, 2049, 3000] {
                    let w = vec![0.5f32; k * 40];
                    let kv = MatRef::from_slice(&w, k, 40).unwrap();
                    let p = PackedKernel::new_for(isa, l2, kv, None, true).unwrap();
                    for rows in 1..=120 {
                        let need = input_block_floats(&p, rows);
                        assert!(need <= A_BLOCK, "{isa:?} k={k} rows={rows}: {need}");
                        let blocks = rows.div_ceil(block_rows(isa, rows, p.mc));
                        let mut largest = 0;
                        for rb in 0..blocks {
                            let tiles = part(rows, blocks, rb).len().div_ceil(mr);
                            for ks in k_blocks(k, p.kc_max) {
                                largest = largest.max(tiles * mr * ks.len());
                            }
                        }
                        // Enough, and no more than the tallest block needs.
                        assert_eq!(largest, need, "{isa:?} k={k} rows={rows}");
                    }
                }
            }
        }
    }

    #[test]
    fn one_block_or_several_give_the_same_bits() {
        // 25..36 rows run as one block on the 12×32 kernel; the same rows inside a
        // taller batch run in blocks of 24. Sums of two k blocks and a ragged last panel.
        for isa in isas().into_iter().filter(|&i| i != Isa::None) {
            for &(m, k, n) in &[(25, 1100, 70), (32, 300, 100), (36, 2100, 33)] {
                let tall = 2 * m + 3;
                // Inexact values, so that a change in any sum's order would show.
                let wave = |len: usize, f: f32| -> Vec<f32> {
                    (0..len).map(|i| (i as f32 * f).sin()).collect()
                };
                let (x, w, b) = (wave(tall * k, 0.37), wave(k * n, 0.71), wave(n, 1.3));
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let p = PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                    .unwrap();
                for act in [Activation::Relu, Activation::Gelu] {
                    let mut all = vec![f32::NAN; tall * n];
                    run(MatRef::from_slice(&x, tall, k).unwrap(), &p, act, &mut all).unwrap();
                    let xv = MatRef::from_slice(&x[..m * k], m, k).unwrap();
                    let mut few = vec![f32::NAN; m * n];
                    run(xv, &p, act, &mut few).unwrap();
                    let same = few
                        .iter()
                        .zip(&all[..m * n])
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa:?} {m}x{k}x{n} {act}");
                    crate::reference::check_dense(xv, kv, Some(&b), act, &few)
                        .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
                }
            }
        }
    }

    #[test]
    fn k_blocks_cut_k_into_near_equal_blocks_of_at_most_kc_at_k_block_multiples() {
        for kc in [KC, KC_L2] {
            for k in [0, 1, 255, 257, kc - 1, kc, kc + 1, 2 * kc + 1, 1100, 5000] {
                let blocks: Vec<_> = k_blocks(k, kc).collect();
                assert_eq!(blocks.len(), k.div_ceil(kc), "K = {k}");
                let mut next = 0;
                for b in &blocks {
                    assert_eq!(b.start, next, "K = {k}");
                    assert!(!b.is_empty() && b.len() <= kc, "K = {k}: {b:?}");
                    assert!(b.start.is_multiple_of(K_BLOCK), "K = {k}: {b:?}");
                    next = b.end;
                }
                assert_eq!(next, k);
            }
        }
        let lens: Vec<usize> = k_blocks(KC + 76, KC).map(|b| b.len()).collect();
        assert_eq!(lens, [768, 332]);
        let lens: Vec<usize> = k_blocks(1100, KC_L2).map(|b| b.len()).collect();
        assert_eq!(lens, [512, 512, 76]);
    }

    #[test]
    fn chunks_narrow_only_where_a_large_l2_holds_them() {
        let mib = 1usize << 20;
        for (k, l2, nc) in [
            (1024, Some(2 * mib), 256),
            (2048, Some(2 * mib), 256),
            (512, Some(2 * mib), 512),
            (256, Some(2 * mib), 1024),
            (1024, Some(4 * mib), 512),
            (4096, Some(2 * mib), 256),
            (1024, Some(mib), 1024),
            (1024, None, 1024),
            (0, Some(2 * mib), 1024),
            (usize::MAX, Some(2 * mib), 256),
        ] {
            let got = chunk_cols(k, KC, l2);
            assert_eq!(got, nc, "K = {k}, L2 = {l2:?}");
            // Chunks start at multiples of the chunk width, which must be whole panels.
            assert_eq!(got % 32, 0);
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")] // the tile heights exist only there
    fn wide_pieces_read_in_place_only_for_long_sums() {
        // A Zen 4-like core: 8-way L1d, 1 MiB of L2 (half of it for in-place inputs).
        let pack = |isa: Isa, k: usize, n: usize| {
            let w = vec![0.5f32; k * n];
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let mut p = PackedKernel::new_for(isa, Some(1 << 20), kv, None, false).unwrap();
            p.direct_avx512 = true;
            p.l1d_ways = 8;
            p.direct_input_bytes = 1 << 19;
            p
        };
        let p = pack(Isa::Avx512, 100, 1000);
        // Rows 400 bytes apart, 2 to an L1 set: narrow pieces read in place, but the
        // whole 1000 columns (32 panels) of a 100-long sum pack.
        assert!(reads_in_place(&p, 256, 4 * 32, 100, 1, false));
        assert!(!reads_in_place(&p, 256, 1000, 100, 1, false));
        // K = 784 (rows 3136 bytes apart, no two in one set): wide pieces read in place
        // while the input fits in the budget, and never for strided columns.
        let p = pack(Isa::Avx512, 784, 256);
        assert!(reads_in_place(&p, 128, 256, 784, 1, false));
        assert!(!reads_in_place(&p, 256, 256, 784, 1, false));
        assert!(!reads_in_place(&p, 128, 256, 784, 2, false));
        // The 8×48 kernel: up to four panels, whatever K.
        let p = pack(Isa::Avx512N48, 16, 192);
        assert!(reads_in_place(&p, 4096, 192, 16, 1, false));
        assert!(!reads_in_place(&p, 4096, 193, 16, 1, false));
        // A 12-way L1d (Zen 5, the Xeons): narrow pieces read in place even 4 KiB
        // apart; wide ones only with their rows spread over the sets (K = 784, not
        // K = 512: rows 2 KiB apart, 6 of 12 in one set).
        let zen5 = |k: usize, n: usize| {
            let mut p = pack(Isa::Avx512, k, n);
            p.l1d_ways = 12;
            p
        };
        assert!(reads_in_place(&zen5(1024, 128), 256, 128, 1024, 1, false));
        assert!(reads_in_place(&zen5(784, 256), 128, 256, 784, 1, false));
        assert!(!reads_in_place(&zen5(512, 1024), 64, 1024, 512, 1, false));
        assert!(reads_in_place(&zen5(512, 128), 64, 128, 512, 1, false));
        // Wide pieces whose row tiles have 12 rows pack, except on Intel; 11-row tiles
        // read in place; narrow pieces read in place either way.
        let mut p = zen5(1000, 4000);
        p.direct_input_bytes = 1 << 20;
        p.intel = false;
        for (rows, tallest) in [(24, 12), (36, 12), (48, 12), (12, 12), (35, 12)] {
            assert_eq!(tallest_tile(&p, rows), tallest, "{rows}");
            assert!(!reads_in_place(&p, rows, 4000, 1000, 1, false), "{rows}");
            assert!(reads_in_place(&p, rows, 128, 1000, 1, false), "{rows}");
        }
        for (rows, tallest) in [(11, 11), (32, 11), (60, 10), (128, 11), (1, 1)] {
            assert_eq!(tallest_tile(&p, rows), tallest, "{rows}");
            assert!(reads_in_place(&p, rows, 4000, 1000, 1, false), "{rows}");
        }
        // Narrow pieces of 12-row tiles whose rows another piece reads too (a call
        // split by columns) pack; of 11-row tiles they still read in place.
        assert!(!reads_in_place(&p, 24, 128, 1000, 1, true));
        assert!(reads_in_place(&p, 22, 128, 1000, 1, true));
        p.intel = true;
        assert!(reads_in_place(&p, 24, 4000, 1000, 1, false));
        assert!(reads_in_place(&p, 48, 4000, 1000, 1, false));
        assert!(reads_in_place(&p, 24, 128, 1000, 1, true));
    }

    #[test]
    fn rows_a_multiple_of_4_kib_apart_share_one_l1_set() {
        // 4 KiB apart: every row in set 0; 2 KiB: two sets; 1 KiB: four; a stride of
        // 49 lines (odd) sends 12 rows to 12 sets.
        assert_eq!(rows_per_l1_set(1024, 12), 12);
        assert_eq!(rows_per_l1_set(2048, 5), 5);
        assert_eq!(rows_per_l1_set(512, 12), 6);
        assert_eq!(rows_per_l1_set(512, 4), 2);
        assert_eq!(rows_per_l1_set(256, 12), 3);
        assert_eq!(rows_per_l1_set(784, 12), 1);
        // Rows 8 floats apart: two to a 64-byte line, so six lines hold twelve rows.
        assert_eq!(rows_per_l1_set(8, 12), 2);
        assert_eq!(rows_per_l1_set(1024, 0), 0);
    }

    #[test]
    fn reading_the_input_in_place_changes_no_bit() {
        // Input rows 3 floats longer than K (a strided view), pieces of 1 to 5 panels
        // (5 > DIRECT_PANELS: packed either way), every tile shape, 1 to 70 rows.
        for isa in isas().into_iter().filter(|&i| i != Isa::None) {
            for &(m, k, n) in &[(70, 300, 100), (13, 257, 33), (5, 40, 17), (30, 1024, 160)] {
                let ld = k + 3;
                let (x, w, b) = data(m, ld, n);
                let xv = MatRef::from_strided(&x, m, k, ld, 1).unwrap();
                let kv = MatRef::from_slice(&w[..k * n], k, n).unwrap();
                let mut p = PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                    .unwrap();
                let mut outs = Vec::new();
                for direct in [false, true] {
                    p.direct_avx512 = direct;
                    let mut out = vec![f32::NAN; m * n];
                    run(xv, &p, Activation::Relu, &mut out).unwrap();
                    crate::reference::check_dense(xv, kv, Some(&b), Activation::Relu, &out)
                        .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} direct {direct}: {e}"));
                    outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                }
                assert!(outs[0] == outs[1], "{isa:?} {m}x{k}x{n}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")] // the tile heights exist only there
    fn the_blocking_follows_the_l2() {
        let mib = 1usize << 20;
        for (l2, want) in [
            (None, (KC, MC)),
            (Some(mib), (KC, MC)),
            (Some(2 * mib - 1), (KC, MC)),
            (Some(2 * mib), (KC_L2, MC_L2)),
            (Some(usize::MAX), (KC_L2, MC_L2)),
        ] {
            for isa in [Isa::Avx512, Isa::Avx512N48, Isa::Avx2, Isa::None] {
                assert_eq!(blocking(l2, isa, 1024), want, "L2 = {l2:?}, {isa:?}");
            }
        }
        // Short sums on the 12×32 kernel with the small-L2 blocking: one-tile row blocks.
        for k in [64, 100, 511] {
            assert_eq!(blocking(Some(mib), Isa::Avx512, k), (KC, 12), "K = {k}");
            assert_eq!(blocking(Some(mib), Isa::Avx512N48, k), (KC, MC), "K = {k}");
            assert_eq!(blocking(Some(2 * mib), Isa::Avx512, k), (KC_L2, MC_L2));
        }
        for k in [0, 63, 512] {
            assert_eq!(blocking(Some(mib), Isa::Avx512, k), (KC, MC), "K = {k}");
        }
    }

    #[test]
    fn either_blocking_matches_the_reference() {
        // K = 1100: two k blocks (768 + 332) with KC = 1024, three (512 + 512 + 76) with KC_L2 = 512; M = 50:
        // row blocks of 17, 17, 16 (MC = 24) or 25, 25 (MC_L2 = 48), tiles of 9, 8, 8.
        let mib = 1usize << 20;
        for isa in isas() {
            for l2 in [None, Some(2 * mib)] {
                for &(m, k, n) in &[
                    (50, 1100, 70),
                    (97, 513, 33),
                    (48, 512, 64),
                    (1, 1025, 40),
                    (50, 200, 70),
                ] {
                    let (x, w, b) = data(m, k, n);
                    let kv = MatRef::from_slice(&w, k, n).unwrap();
                    let xv = MatRef::from_slice(&x, m, k).unwrap();
                    let p = PackedKernel::new_for(isa, l2, kv, Some(&b), true).unwrap();
                    assert_eq!((p.kc_max, p.mc), blocking(l2, isa, k));
                    for act in [Activation::Relu, Activation::Gelu] {
                        let mut out = vec![f32::NAN; m * n];
                        run(xv, &p, act, &mut out).unwrap();
                        crate::reference::check_dense(xv, kv, Some(&b), act, &out)
                            .unwrap_or_else(|e| panic!("{isa:?} {l2:?} {m}x{k}x{n} {act}: {e}"));
                    }
                }
            }
        }
    }

    #[test]
    fn only_large_outputs_with_rows_4_kib_apart_prefetch_their_rows() {
        let mib = 1 << 20;
        // 1024³ (4 MiB, rows 4 KiB apart) and 256×1024×4096 (16 KiB) on a 1 MiB L2.
        assert!(prefetches_output(4 * mib, 4096, mib));
        assert!(prefetches_output(4 * mib, 16384, mib));
        // Rows spread over the L1 sets (N = 1000, 1536), however large the output.
        assert!(!prefetches_output(4 * mib, 4000, mib));
        assert!(!prefetches_output(64 * mib, 6144, mib));
        // Outputs the L2 holds: 256×1024² is exactly 1 MiB.
        assert!(!prefetches_output(mib, 4096, mib));
        assert!(prefetches_output(mib + 4096, 4096, mib));
        assert!(!prefetches_output(2 * mib, 4096, 2 * mib));
        // An unknown L2 counts as 1 MiB.
        assert!(!prefetches_output(mib, 4096, 0));
        assert!(prefetches_output(2 * mib, 4096, 0));
    }

    #[test]
    fn prefetching_the_output_changes_no_bit() {
        // Rows 4 KiB (8 KiB) apart; the output is over a 64 KiB L2 (prefetched) and
        // under a 1 GiB one (not); either L2 is under 2 MiB, so the blocking is the same.
        for isa in isas() {
            for &(m, k, n) in &[(70, 40, 1024), (13, 300, 2048)] {
                let (x, w, b) = data(m, k, n);
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                let out_bytes = m * n * 4;
                let (small, large) = (64 << 10, 1 << 30);
                assert!(prefetches_output(out_bytes, n * 4, small));
                assert!(!prefetches_output(out_bytes, n * 4, large));
                let pa = PackedKernel::new_for(isa, Some(small), kv, Some(&b), true).unwrap();
                let pb = PackedKernel::new_for(isa, Some(large), kv, Some(&b), true).unwrap();
                for act in [Activation::Relu, Activation::Gelu] {
                    let (mut ya, mut yb) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                    run(xv, &pa, act, &mut ya).unwrap();
                    run(xv, &pb, act, &mut yb).unwrap();
                    crate::reference::check_dense(xv, kv, Some(&b), act, &ya)
                        .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
                    let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&ya), bits(&yb), "{isa:?} {m}x{k}x{n} {act}");
                }
            }
        }
    }

    #[test]
    fn the_chunk_width_does_not_change_a_bit() {
        for isa in isas() {
            let (m, k, n) = (30, 300, 700);
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let mut p =
                PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true).unwrap();
            let mut outs = Vec::new();
            for nc in [NC, 256, 64] {
                p.nc = nc;
                let mut out = vec![f32::NAN; m * n];
                run(xv, &p, Activation::Gelu, &mut out).unwrap();
                outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
            assert!(outs[0] == outs[1] && outs[0] == outs[2], "{isa:?}");
            let out: Vec<f32> = outs[0].iter().map(|&v| f32::from_bits(v)).collect();
            crate::reference::check_dense(xv, kv, Some(&b), Activation::Gelu, &out)
                .unwrap_or_else(|e| panic!("{isa:?}: {e}"));
        }
    }

    /// Gelu and sigmoid on output rows 8 KiB apart run tile by tile: the same bits as
    /// the linear result with the activation applied afterwards, for several row
    /// tiles, one row (the 4-panel kernel), and sums of two `k` blocks.
    #[test]
    fn the_tile_epilogue_changes_no_bit() {
        for isa in isas() {
            let avx512 = isa != Isa::None && isa != Isa::Avx2;
            assert_eq!(epilogue_per_tile(isa, Activation::Gelu, 2048), avx512);
            assert_eq!(epilogue_per_tile(isa, Activation::Sigmoid, 4096), avx512);
            assert!(!epilogue_per_tile(isa, Activation::Gelu, 2000));
            assert!(!epilogue_per_tile(isa, Activation::Tanh, 2048));
            assert!(!epilogue_per_tile(isa, Activation::Gelu, usize::MAX / 2));
            for (m, k, n) in [(13, 40, 2048), (1, 40, 2048), (7, 1100, 2048)] {
                let (x, w, b) = data(m, k, n);
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                let p = PackedKernel::new_for(isa, Some(1 << 20), kv, Some(&b), true).unwrap();
                let mut linear = vec![f32::NAN; m * n];
                run(xv, &p, Activation::Linear, &mut linear).unwrap();
                for act in [Activation::Gelu, Activation::Sigmoid] {
                    // The tile pass runs the AVX-512 kernels (the packings that take it
                    // run only where they are dispatched); the block pass the
                    // dispatched path, which a test run may have forced elsewhere.
                    let path = if avx512 {
                        SimdPath::Avx512
                    } else {
                        crate::simd_path()
                    };
                    let mut want = linear.clone();
                    assert!(crate::simd::apply_activation_on(path, act, &mut want, n));
                    let mut got = vec![f32::NAN; m * n];
                    run(xv, &p, act, &mut got).unwrap();
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa:?} {m}x{k}x{n} {act}");
                }
            }
        }
    }

    #[test]
    fn every_isa_matches_the_reference() {
        use crate::reference::check_dense;
        for isa in isas() {
            for &(m, k, n) in &[
                (1, 1, 1),
                (13, 257, 33),
                (5, 2100, 20),
                (25, 3, 65),
                (7, 0, 5),
                (121, 40, 17),
            ] {
                let (x, w, b) = data(m, k, n);
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                for act in [
                    Activation::Linear,
                    Activation::Relu,
                    Activation::Sigmoid,
                    Activation::Softmax,
                ] {
                    let p = PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                        .unwrap();
                    let mut out = vec![f32::NAN; m * n];
                    run(xv, &p, act, &mut out).unwrap();
                    check_dense(xv, kv, Some(&b), act, &out)
                        .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
                }
            }
        }
    }
}
