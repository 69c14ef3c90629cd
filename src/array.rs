//! `ndarray` in and out (the `ndarray` feature): views borrowed without copies, and a
//! forward over arrays of any rank that applies to the last axis, as Keras's `Dense`
//! does.
//!
//! Borrowing is safe code only: a [`MatRef`] holds a slice, so it borrows a view whose
//! elements fill a slice without gaps (ndarray's `to_slice_memory_order`, any
//! non-negative strides in either axis order). A slice over a view with gaps would also
//! cover elements the view does not own, which another live `ArrayViewMut` may be
//! writing: such views are refused by the conversions and copied by
//! [`dense_forward_array`].

use ::ndarray::{Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn};

use crate::layer::{Dense, Sequential, Tensor};
use crate::{dense_forward, Activation, DenseError, Element, Mat, MatMut, MatRef};

/// A view's strides with those of length-1 axes set to 0 (ndarray leaves any value
/// there; they are never used to step).
fn used_strides(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    shape
        .iter()
        .zip(strides)
        .map(|(&n, &s)| if n > 1 { s } else { 0 })
        .collect()
}

fn layout_error(shape: &[usize], strides: &[isize], needs: &'static str) -> DenseError {
    DenseError::UnsupportedLayout {
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        needs,
    }
}

/// Borrows a 2-D view without copying: row-major, column-major (a transposed array, a
/// PyTorch weight's `.t()`), or a range of whole rows or columns of either. Views with
/// negative strides or with gaps between their elements (a column range of a row-major
/// array, a step) are refused with [`DenseError::UnsupportedLayout`];
/// [`dense_forward_array`] takes them (it copies them).
///
/// ```
/// use dense_kernel::{dense_forward, Activation, MatRef};
/// use ndarray::array;
///
/// let x = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let w_torch = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]]; // (units, in)
/// let y = dense_forward(
///     MatRef::try_from(x.view())?,
///     MatRef::try_from(w_torch.t())?, // (in, units), no copy
///     None,
///     Activation::Linear,
/// )?;
/// assert_eq!(y.as_slice(), &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
impl<'a, T: Element> TryFrom<ArrayView2<'a, T>> for MatRef<'a, T> {
    type Error = DenseError;

    fn try_from(view: ArrayView2<'a, T>) -> Result<Self, DenseError> {
        let (rows, cols) = view.dim();
        if rows == 0 || cols == 0 {
            return MatRef::from_slice(&[], rows, cols);
        }
        let s = used_strides(view.shape(), view.strides());
        if s.iter().any(|&v| v < 0) {
            return Err(layout_error(
                view.shape(),
                view.strides(),
                "non-negative strides (reverse the axis, or copy the view)",
            ));
        }
        match view.to_slice_memory_order() {
            // Non-negative strides: the slice starts at element (0, 0), and every
            // element `(i, j)` is at `i·s0 + j·s1` inside it.
            Some(data) => MatRef::from_strided(data, rows, cols, s[0] as usize, s[1] as usize),
            None => Err(layout_error(
                view.shape(),
                view.strides(),
                "elements without gaps between them (copy it with `as_standard_layout`, \
                 or call `dense_forward_array`, which does)",
            )),
        }
    }
}

/// Borrows a 2-D mutable view as an output without copying: it must be row-major
/// contiguous (standard layout), as [`MatMut`] is; anything else is refused with
/// [`DenseError::UnsupportedLayout`].
impl<'a, T: Element> TryFrom<ArrayViewMut2<'a, T>> for MatMut<'a, T> {
    type Error = DenseError;

    fn try_from(view: ArrayViewMut2<'a, T>) -> Result<Self, DenseError> {
        let (rows, cols) = view.dim();
        let (shape, strides) = (view.shape().to_vec(), view.strides().to_vec());
        match view.into_slice() {
            Some(data) => MatMut::from_slice(data, rows, cols),
            None => Err(layout_error(
                &shape,
                &strides,
                "a row-major contiguous output (standard layout)",
            )),
        }
    }
}

impl<T: Element> Mat<T> {
    /// The matrix as an `ndarray` array, moving its buffer (no copy).
    pub fn into_array(self) -> Array2<T> {
        let (rows, cols) = (self.rows(), self.cols());
        // A `Mat` holds exactly `rows·cols` elements, row-major: the shape fits.
        Array2::from_shape_vec((rows, cols), self.into_vec())
            .unwrap_or_else(|_| unreachable!("a Mat's length is rows × cols"))
    }
}

impl<T: Element> Tensor<T> {
    /// The tensor as an `ndarray` array of its shape, moving its buffer (no copy).
    ///
    /// # Errors
    /// [`DenseError::InputShape`] if `data`'s length is not the shape's product (the
    /// fields are public, so a tensor can be built inconsistent).
    pub fn into_array(self) -> Result<ArrayD<T>, DenseError> {
        let len = self.data.len();
        let shape = self.shape;
        ArrayD::from_shape_vec(IxDyn(&shape), self.data).map_err(|_| DenseError::InputShape {
            shape,
            len,
            expected_last: None,
        })
    }
}

/// The leading axes of `shape` flattened: `(rows, last)`, for a rank ≥ 1 input.
fn rows_and_last(shape: &[usize], len: usize) -> Result<(usize, usize), DenseError> {
    let (&last, lead) = shape.split_last().ok_or_else(|| DenseError::InputShape {
        shape: Vec::new(),
        len,
        expected_last: None,
    })?;
    let rows = lead
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DenseError::ShapeOverflow {
            shape: shape.to_vec(),
            units: None,
        })?;
    Ok((rows, last))
}

