//! The layer API on its own: initializers against their formulas (tolerances from the
//! sample size), regularizers and constraints against hand-computed values, Keras's
//! shape rules, and the errors for bad shapes.

use dense_kernel::layer::{
    ActivationLayer, Constraint, Dense, Distribution, FanMode, Initializer, Regularizer,
    Sequential, Tensor, TRUNCATION_STD,
};
use dense_kernel::{reference, Activation, DenseError, MatRef};

/// Sample mean, variance, and the standard error of the variance estimate
/// (`sqrt((m4 − s⁴)/n)`, from the sample's own fourth central moment).
fn moments(w: &[f32]) -> (f64, f64, f64) {
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = w
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let m4 = w
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(4))
        .sum::<f64>()
        / n;
    (mean, var, ((m4 - var * var) / n).sqrt())
}

/// Checks mean and variance within 5 standard errors (a false alarm has probability
/// below 1e-6 per check), and every value within `bound` of `want_mean`.
fn check_distribution(what: &str, w: &[f32], want_mean: f64, want_var: f64, bound: f64) {
    let n = w.len() as f64;
    let (mean, var, se_var) = moments(w);
    let se_mean = (want_var / n).sqrt();
    assert!(
        (mean - want_mean).abs() <= 5.0 * se_mean,
        "{what}: mean {mean} vs {want_mean} (5 SE = {})",
        5.0 * se_mean
    );
    assert!(
        (var - want_var).abs() <= 5.0 * se_var,
        "{what}: variance {var} vs {want_var} (5 SE = {})",
        5.0 * se_var
    );
    // f32 rounding can push a value one half-ulp past an f64 bound.
    let slack = bound * f64::from(f32::EPSILON);
    assert!(
        w.iter()
            .all(|&v| (f64::from(v) - want_mean).abs() <= bound + slack),
        "{what}: a value beyond {bound}"
    );
}

#[test]
fn initializers_follow_keras_formulas() {
    let (fan_in, fan_out) = (300usize, 200usize);
    let shape = [fan_in, fan_out];
    let avg = (fan_in + fan_out) as f64 / 2.0;
    let cases: Vec<(Initializer, f64, f64, f64)> = vec![
        // (initializer, mean, variance, bound on |w − mean|)
        (
            Initializer::GlorotUniform,
            0.0,
            1.0 / avg,
            (3.0 / avg).sqrt(),
        ),
        (
            Initializer::GlorotNormal,
            0.0,
            1.0 / avg,
            2.0 * (1.0 / avg).sqrt() / TRUNCATION_STD,
        ),
        (
            Initializer::HeUniform,
            0.0,
            2.0 / 300.0,
            (6.0 / 300.0f64).sqrt(),
        ),
        (
            Initializer::HeNormal,
            0.0,
            2.0 / 300.0,
            2.0 * (2.0 / 300.0f64).sqrt() / TRUNCATION_STD,
        ),
        (
            Initializer::LecunUniform,
            0.0,
            1.0 / 300.0,
            (3.0 / 300.0f64).sqrt(),
        ),
        (
            Initializer::LecunNormal,
            0.0,
            1.0 / 300.0,
            2.0 * (1.0 / 300.0f64).sqrt() / TRUNCATION_STD,
        ),
        (
            "random_uniform".parse().unwrap(),
            0.0,
            0.1f64.powi(2) / 12.0,
            0.05,
        ),
        (
            Initializer::RandomUniform {
                minval: 1.0,
                maxval: 3.0,
            },
            2.0,
            4.0 / 12.0,
            1.0,
        ),
        (
            "random_normal".parse().unwrap(),
            0.0,
            0.05f64.powi(2),
            f64::INFINITY,
        ),
        // Keras's plain truncated_normal is not corrected: its deviation is 0.88·stddev.
        (
            "truncated_normal".parse().unwrap(),
            0.0,
            (0.05 * TRUNCATION_STD).powi(2),
            0.1,
        ),
        (
            Initializer::VarianceScaling {
                scale: 3.0,
                mode: FanMode::FanOut,
                distribution: Distribution::UntruncatedNormal,
            },
            0.0,
            3.0 / 200.0,
            f64::INFINITY,
        ),
        (
            Initializer::VarianceScaling {
                scale: 0.5,
                mode: FanMode::FanAvg,
                distribution: Distribution::TruncatedNormal,
            },
            0.0,
            0.5 / avg,
            2.0 * (0.5 / avg).sqrt() / TRUNCATION_STD,
        ),
    ];
    for (init, mean, var, bound) in cases {
        let w: Vec<f32> = init.sample(&shape, 7).unwrap();
        assert_eq!(w.len(), fan_in * fan_out);
        check_distribution(&format!("{init:?}"), &w, mean, var, bound);
        // Same seed, same weights; another seed, other weights.
        assert_eq!(w, init.sample::<f32>(&shape, 7).unwrap(), "{init:?}");
        assert_ne!(w, init.sample::<f32>(&shape, 8).unwrap(), "{init:?}");
    }
    for (init, v) in [
        (Initializer::Zeros, 0.0f32),
        (Initializer::Ones, 1.0),
        (Initializer::Constant { value: -2.5 }, -2.5),
    ] {
        assert!(init
            .sample::<f32>(&[3, 4], 1)
            .unwrap()
            .iter()
            .all(|&x| x == v));
    }
}

