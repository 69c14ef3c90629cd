//! The activations: the [`Activation`] enum with Keras 3's names, definitions and
//! defaults, their scalar f64 definitions, and how they are applied to an output.

mod names;
pub(crate) mod scalar;

/// SELU's `alpha` (Keras 3 / Klambauer et al. 2017).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_2;
/// SELU's `scale` (Keras 3 / Klambauer et al. 2017).
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// A Keras 3 activation that keeps the shape, with Keras's parameter names.
///
/// Element-wise ones are applied to every output; [`Softmax`](Activation::Softmax),
/// [`LogSoftmax`](Activation::LogSoftmax) and [`Sparsemax`](Activation::Sparsemax) act
/// on each output row (the units axis, Keras's `axis=-1`).
///
/// Definitions (`x` is the pre-activation `x·W + b`), as Keras 3 defines them:
///
/// | variant | Keras name | definition |
/// |---|---|---|
/// | `Linear` | `linear` | `x` (Keras's `activation=None`; also [`Default`]) |
/// | `Relu` | `relu` | `max(x, 0)` |
/// | `ReluWith` | `relu(x, negative_slope, max_value, threshold)` | `x > threshold`: `x` (clipped to `[0, max_value]` when set), else `negative_slope·(x − threshold)`, Keras's exact formula |
/// | `Relu6` | `relu6` | `min(max(x, 0), 6)` |
/// | `LeakyRelu` | `leaky_relu` | `x ≥ 0 ? x : negative_slope·x`, default slope 0.2 |
/// | `Elu` | `elu` | `x > 0 ? x : alpha·(eˣ − 1)`, default alpha 1 |
/// | `Selu` | `selu` | `scale·elu(x, alpha)` with [`SELU_ALPHA`], [`SELU_SCALE`] |
/// | `Celu` | `celu` | `x > 0 ? x : alpha·(e^(x/alpha) − 1)`, default alpha 1 |
/// | `Gelu` | `gelu` | `x/2·(1 + erf(x/√2))` (Keras 3's default, `approximate=False`) |
/// | `GeluTanh` | `gelu(approximate=True)` | `x/2·(1 + tanh(√(2/π)·(x + 0.044715x³)))` |
/// | `Sigmoid` | `sigmoid` | `1/(1 + e⁻ˣ)` |
/// | `HardSigmoid` | `hard_sigmoid` | `relu6(x + 3)/6` (Keras 3; Keras 2 used `0.2x + 0.5`) |
/// | `Silu` | `silu`, `swish` | `x·sigmoid(x)` |
/// | `HardSilu` | `hard_silu`, `hard_swish` | `x·hard_sigmoid(x)` |
/// | `Tanh` | `tanh` | `tanh(x)` |
/// | `Softplus` | `softplus` | `ln(1 + eˣ)` |
/// | `Softsign` | `softsign` | `x/(1 + |x|)` |
/// | `Mish` | `mish` | `x·tanh(softplus(x))` |
/// | `Exponential` | `exponential` | `eˣ` |
/// | `LogSigmoid` | `log_sigmoid` | `−softplus(−x)` |
/// | `HardTanh` | `hard_tanh` | `clip(x, −1, 1)` |
/// | `TanhShrink` | `tanh_shrink` | `x − tanh(x)` |
/// | `Squareplus` | `squareplus` | `(x + √(x² + b))/2`, default b = 4 |
/// | `SparsePlus` | `sparse_plus` | `0` (x ≤ −1), `(x + 1)²/4` (\|x\| < 1), `x` (x ≥ 1) |
/// | `SoftShrink` | `soft_shrink` | `x − t` (x > t), `x + t` (x < −t), else `0`; t = 0.5 |
/// | `HardShrink` | `hard_shrink` | `|x| > t ? x : 0`; t = 0.5 |
/// | `SparseSigmoid` | `sparse_sigmoid` | `clip((x + 1)/2, 0, 1)` |
/// | `Threshold` | `threshold` (needs its parameters) | `x > threshold ? x : default_value` |
/// | `Softmax` | `softmax` | `e^(x−max)/Σe^(x−max)` over the row |
/// | `LogSoftmax` | `log_softmax` | `x − max − ln Σe^(x−max)` over the row |
/// | `Sparsemax` | `sparsemax` | Euclidean projection of the row onto the simplex (Martins & Astudillo 2016): rows sum to 1 |
///
/// # Special values
/// NaN in gives NaN out, except where Keras's formula says otherwise:
/// `hard_shrink(NaN) = soft_shrink(NaN) = 0` and `threshold(NaN) = default_value` (their
/// comparisons are false for NaN), `sparse_sigmoid`/`hard_sigmoid`/`relu6`/`hard_tanh`
/// keep NaN. Softmax and log_softmax give a NaN row for a row holding NaN or `+∞`
/// (`∞ − ∞`, as Keras does) and for a row of all `−∞`; `−∞` entries give 0 (log_softmax
/// `−∞`). Sparsemax follows the same rules.
///
/// Departures from Keras, on purpose: where Keras's formula evaluates to NaN only
/// through `0·∞` or `∞ − ∞` although the limit exists, the limit is returned:
/// `gelu`, `gelu(approximate=True)`, `silu`, `mish`, `hard_silu` at `−∞` → `−0`;
/// `squareplus(−∞) = 0`; `softsign(±∞) = ±1`; `leaky_relu`/`relu(..)` with a zero slope at
/// `−∞` → 0, and `relu(..)` with a non-zero `threshold` at `−∞` → its negative part.
/// Sparsemax follows its paper, not Keras 3.15 (whose rows do not sum to 1). Subnormal
/// results are kept (Keras on XLA flushes them to zero).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Activation {
    /// `x`.
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `relu6`: `min(max(x, 0), 6)`.
    Relu6,
    /// `x ≥ 0 ? x : negative_slope·x` (Keras default slope 0.2).
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f64,
    },
    /// `x > 0 ? x : alpha·(eˣ − 1)`.
    Elu {
        /// Scale of the negative part.
        alpha: f64,
    },
    /// `scale·elu(x, alpha)` with fixed `alpha`, `scale`.
    Selu,
    /// `x > 0 ? x : alpha·(e^(x/alpha) − 1)`.
    Celu {
        /// Scale of the negative part.
        alpha: f64,
    },
    /// Exact (erf) GELU: Keras 3's `gelu`.
    Gelu,
    /// The tanh approximation of GELU: Keras's `gelu(x, approximate=True)`.
    GeluTanh,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `relu6(x + 3)/6`.
    HardSigmoid,
    /// `x·sigmoid(x)` (alias `swish`).
    Silu,
    /// `x·hard_sigmoid(x)` (alias `hard_swish`).
    HardSilu,
    /// `tanh(x)`.
    Tanh,
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `x/(1 + |x|)`.
    Softsign,
    /// `x·tanh(softplus(x))`.
    Mish,
    /// `eˣ`.
    Exponential,
    /// `−softplus(−x)`.
    LogSigmoid,
    /// `clip(x, −1, 1)`.
    HardTanh,
    /// `x − tanh(x)`.
    TanhShrink,
    /// `(x + √(x² + b))/2`.
    Squareplus {
        /// Smoothness (Keras default 4).
        b: f64,
    },
    /// Piecewise `0 / (x+1)²/4 / x` around `[−1, 1]`.
    SparsePlus,
    /// `x ∓ threshold` outside `[−threshold, threshold]`, else 0.
    SoftShrink {
        /// Half-width of the zero band (Keras default 0.5).
        threshold: f64,
    },
    /// `|x| > threshold ? x : 0`.
    HardShrink {
        /// Half-width of the zero band (Keras default 0.5).
        threshold: f64,
    },
    /// `clip((x + 1)/2, 0, 1)`.
    SparseSigmoid,
    /// `x > threshold ? x : default_value`.
    Threshold {
        /// Values at or below this are replaced.
        threshold: f64,
        /// The replacement.
        default_value: f64,
    },
    /// Softmax over each output row, max-subtracted.
    Softmax,
    /// Log-softmax over each output row, max-subtracted.
    LogSoftmax,
    /// Sparsemax over each output row (rows sum to 1).
    Sparsemax,
    /// Keras's `relu(x, negative_slope, max_value, threshold)` with parameters.
    ReluWith {
        /// Slope below the threshold.
        negative_slope: f64,
        /// Upper clip, if any.
        max_value: Option<f64>,
        /// Where the linear part starts.
        threshold: f64,
    },
}

