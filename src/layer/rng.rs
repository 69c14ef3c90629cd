//! The initializers' random numbers: a small seeded generator, owned by each call (no
//! global state), so the same seed gives the same weights on every machine.
//!
//! SplitMix64 (Steele, Lea & Flood 2014): a 64-bit counter through a fixed mixing
//! function. Its streams are not Keras's (Keras seeds JAX/TF generators): the same seed
//! gives the same *distribution* as Keras, not the same numbers.

/// A seeded stream of uniform and normal samples.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
    /// The second value of the last Box–Muller pair, not yet used.
    spare: Option<f64>,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng {
            state: seed,
            spare: None,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on `[0, 1)`, 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on `0..n` (`n ≥ 1`), by Lemire's multiply-shift with rejection: unbiased.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            let m = u128::from(x) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal (Box–Muller on `(0, 1]`, so the logarithm is finite).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }

    /// Standard normal conditioned on `|z| ≤ 2` (redrawn until inside, as Keras's
    /// truncated normals are: about 4.6% of draws are rejected).
    pub(crate) fn truncated_normal(&mut self) -> f64 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return z;
            }
        }
    }
}