#[test]
fn orthogonal_is_orthogonal() {
    // Entries rounded to f32 (u each): inner products of unit columns move by ≤ 2u·1.
    let tol = 4.0 * f64::from(f32::EPSILON) / 2.0 + 1e-10;
    for (rows, cols, gain) in [(50usize, 30usize, 1.0f64), (30, 50, 2.0), (16, 16, 1.0)] {
        let q: Vec<f32> = Initializer::Orthogonal { gain }
            .sample(&[rows, cols], 3)
            .unwrap();
        let dot = |a: &dyn Fn(usize) -> f32, b: &dyn Fn(usize) -> f32, n: usize| {
            (0..n)
                .map(|t| f64::from(a(t)) * f64::from(b(t)))
                .sum::<f64>()
        };
        let g2 = gain * gain;
        if rows >= cols {
            for i in 0..cols {
                for j in 0..cols {
                    let d = dot(&|t| q[t * cols + i], &|t| q[t * cols + j], rows);
                    let want = if i == j { g2 } else { 0.0 };
                    assert!((d - want).abs() <= tol * g2, "QᵀQ[{i},{j}] = {d}");
                }
            }
        } else {
            for i in 0..rows {
                for j in 0..rows {
                    let d = dot(&|t| q[i * cols + t], &|t| q[j * cols + t], cols);
                    let want = if i == j { g2 } else { 0.0 };
                    assert!((d - want).abs() <= tol * g2, "QQᵀ[{i},{j}] = {d}");
                }
            }
        }
    }
}

#[test]
fn bad_initializer_parameters_are_errors() {
    for init in [
        Initializer::RandomNormal {
            mean: 0.0,
            stddev: -1.0,
        },
        Initializer::RandomUniform {
            minval: 1.0,
            maxval: 0.0,
        },
        Initializer::VarianceScaling {
            scale: 0.0,
            mode: FanMode::FanIn,
            distribution: Distribution::Uniform,
        },
        Initializer::Constant { value: f64::NAN },
    ] {
        assert!(matches!(
            init.sample::<f32>(&[2, 2], 0),
            Err(DenseError::InvalidConfig { .. })
        ));
    }
    assert!("glorot".parse::<Initializer>().is_err());
    assert!(Initializer::Zeros
        .sample::<f32>(&[usize::MAX, 2], 0)
        .is_err());
}

#[test]
fn regularizer_penalties_by_hand() {
    let w = [0.5f32, -1.5, 2.0, 0.0];
    // Σ|w| = 4, Σw² = 0.25 + 2.25 + 4 = 6.5
    assert_eq!(Regularizer::l1(0.1).penalty(&w), 0.1 * 4.0);
    assert_eq!(Regularizer::l2(0.2).penalty(&w), 0.2 * 6.5);
    assert_eq!(
        Regularizer::l1_l2(0.1, 0.2).penalty(&w),
        0.1 * 4.0 + 0.2 * 6.5
    );
    // A zero factor adds nothing, even over infinities (Keras skips the term).
    assert_eq!(Regularizer::l2(0.0).penalty(&[f32::INFINITY]), 0.0);
    let mut d = Dense::<f32>::new(2)
        .kernel_regularizer(Regularizer::l1(1.0))
        .bias_regularizer(Regularizer::l2(1.0))
        .bias_initializer(Initializer::Ones)
        .input_dim(2);
    d.build(2).unwrap();
    let k: f64 = d.get_weights().unwrap()[0]
        .data
        .iter()
        .map(|v| f64::from(v.abs()))
        .sum();
    assert_eq!(d.losses(), vec![k, 2.0]);
    assert!(Dense::<f32>::new(2)
        .kernel_regularizer(Regularizer::l1(-1.0))
        .build(2)
        .is_err());
}

