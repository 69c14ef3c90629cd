//! The training state in a model file, as Keras 3 keeps it: `compile_config` in
//! `config.json` (optimizer, loss, metrics) and `optimizer/vars/<i>` in the weights
//! (`0` the step count, `1` the learning rate, then the slots in Keras's order).

use hdf5_pure::File;
use serde_json::{json, Map, Value};

use super::super::train::SavedTraining;
use super::super::{CompileOptions, Layer, Loss, Metric, Optimizer, Sequential};
use super::config::Bad;
use crate::Element;

/// Keras's class name and `name` for an optimizer.
pub(super) fn optimizer_name(o: &Optimizer) -> (&'static str, &'static str) {
    match o {
        Optimizer::Sgd { .. } => ("SGD", "SGD"),
        Optimizer::Adam { .. } => ("Adam", "adam"),
        Optimizer::AdamW { .. } => ("AdamW", "adamw"),
        Optimizer::RmsProp { .. } => ("RMSprop", "rmsprop"),
        Optimizer::Adagrad { .. } => ("Adagrad", "adagrad"),
    }
}

/// Keras's order of an optimizer's slot variables: groups of the crate's slot indices;
/// within a group the slots of one variable are interleaved, variable by variable
/// (`add_optimizer_variables(vars, ["momentum", "velocity"])`), and the groups follow
/// one another (Adam's `velocity_hat`; RMSprop's velocity, momentum, average gradient).
fn keras_groups(o: &Optimizer) -> Vec<Vec<usize>> {
    match *o {
        Optimizer::Sgd { momentum, .. } => {
            if momentum != 0.0 {
                vec![vec![0]]
            } else {
                vec![]
            }
        }
        Optimizer::Adam { amsgrad, .. } | Optimizer::AdamW { amsgrad, .. } => {
            let mut g = vec![vec![0, 1]];
            if amsgrad {
                g.push(vec![2]);
            }
            g
        }
        Optimizer::RmsProp {
            momentum, centered, ..
        } => {
            let mut g = vec![vec![0]];
            let mut next = 1;
            if momentum > 0.0 {
                g.push(vec![next]);
                next += 1;
            }
            if centered {
                g.push(vec![next]);
            }
            g
        }
        Optimizer::Adagrad { .. } => vec![vec![0]],
    }
}

/// `compile_config` as Keras writes it.
pub(super) fn compile_json<T>(s: &SavedTraining<'_, T>) -> Value {
    let (class, name) = optimizer_name(&s.optimizer);
    let mut cfg = json!({"name": name, "learning_rate": s.optimizer.learning_rate(),
        "weight_decay": null, "clipnorm": s.clip.0, "global_clipnorm": s.clip.2,
        "clipvalue": s.clip.1, "use_ema": false, "ema_momentum": 0.99,
        "ema_overwrite_frequency": null, "loss_scale_factor": null,
        "gradient_accumulation_steps": null});
    match s.optimizer {
        Optimizer::Sgd {
            momentum, nesterov, ..
        } => {
            cfg["momentum"] = json!(momentum);
            cfg["nesterov"] = json!(nesterov);
        }
        Optimizer::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            ..
        } => {
            cfg["beta_1"] = json!(beta_1);
            cfg["beta_2"] = json!(beta_2);
            cfg["epsilon"] = json!(epsilon);
            cfg["amsgrad"] = json!(amsgrad);
        }
        Optimizer::AdamW {
            weight_decay,
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            ..
        } => {
            cfg["weight_decay"] = json!(weight_decay);
            cfg["beta_1"] = json!(beta_1);
            cfg["beta_2"] = json!(beta_2);
            cfg["epsilon"] = json!(epsilon);
            cfg["amsgrad"] = json!(amsgrad);
        }
        Optimizer::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
            ..
        } => {
            cfg["rho"] = json!(rho);
            cfg["momentum"] = json!(momentum);
            cfg["epsilon"] = json!(epsilon);
            cfg["centered"] = json!(centered);
        }
        Optimizer::Adagrad {
            initial_accumulator_value,
            epsilon,
            ..
        } => {
            cfg["initial_accumulator_value"] = json!(initial_accumulator_value);
            cfg["epsilon"] = json!(epsilon);
        }
    }
    let loss = loss_json(&s.loss);
    let metrics: Vec<String> = s.metrics.iter().map(Metric::to_string).collect();
    json!({"optimizer": {"module": "keras.optimizers", "class_name": class, "config": cfg,
                         "registered_name": null},
           "loss": loss, "loss_weights": null, "metrics": metrics,
           "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1,
           "jit_compile": true})
}

