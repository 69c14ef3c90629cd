//! Keras's `config.json` (and a legacy `.h5` file's `model_config`) read into the
//! crate's layers: a chain of `InputLayer`, `Dense`, `Activation`, `Dropout` and
//! `Flatten`, as a `Sequential` or a functional model. Anything else is an error that
//! names the layer and its class.

use serde_json::{Map, Value};

use super::super::{
    ActivationLayer, Constraint, Dense, Distribution, Dropout, FanMode, Flatten, Initializer,
    Layer, Regularizer, Sequential,
};
use crate::{Activation, Element};

/// A config problem, without the file name (the caller adds it).
pub(super) type Bad = String;

/// The classes this crate runs, for the error that names the others.
const SUPPORTED: &str = "InputLayer, Dense, Activation, Dropout and Flatten";

/// The dtype policy name of `T`, as Keras writes it.
pub(super) fn policy_name<T: Element>() -> &'static str {
    if T::NAME == "f64" {
        "float64"
    } else {
        "float32"
    }
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Bad> {
    v.as_object()
        .ok_or_else(|| format!("{what} is not a JSON object"))
}

fn get<'a>(m: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, Bad> {
    m.get(key).ok_or_else(|| format!("{what} has no \"{key}\""))
}

fn f64_of(v: &Value, what: &str) -> Result<f64, Bad> {
    v.as_f64().ok_or_else(|| format!("{what} is not a number"))
}

fn opt_f64(m: &Map<String, Value>, key: &str, default: f64, what: &str) -> Result<f64, Bad> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => f64_of(v, &format!("{what}.{key}")),
    }
}

fn str_of<'a>(v: &'a Value, what: &str) -> Result<&'a str, Bad> {
    v.as_str().ok_or_else(|| format!("{what} is not a string"))
}

/// A dimension: a non-negative integer that fits `usize`.
fn dim(v: &Value, what: &str) -> Result<usize, Bad> {
    v.as_u64()
        .and_then(|d| usize::try_from(d).ok())
        .ok_or_else(|| format!("{what}: {v} is not a size"))
}

/// `[null, d1, …]` → `[d1, …]` (every per-example dimension known).
fn per_example(v: &Value, what: &str) -> Result<Vec<usize>, Bad> {
    let a = v
        .as_array()
        .ok_or_else(|| format!("{what} is not a list"))?;
    if a.len() < 2 {
        return Err(format!("{what} {v} has no per-example axis"));
    }
    a[1..].iter().map(|d| dim(d, what)).collect()
}

/// The policy name of a layer's `dtype` entry: a plain string (InputLayer) or a
/// `DTypePolicy` object.
fn dtype_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => {
            let c = m.get("config")?;
            if let Some(n) = c.get("name").and_then(Value::as_str) {
                return Some(n.to_owned());
            }
            // QuantizedDTypePolicy: Keras names it "<mode>_from_<source>".
            let mode = c.get("mode")?.as_str()?;
            let source = c
                .get("source_name")
                .and_then(Value::as_str)
                .unwrap_or("float32");
            Some(format!("{mode}_from_{source}"))
        }
        _ => None,
    }
}

/// One layer of the file: its name, class and the crate layer (None for InputLayer,
/// which gives the input shape instead).
pub(super) struct Parsed<T> {
    pub(super) name: String,
    pub(super) class: String,
    pub(super) layer: Option<Layer<T>>,
    /// InputLayer: the per-example shape.
    pub(super) input: Option<Vec<usize>>,
    /// `build_config.input_shape`, per example, where the file has it.
    pub(super) build_input: Option<Vec<usize>>,
}

/// The model the file describes.
pub(super) struct ModelSpec<T> {
    pub(super) name: String,
    pub(super) functional: bool,
    pub(super) layers: Vec<Parsed<T>>,
}

/// Parses the top-level config (`{"class_name": "Sequential" | "Functional", "config":
/// {...}}`).
pub(super) fn parse_model<T: Element>(root: &Value) -> Result<ModelSpec<T>, Bad> {
    let root = obj(root, "the model config")?;
    let class = str_of(get(root, "class_name", "the model config")?, "class_name")?;
    let functional = match class {
        "Sequential" => false,
        "Functional" | "Model" => true,
        other => {
            return Err(format!(
                "the model is a {other}; this crate loads Sequential and functional models"
            ))
        }
    };
    let cfg = obj(
        get(root, "config", "the model config")?,
        "the model's config",
    )?;
    let name = match cfg.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => if functional {
            "functional"
        } else {
            "sequential"
        }
        .to_owned(),
    };
    let list = get(cfg, "layers", "the model's config")?
        .as_array()
        .ok_or("the model's \"layers\" is not a list")?;
    let mut layers = Vec::with_capacity(list.len().min(4096));
    for (i, l) in list.iter().enumerate() {
        layers.push(parse_layer::<T>(l, i)?);
    }
    if functional {
        check_chain(cfg, list, &layers)?;
    }
    // Where the model has no InputLayer, the first layer's build shape is its input.
    Ok(ModelSpec {
        name,
        functional,
        layers,
    })
}

