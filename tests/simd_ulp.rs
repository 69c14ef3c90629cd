//! The vector kernels against the definitions: every element-wise activation, every
//! SIMD path this CPU has, f32 and f64, within `reference::activation_ulp_bound`.
//!
//! The default run checks a dense sample (> 10⁶ f32 inputs per activation and path,
//! every special value included). The exhaustive f32 sweep (all 2³² inputs) and the
//! 10⁷-sample f64 run are `#[ignore]`d: `cargo test --release --test simd_ulp -- --ignored --nocapture`.

mod common;

use common::Rng;
use dense_kernel::reference::{
    activation_ulp_bound, check_activation_exact, check_activation_value, ulp_error, UlpBound,
};
use dense_kernel::{apply_activation_on, path_runs, reference, Activation, Element, SimdPath};

fn elementwise() -> Vec<Activation> {
    Activation::all()
        .iter()
        .copied()
        .filter(|a| !a.is_row_wise())
        .chain([
            Activation::LeakyRelu {
                negative_slope: 0.0,
            },
            Activation::LeakyRelu {
                negative_slope: -0.0,
            },
            Activation::Elu { alpha: 0.5 },
            Activation::Celu { alpha: 2.5 },
            Activation::Celu { alpha: -1.0 },
            Activation::Squareplus { b: 0.0 },
            Activation::Squareplus { b: -1.0 },
            Activation::ReluWith {
                negative_slope: 0.1,
                max_value: Some(6.0),
                threshold: 0.5,
            },
            Activation::ReluWith {
                negative_slope: 0.0,
                max_value: Some(2.0),
                threshold: 0.0,
            },
        ])
        .collect()
}

fn specials_f32() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        1e-40,
        -1e-40,
        1.0,
        -1.0,
        0.5,
        -0.5,
        3.0,
        -3.0,
        6.0,
        -6.0,
        88.72283,
        88.72284,
        89.0,
        -87.33654,
        -87.3365,
        -88.0,
        -92.0,
        -93.0,
        -103.0,
        -104.0,
        0.5625,
        -0.5625,
        0.4,
        -0.4,
        9.0,
        9.5,
        20.0,
        -20.0,
        13.435,
        -13.435,
        -13.2,
        -14.0,
        // The AVX-512 gelu's clamp and table edges, and x just above the smallest
        // normal, where gelu(x) ≈ x/2 is subnormal (see `gelu_keeps_subnormal_halves`).
        14.4,
        -14.4,
        -14.3,
        -14.0,
        -13.0,
        -7.0,
        -3.5,
        -1.25,
        -0.25,
        -0.125,
        0.125,
        1.5 * f32::MIN_POSITIVE,
        3.0 * f32::MIN_POSITIVE,
        -3.0 * f32::MIN_POSITIVE,
        1e30,
        -1e30,
        1e-30,
        -1e-30,
    ];
    let more: Vec<f32> = v
        .iter()
        .flat_map(|&x: &f32| [next_up(x), next_down(x)])
        .collect();
    v.extend(more);
    v
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        x
    } else if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// Over 10⁶ inputs: specials, random bit patterns, and uniform grids where the functions
/// do their work.
fn sample_f32(n_per_part: usize) -> Vec<f32> {
    let mut rng = Rng(0x05ee_df32);
    let mut v = specials_f32();
    for _ in 0..n_per_part {
        v.push(f32::from_bits(rng.next_u64() as u32));
    }
    for scale in [1.0, 4.0, 20.0, 100.0] {
        for _ in 0..n_per_part {
            v.push((scale * rng.uniform()) as f32);
        }
    }
    v
}

fn sample_f64(n_per_part: usize) -> Vec<f64> {
    let mut rng = Rng(0x05ee_df64);
    let mut v: Vec<f64> = specials_f32().iter().map(|&x| f64::from(x)).collect();
    v.extend([
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        709.78,
        709.79,
        -708.4,
        -745.2,
        -746.0,
    ]);
    for _ in 0..n_per_part {
        v.push(f64::from_bits(rng.next_u64()));
    }
    for scale in [1.0, 4.0, 20.0, 100.0, 800.0] {
        for _ in 0..n_per_part {
            v.push(scale * rng.uniform());
        }
    }
    v
}

/// Runs `act` over `xs` on `path` and returns the worst error and the failures.
fn measure<T: Element>(path: SimdPath, act: Activation, xs: &[T]) -> (f64, T, Vec<String>) {
    let mut ys = xs.to_vec();
    let before = path_runs(path);
    assert!(apply_activation_on(path, act, &mut ys, xs.len()));
    if act != Activation::Linear {
        assert!(path_runs(path) > before, "{path} did not run for {act}");
    }
    let mut worst = (0.0, T::zero());
    let mut failures = Vec::new();
    let act_t = act.params_as::<T>();
    for (&x, &y) in xs.iter().zip(&ys) {
        if let Err(e) = check_activation_value(act, x, y) {
            if failures.len() < 5 {
                failures.push(e);
            } else {
                failures.push(String::new());
            }
        }
        let exact = reference::activation_f64(act_t, x.widen()).unwrap();
        if exact.abs() <= T::max_value().widen()
            && exact.abs() >= T::min_positive_value().widen()
            && !y.is_nan()
        {
            let e = ulp_error(y, exact);
            if e > worst.0 {
                worst = (e, x);
            }
        }
    }
    (worst.0, worst.1, failures)
}