#[test]
fn constraints_by_hand() {
    // Kernel (in = 2, units = 2): unit 0 has inputs (3, 4), norm 5; unit 1 (0, −0.5).
    let w = [3.0f64, 0.0, 4.0, -0.5];
    let eps = 1e-7;
    let mut m = w;
    Constraint::MAX_NORM.apply(&mut m, &[2, 2]).unwrap();
    let f = 2.0 / (eps + 5.0);
    let g = 0.5 / (eps + 0.5);
    assert_eq!(m, [3.0 * f, 0.0 * g, 4.0 * f, -0.5 * g]);
    let mut u = w;
    Constraint::UNIT_NORM.apply(&mut u, &[2, 2]).unwrap();
    assert_eq!(
        u,
        [
            3.0 / (eps + 5.0),
            0.0,
            4.0 / (eps + 5.0),
            -0.5 / (eps + 0.5)
        ]
    );
    let mut r = w;
    Constraint::MinMaxNorm {
        min_value: 1.0,
        max_value: 2.0,
        rate: 0.5,
        axis: 0,
    }
    .apply(&mut r, &[2, 2])
    .unwrap();
    let f = (0.5 * 2.0 + 0.5 * 5.0) / (eps + 5.0);
    let g = (0.5 * 1.0 + 0.5 * 0.5) / (eps + 0.5);
    assert_eq!(r, [3.0 * f, 0.0, 4.0 * f, -0.5 * g]);
    let mut n = [1.0f32, -2.0, -0.0, f32::NAN];
    Constraint::NonNeg.apply(&mut n, &[4]).unwrap();
    assert_eq!(&n[..2], &[1.0, 0.0]);
    assert_eq!(n[2].to_bits(), 0.0f32.to_bits());
    assert!(n[3].is_nan());
    // Axis 1: per input row.
    let mut a = [3.0f64, 4.0, 0.0, 1.0];
    Constraint::UnitNorm { axis: 1 }
        .apply(&mut a, &[2, 2])
        .unwrap();
    assert_eq!(
        a,
        [3.0 / (eps + 5.0), 4.0 / (eps + 5.0), 0.0, 1.0 / (eps + 1.0)]
    );
    // An axis the weight lacks, or a shape that is not the data's, is an error.
    assert!(Constraint::UnitNorm { axis: 1 }
        .apply(&mut [1.0f32; 3], &[3])
        .is_err());
    assert!(Constraint::MAX_NORM
        .apply(&mut [1.0f32; 3], &[2, 2])
        .is_err());
    // Through the layer: applied on demand.
    let mut d = Dense::<f64>::new(2)
        .kernel_constraint(Constraint::UNIT_NORM)
        .bias_constraint(Constraint::NonNeg)
        .use_bias(true);
    d.set_weights(&[
        Tensor {
            shape: vec![2, 2],
            data: w.to_vec(),
        },
        Tensor {
            shape: vec![2],
            data: vec![-1.0, 1.0],
        },
    ])
    .unwrap();
    d.apply_constraints().unwrap();
    let ws = d.get_weights().unwrap();
    assert_eq!(ws[0].data, u.to_vec());
    assert_eq!(ws[1].data, vec![0.0, 1.0]);
}