/// A functional model must be a chain: one input, each layer called once on the one
/// before it, the last one the output.
fn check_chain<T>(
    cfg: &Map<String, Value>,
    list: &[Value],
    layers: &[Parsed<T>],
) -> Result<(), Bad> {
    let first_of = |v: &Value| -> Option<String> {
        // ["name", 0, 0] or [["name", 0, 0], …]
        let a = v.as_array()?;
        match a.first()? {
            Value::String(s) if a.len() == 3 => Some(s.clone()),
            Value::Array(inner) if a.len() == 1 => inner.first()?.as_str().map(str::to_owned),
            _ => None,
        }
    };
    let inputs = cfg.get("input_layers").and_then(first_of);
    let outputs = cfg.get("output_layers").and_then(first_of);
    let (Some(input), Some(output)) = (inputs, outputs) else {
        return Err(
            "the functional model has several inputs or outputs (or none); \
                    this crate runs a single chain"
                .into(),
        );
    };
    if layers.first().map(|l| &l.name) != Some(&input) || layers[0].class != "InputLayer" {
        return Err(format!(
            "the functional model's input {input:?} is not its first layer"
        ));
    }
    if layers.last().map(|l| &l.name) != Some(&output) {
        return Err(format!(
            "the functional model's output {output:?} is not its last layer: a branching graph"
        ));
    }
    for (i, (l, raw)) in layers.iter().zip(list).enumerate().skip(1) {
        let nodes = raw.get("inbound_nodes").and_then(Value::as_array);
        let from: Option<Vec<String>> = nodes.and_then(|n| {
            let [node] = n.as_slice() else { return None };
            // Keras 3: {"args": [{"config": {"keras_history": [name, 0, 0]}}], …};
            // tf.keras 2 (legacy .h5): [[name, 0, 0, {kwargs}], …].
            if let Some(inbound) = node.as_array() {
                return inbound
                    .iter()
                    .map(|t| t.as_array()?.first()?.as_str().map(str::to_owned))
                    .collect();
            }
            let args = node.get("args")?.as_array()?;
            args.iter()
                .map(|a| {
                    a.get("config")?
                        .get("keras_history")?
                        .as_array()?
                        .first()?
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        });
        let prev = &layers[i - 1].name;
        match from.as_deref() {
            Some([p]) if p == prev => {}
            _ => {
                return Err(format!(
                    "layer {:?} ({}) does not take exactly the output of {prev:?}: \
                     a branching graph, which this crate does not run",
                    l.name, l.class
                ))
            }
        }
    }
    Ok(())
}

fn parse_layer<T: Element>(v: &Value, i: usize) -> Result<Parsed<T>, Bad> {
    let what = format!("layer {i}");
    let m = obj(v, &what)?;
    let class = str_of(get(m, "class_name", &what)?, &format!("{what}.class_name"))?.to_owned();
    let cfg = obj(get(m, "config", &what)?, &format!("{what}.config"))?;
    let name = match cfg.get("name").or_else(|| m.get("name")) {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(format!("{what} ({class}) has no name")),
    };
    let what = format!("layer {name:?} ({class})");
    if !["InputLayer", "Dense", "Activation", "Dropout", "Flatten"].contains(&class.as_str()) {
        return Err(format!(
            "{what} is not supported: this crate runs chains of {SUPPORTED}"
        ));
    }
    // The shape the layer was built for: Keras 3's build_config, or tf.keras 2's
    // batch_input_shape on a Sequential's first layer.
    let build_input = m
        .get("build_config")
        .and_then(|b| b.get("input_shape"))
        .filter(|s| !s.is_null())
        .or_else(|| cfg.get("batch_input_shape").filter(|s| !s.is_null()))
        .map(|s| per_example(s, &format!("{what} input shape")))
        .transpose()?;
    // The dtype policy must be the one this model runs in.
    if let Some(d) = cfg.get("dtype").filter(|d| !d.is_null()) {
        let policy = dtype_name(d).unwrap_or_else(|| d.to_string());
        let want = policy_name::<T>();
        if policy != want {
            return Err(format!(
                "{what} has dtype policy {policy:?}; as a model of {} this crate loads \
                 {want:?} layers only{}",
                T::NAME,
                if policy.contains("int8") || policy.contains("int4") || policy.contains("float8") {
                    " (a quantized layer)"
                } else {
                    ""
                }
            ));
        }
    }
    let mut input = None;
    let layer = match class.as_str() {
        "InputLayer" => {
            let shape = cfg
                .get("batch_shape")
                .or_else(|| cfg.get("batch_input_shape"))
                .ok_or_else(|| format!("{what} has no batch_shape"))?;
            input = Some(per_example(shape, &format!("{what} batch_shape"))?);
            if cfg.get("sparse") == Some(&Value::Bool(true))
                || cfg.get("ragged") == Some(&Value::Bool(true))
            {
                return Err(format!("{what} takes sparse or ragged input"));
            }
            None
        }
        "Dense" => Some(Layer::Dense(parse_dense::<T>(cfg, &name, &what)?)),
        "Activation" => {
            let a = activation(get(cfg, "activation", &what)?, &what)?;
            Some(Layer::Activation(ActivationLayer::new(a).name(&name)))
        }
        "Dropout" => {
            let rate = f64_of(get(cfg, "rate", &what)?, &format!("{what}.rate"))?;
            if !cfg.get("noise_shape").is_none_or(Value::is_null) {
                return Err(format!(
                    "{what} has a noise_shape, which this crate does not run"
                ));
            }
            let mut d = Dropout::new(rate).name(&name);
            if let Some(s) = cfg.get("seed").and_then(Value::as_u64) {
                d = d.seed(s);
            }
            Some(Layer::Dropout(d))
        }
        "Flatten" => {
            if cfg.get("data_format").and_then(Value::as_str) == Some("channels_first") {
                return Err(format!("{what} has data_format \"channels_first\""));
            }
            Some(Layer::Flatten(Flatten::new().name(&name)))
        }
        _ => {
            return Err(format!(
                "{what} is not supported: this crate runs chains of {SUPPORTED}"
            ))
        }
    };
    Ok(Parsed {
        name,
        class,
        layer,
        input,
        build_input,
    })
}

fn parse_dense<T: Element>(
    cfg: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<Dense<T>, Bad> {
    let units = dim(get(cfg, "units", what)?, &format!("{what}.units"))?;
    if units == 0 {
        return Err(format!("{what} has units = 0"));
    }
    for key in ["lora_rank", "quantization_config"] {
        if !cfg.get(key).is_none_or(Value::is_null) {
            return Err(format!(
                "{what} has {key} = {}, which this crate does not run",
                cfg[key]
            ));
        }
    }
    let act = match cfg.get("activation") {
        None | Some(Value::Null) => Activation::Linear,
        Some(v) => activation(v, what)?,
    };
    let use_bias = match cfg.get("use_bias") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("{what}.use_bias is not a boolean"))?,
    };
    let mut d = Dense::new(units)
        .name(name)
        .activation(act)
        .use_bias(use_bias);
    if let Some(v) = cfg.get("kernel_initializer").filter(|v| !v.is_null()) {
        d = d.kernel_initializer(initializer(v, &format!("{what} kernel_initializer"))?);
    }
    if let Some(v) = cfg.get("bias_initializer").filter(|v| !v.is_null()) {
        d = d.bias_initializer(initializer(v, &format!("{what} bias_initializer"))?);
    }
    if let Some(r) = regularizer(
        cfg.get("kernel_regularizer"),
        &format!("{what} kernel_regularizer"),
    )? {
        d = d.kernel_regularizer(r);
    }
    if let Some(r) = regularizer(
        cfg.get("bias_regularizer"),
        &format!("{what} bias_regularizer"),
    )? {
        d = d.bias_regularizer(r);
    }
    if let Some(r) = regularizer(
        cfg.get("activity_regularizer"),
        &format!("{what} activity_regularizer"),
    )? {
        d = d.activity_regularizer(r);
    }
    if let Some(c) = constraint(
        cfg.get("kernel_constraint"),
        2,
        &format!("{what} kernel_constraint"),
    )? {
        d = d.kernel_constraint(c);
    }
    if let Some(c) = constraint(
        cfg.get("bias_constraint"),
        1,
        &format!("{what} bias_constraint"),
    )? {
        d = d.bias_constraint(c);
    }
    Ok(d)
}

/// A Keras activation: its name, or a serialized function object carrying the name.
fn activation(v: &Value, what: &str) -> Result<Activation, Bad> {
    let name = match v {
        Value::String(s) => s.as_str(),
        Value::Object(m) => m
            .get("config")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{what}: activation {v} is not a Keras activation"))?,
        _ => return Err(format!("{what}: activation {v} is not a Keras activation")),
    };
    name.parse::<Activation>()
        .map_err(|e| format!("{what}: {e}"))
}

/// `{"class_name": "...", "config": {...}}` → the class name and its config.
fn class_and_config<'a>(v: &'a Value, what: &str) -> Result<(&'a str, Map<String, Value>), Bad> {
    let m = obj(v, what)?;
    let class = str_of(get(m, "class_name", what)?, what)?;
    let cfg = match m.get("config") {
        Some(Value::Object(c)) => c.clone(),
        _ => Map::new(),
    };
    Ok((class, cfg))
}

