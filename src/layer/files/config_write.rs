//! A model's `config.json` as Keras 3.15 writes it, for `Sequential::save`.

use serde_json::{json, Value};

use super::super::{
    Constraint, Distribution, FanMode, Initializer, Layer, Regularizer, Sequential,
};
use super::config::{policy_name, Bad};
use crate::Element;

fn policy() -> Value {
    json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
           "registered_name": null})
}

fn typed(module: &str, class: &str, config: Value) -> Value {
    json!({"module": module, "class_name": class, "config": config, "registered_name": null})
}

fn initializer_json(i: Initializer) -> Value {
    let m = "keras.initializers";
    let seeded = |class: &str| typed(m, class, json!({"seed": null}));
    match i {
        Initializer::GlorotUniform => seeded("GlorotUniform"),
        Initializer::GlorotNormal => seeded("GlorotNormal"),
        Initializer::HeUniform => seeded("HeUniform"),
        Initializer::HeNormal => seeded("HeNormal"),
        Initializer::LecunUniform => seeded("LecunUniform"),
        Initializer::LecunNormal => seeded("LecunNormal"),
        Initializer::Zeros => typed(m, "Zeros", json!({})),
        Initializer::Ones => typed(m, "Ones", json!({})),
        Initializer::Constant { value } => typed(m, "Constant", json!({"value": value})),
        Initializer::RandomUniform { minval, maxval } => typed(
            m,
            "RandomUniform",
            json!({"minval": minval, "maxval": maxval, "seed": null}),
        ),
        Initializer::RandomNormal { mean, stddev } => typed(
            m,
            "RandomNormal",
            json!({"mean": mean, "stddev": stddev, "seed": null}),
        ),
        Initializer::TruncatedNormal { mean, stddev } => typed(
            m,
            "TruncatedNormal",
            json!({"mean": mean, "stddev": stddev, "seed": null}),
        ),
        Initializer::Orthogonal { gain } => typed(
            m,
            "OrthogonalInitializer",
            json!({"gain": gain, "seed": null}),
        ),
        Initializer::VarianceScaling {
            scale,
            mode,
            distribution,
        } => typed(
            m,
            "VarianceScaling",
            json!({"scale": scale,
                   "mode": match mode { FanMode::FanIn => "fan_in", FanMode::FanOut => "fan_out",
                                        FanMode::FanAvg => "fan_avg" },
                   "distribution": match distribution {
                       Distribution::TruncatedNormal => "truncated_normal",
                       Distribution::UntruncatedNormal => "untruncated_normal",
                       Distribution::Uniform => "uniform" },
                   "seed": null}),
        ),
    }
}

fn regularizer_json(r: Option<Regularizer>) -> Value {
    let m = "keras.regularizers";
    match r {
        None => Value::Null,
        Some(Regularizer { l1, l2: 0.0 }) => typed(m, "L1", json!({"l1": l1})),
        Some(Regularizer { l1: 0.0, l2 }) => typed(m, "L2", json!({"l2": l2})),
        Some(Regularizer { l1, l2 }) => typed(m, "L1L2", json!({"l1": l1, "l2": l2})),
    }
}

fn constraint_json(c: Option<Constraint>) -> Value {
    let m = "keras.constraints";
    match c {
        None => Value::Null,
        Some(Constraint::MaxNorm { max_value, axis }) => {
            typed(m, "MaxNorm", json!({"max_value": max_value, "axis": axis}))
        }
        Some(Constraint::MinMaxNorm {
            min_value,
            max_value,
            rate,
            axis,
        }) => typed(
            m,
            "MinMaxNorm",
            json!({"min_value": min_value, "max_value": max_value, "rate": rate, "axis": axis}),
        ),
        Some(Constraint::NonNeg) => typed(m, "NonNeg", json!({})),
        Some(Constraint::UnitNorm { axis }) => typed(m, "UnitNorm", json!({"axis": axis})),
    }
}

fn shape_json(per_example: &[usize]) -> Value {
    let mut v = vec![Value::Null];
    v.extend(per_example.iter().map(|&d| json!(d)));
    Value::Array(v)
}

