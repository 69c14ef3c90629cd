//! Training through the layer API: gradients against finite differences of the loss,
//! `fit` against `train_on_batch`, thread-count invariance, training state in clones,
//! Dropout, and the errors.

mod common;

use common::Rng;
use dense_kernel::layer::{
    ActivationLayer, CompileOptions, Dense, Dropout, FitOptions, Loss, Metric, Optimizer,
    Regularizer, Sequential, Tensor,
};
use dense_kernel::{Activation, DenseError, Element};

fn sgd(lr: f64) -> Optimizer {
    Optimizer::Sgd {
        learning_rate: lr,
        momentum: 0.0,
        nesterov: false,
    }
}

/// Targets for `loss` over a `(rows, cols)` output.
fn targets(loss: Loss, rows: usize, cols: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    match loss {
        Loss::SparseCategoricalCrossentropy { .. } => (
            (0..rows)
                .map(|_| (rng.next_u64() % cols as u64) as f64)
                .collect(),
            vec![rows],
        ),
        Loss::CategoricalCrossentropy { .. } => {
            let mut y = vec![0.0; rows * cols];
            for r in 0..rows {
                y[r * cols + (rng.next_u64() % cols as u64) as usize] = 1.0;
            }
            (y, vec![rows, cols])
        }
        Loss::BinaryCrossentropy { .. } => (
            (0..rows * cols)
                .map(|_| 0.5 + 0.5 * rng.uniform())
                .collect(),
            vec![rows, cols],
        ),
        _ => (rng.vec(rows * cols, 1.5), vec![rows, cols]),
    }
}

/// A 5 → 4 → (activation layer) → 3 model with every kind of regularizer, the hidden
/// activation `hidden` and the output activation `out`.
fn model(hidden: Activation, out: Activation) -> Sequential<f64> {
    Sequential::<f64>::new()
        .seed(3)
        .add(
            Dense::new(4)
                .activation(hidden)
                .input_dim(5)
                .kernel_regularizer(Regularizer::l1_l2(0.01, 0.02))
                .bias_regularizer(Regularizer::l2(0.03))
                .activity_regularizer(Regularizer::l1_l2(0.01, 0.01)),
        )
        .unwrap()
        .add(ActivationLayer::new(Activation::Tanh))
        .unwrap()
        .add(Dense::new(3).activation(out))
        .unwrap()
}

fn flat(ws: &[Tensor<f64>]) -> Vec<f64> {
    ws.iter().flat_map(|t| t.data.iter().copied()).collect()
}

