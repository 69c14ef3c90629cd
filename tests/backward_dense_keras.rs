//! A whole Dense layer's gradients against real Keras 3.15 (tests/keras/
//! backward_dense.txt: `jax.vjp` of `keras.layers.Dense`, float32 and float64, for
//! (M, K, N) = (1, 7, 5), (3, 260, 5), (100, 8, 6), (17, 33, 10) and linear, relu,
//! sigmoid, gelu, softmax).
//!
//! The rule (issue 29): the crate's `f32` gradients must be as close to Keras's
//! `float64` run as Keras's own `float32` run is. Per array, the crate's largest error
//! against the `float64` run may be at most twice Keras's `float32` largest error, plus
//! the rounding of the result itself (`u·max|g|`): both sum the same terms in `f32`,
//! in different orders, so their errors are of the same size, not the same bits. On
//! the portable path, which does not fuse its multiply-adds (two roundings per term
//! where XLA has one), twice that.

use dense_kernel::{dense_backward, dense_forward_train, Activation, Gradients, MatMut, MatRef};

struct Case {
    id: String,
    m: usize,
    k: usize,
    n: usize,
    inputs: Vec<Vec<u64>>,                       // x, W, b, dy
    grads: Vec<(String, String, Vec<Vec<u64>>)>, // (act, dtype, [dx, dW, db])
}

fn parse() -> Vec<Case> {
    let text = include_str!("keras/backward_dense.txt");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mut cases: Vec<Case> = Vec::new();
    let mut i = 0;
    let mut target: Option<usize> = None; // None: inputs; Some(g): grads[g]
    while i < lines.len() {
        let w: Vec<&str> = lines[i].split_whitespace().collect();
        i += 1;
        match w.as_slice() {
            ["case", id, "M", m, "K", k, "N", n] => {
                cases.push(Case {
                    id: id.to_string(),
                    m: m.parse().unwrap(),
                    k: k.parse().unwrap(),
                    n: n.parse().unwrap(),
                    inputs: Vec::new(),
                    grads: Vec::new(),
                });
                target = None;
            }
            ["grad", act, dtype] => {
                let c = cases.last_mut().unwrap();
                c.grads
                    .push((act.to_string(), dtype.to_string(), Vec::new()));
                target = Some(c.grads.len() - 1);
            }
            [_key, count] if count.parse::<usize>().is_ok() => {
                let count: usize = count.parse().unwrap();
                let mut vals = Vec::with_capacity(count);
                while vals.len() < count {
                    vals.extend(
                        lines[i]
                            .split_whitespace()
                            .map(|h| u64::from_str_radix(h, 16).unwrap()),
                    );
                    i += 1;
                }
                let c = cases.last_mut().unwrap();
                match target {
                    None => c.inputs.push(vals),
                    Some(g) => c.grads[g].2.push(vals),
                }
            }
            _ => {}
        }
    }
    cases
}

fn f32s(v: &[u64]) -> Vec<f32> {
    v.iter().map(|&b| f32::from_bits(b as u32)).collect()
}

fn f64s(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&b| f64::from_bits(b)).collect()
}

fn max_err(got: &[f64], truth: &[f64]) -> f64 {
    got.iter()
        .zip(truth)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn dense_gradients_are_as_close_to_keras_f64_as_keras_f32_is() {
    let cases = parse();
    assert_eq!(cases.len(), 4, "cases in the fixture");
    // Keras (XLA) sums with fused multiply-adds, one rounding per term; so do the
    // crate's AVX2+FMA and AVX-512 paths. The portable path multiplies and adds
    // separately: two roundings per term, twice the bound.
    let factor = if dense_kernel::simd_path() == dense_kernel::SimdPath::Portable {
        4.0
    } else {
        2.0
    };
    let mut compared = 0;
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    for c in &cases {
        let (m, k, n) = (c.m, c.k, c.n);
        let [x, w, b, dy] = [0, 1, 2, 3].map(|i| f32s(&c.inputs[i]));
        for (act_name, dtype, _) in c.grads.iter().filter(|g| g.1 == "f32") {
            let act: Activation = act_name.parse().unwrap();
            let k32 = &c
                .grads
                .iter()
                .find(|g| &g.0 == act_name && g.1 == *dtype)
                .unwrap()
                .2;
            let k64 = &c
                .grads
                .iter()
                .find(|g| &g.0 == act_name && g.1 == "f64")
                .unwrap()
                .2;
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let wv = MatRef::from_slice(&w, k, n).unwrap();
            let (mut z, mut y) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            dense_forward_train(
                xv,
                wv,
                Some(&b),
                act,
                MatMut::from_slice(&mut z, m, n).unwrap(),
                MatMut::from_slice(&mut y, m, n).unwrap(),
            )
            .unwrap();
            let (mut dz, mut dx, mut dw, mut db) = (
                vec![0.0f32; m * n],
                vec![0.0f32; m * k],
                vec![0.0f32; k * n],
                vec![0.0f32; n],
            );
            dense_backward(
                xv,
                wv,
                act,
                MatRef::from_slice(&z, m, n).unwrap(),
                MatRef::from_slice(&dy, m, n).unwrap(),
                Gradients {
                    pre_activation: MatMut::from_slice(&mut dz, m, n).unwrap(),
                    input: Some(MatMut::from_slice(&mut dx, m, k).unwrap()),
                    kernel: MatMut::from_slice(&mut dw, k, n).unwrap(),
                    bias: Some(&mut db),
                },
            )
            .unwrap();
            for (name, ours, i) in [("dx", &dx, 0), ("dW", &dw, 1), ("db", &db, 2)] {
                let truth = f64s(&k64[i]);
                let keras32: Vec<f64> = f32s(&k32[i]).iter().map(|&v| v as f64).collect();
                let ours: Vec<f64> = ours.iter().map(|&v| v as f64).collect();
                let scale = truth.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                let allowed =
                    factor * max_err(&keras32, &truth) + f32::EPSILON as f64 / 2.0 * scale;
                let e = max_err(&ours, &truth);
                compared += 1;
                if e / allowed > worst.0 {
                    worst = (e / allowed, format!("{} {act_name} {name}", c.id));
                }
                if e > allowed {
                    failures.push(format!(
                        "{} {act_name} {name}: crate error {e:e}, Keras f32 error {:e} (allowed {allowed:e})",
                        c.id,
                        max_err(&keras32, &truth)
                    ));
                }
            }
        }
    }
    eprintln!("largest error / allowed: {:.3} ({})", worst.0, worst.1);
    assert_eq!(compared, 4 * 5 * 3, "arrays compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
