//! Training against real Keras 3.15 (jax): `tests/keras/training.json`, written by
//! `tests/keras/gen_training.py` — 33 cases over every optimizer, loss, clipping,
//! regularizer and constraint the crate has, the tutorial's two models, partial last
//! batches and a validation split, each run by Keras in float32 and in float64 from the
//! same initial weights: every `train_on_batch` loss, the final weights, `evaluate`,
//! and `fit(shuffle=False)`'s history and weights.
//!
//! The crate's `f32` run must be about as close to Keras's float64 run as Keras's own
//! float32 run is. Per quantity (the step losses, each weight array, the history), with
//! `e_K = max|keras32 − keras64|` and `e = max|crate32 − keras64|`:
//! `e ≤ F·e_K + 4·u·max|q|`, `u = 2⁻²⁴` (the final rounding of both to f32, and Keras's
//! float32 loss being `(loss·B)/B`, one more rounding). Both runs round the same
//! operations to f32; their errors against float64 are sums of as many independent
//! roundings of like size, and the larger of two such sums rarely exceeds the other by
//! a factor 2. F = 3 on the FMA paths; the portable path (no fused multiply-add: two
//! roundings per product term where the others have one) gets F = 6.
//!
//! Keras's own "float64" run is not float64 throughout: Keras 3.15's `result_type`
//! maps float64 to float32 on the jax backend, so `keras.ops.mean` (MSE, MAE, Huber,
//! binary crossentropy) and `tanh` compute in float32 there (gen_training.py lists the
//! places). The reference is therefore the fixture's `float64_exact` run: Keras with
//! that mapping patched, checked by the generator to hold no float32 value in its train
//! and test steps and to agree with an independent numpy float64 run to ~1e-16. `e_K`
//! is Keras's float32 run against it. The crate's `f64` run must be within
//! `8·F·e_K·2⁻²⁹ + 16·ε·max|q|` of it: Keras's float32 error scaled to float64's unit
//! roundoff (2⁻²⁹ of float32's), with room for sums and formulas ordered differently.
//! Accuracies are counts: equal to Keras's exact float64 value, or to its float32 one.

use dense_kernel::layer::{
    ActivationLayer, CompileOptions, Constraint, Dense, FitOptions, Loss, Metric, Optimizer,
    Regularizer, Sequential, Tensor,
};
use dense_kernel::{Activation, Element};
use serde_json::Value;
use std::collections::BTreeMap;

fn hex(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().expect("hex string"), 16).expect("hex"))
}

