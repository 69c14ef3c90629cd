//! Keras 3's optimizers: their update rules, defaults and per-variable slots, and the
//! gradient clipping Keras applies before them.

use std::fmt;
use std::str::FromStr;

use crate::{DenseError, Element};

/// A Keras 3 optimizer with its parameters as Keras names them; `"adam"`.parse() and
/// friends give Keras's defaults.
///
/// One step, for every trainable variable `w` with gradient `g` (after clipping,
/// [`CompileOptions`](super::CompileOptions)), `t` the step number from 1, each update
/// computed in `f64` from the stored values and rounded once to the model's precision
/// (Keras computes in the variable's dtype; docs/ACCURACY.md "Training"):
///
/// | optimizer | update |
/// |---|---|
/// | `Sgd` | `w −= lr·g`; with momentum `m = momentum·m − lr·g`, `w += m` (nesterov: `w += momentum·m − lr·g`) |
/// | `Adam` | `m += (g − m)(1 − β₁)`, `v += (g² − v)(1 − β₂)`, `w −= m·α / (√v + ε)`, `α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)`; amsgrad: `v̂ = max(v̂, v)` in place of `v` |
/// | `AdamW` | `w −= w·weight_decay·lr` (every variable, bias included), then Adam |
/// | `RmsProp` | `v = ρv + (1 − ρ)g²`, `Δ = lr·g / √(v + ε)` (centered: `√(v − ḡ² + ε)`, `ḡ = ρḡ + (1 − ρ)g`); `w −= Δ`, or with momentum `m = momentum·m + Δ`, `w −= m` |
/// | `Adagrad` | `a += g²` (from `initial_accumulator_value`), `w −= lr·g / √(a + ε)` |
///
/// ```
/// use dense_kernel::layer::Optimizer;
/// let adam: Optimizer = "adam".parse()?;
/// assert_eq!(adam, Optimizer::Adam {
///     learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false,
/// });
/// assert_eq!(adam.to_string(), "adam");
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Optimizer {
    /// `keras.optimizers.SGD` (defaults: 0.01, 0.0, false).
    Sgd {
        /// The step size.
        learning_rate: f64,
        /// The velocity's decay (0: plain gradient descent).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `keras.optimizers.Adam` (defaults: 0.001, 0.9, 0.999, 1e-7, false).
    Adam {
        /// The step size.
        learning_rate: f64,
        /// The first moment's decay.
        beta_1: f64,
        /// The second moment's decay.
        beta_2: f64,
        /// Added to `√v` (Keras's 1e-7, not PyTorch's 1e-8).
        epsilon: f64,
        /// Use the maximum of past second moments.
        amsgrad: bool,
    },
    /// `keras.optimizers.AdamW` (defaults: 0.001, 0.004, 0.9, 0.999, 1e-7, false).
    AdamW {
        /// The step size.
        learning_rate: f64,
        /// Decoupled weight decay, applied before the update.
        weight_decay: f64,
        /// The first moment's decay.
        beta_1: f64,
        /// The second moment's decay.
        beta_2: f64,
        /// Added to `√v`.
        epsilon: f64,
        /// Use the maximum of past second moments.
        amsgrad: bool,
    },
    /// `keras.optimizers.RMSprop` (defaults: 0.001, 0.9, 0.0, 1e-7, false).
    RmsProp {
        /// The step size.
        learning_rate: f64,
        /// The squared gradients' decay.
        rho: f64,
        /// The momentum (0: none).
        momentum: f64,
        /// Added under the square root.
        epsilon: f64,
        /// Divide by the gradients' estimated variance rather than their second moment.
        centered: bool,
    },
    /// `keras.optimizers.Adagrad` (defaults: 0.001, 0.1, 1e-7).
    Adagrad {
        /// The step size.
        learning_rate: f64,
        /// The accumulators' start value.
        initial_accumulator_value: f64,
        /// Added under the square root.
        epsilon: f64,
    },
}

impl FromStr for Optimizer {
    type Err = DenseError;
    /// Keras's names (`keras.optimizers.get`), with Keras's defaults.
    fn from_str(s: &str) -> Result<Self, DenseError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" => Optimizer::Sgd {
                learning_rate: 0.01,
                momentum: 0.0,
                nesterov: false,
            },
            "adam" => Optimizer::Adam {
                learning_rate: 0.001,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                amsgrad: false,
            },
            "adamw" => Optimizer::AdamW {
                learning_rate: 0.001,
                weight_decay: 0.004,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-7,
                amsgrad: false,
            },
            "rmsprop" => Optimizer::RmsProp {
                learning_rate: 0.001,
                rho: 0.9,
                momentum: 0.0,
                epsilon: 1e-7,
                centered: false,
            },
            "adagrad" => Optimizer::Adagrad {
                learning_rate: 0.001,
                initial_accumulator_value: 0.1,
                epsilon: 1e-7,
            },
            _ => {
                return Err(DenseError::InvalidConfig {
                    what: format!("unknown optimizer {s:?}"),
                })
            }
        })
    }
}

