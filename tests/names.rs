//! Keras names: every key of Keras 3.15's `keras.activations.get` table parses (aliases
//! included), `Display` gives the canonical name back, and the round trip is stable.

use dense_kernel::Activation;

#[path = "../fuzz/decode.rs"]
mod decode;

/// `sorted(keras.src.activations.ALL_OBJECTS_DICT)` in Keras 3.15.1, minus `glu` (halves
/// the last axis) and `threshold` (no defaults: Keras cannot build it by name either);
/// the one list the fuzz target `activation_names` also checks against.
const KERAS_NAMES: &[&str] = decode::KERAS_NAMES;

#[test]
fn every_keras_name_parses_and_round_trips() {
    for &name in KERAS_NAMES {
        let a: Activation = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let shown = a.to_string();
        let canonical = match name {
            "swish" => "silu",
            "hard_swish" => "hard_silu",
            n => n,
        };
        assert_eq!(shown, canonical);
        assert_eq!(shown.parse::<Activation>().unwrap(), a);
    }
}

#[test]
fn keras_defaults() {
    use Activation::*;
    assert_eq!(
        "leaky_relu".parse::<Activation>().unwrap(),
        LeakyRelu {
            negative_slope: 0.2
        }
    );
    assert_eq!("elu".parse::<Activation>().unwrap(), Elu { alpha: 1.0 });
    assert_eq!("celu".parse::<Activation>().unwrap(), Celu { alpha: 1.0 });
    assert_eq!(
        "squareplus".parse::<Activation>().unwrap(),
        Squareplus { b: 4.0 }
    );
    assert_eq!(
        "soft_shrink".parse::<Activation>().unwrap(),
        SoftShrink { threshold: 0.5 }
    );
    assert_eq!(
        "hard_shrink".parse::<Activation>().unwrap(),
        HardShrink { threshold: 0.5 }
    );
    assert_eq!("gelu".parse::<Activation>().unwrap(), Gelu);
    assert_eq!(Activation::default(), Linear);
}

#[test]
fn parameters_show_in_keras_call_syntax() {
    use Activation::*;
    assert_eq!(
        LeakyRelu {
            negative_slope: 0.1
        }
        .to_string(),
        "leaky_relu(negative_slope=0.1)"
    );
    assert_eq!(GeluTanh.to_string(), "gelu(approximate=True)");
    assert_eq!(
        Threshold {
            threshold: 0.5,
            default_value: -1.0
        }
        .to_string(),
        "threshold(threshold=0.5, default_value=-1)"
    );
    assert_eq!(
        ReluWith {
            negative_slope: 0.0,
            max_value: Some(6.0),
            threshold: 0.0
        }
        .to_string(),
        "relu(negative_slope=0, max_value=6, threshold=0)"
    );
    assert_eq!(
        ReluWith {
            negative_slope: 0.0,
            max_value: None,
            threshold: 0.0
        }
        .to_string(),
        "relu"
    );
    assert_eq!(Elu { alpha: f64::NAN }.to_string(), "elu(alpha=NaN)");
    assert_eq!(format!("{:>6}|{:<6}|", Relu, Tanh), "  relu|tanh  |");
}

/// `ReluWith` with Keras's defaults is plain relu, value for value.
#[test]
fn relu_with_defaults_is_relu() {
    use dense_kernel::reference::activation_f64;
    let plain = Activation::ReluWith {
        negative_slope: 0.0,
        max_value: None,
        threshold: 0.0,
    };
    for z in [-3.0, -0.0, 0.0, 0.5, 7.0, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            activation_f64(plain, z),
            activation_f64(Activation::Relu, z)
        );
    }
    assert!(activation_f64(plain, f64::NAN).unwrap().is_nan());
}