#[test]
fn input_dim_is_the_last_axis_not_the_rank() {
    let a = Dense::<f32>::new(3).input_dim(16);
    let b = Dense::<f32>::new(3).input_shape(&[16]);
    assert_eq!(a.count_params().unwrap(), 16 * 3 + 3);
    assert_eq!(a.count_params().unwrap(), b.count_params().unwrap());
    assert_eq!(
        Dense::<f32>::new(3)
            .use_bias(false)
            .input_dim(16)
            .count_params()
            .unwrap(),
        48
    );
    // A rank-4 input whose last axis is 16.
    let mut d = Dense::<f32>::new(3).input_dim(16).seed(4);
    let x: Vec<f32> = (0..2 * 3 * 5 * 16).map(|i| (i % 7) as f32 - 3.0).collect();
    let y = d.call(&x, &[2, 3, 5, 16]).unwrap();
    assert_eq!(y.shape, vec![2, 3, 5, 3]);
    // It is the flattened (30, 16) x (16, 3) product.
    let w = d.get_weights().unwrap();
    reference::check_dense(
        MatRef::from_slice(&x, 30, 16).unwrap(),
        MatRef::from_slice(&w[0].data, 16, 3).unwrap(),
        Some(&w[1].data),
        Activation::Linear,
        &y.data,
    )
    .unwrap();
    // A model's summary shows the leading axes.
    let m = Sequential::<f32>::new()
        .add(Dense::new(3).input_shape(&[5, 16]))
        .unwrap();
    assert!(m.summary().contains("(None, 5, 3)"), "{}", m.summary());
}

#[test]
fn first_call_builds_and_weights_keep_keras_order() {
    let mut d = Dense::<f64>::new(4).activation(Activation::Tanh);
    assert!(d.count_params().is_err());
    assert!(!d.is_built());
    let y = d.call(&[0.5; 6], &[2, 3]).unwrap();
    assert!(d.is_built());
    assert_eq!(d.count_params().unwrap(), 3 * 4 + 4);
    let w = d.get_weights().unwrap();
    assert_eq!(
        (w[0].shape.clone(), w[1].shape.clone()),
        (vec![3, 4], vec![4])
    );
    assert!(
        w[1].data.iter().all(|&b| b == 0.0),
        "bias defaults to zeros"
    );
    let limit = (6.0f64 / 7.0).sqrt();
    assert!(
        w[0].data.iter().all(|v| v.abs() <= limit),
        "glorot_uniform kernel"
    );
    assert_eq!(y.shape, vec![2, 4]);
    // A second call with another last axis is refused.
    assert!(matches!(
        d.call(&[0.5; 4], &[2, 2]),
        Err(DenseError::InputShape { .. })
    ));
}

#[test]
fn bad_shapes_are_errors() {
    let mut d = Dense::<f32>::new(2).input_dim(3);
    // Rank 1, as Keras (min_ndim = 2).
    assert!(matches!(
        d.call(&[1.0; 3], &[3]),
        Err(DenseError::InputShape { .. })
    ));
    // Data length not the shape's product.
    assert!(matches!(
        d.call(&[1.0; 5], &[2, 3]),
        Err(DenseError::InputShape { .. })
    ));
    // Overflowing shape.
    assert!(d.call(&[1.0; 3], &[usize::MAX, 2, 3]).is_err());
    // Wrong output buffer.
    assert!(d.call_into(&[1.0; 6], &[2, 3], &mut [0.0; 3]).is_err());
    // set_weights: count, shapes, data length.
    let k = Tensor {
        shape: vec![3, 2],
        data: vec![0.0f32; 6],
    };
    let b = Tensor {
        shape: vec![2],
        data: vec![0.0f32; 2],
    };
    assert!(matches!(
        d.set_weights(std::slice::from_ref(&k)),
        Err(DenseError::WeightShape {
            name: "weights",
            ..
        })
    ));
    let k_bad = Tensor {
        shape: vec![2, 3],
        data: vec![0.0f32; 6],
    };
    assert!(matches!(
        d.set_weights(&[k_bad, b.clone()]),
        Err(DenseError::WeightShape { name: "kernel", .. })
    ));
    let k_short = Tensor {
        shape: vec![3, 2],
        data: vec![0.0f32; 5],
    };
    assert!(matches!(
        d.set_weights(&[k_short, b.clone()]),
        Err(DenseError::WeightShape { name: "kernel", .. })
    ));
    let b_bad = Tensor {
        shape: vec![3],
        data: vec![0.0f32; 3],
    };
    assert!(matches!(
        d.set_weights(&[k.clone(), b_bad]),
        Err(DenseError::WeightShape { name: "bias", .. })
    ));
    d.set_weights(&[k, b]).unwrap();
    // units = 0 and an empty input_shape are refused when built.
    assert!(Dense::<f32>::new(0).build(3).is_err());
    assert!(Dense::<f32>::new(2).input_shape(&[]).build(3).is_err());
    // A model: duplicate names, input_dim after the first layer, wrong input shape.
    let m = Sequential::<f32>::new()
        .add(Dense::new(2).name("a"))
        .unwrap();
    assert!(m.clone().add(Dense::new(2).name("a")).is_err());
    assert!(m.add(Dense::new(2).input_dim(3)).is_err());
    let mut m = Sequential::<f32>::new()
        .add(Dense::new(2).input_dim(3))
        .unwrap();
    assert!(m.forward(&[0.0; 4], &[2, 2]).is_err());
    assert!(m.forward(&[0.0; 5], &[2, 3]).is_err());
    assert!(m.forward(&[0.0; 6], &[2, 3]).is_ok());
}

