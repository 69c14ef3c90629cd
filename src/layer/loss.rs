//! Keras 3's losses with their formulas (epsilon clipping included) and the
//! `sum_over_batch_size` reduction, and their gradients with respect to the prediction.

use std::fmt;
use std::str::FromStr;

use crate::{DenseError, Element};

/// Keras's `backend.epsilon()`: the clip of probabilities in the crossentropies.
pub const LOSS_EPSILON: f64 = 1e-7;

/// A Keras 3 loss, with Keras's parameters and defaults; the reduction is always Keras's
/// default `sum_over_batch_size`: the per-example losses (the last axis reduced) summed
/// and divided by their number (every axis but the last).
///
/// | Keras | formula per example (`p` prediction, `t` target, over the last axis) |
/// |---|---|
/// | `categorical_crossentropy` | `−Σ t·log(clip(p/Σp, ε, 1−ε))`; `from_logits`: `−Σ t·log_softmax(p)`; `t ← t(1−ls) + ls/C` |
/// | `sparse_categorical_crossentropy` | as above with `t` the one-hot of the class index |
/// | `binary_crossentropy` | `mean(−t·log(q) − (1−t)·log(1−q))`, `q = clip(p, ε, 1−ε)`; `from_logits`: `mean(−t·log σ(p) − (1−t)·log σ(−p))`; `t ← t(1−ls) + ls/2` |
/// | `mean_squared_error` | `mean((p − t)²)` |
/// | `mean_absolute_error` | `mean(\|p − t\|)` |
/// | `huber` | `mean(½e²)` where `\|e\| ≤ δ`, else `mean(δ\|e\| − ½δ²)`, `e = p − t` |
///
/// `ε` = [`LOSS_EPSILON`] = 1e-7 rounded to the model's precision, as Keras's clip.
/// Gradients are jax's: no gradient through a clipped probability, `|x|' = 1` at 0.
///
/// ```
/// use dense_kernel::layer::Loss;
/// let l: Loss = "categorical_crossentropy".parse()?;
/// assert_eq!(l, Loss::CategoricalCrossentropy { from_logits: false, label_smoothing: 0.0 });
/// assert_eq!("mse".parse::<Loss>()?, Loss::MeanSquaredError);
/// // Two examples of two classes: −(log 0.5 + log 0.25)/2.
/// let v = l.compute(&[1.0f32, 0.0, 0.0, 1.0], &[2, 2], &[0.5, 0.5, 0.75, 0.25], &[2, 2])?;
/// assert!((v - (2f64.ln() + 4f64.ln()) / 2.0).abs() < 1e-6);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// `keras.losses.CategoricalCrossentropy(from_logits, label_smoothing)`: one-hot (or
    /// soft) targets of the prediction's shape.
    CategoricalCrossentropy {
        /// The prediction holds logits (no softmax layer at the end).
        from_logits: bool,
        /// Targets become `t·(1 − ls) + ls/classes`.
        label_smoothing: f64,
    },
    /// `keras.losses.SparseCategoricalCrossentropy(from_logits)`: targets are class
    /// indices (held in `T` values), shape `(N,)` or `(N, 1)` for a `(N, C)` prediction.
    SparseCategoricalCrossentropy {
        /// The prediction holds logits.
        from_logits: bool,
    },
    /// `keras.losses.BinaryCrossentropy(from_logits, label_smoothing)`.
    BinaryCrossentropy {
        /// The prediction holds logits (no sigmoid at the end).
        from_logits: bool,
        /// Targets become `t·(1 − ls) + ls/2`.
        label_smoothing: f64,
    },
    /// `keras.losses.MeanSquaredError()` (`"mse"`).
    MeanSquaredError,
    /// `keras.losses.MeanAbsoluteError()` (`"mae"`).
    MeanAbsoluteError,
    /// `keras.losses.Huber(delta)` (Keras's default δ = 1).
    Huber {
        /// Where the quadratic part ends.
        delta: f64,
    },
}