/// A loss by Keras's name where its parameters are Keras's defaults, else the
/// serialized loss object.
fn loss_json(l: &Loss) -> Value {
    let obj = |class: &str, extra: Value| {
        let mut c = json!({"name": l.to_string(), "reduction": "sum_over_batch_size",
                           "dtype": null});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!({"module": "keras.losses", "class_name": class, "config": c,
               "registered_name": null})
    };
    match *l {
        Loss::CategoricalCrossentropy {
            from_logits,
            label_smoothing,
        } if from_logits || label_smoothing != 0.0 => obj(
            "CategoricalCrossentropy",
            json!({"from_logits": from_logits, "label_smoothing": label_smoothing, "axis": -1}),
        ),
        Loss::SparseCategoricalCrossentropy { from_logits: true } => obj(
            "SparseCategoricalCrossentropy",
            json!({"from_logits": true, "ignore_class": null}),
        ),
        Loss::BinaryCrossentropy {
            from_logits,
            label_smoothing,
        } if from_logits || label_smoothing != 0.0 => obj(
            "BinaryCrossentropy",
            json!({"from_logits": from_logits, "label_smoothing": label_smoothing, "axis": -1}),
        ),
        Loss::Huber { delta } if delta != 1.0 => obj("Huber", json!({"delta": delta})),
        _ => json!(l.to_string()),
    }
}

fn num(m: &Map<String, Value>, key: &str, default: f64) -> Option<f64> {
    match m.get(key) {
        None | Some(Value::Null) => Some(default),
        Some(v) => v.as_f64(),
    }
}

fn flag(m: &Map<String, Value>, key: &str) -> Option<bool> {
    match m.get(key) {
        None | Some(Value::Null) => Some(false),
        Some(v) => v.as_bool(),
    }
}

/// The crate's compile from Keras's `compile_config`, if the crate has everything it
/// names (no learning-rate schedule, EMA, loss scaling, gradient accumulation, or a
/// metric or loss the crate lacks); `None` leaves the model uncompiled, as Keras does
/// when its `compile_from_config` fails.
pub(super) fn parse_compile(c: &Value) -> Option<(Optimizer, Loss, CompileOptions)> {
    let opt = c.get("optimizer")?;
    let (class, cfg) = match opt {
        Value::String(s) => (s.as_str(), Map::new()),
        Value::Object(o) => (
            o.get("class_name")?.as_str()?,
            o.get("config")?.as_object()?.clone(),
        ),
        _ => return None,
    };
    for key in [
        "loss_scale_factor",
        "gradient_accumulation_steps",
        "ema_overwrite_frequency",
    ] {
        if !cfg.get(key).is_none_or(Value::is_null) {
            return None;
        }
    }
    if flag(&cfg, "use_ema")? {
        return None;
    }
    let lr = |d: f64| num(&cfg, "learning_rate", d);
    let optimizer = match class.to_ascii_lowercase().as_str() {
        "sgd" => Optimizer::Sgd {
            learning_rate: lr(0.01)?,
            momentum: num(&cfg, "momentum", 0.0)?,
            nesterov: flag(&cfg, "nesterov")?,
        },
        "adam" => Optimizer::Adam {
            learning_rate: lr(0.001)?,
            beta_1: num(&cfg, "beta_1", 0.9)?,
            beta_2: num(&cfg, "beta_2", 0.999)?,
            epsilon: num(&cfg, "epsilon", 1e-7)?,
            amsgrad: flag(&cfg, "amsgrad")?,
        },
        "adamw" => Optimizer::AdamW {
            learning_rate: lr(0.001)?,
            weight_decay: num(&cfg, "weight_decay", 0.004)?,
            beta_1: num(&cfg, "beta_1", 0.9)?,
            beta_2: num(&cfg, "beta_2", 0.999)?,
            epsilon: num(&cfg, "epsilon", 1e-7)?,
            amsgrad: flag(&cfg, "amsgrad")?,
        },
        "rmsprop" => Optimizer::RmsProp {
            learning_rate: lr(0.001)?,
            rho: num(&cfg, "rho", 0.9)?,
            momentum: num(&cfg, "momentum", 0.0)?,
            epsilon: num(&cfg, "epsilon", 1e-7)?,
            centered: flag(&cfg, "centered")?,
        },
        "adagrad" => Optimizer::Adagrad {
            learning_rate: lr(0.001)?,
            initial_accumulator_value: num(&cfg, "initial_accumulator_value", 0.1)?,
            epsilon: num(&cfg, "epsilon", 1e-7)?,
        },
        _ => return None,
    };
    // A weight decay on anything but AdamW is one more thing the crate does not run.
    if !matches!(optimizer, Optimizer::AdamW { .. })
        && !cfg.get("weight_decay").is_none_or(Value::is_null)
        && num(&cfg, "weight_decay", 0.0)? != 0.0
    {
        return None;
    }
    let loss = match c.get("loss")? {
        Value::String(s) => s.parse().ok()?,
        Value::Object(o) => {
            let lc = o.get("config")?.as_object()?;
            match o.get("class_name")?.as_str()? {
                "CategoricalCrossentropy" => Loss::CategoricalCrossentropy {
                    from_logits: flag(lc, "from_logits")?,
                    label_smoothing: num(lc, "label_smoothing", 0.0)?,
                },
                "SparseCategoricalCrossentropy" => Loss::SparseCategoricalCrossentropy {
                    from_logits: flag(lc, "from_logits")?,
                },
                "BinaryCrossentropy" => Loss::BinaryCrossentropy {
                    from_logits: flag(lc, "from_logits")?,
                    label_smoothing: num(lc, "label_smoothing", 0.0)?,
                },
                "MeanSquaredError" => Loss::MeanSquaredError,
                "MeanAbsoluteError" => Loss::MeanAbsoluteError,
                "Huber" => Loss::Huber {
                    delta: num(lc, "delta", 1.0)?,
                },
                _ => return None,
            }
        }
        _ => return None,
    };
    let metrics: Vec<Metric> = match c.get("metrics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|m| m.as_str()?.parse().ok())
            .collect::<Option<_>>()?,
        _ => return None,
    };
    let mut opts = CompileOptions::new().metrics(&metrics);
    if let Some(v) = cfg.get("clipnorm").and_then(Value::as_f64) {
        opts = opts.clipnorm(v);
    }
    if let Some(v) = cfg.get("clipvalue").and_then(Value::as_f64) {
        opts = opts.clipvalue(v);
    }
    if let Some(v) = cfg.get("global_clipnorm").and_then(Value::as_f64) {
        opts = opts.global_clipnorm(v);
    }
    Some((optimizer, loss, opts))
}

