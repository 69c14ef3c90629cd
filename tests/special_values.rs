//! Special values per activation: NaN, ±∞, ±0, huge and subnormal pre-activations.
//!
//! The expected values are Keras 3.15's own outputs in float32, as observed and listed
//! in shared/KERAS_NOTES.md (rounded there to 6 significant digits), with the crate's
//! documented departures applied on top (limits instead of `0·∞` NaNs, subnormals kept
//! instead of flushed).

use dense_kernel::reference::check_dense;
use dense_kernel::{dense_forward, Activation, Element, MatRef};

/// `act(z)` for each `z`, through the real kernel: input `(P, 1)`, kernel `[[1]]`, no
/// bias, so the pre-activation is exactly `z`.
fn through_kernel<T: Element>(act: Activation, zs: &[T]) -> Vec<T> {
    let one = [T::one()];
    dense_forward(
        MatRef::from_slice(zs, zs.len(), 1).unwrap(),
        MatRef::from_slice(&one, 1, 1).unwrap(),
        None,
        act,
    )
    .unwrap()
    .into_vec()
}

/// One row through the kernel: input `[[1]]`, kernel = the row, so `z` = the row.
fn row_through_kernel(act: Activation, row: &[f32]) -> Vec<f32> {
    let one = [1.0f32];
    dense_forward(
        MatRef::from_slice(&one, 1, 1).unwrap(),
        MatRef::from_slice(row, 1, row.len()).unwrap(),
        None,
        act,
    )
    .unwrap()
    .into_vec()
}

const PROBES: [f32; 8] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    -100.0,
    -88.75,
    0.0,
    88.75,
    100.0,
];

/// KERAS_NOTES.md's table: f(NaN), f(+inf), f(-inf), f(-100), f(-88.75), f(0), f(88.75), f(100).
const KERAS_TABLE: &str = "
celu nan inf -1 -1 -1 0 88.75 100
elu nan inf -1 -1 -1 0 88.75 100
exponential nan inf 0 0 0 1 inf inf
gelu nan inf nan -0 -0 0 88.75 100
hard_shrink 0 inf -inf -100 -88.75 0 88.75 100
hard_sigmoid nan 1 0 0 0 0.5 1 1
hard_silu nan inf nan -0 -0 0 88.75 100
hard_swish nan inf nan -0 -0 0 88.75 100
hard_tanh nan 1 -1 -1 -1 0 1 1
leaky_relu nan inf -inf -20 -17.75 0 88.75 100
linear nan inf -inf -100 -88.75 0 88.75 100
log_sigmoid nan -0 -inf -100 -88.75 -0.693147 -0 -0
mish nan inf nan -0 -0 0 88.75 100
relu nan inf 0 0 0 0 88.75 100
relu6 nan 6 0 0 0 0 6 6
selu nan inf -1.7581 -1.7581 -1.7581 0 93.2497 105.07
sigmoid nan 1 0 0 0 0.5 1 1
silu nan inf nan -0 -0 0 88.75 100
soft_shrink 0 inf -inf -99.5 -88.25 0 88.25 99.5
softplus nan inf 0 0 0 0.693147 88.75 100
softsign nan nan nan -0.990099 -0.988858 0 0.988858 0.990099
sparse_plus nan inf 0 0 0 0.25 88.75 100
sparse_sigmoid nan 1 0 0 0 0.5 1 1
squareplus nan inf nan 0.00999832 0.0112648 1 88.7613 100.01
swish nan inf nan -0 -0 0 88.75 100
tanh nan 1 -1 -1 -1 0 1 1
tanh_shrink nan inf -inf -99 -87.75 0 87.75 99
";

/// Where the crate returns the limit instead of Keras's `0·∞`/`∞ − ∞` NaN.
fn departure(name: &str, z: f32) -> Option<f32> {
    match (name, z) {
        ("gelu" | "silu" | "swish" | "mish" | "hard_silu" | "hard_swish", f32::NEG_INFINITY) => {
            Some(-0.0)
        }
        ("squareplus", f32::NEG_INFINITY) => Some(0.0),
        // Keras's x + sqrt(x² + 4) cancels for x << 0 (1.2e-4 relative error at -100);
        // the crate uses the conjugate form 4 / (2(sqrt(x² + 4) - x)).
        ("squareplus", z) if z < 0.0 => {
            Some((4.0 / (2.0 * ((z as f64).hypot(2.0) - z as f64))) as f32)
        }
        ("softsign", f32::INFINITY) => Some(1.0),
        ("softsign", f32::NEG_INFINITY) => Some(-1.0),
        _ => None,
    }
}

