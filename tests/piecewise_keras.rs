//! The piecewise activations against real Keras, bit for bit: for every `f32` input each
//! result is either Keras 3.15's own `f32` result or the correctly rounded value of its
//! definition (NaN for NaN, either sign of zero for zero), on every SIMD path this CPU
//! has.
//!
//! `tests/keras/piecewise.txt` (made by `tests/keras/gen_piecewise.py` with real Keras)
//! holds Keras's outputs for 2048 inputs per configuration, regenerated here from its
//! seeds, concentrated at the kinks. The test also checks an emulation of Keras's `f32`
//! formulas (operation for operation, as `keras.src.activations` and `jax.nn` write
//! them) against those outputs; the ignored `exhaustive` test then holds the crate to
//! the emulation or the correctly rounded value over all 2³² inputs:
//! `cargo test --release --test piecewise_keras -- --ignored --nocapture`.
//!
//! Which of the two each activation returns is printed, and asserted where it is the
//! documented one (docs/ACCURACY.md).

use dense_kernel::{apply_activation_on, Activation, SimdPath};

const FIXTURE: &str = include_str!("keras/piecewise.txt");
const SPECIALS: [f32; 21] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1.0,
    -1.0,
    3.0,
    -3.0,
    6.0,
    -6.0,
    0.5,
    -0.5,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    2.0,
    -2.0,
];

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The f32 `n` ulps from `x` along the real line (bit patterns in order, zero crossed).
fn step(x: f32, n: i64) -> f32 {
    let b = x.to_bits();
    let key = if b < 0x8000_0000 {
        i64::from(b)
    } else {
        -i64::from(b & 0x7fff_ffff)
    } + n;
    f32::from_bits(if key >= 0 {
        key as u32
    } else {
        0x8000_0000 | (-key) as u32
    })
}

/// The generator's inputs (see gen_piecewise.py).
fn inputs(seed: u64, kinks: &[f32]) -> Vec<f32> {
    let mut g = SplitMix64(seed);
    (0..2048)
        .map(|_| {
            let u = g.next();
            let v = (u >> 32) as u32;
            match u % 4 {
                0 => f32::from_bits(v),
                1 => (f64::from(v >> 8) / f64::from(1u32 << 24) * 16.0 - 8.0) as f32,
                2 => {
                    let k = kinks[(v >> 8) as usize % kinks.len()];
                    step(k, i64::from((v & 0xff) % 65) - 32)
                }
                _ => SPECIALS[(v >> 8) as usize % SPECIALS.len()],
            }
        })
        .collect()
}

struct Config {
    id: String,
    seed: u64,
    kinks: Vec<f32>,
    keras: Vec<f32>,
}

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    let mut t = FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .peekable();
    while let Some(tok) = t.next() {
        assert_eq!(tok, "config");
        let id = t.next().unwrap().to_owned();
        assert_eq!(t.next(), Some("seed"));
        let seed = t.next().unwrap().parse().unwrap();
        assert_eq!(t.next(), Some("kinks"));
        let mut kinks = Vec::new();
        while t.peek() != Some(&"out") {
            kinks.push(t.next().unwrap().parse::<f64>().unwrap() as f32);
        }
        t.next();
        let keras = (0..2048)
            .map(|_| f32::from_bits(u32::from_str_radix(t.next().unwrap(), 16).unwrap()))
            .collect();
        assert_eq!(t.next(), Some("end"));
        out.push(Config {
            id,
            seed,
            kinks,
            keras,
        });
    }
    out
}

/// The crate's activation for a configuration.
fn activation(id: &str) -> Activation {
    let rw = |s: f64, m: Option<f64>, t: f64| Activation::ReluWith {
        negative_slope: s,
        max_value: m,
        threshold: t,
    };
    match id {
        "relu" => Activation::Relu,
        "relu_t0.5" => rw(0.0, None, 0.5),
        "relu_s0.1_m6_t0.5" => rw(0.1, Some(6.0), 0.5),
        "relu_s0.1_m2" => rw(0.1, Some(2.0), 0.0),
        "relu_m2_t0.5" => rw(0.0, Some(2.0), 0.5),
        "relu_s0.3_t-1" => rw(0.3, None, -1.0),
        "relu_s0.3_t0.7" => rw(0.3, None, 0.7),
        "relu_m6" => rw(0.0, Some(6.0), 0.0),
        "relu6" => Activation::Relu6,
        "leaky_relu" => Activation::LeakyRelu {
            negative_slope: 0.2,
        },
        "hard_sigmoid" => Activation::HardSigmoid,
        "hard_silu" => Activation::HardSilu,
        "hard_tanh" => Activation::HardTanh,
        "soft_shrink" => Activation::SoftShrink { threshold: 0.5 },
        "hard_shrink" => Activation::HardShrink { threshold: 0.5 },
        "sparse_sigmoid" => Activation::SparseSigmoid,
        "sparse_plus" => Activation::SparsePlus,
        "threshold_0.1_-1" => Activation::Threshold {
            threshold: 0.1,
            default_value: -1.0,
        },
        _ => panic!("unknown configuration {id}"),
    }
}

