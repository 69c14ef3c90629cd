//! The activations' derivatives against real Keras 3.15 (jax autodiff), from
//! tests/keras/backward.txt (tests/keras/gen_backward.py; conventions in
//! docs/BACKWARD_NOTES.md).
//!
//! Ground truth: for the piecewise-linear activations, Keras's own float32 result (its
//! kink tests see float32-rounded arguments, as the crate's do); for the smooth ones
//! and the row-wise products, Keras's float64 run on the same (widened) inputs, which
//! is accurate far below a float32 ulp. The crate's `f32` result must be within one
//! float32 ulp of it (it rounds an `f64` value once) plus, for the float64 truth, a few
//! `f64` epsilons of `|dy|` for jax's own cancellation; its `f64` result within a few
//! `f64` ulps of the float64 run.
//!
//! Skipped, as documented departures (docs/ACCURACY.md, "Backward"): subnormal `z` or
//! `dy` (jitted XLA reads them as 0), non-finite `dy` (jax's `0·∞` products), and
//! `z = ±∞` for the smooth activations whose formula Keras evaluates to NaN there (the
//! crate returns the limit), and `|z|` beyond the square root of the dtype's largest
//! value where Keras's own intermediates (`z²`, `(z + 1)²`, `z·dy`) overflow.

use dense_kernel::{dense_backward, Activation, Element, Gradients, MatMut, MatRef};
use std::collections::HashMap;

struct Block {
    arrays: HashMap<String, Vec<u64>>,
}

struct Case {
    id: String,
    act: Activation,
    rows: Vec<usize>,
    f32: Block,
    f64: Block,
}

fn parse_act(call: &str) -> Activation {
    let name = call
        .trim_start_matches("keras.activations.")
        .split('(')
        .next()
        .unwrap();
    let inner = call[call.find('(').unwrap() + 1..call.rfind(')').unwrap()].to_string();
    let kw: HashMap<&str, &str> = inner
        .split(", ")
        .filter_map(|p| p.split_once('='))
        .collect();
    let f = |k: &str, d: f64| kw.get(k).map_or(d, |v| v.parse::<f64>().unwrap());
    use Activation::*;
    match name {
        "relu" if kw.is_empty() => Relu,
        "relu" => ReluWith {
            negative_slope: f("negative_slope", 0.0),
            max_value: kw
                .get("max_value")
                .filter(|v| **v != "None")
                .map(|v| v.parse().unwrap()),
            threshold: f("threshold", 0.0),
        },
        "leaky_relu" => LeakyRelu {
            negative_slope: f("negative_slope", 0.2),
        },
        "elu" => Elu {
            alpha: f("alpha", 1.0),
        },
        "celu" => Celu {
            alpha: f("alpha", 1.0),
        },
        "gelu" if kw.get("approximate") == Some(&"True") => GeluTanh,
        "squareplus" => Squareplus { b: f("b", 4.0) },
        "soft_shrink" => SoftShrink {
            threshold: f("threshold", 0.5),
        },
        "hard_shrink" => HardShrink {
            threshold: f("threshold", 0.5),
        },
        "threshold" => Threshold {
            threshold: f("threshold", 0.0),
            default_value: f("default_value", 0.0),
        },
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("unknown activation {other}")),
    }
}

fn parse() -> Vec<Case> {
    let text = include_str!("keras/backward.txt");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mut cases = Vec::new();
    let mut i = 0;
    let empty = || Block {
        arrays: HashMap::new(),
    };
    while i < lines.len() {
        let l = lines[i];
        i += 1;
        if let Some(rest) = l.strip_prefix("act ") {
            let (id, call) = rest.split_once(' ').unwrap();
            cases.push(Case {
                id: id.to_string(),
                act: parse_act(call),
                rows: Vec::new(),
                f32: empty(),
                f64: empty(),
            });
            continue;
        }
        let case = cases.last_mut().expect("an act line first");
        let mut words = l.split_whitespace();
        match words.next() {
            Some("rows") => case.rows = words.map(|w| w.parse().unwrap()).collect(),
            Some(dtype @ ("f32" | "f64")) => {
                // Arrays follow until the next dtype, act or end line.
                while i < lines.len() {
                    let mut h = lines[i].split_whitespace();
                    let (Some(key), Some(count)) = (h.next(), h.next()) else {
                        break;
                    };
                    let Ok(count) = count.parse::<usize>() else {
                        break;
                    };
                    if ["f32", "f64", "act", "end", "rows", "kinks"].contains(&key) {
                        break;
                    }
                    i += 1;
                    let mut vals = Vec::with_capacity(count);
                    while vals.len() < count {
                        vals.extend(
                            lines[i]
                                .split_whitespace()
                                .map(|w| u64::from_str_radix(w, 16).unwrap()),
                        );
                        i += 1;
                    }
                    let block = if dtype == "f32" {
                        &mut case.f32
                    } else {
                        &mut case.f64
                    };
                    block.arrays.insert(key.to_string(), vals);
                }
            }
            _ => {}
        }
    }
    cases
}

