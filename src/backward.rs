//! The Dense layer's backward pass at the kernel level: a forward that keeps the
//! pre-activation, and the gradients `dz`, `dx`, `dW`, `db` from `dy`.
//!
//! The two products run through the forward's paths (`dx = dz·Wᵀ` is a forward call
//! with the transposed kernel, `dW = xᵀ·dz` one with the transposed input), so they sum
//! in its one K-sum order and split only rows or columns across threads: gradients are
//! bitwise the same for any thread count. `db` sums `dz` down each column in row order,
//! in `f64`.

use crate::activation::grad::{elementwise, vjp_elementwise, vjp_row, Grad};
use crate::forward::check_shapes;
use crate::{
    dense_forward_into, dense_forward_packed, Activation, DenseError, Element, MatMut, MatRef,
    PackedKernel,
};

/// Where [`dense_backward`] writes the gradients (caller-owned buffers, all row-major):
/// `dL/dz` `(M, N)`, `dL/dx` `(M, K)` if wanted (a first layer does not need it),
/// `dL/dW` `(K, N)` in Keras layout, and `dL/db` `(N)` if the layer has a bias.
pub struct Gradients<'a, T> {
    /// `dL/dz = dL/dy ⊙ act'(z)` (the row-wise activations' Jacobian-vector products).
    pub pre_activation: MatMut<'a, T>,
    /// `dL/dx = dL/dz · Wᵀ`, if wanted.
    pub input: Option<MatMut<'a, T>>,
    /// `dL/dW = xᵀ · dL/dz`, `(in, units)`.
    pub kernel: MatMut<'a, T>,
    /// `dL/db = Σ_rows dL/dz`, if the layer has a bias.
    pub bias: Option<&'a mut [T]>,
}

fn shape_is(expected: (usize, usize), rows: usize, cols: usize) -> Result<(), DenseError> {
    if (rows, cols) == expected {
        Ok(())
    } else {
        Err(DenseError::OutputShape {
            expected,
            actual: (rows, cols),
        })
    }
}

/// The forward pass that keeps what [`dense_backward`] needs: writes the
/// pre-activation `z = input · kernel + bias` and the output `y = act(z)` (both
/// `(M, N)`) into caller buffers, allocating nothing for element-wise activations.
/// `z` is [`dense_forward_into`]'s linear result, bit for bit; `y` is `act` applied to
/// it by the same element-wise kernels.
///
/// ```
/// use dense_kernel::{dense_forward_train, Activation, MatMut, MatRef};
/// let x = [1.0f32, -2.0];
/// let w = [0.5f32, 1.0, 1.0, 0.25]; // (in = 2, units = 2)
/// let (mut z, mut y) = ([0.0f32; 2], [0.0f32; 2]);
/// dense_forward_train(
///     MatRef::from_slice(&x, 1, 2)?,
///     MatRef::from_slice(&w, 2, 2)?,
///     None,
///     Activation::Relu,
///     MatMut::from_slice(&mut z, 1, 2)?,
///     MatMut::from_slice(&mut y, 1, 2)?,
/// )?;
/// assert_eq!((z, y), ([-1.5, 0.5], [0.0, 0.5]));
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
///
/// # Errors
/// Those of [`dense_forward_into`], for either output.
pub fn dense_forward_train<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    pre_activation: MatMut<'_, T>,
    output: MatMut<'_, T>,
) -> Result<(), DenseError> {
    let (m, n) = check_shapes(&input, &kernel, bias)?;
    shape_is((m, n), pre_activation.rows(), pre_activation.cols())?;
    shape_is((m, n), output.rows(), output.cols())?;
    let z = pre_activation.into_slice();
    dense_forward_into(
        input,
        kernel,
        bias,
        Activation::Linear,
        MatMut::from_slice(z, m, n)?,
    )?;
    let y = output.into_slice();
    let len = m * n; // both buffers hold (m, n), checked above
    y[..len].copy_from_slice(&z[..len]);
    if n > 0 && act != Activation::Linear {
        crate::simd::apply(act.params_as::<T>(), &mut y[..len], n);
    }
    Ok(())
}

