//! Keras's weight initializers, with Keras's formulas and defaults, seeded.
//!
//! For a Dense kernel of shape `(in, units)`, `fan_in = in` and `fan_out = units` (Keras's
//! `compute_fans`: `shape[0]`, `shape[1]`); for a bias `(units,)` both fans are `units`.
//! The `*_normal` variance-scaling initializers draw a normal truncated at ±2 of its
//! pre-truncation standard deviation, with that deviation divided by
//! `0.87962566103423978` so that the final standard deviation is `sqrt(scale / n)`;
//! plain [`Initializer::TruncatedNormal`] is *not* corrected (its final deviation is
//! about `0.88 · stddev`), as in Keras.
//!
//! Values are drawn in `f64` and rounded once to the layer's type. The same seed gives
//! the same weights on every machine; the numbers differ from Keras's (other
//! generator), the distributions are Keras's.

use super::rng::Rng;
use crate::{DenseError, Element};
use std::str::FromStr;

/// The standard deviation of a standard normal truncated to `[−2, 2]`: Keras divides by
/// it so a truncated variance-scaling normal keeps the intended deviation.
pub const TRUNCATION_STD: f64 = 0.879_625_661_034_239_8;

/// Which fan a [`Initializer::VarianceScaling`] divides its scale by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// `fan_in` (Keras `mode="fan_in"`).
    FanIn,
    /// `fan_out` (`"fan_out"`).
    FanOut,
    /// `(fan_in + fan_out) / 2` (`"fan_avg"`).
    FanAvg,
}

/// The distribution a [`Initializer::VarianceScaling`] draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Normal truncated at ±2σ, σ corrected by [`TRUNCATION_STD`] (`"truncated_normal"`).
    TruncatedNormal,
    /// Plain normal (`"untruncated_normal"`).
    UntruncatedNormal,
    /// Uniform on `±sqrt(3·scale/n)` (`"uniform"`).
    Uniform,
}

/// A Keras weight initializer. The Keras names parse (`"glorot_uniform".parse()`), with
/// Keras's default parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Initializer {
    /// `VarianceScaling(1, fan_avg, uniform)`: uniform on `±sqrt(6 / (fan_in + fan_out))`.
    /// Keras's default for a Dense kernel.
    GlorotUniform,
    /// `VarianceScaling(1, fan_avg, truncated_normal)`.
    GlorotNormal,
    /// `VarianceScaling(2, fan_in, uniform)`.
    HeUniform,
    /// `VarianceScaling(2, fan_in, truncated_normal)`.
    HeNormal,
    /// `VarianceScaling(1, fan_in, uniform)`.
    LecunUniform,
    /// `VarianceScaling(1, fan_in, truncated_normal)`.
    LecunNormal,
    /// Uniform on `[minval, maxval)`; Keras's defaults `±0.05`.
    RandomUniform {
        /// Lower bound.
        minval: f64,
        /// Upper bound.
        maxval: f64,
    },
    /// Normal; Keras's defaults `mean = 0`, `stddev = 0.05`.
    RandomNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
    },
    /// Normal redrawn outside `mean ± 2·stddev`, not corrected; defaults `0`, `0.05`.
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        stddev: f64,
    },
    /// All zeros: Keras's default for a Dense bias.
    Zeros,
    /// All ones.
    Ones,
    /// Every weight `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// A (semi-)orthogonal matrix times `gain`: the `Q` of a QR decomposition of a
    /// normal matrix, signs fixed by `R`'s diagonal, as Keras does. Default gain 1.
    Orthogonal {
        /// Multiplier.
        gain: f64,
    },
    /// Keras's `VarianceScaling(scale, mode, distribution)`; defaults `1.0`, fan_in,
    /// truncated normal.
    VarianceScaling {
        /// Scale (> 0).
        scale: f64,
        /// Which fan divides the scale.
        mode: FanMode,
        /// What to draw from.
        distribution: Distribution,
    },
}

impl FromStr for Initializer {
    type Err = DenseError;