/// `dz` for `z`, `dy` as one column (element-wise) or as rows of the given lengths.
fn crate_dz<T: Element>(act: Activation, rows: &[usize], z: &[T], dy: &[T]) -> Vec<T> {
    let mut out = Vec::new();
    let groups: Vec<usize> = if rows.is_empty() {
        vec![z.len()]
    } else {
        rows.to_vec()
    };
    let mut at = 0;
    for len in groups {
        let (m, n) = if rows.is_empty() { (len, 1) } else { (1, len) };
        let (zs, ds) = (&z[at..at + len], &dy[at..at + len]);
        let x = vec![T::narrow(1.0); m];
        let w = vec![T::narrow(1.0); n];
        let (mut dz, mut dw) = (vec![T::narrow(0.0); len], vec![T::narrow(0.0); n]);
        dense_backward(
            MatRef::from_slice(&x, m, 1).unwrap(),
            MatRef::from_slice(&w, 1, n).unwrap(),
            act,
            MatRef::from_slice(zs, m, n).unwrap(),
            MatRef::from_slice(ds, m, n).unwrap(),
            Gradients {
                pre_activation: MatMut::from_slice(&mut dz, m, n).unwrap(),
                input: None,
                kernel: MatMut::from_slice(&mut dw, 1, n).unwrap(),
                bias: None,
            },
        )
        .unwrap();
        out.extend(dz);
        at += len;
    }
    out
}

fn f32s(v: &[u64]) -> Vec<f32> {
    v.iter().map(|&b| f32::from_bits(b as u32)).collect()
}

fn f64s(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&b| f64::from_bits(b)).collect()
}

fn ulp32(x: f64) -> f64 {
    let a = (x as f32).abs();
    if a.is_finite() {
        (f32::from_bits(a.to_bits() + 1) - a).max(f32::MIN_POSITIVE * f32::EPSILON) as f64
    } else {
        0.0
    }
}

fn ulp64(x: f64) -> f64 {
    let a = x.abs();
    (f64::from_bits(a.to_bits() + 1) - a).max(f64::MIN_POSITIVE * f64::EPSILON)
}

fn subnormal(x: f64, min: f64) -> bool {
    x != 0.0 && x.abs() < min
}

/// Piecewise-linear: the derivative is a constant per piece, so Keras's float32 result
/// is the truth (its kinks see float32-rounded arguments, as the crate's do).
fn piecewise(act: Activation) -> bool {
    use Activation::*;
    matches!(
        act,
        Linear
            | Relu
            | Relu6
            | LeakyRelu { .. }
            | ReluWith { .. }
            | HardSigmoid
            | HardSilu
            | HardTanh
            | SparsePlus
            | SoftShrink { .. }
            | HardShrink { .. }
            | SparseSigmoid
            | Threshold { .. }
    )
}

/// Piecewise-linear with a constant derivative per piece: no intermediate that grows
/// with `z` (Keras's results hold at any finite `z`).
fn piecewise_constant(act: Activation) -> bool {
    piecewise(act) && !matches!(act, Activation::HardSilu | Activation::SparsePlus)
}

/// Keras's own error in `f64` on a smooth activation's product: a few `ε` of `|dy|`,
/// times the formula's growth in `z` (gelu's tanh form multiplies by
/// `3·0.044715·z²`; the others grow at most linearly).
fn keras_f64_error(dy: f64, z: f64) -> f64 {
    16.0 * f64::EPSILON * dy.abs() * (1.0 + z.abs().min(1e3)).powi(2)
}

/// The smooth activations whose Keras formula is NaN at `z = ±∞` (the crate: the limit).
fn limit_at_infinity(act: Activation) -> bool {
    use Activation::*;
    matches!(
        act,
        Gelu | GeluTanh | Silu | Mish | Softsign | Squareplus { .. } | SparsePlus
    )
}

