//! Keras parity through the layer API: the seed tutorial's two models, a rank-3 input,
//! regularizer penalties and constraint projections, against `tests/keras/
//! layer_fixtures.json`, written by real Keras 3.15.1 (`tests/keras/
//! gen_layer_fixtures.py`).
//!
//! Outputs are held to a bound derived layer by layer (below), which both the crate and
//! Keras must meet against an `f64` evaluation of the same model; summaries and parameter
//! counts must match Keras's exactly.

use dense_kernel::layer::{
    ActivationLayer, Constraint, Dense, Input, Regularizer, Sequential, Tensor,
};
use dense_kernel::Activation;
use serde_json::Value;

fn fixtures() -> Value {
    let text = include_str!("keras/layer_fixtures.json");
    serde_json::from_str(text).expect("layer_fixtures.json parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    // The fixture holds float32 values written exactly; the cast is exact.
    floats(v).into_iter().map(|x| x as f32).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Sets every Dense layer's weights from the fixture's `weights` list.
fn load_weights(model: &mut Sequential<f32>, fx: &Value) {
    let ws = fx["weights"].as_array().unwrap();
    let names: Vec<String> = ws
        .iter()
        .map(|w| w["layer"].as_str().unwrap().to_owned())
        .collect();
    let mut done = Vec::new();
    for name in &names {
        if done.contains(name) {
            continue;
        }
        done.push(name.clone());
        let tensors: Vec<Tensor<f32>> = ws
            .iter()
            .filter(|w| w["layer"].as_str() == Some(name))
            .map(|w| Tensor {
                shape: usizes(&w["shape"]),
                data: f32s(&w["values"]),
            })
            .collect();
        model
            .dense_mut(name)
            .unwrap_or_else(|| panic!("no Dense layer {name}"))
            .set_weights(&tensors)
            .unwrap();
    }
}

/// `f32` unit roundoff and `γ(n) = n·u/(1 − n·u)`.
const U: f64 = f32::EPSILON as f64 / 2.0;
fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

/// One layer of the model as the bound sees it.
enum Step<'a> {
    Dense {
        kernel: &'a [f32],
        bias: &'a [f32],
        units: usize,
    },
    Act(Activation),
}

/// The model evaluated in `f64` from the `f32` input and weights (`truth`), and a bound
/// `B` per output such that any evaluation in `f32` whose GEMM obeys the K-sum bound and
/// whose activations are within 4 ulps lies within `B` of `truth`:
/// - Dense: `|ẑ − z| ≤ Σ_p |w_pj|·e_p + γ(K+2)·(Σ_p |x_p·w_pj| + |b_j|)`, with `e_p` the
///   input's bound and `x` taken at its worst (`|x| + e`);
/// - sigmoid (slope ≤ 1/4): `e_y ≤ e_z/4 + 4ε·|y|`;
/// - softmax: `e_y ≤ y·(exp(2·max e_z) − 1) + (N+3)·ε·y` (shifting all inputs by at most
///   `δ` scales each output by at most `e^{±2δ}`), ε = 2u.
fn truth_and_bound(steps: &[Step<'_>], x: &[f32], m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v: Vec<f64> = x.iter().map(|&a| f64::from(a)).collect();
    let mut e = vec![0.0f64; v.len()];
    let mut width = x.len() / m;
    for s in steps {
        match s {
            Step::Dense {
                kernel,
                bias,
                units,
            } => {
                let k = width;
                let (mut nv, mut ne) = (vec![0.0; m * units], vec![0.0; m * units]);
                for i in 0..m {
                    for j in 0..*units {
                        let b = bias.get(j).map_or(0.0, |&b| f64::from(b));
                        let (mut z, mut prop, mut mag) = (b, 0.0, b.abs());
                        for p in 0..k {
                            let w = f64::from(kernel[p * units + j]);
                            z += v[i * k + p] * w;
                            prop += w.abs() * e[i * k + p];
                            mag += (v[i * k + p].abs() + e[i * k + p]) * w.abs();
                        }
                        nv[i * units + j] = z;
                        ne[i * units + j] = prop + gamma(k + 2) * mag + 1e-12 * mag;
                    }
                }
                v = nv;
                e = ne;
                width = *units;
            }
            Step::Act(Activation::Sigmoid) => {
                for (z, ez) in v.iter_mut().zip(e.iter_mut()) {
                    let y = 1.0 / (1.0 + (-*z).exp());
                    *ez = *ez / 4.0 + 8.0 * U * y;
                    *z = y;
                }
            }
            Step::Act(Activation::Softmax) => {
                for (row, er) in v.chunks_exact_mut(width).zip(e.chunks_exact_mut(width)) {
                    let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = row.iter().map(|z| (z - mx).exp()).sum();
                    let emax = er.iter().copied().fold(0.0, f64::max);
                    for (z, ez) in row.iter_mut().zip(er.iter_mut()) {
                        let y = (*z - mx).exp() / s;
                        *ez = y * ((2.0 * emax).exp_m1() + (width as f64 + 3.0) * 2.0 * U);
                        *z = y;
                    }
                }
            }
            Step::Act(a) => panic!("the bound does not cover {a}"),
        }
    }
    (v, e)
}

fn assert_within(what: &str, got: &[f32], truth: &[f64], bound: &[f64]) {
    assert_eq!(got.len(), truth.len(), "{what}: length");
    for (i, ((&g, &t), &b)) in got.iter().zip(truth).zip(bound).enumerate() {
        let d = (f64::from(g) - t).abs();
        assert!(
            d <= b,
            "{what}[{i}]: {g:e} vs f64 truth {t:e}: |diff| {d:e} > derived bound {b:e}"
        );
    }
}

fn summary_of(fx: &Value) -> String {
    fx["summary"].as_str().unwrap().trim_end().to_owned()
}

#[test]
fn seed_sequential_model() {
    let all = fixtures();
    let fx = &all["seed_sequential"];
    use Activation::{Sigmoid, Softmax};
    // The tutorial's first model, written as in Keras.
    let mut model = Sequential::<f32>::new()
        .add(Dense::new(7).input_dim(4))
        .unwrap()
        .add(ActivationLayer::new(Sigmoid))
        .unwrap()
        .add(Dense::new(13))
        .unwrap()
        .add(ActivationLayer::new(Sigmoid))
        .unwrap()
        .add(Dense::new(5))
        .unwrap()
        .add(ActivationLayer::new(Softmax))
        .unwrap();
    let names: Vec<&str> = model.layers().map(|(n, _)| n).collect();
    let keras_names: Vec<&str> = fx["layer_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, keras_names);
    assert_eq!(
        model.count_params().unwrap() as u64,
        fx["count_params"].as_u64().unwrap()
    );
    assert_eq!(model.count_params().unwrap(), 35 + 104 + 70);
    assert_eq!(model.summary().trim_end(), summary_of(fx));

    load_weights(&mut model, fx);
    let x = f32s(&fx["input"]);
    let shape = usizes(&fx["input_shape"]);
    let keras_y = floats(&fx["output"]);
    let (y, out_shape) = model.forward(&x, &shape).unwrap();
    assert_eq!(out_shape, &usizes(&fx["output_shape"])[..]);
    let y = y.to_vec();

    let w: Vec<Vec<f32>> = fx["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| f32s(&w["values"]))
        .collect();
    let steps = [
        Step::Dense {
            kernel: &w[0],
            bias: &w[1],
            units: 7,
        },
        Step::Act(Sigmoid),
        Step::Dense {
            kernel: &w[2],
            bias: &w[3],
            units: 13,
        },
        Step::Act(Sigmoid),
        Step::Dense {
            kernel: &w[4],
            bias: &w[5],
            units: 5,
        },
        Step::Act(Softmax),
    ];
    let (truth, bound) = truth_and_bound(&steps, &x, shape[0]);
    assert_within("crate", &y, &truth, &bound);
    let keras_f32: Vec<f32> = keras_y.iter().map(|&v| v as f32).collect();
    assert_within("keras", &keras_f32, &truth, &bound);

    // The buffers are reused: a second call gives the same bits.
    let again = model.forward(&x, &shape).unwrap().0.to_vec();
    assert_eq!(again, y);
}

#[test]
fn seed_functional_model() {
    let all = fixtures();
    let fx = &all["seed_functional"];
    let mut model = Sequential::<f32>::functional(Input::new(&[5]))
        .add(Dense::new(1).activation(Activation::Softmax))
        .unwrap();
    assert_eq!(model.count_params().unwrap(), 6);
    assert_eq!(
        model.count_params().unwrap() as u64,
        fx["count_params"].as_u64().unwrap()
    );
    assert_eq!(model.summary().trim_end(), summary_of(fx));
    load_weights(&mut model, fx);
    let x = f32s(&fx["input"]);
    let (y, shape) = model.forward(&x, &usizes(&fx["input_shape"])).unwrap();
    assert_eq!(shape, &[4, 1]);
    // Softmax over a single unit is exactly 1, in Keras and here.
    assert!(y.iter().all(|&v| v == 1.0), "{y:?}");
    assert!(floats(&fx["output"]).iter().all(|&v| v == 1.0));
}

#[test]
fn rank3_input_without_bias() {
    let all = fixtures();
    let fx = &all["rank3"];
    let mut model = Sequential::<f32>::new()
        .add(
            Dense::new(7)
                .input_shape(&[3, 4])
                .use_bias(false)
                .name("proj"),
        )
        .unwrap();
    assert_eq!(model.summary().trim_end(), summary_of(fx));
    assert_eq!(model.count_params().unwrap(), 28);
    load_weights(&mut model, fx);
    let x = f32s(&fx["input"]);
    let (y, shape) = model.forward(&x, &[2, 3, 4]).unwrap();
    assert_eq!(shape, &[2, 3, 7]);
    let w = f32s(&fx["weights"][0]["values"]);
    let steps = [Step::Dense {
        kernel: &w,
        bias: &[],
        units: 7,
    }];
    let (truth, bound) = truth_and_bound(&steps, &x, 6);
    assert_within("crate", y, &truth, &bound);
    let keras: Vec<f32> = floats(&fx["output"]).iter().map(|&v| v as f32).collect();
    assert_within("keras", &keras, &truth, &bound);
}

#[test]
fn regularizer_penalties_match_keras() {
    let all = fixtures();
    let fx = &all["penalties"];
    let mut d = Dense::<f32>::new(3)
        .kernel_regularizer(Regularizer::l1_l2(0.01, 0.02))
        .bias_regularizer(Regularizer::l2(0.05))
        .activity_regularizer(Regularizer::l1(0.1));
    let (kernel, bias) = (f32s(&fx["kernel"]), f32s(&fx["bias"]));
    d.set_weights(&[
        Tensor {
            shape: vec![4, 3],
            data: kernel.clone(),
        },
        Tensor {
            shape: vec![3],
            data: bias.clone(),
        },
    ])
    .unwrap();
    let x = f32s(&fx["input"]);
    let shape = usizes(&fx["input_shape"]);
    let y = d.call(&x, &shape).unwrap();
    let ours = d.losses();
    let keras = floats(&fx["losses"]);
    assert_eq!(ours.len(), 3);
    // Keras sums in f32: each penalty within γ(n+2) of the exact one (n terms, the
    // factor's own f32 rounding, the product); ours is summed in f64.
    let tol = |n: usize, p: f64| 2.0 * gamma(n + 2) * p.abs();
    // Keras's order: activity, kernel, bias.
    assert!(
        (ours[1] - keras[1]).abs() <= tol(2 * kernel.len(), keras[1]),
        "kernel {ours:?} {keras:?}"
    );
    assert!(
        (ours[2] - keras[2]).abs() <= tol(bias.len(), keras[2]),
        "bias {ours:?} {keras:?}"
    );
    // The activity penalty depends on the outputs, which differ between the two within
    // the derived bound: 0.1·Σ|Δy|/batch on top.
    let steps = [Step::Dense {
        kernel: &kernel,
        bias: &bias,
        units: 3,
    }];
    let (_, bound) = truth_and_bound(&steps, &x, shape[0] * shape[1]);
    let dy: f64 = bound.iter().sum::<f64>() * 2.0 * 0.1 / shape[0] as f64;
    assert!(
        (ours[0] - keras[0]).abs() <= tol(y.data.len(), keras[0]) + dy,
        "activity {ours:?} {keras:?}"
    );
    // Hand-computed: the activity penalty is 0.1·Σ|y| divided by the batch (first axis).
    let hand: f64 = 0.1 * y.data.iter().map(|v| f64::from(v.abs())).sum::<f64>() / 2.0;
    assert!((ours[0] - hand).abs() <= 1e-12 * hand);
    // Keras's names: l1 and l2 default to 0.01; "l1l2" has zero factors.
    let named = &fx["named"];
    assert!(
        (named["l1"]["l1"].as_f64().unwrap() - Regularizer::from_name("l1").unwrap().l1).abs()
            < 1e-8
    );
    assert_eq!(
        named["l2"]["l2"].as_f64().unwrap(),
        Regularizer::from_name("l2").unwrap().l2
    );
    let l1l2 = Regularizer::from_name("l1l2").unwrap();
    assert_eq!(
        (l1l2.l1, l1l2.l2),
        (
            named["l1l2"]["l1"].as_f64().unwrap(),
            named["l1l2"]["l2"].as_f64().unwrap()
        )
    );
    assert!(Regularizer::from_name("l1_l2").is_err());
}

#[test]
fn constraints_match_keras() {
    let all = fixtures();
    let fx = &all["constraints"];
    let kernel = f32s(&fx["kernel"]);
    let bias = f32s(&fx["bias"]);
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = &case["config"];
        let axis = cfg["axis"].as_u64().map(|a| a as usize);
        let c = match name {
            n if n.starts_with("max_norm") => Constraint::MaxNorm {
                max_value: cfg["max_value"].as_f64().unwrap(),
                axis: axis.unwrap(),
            },
            n if n.starts_with("min_max_norm") => Constraint::MinMaxNorm {
                min_value: cfg["min_value"].as_f64().unwrap(),
                max_value: cfg["max_value"].as_f64().unwrap(),
                rate: cfg["rate"].as_f64().unwrap(),
                axis: axis.unwrap(),
            },
            "non_neg" => Constraint::NonNeg,
            n if n.starts_with("unit_norm") => Constraint::UnitNorm {
                axis: axis.unwrap(),
            },
            n => panic!("unknown case {n}"),
        };
        // Keras works in f32: a norm over ≤ 4 squares, a sqrt, a quotient and a product:
        // within γ(8) of each weight's magnitude; ours rounds once from f64.
        let check = |ours: &[f32], keras: &[f64], orig: &[f32], what: &str| {
            for (i, ((&o, &k), &w)) in ours.iter().zip(keras).zip(orig).enumerate() {
                let tol = 2.0 * gamma(8) * f64::from(w.abs()).max(k.abs()) + 1e-30;
                assert!(
                    (f64::from(o) - k).abs() <= tol,
                    "{name} {what}[{i}]: ours {o:e}, keras {k:e}"
                );
                if k == 0.0 {
                    assert_eq!(
                        o.to_bits() >> 31,
                        (k as f32).to_bits() >> 31,
                        "{name}: sign of zero"
                    );
                }
            }
        };
        let mut w = kernel.clone();
        c.apply(&mut w, &[4, 3]).unwrap();
        check(&w, &floats(&case["kernel"]), &kernel, "kernel");
        if !case["bias"].is_null() {
            let mut b = bias.clone();
            c.apply(&mut b, &[3]).unwrap();
            check(&b, &floats(&case["bias"]), &bias, "bias");
        }
    }
}
