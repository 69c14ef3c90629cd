//! The activations' definitions, checked against independent textbook formulas (as Keras
//! documents them) with random parameters: the Keras fixtures pin the default
//! parameters; this pins the formulas for any slope, alpha, b or threshold.
//!
//! Textbook forms cancel or overflow in places where the crate's forms do not, so the
//! comparison stays on |x| ≤ 20, where every textbook form below is a handful of
//! correctly rounded operations losing at most about |x|·ε absolute to cancellation:
//! the tolerance is `64·ε·(1 + |x|)·(1 + |y|)`.

mod common;

use common::{randomize, Rng};
use dense_kernel::reference::activation_f64;
use dense_kernel::{Activation, SELU_ALPHA, SELU_SCALE};

fn textbook(act: Activation, x: f64) -> f64 {
    use Activation::*;
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let hard_sigmoid = |x: f64| (x / 6.0 + 0.5).clamp(0.0, 1.0);
    let softplus = |x: f64| (1.0 + x.exp()).ln();
    match act {
        Linear => x,
        Relu => x.max(0.0),
        Relu6 => x.clamp(0.0, 6.0),
        LeakyRelu { negative_slope } => {
            if x >= 0.0 {
                x
            } else {
                negative_slope * x
            }
        }
        ReluWith {
            negative_slope,
            max_value,
            threshold,
        } => {
            if x > threshold {
                match max_value {
                    Some(m) => x.clamp(0.0, m),
                    None if threshold == 0.0 => x.max(0.0),
                    None => x,
                }
            } else {
                negative_slope * (x - threshold)
            }
        }
        Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * (x.exp() - 1.0)
            }
        }
        Selu => {
            SELU_SCALE
                * if x > 0.0 {
                    x
                } else {
                    SELU_ALPHA * (x.exp() - 1.0)
                }
        }
        Celu { alpha } => x.max(0.0) + (alpha * ((x / alpha).exp() - 1.0)).min(0.0),
        Gelu => 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt())),
        GeluTanh => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        Sigmoid => sigmoid(x),
        HardSigmoid => hard_sigmoid(x),
        Silu => x * sigmoid(x),
        HardSilu => x * hard_sigmoid(x),
        Tanh => x.tanh(),
        Softplus => softplus(x),
        Softsign => x / (1.0 + x.abs()),
        Mish => x * softplus(x).tanh(),
        Exponential => x.exp(),
        LogSigmoid => -softplus(-x),
        HardTanh => x.clamp(-1.0, 1.0),
        TanhShrink => x - x.tanh(),
        Squareplus { b } => (x + (x * x + b).sqrt()) / 2.0,
        SparsePlus => {
            if x <= -1.0 {
                0.0
            } else if x >= 1.0 {
                x
            } else {
                (x + 1.0).powi(2) / 4.0
            }
        }
        SoftShrink { threshold } => {
            if x > threshold {
                x - threshold
            } else if x < -threshold {
                x + threshold
            } else {
                0.0
            }
        }
        HardShrink { threshold } => {
            if x.abs() > threshold {
                x
            } else {
                0.0
            }
        }
        SparseSigmoid => ((x + 1.0) / 2.0).clamp(0.0, 1.0),
        Threshold {
            threshold,
            default_value,
        } => {
            if x > threshold {
                x
            } else {
                default_value
            }
        }
        other => panic!("{other} is row-wise"),
    }
}

#[test]
fn definitions_match_the_textbook_with_random_parameters() {
    let mut rng = Rng(99);
    for &template in Activation::all().iter().filter(|a| !a.is_row_wise()) {
        for _ in 0..200 {
            let act = randomize(template, &mut rng);
            let mut xs: Vec<f64> = (0..64).map(|_| 20.0 * rng.uniform()).collect();
            xs.extend([-20.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 20.0]);
            for x in xs {
                let got = activation_f64(act, x).unwrap();
                let want = textbook(act, x);
                let tol = 64.0 * f64::EPSILON * (1.0 + x.abs()) * (1.0 + want.abs());
                assert!(
                    (got - want).abs() <= tol || (got.is_nan() && want.is_nan()),
                    "{act:?} at {x}: crate {got:e}, textbook {want:e}"
                );
            }
        }
    }
}
