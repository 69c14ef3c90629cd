//! The computational paths `dense_forward` chooses between, and the one driver that runs
//! any of them over blocks of the output, on the caller's rayon pool.
//!
//! - **tiny**: problems too small to pay for packing or threads run inline on the
//!   caller's thread with the skinny microkernel.
//! - **skinny** (GEMV, small `M`): the weight streamed once ([`crate::simd`]'s `axpy`
//!   kernel; a weight in another layout packed into its layout a few columns at a
//!   time, in a reused thread-local buffer); threads split the columns.
//! - **gemm**: matrixmultiply's packed GEMM; threads split rows or columns.
//! - **packed per call** (`f32` narrow layers, see [`PACK_MAX_N_NARROW`] and
//!   [`PACK_MIN_M_48`]): the weight
//!   packed for this one call and run on the prepared path ([`packed`]).
//!
//! Every path sums `K` in the crate's one order ([`crate::simd::K_BLOCK`]): blocks of
//! 256 steps, each from zero, the first block's sum added to the bias and later ones to
//! the running total (the GEMM from a bias-filled output with `β = 1`, matrixmultiply's
//! own `kc` being 256; the skinny and packed kernels adding the bias as they store the
//! first block; other weight layouts packed into the axpy kernel's first, so every
//! layout gives the same bits). The element-wise activation then runs on each thread's own block while
//! it is still in cache (row-wise ones, softmax & co., once the whole rows exist). Threads never split
//! `K`, and the path depends on the shape and layout only, never on the thread count,
//! so results are bitwise identical for any pool size.

pub(crate) mod block;
pub(crate) mod gemm;
pub(crate) mod packed;
pub(crate) mod scratch;
pub(crate) mod skinny;

use crate::matrix::MatRef;
use crate::parallel;
use crate::{Activation, DenseError, Element};
use block::SharedOut;

/// Which path computes the product (a testing and benchmarking override; the default,
/// [`ForwardPath::Auto`], chooses from the shape).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardPath {
    /// Chosen from the shape and layout ([`choose`]).
    Auto,
    /// Inline on the caller's thread, no packing.
    Tiny,
    /// The skinny (GEMV) kernels, threads over columns.
    Skinny,
    /// matrixmultiply's GEMM, threads over rows or columns.
    Gemm,
}

/// Up to this many multiply-adds (`M·K·N`), a call runs inline on the caller's thread:
/// 32×4×7 is ~900, and a rayon hand-off alone costs about as much as 20 000 here.
pub(crate) const TINY_MAX_MACS: usize = 1 << 14;

/// Up to this many rows, the skinny kernels beat matrixmultiply at any weight size:
/// they read the weight once and pack nothing, while sgemm packs all of `K×N` per call.
pub(crate) const SKINNY_MAX_M: usize = 16;

/// Up to this many rows, the skinny kernels still win when the weight is too large for
/// the caches ([`SKINNY_BIG_WEIGHT`] elements or more): sgemm's packing pass then costs
/// a second trip through memory.
pub(crate) const SKINNY_MAX_M_BIG: usize = 32;

/// A weight with this many elements or more (16 MiB of `f32`) streams from memory.
pub(crate) const SKINNY_BIG_WEIGHT: usize = 1 << 22;

// Measured (f32, one thread, AVX2, `cargo bench --bench paths`, GFLOP/s skinny vs
// sgemm): M=8, K=N=4096: 28 vs 14 (Keras layout), 33 vs 19 (PyTorch layout);
// M=16: 31 vs 18, 41 vs 34; M=32: 39 vs 27, 43 vs 37; but M=32, K=N=512: 35 vs 55.

/// The weight layouts the skinny path reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Kernel rows contiguous (`(in, units)` row-major): the axpy kernel reads it as it
    /// is.
    Rows,
    /// Kernel columns contiguous (`(units, in)` row-major seen transposed, the PyTorch
    /// layout): packed a few columns at a time for the axpy kernel, transposed in
    /// registers.
    Cols,
    /// Neither: packed the same way, element by element (tiny calls; larger ones take
    /// the GEMM, whose packing reads any strides).
    Other,
}

/// The layout of a call's weight, as the skinny path sees it.
pub(crate) fn layout<T: Element>(kernel: &MatRef<'_, T>) -> Layout {
    if kernel.cols() <= 1 || kernel.col_stride() == 1 {
        Layout::Rows
    } else if kernel.rows() <= 1 || kernel.row_stride() == 1 {
        Layout::Cols
    } else {
        Layout::Other
    }
}

/// The path for a shape: cheap, allocation-free, and independent of the thread count.
pub(crate) fn choose(m: usize, k: usize, n: usize, layout: Layout) -> ForwardPath {
    let macs = m.saturating_mul(k).saturating_mul(n);
    if macs <= TINY_MAX_MACS {
        ForwardPath::Tiny
    } else if layout != Layout::Other
        && (m <= SKINNY_MAX_M
            || (m <= SKINNY_MAX_M_BIG && k.saturating_mul(n) >= SKINNY_BIG_WEIGHT))
    {
        ForwardPath::Skinny
    } else {
        ForwardPath::Gemm
    }
}