fn relu(x: f32) -> f32 {
    // jnp.maximum(x, 0): NaN propagates.
    if x.is_nan() || x > 0.0 {
        x
    } else {
        0.0
    }
}

fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    // jnp.clip = minimum(maximum(x, lo), hi), NaN propagating.
    if x.is_nan() {
        x
    } else {
        x.max(lo).min(hi)
    }
}

/// `x`, or a zero of its sign if it is subnormal: XLA on the CPU flushes subnormal
/// operands and results to zero (KERAS_NOTES, fact 6), where the crate keeps them
/// (closer to the exact value; documented).
fn ftz(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// Keras 3.15's `f32` formula, operation for operation (`ReLU.static_call`, `jax.nn`,
/// `keras.src.backend.jax.nn`; parameters cast to `f32` as Keras does), on a CPU that
/// keeps subnormals.
fn keras_f32(act: Activation, x: f32) -> f32 {
    keras_f32_ops(act, x)
}

/// Whether `keras` (real Keras's output) is the emulation's `e` of `x`, up to XLA's
/// flushing of subnormals (whichever of its operations flushed: for a subnormal input
/// a comparison may see zero while a selection passes the input's bits on).
fn is_keras(act: Activation, x: f32, keras: f32) -> bool {
    let e = keras_f32(act, x);
    same(keras, e)
        || same(keras, ftz(e))
        || same(keras, ftz(keras_f32(act, ftz(x))))
        || (x.is_subnormal() && (same(keras, x) || keras == 0.0))
}

fn keras_f32_ops(act: Activation, x: f32) -> f32 {
    let f = |v: f64| v as f32;
    match act {
        Activation::Relu => relu(x),
        Activation::Relu6 => clip(x, 0.0, 6.0),
        Activation::LeakyRelu { negative_slope } => {
            if x >= 0.0 {
                x
            } else {
                f(negative_slope) * x
            }
        }
        Activation::ReluWith {
            negative_slope,
            max_value,
            threshold,
        } => {
            let (s, t) = (f(negative_slope), f(threshold));
            if s != 0.0 && max_value.is_none() && t == 0.0 {
                return keras_f32_ops(
                    Activation::LeakyRelu {
                        negative_slope: f64::from(s),
                    },
                    x,
                );
            }
            let neg = if t != 0.0 { relu(-x + t) } else { relu(-x) };
            let mut clip_max = max_value.map(f);
            let mut y = if t != 0.0 {
                if x > t {
                    x
                } else {
                    0.0
                }
            } else if max_value == Some(6.0) {
                clip_max = None;
                clip(x, 0.0, 6.0)
            } else {
                relu(x)
            };
            if let Some(m) = clip_max {
                y = clip(y, 0.0, m);
            }
            if s != 0.0 {
                y -= s * neg;
            }
            y
        }
        // relu6(x + 3) / 6, the division compiled as a product by f32(1/6).
        Activation::HardSigmoid => clip(x + 3.0, 0.0, 6.0) * (1.0f32 / 6.0),
        Activation::HardSilu => x * keras_f32_ops(Activation::HardSigmoid, x),
        // where(x > 1, 1, where(x < −1, −1, x)): a clamp that passes NaN on.
        Activation::HardTanh => x.clamp(-1.0, 1.0),
        Activation::SoftShrink { threshold } => {
            let t = f(threshold);
            if x > t {
                x - t
            } else if x < -t {
                x + t
            } else {
                0.0
            }
        }
        Activation::HardShrink { threshold } => {
            if x.abs() > f(threshold) {
                x
            } else {
                0.0
            }
        }
        Activation::SparseSigmoid => 0.5 * clip(x + 1.0, 0.0, 2.0),
        Activation::SparsePlus => {
            if x <= -1.0 {
                0.0
            } else if x >= 1.0 {
                x
            } else {
                let a = x + 1.0;
                a * a / 4.0
            }
        }
        Activation::Threshold {
            threshold,
            default_value,
        } => {
            if x > f(threshold) {
                x
            } else {
                f(default_value)
            }
        }
        _ => unreachable!("{act}"),
    }
}

/// The definition's exact value for a finite `x` (parameters as `f32`, as Keras casts
/// them), evaluated in `f64`, with a bound on that evaluation's error.
fn exact(act: Activation, x: f32) -> (f64, f64) {
    exact_at(act, f64::from(x))
}

/// [`exact`] at an `f64` point (for the limits at ±∞).
fn exact_at(act: Activation, x: f64) -> (f64, f64) {
    let f = |v: f64| f64::from(v as f32);
    let u = f64::EPSILON;
    match act {
        Activation::ReluWith {
            negative_slope,
            max_value,
            threshold,
        } => {
            let (s, t) = (f(negative_slope), f(threshold));
            // where(x > t, x, 0) with a threshold, relu(x) without; clipped to [0, m].
            let base = if t != 0.0 {
                if x > t {
                    x
                } else {
                    0.0
                }
            } else {
                x.max(0.0)
            };
            let base = max_value.map_or(base, |m| base.clamp(0.0, f(m)));
            // Minus the slope times relu(t − x) (the leaky form: relu(−x)).
            let d = (t - x).max(0.0);
            let v = base - s * d;
            (v, 4.0 * u * (base.abs() + (s * d).abs()))
        }
        Activation::LeakyRelu { negative_slope } => {
            let v = if x >= 0.0 { x } else { f(negative_slope) * x };
            (v, u * v.abs())
        }
        Activation::HardSigmoid => {
            let v = ((x + 3.0) / 6.0).clamp(0.0, 1.0);
            (v, 3.0 * u * v.abs())
        }
        Activation::HardSilu => {
            let v = x * ((x + 3.0) / 6.0).clamp(0.0, 1.0);
            (v, 4.0 * u * v.abs())
        }
        Activation::SoftShrink { threshold } => {
            let t = f(threshold);
            let v = if x > t {
                x - t
            } else if x < -t {
                x + t
            } else {
                0.0
            };
            (v, u * v.abs())
        }
        Activation::SparseSigmoid => {
            let v = ((x + 1.0) / 2.0).clamp(0.0, 1.0);
            (v, 2.0 * u * v.abs())
        }
        Activation::SparsePlus => {
            let v = if x <= -1.0 {
                0.0
            } else if x >= 1.0 {
                x
            } else {
                (x + 1.0) * (x + 1.0) / 4.0
            };
            (v, 4.0 * u * v.abs())
        }
        // Selections of the input or constants: exact.
        _ => (f64::from(keras_f32(act, x as f32)), 0.0),
    }
}

/// Whether `y` is the correctly rounded `f32` of an exact value known to lie within
/// `err` of `v` (where the interval straddles a rounding boundary, either neighbour is).
fn is_correctly_rounded(y: f32, v: f64, err: f64) -> bool {
    let (lo, hi) = ((v - err) as f32, (v + err) as f32);
    y == lo || y == hi
}

fn same(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Which of Keras's `f32` formula's result (subnormals kept) and the correctly rounded
/// value of the definition `y` is: (keras, rounded). At ±∞ the rounded value is the
/// limit (the definition at ±10³⁰⁰, rounded); at NaN, NaN.
fn classify(act: Activation, x: f32, y: f32) -> (bool, bool) {
    let k = same(y, keras_f32(act, x));
    let r = if x.is_nan() {
        y.is_nan()
    } else if x.is_infinite() {
        same(y, exact_at(act, 1e300f64.copysign(f64::from(x))).0 as f32)
    } else {
        let (v, err) = exact(act, x);
        is_correctly_rounded(y, v, err)
    };
    (k, r)
}

/// Keras's result, the correctly rounded one, or both (where they agree), per
/// configuration (docs/ACCURACY.md).
fn documented(id: &str) -> &'static str {
    match id {
        // Keras rounds t − x, then its product by the slope: the crate rounds once.
        // (Where t − x or the product is exact, or a NaN or ∞ decides, they agree.)
        "relu_s0.1_m6_t0.5" | "relu_s0.3_t0.7" => "rounded",
        // Keras multiplies by f32(1/6): the crate divides, rounding once.
        "hard_sigmoid" | "hard_silu" => "rounded",
        // (x + 1)² / 4 with x + 1 and the square each rounded: the crate rounds once.
        "sparse_plus" => "rounded",
        // Selections whose NaN (or −∞) goes to a constant, as Keras 3.15's `where`
        // puts it (relu with a threshold: 0; the shrinks: 0; threshold: the default).
        "relu_t0.5" | "relu_m2_t0.5" | "soft_shrink" | "hard_shrink" | "threshold_0.1_-1" => {
            "keras"
        }
        _ => "both",
    }
}

#[test]
fn the_emulation_of_keras_is_keras() {
    let mut checked = 0;
    for c in configs() {
        let act = activation(&c.id).params_as::<f32>();
        for (x, k) in inputs(c.seed, &c.kinks).into_iter().zip(&c.keras) {
            let e = keras_f32(act, x);
            assert!(
                is_keras(act, x, *k),
                "{}: x = {x:e} ({:#010x}): Keras {k:e}, emulation {e:e}",
                c.id,
                x.to_bits()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 18 * 2048);
}

#[test]
fn every_piecewise_result_is_keras_or_correctly_rounded() {
    let mut failures = Vec::new();
    for path in SimdPath::ALL.into_iter().filter(|p| p.is_available()) {
        for c in configs() {
            let act = activation(&c.id);
            let xs = inputs(c.seed, &c.kinks);
            let mut ys = xs.clone();
            assert!(apply_activation_on(path, act, &mut ys, xs.len()));
            let (mut keras, mut rounded) = (0, 0);
            for ((&x, &y), &k) in xs.iter().zip(&ys).zip(&c.keras) {
                let a32 = act.params_as::<f32>();
                let (mut is_k, is_r) = classify(a32, x, y);
                // Real Keras's own output (subnormals flushed) counts as Keras's too.
                is_k |= same(y, k) && is_keras(a32, x, k);
                keras += usize::from(is_k);
                rounded += usize::from(is_r);
                if !is_k && !is_r && failures.len() < 20 {
                    failures.push(format!(
                        "{path} {}: x = {x:e} ({:#010x}): got {y:e}, Keras {k:e}, exact ≈ {:e}",
                        c.id,
                        x.to_bits(),
                        exact(act.params_as::<f32>(), x).0
                    ));
                }
            }
            let n = xs.len();
            let which = match (keras == n, rounded == n) {
                (true, true) => "both",
                (true, false) => "keras",
                (false, true) => "rounded",
                _ => "neither",
            };
            println!("{path:>9} {:<20} Keras's {keras:>4}/{n}, correctly rounded {rounded:>4}/{n}: {which}", c.id);
            let want = documented(&c.id);
            if which != want && which != "both" {
                failures.push(format!("{path} {}: {which}, documented {want}", c.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[ignore = "exhaustive: cargo test --release --test piecewise_keras -- --ignored --nocapture"]
fn exhaustive() {
    use rayon::prelude::*;
    let mut bad = Vec::new();
    // `DENSE_KERNEL_SWEEP_PATH=avx2+fma` (or `portable`, `avx512`, `all`): the path(s)
    // to sweep; the dispatched one by default.
    let pick = std::env::var("DENSE_KERNEL_SWEEP_PATH").ok();
    for path in SimdPath::ALL.into_iter().filter(|p| {
        p.is_available()
            && match pick.as_deref() {
                Some("all") => true,
                Some(name) => p.name() == name,
                None => *p == dense_kernel::simd_path(),
            }
    }) {
        for c in configs() {
            let act = activation(&c.id);
            let a32 = act.params_as::<f32>();
            let t0 = std::time::Instant::now();
            let fails: u64 = (0u64..1 << 16)
                .into_par_iter()
                .map(|b| {
                    let xs: Vec<f32> = (b << 16..(b + 1) << 16)
                        .map(|i| f32::from_bits(i as u32))
                        .collect();
                    let mut ys = xs.clone();
                    assert!(apply_activation_on(path, act, &mut ys, xs.len()));
                    xs.iter()
                        .zip(&ys)
                        .filter(|(&x, &y)| {
                            // The cheap comparison first; the exact value only if needed.
                            !same(y, keras_f32(a32, x)) && !classify(a32, x, y).1
                        })
                        .count() as u64
                })
                .sum();
            println!(
                "exhaustive {path:>9} {:<20} results neither Keras's nor correctly rounded: {fails} ({:.0} s)",
                c.id,
                t0.elapsed().as_secs_f64()
            );
            if fails > 0 {
                bad.push(format!("{path} {}: {fails}", c.id));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
