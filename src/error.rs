//! The one error type of the crate: every invalid call ends here, never in a panic.

use std::fmt;

/// Why a call was refused.
///
/// Every message names the shapes (and, where they matter, the strides and slice
/// lengths) involved, so the caller can see which argument was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenseError {
    /// The kernel's row count (its `in` axis) differs from the input's column count.
    InnerDimMismatch {
        /// `(M, K)` of the input view.
        input: (usize, usize),
        /// `(K', N)` of the kernel view.
        kernel: (usize, usize),
    },
    /// The bias does not hold exactly one value per unit.
    BiasLength {
        /// Length of the bias slice given.
        len: usize,
        /// Number of units (columns of the kernel).
        units: usize,
    },
    /// The output view's shape is not `(M, N)`.
    OutputShape {
        /// `(M, N)` that the input and kernel imply.
        expected: (usize, usize),
        /// Shape of the output view given.
        actual: (usize, usize),
    },
    /// A slice is shorter than its claimed shape and strides reach.
    SliceTooShort {
        /// Claimed rows.
        rows: usize,
        /// Claimed columns.
        cols: usize,
        /// Claimed row stride (elements).
        row_stride: usize,
        /// Claimed column stride (elements).
        col_stride: usize,
        /// Elements the shape and strides reach: `(rows-1)*row_stride + (cols-1)*col_stride + 1`.
        required: usize,
        /// Length of the slice given.
        len: usize,
    },
    /// A shape whose element count, or whose furthest strided offset, does not fit in
    /// `usize` (or a stride that does not fit in `isize`, as pointer offsets need).
    SizeOverflow {
        /// Claimed rows.
        rows: usize,
        /// Claimed columns.
        cols: usize,
        /// Claimed row stride (elements).
        row_stride: usize,
        /// Claimed column stride (elements).
        col_stride: usize,
    },
    /// A vector handed over as a `rows × cols` matrix does not hold `rows · cols`
    /// elements.
    DataLength {
        /// Claimed rows.
        rows: usize,
        /// Claimed columns.
        cols: usize,
        /// Length of the vector given.
        len: usize,
    },
    /// The output buffer of `rows × cols` elements could not be allocated.
    AllocationFailed {
        /// Rows of the output.
        rows: usize,
        /// Columns of the output.
        cols: usize,
    },
    /// A thread's reusable scratch buffer (the packed path's input block, allocated on a
    /// thread's first packed call and kept for the thread's life) could not be
    /// allocated.
    ScratchAllocation {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The string is not a Keras activation name (see [`Activation`](crate::Activation)).
    UnknownActivation {
        /// The string given.
        name: String,
    },
    /// The Keras activation exists but cannot be built from its name alone, or does not
    /// keep the shape (Keras's `threshold` needs `threshold` and `default_value`; `glu`
    /// halves the last axis).
    UnsupportedActivation {
        /// The Keras name given.
        name: String,
        /// Why it cannot be built by name, and what to use instead.
        reason: &'static str,
    },
    /// A layer or model setting Keras would refuse (`units = 0`, a negative `stddev`,
    /// an unknown initializer name, …), or weights asked for before the layer is built.
    InvalidConfig {
        /// What is wrong.
        what: String,
    },
    /// An input tensor the layer cannot take: rank below 2, a last axis other than the
    /// layer's input size, or data whose length is not the shape's product.
    InputShape {
        /// The shape given (batch axis first).
        shape: Vec<usize>,
        /// The data's length.
        len: usize,
        /// The last-axis size the layer was built for, if it is built.
        expected_last: Option<usize>,
    },
    /// A tensor shape whose element count (or a layer output's, `units` per row) does
    /// not fit in `usize`.
    ShapeOverflow {
        /// The shape given (batch axis first).
        shape: Vec<usize>,
        /// The layer's units, for an output's count (`None`: the shape's own).
        units: Option<usize>,
    },
    /// `set_weights` given the wrong number of arrays or an array of the wrong shape.
    WeightShape {
        /// Which weight (`"kernel"`, `"bias"`, or `"weights"` for the count).
        name: &'static str,
        /// The shape (or, for the count, `[count]`) the layer has.
        expected: Vec<usize>,
        /// What was given.
        actual: Vec<usize>,
    },
    /// An `ndarray` view whose memory layout a [`MatRef`](crate::MatRef) or
    /// [`MatMut`](crate::MatMut) cannot borrow without copying: negative strides, gaps
    /// between a view's elements (`MatRef`), or an output that is not row-major
    /// contiguous (`MatMut`).
    UnsupportedLayout {
        /// The view's shape.
        shape: Vec<usize>,
        /// Its strides, in elements.
        strides: Vec<isize>,
        /// What the borrowing view needs.
        needs: &'static str,
    },
    /// Training or evaluation targets whose shape does not fit the model's output for
    /// the loss (the same shape; for a sparse loss, the output's without its last axis,
    /// or with it as 1).
    TargetShape {
        /// The targets' shape.
        shape: Vec<usize>,
        /// The model's output shape.
        prediction: Vec<usize>,
        /// The loss's Keras name.
        loss: String,
    },
    /// A sparse target that is not a class index in `0..classes`.
    InvalidLabel {
        /// The example (row) it belongs to.
        index: usize,
        /// The value given, as text.
        value: String,
        /// The number of classes (the output's last axis).
        classes: usize,
    },
    /// Training or evaluation asked of a model that was not compiled.
    NotCompiled,
    /// A model file that cannot be read or written: `path` and what is wrong with it
    /// (unreadable, not a Keras/HDF5/safetensors file, a layer this crate does not run,
    /// weights that disagree with the configuration, …).
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong, naming the layer, entry or dataset where there is one.
        what: String,
    },
}