/// Narrow layers (at most this many units, and at most [`SKINNY_BIG_WEIGHT`] weight
/// elements) with at least [`PACK_MIN_M_NARROW`] rows, on the GEMM or skinny path, run
/// the packed path on a weight packed for the call (`f32`, CPUs with the
/// microkernels): matrixmultiply and the skinny kernels compute whole register widths
/// of columns, so `N = 10` wastes most of each, while packing a `K × 16` weight costs
/// about what one row of the product does. Measured (up to 6× at 16×784×10 on Zen 4) in
/// docs/PERFORMANCE.md, "Packed per call".
pub(crate) const PACK_MAX_N_NARROW: usize = 16;
/// See [`PACK_MAX_N_NARROW`]; single rows stay on the skinny path.
pub(crate) const PACK_MIN_M_NARROW: usize = 2;
/// Layers that the packed path runs on its 8×48 tile (AMD AVX-512 CPUs, at most 192
/// units) are packed per call too from this many rows, and from
/// [`PACK_MIN_M_48_ROWS`] rows for a Keras-layout weight of at most 48 units:
/// matrixmultiply's kernel wastes columns on them too, and the skinny kernels fall
/// behind the packed tile. Below those row counts (and, in the PyTorch layout, up to
/// 16 rows) packing for one call measured slower than not packing, and wider
/// layers stay on matrixmultiply. Measured in docs/PERFORMANCE.md, "Packed per call".
pub(crate) const PACK_MIN_M_48: usize = 32;
/// See [`PACK_MIN_M_48`].
pub(crate) const PACK_MIN_M_48_ROWS: usize = 8;

/// Whether an `f32` GEMM- or skinny-path call packs its weight for the packed path
/// instead.
fn pack_per_call(m: usize, k: usize, n: usize, lay: Layout) -> bool {
    k.saturating_mul(n) <= SKINNY_BIG_WEIGHT
        && ((n <= PACK_MAX_N_NARROW && m >= PACK_MIN_M_NARROW)
            || (m >= PACK_MIN_M_48_ROWS
                && packed::takes_8x48(n)
                && (m >= PACK_MIN_M_48 || (n <= 48 && lay == Layout::Rows))))
}

/// [`run`] through a [`packed::PackedKernel`] made for this call, when `T` is `f32` and
/// the CPU has the packed microkernels; `None` (nothing written) otherwise, or if the
/// packed copy cannot be allocated.
fn run_packed_once<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: &mut [T],
) -> Option<Result<(), DenseError>> {
    fn as32<'a, T: Element>(v: MatRef<'a, T>) -> Option<MatRef<'a, f32>> {
        T::as_f32s(v.data()).and_then(|d| {
            MatRef::from_strided(d, v.rows(), v.cols(), v.row_stride(), v.col_stride()).ok()
        })
    }
    let (x, w) = (as32(input)?, as32(kernel)?);
    let b = match bias {
        Some(b) => Some(T::as_f32s(b)?),
        None => None,
    };
    let out = T::as_f32s_mut(out)?;
    if !packed::has_microkernels() {
        return None; // no copy made just to learn that
    }
    match packed::PackedKernel::for_one_call(w, b) {
        Ok(p) if p.uses_microkernels() => Some(packed::run(x, &p, act, out)),
        _ => None,
    }
}