#[test]
fn keras_table_f32() {
    let mut rows = 0;
    for line in KERAS_TABLE.lines().filter(|l| !l.trim().is_empty()) {
        let mut tok = line.split_whitespace();
        let name = tok.next().unwrap();
        let act: Activation = name.parse().unwrap();
        let keras: Vec<f32> = tok.map(|t| t.parse().unwrap()).collect();
        assert_eq!(keras.len(), PROBES.len());
        let got = through_kernel(act, &PROBES);
        for ((&z, &k), &g) in PROBES.iter().zip(&keras).zip(&got) {
            let want = departure(name, z).unwrap_or(k);
            let ok = if want.is_nan() || !want.is_finite() {
                (want.is_nan() && g.is_nan()) || want == g
            } else {
                // The table has 6 significant digits. Keras (XLA) flushes subnormal
                // intermediates to zero, so where it printed ±0 at -88.75/-100 the crate's
                // kept-subnormal result may be a tiny non-zero (mish(-88.75) is really
                // -2.5e-37): accept anything below 1e-30 in magnitude there.
                let flushed = want == 0.0 && z <= -88.75 && g.abs() < 1e-30;
                flushed || (g - want).abs() <= 1e-5 * want.abs() + f32::MIN_POSITIVE
            };
            assert!(ok, "{name}({z}) = {g}, expected {want} (Keras: {k})");
        }
        rows += 1;
    }
    assert_eq!(rows, 27);
}

/// NaN, ±∞ and 0 behave the same in f64 as in the f32 table.
#[test]
fn keras_table_non_finite_f64() {
    for line in KERAS_TABLE.lines().filter(|l| !l.trim().is_empty()) {
        let mut tok = line.split_whitespace();
        let name = tok.next().unwrap();
        let act: Activation = name.parse().unwrap();
        let keras: Vec<f64> = tok.map(|t| t.parse().unwrap()).collect();
        let probes: Vec<f64> = PROBES.iter().map(|&z| z as f64).collect();
        let got = through_kernel(act, &probes);
        for i in [0, 1, 2, 5] {
            let want = departure(name, PROBES[i]).map_or(keras[i], f64::from);
            let g = got[i];
            let ok =
                (want.is_nan() && g.is_nan()) || (g - want).abs() <= 1e-6 * want.abs() || g == want;
            assert!(ok, "{name}({}) = {g}, expected {want} (f64)", probes[i]);
        }
    }
}

/// Zeros, subnormals, the largest finite values and values around every kink, checked
/// against the f64 reference for every activation, f32 and f64.
#[test]
fn extreme_and_subnormal_inputs() {
    let mut zs: Vec<f64> = vec![
        0.0, -0.0, 1e-40, -1e-40, 1e-310, -1e-310, 1.1e-38, -1.1e-38, 3.4e38, -3.4e38, 1e300,
        -1e300, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 20.0, -20.0, 88.7, -87.3,
        709.0, -745.0, -40.0, 15.0, -15.0,
    ];
    for kink in [0.5, 1.0, 3.0, 6.0] {
        for s in [-1.0, 1.0] {
            let k: f64 = s * kink;
            zs.extend([
                k,
                k.next_up(),
                k.next_down(),
                (k as f32).next_up() as f64,
                (k as f32).next_down() as f64,
            ]);
        }
    }
    for &act in Activation::all() {
        let z64: Vec<f64> = zs.clone();
        let z32: Vec<f32> = zs.iter().map(|&z| z as f32).collect();
        let one64 = [1.0f64];
        let one32 = [1.0f32];
        let y64 = through_kernel(act, &z64);
        let y32 = through_kernel(act, &z32);
        if act.is_row_wise() {
            continue; // rows of length 1: covered by the row tests below
        }
        check_dense(
            MatRef::from_slice(&z64, z64.len(), 1).unwrap(),
            MatRef::from_slice(&one64, 1, 1).unwrap(),
            None,
            act,
            &y64,
        )
        .unwrap();
        check_dense(
            MatRef::from_slice(&z32, z32.len(), 1).unwrap(),
            MatRef::from_slice(&one32, 1, 1).unwrap(),
            None,
            act,
            &y32,
        )
        .unwrap();
    }
}

fn assert_row(act: Activation, z: &[f32], want: &[f32]) {
    let got = row_through_kernel(act, z);
    for (g, w) in got.iter().zip(want) {
        let ok =
            (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 4.0 * f32::EPSILON * w.abs();
        assert!(ok, "{act}({z:?}) = {got:?}, expected {want:?}");
    }
}

#[test]
fn softmax_rows() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    assert_row(Activation::Softmax, &[1.0, inf, 2.0], &[nan, nan, nan]);
    assert_row(Activation::Softmax, &[nan, 1.0, 2.0], &[nan, nan, nan]);
    assert_row(Activation::Softmax, &[-inf, -inf, -inf], &[nan, nan, nan]);
    let e = (-1.0f64).exp();
    let (a, b) = ((e / (1.0 + e)) as f32, (1.0 / (1.0 + e)) as f32);
    assert_row(Activation::Softmax, &[-inf, 1.0, 2.0], &[0.0, a, b]);
    // No overflow at |z| = 100: e^-200 underflows to 0 in f32.
    assert_row(Activation::Softmax, &[100.0, -100.0], &[1.0, 0.0]);
    // One unit: exactly 1 (log_softmax: exactly 0).
    assert_eq!(row_through_kernel(Activation::Softmax, &[5.0]), vec![1.0]);
    assert_eq!(
        row_through_kernel(Activation::LogSoftmax, &[5.0]),
        vec![0.0]
    );
    assert_row(
        Activation::LogSoftmax,
        &[-inf, 1.0, 2.0],
        &[-inf, (a as f64).ln() as f32, (b as f64).ln() as f32],
    );
    assert_row(Activation::LogSoftmax, &[1.0, inf], &[nan, nan]);
    assert_row(Activation::LogSoftmax, &[1000.0, 0.0], &[0.0, -1000.0]);
}

