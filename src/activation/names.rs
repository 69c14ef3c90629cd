//! Keras's string names: `FromStr` takes exactly the keys of Keras 3's
//! `keras.activations.get` table (aliases included); `Display` gives the canonical name
//! back, with the parameters in Keras call syntax when they differ from Keras's defaults.

use super::Activation;
use crate::DenseError;
use std::fmt;
use std::str::FromStr;

impl FromStr for Activation {
    type Err = DenseError;

    /// Parses a Keras 3 activation name, with Keras's default parameters.
    ///
    /// Case-sensitive, as Keras is. `"swish"` is `silu`, `"hard_swish"` is `hard_silu`.
    /// `"threshold"` is refused as in Keras (it has no default parameters; build
    /// [`Activation::Threshold`] directly), and so is `"glu"` (it halves the last axis).
    ///
    /// ```
    /// use dense_kernel::Activation;
    /// assert_eq!("swish".parse::<Activation>()?, Activation::Silu);
    /// assert_eq!("leaky_relu".parse::<Activation>()?, Activation::LeakyRelu { negative_slope: 0.2 });
    /// assert!("ReLU".parse::<Activation>().is_err());
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use Activation::*;
        Ok(match s {
            "linear" => Linear,
            "relu" => Relu,
            "relu6" => Relu6,
            "leaky_relu" => LeakyRelu {
                negative_slope: 0.2,
            },
            "elu" => Elu { alpha: 1.0 },
            "selu" => Selu,
            "celu" => Celu { alpha: 1.0 },
            "gelu" => Gelu,
            "sigmoid" => Sigmoid,
            "hard_sigmoid" => HardSigmoid,
            "silu" | "swish" => Silu,
            "hard_silu" | "hard_swish" => HardSilu,
            "tanh" => Tanh,
            "softplus" => Softplus,
            "softsign" => Softsign,
            "mish" => Mish,
            "exponential" => Exponential,
            "log_sigmoid" => LogSigmoid,
            "hard_tanh" => HardTanh,
            "tanh_shrink" => TanhShrink,
            "squareplus" => Squareplus { b: 4.0 },
            "sparse_plus" => SparsePlus,
            "soft_shrink" => SoftShrink { threshold: 0.5 },
            "hard_shrink" => HardShrink { threshold: 0.5 },
            "sparse_sigmoid" => SparseSigmoid,
            "softmax" => Softmax,
            "log_softmax" => LogSoftmax,
            "sparsemax" => Sparsemax,
            "threshold" => {
                return Err(DenseError::UnsupportedActivation {
                    name: s.to_owned(),
                    reason: "Keras's threshold has no defaults for `threshold` and \
                             `default_value`; use Activation::Threshold { .. }",
                })
            }
            "glu" => {
                return Err(DenseError::UnsupportedActivation {
                    name: s.to_owned(),
                    reason: "glu halves the last axis; only shape-keeping activations \
                             can be fused into Dense",
                })
            }
            _ => return Err(DenseError::UnknownActivation { name: s.to_owned() }),
        })
    }
}

/// Writes `name` alone, or `name(p=v, ...)` when some parameter differs from Keras's
/// default (or, for `threshold`, always: it has no defaults).
fn with_params(f: &mut fmt::Formatter<'_>, name: &str, params: &[(&str, f64, f64)]) -> fmt::Result {
    f.write_str(name)?;
    // `v == d` is false for NaN: a NaN parameter counts as non-default and is shown.
    if params.iter().all(|&(_, v, d)| v == d) {
        return Ok(());
    }
    f.write_str("(")?;
    for (i, (p, v, _)) in params.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{p}={v}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Activation {
    /// The canonical Keras name (`silu` for `swish`), as `FromStr` accepts it; with
    /// non-default parameters, Keras call syntax such as `leaky_relu(negative_slope=0.1)`
    /// (which `FromStr` does not parse, as Keras's `get` does not).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Activation::*;
        let name = match *self {
            Linear => "linear",
            Relu => "relu",
            Relu6 => "relu6",
            Selu => "selu",
            Gelu => "gelu",
            GeluTanh => "gelu(approximate=True)",
            Sigmoid => "sigmoid",
            HardSigmoid => "hard_sigmoid",
            Silu => "silu",
            HardSilu => "hard_silu",
            Tanh => "tanh",
            Softplus => "softplus",
            Softsign => "softsign",
            Mish => "mish",
            Exponential => "exponential",
            LogSigmoid => "log_sigmoid",
            HardTanh => "hard_tanh",
            TanhShrink => "tanh_shrink",
            SparsePlus => "sparse_plus",
            SparseSigmoid => "sparse_sigmoid",
            Softmax => "softmax",
            LogSoftmax => "log_softmax",
            Sparsemax => "sparsemax",
            LeakyRelu { negative_slope } => {
                return with_params(f, "leaky_relu", &[("negative_slope", negative_slope, 0.2)])
            }
            Elu { alpha } => return with_params(f, "elu", &[("alpha", alpha, 1.0)]),
            Celu { alpha } => return with_params(f, "celu", &[("alpha", alpha, 1.0)]),
            Squareplus { b } => return with_params(f, "squareplus", &[("b", b, 4.0)]),
            SoftShrink { threshold } => {
                return with_params(f, "soft_shrink", &[("threshold", threshold, 0.5)])
            }
            HardShrink { threshold } => {
                return with_params(f, "hard_shrink", &[("threshold", threshold, 0.5)])
            }
            Threshold {
                threshold,
                default_value,
            } => {
                return write!(
                    f,
                    "threshold(threshold={threshold}, default_value={default_value})"
                )
            }
            ReluWith {
                negative_slope,
                max_value,
                threshold,
            } => {
                if negative_slope == 0.0 && max_value.is_none() && threshold == 0.0 {
                    return f.write_str("relu");
                }
                write!(f, "relu(negative_slope={negative_slope}, max_value=")?;
                match max_value {
                    Some(m) => write!(f, "{m}")?,
                    None => f.write_str("None")?,
                }
                return write!(f, ", threshold={threshold})");
            }
        };
        // `pad` honours width and alignment (`{:>12}`) for the plain names.
        f.pad(name)
    }
}
