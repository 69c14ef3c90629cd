//! Matrix views: a slice plus shape and strides, validated once when built so that the
//! kernels never check bounds per element and never read outside the slice.

use crate::{DenseError, Element};

/// Smallest slice length that a `rows × cols` view with these strides reaches, or the
/// overflow error. Also checks that the element count fits `usize` and that the strides
/// fit `isize` (pointer offsets are `isize`).
fn required_len(
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<usize, DenseError> {
    let overflow = DenseError::SizeOverflow {
        rows,
        cols,
        row_stride,
        col_stride,
    };
    rows.checked_mul(cols).ok_or_else(|| overflow.clone())?;
    // Strides must fit `isize` (pointer offsets are `isize`), even for an empty view.
    if row_stride > isize::MAX as usize || col_stride > isize::MAX as usize {
        return Err(overflow);
    }
    if rows == 0 || cols == 0 {
        // An empty view reaches nothing: its furthest offset is not checked, and no
        // offset of it is ever formed (see `MatRef::strides_isize`).
        return Ok(0);
    }
    (rows - 1)
        .checked_mul(row_stride)
        .and_then(|r| {
            (cols - 1)
                .checked_mul(col_stride)
                .and_then(|c| r.checked_add(c))
        })
        .and_then(|last| last.checked_add(1))
        .ok_or(overflow)
}

fn check_len(
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Result<(), DenseError> {
    let required = required_len(rows, cols, row_stride, col_stride)?;
    if len < required {
        return Err(DenseError::SliceTooShort {
            rows,
            cols,
            row_stride,
            col_stride,
            required,
            len,
        });
    }
    Ok(())
}

/// A read-only `rows × cols` view of a slice with arbitrary element strides.
///
/// Built with [`from_slice`](MatRef::from_slice) (row-major) or
/// [`from_strided`](MatRef::from_strided); [`t`](MatRef::t) gives the transposed view
/// without copying. Stride 0 (broadcast) is allowed; strides above `isize::MAX` are
/// not. An empty view (0 rows or 0 columns) takes any shape and strides within that
/// limit: it has no element, and no offset of it is ever formed. A PyTorch-layout weight
/// `(units, in)` is used as a Keras-layout kernel `(in, units)` with
/// `MatRef::from_slice(w, units, in)?.t()`.
///
/// ```
/// use dense_kernel::MatRef;
/// let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // (units = 2, in = 3), PyTorch layout
/// let kernel = MatRef::from_slice(&w, 2, 3)?.t(); // (in = 3, units = 2), no copy
/// assert_eq!((kernel.rows(), kernel.cols()), (3, 2));
/// assert_eq!(kernel.get(2, 1), Some(6.0));
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A row-major view: element `(i, j)` is `data[i * cols + j]`. The slice may be longer
    /// than `rows * cols`; the rest is ignored.
    pub fn from_slice(data: &'a [T], rows: usize, cols: usize) -> Result<Self, DenseError> {
        Self::from_strided(data, rows, cols, cols, 1)
    }

    /// A strided view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
    ///
    /// Errors if the last element lies beyond the slice, or if the shape's element
    /// count or furthest offset overflows.
    pub fn from_strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, DenseError> {
        check_len(data.len(), rows, cols, row_stride, col_stride)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The transposed view (`cols × rows`), sharing the same data.
    #[must_use]
    pub fn t(self) -> MatRef<'a, T> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element `(i, j)`, or `None` outside the shape.
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        if i < self.rows && j < self.cols {
            // In range: the offset was proven to lie inside `data` when the view was built.
            Some(self.data[i * self.row_stride + j * self.col_stride])
        } else {
            None
        }
    }

    /// Copies the view into an owned row-major matrix.
    pub fn to_mat(&self) -> Result<Mat<T>, DenseError> {
        let mut out = Mat::try_zeros(self.rows, self.cols)?;
        for (i, row) in out.rows_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = self.data[i * self.row_stride + j * self.col_stride];
            }
        }
        Ok(out)
    }

    pub(crate) fn as_ptr(&self) -> *const T {
        self.data.as_ptr()
    }

    /// The slice behind the view (every element `(i, j)` is at
    /// `i·row_stride + j·col_stride` inside it).
    pub(crate) fn data(&self) -> &'a [T] {
        self.data
    }

    /// Strides as `isize` (lossless: `from_strided` checked that they fit), for forming
    /// offsets. Only for a non-empty view: an empty one can claim any shape (say `2⁶²`
    /// rows of 0 columns) with strides whose furthest offset was never checked, so the
    /// paths return before reading one (`M`, `N` or `K` = 0: the output is empty, or
    /// the bias).
    pub(crate) fn strides_isize(&self) -> (isize, isize) {
        debug_assert!(
            self.rows > 0 && self.cols > 0,
            "offsets of an empty {}x{} view",
            self.rows,
            self.cols
        );
        (self.row_stride as isize, self.col_stride as isize)
    }
}

