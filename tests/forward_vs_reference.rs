//! Property tests: `dense_forward` against the naive f64 reference over random shapes,
//! layouts, bias on/off, f32 and f64, and every activation, judged by
//! `reference::check_dense` (tolerance derived from the K-sum error bound).
//!
//! `PROPTEST_CASES=N` raises the number of cases (default 96 per property).

mod common;

use common::{randomize, Layout, Rng, Stored, LAYOUTS};
use dense_kernel::reference::check_dense;
use dense_kernel::{dense_forward, dense_forward_into, Activation, Element, MatMut};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    input_layout: Layout,
    kernel_layout: Layout,
    bias: bool,
    act: Activation,
    seed: u64,
    scale: f64,
    /// Probability (in 1/256) that an entry is replaced by a special value.
    specials: u8,
}

/// NaN, ±∞, ±0, subnormals, huge and tiny values: what a model's tensors can hold.
const SPECIALS: [f64; 12] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    1e-40,
    -1e-39,
    1e-310,
    3e38,
    -2e38,
    1e-30,
    1e300,
];

/// Replaces entries by special values with probability `p/256`.
fn sprinkle<T: Element>(v: &mut [T], rng: &mut Rng, p: u8) {
    for x in v.iter_mut() {
        let r = rng.next_u64();
        if (r & 0xff) < p as u64 {
            *x = T::narrow(SPECIALS[(r >> 8) as usize % SPECIALS.len()]);
        }
    }
}

fn case(max_mn: usize, ks: impl Strategy<Value = usize>) -> impl Strategy<Value = Case> {
    (
        0..=max_mn,
        ks,
        0..=max_mn,
        0..LAYOUTS.len(),
        0..LAYOUTS.len(),
        any::<bool>(),
        0..Activation::all().len(),
        any::<u64>(),
        prop_oneof![Just(1.0), Just(3.0), Just(40.0)],
        prop_oneof![4 => Just(0u8), 1 => 1u8..64],
    )
        .prop_map(|(m, k, n, li, lk, bias, ai, seed, scale, specials)| Case {
            m,
            k,
            n,
            input_layout: LAYOUTS[li],
            kernel_layout: LAYOUTS[lk],
            bias,
            act: Activation::all()[ai],
            seed,
            scale,
            specials,
        })
}

/// Runs one case in `T` through both entry points and checks both outputs.
fn run<T: Element>(c: &Case) -> Result<(), TestCaseError> {
    let mut rng = Rng(c.seed);
    // Half the cases draw random parameters for the parameterised activations.
    let act = if c.seed % 2 == 1 {
        randomize(c.act, &mut rng)
    } else {
        c.act
    };
    let c = &Case { act, ..c.clone() };
    // Scale inputs so that pre-activations land around ±scale whatever K is.
    let w_scale = c.scale / (c.k.max(1) as f64).sqrt();
    let mut xs = rng.vec::<T>(c.m * c.k, 1.0);
    let mut ws = rng.vec::<T>(c.k * c.n, w_scale);
    let mut b: Vec<T> = rng.vec(c.n, c.scale / 2.0);
    for v in [&mut xs, &mut ws, &mut b] {
        sprinkle(v, &mut rng, c.specials);
    }
    let x = Stored::new(&xs, c.m, c.k, c.input_layout);
    let w = Stored::new(&ws, c.k, c.n, c.kernel_layout);
    let bias = c.bias.then_some(b.as_slice());

    let y = dense_forward(x.view(), w.view(), bias, c.act)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!((y.rows(), y.cols()), (c.m, c.n));
    check_dense(x.view(), w.view(), bias, c.act, y.as_slice()).map_err(TestCaseError::fail)?;

    // The `_into` form over a NaN-filled buffer must give bit-identical results.
    let mut out = vec![T::nan(); c.m * c.n];
    dense_forward_into(
        x.view(),
        w.view(),
        bias,
        c.act,
        MatMut::from_slice(&mut out, c.m, c.n).unwrap(),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let same = out.iter().zip(y.as_slice()).all(|(a, b)| a.to_bits_eq(b));
    prop_assert!(same, "dense_forward_into differs from dense_forward");
    Ok(())
}

/// Bitwise equality that treats all NaNs as equal.
trait BitsEq {
    fn to_bits_eq(&self, other: &Self) -> bool;
}
impl<T: Element> BitsEq for T {
    fn to_bits_eq(&self, other: &Self) -> bool {
        (self.is_nan() && other.is_nan()) || self.widen().to_bits() == other.widen().to_bits()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn small_shapes_f32(c in case(70, 0usize..=70)) {
        run::<f32>(&c)?;
    }

    #[test]
    fn small_shapes_f64(c in case(70, 0usize..=70)) {
        run::<f64>(&c)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96) / 8 + 1))]

    #[test]
    fn long_sums_f32(c in case(6, 1000usize..=4096)) {
        run::<f32>(&c)?;
    }

    #[test]
    fn long_sums_f64(c in case(6, 1000usize..=4096)) {
        run::<f64>(&c)?;
    }
}