/// The validated call: `out ← act(input·kernel + bias)` on `path` (`Auto` resolved
/// here), `out` row-major `M × N`.
///
/// # Errors
/// Only [`DenseError::ScratchAllocation`], from a narrow layer packed for the call
/// (`out` is then partly written).
pub(crate) fn run<T: Element>(
    path: ForwardPath,
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: &mut [T],
) -> Result<(), DenseError> {
    let (m, k, n) = (input.rows(), input.cols(), kernel.cols());
    if m == 0 || n == 0 {
        return Ok(());
    }
    let lay = layout(&kernel);
    let auto = path == ForwardPath::Auto;
    let path = match path {
        ForwardPath::Auto => choose(m, k, n, lay),
        p => p,
    };
    // (A forced path stays what it was asked to be.)
    if auto
        && (path == ForwardPath::Gemm || path == ForwardPath::Skinny)
        && pack_per_call(m, k, n, lay)
    {
        if let Some(done) = run_packed_once(input, kernel, bias, act, out) {
            return done;
        }
    }
    let elementwise = !act.is_row_wise() && act != Activation::Linear;
    let macs = (m as u64).saturating_mul(k as u64).saturating_mul(n as u64);
    // (pieces, split rows (else columns), alignment of a piece's start)
    let (pieces, by_rows, align) = match path {
        ForwardPath::Skinny => {
            // Weights that stay in cache: each piece takes whole row pairs and reads all
            // of the weight (measured 2 threads vs 1: 16×512×512 1.48× by rows, 0.68×
            // by columns; 8×1024×1024 1.35× vs 1.05×). Weights streamed from memory are
            // read once: each piece takes a column range (1×4096×4096: 1.45×).
            if m >= 4 && k.saturating_mul(n) < SKINNY_BIG_WEIGHT {
                (parallel::pieces(macs, m / 2), true, 2)
            } else {
                (
                    parallel::pieces(macs, n.div_ceil(skinny::COL_ALIGN)),
                    false,
                    skinny::COL_ALIGN,
                )
            }
        }
        ForwardPath::Gemm => {
            // Split the operand whose repacking is cheaper: row pieces each pack all of
            // the kernel (K·N), column pieces each pack all of the input (M·K).
            let by_rows = m >= n;
            let (len, align) = if by_rows {
                (m, gemm::ROW_ALIGN)
            } else {
                (n, gemm::COL_ALIGN)
            };
            (parallel::pieces(macs, len.div_ceil(align)), by_rows, align)
        }
        _ => (1, true, 1),
    };
    let shared = SharedOut::new(out, m, n);
    parallel::try_for_each(pieces, |p| {
        let (rows, cols) = if by_rows {
            (parallel::split(m, pieces, p, align), 0..n)
        } else {
            (0..m, parallel::split(n, pieces, p, align))
        };
        if path == ForwardPath::Gemm {
            // The piece in column chunks of matrixmultiply's own `nc` (so no extra
            // packing): each chunk's bias fill, GEMM and epilogue run back to back,
            // the chunk still in cache for the last two.
            let mut c0 = cols.start;
            while c0 < cols.end {
                let c1 = (c0 + gemm::CHUNK_COLS).min(cols.end);
                // SAFETY: `split` gives the pieces disjoint ranges of rows (or of
                // columns), and a piece's chunks are disjoint and used one at a time.
                let mut block = unsafe { shared.block(rows.clone(), c0..c1) };
                block.fill_bias(bias);
                gemm::gemm_block(input, kernel, bias.is_some(), &mut block);
                if elementwise {
                    block.apply_elementwise(act);
                }
                c0 = c1;
            }
        } else {
            // SAFETY: `split` gives the pieces disjoint ranges of rows (or of columns),
            // so no two blocks overlap.
            let mut block = unsafe { shared.block(rows, cols) };
            skinny::run_block(input, kernel, bias, lay, &mut block)?;
            if elementwise {
                block.apply_elementwise(act);
            }
        }
        Ok(())
    })?;
    if act.is_row_wise() {
        parallel::apply_rows(act, out, n, macs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_layers_pack_per_call_where_the_rule_says() {
        // The rule itself: N ≤ 16 from 2 rows everywhere; on CPUs with the 8×48 tile,
        // N ≤ 48 from 8 rows in the Keras layout, N ≤ 192 from 32 rows in any.
        let t48 = |n| packed::takes_8x48(n);
        assert!(pack_per_call(2, 784, 10, Layout::Cols));
        assert!(!pack_per_call(1, 784, 10, Layout::Rows));
        assert_eq!(pack_per_call(8, 784, 40, Layout::Rows), t48(40));
        assert!(!pack_per_call(8, 784, 40, Layout::Cols));
        assert!(!pack_per_call(7, 784, 40, Layout::Rows));
        assert!(!pack_per_call(16, 512, 100, Layout::Rows));
        assert_eq!(pack_per_call(32, 784, 40, Layout::Cols), t48(40));
        assert_eq!(pack_per_call(32, 512, 100, Layout::Rows), t48(100));
        assert!(!pack_per_call(512, 512, 193, Layout::Rows));
        assert!(
            !pack_per_call(512, 1 << 16, 100, Layout::Rows),
            "weight too big"
        );

        // And what it runs: where it packs, `dense_forward`'s result is the packed
        // path's bit for bit; everywhere, within the reference's bound.
        let values = |len: usize, seed: u32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
                .map(|v| v / (1u32 << 24) as f32 - 0.5)
                .collect()
        };
        for &(m, k, n) in &[(8, 784, 40), (33, 300, 100), (64, 257, 48), (40, 500, 192)] {
            for torch in [false, true] {
                let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                let kernel = if torch {
                    MatRef::from_slice(&w, n, k).unwrap().t()
                } else {
                    MatRef::from_slice(&w, k, n).unwrap()
                };
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                let act = Activation::Relu;
                let mut out = vec![f32::NAN; m * n];
                run(ForwardPath::Auto, xv, kernel, Some(&b), act, &mut out).unwrap();
                crate::reference::check_dense(xv, kernel, Some(&b), act, &out)
                    .unwrap_or_else(|e| panic!("{m}x{k}x{n} torch={torch}: {e}"));
                if pack_per_call(m, k, n, layout(&kernel)) && packed::has_microkernels() {
                    let p = packed::PackedKernel::new(kernel, Some(&b)).unwrap();
                    let mut want = vec![f32::NAN; m * n];
                    packed::run(xv, &p, act, &mut want).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert!(bits(&out) == bits(&want), "{m}x{k}x{n} torch={torch}");
                }
            }
        }
    }
}