#[test]
fn sparsemax_rows() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    // The paper's values (Keras 3.15 gives [0.05, 0] here).
    assert_row(Activation::Sparsemax, &[1.0, 0.9], &[0.55, 0.45]);
    assert_row(Activation::Sparsemax, &[2.0, 2.0, 2.0, 2.0], &[0.25; 4]);
    assert_row(Activation::Sparsemax, &[3.0, 0.0, -1.0], &[1.0, 0.0, 0.0]);
    assert_row(Activation::Sparsemax, &[1e30, -1e30, 0.0], &[1.0, 0.0, 0.0]);
    assert_row(Activation::Sparsemax, &[-inf, 1.0, 0.5], &[0.0, 0.75, 0.25]);
    assert_row(Activation::Sparsemax, &[nan, 1.0, 0.5], &[nan, nan, nan]);
    assert_row(Activation::Sparsemax, &[inf, 1.0, 0.5], &[nan, nan, nan]);
    assert_row(Activation::Sparsemax, &[-inf, -inf], &[nan, nan]);
    assert_row(Activation::Sparsemax, &[7.0], &[1.0]);
}

/// Every finite row of softmax and sparsemax sums to 1; every log_softmax row's
/// exponentials do.
#[test]
fn rows_sum_to_one() {
    let mut state = 12345u64;
    for n in [1usize, 2, 3, 7, 16, 64, 129] {
        for scale in [0.01f32, 1.0, 10.0, 1e4] {
            let row: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
                })
                .collect();
            for act in [
                Activation::Softmax,
                Activation::Sparsemax,
                Activation::LogSoftmax,
            ] {
                let y = row_through_kernel(act, &row);
                let sum: f64 = if act == Activation::LogSoftmax {
                    y.iter().map(|&v| (v as f64).exp()).sum()
                } else {
                    assert!(y.iter().all(|&v| v >= 0.0), "{act} gave a negative entry");
                    y.iter().map(|&v| v as f64).sum()
                };
                let tol = (n as f64 + 4.0)
                    * f32::EPSILON as f64
                    * if act == Activation::LogSoftmax {
                        1.0 + scale as f64
                    } else {
                        1.0
                    };
                assert!(
                    (sum - 1.0).abs() <= tol,
                    "{act} n={n} scale={scale}: sum {sum}"
                );
            }
        }
    }
}

/// K = 0: the result is act(bias), or act(0) without a bias.
#[test]
fn empty_sum_gives_activation_of_bias() {
    let x: [f32; 0] = [];
    let w: [f32; 0] = [];
    let b = [-1.0f32, 0.0, 2.0];
    let y = dense_forward(
        MatRef::from_slice(&x, 2, 0).unwrap(),
        MatRef::from_slice(&w, 0, 3).unwrap(),
        Some(&b),
        Activation::Sigmoid,
    )
    .unwrap();
    let s = |v: f32| 1.0 / (1.0 + (-v).exp());
    for (i, &g) in y.as_slice().iter().enumerate() {
        assert!((g - s(b[i % 3])).abs() <= f32::EPSILON, "{g}");
    }
    let y = dense_forward(
        MatRef::from_slice(&x, 2, 0).unwrap(),
        MatRef::from_slice(&w, 0, 3).unwrap(),
        None,
        Activation::Sigmoid,
    )
    .unwrap();
    assert_eq!(y.as_slice(), &[0.5; 6]);
    // M = 0 and N = 0: empty results of the right shape.
    let y = dense_forward(
        MatRef::from_slice(&x, 0, 4).unwrap(),
        MatRef::from_slice(&[1.0f32; 12], 4, 3).unwrap(),
        Some(&b),
        Activation::Softmax,
    )
    .unwrap();
    assert_eq!((y.rows(), y.cols(), y.as_slice().len()), (0, 3, 0));
    let y = dense_forward(
        MatRef::from_slice(&[1.0f32; 8], 2, 4).unwrap(),
        MatRef::from_slice(&w, 4, 0).unwrap(),
        Some(&[]),
        Activation::Softmax,
    )
    .unwrap();
    assert_eq!((y.rows(), y.cols(), y.as_slice().len()), (2, 0, 0));
}