/// Every weight's gradient, read from one SGD step with learning rate 1 (`w − g`), equals
/// the central difference of the loss `evaluate` reports (penalties included).
///
/// Tolerance: a central difference with step `h = 1e-6·max(1, |w|)` errs by at most
/// `h²·|f'''|/6` (≈ 1e-12 for these smooth, O(1) losses) plus `ε·|f|/h` (≈ 2e-10), and
/// reading `g` back as `w − fl(w − g)` by half an ulp of `w` (≈ 1e-16); a wrong
/// derivative errs by a sizeable fraction of `|g|`. Allowed: `1e-7 + 1e-6·|g|`.
#[test]
fn gradients_match_finite_differences_for_every_loss() {
    use Activation::*;
    let losses: Vec<(Loss, Activation)> = vec![
        (
            Loss::CategoricalCrossentropy {
                from_logits: false,
                label_smoothing: 0.0,
            },
            Softmax,
        ),
        (
            Loss::CategoricalCrossentropy {
                from_logits: false,
                label_smoothing: 0.2,
            },
            Sigmoid,
        ),
        (
            Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing: 0.1,
            },
            Linear,
        ),
        (
            Loss::SparseCategoricalCrossentropy { from_logits: false },
            Softmax,
        ),
        (
            Loss::SparseCategoricalCrossentropy { from_logits: true },
            LogSoftmax,
        ),
        (
            Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.1,
            },
            Sigmoid,
        ),
        (
            Loss::BinaryCrossentropy {
                from_logits: true,
                label_smoothing: 0.0,
            },
            Linear,
        ),
        (Loss::MeanSquaredError, Tanh),
        (Loss::MeanAbsoluteError, Linear),
        (Loss::Huber { delta: 0.3 }, Linear),
    ];
    let hidden = [
        Relu,
        Gelu,
        Elu { alpha: 1.0 },
        Softplus,
        Silu,
        Selu,
        Mish,
        Sigmoid,
        Tanh,
        Softmax,
    ];
    let mut rng = Rng(11);
    for (i, (loss, out)) in losses.into_iter().enumerate() {
        let act = hidden[i % hidden.len()];
        let mut m = model(act, out);
        let (rows, k) = (6, 5);
        let x: Vec<f64> = rng.vec(rows * k, 1.0);
        let (y, ys) = targets(loss, rows, 3, &mut rng);
        let mut w0 = m.get_weights().unwrap();
        for t in &mut w0 {
            t.data = rng.vec(t.data.len(), 0.8);
        }
        m.set_weights(&w0).unwrap();
        m.compile(sgd(1.0), loss).unwrap();
        let mut probe = m.clone();
        let before = probe.evaluate_with(&x, &[rows, k], &y, &ys, rows).unwrap()[0].1;
        let reported = m.train_on_batch(&x, &[rows, k], &y, &ys).unwrap();
        assert!(
            (reported - before).abs() <= 1e-12 * before.abs().max(1.0),
            "{loss:?}: train_on_batch returned {reported}, evaluate gives {before}"
        );
        let w1 = flat(&m.get_weights().unwrap());
        let base = flat(&w0);
        let mut idx = 0;
        for ti in 0..w0.len() {
            for j in 0..w0[ti].data.len() {
                let g = base[idx] - w1[idx];
                let h = 1e-6 * base[idx].abs().max(1.0);
                let mut f = |d: f64| {
                    let mut w = w0.clone();
                    w[ti].data[j] += d;
                    probe.set_weights(&w).unwrap();
                    probe.evaluate_with(&x, &[rows, k], &y, &ys, rows).unwrap()[0].1
                };
                let fd = (f(h) - f(-h)) / (2.0 * h);
                assert!(
                    (g - fd).abs() <= 1e-7 + 1e-6 * g.abs(),
                    "{loss:?} (hidden {act}): weight {ti}[{j}]: gradient {g}, finite difference {fd}"
                );
                idx += 1;
            }
        }
    }
}

fn mlp<T: Element>(dropout: f64) -> Sequential<T> {
    Sequential::<T>::new()
        .seed(5)
        .add(Dense::new(24).activation(Activation::Relu).input_dim(12))
        .unwrap()
        .add(Dropout::new(dropout))
        .unwrap()
        .add(Dense::new(16).activation(Activation::Gelu))
        .unwrap()
        .add(Dense::new(5).activation(Activation::Softmax))
        .unwrap()
}

fn data<T: Element>(n: usize, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut rng = Rng(seed);
    let x = rng.vec(n * 12, 1.0);
    let mut y = vec![T::zero(); n * 5];
    for r in 0..n {
        y[r * 5 + (rng.next_u64() % 5) as usize] = T::narrow(1.0);
    }
    (x, y)
}

fn weights_bits<T: Element>(m: &mut Sequential<T>) -> Vec<u64> {
    m.get_weights()
        .unwrap()
        .iter()
        .flat_map(|t| t.data.iter().map(|v| v.widen().to_bits()))
        .collect()
}

fn fit_in_pool<T: Element>(threads: usize) -> (Vec<u64>, Vec<f64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut m = mlp::<T>(0.25);
        m.compile_with(
            "adam".parse().unwrap(),
            "categorical_crossentropy".parse().unwrap(),
            &CompileOptions::new().metrics(&[Metric::Accuracy]),
        )
        .unwrap();
        let (x, y) = data::<T>(150, 1);
        let h = m
            .fit(
                &x,
                &[150, 12],
                &y,
                &[150, 5],
                &FitOptions::new()
                    .batch_size(64)
                    .epochs(3)
                    .verbose(0)
                    .validation_split(0.2),
            )
            .unwrap();
        (weights_bits(&mut m), h.get("val_loss").unwrap().to_vec())
    })
}

