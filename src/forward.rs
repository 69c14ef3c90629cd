//! `dense_forward`: validates the call and hands it to `paths`, which picks the path
//! for the shape (tiny, skinny/GEMV or GEMM), fuses the bias and runs the activation
//! epilogue per output block.

use crate::matrix::{Mat, MatMut, MatRef};
use crate::paths::packed::PackedKernel;
use crate::paths::{self, ForwardPath};
use crate::{Activation, DenseError, Element};

/// Checks the shapes of a call and returns `(M, N)`.
pub(crate) fn check_shapes<T: Element>(
    input: &MatRef<'_, T>,
    kernel: &MatRef<'_, T>,
    bias: Option<&[T]>,
) -> Result<(usize, usize), DenseError> {
    if kernel.rows() != input.cols() {
        return Err(DenseError::InnerDimMismatch {
            input: (input.rows(), input.cols()),
            kernel: (kernel.rows(), kernel.cols()),
        });
    }
    if let Some(b) = bias {
        if b.len() != kernel.cols() {
            return Err(DenseError::BiasLength {
                len: b.len(),
                units: kernel.cols(),
            });
        }
    }
    Ok((input.rows(), kernel.cols()))
}

/// `act(input · kernel + bias)`: the Dense layer's forward pass, into a new matrix.
///
/// `input` is `(M, K)` (a batch of `M` rows of `K` features), `kernel` is `(K, N)`
/// (Keras layout `(in, units)`; pass a PyTorch `(units, in)` weight as
/// `MatRef::from_slice(w, units, in)?.t()`), `bias` has `N` values or is `None`
/// (Keras's `use_bias=False`). Any view may be strided or transposed; nothing is copied.
///
/// Zero-sized dimensions are valid: `M = 0` or `N = 0` gives an empty result, `K = 0`
/// gives `act(bias)` (or `act(0)` without a bias).
///
/// # Errors
/// [`DenseError::InnerDimMismatch`] if `kernel.rows() != input.cols()`,
/// [`DenseError::BiasLength`] if the bias length is not `N`, and
/// [`DenseError::SizeOverflow`] / [`DenseError::AllocationFailed`] if the `M × N` output
/// cannot be allocated, [`DenseError::ScratchAllocation`] if a thread's first call cannot
/// allocate its scratch buffer.
///
/// # Example
/// ```
/// use dense_kernel::{dense_forward, Activation, MatRef};
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // (M = 2, K = 3)
/// let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0]; // (K = 3, N = 2), Keras layout
/// let b = [0.5f32, -10.0];
/// let y = dense_forward(
///     MatRef::from_slice(&x, 2, 3)?,
///     MatRef::from_slice(&w, 3, 2)?,
///     Some(&b),
///     Activation::Relu,
/// )?;
/// assert_eq!(y.as_slice(), &[4.5, 0.0, 10.5, 0.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
pub fn dense_forward<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
) -> Result<Mat<T>, DenseError> {
    let (m, n) = check_shapes(&input, &kernel, bias)?;
    let mut out = Mat::try_zeros(m, n)?;
    paths::run(
        ForwardPath::Auto,
        input,
        kernel,
        bias,
        act,
        out.as_mut_slice(),
    )?;
    Ok(out)
}

/// [`dense_forward`] into a caller-provided `(M, N)` output, which it overwrites. It
/// allocates only packing buffers: matrixmultiply's, and for narrow `f32` layers (at
/// most 16 units, at least 2 rows, on CPUs with the packed microkernels) a
/// [`PackedKernel`] of the weight made for the call, whose kernel wastes less of each
/// register on so few columns.
///
/// Whatever `out` held before (NaN included) does not affect the result.
///
/// # Errors
/// As [`dense_forward`], and [`DenseError::OutputShape`] if `out` is not `(M, N)`
/// (after a [`DenseError::ScratchAllocation`], `out` is partly written).
///
/// # Example
/// ```
/// use dense_kernel::{dense_forward_into, Activation, MatMut, MatRef};
/// let x = [1.0f64, -1.0];                      // (M = 1, K = 2)
/// let w_torch = [2.0f64, 1.0, 0.0, 3.0];       // PyTorch layout (units = 2, in = 2)
/// let mut y = [f64::NAN; 2];
/// dense_forward_into(
///     MatRef::from_slice(&x, 1, 2)?,
///     MatRef::from_slice(&w_torch, 2, 2)?.t(), // (in, units) view, no copy
///     None,
///     Activation::Linear,
///     MatMut::from_slice(&mut y, 1, 2)?,
/// )?;
/// assert_eq!(y, [1.0, -3.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
pub fn dense_forward_into<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: MatMut<'_, T>,
) -> Result<(), DenseError> {
    dense_forward_into_on(ForwardPath::Auto, input, kernel, bias, act, out)
}