fn hexes(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(hex).collect()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

fn regularizer(v: &Value) -> Option<Regularizer> {
    if v.is_null() {
        return None;
    }
    Some(Regularizer::l1_l2(
        v["l1"].as_f64().unwrap_or(0.0),
        v["l2"].as_f64().unwrap_or(0.0),
    ))
}

fn constraint(v: &Value) -> Option<Constraint> {
    if v.is_null() {
        return None;
    }
    let axis = v["axis"].as_u64().unwrap_or(0) as usize;
    Some(match v["name"].as_str().expect("constraint name") {
        "max_norm" => Constraint::MaxNorm {
            max_value: num(v, "max_value"),
            axis,
        },
        "non_neg" => Constraint::NonNeg,
        "unit_norm" => Constraint::UnitNorm { axis },
        "min_max_norm" => Constraint::MinMaxNorm {
            min_value: num(v, "min_value"),
            max_value: num(v, "max_value"),
            rate: num(v, "rate"),
            axis,
        },
        other => panic!("constraint {other}"),
    })
}

fn optimizer(v: &Value) -> Optimizer {
    let lr = num(v, "learning_rate");
    match v["name"].as_str().expect("optimizer name") {
        "sgd" => Optimizer::Sgd {
            learning_rate: lr,
            momentum: num(v, "momentum"),
            nesterov: v["nesterov"].as_bool().expect("nesterov"),
        },
        "adam" => Optimizer::Adam {
            learning_rate: lr,
            beta_1: num(v, "beta_1"),
            beta_2: num(v, "beta_2"),
            epsilon: num(v, "epsilon"),
            amsgrad: v["amsgrad"].as_bool().expect("amsgrad"),
        },
        "adamw" => Optimizer::AdamW {
            learning_rate: lr,
            weight_decay: num(v, "weight_decay"),
            beta_1: num(v, "beta_1"),
            beta_2: num(v, "beta_2"),
            epsilon: num(v, "epsilon"),
            amsgrad: v["amsgrad"].as_bool().expect("amsgrad"),
        },
        "rmsprop" => Optimizer::RmsProp {
            learning_rate: lr,
            rho: num(v, "rho"),
            momentum: num(v, "momentum"),
            epsilon: num(v, "epsilon"),
            centered: v["centered"].as_bool().expect("centered"),
        },
        "adagrad" => Optimizer::Adagrad {
            learning_rate: lr,
            initial_accumulator_value: num(v, "initial_accumulator_value"),
            epsilon: num(v, "epsilon"),
        },
        other => panic!("optimizer {other}"),
    }
}

fn loss(v: &Value) -> Loss {
    let logits = v["from_logits"].as_bool().unwrap_or(false);
    let ls = v["label_smoothing"].as_f64().unwrap_or(0.0);
    match v["name"].as_str().expect("loss name") {
        "categorical_crossentropy" => Loss::CategoricalCrossentropy {
            from_logits: logits,
            label_smoothing: ls,
        },
        "sparse_categorical_crossentropy" => Loss::SparseCategoricalCrossentropy {
            from_logits: logits,
        },
        "binary_crossentropy" => Loss::BinaryCrossentropy {
            from_logits: logits,
            label_smoothing: ls,
        },
        "mean_squared_error" => Loss::MeanSquaredError,
        "mean_absolute_error" => Loss::MeanAbsoluteError,
        "huber" => Loss::Huber {
            delta: num(v, "delta"),
        },
        other => panic!("loss {other}"),
    }
}

fn compile_options(c: &Value) -> CompileOptions {
    let metrics: Vec<Metric> = c["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m.as_str().expect("metric").parse().expect("metric name"))
        .collect();
    let mut o = CompileOptions::new().metrics(&metrics);
    let opt = &c["optimizer"];
    if let Some(v) = opt["clipnorm"].as_f64() {
        o = o.clipnorm(v);
    }
    if let Some(v) = opt["clipvalue"].as_f64() {
        o = o.clipvalue(v);
    }
    if let Some(v) = opt["global_clipnorm"].as_f64() {
        o = o.global_clipnorm(v);
    }
    o
}

/// The case's model, built, with its initial weights, compiled.
fn model<T: Element>(c: &Value) -> Sequential<T> {
    let mut m = Sequential::<T>::new();
    let mut first = true;
    for l in c["layers"].as_array().expect("layers") {
        let act: Activation = l["activation"]
            .as_str()
            .expect("activation")
            .parse()
            .expect("activation name");
        m = match l["class"].as_str().expect("class") {
            "Dense" => {
                let mut d = Dense::<T>::new(l["units"].as_u64().expect("units") as usize)
                    .activation(act)
                    .use_bias(l["use_bias"].as_bool().expect("use_bias"));
                if first {
                    d = d.input_dim(c["input_dim"].as_u64().expect("input_dim") as usize);
                }
                if let Some(r) = regularizer(&l["kernel_regularizer"]) {
                    d = d.kernel_regularizer(r);
                }
                if let Some(r) = regularizer(&l["bias_regularizer"]) {
                    d = d.bias_regularizer(r);
                }
                if let Some(r) = regularizer(&l["activity_regularizer"]) {
                    d = d.activity_regularizer(r);
                }
                if let Some(k) = constraint(&l["kernel_constraint"]) {
                    d = d.kernel_constraint(k);
                }
                if let Some(k) = constraint(&l["bias_constraint"]) {
                    d = d.bias_constraint(k);
                }
                m.add(d)
            }
            "Activation" => m.add(ActivationLayer::new(act)),
            other => panic!("layer {other}"),
        }
        .expect("layer");
        first = false;
    }
    let init: Vec<Tensor<T>> = m
        .get_weights()
        .expect("built")
        .into_iter()
        .zip(c["initial_weights"].as_array().expect("weights"))
        .map(|(t, w)| Tensor {
            shape: t.shape,
            data: hexes(w).into_iter().map(T::narrow).collect(),
        })
        .collect();
    m.set_weights(&init).expect("weights fit");
    m.compile_with(
        optimizer(&c["optimizer"]),
        loss(&c["loss"]),
        &compile_options(c),
    )
    .expect("compiles");
    m
}

/// What one run gives, in the fixture's layout.
#[derive(Default)]
struct Run {
    step_losses: Vec<f64>,
    final_weights: Vec<Vec<f64>>,
    evaluate: BTreeMap<String, f64>,
    fit_history: BTreeMap<String, Vec<f64>>,
    fit_final_weights: Vec<Vec<f64>>,
}

fn weights<T: Element>(m: &mut Sequential<T>) -> Vec<Vec<f64>> {
    m.get_weights()
        .expect("weights")
        .iter()
        .map(|t| t.data.iter().map(|v| v.widen()).collect())
        .collect()
}

fn run<T: Element>(c: &Value) -> Run {
    let x: Vec<T> = hexes(&c["x"]).into_iter().map(T::narrow).collect();
    let y: Vec<T> = hexes(&c["y"]).into_iter().map(T::narrow).collect();
    let (xs, ys) = (usizes(&c["x_shape"]), usizes(&c["y_shape"]));
    let (b, epochs) = (
        c["batch_size"].as_u64().expect("batch") as usize,
        c["epochs"].as_u64().expect("epochs") as usize,
    );
    let n_all = xs[0];
    let split = c["validation_split"].as_f64();
    let n = split.map_or(n_all, |s| (n_all as f64 * (1.0 - s)).floor() as usize);
    let (xr, yr) = (x.len() / n_all, y.len() / n_all);
    let mut out = Run::default();

    let mut m = model::<T>(c);
    for _ in 0..epochs {
        let mut lo = 0;
        while lo < n {
            let nb = b.min(n - lo);
            let (mut bxs, mut bys) = (xs.clone(), ys.clone());
            bxs[0] = nb;
            bys[0] = nb;
            out.step_losses.push(
                m.train_on_batch(
                    &x[lo * xr..(lo + nb) * xr],
                    &bxs,
                    &y[lo * yr..(lo + nb) * yr],
                    &bys,
                )
                .expect("step"),
            );
            lo += nb;
        }
    }
    out.final_weights = weights(&mut m);
    out.evaluate = m
        .evaluate_with(&x, &xs, &y, &ys, b)
        .expect("evaluate")
        .into_iter()
        .collect();

    let mut f = model::<T>(c);
    let mut opts = FitOptions::new()
        .batch_size(b)
        .epochs(epochs)
        .shuffle(false)
        .verbose(0);
    if let Some(s) = split {
        opts = opts.validation_split(s);
    }
    let h = f.fit(&x, &xs, &y, &ys, &opts).expect("fit");
    for k in h.keys() {
        out.fit_history
            .insert(k.to_owned(), h.get(k).expect("key").to_vec());
    }
    out.fit_final_weights = weights(&mut f);
    out
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, b| a.max(b.abs()))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A Keras metric name as `History` / `evaluate` report it (the name given).
fn is_accuracy(key: &str) -> bool {
    key.contains("accuracy")
}

/// One quantity's check; returns `e / allowance` for the report.
fn check(
    what: &str,
    crate32: &[f64],
    crate64: &[f64],
    k32: &[f64],
    k64: &[f64],
    factor: f64,
    failures: &mut Vec<String>,
) -> f64 {
    let scale = max_abs(k64);
    let e_k = max_diff(k32, k64);
    let e = max_diff(crate32, k64);
    let allow = factor * e_k + 4.0 * f64::from(f32::EPSILON) / 2.0 * scale;
    if e > allow {
        failures.push(format!(
            "{what}: crate f32 off Keras f64 by {e:.3e} > {allow:.3e} (Keras f32: {e_k:.3e})"
        ));
    }
    let e64 = max_diff(crate64, k64);
    // float64's unit roundoff is 2⁻²⁹ of float32's: the float32 error scaled down, with
    // room (×8) for sums and formulas that differ from Keras's, and a few ulps.
    let allow64 = factor * 8.0 * e_k * 2f64.powi(-29) + 16.0 * f64::EPSILON * scale;
    if std::env::var("F64_REPORT").is_ok() {
        println!("F64 {:.3e} {what}", e64 / allow64);
    }
    if e64 > allow64 {
        failures.push(format!(
            "{what}: crate f64 off Keras f64 by {e64:.3e} > {allow64:.3e}"
        ));
    }
    if allow > 0.0 {
        e / allow
    } else {
        0.0
    }
}

fn accuracy_matches(what: &str, got: &[f64], k32: &[f64], k64: &[f64], failures: &mut Vec<String>) {
    for i in 0..got.len() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6;
        if !close(got[i], k64[i]) && !close(got[i], k32[i]) {
            failures.push(format!(
                "{what}[{i}]: accuracy {} where Keras has {} (f64) / {} (f32)",
                got[i], k64[i], k32[i]
            ));
        }
    }
}

fn fixture_hist(v: &Value) -> BTreeMap<String, Vec<f64>> {
    v.as_object()
        .expect("history")
        .iter()
        .map(|(k, a)| (k.clone(), hexes(a)))
        .collect()
}

#[test]
fn training_matches_real_keras() {
    let fx: Value =
        serde_json::from_str(include_str!("keras/training.json")).expect("training.json parses");
    let portable = dense_kernel::simd_path() == dense_kernel::SimdPath::Portable;
    let factor = if portable { 6.0 } else { 3.0 };
    let mut failures = Vec::new();
    let mut acc_failures = Vec::new();
    let mut worst: Vec<(f64, String)> = Vec::new();
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let (r32, r64) = (run::<f32>(c), run::<f64>(c));
        let (k32, k64) = (&c["float32"], &c["float64_exact"]);
        let mut note = |what: String, a: &[f64], b: &[f64], x: &[f64], y: &[f64]| {
            let r = check(&what, a, b, x, y, factor, &mut failures);
            worst.push((r, what));
        };
        note(
            format!("{name}: step losses"),
            &r32.step_losses,
            &r64.step_losses,
            &hexes(&k32["step_losses"]),
            &hexes(&k64["step_losses"]),
        );
        for (key, runs) in [
            ("final_weights", (&r32.final_weights, &r64.final_weights)),
            (
                "fit_final_weights",
                (&r32.fit_final_weights, &r64.fit_final_weights),
            ),
        ] {
            let (a32, a64) = (
                k32[key].as_array().expect(key),
                k64[key].as_array().expect(key),
            );
            assert_eq!(runs.0.len(), a32.len(), "{name}: {key} count");
            for i in 0..a32.len() {
                note(
                    format!("{name}: {key}[{i}]"),
                    &runs.0[i],
                    &runs.1[i],
                    &hexes(&a32[i]),
                    &hexes(&a64[i]),
                );
            }
        }
        // evaluate and the fit history, by the names Keras reports.
        let ev32: BTreeMap<String, f64> = k32["evaluate"]
            .as_object()
            .expect("evaluate")
            .iter()
            .map(|(k, v)| (k.clone(), hex(v)))
            .collect();
        let ev64: BTreeMap<String, f64> = k64["evaluate"]
            .as_object()
            .expect("evaluate")
            .iter()
            .map(|(k, v)| (k.clone(), hex(v)))
            .collect();
        let (h32, h64) = (
            fixture_hist(&k32["fit_history"]),
            fixture_hist(&k64["fit_history"]),
        );
        for (key, kv) in &ev64 {
            let got32 = *r32
                .evaluate
                .get(key)
                .unwrap_or_else(|| panic!("{name}: evaluate lacks {key}"));
            let got64 = r64.evaluate[key];
            if is_accuracy(key) {
                accuracy_matches(
                    &format!("{name}: evaluate {key}"),
                    &[got32],
                    &[ev32[key]],
                    &[*kv],
                    &mut acc_failures,
                );
                accuracy_matches(
                    &format!("{name}: evaluate {key} (f64)"),
                    &[got64],
                    &[ev32[key]],
                    &[*kv],
                    &mut acc_failures,
                );
            } else {
                note(
                    format!("{name}: evaluate {key}"),
                    &[got32],
                    &[got64],
                    &[ev32[key]],
                    &[*kv],
                );
            }
        }
        for (key, kv) in &h64 {
            let got32 = r32
                .fit_history
                .get(key)
                .unwrap_or_else(|| panic!("{name}: history lacks {key}"));
            let got64 = &r64.fit_history[key];
            if is_accuracy(key) {
                accuracy_matches(
                    &format!("{name}: history {key}"),
                    got32,
                    &h32[key],
                    kv,
                    &mut acc_failures,
                );
                accuracy_matches(
                    &format!("{name}: history {key} (f64)"),
                    got64,
                    &h32[key],
                    kv,
                    &mut acc_failures,
                );
            } else {
                note(
                    format!("{name}: history {key}"),
                    got32,
                    got64,
                    &h32[key],
                    kv,
                );
            }
        }
    }
    failures.extend(acc_failures);
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("largest error / allowance (F = {factor}):");
    for (r, w) in worst.iter().take(8) {
        println!("  {r:.3}  {w}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