/// The Dense layer's backward pass: from the input `x` `(M, K)`, the kernel `W`
/// `(K, N)` (a PyTorch `(units, in)` weight as `.t()`), the activation, the
/// pre-activation `z` `(M, N)` the forward kept ([`dense_forward_train`]) and `dL/dy`
/// `(M, N)`, writes `dL/dz`, `dL/dx` (if asked), `dL/dW` and `dL/db` (if asked) into
/// `grads`.
///
/// Derivatives follow Keras 3 (jax) at kinks (`relu'(0) = 0`, `leaky_relu'(0) = 1`,
/// ties of `max`/`clip` split in halves) and give exact zeros where jax selects a
/// branch away; docs/ACCURACY.md ("Backward") lists them and the departures. Each
/// `dz` is computed in `f64` and rounded once; the products are the forward's GEMM
/// paths, bitwise the same for any thread count.
///
/// ```
/// use dense_kernel::{dense_backward, Activation, Gradients, MatMut, MatRef};
/// let x = [1.0f32, 2.0];                // (M = 1, K = 2)
/// let w = [1.0f32, -1.0, 0.5, 1.0];     // (K = 2, N = 2)
/// let z = [2.0f32, 1.0];                // x·W, both > 0: relu passes dy
/// let dy = [1.0f32, 3.0];
/// let (mut dz, mut dx, mut dw, mut db) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 4], [0.0f32; 2]);
/// dense_backward(
///     MatRef::from_slice(&x, 1, 2)?,
///     MatRef::from_slice(&w, 2, 2)?,
///     Activation::Relu,
///     MatRef::from_slice(&z, 1, 2)?,
///     MatRef::from_slice(&dy, 1, 2)?,
///     Gradients {
///         pre_activation: MatMut::from_slice(&mut dz, 1, 2)?,
///         input: Some(MatMut::from_slice(&mut dx, 1, 2)?),
///         kernel: MatMut::from_slice(&mut dw, 2, 2)?,
///         bias: Some(&mut db),
///     },
/// )?;
/// assert_eq!(dz, [1.0, 3.0]);
/// assert_eq!(dx, [1.0 - 3.0, 0.5 + 3.0]);    // dz·Wᵀ
/// assert_eq!(dw, [1.0, 3.0, 2.0, 6.0]);      // xᵀ·dz
/// assert_eq!(db, [1.0, 3.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
///
/// # Errors
/// [`DenseError::InnerDimMismatch`] if `x` and `W` do not chain;
/// [`DenseError::OutputShape`] if `z`, `dL/dy` or a gradient buffer has another shape
/// than the one `x` and `W` imply; [`DenseError::BiasLength`] for a bias gradient not
/// of `N` elements.
pub fn dense_backward<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    act: Activation,
    pre_activation: MatRef<'_, T>,
    grad_output: MatRef<'_, T>,
    grads: Gradients<'_, T>,
) -> Result<(), DenseError> {
    dense_backward_with(
        input,
        kernel,
        act,
        pre_activation,
        grad_output,
        grads,
        &mut Vec::new(),
    )
}