impl Activation {
    /// Keras's `leaky_relu` with its default slope 0.2.
    pub const LEAKY_RELU: Activation = Activation::LeakyRelu {
        negative_slope: 0.2,
    };

    /// True for the activations that act on a whole output row (softmax, log_softmax,
    /// sparsemax) rather than on each element.
    pub fn is_row_wise(&self) -> bool {
        matches!(
            self,
            Activation::Softmax | Activation::LogSoftmax | Activation::Sparsemax
        )
    }

    /// Every variant with Keras's default parameters (and `ReluWith`/`Threshold` with
    /// example parameters): handy for tests and benchmarks that sweep all activations.
    pub fn all() -> &'static [Activation] {
        use Activation::*;
        &[
            Linear,
            Relu,
            Relu6,
            LeakyRelu {
                negative_slope: 0.2,
            },
            Elu { alpha: 1.0 },
            Selu,
            Celu { alpha: 1.0 },
            Gelu,
            GeluTanh,
            Sigmoid,
            HardSigmoid,
            Silu,
            HardSilu,
            Tanh,
            Softplus,
            Softsign,
            Mish,
            Exponential,
            LogSigmoid,
            HardTanh,
            TanhShrink,
            Squareplus { b: 4.0 },
            SparsePlus,
            SoftShrink { threshold: 0.5 },
            HardShrink { threshold: 0.5 },
            SparseSigmoid,
            Threshold {
                threshold: 0.5,
                default_value: -1.0,
            },
            Softmax,
            LogSoftmax,
            Sparsemax,
            ReluWith {
                negative_slope: 0.1,
                max_value: Some(6.0),
                threshold: 0.5,
            },
        ]
    }
}