/// Every activation on every layout pair, at a shape with ragged edges, once each:
/// the sweep the random search might miss.
#[test]
fn every_activation_every_layout() {
    for (ai, &act) in Activation::all().iter().enumerate() {
        for (li, &il) in LAYOUTS.iter().enumerate() {
            for (lj, &kl) in LAYOUTS.iter().enumerate() {
                let c = Case {
                    m: 13,
                    k: 37,
                    n: 11,
                    input_layout: il,
                    kernel_layout: kl,
                    bias: (li + lj) % 2 == 0,
                    act,
                    seed: (ai * 100 + li * 10 + lj) as u64,
                    scale: 3.0,
                    specials: if li == lj { 8 } else { 0 },
                };
                run::<f32>(&c).unwrap();
                run::<f64>(&c).unwrap();
            }
        }
    }
}

/// The checker itself must be able to fail: perturb one output by a few tolerance
/// widths and expect a rejection, for a smooth activation and a row-wise one.
#[test]
fn checker_rejects_a_wrong_result() {
    let mut rng = Rng(7);
    let x = Stored::new(&rng.vec::<f32>(4 * 64, 1.0), 4, 64, Layout::RowMajor);
    let w = Stored::new(&rng.vec::<f32>(64 * 5, 0.3), 64, 5, Layout::RowMajor);
    for act in [
        Activation::Gelu,
        Activation::Softmax,
        Activation::Sparsemax,
        Activation::Tanh,
    ] {
        let y = dense_forward(x.view(), w.view(), None, act).unwrap();
        check_dense(x.view(), w.view(), None, act, y.as_slice()).unwrap();
        let mut bad = y.into_vec();
        bad[7] += 1e-4 * (1.0 + bad[7].abs());
        assert!(
            check_dense(x.view(), w.view(), None, act, &bad).is_err(),
            "{act}: a perturbed output passed the check"
        );
    }
}

/// A V-shaped activation (leaky_relu with a negative slope: its minimum is 0, at 0) whose
/// pre-activation bound straddles the kink: every value the activation takes on that
/// bound is allowed, the minimum included, which five evenly spaced samples miss (a
/// proptest case failed so: z = −6.8e-7 ± 3.9e-6, output 9.2e-10, allowed from 9.3e-10).
/// A value below the minimum is still rejected.
#[test]
fn checker_allows_the_minimum_at_a_kink() {
    // z = 16 − (16 + 2⁻¹⁹) = −2⁻¹⁹ exactly, with Σ|x·w| = 32 + 2⁻¹⁹: the bound (a few
    // times 32·2⁻²⁴) covers 0.
    let x = Stored::new(&[1.0f32, -1.0], 1, 2, Layout::RowMajor);
    let w = Stored::new(&[16.0f32, 16.0 + 2f32.powi(-19)], 2, 1, Layout::RowMajor);
    let act = Activation::LeakyRelu {
        negative_slope: -0.5,
    };
    let y = dense_forward(x.view(), w.view(), None, act).unwrap();
    check_dense(x.view(), w.view(), None, act, y.as_slice()).unwrap();
    // A kernel that rounded z to 0 gives f(0) = 0.
    check_dense(x.view(), w.view(), None, act, &[0.0]).unwrap();
    assert!(check_dense(x.view(), w.view(), None, act, &[-1e-6]).is_err());
}

/// The tolerance is tight, not vacuous: with K = 2 and all terms positive (no
/// cancellation, so `Σ|x·w| + |b| = z`) the pre-activation bound is a few ulps, and moving
/// any single output by 32 ulps must be caught.
#[test]
fn checker_catches_a_32_ulp_error() {
    let mut rng = Rng(11);
    let mut pos = |len: usize, s: f64| -> Vec<f32> {
        rng.vec::<f32>(len, s).iter().map(|v| v.abs()).collect()
    };
    let x = Stored::new(&pos(8 * 2, 1.0), 8, 2, Layout::RowMajor);
    let w = Stored::new(&pos(2 * 8, 1.0), 2, 8, Layout::RowMajor);
    let b: Vec<f32> = pos(8, 0.5);
    for act in [
        Activation::Linear,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Selu,
        Activation::Softmax,
        Activation::LogSoftmax,
    ] {
        let y = dense_forward(x.view(), w.view(), Some(&b), act)
            .unwrap()
            .into_vec();
        check_dense(x.view(), w.view(), Some(&b), act, &y).unwrap();
        for i in 0..y.len() {
            if y[i].abs() < 1e-3 {
                continue; // relative error tiny there in absolute terms; skip
            }
            let mut bad = y.clone();
            bad[i] *= 1.0 + 32.0 * f32::EPSILON;
            assert!(
                check_dense(x.view(), w.view(), Some(&b), act, &bad).is_err(),
                "{act}: a 32-ulp error at {i} passed"
            );
        }
    }
}
