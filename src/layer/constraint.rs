//! Keras's weight constraints: projections applied to a weight after an update. Here
//! they are applied on demand ([`Dense::apply_constraints`](super::Dense::apply_constraints)).
//!
//! Norms are taken along `axis` (Keras's default `axis = 0`: for a Dense kernel
//! `(in, units)`, one norm per output unit, over its inputs; for a bias, the whole
//! vector), with Keras's `epsilon = 1e-7` in the denominator. Computed in `f64`, rounded
//! once to the weight's type.

use crate::{DenseError, Element};

/// Keras's `backend.epsilon()`, the constraints' guard against dividing by zero.
pub const EPSILON: f64 = 1e-7;

/// A Keras weight constraint.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Constraint {
    /// `w · clip(‖w‖, 0, max_value) / (ε + ‖w‖)`; Keras defaults `max_value = 2`, `axis = 0`.
    MaxNorm {
        /// Largest norm kept.
        max_value: f64,
        /// Axis the norm runs over (0 or 1 for a kernel, 0 for a bias).
        axis: usize,
    },
    /// `w · (rate·clip(‖w‖, min, max) + (1 − rate)·‖w‖) / (ε + ‖w‖)`; defaults
    /// `min_value = 0`, `max_value = 1`, `rate = 1`, `axis = 0`.
    MinMaxNorm {
        /// Smallest norm.
        min_value: f64,
        /// Largest norm.
        max_value: f64,
        /// How far to move towards the clipped norm (1: all the way).
        rate: f64,
        /// Axis the norm runs over.
        axis: usize,
    },
    /// `max(w, 0)`: negative weights (and −0) become +0; NaN stays NaN (Keras 3's
    /// `ops.maximum(w, 0)`).
    NonNeg,
    /// `w / (ε + ‖w‖)`; default `axis = 0`.
    UnitNorm {
        /// Axis the norm runs over.
        axis: usize,
    },
}

impl Constraint {
    /// Keras's `MaxNorm()` with its defaults.
    pub const MAX_NORM: Constraint = Constraint::MaxNorm {
        max_value: 2.0,
        axis: 0,
    };
    /// Keras's `MinMaxNorm()` with its defaults.
    pub const MIN_MAX_NORM: Constraint = Constraint::MinMaxNorm {
        min_value: 0.0,
        max_value: 1.0,
        rate: 1.0,
        axis: 0,
    };
    /// Keras's `UnitNorm()` with its default.
    pub const UNIT_NORM: Constraint = Constraint::UnitNorm { axis: 0 };

    /// Keras's string names with their defaults: `"max_norm"`, `"min_max_norm"`,
    /// `"non_neg"`, `"unit_norm"`.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, DenseError> {
        match name {
            "max_norm" => Ok(Constraint::MAX_NORM),
            "min_max_norm" => Ok(Constraint::MIN_MAX_NORM),
            "non_neg" => Ok(Constraint::NonNeg),
            "unit_norm" => Ok(Constraint::UNIT_NORM),
            _ => Err(DenseError::InvalidConfig {
                what: format!("unknown constraint {name:?}"),
            }),
        }
    }

    fn axis(&self) -> Option<usize> {
        match *self {
            Constraint::MaxNorm { axis, .. }
            | Constraint::MinMaxNorm { axis, .. }
            | Constraint::UnitNorm { axis } => Some(axis),
            Constraint::NonNeg => None,
        }
    }

    /// Projects `w`, a row-major weight of `shape` (`[in, units]` or `[units]`), in place.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] if `axis` is not an axis of `shape`, the shape does
    /// not match `w.len()`, or a parameter is not finite.
    ///
    /// ```
    /// use dense_kernel::layer::Constraint;
    /// // Two units with norms 5 and 1 over their inputs (axis 0): only the first is
    /// // shrunk to max_value = 2.
    /// let mut w = [3.0f64, 1.0,
    ///              4.0, 0.0];
    /// Constraint::MaxNorm { max_value: 2.0, axis: 0 }.apply(&mut w, &[2, 2])?;
    /// assert!((w[0] - 1.2).abs() < 1e-6 && (w[2] - 1.6).abs() < 1e-6);
    /// assert!((w[1] - 1.0).abs() < 1e-6);
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    pub fn apply<T: Element>(&self, w: &mut [T], shape: &[usize]) -> Result<(), DenseError> {
        let bad = |what: String| Err(DenseError::InvalidConfig { what });
        if super::numel(shape).ok() != Some(w.len()) {
            return bad(format!(
                "constraint on a weight of {} elements given shape {shape:?}",
                w.len()
            ));
        }
        let params_ok = match *self {
            Constraint::MaxNorm { max_value, .. } => max_value.is_finite(),
            Constraint::MinMaxNorm {
                min_value,
                max_value,
                rate,
                ..
            } => min_value.is_finite() && max_value.is_finite() && rate.is_finite(),
            _ => true,
        };
        if !params_ok {
            return bad(format!("{self:?}: parameters must be finite"));
        }
        if w.is_empty() {
            // Nothing to constrain (and the shape's partial products, unused, may not
            // fit in usize: `[0, 2⁴⁰, 2⁴⁰]`).
            return Ok(());
        }
        let Some(axis) = self.axis() else {
            for v in w.iter_mut() {
                // Keras 3's `maximum(w, 0)`: negatives and −0 become +0, NaN stays NaN.
                if !(*v > T::zero() || v.is_nan()) {
                    *v = T::zero();
                }
            }
            return Ok(());
        };
        if axis >= shape.len().max(1) {
            return bad(format!("axis {axis} is not an axis of shape {shape:?}"));
        }
        // View as (outer, len, inner) with the norm running over the middle axis.
        // Every partial product of a shape with `w.len() > 0` elements is at most that.
        let len = shape.get(axis).copied().unwrap_or(w.len());
        let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
        let outer = w.len() / (len * inner);
        for o in 0..outer {
            for i in 0..inner {
                let idx = |p: usize| (o * len + p) * inner + i;
                let norm = (0..len)
                    .map(|p| w[idx(p)].widen().powi(2))
                    .sum::<f64>()
                    .sqrt();
                let desired = match *self {
                    Constraint::MaxNorm { max_value, .. } => norm.clamp(0.0, max_value.max(0.0)),
                    Constraint::MinMaxNorm {
                        min_value,
                        max_value,
                        rate,
                        ..
                    } => rate * norm.max(min_value).min(max_value) + (1.0 - rate) * norm,
                    Constraint::UnitNorm { .. } => 1.0,
                    Constraint::NonNeg => unreachable!("no axis"),
                };
                let f = desired / (EPSILON + norm);
                for p in 0..len {
                    let v = &mut w[idx(p)];
                    *v = T::narrow(v.widen() * f);
                }
            }
        }
        Ok(())
    }
}