impl FromStr for Loss {
    type Err = DenseError;
    /// Keras's names and aliases (`keras.losses.get`), with Keras's defaults.
    fn from_str(s: &str) -> Result<Self, DenseError> {
        Ok(match s {
            "categorical_crossentropy" | "CategoricalCrossentropy" => {
                Loss::CategoricalCrossentropy {
                    from_logits: false,
                    label_smoothing: 0.0,
                }
            }
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
                Loss::SparseCategoricalCrossentropy { from_logits: false }
            }
            "binary_crossentropy" | "BinaryCrossentropy" => Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.0,
            },
            "mean_squared_error" | "mse" | "MSE" | "MeanSquaredError" => Loss::MeanSquaredError,
            "mean_absolute_error" | "mae" | "MAE" | "MeanAbsoluteError" => Loss::MeanAbsoluteError,
            "huber" | "Huber" => Loss::Huber { delta: 1.0 },
            _ => {
                return Err(DenseError::InvalidConfig {
                    what: format!("unknown loss {s:?}"),
                })
            }
        })
    }
}

impl fmt::Display for Loss {
    /// The Keras name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::CategoricalCrossentropy { .. } => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
            Loss::BinaryCrossentropy { .. } => "binary_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::Huber { .. } => "huber",
        })
    }
}

