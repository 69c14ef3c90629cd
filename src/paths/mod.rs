//! The computational paths `dense_forward` chooses between. Only the matrixmultiply GEMM
//! path exists so far; the skinny (GEMV), tiny and pre-packed paths come with their
//! issues.

pub(crate) mod gemm;