/// `act(input · kernel + bias)` over the last axis of an input of any rank ≥ 1: shape
/// `(*, in)` in, `(*, units)` out, as Keras's `Dense` applies to higher-rank inputs.
/// `kernel` is `(in, units)` (Keras layout; pass `w.t()` for a PyTorch `(units, in)`
/// weight), `bias` has `units` elements. Results are those of [`dense_forward`] on the
/// flattened `(rows, in)` input, bit for bit.
///
/// Views are borrowed as they are where [`MatRef::try_from`] takes them (inputs of rank
/// above 2 when in standard layout); others (negative strides, gaps between elements)
/// are first copied into a standard-layout array: the one allocation besides the
/// output.
///
/// ```
/// use dense_kernel::{dense_forward_array, Activation};
/// use ndarray::{array, Array3};
///
/// // A batch of 2 sequences of 3 steps with 4 features, into a layer of 2 units.
/// let x = Array3::<f32>::from_shape_fn((2, 3, 4), |(b, t, f)| (b + t + f) as f32 / 8.0);
/// let w = array![[1.0f32, -1.0], [0.5, 0.0], [0.0, 0.5], [-1.0, 1.0]]; // (in = 4, units = 2)
/// let b = array![0.1f32, -0.1];
/// let y = dense_forward_array(x.view().into_dyn(), w.view(), Some(b.view()), Activation::Relu)?;
/// assert_eq!(y.shape(), &[2, 3, 2]);
/// // Element (1, 2, :) is relu(x[1, 2, :] · w + b).
/// let z0 = (0..4).map(|f| x[[1, 2, f]] * w[[f, 0]]).sum::<f32>() + 0.1;
/// assert!((y[[1, 2, 0]] - z0.max(0.0)).abs() < 1e-6);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
///
/// # Errors
/// [`DenseError::InputShape`] for a rank-0 input; [`DenseError::InnerDimMismatch`] if
/// the last axis is not `kernel.nrows()`; [`DenseError::BiasLength`]; the errors of
/// [`dense_forward`].
pub fn dense_forward_array<T: Element>(
    input: ArrayViewD<'_, T>,
    kernel: ArrayView2<'_, T>,
    bias: Option<ArrayView1<'_, T>>,
    act: Activation,
) -> Result<ArrayD<T>, DenseError> {
    let (rows, k) = rows_and_last(input.shape(), input.len())?;
    // The input as (rows, in): a borrowed 2-D view where possible, else a copy.
    let x_std;
    let x2 = match input.view().into_dimensionality::<::ndarray::Ix2>() {
        Ok(v) => MatRef::try_from(v).ok(),
        Err(_) => None,
    };
    let x = match x2 {
        Some(x) => x,
        None => {
            x_std = input.as_standard_layout();
            MatRef::from_slice(as_standard(&x_std), rows, k)?
        }
    };
    let w_std;
    let w = match MatRef::try_from(kernel.view()) {
        Ok(w) => w,
        Err(_) => {
            w_std = kernel.as_standard_layout();
            let data = w_std
                .as_slice()
                .unwrap_or_else(|| unreachable!("a standard-layout array is one slice"));
            MatRef::from_slice(data, kernel.nrows(), kernel.ncols())?
        }
    };
    let b_vec;
    let b = match bias {
        None => None,
        Some(b) => match b.to_slice() {
            Some(s) => Some(s),
            None => {
                b_vec = b.to_vec();
                Some(&b_vec[..])
            }
        },
    };
    let y = dense_forward(x, w, b, act)?;
    let mut shape = input.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = y.cols();
    }
    Tensor {
        shape,
        data: y.into_vec(),
    }
    .into_array()
}

/// The input as one standard-layout slice (borrowed, or a copy for other layouts).
fn as_standard<'a, T: Element>(input: &'a ::ndarray::CowArray<'a, T, IxDyn>) -> &'a [T] {
    input
        .as_slice()
        .unwrap_or_else(|| unreachable!("a standard-layout array is one slice"))
}

impl<T: Element> Dense<T> {
    /// [`Dense::call`] on an `ndarray` array of shape `(batch, …, in)`: returns
    /// `(batch, …, units)`. The input is read in place when it is in standard layout,
    /// copied once otherwise.
    ///
    /// ```
    /// use dense_kernel::{layer::Dense, Activation};
    /// use ndarray::Array2;
    ///
    /// let mut layer = Dense::<f32>::new(3).activation(Activation::Relu).seed(7);
    /// let x = Array2::<f32>::ones((4, 5));
    /// let y = layer.call_array(x.view().into_dyn())?;
    /// assert_eq!(y.shape(), &[4, 3]);
    /// assert!(y.iter().all(|&v| v >= 0.0));
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`Dense::call`].
    pub fn call_array(&mut self, input: ArrayViewD<'_, T>) -> Result<ArrayD<T>, DenseError> {
        let x = input.as_standard_layout();
        self.call(as_standard(&x), input.shape())?.into_array()
    }
}

impl<T: Element> Sequential<T> {
    /// [`Sequential::predict`] on an `ndarray` array (batch axis first): returns the
    /// last layer's output as an array. The input is read in place when it is in
    /// standard layout, copied once otherwise.
    ///
    /// # Errors
    /// Those of [`Sequential::predict`].
    pub fn predict_array(&mut self, input: ArrayViewD<'_, T>) -> Result<ArrayD<T>, DenseError> {
        let x = input.as_standard_layout();
        self.predict(as_standard(&x), input.shape())?.into_array()
    }
}