/// Each trainable variable's shape, in Keras's order (each Dense's kernel, then bias).
fn variable_shapes<T: Element>(model: &Sequential<T>) -> Vec<Vec<usize>> {
    let mut v = Vec::new();
    for (_, l) in &model.layers {
        if let Layer::Dense(d) = l {
            let k = d.in_features().unwrap_or(0);
            v.push(vec![k, d.units()]);
            if d.use_bias {
                v.push(vec![d.units()]);
            }
        }
    }
    v
}

/// The optimizer's variables in Keras's order, with their shapes: none before the
/// first step (Keras's optimizer is not built then either).
pub(super) fn optimizer_vars<T: Element>(
    model: &Sequential<T>,
    s: &SavedTraining<'_, T>,
) -> Vec<(Vec<usize>, Vec<T>)> {
    let shapes = variable_shapes(model);
    if s.iterations == 0 || s.slots.len() != shapes.len() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for group in keras_groups(&s.optimizer) {
        for (shape, slots) in shapes.iter().zip(s.slots) {
            for &j in &group {
                if let Some(a) = slots.get(j) {
                    out.push((shape.clone(), a.clone()));
                }
            }
        }
    }
    out
}

/// Reads `optimizer/vars` (step count, learning rate, slots in Keras's order) into the
/// compiled `model`. A count that does not fit the optimizer is skipped, as Keras skips
/// it (with a warning there); shapes and dtypes are checked before reading.
pub(super) fn read_optimizer<T: Element>(
    file: &File,
    model: &mut Sequential<T>,
) -> Result<(), Bad> {
    let Some(saved) = model.saved_training() else {
        return Ok(());
    };
    let optimizer = saved.optimizer;
    let Ok(group) = file.group("optimizer/vars") else {
        return Ok(());
    };
    let names = group.datasets().unwrap_or_default();
    let shapes = variable_shapes(model);
    let groups = keras_groups(&optimizer);
    let per_var: usize = groups.iter().map(Vec::len).sum();
    if names.len() != 2 + per_var * shapes.len() {
        return Ok(());
    }
    let it = file
        .dataset("optimizer/vars/0")
        .and_then(|d| d.read_i64())
        .map_err(|e| format!("optimizer/vars/0 (the step count): {e}"))?;
    let iterations = match it.as_slice() {
        [n] if *n >= 0 => *n as u64,
        _ => return Err(format!("optimizer/vars/0 holds {it:?}, not a step count")),
    };
    let kinds = optimizer.slots().count;
    let mut slots: Vec<Vec<Vec<T>>> = shapes.iter().map(|_| vec![Vec::new(); kinds]).collect();
    let mut index = 2;
    for group in &groups {
        for (v, shape) in shapes.iter().enumerate() {
            for &j in group {
                let path = format!("optimizer/vars/{index}");
                slots[v][j] = super::weights::read_exact(file, &path, shape)?;
                index += 1;
            }
        }
    }
    model
        .restore_training(iterations, slots)
        .map_err(|e| e.to_string())
}