    /// Keras 3's initializer names, with Keras's defaults.
    ///
    /// ```
    /// use dense_kernel::layer::Initializer;
    /// assert_eq!("he_normal".parse::<Initializer>()?, Initializer::HeNormal);
    /// assert_eq!(
    ///     "random_uniform".parse::<Initializer>()?,
    ///     Initializer::RandomUniform { minval: -0.05, maxval: 0.05 }
    /// );
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, DenseError> {
        use Initializer::*;
        Ok(match s {
            "glorot_uniform" => GlorotUniform,
            "glorot_normal" => GlorotNormal,
            "he_uniform" => HeUniform,
            "he_normal" => HeNormal,
            "lecun_uniform" => LecunUniform,
            "lecun_normal" => LecunNormal,
            "random_uniform" => RandomUniform {
                minval: -0.05,
                maxval: 0.05,
            },
            "random_normal" => RandomNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "truncated_normal" => TruncatedNormal {
                mean: 0.0,
                stddev: 0.05,
            },
            "zeros" => Zeros,
            "ones" => Ones,
            "constant" => Constant { value: 0.0 },
            "orthogonal" => Orthogonal { gain: 1.0 },
            "variance_scaling" => VarianceScaling {
                scale: 1.0,
                mode: FanMode::FanIn,
                distribution: Distribution::TruncatedNormal,
            },
            _ => {
                return Err(DenseError::InvalidConfig {
                    what: format!("unknown initializer {s:?}"),
                })
            }
        })
    }
}

/// Keras's `compute_fans` for the shapes a Dense layer has: `(fan_in, fan_out)`.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match *shape {
        [] => (1, 1),
        [n] => (n, n),
        [a, b] => (a, b),
        // Keras: receptive field × channels; not used by Dense, kept for completeness.
        [.., a, b] => {
            // Saturating: a shape this large has no weight, but its fans are asked for.
            let rf = shape[..shape.len() - 2]
                .iter()
                .fold(1usize, |p, &d| p.saturating_mul(d));
            (a.saturating_mul(rf), b.saturating_mul(rf))
        }
    }
}

impl Initializer {
    /// The variance-scaling form of the named variants (`None` for the others).
    pub fn as_variance_scaling(self) -> Option<(f64, FanMode, Distribution)> {
        use Distribution::*;
        use FanMode::*;
        use Initializer::*;
        Some(match self {
            GlorotUniform => (1.0, FanAvg, Uniform),
            GlorotNormal => (1.0, FanAvg, TruncatedNormal),
            HeUniform => (2.0, FanIn, Uniform),
            HeNormal => (2.0, FanIn, TruncatedNormal),
            LecunUniform => (1.0, FanIn, Uniform),
            LecunNormal => (1.0, FanIn, TruncatedNormal),
            VarianceScaling {
                scale,
                mode,
                distribution,
            } => (scale, mode, distribution),
            _ => return None,
        })
    }

    fn validate(self) -> Result<(), DenseError> {
        let bad = |what: String| Err(DenseError::InvalidConfig { what });
        match self {
            Initializer::RandomUniform { minval, maxval }
                if !(minval.is_finite() && maxval.is_finite() && minval <= maxval) =>
            {
                bad(format!(
                    "random_uniform needs finite minval <= maxval, got [{minval}, {maxval}]"
                ))
            }
            Initializer::RandomNormal { mean, stddev }
            | Initializer::TruncatedNormal { mean, stddev }
                if !(mean.is_finite() && stddev.is_finite() && stddev >= 0.0) =>
            {
                bad(format!(
                    "normal initializers need a finite mean and stddev >= 0, got {mean}, {stddev}"
                ))
            }
            Initializer::VarianceScaling { scale, .. } if !(scale.is_finite() && scale > 0.0) => {
                bad(format!("variance_scaling needs scale > 0, got {scale}"))
            }
            Initializer::Orthogonal { gain } | Initializer::Constant { value: gain }
                if !gain.is_finite() =>
            {
                bad(format!("{self:?}: the parameter must be finite"))
            }
            _ => Ok(()),
        }
    }