fn initializer(v: &Value, what: &str) -> Result<Initializer, Bad> {
    if let Value::String(s) = v {
        return s.parse().map_err(|e| format!("{what}: {e}"));
    }
    let (class, c) = class_and_config(v, what)?;
    let w = |k: &str, d: f64| opt_f64(&c, k, d, what);
    Ok(match class {
        "GlorotUniform" => Initializer::GlorotUniform,
        "GlorotNormal" => Initializer::GlorotNormal,
        "HeUniform" => Initializer::HeUniform,
        "HeNormal" => Initializer::HeNormal,
        "LecunUniform" => Initializer::LecunUniform,
        "LecunNormal" => Initializer::LecunNormal,
        "Zeros" => Initializer::Zeros,
        "Ones" => Initializer::Ones,
        "Constant" => Initializer::Constant {
            value: w("value", 0.0)?,
        },
        "RandomUniform" => Initializer::RandomUniform {
            minval: w("minval", -0.05)?,
            maxval: w("maxval", 0.05)?,
        },
        "RandomNormal" => Initializer::RandomNormal {
            mean: w("mean", 0.0)?,
            stddev: w("stddev", 0.05)?,
        },
        "TruncatedNormal" => Initializer::TruncatedNormal {
            mean: w("mean", 0.0)?,
            stddev: w("stddev", 0.05)?,
        },
        "Orthogonal" | "OrthogonalInitializer" => Initializer::Orthogonal {
            gain: w("gain", 1.0)?,
        },
        "VarianceScaling" => {
            let mode = match c.get("mode").and_then(Value::as_str).unwrap_or("fan_in") {
                "fan_in" => FanMode::FanIn,
                "fan_out" => FanMode::FanOut,
                "fan_avg" => FanMode::FanAvg,
                m => return Err(format!("{what}: mode {m:?}")),
            };
            let distribution = match c
                .get("distribution")
                .and_then(Value::as_str)
                .unwrap_or("truncated_normal")
            {
                "truncated_normal" => Distribution::TruncatedNormal,
                "untruncated_normal" => Distribution::UntruncatedNormal,
                "uniform" => Distribution::Uniform,
                d => return Err(format!("{what}: distribution {d:?}")),
            };
            Initializer::VarianceScaling {
                scale: w("scale", 1.0)?,
                mode,
                distribution,
            }
        }
        other => return Err(format!("{what}: initializer {other} is not supported")),
    })
}

