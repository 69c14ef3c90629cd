//! The general path: matrixmultiply's blocked GEMM with the bias fused as `beta = 1`.
//!
//! matrixmultiply computes `C ← α·A·B + β·C` for arbitrary element strides of `A` and
//! `B`, so row-major, strided and transposed views all go straight in, with no copy. The
//! output is pre-filled with the broadcast bias and the GEMM runs with `β = 1`; without
//! a bias it runs with `β = 0`, which matrixmultiply documents as "C need not be
//! initialised": whatever `out` held (NaN included) never reaches the result.

use crate::matrix::MatRef;

/// The per-type hook into matrixmultiply. Public in a private module: it seals
/// [`Element`](crate::Element) to `f32` and `f64`.
pub trait GemmOps: Sized {
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

/// `out ← input·kernel + bias` (broadcast over rows), `out` row-major `M × N` with row
/// stride `N`.
///
/// The views were validated when built (every offset they reach lies inside their
/// slices, strides fit in `isize`), and the caller checked that
/// `input.cols() == kernel.rows()`, `out.len() == M·N` and `bias.len() == N`.
pub(crate) fn gemm_bias<T: crate::Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let (m, k, n) = (input.rows(), input.cols(), kernel.cols());
    debug_assert_eq!(kernel.rows(), k);
    debug_assert_eq!(out.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    let beta = match bias {
        Some(b) => {
            debug_assert_eq!(b.len(), n);
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(b);
            }
            T::one()
        }
        None => T::zero(),
    };
    if k == 0 {
        // An empty sum: the result is the bias (already written) or zero.
        if bias.is_none() {
            out.fill(T::zero());
        }
        return;
    }
    let (rsa, csa) = input.strides_isize();
    let (rsb, csb) = kernel.strides_isize();
    // `n <= out.len() <= isize::MAX` because a slice never spans more than isize::MAX bytes.
    let rsc = n as isize;
    // SAFETY: `input` is an m×k view and `kernel` a k×n view whose every strided offset
    // was checked against their slices when the views were built, and their strides fit
    // in isize (MatRef's invariant). `out` is an exclusively borrowed slice of exactly
    // m·n elements, written row-major with strides (n, 1): distinct elements never
    // alias, and it cannot alias the shared borrows of `input`/`kernel`.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            input.as_ptr(),
            rsa,
            csa,
            kernel.as_ptr(),
            rsb,
            csb,
            beta,
            out.as_mut_ptr(),
            rsc,
            1,
        );
    }
}