    /// Draws `shape`'s weights (row-major) from `seed`: the same seed, the same values.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for parameters Keras refuses (a negative `stddev`,
    /// `scale <= 0`, `minval > maxval`, non-finite values), or a shape too large to
    /// allocate.
    ///
    /// ```
    /// use dense_kernel::layer::Initializer;
    /// let w: Vec<f32> = Initializer::GlorotUniform.sample(&[4, 7], 42)?;
    /// let limit = (6.0f32 / (4.0 + 7.0)).sqrt();
    /// assert!(w.iter().all(|v| v.abs() <= limit));
    /// assert_eq!(w, Initializer::GlorotUniform.sample::<f32>(&[4, 7], 42)?);
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    pub fn sample<T: Element>(self, shape: &[usize], seed: u64) -> Result<Vec<T>, DenseError> {
        self.validate()?;
        let len = super::numel(shape).map_err(|_| DenseError::InvalidConfig {
            what: format!("weight shape {shape:?} overflows usize"),
        })?;
        let mut out = Vec::new();
        out.try_reserve_exact(len)
            .map_err(|_| DenseError::InvalidConfig {
                what: format!("cannot allocate a weight of shape {shape:?}"),
            })?;
        let mut rng = Rng::new(seed);
        if let Some((scale, mode, dist)) = self.as_variance_scaling() {
            let (fan_in, fan_out) = fans(shape);
            let n = match mode {
                FanMode::FanIn => fan_in as f64,
                FanMode::FanOut => fan_out as f64,
                FanMode::FanAvg => (fan_in + fan_out) as f64 / 2.0,
            };
            let scale = scale / n.max(1.0);
            match dist {
                Distribution::Uniform => {
                    let limit = (3.0 * scale).sqrt();
                    out.extend((0..len).map(|_| T::narrow(limit * (2.0 * rng.uniform() - 1.0))));
                }
                Distribution::TruncatedNormal => {
                    let std = scale.sqrt() / TRUNCATION_STD;
                    out.extend((0..len).map(|_| T::narrow(std * rng.truncated_normal())));
                }
                Distribution::UntruncatedNormal => {
                    let std = scale.sqrt();
                    out.extend((0..len).map(|_| T::narrow(std * rng.normal())));
                }
            }
            return Ok(out);
        }
        match self {
            Initializer::RandomUniform { minval, maxval } => {
                out.extend((0..len).map(|_| T::narrow(minval + (maxval - minval) * rng.uniform())))
            }
            Initializer::RandomNormal { mean, stddev } => {
                out.extend((0..len).map(|_| T::narrow(mean + stddev * rng.normal())))
            }
            Initializer::TruncatedNormal { mean, stddev } => {
                out.extend((0..len).map(|_| T::narrow(mean + stddev * rng.truncated_normal())))
            }
            Initializer::Zeros => out.resize(len, T::zero()),
            Initializer::Ones => out.resize(len, T::one()),
            Initializer::Constant { value } => out.resize(len, T::narrow(value)),
            Initializer::Orthogonal { gain } => out.extend(
                orthogonal(shape, len, gain, &mut rng)
                    .ok_or_else(|| DenseError::InvalidConfig {
                        what: format!("cannot allocate an orthogonal weight of shape {shape:?}"),
                    })?
                    .into_iter()
                    .map(T::narrow),
            ),
            _ => unreachable!("variance-scaling variants returned above"),
        }
        Ok(out)
    }
}

/// Keras's orthogonal initializer: rows = product of all but the last axis, cols = the
/// last; draw a normal matrix of the taller orientation, take `Q` of its QR
/// decomposition (modified Gram–Schmidt in `f64`), flip each column by the sign of
/// `R`'s diagonal, transpose back if it was wide, times `gain`.
/// `None` if its two `len`-element work buffers cannot be allocated.
fn orthogonal(shape: &[usize], len: usize, gain: f64, rng: &mut Rng) -> Option<Vec<f64>> {
    let zeros = |len: usize| {
        let mut v = Vec::new();
        v.try_reserve_exact(len).ok()?;
        v.resize(len, 0.0f64);
        Some(v)
    };
    let cols = shape.last().copied().unwrap_or(1);
    if len == 0 || cols == 0 {
        return zeros(len);
    }
    let rows = len / cols;
    let (r, c) = if rows < cols {
        (cols, rows)
    } else {
        (rows, cols)
    };
    // Column-major r × c (r·c = len), columns orthonormalised in turn.
    let mut a = zeros(len)?;
    a.iter_mut().for_each(|v| *v = rng.normal());
    for j in 0..c {
        let (done, rest) = a.split_at_mut(j * r);
        let col = &mut rest[..r];
        for q in done.chunks_exact(r) {
            let d: f64 = q.iter().zip(col.iter()).map(|(x, y)| x * y).sum();
            for (y, x) in col.iter_mut().zip(q) {
                *y -= d * x;
            }
        }
        // ‖col‖ is R's diagonal entry, positive here: dividing by it is Keras's sign
        // fix (q · sign(diag(R))) for a QR whose R has a positive diagonal.
        let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            for y in col.iter_mut() {
                *y /= norm;
            }
        }
    }
    let mut out = zeros(len)?;
    for i in 0..rows {
        for j in 0..cols {
            // Tall: element (i, j) of Q (column j); wide: element (j, i) of Q, transposed.
            let v = if rows >= cols {
                a[j * r + i]
            } else {
                a[i * r + j]
            };
            out[i * cols + j] = gain * v;
        }
    }
    Some(out)
}