impl fmt::Display for Optimizer {
    /// The Keras name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
            Optimizer::RmsProp { .. } => "rmsprop",
            Optimizer::Adagrad { .. } => "adagrad",
        })
    }
}

/// The slots of one variable (Keras's optimizer variables), each of the variable's size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SlotKinds {
    /// How many arrays.
    pub count: usize,
    /// The first one's start value (Adagrad's accumulator), the others start at 0.
    pub first_init: f64,
}

impl Optimizer {
    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        match *self {
            Optimizer::Sgd { learning_rate, .. }
            | Optimizer::Adam { learning_rate, .. }
            | Optimizer::AdamW { learning_rate, .. }
            | Optimizer::RmsProp { learning_rate, .. }
            | Optimizer::Adagrad { learning_rate, .. } => learning_rate,
        }
    }

    /// Checks the parameters as Keras does (finite, non-negative rates; decays in
    /// `[0, 1]`).
    pub(crate) fn validate(&self) -> Result<(), DenseError> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        let nonneg = |x: f64| x >= 0.0 && x.is_finite();
        let ok = nonneg(self.learning_rate())
            && match *self {
                Optimizer::Sgd { momentum, .. } => unit(momentum),
                Optimizer::Adam {
                    beta_1,
                    beta_2,
                    epsilon,
                    ..
                } => unit(beta_1) && unit(beta_2) && nonneg(epsilon),
                Optimizer::AdamW {
                    weight_decay,
                    beta_1,
                    beta_2,
                    epsilon,
                    ..
                } => nonneg(weight_decay) && unit(beta_1) && unit(beta_2) && nonneg(epsilon),
                Optimizer::RmsProp {
                    rho,
                    momentum,
                    epsilon,
                    ..
                } => unit(rho) && unit(momentum) && nonneg(epsilon),
                Optimizer::Adagrad {
                    initial_accumulator_value,
                    epsilon,
                    ..
                } => nonneg(initial_accumulator_value) && nonneg(epsilon),
            };
        if ok {
            Ok(())
        } else {
            Err(DenseError::InvalidConfig {
                what: format!("{self:?}: parameter out of range"),
            })
        }
    }

    /// The slot arrays each variable needs.
    pub(crate) fn slots(&self) -> SlotKinds {
        let count = match *self {
            Optimizer::Sgd { momentum, .. } => usize::from(momentum != 0.0),
            Optimizer::Adam { amsgrad, .. } | Optimizer::AdamW { amsgrad, .. } => {
                2 + usize::from(amsgrad)
            }
            Optimizer::RmsProp {
                momentum, centered, ..
            } => 1 + usize::from(momentum > 0.0) + usize::from(centered),
            Optimizer::Adagrad { .. } => 1,
        };
        let first_init = match *self {
            Optimizer::Adagrad {
                initial_accumulator_value,
                ..
            } => initial_accumulator_value,
            _ => 0.0,
        };
        SlotKinds { count, first_init }
    }

    /// One update of `w` by its gradient `g` at step `t` (from 1), with the variable's
    /// `slots` ([`slots`](Self::slots) of them, each at least `w.len()` long).
    ///
    /// Element-wise in `T`, in Keras's order of operations (Keras computes in the
    /// variable's dtype); the step's scalars (`α`, `1 − β`, …) are computed in `f64`
    /// and rounded once. Each update's own rounding is relative to the step
    /// (`~lr`), far below the rounding of the stored weight. Split over the caller's
    /// rayon threads for large variables: element by element, so bitwise the same for
    /// any thread count.
    pub(crate) fn update<T: Element>(&self, t: u64, w: &mut [T], g: &[T], slots: &mut [Vec<T>]) {
        let n = w.len();
        let mut it = slots.iter_mut().map(|s| &mut s[..n]);
        let s: [&mut [T]; 3] = [
            it.next().unwrap_or(&mut []),
            it.next().unwrap_or(&mut []),
            it.next().unwrap_or(&mut []),
        ];
        let c = T::narrow;
        match *self {
            Optimizer::Sgd {
                learning_rate,
                momentum,
                nesterov,
            } => {
                let (lr, mom) = (c(learning_rate), c(momentum));
                let plain = momentum == 0.0;
                par_update(w, &g[..n], s, &|w, g, [m, _, _]| {
                    if plain {
                        for (w, g) in w.iter_mut().zip(g) {
                            *w = *w - *g * lr;
                        }
                    } else if nesterov {
                        for ((w, g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                            *m = -*g * lr + *m * mom;
                            *w = *w + (-*g * lr + *m * mom);
                        }
                    } else {
                        for ((w, g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                            *m = -*g * lr + *m * mom;
                            *w = *w + *m;
                        }
                    }
                });
            }
            Optimizer::Adam {
                learning_rate,
                beta_1,
                beta_2,
                epsilon,
                amsgrad,
            } => adam(
                t,
                (learning_rate, beta_1, beta_2, epsilon, amsgrad),
                0.0,
                w,
                &g[..n],
                s,
            ),
            Optimizer::AdamW {
                learning_rate,
                weight_decay,
                beta_1,
                beta_2,
                epsilon,
                amsgrad,
            } => adam(
                t,
                (learning_rate, beta_1, beta_2, epsilon, amsgrad),
                weight_decay * learning_rate,
                w,
                &g[..n],
                s,
            ),
            Optimizer::RmsProp {
                learning_rate,
                rho,
                momentum,
                epsilon,
                centered,
            } => {
                let (lr, r, r1, mom, eps) = (
                    c(learning_rate),
                    c(rho),
                    c(1.0 - rho),
                    c(momentum),
                    c(epsilon),
                );
                let with_mom = momentum > 0.0;
                par_update(w, &g[..n], s, &|w, g, [vel, a, b]| {
                    // Slots in order: velocity, then momentum (if any), then the
                    // average gradient (if centered).
                    let (mo, avg) = if with_mom { (a, b) } else { (b, a) };
                    for i in 0..w.len() {
                        let gi = g[i];
                        vel[i] = r * vel[i] + r1 * (gi * gi);
                        let denom = if centered {
                            avg[i] = r * avg[i] + r1 * gi;
                            vel[i] - avg[i] * avg[i] + eps
                        } else {
                            vel[i] + eps
                        };
                        let inc = lr * gi / denom.sqrt();
                        if with_mom {
                            mo[i] = mom * mo[i] + inc;
                            w[i] = w[i] - mo[i];
                        } else {
                            w[i] = w[i] - inc;
                        }
                    }
                });
            }
            Optimizer::Adagrad {
                learning_rate,
                epsilon,
                ..
            } => {
                let (lr, eps) = (c(learning_rate), c(epsilon));
                par_update(w, &g[..n], s, &|w, g, [acc, _, _]| {
                    for ((w, g), a) in w.iter_mut().zip(g).zip(acc.iter_mut()) {
                        *a = *a + *g * *g;
                        *w = *w - lr * *g / (*a + eps).sqrt();
                    }
                });
            }
        }
    }
}

/// The element-wise update over one piece: `(w, g, [slot; 3])`, absent slots empty.
type Piece<'a, T> = dyn Fn(&mut [T], &[T], [&mut [T]; 3]) + Sync + 'a;

/// Variables at least this long are split over the rayon pool (a piece is about half
/// of a core's L2 for `f32`'s four arrays).
const PAR_MIN: usize = 1 << 15;

/// Runs `f` over `w`, `g` and the slots, split in halves recursively over the rayon
/// pool while pieces are at least [`PAR_MIN`] long (no allocation: `rayon::join`).
fn par_update<T: Element>(w: &mut [T], g: &[T], s: [&mut [T]; 3], f: &Piece<'_, T>) {
    let n = w.len();
    if n < 2 * PAR_MIN || rayon::current_num_threads() < 2 {
        f(w, g, s);
        return;
    }
    let mid = n / 2;
    let (w0, w1) = w.split_at_mut(mid);
    let (g0, g1) = g.split_at(mid);
    let [a, b, c] = s;
    let ((a0, a1), (b0, b1), (c0, c1)) = (halves(a, mid), halves(b, mid), halves(c, mid));
    rayon::join(
        || par_update(w0, g0, [a0, b0, c0], f),
        || par_update(w1, g1, [a1, b1, c1], f),
    );
}

/// `x` split at `mid`, or two empty slices for an absent (empty) slot.
fn halves<T>(x: &mut [T], mid: usize) -> (&mut [T], &mut [T]) {
    if x.is_empty() {
        (&mut [], &mut [])
    } else {
        x.split_at_mut(mid)
    }
}

/// Adam's update (AdamW's with `decay = weight_decay·lr`, applied first as Keras's
/// `w − w·wd·lr`): slots `m`, `v` and, with amsgrad, `v̂`.
fn adam<T: Element>(
    t: u64,
    (lr, beta_1, beta_2, epsilon, amsgrad): (f64, f64, f64, f64, bool),
    decay: f64,
    w: &mut [T],
    g: &[T],
    s: [&mut [T]; 3],
) {
    let c = T::narrow;
    // Keras raises β to the step; t fits an i32 in practice.
    let tt = t.min(i32::MAX as u64) as i32;
    let alpha = c(lr * (1.0 - beta_2.powi(tt)).sqrt() / (1.0 - beta_1.powi(tt)));
    let (b1, b2, eps, wd) = (c(1.0 - beta_1), c(1.0 - beta_2), c(epsilon), c(decay));
    let k = AdamConsts {
        alpha,
        b1,
        b2,
        eps,
        wd,
    };
    par_update(
        w,
        g,
        s,
        &|w, g, [m, v, vhat]| match (decay != 0.0, amsgrad) {
            (false, false) => adam_run::<T, false, false>(&k, w, g, m, v, vhat),
            (true, false) => adam_run::<T, true, false>(&k, w, g, m, v, vhat),
            (false, true) => adam_run::<T, false, true>(&k, w, g, m, v, vhat),
            (true, true) => adam_run::<T, true, true>(&k, w, g, m, v, vhat),
        },
    );
}

/// Adam's per-step constants, at the variable's precision.
struct AdamConsts<T> {
    alpha: T,
    b1: T,
    b2: T,
    eps: T,
    wd: T,
}

/// Adam over one piece, straight-line for each variant (so the loop vectorizes).
fn adam_run<T: Element, const DECAY: bool, const AMS: bool>(
    k: &AdamConsts<T>,
    w: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    vhat: &mut [T],
) {
    let n = w.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let vhat = if AMS { &mut vhat[..n] } else { &mut vhat[..0] };
    for i in 0..n {
        let mut wi = w[i];
        if DECAY {
            wi = wi - wi * k.wd;
        }
        let gi = g[i];
        let mi = m[i] + (gi - m[i]) * k.b1;
        m[i] = mi;
        let mut vi = v[i] + (gi * gi - v[i]) * k.b2;
        v[i] = vi;
        if AMS {
            // jnp.maximum: NaN wins.
            let h = vhat[i];
            if !(vi > h || vi.is_nan()) {
                vi = h;
            }
            vhat[i] = vi;
        }
        w[i] = wi - (mi * k.alpha) / (vi.sqrt() + k.eps);
    }
}

/// Keras's optional gradient clipping (at most one of the three, as Keras allows).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Clip {
    pub clipnorm: Option<f64>,
    pub clipvalue: Option<f64>,
    pub global_clipnorm: Option<f64>,
}