/// [`dense_backward`] with the row-wise activations' `f64` workspace supplied (grown
/// once, then reused: the layer API's training steps allocate nothing).
pub(crate) fn dense_backward_with<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    act: Activation,
    pre_activation: MatRef<'_, T>,
    grad_output: MatRef<'_, T>,
    grads: Gradients<'_, T>,
    scratch: &mut Vec<f64>,
) -> Result<(), DenseError> {
    let (m, n) = check_shapes(&input, &kernel, None)?;
    let k = input.cols();
    shape_is((m, n), pre_activation.rows(), pre_activation.cols())?;
    shape_is((m, n), grad_output.rows(), grad_output.cols())?;
    shape_is(
        (m, n),
        grads.pre_activation.rows(),
        grads.pre_activation.cols(),
    )?;
    if let Some(dx) = &grads.input {
        shape_is((m, k), dx.rows(), dx.cols())?;
    }
    shape_is((k, n), grads.kernel.rows(), grads.kernel.cols())?;
    if let Some(db) = &grads.bias {
        if db.len() != n {
            return Err(DenseError::BiasLength {
                len: db.len(),
                units: n,
            });
        }
    }

    // f32 with row-major z and dy, on a CPU with the microkernels: the packed path
    // (`Wᵀ` and `dz` packed for this call), as the layer API's training runs.
    if let (Some(xf), Some(wf)) = (T::as_f32s(input.data()), T::as_f32s(kernel.data())) {
        if let (Some(z), Some(dy), true) = (
            contiguous(&pre_activation).and_then(T::as_f32s),
            contiguous(&grad_output).and_then(T::as_f32s),
            crate::paths::packed::has_microkernels(),
        ) {
            let xv = MatRef::from_strided(xf, m, k, input.row_stride(), input.col_stride())?;
            let wv = MatRef::from_strided(wf, k, n, kernel.row_stride(), kernel.col_stride())?;
            let dz = grads.pre_activation.into_slice();
            return backward_packed(
                &mut TrainPacks::default(),
                xv,
                wv,
                act,
                z,
                dy,
                SliceGrads {
                    dz: f32_slice(&mut dz[..m * n])?,
                    dx: match grads.input {
                        Some(d) => Some(f32_slice(d.into_slice())?),
                        None => None,
                    },
                    dw: f32_slice(grads.kernel.into_slice())?,
                    db: match grads.bias {
                        Some(b) => Some(f32_slice(b)?),
                        None => None,
                    },
                },
                scratch,
            );
        }
    }

    // dz, row by row (the shapes are checked: every index below is in range).
    let dz = grads.pre_activation.into_slice();
    match (contiguous(&pre_activation), contiguous(&grad_output)) {
        (Some(z), Some(dy)) => activation_backward(act, z, dy, &mut dz[..m * n], n, scratch),
        _ => {
            let act = act.params_as::<T>();
            let round = |v: f64| T::narrow(v).widen();
            let mut dy_row = Vec::new();
            for i in 0..m {
                let row = &mut dz[i * n..(i + 1) * n];
                if act.is_row_wise() {
                    dy_row.clear();
                    dy_row.extend((0..n).map(|j| grad_output.get(i, j).unwrap_or(T::nan())));
                    let zs = (0..n).map(|j| pre_activation.get(i, j).unwrap_or(T::nan()));
                    vjp_row(act, zs, &dy_row, row, scratch);
                } else {
                    for (j, d) in row.iter_mut().enumerate() {
                        let z = pre_activation.get(i, j).unwrap_or(T::nan()).widen();
                        let dy = grad_output.get(i, j).unwrap_or(T::nan());
                        let g = elementwise(act, z, round).unwrap_or(Grad::Zero);
                        *d = vjp_elementwise(g, dy);
                    }
                }
            }
        }
    }
    let dz_view = MatRef::from_slice(&dz[..m * n], m, n)?;

    if let Some(dx) = grads.input {
        dense_forward_into(dz_view, kernel.t(), None, Activation::Linear, dx)?;
    }
    dense_forward_into(input.t(), dz_view, None, Activation::Linear, grads.kernel)?;
    if let Some(db) = grads.bias {
        bias_gradient(&dz[..m * n], n, db, scratch);
    }
    Ok(())
}

/// `db_j = Σ_i dz_ij` down each column in row order, in `f64`, rounded once; the
/// column sums run side by side row after row (in `acc`), reading `dz` in order.
fn bias_gradient<T: Element>(dz: &[T], n: usize, db: &mut [T], acc: &mut Vec<f64>) {
    acc.clear();
    acc.resize(n, 0.0);
    for row in dz.chunks_exact(n.max(1)) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v.widen();
        }
    }
    for (b, a) in db.iter_mut().zip(acc.iter()) {
        *b = T::narrow(*a);
    }
}

/// The packed weights an `f32` Dense layer's training step reuses: `W` for the
/// forward, `Wᵀ` for `dx`, `dz` for `dW`, repacked each step into the same memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrainPacks {
    w: Option<PackedKernel>,
    wt: Option<PackedKernel>,
    dz: Option<PackedKernel>,
}

/// `b` packed (with `bias`) into `slot`, reusing its memory.
fn pack_into<'s>(
    slot: &'s mut Option<PackedKernel>,
    b: MatRef<'_, f32>,
    bias: Option<&[f32]>,
) -> Result<&'s PackedKernel, DenseError> {
    match slot {
        Some(p) => {
            p.repack(b, bias)?;
            Ok(p)
        }
        None => Ok(slot.insert(PackedKernel::for_one_call(b, bias)?)),
    }
}

/// The training forward of an `f32` layer through the packed path (the weights packed
/// into reused buffers): `z = x·W + b`, `y = act(z)`, both `(rows, n)` slices.
pub(crate) fn forward_train_packed(
    packs: &mut TrainPacks,
    x: MatRef<'_, f32>,
    w: MatRef<'_, f32>,
    bias: Option<&[f32]>,
    act: Activation,
    z: &mut [f32],
    y: &mut [f32],
) -> Result<(), DenseError> {
    let (m, n) = (x.rows(), w.cols());
    let p = pack_into(&mut packs.w, w, bias)?;
    dense_forward_packed(x, p, Activation::Linear, MatMut::from_slice(z, m, n)?)?;
    y.copy_from_slice(z);
    if n > 0 && act != Activation::Linear {
        crate::simd::apply(act.params_as::<f32>(), y, n);
    }
    Ok(())
}

/// Where [`backward_packed`] writes: `dz`, `dx` (if wanted), `dW`, `db` (if a bias).
pub(crate) struct SliceGrads<'a> {
    pub dz: &'a mut [f32],
    pub dx: Option<&'a mut [f32]>,
    pub dw: &'a mut [f32],
    pub db: Option<&'a mut [f32]>,
}

