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
//! The K-sum order is the crate's one order (`simd::K_BLOCK`), never the thread split's
//! (threads take whole row tiles or whole panels): results are bitwise the same for any
//! thread count, and the unpacked paths' bits, row for row. Tiny calls (`M·K·N ≤ 4096`)
//! run the unpacked paths on a row-major copy of the weight kept for small layers
//! (`K·N ≤ 4096`).
//!
//! The files: `plan` (blocking and the microkernel choice), `weights` (the packed weight),
//! `driver` (the loop nest, threads, the epilogue's place), `input` (packing the input),
//! `kernel` (calling the microkernels, which live in `simd::sgemm`), `tests`.

use super::block::{Block, SharedOut};
use crate::matrix::MatRef;
use crate::parallel;
use crate::simd::sgemm::{Init, Tile};
use crate::simd::K_BLOCK;
use crate::{Activation, DenseError, SimdPath};
use core::mem::MaybeUninit;

mod driver;
mod input;
mod kernel;
mod plan;
#[cfg(test)]
mod tests;
mod weights;

pub(crate) use driver::run;
#[cfg(feature = "internals")]
pub use kernel::microkernel_flops;
pub(crate) use kernel::{has_microkernels, takes_8x48};
pub use weights::PackedKernel;
