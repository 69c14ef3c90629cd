//! The Keras face of the crate: [`Dense`] with every Keras parameter and default, its
//! [initializers](Initializer), [regularizers](Regularizer) and
//! [constraints](Constraint), the [`ActivationLayer`], [`Dropout`] and [`Flatten`], and
//! [`Sequential`] (with its `Input`-first functional form) with Keras 3's `summary()`
//! and Keras's training: [`Sequential::compile`] with a [`Loss`] and an [`Optimizer`]
//! (and [`CompileOptions`]: [`Metric`]s, gradient clipping), `train_on_batch`, `fit`
//! ([`FitOptions`], [`History`]) and `evaluate`. With the `model-files` feature (on by
//! default): `load_model` (Keras `.keras` and legacy `.h5`), `Sequential::save`,
//! `save_weights` / `load_weights` (`.weights.h5`) and `load_safetensors` (PyTorch).
//!
//! Built on [`dense_forward_into`](crate::dense_forward_into); nothing below the layer
//! imports it. Where the crate follows or departs from Keras 3.15:
//! - Names are numbered per model (`dense`, `dense_1`, …), not by a process-wide
//!   counter: what Keras shows in a fresh session.
//! - Initializers have Keras's formulas and distributions; their random numbers come
//!   from the crate's own seeded generator, so the values are not Keras's.
//! - `softmax` over a single unit is always exactly 1 (`log_softmax` 0), as in Keras,
//!   which warns about it; the crate does not warn.
//! - Keras's `keras.regularizers.get("l1_l2")` fails (only `"l1l2"` exists there, with
//!   zero factors): [`Regularizer::from_name`] follows Keras.
//! - The activity penalty is divided by the first axis (the batch), as Keras 3 does,
//!   even for inputs of rank > 2.
//! - Training follows Keras 3.15's update rules, loss formulas and step order
//!   (clipping, weight decay, update, constraints), checked against real Keras runs
//!   (docs/ACCURACY.md, "Training"). Dropout masks and `fit`'s shuffling come from the
//!   crate's seeded generator, not jax's; a sparse label outside `0..classes` is an
//!   error where Keras's `one_hot` makes it a row of zeros.
//! - Model files: what Keras 3.15 writes, read and written, the compile state and the
//!   optimizer's slots included. Keras 3.15's sparsemax is not the paper's; a loaded
//!   model runs the paper's (docs/ACCURACY.md).
//!
//! ```
//! use dense_kernel::layer::{Dense, Input, Sequential};
//! use dense_kernel::Activation;
//! // The tutorial's second model: Input((5,)) -> Dense(1, activation='softmax').
//! let mut model = Sequential::<f32>::functional(Input::new(&[5]))
//!     .add(Dense::new(1).activation(Activation::Softmax))?;
//! assert_eq!(model.count_params()?, 6);
//! let (y, _) = model.forward(&[0.3; 10], &[2, 5])?;
//! assert_eq!(y, &[1.0, 1.0]); // softmax over one unit
//! # Ok::<(), dense_kernel::DenseError>(())
//! ```

mod constraint;
mod dense;
mod dropout;
#[cfg(feature = "model-files")]
mod files;
mod init;
mod loss;
mod metrics;
mod model;
mod optimizer;
mod regularizer;
mod rng;
mod train;

pub use constraint::{Constraint, EPSILON};
pub use dense::Dense;
pub use dropout::Dropout;
#[cfg(feature = "model-files")]
pub use files::{load_model, load_safetensors, KERAS_VERSION, MAX_CONFIG_BYTES};
pub use init::{fans, Distribution, FanMode, Initializer, TRUNCATION_STD};
pub use loss::{Loss, LOSS_EPSILON};
pub use metrics::Metric;
pub use model::{ActivationLayer, Flatten, Input, Layer, Sequential};
pub use optimizer::Optimizer;
pub use regularizer::Regularizer;
pub use train::{CompileOptions, FitOptions, History};

use crate::{DenseError, Element};

/// The number of elements of `shape` (0 if any axis is 0, however large the others).
///
/// # Errors
/// [`DenseError::ShapeOverflow`] if it does not fit in `usize`.
pub(crate) fn numel(shape: &[usize]) -> Result<usize, DenseError> {
    if shape.contains(&0) {
        return Ok(0);
    }
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DenseError::ShapeOverflow {
            shape: shape.to_vec(),
            units: None,
        })
}

/// `(rows, elements)` of a `units`-wide layer's output for an input of `shape` (rank ≥ 1):
/// the rows are every axis but the last.
///
/// # Errors
/// [`DenseError::ShapeOverflow`] if either does not fit in `usize`.
pub(crate) fn output_len(shape: &[usize], units: usize) -> Result<(usize, usize), DenseError> {
    let lead = shape.split_last().map_or(&[][..], |(_, l)| l);
    let overflow = || DenseError::ShapeOverflow {
        shape: shape.to_vec(),
        units: Some(units),
    };
    let rows = numel(lead).map_err(|_| overflow())?;
    Ok((rows, rows.checked_mul(units).ok_or_else(overflow)?))
}

/// Grows `buf` to at least `len` elements (new ones `T::zero()`), fallibly.
///
/// # Errors
/// [`DenseError::AllocationFailed`] (naming the `rows × cols` it was for) if the memory
/// cannot be had.
pub(crate) fn try_grow<T: Element>(
    buf: &mut Vec<T>,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), DenseError> {
    if buf.len() < len {
        buf.try_reserve(len - buf.len())
            .map_err(|_| DenseError::AllocationFailed { rows, cols })?;
        buf.resize(len, T::zero());
    }
    Ok(())
}

/// A copy of `data`, fallibly (the weights a layer hands out or takes in).
///
/// # Errors
/// [`DenseError::AllocationFailed`] (naming the `rows × cols` it was for).
pub(crate) fn try_copy<T: Element>(
    data: &[T],
    rows: usize,
    cols: usize,
) -> Result<Vec<T>, DenseError> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len())
        .map_err(|_| DenseError::AllocationFailed { rows, cols })?;
    v.extend_from_slice(data);
    Ok(v)
}

/// An owned tensor: row-major data and its shape (batch axis first for activations;
/// `[in, units]` / `[units]` for weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<T>,
}