fn run_all<T: Element>(xs: &[T], print: bool) {
    let mut bad = Vec::new();
    for path in SimdPath::ALL {
        if !path.is_available() {
            eprintln!("{path}: not available on this CPU, skipped");
            continue;
        }
        for act in elementwise() {
            let (worst, at, failures) = measure(path, act, xs);
            let bound = activation_ulp_bound::<T>(act).unwrap();
            if print {
                println!(
                    "{:>4} {:>9} {:<48} max {:>8.3} ulp at {:<14e} bound {:?} fails {}",
                    T::NAME,
                    path.name(),
                    act.to_string(),
                    worst,
                    at.widen(),
                    bound,
                    failures.len()
                );
            }
            // The portable path of a build without FMA (generic x86-64) rounds its
            // multiply-adds twice: its bounds are the FMA ones plus slack, reported.
            let fma = path != SimdPath::Portable || cfg!(target_feature = "fma");
            // Squareplus with b < 0 is ill-conditioned where x² ≈ −b: without a fused
            // x² + b it keeps only the bits the cancellation leaves.
            let ill = matches!(act, Activation::Squareplus { b } if b < 0.0);
            let relaxed = match bound {
                UlpBound::Ulps(b) if !fma => ill || worst <= 2.0 * b + 2.0,
                _ => false,
            };
            if !failures.is_empty() && !relaxed {
                bad.push(format!(
                    "{path} {act}: {} failures, e.g. {}",
                    failures.len(),
                    failures[0]
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Just above the smallest normal, gelu(x) ≈ x/2 is subnormal. The checker lets such
/// results be off by up to the smallest normal (a flush), but on every vector path the
/// result is x/2 to within a subnormal step: never x (which a flush of x·Φ(−x) inside
/// `x − x·Φ(−x)` would give) and, on the paths that keep subnormals, never 0.
#[test]
fn gelu_keeps_subnormal_halves() {
    let xs = [1.5, 2.0, 3.0, 1.0000001].map(|s: f32| s * f32::MIN_POSITIVE);
    for path in SimdPath::ALL {
        if !path.is_available() {
            continue;
        }
        let mut ys = xs.to_vec();
        assert!(apply_activation_on(
            path,
            Activation::Gelu,
            &mut ys,
            xs.len()
        ));
        for (&x, &y) in xs.iter().zip(&ys) {
            let half = f64::from(x) / 2.0;
            let step = f64::from(f32::MIN_POSITIVE) * f64::from(f32::EPSILON);
            assert!(
                y == 0.0 || (f64::from(y) - half).abs() <= 2.0 * step,
                "{path}: gelu({x:e}) = {y:e}, x/2 = {half:e}"
            );
            if path == SimdPath::Avx512 {
                assert!(y != 0.0, "{path}: gelu({x:e}) flushed");
            }
        }
    }
}

/// What `Activation`'s docs say of subnormal results of the exp family, checked: on
/// AVX-512 exponential, sigmoid, softplus and log_sigmoid round them once (the correctly
/// rounded value to within a subnormal step, never 0), as softmax does for a tiny
/// probability; the AVX2+FMA and portable paths flush them to zero of their sign.
#[test]
fn exp_family_subnormals_by_path() {
    let step = f64::from(f32::MIN_POSITIVE) * f64::from(f32::EPSILON);
    // Exact values: e^-95 = 5.52e-42 and e^-100 = 3.72e-44 (σ, softplus and
    // −log_sigmoid(−x) agree with eˣ to far below a subnormal step there).
    let cases = [
        (Activation::Exponential, -100.0f32, 3.720_075_976e-44),
        (Activation::Exponential, -95.0, 5.521_082_277e-42),
        (Activation::Sigmoid, -95.0, 5.521_082_277e-42),
        (Activation::Softplus, -100.0, 3.720_075_976e-44),
        (Activation::LogSigmoid, 95.0, -5.521_082_277e-42),
    ];
    for path in SimdPath::ALL {
        if !path.is_available() {
            continue;
        }
        for &(act, x, exact) in &cases {
            let mut y = [x];
            assert!(apply_activation_on(path, act, &mut y, 1));
            let y = f64::from(y[0]);
            if path == SimdPath::Avx512 {
                assert!(
                    (y - exact).abs() <= step,
                    "{path}: {act}({x}) = {y:e}, exact {exact:e}"
                );
            } else {
                assert!(
                    y == 0.0 && y.is_sign_positive() == (exact > 0.0),
                    "{path}: {act}({x}) = {y:e}, expected a flush"
                );
            }
        }
        let mut row = [0.0f32, -95.0];
        assert!(apply_activation_on(path, Activation::Softmax, &mut row, 2));
        let tiny = f64::from(row[1]);
        let exact = 5.521_082_277e-42 / (1.0 + 5.521_082_277e-42);
        if path == SimdPath::Avx512 {
            assert!(
                (tiny - exact).abs() <= step,
                "{path}: softmax tail {tiny:e}"
            );
        } else {
            assert_eq!(tiny, 0.0, "{path}: softmax tail");
        }
    }
}

#[test]
fn f32_dense_sample_within_bounds() {
    run_all::<f32>(&sample_f32(1 << 18), false);
}

#[test]
fn f64_sample_within_bounds() {
    run_all::<f64>(&sample_f64(1 << 15), false);
}

#[test]
#[ignore = "report: cargo test --release --test simd_ulp -- --ignored --nocapture"]
fn report_f32_sample() {
    run_all::<f32>(&sample_f32(1 << 20), true);
}

#[test]
#[ignore = "report: cargo test --release --test simd_ulp -- --ignored --nocapture"]
fn report_f64_ten_million() {
    run_all::<f64>(&sample_f64(2_000_000), true);
}

/// Every f32 bit pattern through every element-wise activation on every available path
/// (set `DENSE_KERNEL_SWEEP=name,name` to pick activations by their full display name,
/// `DENSE_KERNEL_SWEEP_PATH=avx2+fma` to pick one path). Prints the
/// max ulp error per activation and path; fails on any bound violation.
#[test]
#[ignore = "exhaustive: cargo test --release --test simd_ulp -- --ignored exhaustive --nocapture"]
fn exhaustive_f32() {
    use rayon::prelude::*;
    let pick: Option<Vec<String>> = std::env::var("DENSE_KERNEL_SWEEP")
        .ok()
        .map(|s| s.split(',').map(|t| t.trim().to_string()).collect());
    let mut bad = Vec::new();
    let only_path = std::env::var("DENSE_KERNEL_SWEEP_PATH").ok();
    for path in SimdPath::ALL.into_iter().filter(|p| p.is_available()) {
        if only_path.as_deref().is_some_and(|p| p != path.name()) {
            continue;
        }
        let acts: Vec<Activation> = match &pick {
            // In the order given.
            Some(p) => p
                .iter()
                .filter_map(|n| elementwise().into_iter().find(|a| a.to_string() == *n))
                .collect(),
            None => elementwise(),
        };
        for act in acts {
            let name = act.to_string();
            let t0 = std::time::Instant::now();
            let act_t = act.params_as::<f32>();
            const BLOCK: u64 = 1 << 16;
            let (worst, at, fails, first) = (0..(1u64 << 32) / BLOCK)
                .into_par_iter()
                .map(|b| {
                    let xs: Vec<f32> = (b * BLOCK..(b + 1) * BLOCK)
                        .map(|i| f32::from_bits(i as u32))
                        .collect();
                    let mut ys = xs.clone();
                    assert!(apply_activation_on(path, act, &mut ys, xs.len()));
                    let mut worst = (0.0f64, 0.0f32, 0u64, None::<String>);
                    for (&x, &y) in xs.iter().zip(&ys) {
                        let exact = reference::activation_f64(act_t, f64::from(x)).unwrap();
                        if let Err(e) = check_activation_exact(act_t, x, y, exact) {
                            worst.2 += 1;
                            worst.3.get_or_insert(e);
                        }
                        if exact.abs() <= f64::from(f32::MAX)
                            && exact.abs() >= f64::from(f32::MIN_POSITIVE)
                            && !y.is_nan()
                        {
                            let e = ulp_error(y, exact);
                            if e > worst.0 {
                                (worst.0, worst.1) = (e, x);
                            }
                        }
                    }
                    worst
                })
                .reduce(
                    || (0.0, 0.0, 0, None),
                    |a, b| {
                        let w = if a.0 >= b.0 { (a.0, a.1) } else { (b.0, b.1) };
                        (w.0, w.1, a.2 + b.2, a.3.or(b.3))
                    },
                );
            println!(
                "exhaustive {:>9} {:<24} max {:>7.3} ulp at {:<14e} failures {:>8}  ({:.0} s)",
                path.name(),
                name,
                worst,
                at,
                fails,
                t0.elapsed().as_secs_f64()
            );
            if fails > 0 {
                bad.push(format!(
                    "{path} {name}: {fails} failures, e.g. {}",
                    first.unwrap_or_default()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