#[test]
fn element_wise_derivatives_match_keras() {
    let mut failures = Vec::new();
    let mut checked = (0usize, 0usize);
    for case in parse().iter().filter(|c| c.rows.is_empty()) {
        let z = f32s(&case.f32.arrays["z"]);
        let dy = f32s(&case.f32.arrays["dy"]);
        let k32 = f32s(&case.f32.arrays["dz"]);
        let k64 = f64s(&case.f64.arrays["dz"]);
        // The f64 run's inputs: the f32 ones widened, then more.
        let mut z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let mut dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
        z64.extend(f64s(&case.f64.arrays["zx"]));
        dy64.extend(f64s(&case.f64.arrays["dyx"]));
        let ours32 = crate_dz(case.act, &[], &z, &dy);
        let ours64 = crate_dz(case.act, &[], &z64, &dy64);
        for (t, (zi, di)) in z64.iter().zip(&dy64).enumerate() {
            let (zi, di) = (*zi, *di);
            // Beyond √MAX of the dtype Keras's own intermediates (z², (z + 1)², z·dy)
            // overflow: the crate keeps the f64 value there (documented).
            let grows = !piecewise_constant(case.act);
            let huge32 = grows && zi.abs() > (f32::MAX as f64).sqrt();
            let huge64 = grows && zi.abs() > f64::MAX.sqrt();
            if !di.is_finite() || (zi.is_infinite() && limit_at_infinity(case.act)) {
                continue;
            }
            // f32, on the f32 inputs only.
            let keras32_overflows = piecewise(case.act) && huge32;
            if t < z.len()
                && !keras32_overflows
                && !subnormal(zi, f32::MIN_POSITIVE as f64)
                && !subnormal(di, f32::MIN_POSITIVE as f64)
            {
                let got = ours32[t] as f64;
                let (want, tol) = if piecewise(case.act) {
                    // hard_silu's middle piece, (2z + 3)/6, takes Keras a few roundings.
                    let ulps = if case.act == Activation::HardSilu {
                        4.0
                    } else {
                        1.0
                    };
                    (k32[t] as f64, ulps * ulp32(k32[t] as f64))
                } else {
                    // The f64 truth rounded to f32, as the crate's result is (±∞ past
                    // f32's range); Keras's own f64 error grows with z as in f64 below.
                    let w = k64[t] as f32 as f64;
                    (w, ulp32(w) + keras_f64_error(di, zi))
                };
                checked.0 += 1;
                if !(got.is_nan() && want.is_nan() || got == want || (got - want).abs() <= tol) {
                    failures.push(format!(
                        "{} f32 z={zi:e} dy={di:e}: {got:e} vs Keras {want:e}",
                        case.id
                    ));
                }
            }
            // f64.
            if !huge64 && !subnormal(zi, f64::MIN_POSITIVE) && !subnormal(di, f64::MIN_POSITIVE) {
                let (got, want) = (ours64[t], k64[t]);
                let tol = if piecewise(case.act) {
                    2.0 * ulp64(want)
                } else {
                    4.0 * ulp64(want) + keras_f64_error(di, zi)
                };
                checked.1 += 1;
                if !(got.is_nan() && want.is_nan() || got == want || (got - want).abs() <= tol) {
                    failures.push(format!(
                        "{} f64 z={zi:e} dy={di:e}: {got:e} vs Keras {want:e}",
                        case.id
                    ));
                }
            }
        }
    }
    eprintln!("checked (f32, f64): {checked:?}");
    assert!(checked.0 > 5000 && checked.1 > 5000, "checked {checked:?}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn row_wise_products_match_keras() {
    let mut failures = Vec::new();
    let mut rows_checked = 0;
    for case in parse().iter().filter(|c| !c.rows.is_empty()) {
        let z = f32s(&case.f32.arrays["z"]);
        let dy = f32s(&case.f32.arrays["dy"]);
        let key = if case.act == Activation::Sparsemax {
            "dzp"
        } else {
            "dz"
        };
        let k64 = f64s(&case.f64.arrays[key]);
        let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
        let ours32 = crate_dz(case.act, &case.rows, &z, &dy);
        let ours64 = crate_dz(case.act, &case.rows, &z64, &dy64);
        let mut at = 0;
        for &len in &case.rows {
            let r = at..at + len;
            at += len;
            let finite = z64[r.clone()].iter().all(|v| v.is_finite());
            let dy_ok = dy64[r.clone()]
                .iter()
                .all(|v| v.is_finite() && !subnormal(*v, f32::MIN_POSITIVE as f64));
            let z_ok = z64[r.clone()]
                .iter()
                .all(|v| !subnormal(*v, f32::MIN_POSITIVE as f64));
            if !dy_ok || !z_ok {
                continue;
            }
            if !finite {
                // A row with NaN or +∞ (or only −∞) is NaN, as Keras's softmax and
                // log_softmax give it; Keras's sparsemax differs there (docs).
                let bad = z64[r.clone()]
                    .iter()
                    .any(|v| v.is_nan() || *v == f64::INFINITY)
                    || z64[r.clone()].iter().all(|v| *v == f64::NEG_INFINITY);
                if bad && case.act != Activation::Sparsemax {
                    if !ours32[r.clone()].iter().all(|v| v.is_nan())
                        || !k64[r.clone()].iter().all(|v| v.is_nan())
                    {
                        failures.push(format!("{} row {r:?}: NaN row expected", case.id));
                    }
                    continue;
                }
                if bad {
                    continue;
                }
            }
            rows_checked += 1;
            let mag: f64 = dy64[r.clone()].iter().map(|v| v.abs()).sum();
            for i in r.clone() {
                let want = k64[i];
                let t32 = ulp32(want) + 16.0 * f64::EPSILON * (dy64[i].abs() + mag);
                let t64 =
                    4.0 * ulp64(want) + 16.0 * f64::EPSILON * (dy64[i].abs() + mag) * len as f64;
                for (dt, got, tol) in [("f32", ours32[i] as f64, t32), ("f64", ours64[i], t64)] {
                    if !(got.is_nan() && want.is_nan() || (got - want).abs() <= tol) {
                        failures.push(format!(
                            "{} {dt} row {r:?} [{i}] z={:e} dy={:e}: {got:e} vs Keras {want:e}",
                            case.id, z64[i], dy64[i]
                        ));
                    }
                }
            }
        }
    }
    eprintln!("rows checked: {rows_checked}");
    assert!(rows_checked > 30, "{rows_checked} rows checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