/// The config of `model` as Keras 3 writes it (`config.json`), with `dtype` the policy of
/// `T`; also the per-layer class names in order (for the weights file).
pub(super) fn model_json<T: Element>(model: &Sequential<T>) -> Result<Value, Bad> {
    let input = model
        .input
        .clone()
        .ok_or("the model's input shape is unknown: build it (Input or input_dim) first")?;
    let dtype = policy_name::<T>();
    let mut pol = policy();
    pol["config"]["name"] = json!(dtype);
    let input_name = model
        .input_name
        .clone()
        .unwrap_or_else(|| "input_layer".to_owned());
    let mut layers = vec![typed(
        "keras.layers",
        "InputLayer",
        json!({"batch_shape": shape_json(&input), "dtype": dtype, "sparse": false,
               "ragged": false, "name": input_name, "optional": false}),
    )];
    if model.functional {
        layers[0]["name"] = json!(input_name);
        layers[0]["inbound_nodes"] = json!([]);
    }
    let mut shape = input.clone();
    let mut prev = input_name.clone();
    for (name, l) in &model.layers {
        let in_shape = shape.clone();
        let (class, mut cfg) = match l {
            Layer::Dense(d) => {
                *shape.last_mut().ok_or("a Dense layer on a rank-0 input")? = d.units();
                (
                    "Dense",
                    json!({"units": d.units(), "activation": d.get_activation().to_string(),
                           "use_bias": d.use_bias,
                           "kernel_initializer": initializer_json(d.kernel_initializer),
                           "bias_initializer": initializer_json(d.bias_initializer),
                           "kernel_regularizer": regularizer_json(d.kernel_regularizer),
                           "bias_regularizer": regularizer_json(d.bias_regularizer),
                           "kernel_constraint": constraint_json(d.kernel_constraint),
                           "bias_constraint": constraint_json(d.bias_constraint),
                           "quantization_config": null}),
                )
            }
            Layer::Activation(a) => (
                "Activation",
                json!({"activation": a.activation().to_string()}),
            ),
            Layer::Dropout(d) => (
                "Dropout",
                json!({"rate": d.rate(), "seed": null, "noise_shape": null}),
            ),
            Layer::Flatten(_) => {
                shape = vec![shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))];
                ("Flatten", json!({"data_format": "channels_last"}))
            }
        };
        if let Layer::Dense(d) = l {
            if let Some(r) = d.activity_regularizer {
                cfg["activity_regularizer"] = regularizer_json(Some(r));
            }
            let a = d.get_activation();
            if a.to_string().contains('(') {
                return Err(format!(
                    "layer {name:?}: activation {a} has no Keras name a Dense config can hold"
                ));
            }
        }
        if let Layer::Activation(a) = l {
            if a.activation().to_string().contains('(') {
                return Err(format!(
                    "layer {name:?}: activation {} has no Keras name a config can hold",
                    a.activation()
                ));
            }
        }
        cfg["name"] = json!(name);
        cfg["trainable"] = json!(true);
        cfg["dtype"] = pol.clone();
        let mut entry = typed("keras.layers", class, cfg);
        if !matches!(l, Layer::Activation(_) | Layer::Dropout(_)) {
            entry["build_config"] = json!({"input_shape": shape_json(&in_shape)});
        }
        if model.functional {
            entry["name"] = json!(name);
            entry["inbound_nodes"] = json!([{"args": [{"class_name": "__keras_tensor__",
                "config": {"shape": shape_json(&in_shape), "dtype": dtype,
                           "keras_history": [prev, 0, 0]}}], "kwargs": {}}]);
        }
        prev = name.clone();
        layers.push(entry);
    }
    let compile = model
        .saved_training()
        .map_or_else(|| json!({}), |s| super::training::compile_json(&s));
    let root = if model.functional {
        json!({"module": "keras.src.models.functional", "class_name": "Functional",
               "config": {"name": model.name, "trainable": true, "layers": layers,
                          "input_layers": [input_name, 0, 0], "output_layers": [prev, 0, 0]},
               "registered_name": "Functional", "build_config": {"input_shape": null},
               "compile_config": compile})
    } else {
        json!({"module": "keras", "class_name": "Sequential",
               "config": {"name": model.name, "trainable": true, "dtype": pol,
                          "layers": layers, "build_input_shape": shape_json(&input)},
               "registered_name": null, "build_config": {"input_shape": shape_json(&input)},
               "compile_config": compile})
    };
    Ok(root)
}