/// `|x|'` as jax has it: `+1` at 0 (and for NaN, as `x ≥ 0` is false: −1).
fn abs_slope(x: f64) -> f64 {
    if x >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// The derivative of `min(max(x, lo), hi)` with jax's halves at ties.
fn clip_slope(x: f64, lo: f64, hi: f64) -> f64 {
    let a = if x > lo {
        1.0
    } else if x == lo {
        0.5
    } else {
        0.0
    };
    let m = x.max(lo);
    let b = if m < hi {
        1.0
    } else if m == hi {
        0.5
    } else {
        0.0
    };
    a * b
}

impl Loss {
    /// Checks the parameters as Keras would (a label smoothing in `[0, 1]`, `δ ≥ 0`).
    pub(crate) fn validate(&self) -> Result<(), DenseError> {
        let ok = match *self {
            Loss::CategoricalCrossentropy {
                label_smoothing, ..
            }
            | Loss::BinaryCrossentropy {
                label_smoothing, ..
            } => (0.0..=1.0).contains(&label_smoothing),
            Loss::Huber { delta } => delta >= 0.0 && delta.is_finite(),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(DenseError::InvalidConfig {
                what: format!("{self:?}: parameter out of range"),
            })
        }
    }

    /// Whether the targets are class indices (one per example).
    pub(crate) fn is_sparse(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    /// The shape the targets must have for a prediction of `pred_shape`: the same, or
    /// for the sparse loss the prediction's without its last axis (or with it as 1).
    pub(crate) fn check_target(
        &self,
        target_shape: &[usize],
        pred_shape: &[usize],
    ) -> Result<(), DenseError> {
        let ok = if self.is_sparse() {
            let lead = &pred_shape[..pred_shape.len().saturating_sub(1)];
            target_shape == lead
                || (target_shape.len() == pred_shape.len()
                    && target_shape.last() == Some(&1)
                    && &target_shape[..lead.len()] == lead)
        } else {
            target_shape == pred_shape
        };
        if ok {
            Ok(())
        } else {
            Err(DenseError::TargetShape {
                shape: target_shape.to_vec(),
                prediction: pred_shape.to_vec(),
                loss: self.to_string(),
            })
        }
    }

    /// The loss Keras's `loss(y_true, y_pred)` returns (`sum_over_batch_size`), in `f64`.
    ///
    /// # Errors
    /// [`DenseError::InputShape`] for data whose length is not its shape's product,
    /// [`DenseError::TargetShape`] for targets that do not fit the prediction,
    /// [`DenseError::InvalidLabel`] for a sparse label that is not a class index,
    /// [`DenseError::InvalidConfig`] for a parameter Keras refuses.
    pub fn compute<T: Element>(
        &self,
        y_true: &[T],
        true_shape: &[usize],
        y_pred: &[T],
        pred_shape: &[usize],
    ) -> Result<f64, DenseError> {
        for (d, s) in [(y_true.len(), true_shape), (y_pred.len(), pred_shape)] {
            if s.is_empty() || super::numel(s)? != d {
                return Err(DenseError::InputShape {
                    shape: s.to_vec(),
                    len: d,
                    expected_last: None,
                });
            }
        }
        self.validate()?;
        self.check_target(true_shape, pred_shape)?;
        let cols = pred_shape[pred_shape.len() - 1];
        self.value_and_grad(y_true, y_pred, cols, None)
    }

    /// The loss over `rows = y_pred.len() / cols` examples and, if `grad` is given, its
    /// gradient `dL/dy_pred` (rounded once to `T`). Shapes are checked by the caller.
    pub(crate) fn value_and_grad<T: Element>(
        &self,
        y_true: &[T],
        y_pred: &[T],
        cols: usize,
        mut grad: Option<&mut [T]>,
    ) -> Result<f64, DenseError> {
        if cols == 0 || y_pred.is_empty() {
            if let Some(g) = grad {
                g.fill(T::zero());
            }
            return Ok(0.0);
        }
        let rows = y_pred.len() / cols;
        let scale = 1.0 / rows as f64;
        let eps = T::narrow(LOSS_EPSILON).widen();
        let one_m_eps = T::narrow(1.0 - LOSS_EPSILON).widen();
        let mut total = 0.0;
        for r in 0..rows {
            let p = &y_pred[r * cols..(r + 1) * cols];
            let g = grad
                .as_deref_mut()
                .map(|g| &mut g[r * cols..(r + 1) * cols]);
            total += match *self {
                Loss::CategoricalCrossentropy {
                    from_logits,
                    label_smoothing,
                } => {
                    let t = &y_true[r * cols..(r + 1) * cols];
                    let c = cols as f64;
                    let tv =
                        |j: usize| t[j].widen() * (1.0 - label_smoothing) + label_smoothing / c;
                    crossentropy_row(p, tv, from_logits, eps, one_m_eps, scale, g)
                }
                Loss::SparseCategoricalCrossentropy { from_logits } => {
                    let label = y_true[r].widen();
                    let ok = label >= 0.0 && label < cols as f64 && label.fract() == 0.0;
                    if !ok {
                        return Err(DenseError::InvalidLabel {
                            index: r,
                            value: label.to_string(),
                            classes: cols,
                        });
                    }
                    let k = label as usize;
                    let tv = |j: usize| if j == k { 1.0 } else { 0.0 };
                    crossentropy_row(p, tv, from_logits, eps, one_m_eps, scale, g)
                }
                Loss::BinaryCrossentropy {
                    from_logits,
                    label_smoothing,
                } => {
                    let t = &y_true[r * cols..(r + 1) * cols];
                    let inv = 1.0 / cols as f64;
                    let mut s = 0.0;
                    let mut g = g;
                    for j in 0..cols {
                        let tj = t[j].widen() * (1.0 - label_smoothing) + 0.5 * label_smoothing;
                        let x = p[j].widen();
                        let (l, d) = if from_logits {
                            // −t·log σ(x) − (1−t)·log σ(−x); d/dx = σ(x) − t.
                            (
                                -tj * log_sigmoid(x) - (1.0 - tj) * log_sigmoid(-x),
                                crate::activation::scalar::sigmoid(x) - tj,
                            )
                        } else {
                            let q = x.max(eps).min(one_m_eps);
                            (
                                -(tj * q.ln() + (1.0 - tj) * (1.0 - q).ln()),
                                (-tj / q + (1.0 - tj) / (1.0 - q)) * clip_slope(x, eps, one_m_eps),
                            )
                        };
                        s += l;
                        if let Some(g) = g.as_deref_mut() {
                            g[j] = T::narrow(d * inv * scale);
                        }
                    }
                    s * inv
                }
                Loss::MeanSquaredError | Loss::MeanAbsoluteError | Loss::Huber { .. } => {
                    let t = &y_true[r * cols..(r + 1) * cols];
                    let inv = 1.0 / cols as f64;
                    let mut s = 0.0;
                    let mut g = g;
                    for j in 0..cols {
                        let e = p[j].widen() - t[j].widen();
                        let (l, d) = match *self {
                            Loss::MeanSquaredError => (e * e, 2.0 * e),
                            Loss::MeanAbsoluteError => (e.abs(), abs_slope(e)),
                            Loss::Huber { delta } => {
                                if e.abs() <= delta {
                                    (0.5 * e * e, e)
                                } else {
                                    (delta * e.abs() - 0.5 * delta * delta, delta * abs_slope(e))
                                }
                            }
                            _ => unreachable!("matched above"),
                        };
                        s += l;
                        if let Some(g) = g.as_deref_mut() {
                            g[j] = T::narrow(d * inv * scale);
                        }
                    }
                    s * inv
                }
            };
        }
        Ok(total * scale)
    }
}

/// `log σ(x)` without overflow: `−softplus(−x)`.
fn log_sigmoid(x: f64) -> f64 {
    -crate::activation::scalar::softplus(-x)
}

/// One example's crossentropy `−Σ t_j·log q_j` over the prediction `p` (probabilities,
/// normalised and clipped as Keras does, or logits through `log_softmax`), and, if `g`
/// is given, `scale · dL/dp` written into it.
fn crossentropy_row<T: Element>(
    p: &[T],
    t: impl Fn(usize) -> f64,
    from_logits: bool,
    eps: f64,
    one_m_eps: f64,
    scale: f64,
    g: Option<&mut [T]>,
) -> f64 {
    let n = p.len();
    if from_logits {
        // log_softmax(p)_j = p_j − m − log Σ exp(p_i − m); dL/dp_j = softmax_j·Σt − t_j.
        let m = p
            .iter()
            .map(|v| v.widen())
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = p.iter().map(|v| (v.widen() - m).exp()).sum::<f64>().ln();
        let (mut loss, mut tsum) = (0.0, 0.0);
        for (j, v) in p.iter().enumerate() {
            let tj = t(j);
            tsum += tj;
            if tj != 0.0 {
                loss -= tj * (v.widen() - m - lse);
            }
        }
        if let Some(g) = g {
            for (j, (d, v)) in g.iter_mut().zip(p).enumerate() {
                let sm = (v.widen() - m - lse).exp();
                *d = T::narrow((sm * tsum - t(j)) * scale);
            }
        }
        loss
    } else {
        // q = clip(p/S, ε, 1−ε); dL/dq_j = −t_j/q_j (0 where clipped);
        // dL/dp_j = (dL/dq_j − Σ_i dL/dq_i·p_i/S)/S.
        let s: f64 = p.iter().map(|v| v.widen()).sum();
        let mut loss = 0.0;
        let mut dot = 0.0;
        for (j, v) in p.iter().enumerate() {
            let x = v.widen() / s;
            let q = x.max(eps).min(one_m_eps);
            let tj = t(j);
            loss -= tj * q.ln();
            dot += -tj / q * clip_slope(x, eps, one_m_eps) * x;
        }
        if let Some(g) = g {
            for (j, (d, v)) in g.iter_mut().zip(p).enumerate().take(n) {
                let x = v.widen() / s;
                let q = x.max(eps).min(one_m_eps);
                let dq = -t(j) / q * clip_slope(x, eps, one_m_eps);
                *d = T::narrow((dq - dot) / s * scale);
            }
        }
        loss
    }
}
