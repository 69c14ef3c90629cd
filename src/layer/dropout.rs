//! Keras's `Dropout` layer: the identity at inference; in training, inverted dropout
//! with a seeded mask.

use crate::DenseError;

/// Keras's `Dropout(rate, seed)`: at inference (`forward`, `predict`, `evaluate`) the
/// identity; in training (`train_on_batch`, `fit`) each element is kept with probability
/// `1 − rate` and divided by `1 − rate` (Keras's `x / keep` where kept, 0 elsewhere), so
/// the expected output equals the input. `rate = 1` drops everything.
///
/// The masks come from the crate's own seeded generator, drawn in order, one per
/// element: the same seed gives the same masks on every machine and for any thread
/// count, but not Keras's masks (Keras seeds jax's generator). Unseeded layers get
/// `model seed + index`, as Dense layers do.
///
/// ```
/// use dense_kernel::layer::{Dense, Dropout, Sequential};
/// let mut model = Sequential::<f32>::new()
///     .add(Dense::new(4).input_dim(3))?
///     .add(Dropout::new(0.5))?;
/// // At inference Dropout passes its input through unchanged.
/// let x = [0.1f32, 0.2, 0.3];
/// let (a, _) = model.forward(&x, &[1, 3])?;
/// let a = a.to_vec();
/// let (b, _) = model.forward(&x, &[1, 3])?;
/// assert_eq!(a, b);
/// assert!(model.summary().contains("dropout (Dropout)"));
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    rate: f64,
    seed: Option<u64>,
    pub(crate) name: Option<String>,
}

impl Dropout {
    /// `Dropout(rate)`: the fraction of elements dropped in training, in `[0, 1]`.
    pub fn new(rate: f64) -> Self {
        Dropout {
            rate,
            seed: None,
            name: None,
        }
    }
    /// The seed of its masks.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Its name (default `dropout`, numbered `dropout_1`, … in a model).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
    /// The rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }
    pub(crate) fn seed_opt(&self) -> Option<u64> {
        self.seed
    }

    /// Keras refuses a rate outside `[0, 1]`.
    pub(crate) fn validate(&self) -> Result<(), DenseError> {
        if (0.0..=1.0).contains(&self.rate) {
            Ok(())
        } else {
            Err(DenseError::InvalidConfig {
                what: format!("Dropout rate {} is not in [0, 1]", self.rate),
            })
        }
    }
}
