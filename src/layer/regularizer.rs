//! Keras's weight regularizers: a penalty added to the training loss, for the kernel,
//! the bias and the layer's output (activity), and its gradient.

use crate::{DenseError, Element};

/// `l1·Σ|w| + l2·Σw²`, Keras's `L1`, `L2` and `L1L2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    /// L1 factor.
    pub l1: f64,
    /// L2 factor.
    pub l2: f64,
}

impl Regularizer {
    /// Keras's `L1(l1)` (its default `l1 = 0.01`: `Regularizer::l1(0.01)`).
    pub fn l1(l1: f64) -> Self {
        Regularizer { l1, l2: 0.0 }
    }

    /// Keras's `L2(l2)` (its default `l2 = 0.01`).
    pub fn l2(l2: f64) -> Self {
        Regularizer { l1: 0.0, l2 }
    }

    /// Keras's `L1L2(l1, l2)` (its defaults are both 0).
    pub fn l1_l2(l1: f64, l2: f64) -> Self {
        Regularizer { l1, l2 }
    }

    /// The names `keras.regularizers.get` takes, as Keras 3.15 builds them: `"l1"` and
    /// `"l2"` (factor 0.01), `"l1l2"` / `"L1L2"` (both factors **0**: `L1L2()`'s own
    /// defaults). Keras's docs say `"l1_l2"` gives 0.01 each, but Keras 3.15 refuses
    /// that name, and so does this.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, DenseError> {
        match name {
            "l1" | "L1" => Ok(Regularizer::l1(0.01)),
            "l2" | "L2" => Ok(Regularizer::l2(0.01)),
            "l1l2" | "L1L2" => Ok(Regularizer::l1_l2(0.0, 0.0)),
            _ => Err(DenseError::InvalidConfig {
                what: format!("unknown regularizer {name:?}"),
            }),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DenseError> {
        if self.l1.is_finite() && self.l2.is_finite() && self.l1 >= 0.0 && self.l2 >= 0.0 {
            Ok(())
        } else {
            Err(DenseError::InvalidConfig {
                what: format!(
                    "regularizer factors must be finite and >= 0, got l1={}, l2={}",
                    self.l1, self.l2
                ),
            })
        }
    }

    /// The penalty of `w`, accumulated in `f64`.
    ///
    /// ```
    /// use dense_kernel::layer::Regularizer;
    /// let w = [1.0f32, -2.0, 3.0];
    /// assert_eq!(Regularizer::l1_l2(0.5, 0.25).penalty(&w), 0.5 * 6.0 + 0.25 * 14.0);
    /// ```
    pub fn penalty<T: Element>(&self, w: &[T]) -> f64 {
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in w {
            let v = v.widen();
            s1 += v.abs();
            s2 += v * v;
        }
        // Keras adds a term only when its factor is non-zero (so 0·∞ cannot appear).
        let mut p = 0.0;
        if self.l1 != 0.0 {
            p += self.l1 * s1;
        }
        if self.l2 != 0.0 {
            p += self.l2 * s2;
        }
        p
    }

    /// Adds `scale · d(penalty)/dw` to `g`: `scale·(l1·sign(w) + 2·l2·w)`, with jax's
    /// `|w|' = +1` at 0; each element computed in `f64` and rounded once.
    pub(crate) fn add_gradient<T: Element>(&self, w: &[T], g: &mut [T], scale: f64) {
        if self.l1 == 0.0 && self.l2 == 0.0 {
            return;
        }
        for (g, w) in g.iter_mut().zip(w) {
            let w = w.widen();
            let mut d = 0.0;
            if self.l1 != 0.0 {
                d += self.l1 * if w >= 0.0 { 1.0 } else { -1.0 };
            }
            if self.l2 != 0.0 {
                d += 2.0 * self.l2 * w;
            }
            *g = T::narrow(g.widen() + scale * d);
        }
    }
}
