//! The general path: matrixmultiply's blocked GEMM with the bias fused as `beta = 1`.
//!
//! matrixmultiply computes `C ← α·A·B + β·C` for arbitrary element strides of `A` and
//! `B`, so row-major, strided and transposed views all go straight in, with no copy. The
//! output block is pre-filled with the broadcast bias and the GEMM runs with `β = 1`;
//! without a bias it runs with `β = 0`, which matrixmultiply documents as "C need not
//! be initialised".

use super::block::Block;
use crate::matrix::MatRef;

/// The per-type hook into matrixmultiply. Public in a private module: it seals
/// [`Element`](crate::Element) to `f32` and `f64`.
pub trait GemmOps: Sized + super::scratch::ScratchSlot {
    /// `C ← A·B + beta·C`.
    ///
    /// # Safety
    /// `a` must be valid for reads of an `m × k` matrix with strides `(rsa, csa)`, `b` of
    /// a `k × n` matrix with `(rsb, csb)`, and `c` valid for reads and writes of an
    /// `m × n` matrix with `(rsc, csc)` whose elements alias neither each other nor
    /// `a`/`b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl GemmOps for f32 {
    #[inline]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: the caller upholds sgemm's contract, restated in `GemmOps::gemm`.
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl GemmOps for f64 {
    #[inline]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: the caller upholds dgemm's contract, restated in `GemmOps::gemm`.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// Row pieces start on multiples of this (matrixmultiply's register tiles are at most
/// 8 rows tall for f32 and f64; 32 keeps whole `mc` slabs together).
pub(crate) const ROW_ALIGN: usize = 32;

/// Column pieces start on multiples of this (whole cache lines, whole register tiles).
pub(crate) const COL_ALIGN: usize = 64;

/// The column chunk one GEMM call (and its epilogue) covers: matrixmultiply's `nc` for
/// sgemm and dgemm (1024 in 0.3.11), so chunking adds no packing of its own.
pub(crate) const CHUNK_COLS: usize = 1024;

/// `block += input[rows, :]·kernel[:, cols]` (the block already holds the bias, or
/// zeros when `has_bias` is false, in which case matrixmultiply runs with `β = 0` and
/// does not read it).
pub(crate) fn gemm_block<T: crate::Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    has_bias: bool,
    block: &mut Block<'_, T>,
) {
    let (rows, cols) = (block.rows.clone(), block.cols.clone());
    let k = input.cols();
    if rows.is_empty() || cols.is_empty() || k == 0 {
        // An empty sum: the block keeps the bias (or zeros).
        return;
    }
    let (rsa, csa) = input.strides_isize();
    let (rsb, csb) = kernel.strides_isize();
    let beta = if has_bias { T::one() } else { T::zero() };
    let rsc = block.ld() as isize;
    // SAFETY: rows.start < M and cols.start < N name elements inside the validated views
    // (every offset of which was checked against their slices, strides fitting isize).
    // The sub-views `rows × k` and `k × cols` lie inside them; the block is this piece's
    // exclusive part of the output (strides (ld, 1)), aliasing neither input (shared
    // borrows) nor another block.
    unsafe {
        T::gemm(
            rows.len(),
            k,
            cols.len(),
            input.as_ptr().offset(rows.start as isize * rsa),
            rsa,
            csa,
            kernel.as_ptr().offset(cols.start as isize * csb),
            rsb,
            csb,
            beta,
            block.as_mut_ptr(),
            rsc,
            1,
        );
    }
}
