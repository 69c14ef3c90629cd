//! The computational paths `dense_forward` chooses between, and the one driver that runs
//! any of them over blocks of the output, on the caller's rayon pool.
//!
//! - **tiny**: problems too small to pay for packing or threads run inline on the
//!   caller's thread with the skinny microkernels (or a plain loop for layouts they
//!   don't take).
//! - **skinny** (GEMV, small `M`): the weight streamed once, no packing
//!   ([`crate::simd`]'s `axpy` kernel for row-contiguous weights, `dot` for
//!   column-contiguous ones); threads split the columns.
//! - **gemm**: matrixmultiply's packed GEMM; threads split rows or columns.
//!
//! Every path starts each output element from its bias (the GEMM from a bias-filled
//! output with `β = 1`, the skinny kernels by loading the bias into their first
//! accumulators) and accumulates the K-sum onto it; the
//! element-wise activation then runs on each thread's own block while it is still in
//! cache (row-wise ones, softmax & co., once the whole rows exist). Threads never split
//! `K`, and the path depends on the shape and layout only, never on the thread count,
//! so results are bitwise identical for any pool size.

pub(crate) mod block;
pub(crate) mod gemm;
pub(crate) mod skinny;

use crate::matrix::MatRef;
use crate::parallel;
use crate::{Activation, Element};
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

/// Up to this many rows, the skinny kernels beat matrixmultiply: they read the weight
/// once and pack nothing, while sgemm packs all of `K×N` per call. Measured on the
/// project's machine (AVX2, f32, `cargo bench --bench paths`): at M = 8, K = N = 4096
/// skinny ran ~1.6× sgemm, at M = 16 ~1.1×, at M = 32 sgemm led.
pub(crate) const SKINNY_MAX_M: usize = 16;

/// The weight layouts the skinny kernels take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Kernel rows contiguous (`(in, units)` row-major): the axpy kernel.
    Rows,
    /// Kernel columns contiguous and input rows contiguous (`(units, in)` row-major
    /// seen transposed, the PyTorch layout): the dot kernel.
    Cols,
    /// Neither: only the plain loop (tiny) or the GEMM.
    Other,
}

/// The layout of a call, as the skinny kernels see it.
pub(crate) fn layout<T: Element>(input: &MatRef<'_, T>, kernel: &MatRef<'_, T>) -> Layout {
    if kernel.cols() <= 1 || kernel.col_stride() == 1 {
        Layout::Rows
    } else if (kernel.rows() <= 1 || kernel.row_stride() == 1)
        && (input.cols() <= 1 || input.col_stride() == 1)
    {
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
    } else if m <= SKINNY_MAX_M && layout != Layout::Other {
        ForwardPath::Skinny
    } else {
        ForwardPath::Gemm
    }
}

/// The validated call: `out ← act(input·kernel + bias)` on `path` (`Auto` resolved
/// here), `out` row-major `M × N`.
pub(crate) fn run<T: Element>(
    path: ForwardPath,
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: &mut [T],
) {
    let (m, k, n) = (input.rows(), input.cols(), kernel.cols());
    if m == 0 || n == 0 {
        return;
    }
    let lay = layout(&input, &kernel);
    let path = match path {
        ForwardPath::Auto => choose(m, k, n, lay),
        p => p,
    };
    let elementwise = !act.is_row_wise() && act != Activation::Linear;
    let macs = (m as u64).saturating_mul(k as u64).saturating_mul(n as u64);
    // (pieces, split rows (else columns), alignment of a piece's start)
    let (pieces, by_rows, align) = match path {
        ForwardPath::Skinny => (
            parallel::pieces(macs, n.div_ceil(skinny::COL_ALIGN)),
            false,
            skinny::COL_ALIGN,
        ),
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
    parallel::for_each(pieces, |p| {
        let (rows, cols) = if by_rows {
            (parallel::split(m, pieces, p, align), 0..n)
        } else {
            (0..m, parallel::split(n, pieces, p, align))
        };
        // SAFETY: `split` gives the pieces disjoint ranges of rows (or of columns), so
        // no two blocks overlap.
        let mut block = unsafe { shared.block(rows, cols) };
        match path {
            ForwardPath::Gemm => {
                block.fill_bias(bias);
                gemm::gemm_block(input, kernel, bias.is_some(), &mut block)
            }
            _ => skinny::run_block(input, kernel, bias, lay, &mut block),
        }
        if elementwise {
            block.apply_elementwise(act);
        }
    });
    if act.is_row_wise() {
        parallel::apply_rows(act, out, n, macs);
    }
}
