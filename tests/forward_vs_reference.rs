//! Property tests: `dense_forward` against the naive f64 reference over random shapes,
//! layouts, bias on/off, f32 and f64, and every activation, judged by
//! `reference::check_dense` (tolerance derived from the K-sum error bound).
//!
//! `PROPTEST_CASES=N` raises the number of cases (default 96 per property).

mod common;

use common::{Layout, Rng, Stored, LAYOUTS};
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
    )
        .prop_map(|(m, k, n, li, lk, bias, ai, seed, scale)| Case {
            m,
            k,
            n,
            input_layout: LAYOUTS[li],
            kernel_layout: LAYOUTS[lk],
            bias,
            act: Activation::all()[ai],
            seed,
            scale,
        })
}

/// Runs one case in `T` through both entry points and checks both outputs.
fn run<T: Element>(c: &Case) -> Result<(), TestCaseError> {
    let mut rng = Rng(c.seed);
    // Scale inputs so that pre-activations land around ±scale whatever K is.
    let w_scale = c.scale / (c.k.max(1) as f64).sqrt();
    let x = Stored::new(&rng.vec::<T>(c.m * c.k, 1.0), c.m, c.k, c.input_layout);
    let w = Stored::new(&rng.vec::<T>(c.k * c.n, w_scale), c.k, c.n, c.kernel_layout);
    let b: Vec<T> = rng.vec(c.n, c.scale / 2.0);
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