impl fmt::Display for DenseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenseError::InnerDimMismatch { input, kernel } => write!(
                f,
                "kernel rows must equal input columns: input is {}x{}, kernel is {}x{} \
                 ({} != {})",
                input.0, input.1, kernel.0, kernel.1, kernel.0, input.1
            ),
            DenseError::BiasLength { len, units } => write!(
                f,
                "bias has {len} elements but the kernel has {units} units (columns)"
            ),
            DenseError::OutputShape { expected, actual } => write!(
                f,
                "output is {}x{} but input x kernel gives {}x{}",
                actual.0, actual.1, expected.0, expected.1
            ),
            DenseError::SliceTooShort {
                rows,
                cols,
                row_stride,
                col_stride,
                required,
                len,
            } => write!(
                f,
                "slice of length {len} is too short for a {rows}x{cols} view with strides \
                 ({row_stride}, {col_stride}): it needs {required} elements"
            ),
            DenseError::SizeOverflow {
                rows,
                cols,
                row_stride,
                col_stride,
            } => write!(
                f,
                "a {rows}x{cols} view with strides ({row_stride}, {col_stride}) overflows \
                 the address range (element count or offset exceeds usize/isize)"
            ),
            DenseError::DataLength { rows, cols, len } => write!(
                f,
                "a {rows}x{cols} matrix needs {} elements, the vector has {len}",
                rows.saturating_mul(*cols)
            ),
            DenseError::AllocationFailed { rows, cols } => {
                write!(f, "could not allocate a {rows}x{cols} output")
            }
            DenseError::ScratchAllocation { bytes } => {
                write!(
                    f,
                    "could not allocate a {bytes}-byte scratch buffer for this thread"
                )
            }
            DenseError::UnknownActivation { name } => {
                write!(
                    f,
                    "unknown activation {name:?}: not a Keras activation name"
                )
            }
            DenseError::UnsupportedActivation { name, reason } => {
                write!(f, "activation {name:?} cannot be used by name: {reason}")
            }
            DenseError::InvalidConfig { what } => write!(f, "invalid configuration: {what}"),
            DenseError::InputShape {
                shape,
                len,
                expected_last,
            } => {
                write!(f, "input of shape {shape:?} with {len} elements")?;
                match expected_last {
                    Some(k) => write!(
                        f,
                        ": the layer takes rank >= 2 with last axis {k}, and data of the \
                         shape's size"
                    ),
                    None => write!(
                        f,
                        ": the layer takes rank >= 2 and data of the shape's size"
                    ),
                }
            }
            DenseError::ShapeOverflow { shape, units } => match units {
                Some(u) => write!(
                    f,
                    "the output of a {u}-unit layer for an input of shape {shape:?} has more \
                     elements than usize can count"
                ),
                None => write!(f, "shape {shape:?} has more elements than usize can count"),
            },
            DenseError::WeightShape {
                name,
                expected,
                actual,
            } => write!(f, "{name}: expected shape {expected:?}, got {actual:?}"),
            DenseError::UnsupportedLayout {
                shape,
                strides,
                needs,
            } => write!(
                f,
                "a view of shape {shape:?} with strides {strides:?} cannot be borrowed: {needs}"
            ),
            DenseError::TargetShape {
                shape,
                prediction,
                loss,
            } => write!(
                f,
                "targets of shape {shape:?} do not fit predictions of shape {prediction:?} \
                 for loss {loss}"
            ),
            DenseError::InvalidLabel {
                index,
                value,
                classes,
            } => write!(
                f,
                "label {value} of example {index} is not a class index in 0..{classes}"
            ),
            DenseError::NotCompiled => {
                write!(f, "the model must be compiled (compile) before training")
            }
            DenseError::ModelFile { path, what } => write!(f, "{path}: {what}"),
        }
    }
}

impl std::error::Error for DenseError {}