/// [`dense_forward_into`] on a forced path (tests and benchmarks compare the paths; the
/// public functions use [`ForwardPath::Auto`]). Any path takes any valid call.
#[doc(hidden)]
pub fn dense_forward_into_on<T: Element>(
    path: ForwardPath,
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: MatMut<'_, T>,
) -> Result<(), DenseError> {
    let (m, n) = check_shapes(&input, &kernel, bias)?;
    if (out.rows(), out.cols()) != (m, n) {
        return Err(DenseError::OutputShape {
            expected: (m, n),
            actual: (out.rows(), out.cols()),
        });
    }
    paths::run(path, input, kernel, bias, act, out.into_slice())
}

/// `act(input · W + b)` with a weight and bias packed once ([`PackedKernel`]): the
/// prepared path for a layer called many times. Writes `out` (`(M, N)`, overwritten).
/// Each thread packs the input into a 144 KiB heap buffer of its own, allocated on the
/// thread's first packed call and kept until the thread exits; after that a call
/// allocates nothing (tested with a counting allocator, `tests/no_alloc.rs`). The one
/// exception is a CPU with neither microkernel ([`PackedKernel::uses_microkernels`]
/// false), where matrixmultiply runs on a row-major copy and allocates its packing
/// buffers per call. Like every call into the crate, it needs little of its caller's
/// stack (see the crate docs, "Stack").
///
/// Runs the crate's own register-blocked AVX-512 or AVX2+FMA microkernel (chosen at run
/// time; with neither, matrixmultiply on a row-major copy), one call per block of the
/// crate's K-sum order (256 steps), the bias added to the first block's sum and relu
/// applied in registers; other element-wise activations run per `mc × nc` output block
/// while it is in L2, row-wise ones (softmax & co.) per row afterwards. Results are
/// bitwise the same for any thread count; on CPUs with FMA they are bitwise those of
/// [`dense_forward`] for a Keras-layout `(in, units)` weight (every path sums in the
/// same order, `tests/sum_order.rs`), and within the same K-sum bound otherwise.
///
/// # Errors
/// [`DenseError::InnerDimMismatch`] if `input.cols()` is not the packed kernel's
/// `in_features`, [`DenseError::OutputShape`] if `out` is not `(M, units)`,
/// [`DenseError::ScratchAllocation`] if a thread's first call cannot allocate its buffer
/// (`out` is then partly written).
pub fn dense_forward_packed(
    input: MatRef<'_, f32>,
    packed: &PackedKernel,
    act: Activation,
    out: MatMut<'_, f32>,
) -> Result<(), DenseError> {
    let (k, n) = (packed.in_features(), packed.units());
    if input.cols() != k {
        return Err(DenseError::InnerDimMismatch {
            input: (input.rows(), input.cols()),
            kernel: (k, n),
        });
    }
    if (out.rows(), out.cols()) != (input.rows(), n) {
        return Err(DenseError::OutputShape {
            expected: (input.rows(), n),
            actual: (out.rows(), out.cols()),
        });
    }
    crate::paths::packed::run(input, packed, act, out.into_slice())
}

/// `act` applied in place to a row-major buffer of rows of `cols` elements (row-wise
/// activations per row), on the caller's rayon pool: the `Activation` layer's body.
pub(crate) fn apply_activation_rows<T: Element>(act: Activation, data: &mut [T], cols: usize) {
    if act == Activation::Linear || data.is_empty() || cols == 0 {
        return;
    }
    crate::parallel::apply_rows(act, data, cols, data.len() as u64);
}
