//! Keras's accuracy metrics, and how Keras resolves the name `"accuracy"`.

use std::fmt;
use std::str::FromStr;

use crate::{DenseError, Element};

/// A Keras metric of the accuracy family, reported by `fit` and `evaluate` as the mean
/// over every example seen (weighted by batch size, as Keras's `Mean` metrics are).
///
/// ```
/// use dense_kernel::layer::Metric;
/// assert_eq!("acc".parse::<Metric>()?, Metric::Accuracy);
/// assert_eq!(Metric::BinaryAccuracy.to_string(), "binary_accuracy");
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metric {
    /// `"accuracy"` / `"acc"`: Keras picks one of the metrics below from the shapes
    /// of the targets and the output, as its `compile` does: binary accuracy for a
    /// single output unit, sparse categorical accuracy for class-index targets,
    /// categorical accuracy otherwise (a multi-label `binary_crossentropy` model too).
    /// Reported under the name `accuracy`.
    Accuracy,
    /// The argmax of the prediction equals the argmax of the target (first maximum on
    /// ties, as `argmax`).
    CategoricalAccuracy,
    /// The argmax of the prediction equals the class index.
    SparseCategoricalAccuracy,
    /// Per element, the target equals `prediction > 0.5` as 0 or 1 (Keras's threshold
    /// and comparison: a soft target such as 0.7 never matches), mean over the last axis.
    BinaryAccuracy,
}

impl FromStr for Metric {
    type Err = DenseError;
    fn from_str(s: &str) -> Result<Self, DenseError> {
        Ok(match s {
            "accuracy" | "acc" => Metric::Accuracy,
            "categorical_accuracy" => Metric::CategoricalAccuracy,
            "sparse_categorical_accuracy" => Metric::SparseCategoricalAccuracy,
            "binary_accuracy" => Metric::BinaryAccuracy,
            _ => {
                return Err(DenseError::InvalidConfig {
                    what: format!("unknown metric {s:?}"),
                })
            }
        })
    }
}

impl fmt::Display for Metric {
    /// The name Keras reports it under.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Accuracy => "accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::BinaryAccuracy => "binary_accuracy",
        })
    }
}

/// The first index of the row's maximum (NaN never wins, as in `argmax` over numbers).
fn argmax<T: Element>(row: &[T]) -> usize {
    let mut best = 0;
    let mut bv = f64::NEG_INFINITY;
    for (j, v) in row.iter().enumerate() {
        let v = v.widen();
        if v > bv {
            bv = v;
            best = j;
        }
    }
    best
}

impl Metric {
    /// The concrete metric `"accuracy"` stands for, from the targets' and the
    /// predictions' shapes as Keras 3 decides it (`compile_utils.get_metric`): binary if
    /// the prediction's last axis is 1; sparse categorical if the targets have a lower
    /// rank, or a last axis of 1 against a wider prediction; categorical otherwise
    /// (also for a multi-label `binary_crossentropy`, as in Keras).
    pub(crate) fn resolve(self, true_shape: &[usize], pred_shape: &[usize]) -> Metric {
        match self {
            Metric::Accuracy => {
                let (t_last, p_last) = (true_shape.last(), pred_shape.last());
                if p_last == Some(&1) {
                    Metric::BinaryAccuracy
                } else if true_shape.len() < pred_shape.len()
                    || (t_last == Some(&1) && p_last.is_some_and(|&p| p > 1))
                {
                    Metric::SparseCategoricalAccuracy
                } else {
                    Metric::CategoricalAccuracy
                }
            }
            m => m,
        }
    }

    /// The sum over the examples (rows of `cols`) of each one's accuracy in `[0, 1]`;
    /// `self` already resolved. Sparse targets hold one class index per row.
    ///
    /// # Errors
    /// [`DenseError::TargetShape`] if the targets do not have the metric's form (one
    /// value per prediction, or one class index per row for the sparse metric).
    pub(crate) fn sum<T: Element>(
        self,
        y_true: &[T],
        y_pred: &[T],
        cols: usize,
    ) -> Result<f64, DenseError> {
        if cols == 0 {
            return Ok(0.0);
        }
        let rows = y_pred.len() / cols;
        let fits = match self {
            Metric::SparseCategoricalAccuracy => y_true.len() == rows,
            _ => y_true.len() == y_pred.len(),
        };
        if !fits {
            return Err(DenseError::TargetShape {
                shape: vec![y_true.len()],
                prediction: vec![rows, cols],
                loss: format!("metric {self}"),
            });
        }
        let mut s = 0.0;
        for r in 0..rows {
            let p = &y_pred[r * cols..(r + 1) * cols];
            s += match self {
                Metric::CategoricalAccuracy => {
                    let t = &y_true[r * cols..(r + 1) * cols];
                    f64::from(u8::from(argmax(p) == argmax(t)))
                }
                Metric::SparseCategoricalAccuracy => {
                    f64::from(u8::from(argmax(p) as f64 == y_true[r].widen()))
                }
                Metric::BinaryAccuracy | Metric::Accuracy => {
                    let t = &y_true[r * cols..(r + 1) * cols];
                    let hits = p
                        .iter()
                        .zip(t)
                        .filter(|(p, t)| t.widen() == f64::from(u8::from(p.widen() > 0.5)))
                        .count();
                    hits as f64 / cols as f64
                }
            };
        }
        Ok(s)
    }
}