#[test]
fn softmax_over_one_unit_is_one() {
    let mut d = Dense::<f32>::new(1)
        .activation(Activation::Softmax)
        .input_dim(3);
    let y = d.call(&[1e30, -3.0, 2.0, 0.0, 0.0, 0.0], &[2, 3]).unwrap();
    assert_eq!(y.data, vec![1.0, 1.0]);
    let mut l = Dense::<f32>::new(1)
        .activation(Activation::LogSoftmax)
        .input_dim(3);
    assert_eq!(l.call(&[1.0, 2.0, 3.0], &[1, 3]).unwrap().data, vec![0.0]);
}

#[test]
fn sequential_unbuilt_summary_and_activation_layers() {
    let m = Sequential::<f64>::new()
        .add(Dense::new(4))
        .unwrap()
        .add(ActivationLayer::new(Activation::Relu).name("act"))
        .unwrap();
    let s = m.summary();
    assert!(
        s.contains("dense (Dense)") && s.contains("0 (unbuilt)") && s.contains('?'),
        "{s}"
    );
    assert!(s.contains("act (Activation)"), "{s}");
    assert!(m.count_params().is_err());
    // f64 parameters count 8 bytes.
    let m = Sequential::<f64>::new()
        .add(Dense::new(4).input_dim(2))
        .unwrap();
    assert!(
        m.summary().contains("Total params: 12 (96.00 B)"),
        "{}",
        m.summary()
    );
    // An Activation layer first, then Dense built from the first call.
    let mut m = Sequential::<f32>::new()
        .add(ActivationLayer::new(Activation::Relu))
        .unwrap()
        .add(Dense::new(2).kernel_initializer(Initializer::Ones))
        .unwrap();
    let (y, shape) = m.forward(&[-1.0, 2.0, 3.0, -4.0], &[2, 2]).unwrap();
    assert_eq!(shape, &[2, 2]);
    assert_eq!(y, &[2.0, 2.0, 3.0, 3.0]);
}

#[test]
fn second_call_switches_to_the_packed_path() {
    let (m, k, n) = (5, 40, 33);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 19) as f32 - 9.0) / 5.0)
        .collect();
    let mut d = Dense::<f32>::new(n)
        .activation(Activation::Gelu)
        .bias_initializer(Initializer::Ones);
    let first = d.call(&x, &[m, k]).unwrap();
    assert!(!d.is_packed());
    let second = d.call(&x, &[m, k]).unwrap();
    assert!(d.is_packed(), "packed on the second call");
    let third = d.call(&x, &[m, k]).unwrap();
    assert_eq!(second, third, "the packed path is deterministic");
    let w = d.get_weights().unwrap();
    for y in [&first, &second] {
        reference::check_dense(
            MatRef::from_slice(&x, m, k).unwrap(),
            MatRef::from_slice(&w[0].data, k, n).unwrap(),
            Some(&w[1].data),
            Activation::Gelu,
            &y.data,
        )
        .unwrap();
    }
    // New weights drop the packing, and the next calls use them.
    let zeros = Tensor {
        shape: vec![k, n],
        data: vec![0.0f32; k * n],
    };
    let bias = Tensor {
        shape: vec![n],
        data: vec![0.0f32; n],
    };
    d.set_weights(&[zeros, bias]).unwrap();
    assert!(!d.is_packed());
    for _ in 0..3 {
        assert!(d.call(&x, &[m, k]).unwrap().data.iter().all(|&v| v == 0.0));
    }
    assert!(d.is_packed());
    // f64 layers never pack.
    let mut e = Dense::<f64>::new(3).input_dim(2);
    for _ in 0..3 {
        e.call(&[1.0, 2.0], &[1, 2]).unwrap();
    }
    assert!(!e.is_packed());
}