/// [`dense_backward`] for an `f32` layer whose data are row-major slices, through the
/// packed path: `Wᵀ` and `dz` packed into reused buffers, so a step allocates nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_packed(
    packs: &mut TrainPacks,
    x: MatRef<'_, f32>,
    w: MatRef<'_, f32>,
    act: Activation,
    z: &[f32],
    dy: &[f32],
    g: SliceGrads<'_>,
    scratch: &mut Vec<f64>,
) -> Result<(), DenseError> {
    let (m, k, n) = (x.rows(), x.cols(), w.cols());
    activation_backward(act, z, dy, g.dz, n, scratch);
    let dz = MatRef::from_slice(g.dz, m, n)?;
    if let Some(dx) = g.dx {
        let p = pack_into(&mut packs.wt, w.t(), None)?;
        dense_forward_packed(dz, p, Activation::Linear, MatMut::from_slice(dx, m, k)?)?;
    }
    let p = pack_into(&mut packs.dz, dz, None)?;
    dense_forward_packed(
        x.t(),
        p,
        Activation::Linear,
        MatMut::from_slice(g.dw, k, n)?,
    )?;
    if let Some(db) = g.db {
        bias_gradient(g.dz, n, db, scratch);
    }
    Ok(())
}

/// The view's elements as one row-major slice, if it is one (no gaps, unit column step).
fn contiguous<'a, T: Element>(v: &MatRef<'a, T>) -> Option<&'a [T]> {
    let (m, n) = (v.rows(), v.cols());
    let len = m.checked_mul(n)?;
    let row_major = v.col_stride() == 1 && (v.row_stride() == n || m <= 1);
    if row_major && v.data().len() >= len {
        Some(&v.data()[..len])
    } else if len == 0 {
        Some(&[])
    } else {
        None
    }
}

/// `dz = dy ⊙ act'(z)` over row-major `(rows, n)` slices of equal length (row-wise
/// activations: their Jacobian-vector product per row), each element computed in `f64`
/// and rounded once; `scratch` is the row-wise activations' workspace.
pub(crate) fn activation_backward<T: Element>(
    act: Activation,
    z: &[T],
    dy: &[T],
    dz: &mut [T],
    n: usize,
    scratch: &mut Vec<f64>,
) {
    if n == 0 {
        return;
    }
    let act = act.params_as::<T>();
    match act {
        // The two most common cases without the per-element dispatch (the same values
        // as `elementwise`: 1, and relu's 1 above 0, exact 0 at and below 0 and for NaN).
        Activation::Linear => dz.copy_from_slice(dy),
        Activation::Relu => match (T::as_f32s(z), T::as_f32s(dy), T::as_f32s_mut(dz)) {
            // f32: a bit mask, not a branch (random signs mispredicted half the time).
            (Some(z), Some(dy), Some(dz)) => {
                for ((d, z), g) in dz.iter_mut().zip(z).zip(dy) {
                    let keep = 0u32.wrapping_sub(u32::from(*z > 0.0));
                    *d = f32::from_bits(g.to_bits() & keep);
                }
            }
            _ => {
                for ((d, z), g) in dz.iter_mut().zip(z).zip(dy) {
                    *d = if z.widen() > 0.0 { *g } else { T::zero() };
                }
            }
        },
        _ if act.is_row_wise() => {
            for ((zr, dyr), dzr) in z.chunks(n).zip(dy.chunks(n)).zip(dz.chunks_mut(n)) {
                vjp_row(act, zr.iter().copied(), dyr, dzr, scratch);
            }
        }
        _ => {
            let round = |v: f64| T::narrow(v).widen();
            for ((d, z), g) in dz.iter_mut().zip(z).zip(dy) {
                let gr = elementwise(act, z.widen(), round).unwrap_or(Grad::Zero);
                *d = vjp_elementwise(gr, *g);
            }
        }
    }
}

/// `T`'s slice as `f32`, for the packed training path (reached only when `T` is `f32`).
pub(crate) fn f32s<T: Element>(s: &[T]) -> Result<&[f32], DenseError> {
    T::as_f32s(s).ok_or_else(not_f32)
}

/// [`f32s`], mutably.
pub(crate) fn f32_slice<T: Element>(v: &mut [T]) -> Result<&mut [f32], DenseError> {
    T::as_f32s_mut(v).ok_or_else(not_f32)
}

fn not_f32() -> DenseError {
    DenseError::InvalidConfig {
        what: "the packed training path on non-f32 data".into(),
    }
}