/// A writable row-major `rows × cols` view of a slice: the output of
/// [`dense_forward_into`](crate::dense_forward_into).
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
}

impl<'a, T: Element> MatMut<'a, T> {
    /// A row-major view: element `(i, j)` is `data[i * cols + j]`. The slice may be longer
    /// than `rows * cols`; the rest is left untouched.
    pub fn from_slice(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, DenseError> {
        check_len(data.len(), rows, cols, cols, 1)?;
        let len = rows * cols; // cannot overflow: checked above
        Ok(MatMut {
            data: &mut data[..len],
            rows,
            cols,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `rows * cols` elements, row-major.
    pub(crate) fn into_slice(self) -> &'a mut [T] {
        self.data
    }
}

// Views print their geometry, not their (possibly huge) data.
impl<T> std::fmt::Debug for MatRef<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatRef")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("row_stride", &self.row_stride)
            .field("col_stride", &self.col_stride)
            .field("slice_len", &self.data.len())
            .finish()
    }
}

impl<T> std::fmt::Debug for MatMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatMut")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

/// An owned row-major matrix, as returned by [`dense_forward`](crate::dense_forward).
#[derive(Clone, Debug, PartialEq)]
pub struct Mat<T> {
    data: Vec<T>,
    rows: usize,
    cols: usize,
}

impl<T: Element> Mat<T> {
    /// Wraps a row-major vector of exactly `rows * cols` elements.
    pub fn from_vec(data: Vec<T>, rows: usize, cols: usize) -> Result<Self, DenseError> {
        let required = required_len(rows, cols, cols, 1)?;
        if data.len() != required {
            return Err(DenseError::DataLength {
                rows,
                cols,
                len: data.len(),
            });
        }
        Ok(Mat { data, rows, cols })
    }

    /// A `rows × cols` matrix of zeros, or an error (never an abort) if it cannot be
    /// allocated.
    pub fn try_zeros(rows: usize, cols: usize) -> Result<Self, DenseError> {
        let len = rows
            .checked_mul(cols)
            .filter(|&n| n <= isize::MAX as usize / std::mem::size_of::<T>())
            .ok_or(DenseError::SizeOverflow {
                rows,
                cols,
                row_stride: cols,
                col_stride: 1,
            })?;
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| DenseError::AllocationFailed { rows, cols })?;
        data.resize(len, T::zero());
        Ok(Mat { data, rows, cols })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements, row-major, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The elements, row-major.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// Element `(i, j)`, or `None` outside the shape.
    pub fn get(&self, i: usize, j: usize) -> Option<T> {
        (i < self.rows && j < self.cols).then(|| self.data[i * self.cols + j])
    }

    /// A read-only view of the whole matrix.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.cols,
            col_stride: 1,
        }
    }

    /// A writable view of the whole matrix.
    pub fn as_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: &mut self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }

    fn rows_mut(&mut self) -> impl Iterator<Item = &mut [T]> {
        // `max(1)`: chunks_exact_mut(0) panics; with cols == 0 the data is empty anyway.
        self.data.chunks_exact_mut(self.cols.max(1))
    }
}