#[test]
fn training_is_bitwise_the_same_for_any_thread_count() {
    let one = fit_in_pool::<f32>(1);
    for t in [2, 3, 7] {
        assert_eq!(fit_in_pool::<f32>(t), one, "f32, {t} threads");
    }
    let one = fit_in_pool::<f64>(1);
    for t in [2, 3, 7] {
        assert_eq!(fit_in_pool::<f64>(t), one, "f64, {t} threads");
    }
}

/// `fit` without shuffling is `train_on_batch` over consecutive batches (the last one
/// partial), and its epoch loss is the batch losses' mean weighted by batch size.
#[test]
fn fit_is_train_on_batch_over_the_batches_in_order() {
    let (x, y) = data::<f32>(22, 2);
    let mut a = mlp::<f32>(0.0);
    a.compile(
        "rmsprop".parse().unwrap(),
        "categorical_crossentropy".parse().unwrap(),
    )
    .unwrap();
    let mut b = a.clone();
    let h = a
        .fit(
            &x,
            &[22, 12],
            &y,
            &[22, 5],
            &FitOptions::new()
                .batch_size(8)
                .epochs(2)
                .shuffle(false)
                .verbose(0),
        )
        .unwrap();
    for epoch in 0..2 {
        let mut sum = 0.0;
        for (lo, n) in [(0, 8), (8, 8), (16, 6)] {
            let l = b
                .train_on_batch(
                    &x[lo * 12..(lo + n) * 12],
                    &[n, 12],
                    &y[lo * 5..(lo + n) * 5],
                    &[n, 5],
                )
                .unwrap();
            sum += l * n as f64;
        }
        assert_eq!(h.get("loss").unwrap()[epoch], sum / 22.0);
    }
    assert_eq!(a.iterations(), 6);
    assert_eq!(weights_bits(&mut a), weights_bits(&mut b));
}

