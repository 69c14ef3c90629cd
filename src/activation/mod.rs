//! The activations: the [`Activation`] enum with Keras 3's names, definitions and
//! defaults, their scalar f64 definitions, and how they are applied to an output.

pub(crate) mod grad;
mod names;
pub(crate) mod scalar;

use crate::Element;

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
/// `hard_shrink(NaN) = soft_shrink(NaN) = 0`, `threshold(NaN) = default_value`, and relu
/// with a `threshold` (and no slope) gives 0 for NaN and `−∞` (their comparisons are
/// false for NaN; Keras 3.15's relu selects with `where(x > t, x, 0)`, where Keras 3.14
/// multiplied by `x > t` and gave NaN), `sparse_sigmoid`/`hard_sigmoid`/`relu6`/`hard_tanh`
/// keep NaN. Softmax and log_softmax give a NaN row for a row holding NaN or `+∞`
/// (`∞ − ∞`, as Keras does) and for a row of all `−∞`; `−∞` entries give 0 (log_softmax
/// `−∞`). Sparsemax follows the same rules.
///
/// Parameters are used at the precision of the output type ([`Activation::params_as`]),
/// as Keras casts them to the layer's dtype.
///
/// Departures from Keras, on purpose:
/// - where Keras's formula evaluates to NaN only through `0·∞` or `∞ − ∞` although the
///   limit exists, the limit is returned: `gelu`, `gelu(approximate=True)`, `silu`,
///   `mish`, `hard_silu` at `−∞` → `−0`; `squareplus(−∞) = 0`; `softsign(±∞) = ±1`;
///   `leaky_relu` with `negative_slope = 0` at `−∞` → `−0`;
/// - `squareplus` is evaluated without overflow or cancellation: Keras's `x + √(x² + b)`
///   gives `∞` for `|x| > 1.8e19` in `f32` and loses digits for `x ≪ 0`; the crate
///   uses `√(x² + b)` via `hypot` and `b/(2(√(x² + b) − x))` for `x < 0`;
/// - sparsemax follows its paper, not Keras 3.15 (whose rows do not sum to 1), and a
///   NaN anywhere in a row gives a NaN row (Keras: NaN at that position only);
/// - results below the smallest normal number: the piecewise activations keep
///   subnormals bit for bit; the transcendental ones (exp, sigmoid, silu, tanh, the elu
///   family, gelu, softplus, mish, log_sigmoid, softmax) either flush them to zero,
///   keeping the sign, as Keras on XLA does, or round them once to the nearest
///   subnormal (closer to exact; the accuracy checks allow both), by path: on AVX-512,
///   exponential, sigmoid, softplus, log_sigmoid, softmax and `f32` gelu keep them (a
///   single `vscalef` does the final scaling); silu and gelu(approximate=True) flush on
///   every path, `f32` mish (evaluated in `f64` lanes) keeps them on every path, and the
///   AVX2+FMA and portable paths flush the rest (gradual underflow there would cost
///   extra instructions or microcode assists).
///
/// # Accuracy
/// `dense_forward` applies the activation with vector kernels chosen at run time
/// ([`simd_path`](crate::simd_path): AVX-512, AVX2+FMA or the portable `wide` path). What
/// each one promises is [`reference::activation_ulp_bound`](crate::reference::activation_ulp_bound),
/// checked by the tests on every path the CPU has; in ulps of the exact result
/// (normal-range outputs), `f32`:
///
/// | activations | bound | how |
/// |---|---|---|
/// | relu family, leaky_relu, hard_sigmoid, hard_silu, hard_tanh, shrinks, threshold, sparse_plus, sparse_sigmoid | bit-exact with the scalar formula: for every `f32` input Keras 3.15's own result or the correctly rounded one (which, per activation: docs/ACCURACY.md) | same operations, in `f32` or `f64` lanes |
/// | exponential | 1 | Cody–Waite reduction, degree-7 polynomial |
/// | sigmoid, silu | 2.5 | `1/(1 + e⁻ˣ)`, `x/(1 + e⁻ˣ)`, the sum formed at `e⁻ˣ`'s scale |
/// | tanh, elu, selu, celu | 2 | odd polynomial / `1 − 2t/(1 + t)`; expm1 |
/// | gelu | 2 | AVX-512: `a·Φ(−a) = e^(−a²/2)·P(a)`, `a = |x|`, `P` a degree-5 polynomial from 32 table intervals, `a²` split exactly (1.58 measured); elsewhere `Φ(−a) = e^(−a²/2)·Q(w)/(a + 3)`, `w = (a − 3)/(a + 3)`, in `f64` lanes (0.52) |
/// | gelu(approximate=True) | 3 | `x/(1 + e^(−2u))` in `f64` lanes |
/// | softplus, log_sigmoid, mish | 4 | `log1p` with the sum's rounding compensated; `x·N/(N + 2)` (in `f64` lanes for `f32` mish) |
/// | softsign, squareplus, tanh_shrink | 1 | `f64` lanes, rounded once |
/// | softmax, log_softmax | 3 per element + the sum's rounding | max-shifted, summed in `f64` |
///
/// Measured maxima (all 2³² `f32` inputs) are in docs/ACCURACY.md. `f64`: exp ≤ 1, tanh ≤ 2
/// and the rest within a few ulps of the scalar `f64` definitions; `f64` gelu and
/// sparsemax (both types) run the scalar definitions. The scalar definitions themselves
/// are within a few ulps, except `tanh_shrink` for `0.4 ≤ |x| < 1` (cancellation, up to
/// ~20 ulps) and `gelu(approximate=True)` for `x ≪ 0`, whose relative error grows like
/// `|x|³·ε` from the rounding of its cubic argument (in every path: the argument is
/// rounded the same way).
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
    /// The same activation with every parameter rounded to `T`'s precision, as Keras
    /// casts parameters to the layer's dtype: for an `f32` layer, `hard_shrink` with
    /// `threshold = 0.1` compares against `0.1f32`, not `0.1f64`. The kernel applies this
    /// itself; the reference uses it to evaluate the same definition.
    pub fn params_as<T: Element>(self) -> Activation {
        let r = |p: f64| T::narrow(p).widen();
        use Activation::*;
        match self {
            LeakyRelu { negative_slope } => LeakyRelu {
                negative_slope: r(negative_slope),
            },
            Elu { alpha } => Elu { alpha: r(alpha) },
            Celu { alpha } => Celu { alpha: r(alpha) },
            Squareplus { b } => Squareplus { b: r(b) },
            SoftShrink { threshold } => SoftShrink {
                threshold: r(threshold),
            },
            HardShrink { threshold } => HardShrink {
                threshold: r(threshold),
            },
            Threshold {
                threshold,
                default_value,
            } => Threshold {
                threshold: r(threshold),
                default_value: r(default_value),
            },
            ReluWith {
                negative_slope,
                max_value,
                threshold,
            } => ReluWith {
                negative_slope: r(negative_slope),
                max_value: max_value.map(r),
                threshold: r(threshold),
            },
            other => other,
        }
    }

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