fn regularizer(v: Option<&Value>, what: &str) -> Result<Option<Regularizer>, Bad> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let (class, c) = class_and_config(v, what)?;
    let r = match class {
        "L1" => Regularizer::l1(opt_f64(&c, "l1", 0.01, what)?),
        "L2" => Regularizer::l2(opt_f64(&c, "l2", 0.01, what)?),
        "L1L2" => Regularizer::l1_l2(opt_f64(&c, "l1", 0.0, what)?, opt_f64(&c, "l2", 0.0, what)?),
        other => return Err(format!("{what}: regularizer {other} is not supported")),
    };
    Ok(Some(r))
}

/// Keras's `axis` for a weight of `rank` (an int, negative from the end).
fn axis(c: &Map<String, Value>, rank: usize, what: &str) -> Result<usize, Bad> {
    let a = match c.get("axis") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("{what}: axis {v} is not one integer"))?,
    };
    let r = rank as i64;
    if a >= r || a < -r {
        return Err(format!("{what}: axis {a} for a weight of rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn constraint(v: Option<&Value>, rank: usize, what: &str) -> Result<Option<Constraint>, Bad> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let (class, c) = class_and_config(v, what)?;
    let k = match class {
        "MaxNorm" => Constraint::MaxNorm {
            max_value: opt_f64(&c, "max_value", 2.0, what)?,
            axis: axis(&c, rank, what)?,
        },
        "MinMaxNorm" => Constraint::MinMaxNorm {
            min_value: opt_f64(&c, "min_value", 0.0, what)?,
            max_value: opt_f64(&c, "max_value", 1.0, what)?,
            rate: opt_f64(&c, "rate", 1.0, what)?,
            axis: axis(&c, rank, what)?,
        },
        "NonNeg" => Constraint::NonNeg,
        "UnitNorm" => Constraint::UnitNorm {
            axis: axis(&c, rank, what)?,
        },
        other => return Err(format!("{what}: constraint {other} is not supported")),
    };
    Ok(Some(k))
}

/// Builds the model: its layers in order, the input shape from the InputLayer (or the
/// first layer's build shape).
pub(super) fn build<T: Element>(spec: ModelSpec<T>) -> Result<Sequential<T>, Bad> {
    let mut input = None;
    let mut input_name = None;
    let mut layers = Vec::new();
    for p in spec.layers {
        match p.layer {
            None => {
                if input.is_some() || !layers.is_empty() {
                    return Err(format!("InputLayer {:?} is not the first layer", p.name));
                }
                input = p.input;
                input_name = Some(p.name);
            }
            Some(l) => {
                if input.is_none() && layers.is_empty() {
                    input = p.build_input;
                }
                layers.push(l);
            }
        }
    }
    let shape =
        input.ok_or("the model's input shape is unknown (no InputLayer and no build_config)")?;
    if shape.is_empty() {
        return Err("the model's input has no per-example axis".into());
    }
    // The layers are added before the input shape is set, so that none is built (no
    // initializer runs for weights the file replaces); the weights build them.
    let mut m = Sequential::new().name(&spec.name);
    for l in layers {
        m = m.add(l).map_err(|e| e.to_string())?;
    }
    m.functional = spec.functional;
    m.input = Some(shape);
    m.input_name = input_name;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::{build, parse_model};
    use serde_json::json;

    /// tf.keras 2's legacy configs: no InputLayer in a Sequential (the first layer's
    /// `batch_input_shape`), plain-string dtypes, and a functional chain's
    /// `inbound_nodes` as nested lists.
    #[test]
    fn tf_keras_2_configs() {
        let seq = json!({"class_name": "Sequential", "config": {"name": "sequential",
            "layers": [
                {"class_name": "Dense", "config": {"name": "dense", "dtype": "float32",
                    "batch_input_shape": [null, 4], "units": 3, "activation": "relu",
                    "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform",
                    "config": {"seed": null}}, "bias_initializer": {"class_name": "Zeros",
                    "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
                    "activity_regularizer": null, "kernel_constraint": null,
                    "bias_constraint": null}},
                {"class_name": "Dense", "config": {"name": "dense_1", "dtype": "float32",
                    "units": 2, "activation": "linear"}}]}});
        let m = build(parse_model::<f32>(&seq).unwrap()).unwrap();
        assert_eq!(m.input_shape(), Some(&[4usize][..]));
        assert_eq!(m.layers().count(), 2);

        let node = |from: &str| json!([[[from, 0, 0, {}]]]);
        let fun = json!({"class_name": "Functional", "config": {"name": "model",
            "layers": [
                {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
                 "config": {"batch_input_shape": [null, 5], "dtype": "float32",
                            "name": "input_1"}},
                {"class_name": "Dense", "name": "d", "inbound_nodes": node("input_1"),
                 "config": {"name": "d", "units": 2, "dtype": "float32"}},
                {"class_name": "Activation", "name": "a", "inbound_nodes": node("d"),
                 "config": {"name": "a", "activation": "tanh", "dtype": "float32"}}],
            "input_layers": [["input_1", 0, 0]], "output_layers": [["a", 0, 0]]}});
        let m = build(parse_model::<f32>(&fun).unwrap()).unwrap();
        assert_eq!(m.input_shape(), Some(&[5usize][..]));
        // A layer fed by something other than the layer before is refused.
        let mut branch = fun.clone();
        branch["config"]["layers"][2]["inbound_nodes"] = node("input_1");
        let e = parse_model::<f32>(&branch).err().unwrap();
        assert!(e.contains("\"a\" (Activation)"), "{e}");
    }
}