impl Clip {
    pub(crate) fn validate(&self) -> Result<(), DenseError> {
        let set = [self.clipnorm, self.clipvalue, self.global_clipnorm];
        let n = set.iter().flatten().count();
        let bad = set.iter().flatten().any(|v| !(*v > 0.0 && v.is_finite()));
        if n > 1 || bad {
            return Err(DenseError::InvalidConfig {
                what: format!(
                    "gradient clipping {self:?}: at most one of clipnorm, clipvalue, \
                     global_clipnorm, each positive and finite"
                ),
            });
        }
        Ok(())
    }

    /// The factor `global_clipnorm` scales every gradient by, given all of them
    /// (Keras's `clip_by_global_norm`: `c·min(1/‖g‖, 1/c)`, NaN if the norm is).
    pub(crate) fn global_scale<'a, T: Element>(
        &self,
        grads: impl Iterator<Item = &'a [T]>,
    ) -> Option<f64> {
        let c = self.global_clipnorm?;
        let norm = grads
            .flat_map(|g| g.iter().map(|v| v.widen() * v.widen()))
            .sum::<f64>()
            .sqrt();
        // Keras adds `norm − norm`: a NaN or infinite norm makes every gradient NaN.
        Some(if norm.is_finite() {
            c * (1.0 / norm).min(1.0 / c)
        } else {
            f64::NAN
        })
    }

    /// Clips one variable's gradient in place: per-variable `clipnorm`
    /// (`g·c / max(‖g‖, c)`), `clipvalue` (`clip(g, −c, c)`), or the global factor.
    pub(crate) fn apply<T: Element>(&self, g: &mut [T], global: Option<f64>) {
        if let Some(c) = self.clipnorm {
            let l2: f64 = g.iter().map(|v| v.widen() * v.widen()).sum::<f64>().sqrt();
            let d = l2.max(c);
            for v in g.iter_mut() {
                *v = T::narrow(v.widen() * c / d);
            }
        } else if let Some(c) = self.clipvalue {
            for v in g.iter_mut() {
                let x = v.widen();
                if x > c {
                    *v = T::narrow(c);
                } else if x < -c {
                    *v = T::narrow(-c);
                }
            }
        } else if let Some(s) = global {
            for v in g.iter_mut() {
                *v = T::narrow(v.widen() * s);
            }
        }
    }
}