/// The optimizer's slots and step count are part of the model: a clone continues the
/// same run; a recompiled copy starts Adam afresh and takes a different step.
#[test]
fn training_state_survives_clone() {
    let (x, y) = data::<f32>(16, 3);
    let mut m = mlp::<f32>(0.5);
    m.compile(
        "adam".parse().unwrap(),
        "categorical_crossentropy".parse().unwrap(),
    )
    .unwrap();
    for _ in 0..3 {
        m.train_on_batch(&x, &[16, 12], &y, &[16, 5]).unwrap();
    }
    let mut c = m.clone();
    let mut fresh = m.clone();
    fresh
        .compile(
            "adam".parse().unwrap(),
            "categorical_crossentropy".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(c.iterations(), 3);
    assert_eq!(fresh.iterations(), 0);
    let lm = m.train_on_batch(&x, &[16, 12], &y, &[16, 5]).unwrap();
    let lc = c.train_on_batch(&x, &[16, 12], &y, &[16, 5]).unwrap();
    fresh.train_on_batch(&x, &[16, 12], &y, &[16, 5]).unwrap();
    assert_eq!(lm, lc);
    assert_eq!(weights_bits(&mut m), weights_bits(&mut c));
    assert_ne!(weights_bits(&mut m), weights_bits(&mut fresh));
}

#[test]
fn dropout_is_identity_at_inference_and_inverted_in_training() {
    // Dense(1, no bias, kernel 1) → Dropout(rate): training outputs are 0 or x/keep.
    let n = 20_000;
    for rate in [0.0, 0.3, 0.5, 1.0] {
        let mut m = Sequential::<f64>::new()
            .add(Dense::new(1).use_bias(false).input_dim(1))
            .unwrap()
            .add(Dropout::new(rate).seed(9))
            .unwrap();
        m.set_weights(&[Tensor {
            shape: vec![1, 1],
            data: vec![1.0],
        }])
        .unwrap();
        let x = vec![1.0; n];
        let (out, _) = m.forward(&x, &[n, 1]).unwrap();
        assert!(out.iter().all(|v| *v == 1.0), "inference is the identity");
        // MSE against 0: L = mean(out²); one SGD step (lr 1) moves w by
        // dL/dw = mean(2·out·out/w) = 2·kept/(n·keep²) with w = 1: the kept fraction.
        m.compile(sgd(1.0), Loss::MeanSquaredError).unwrap();
        let loss = m
            .train_on_batch(&x, &[n, 1], &vec![0.0; n], &[n, 1])
            .unwrap();
        let w = m.get_weights().unwrap()[0].data[0];
        let keep = 1.0 - rate;
        if rate == 1.0 {
            assert_eq!((loss, w), (0.0, 1.0), "everything dropped");
            continue;
        }
        let kept = (1.0 - w) * keep * keep / 2.0;
        // The loss is kept/keep² too: both read the same mask.
        assert!((loss * keep * keep - kept).abs() < 1e-12, "rate {rate}");
        // Kept fraction: binomial, 5 standard deviations.
        let sd = (keep * rate / n as f64).sqrt();
        assert!(
            (kept - keep).abs() <= 5.0 * sd + 1e-12,
            "rate {rate}: kept {kept}"
        );
    }
}

#[test]
fn training_errors_name_the_problem() {
    let (x, y) = data::<f32>(4, 4);
    let mut m = mlp::<f32>(0.0);
    assert_eq!(
        m.train_on_batch(&x, &[4, 12], &y, &[4, 5]),
        Err(DenseError::NotCompiled)
    );
    assert!(m
        .compile_with(
            "sgd".parse().unwrap(),
            "mse".parse().unwrap(),
            &CompileOptions::new().clipnorm(1.0).clipvalue(1.0)
        )
        .is_err());
    assert!("nadam?".parse::<Optimizer>().is_err());
    assert!("hinge?".parse::<Loss>().is_err());
    m.compile(
        "sgd".parse().unwrap(),
        "sparse_categorical_crossentropy".parse().unwrap(),
    )
    .unwrap();
    let e = m.train_on_batch(&x, &[4, 12], &y, &[4, 5]).unwrap_err();
    assert!(matches!(e, DenseError::TargetShape { .. }), "{e}");
    let e = m
        .train_on_batch(&x, &[4, 12], &[0.0, 1.0, 5.0, 2.0], &[4])
        .unwrap_err();
    assert!(
        matches!(
            e,
            DenseError::InvalidLabel {
                index: 2,
                classes: 5,
                ..
            }
        ),
        "{e}"
    );
    assert!(m
        .train_on_batch(&x, &[4, 12], &[0.0, 1.0, 2.5, 2.0], &[4, 1])
        .is_err());
    assert!(m
        .train_on_batch(&x, &[4, 12], &[0.0, 1.0, 4.0, 2.0], &[4, 1])
        .is_ok());
    let e = m.train_on_batch(&x, &[4, 11], &y, &[4, 5]).unwrap_err();
    assert!(matches!(e, DenseError::InputShape { .. }), "{e}");
    let e = m
        .fit(
            &x,
            &[4, 12],
            &y[..4],
            &[4],
            &FitOptions::new().batch_size(0),
        )
        .unwrap_err();
    assert!(matches!(e, DenseError::InvalidConfig { .. }), "{e}");
    assert!(Sequential::<f32>::new().add(Dropout::new(1.5)).is_err());
    // A categorical metric with class-index targets: an error, not a panic.
    m.compile_with(
        "sgd".parse().unwrap(),
        "sparse_categorical_crossentropy".parse().unwrap(),
        &CompileOptions::new().metrics(&[Metric::CategoricalAccuracy, Metric::BinaryAccuracy]),
    )
    .unwrap();
    let e = m
        .fit(
            &x,
            &[4, 12],
            &[0.0, 1.0, 4.0, 2.0],
            &[4],
            &FitOptions::new().verbose(0),
        )
        .unwrap_err();
    assert!(matches!(e, DenseError::TargetShape { .. }), "{e}");
    // Layers added and rebuilt after compile: the state follows.
    let mut m = m.add(Dropout::new(0.5)).unwrap();
    m.train_on_batch(&x, &[4, 12], &[0.0, 1.0, 4.0, 2.0], &[4])
        .unwrap();
    m.dense_mut("dense").unwrap().build(12).unwrap();
    m.train_on_batch(&x, &[4, 12], &[0.0, 1.0, 4.0, 2.0], &[4])
        .unwrap();
}

/// The tutorial's second model in its functional form (`Input((5,))` then
/// `Dense(1, softmax)`): softmax over one unit is always 1, so categorical crossentropy
/// is constant and no weight moves, as in Keras; `accuracy` resolves to binary
/// accuracy (one output unit).
#[test]
fn functional_single_unit_softmax_model_trains_to_nothing() {
    use dense_kernel::layer::Input;
    let mut m = Sequential::<f32>::functional(Input::new(&[5]))
        .add(Dense::new(1).activation(Activation::Softmax))
        .unwrap();
    m.compile_with(
        "adam".parse().unwrap(),
        "categorical_crossentropy".parse().unwrap(),
        &CompileOptions::new().metrics(&[Metric::Accuracy]),
    )
    .unwrap();
    let before = weights_bits(&mut m);
    let x: Vec<f32> = (0..40).map(|i| (i % 7) as f32 / 7.0 - 0.5).collect();
    let y = vec![1.0f32; 8];
    let h = m
        .fit(
            &x,
            &[8, 5],
            &y,
            &[8, 1],
            &FitOptions::new().batch_size(3).epochs(2).verbose(0),
        )
        .unwrap();
    assert_eq!(weights_bits(&mut m), before);
    // −log(1 − ε) with Keras's f32 clip bound 1 − 2⁻²³.
    let expected = -(1.0 - 2f64.powi(-23)).ln();
    for l in h.get("loss").unwrap() {
        assert!((l - expected).abs() < 1e-15, "{l}");
    }
    assert_eq!(h.get("accuracy").unwrap(), &[1.0, 1.0]);
    assert!(
        m.train_on_batch(&x, &[8, 4], &y, &[8, 1]).is_err(),
        "input shape checked"
    );
}

/// `validation_data` is evaluated after every epoch with the fit's batch size: the last
/// epoch's `val_loss` and `val_accuracy` are `evaluate_with` on the same data after
/// `fit`, bit for bit; a split takes the last samples, before shuffling.
#[test]
fn validation_data_and_split_are_evaluated_as_keras_does() {
    let (x, y) = data::<f32>(40, 6);
    let (vx, vy) = data::<f32>(10, 7);
    let mut m = mlp::<f32>(0.3);
    m.compile_with(
        "adam".parse().unwrap(),
        "categorical_crossentropy".parse().unwrap(),
        &CompileOptions::new().metrics(&[Metric::Accuracy]),
    )
    .unwrap();
    let mut split = m.clone();
    let opts = FitOptions::new()
        .batch_size(8)
        .epochs(3)
        .verbose(0)
        .validation_data(&vx, &[10, 12], &vy, &[10, 5]);
    let h = m.fit(&x, &[40, 12], &y, &[40, 5], &opts).unwrap();
    let e = m.evaluate_with(&vx, &[10, 12], &vy, &[10, 5], 8).unwrap();
    assert_eq!(h.get("val_loss").unwrap()[2], e[0].1);
    assert_eq!(h.get("val_accuracy").unwrap()[2], e[1].1);
    assert_eq!(
        h.keys().collect::<Vec<_>>(),
        ["loss", "accuracy", "val_loss", "val_accuracy"]
    );
    // validation_split = 0.2 of 50 samples: the last 10 (floor(50·0.8) = 40 train).
    let (xa, ya) = ([&x[..], &vx[..]].concat(), [&y[..], &vy[..]].concat());
    let h2 = split
        .fit(
            &xa,
            &[50, 12],
            &ya,
            &[50, 5],
            &FitOptions::new()
                .batch_size(8)
                .epochs(3)
                .verbose(0)
                .validation_split(0.2),
        )
        .unwrap();
    assert_eq!(split.iterations(), 15, "5 steps of 8 per epoch");
    assert_eq!(
        h2, h,
        "the same training and validation samples, the same run"
    );
}
