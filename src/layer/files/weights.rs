//! Weights in HDF5 files, through `hdf5-pure`: Keras 3's layout (`layers/<name>/vars/<i>`,
//! `.weights.h5` and the `model.weights.h5` inside a `.keras`) and the legacy one
//! (`model_weights/<layer>/` with `weight_names`, a legacy `.h5`).

use hdf5_pure::{AttrValue, DType, File, FileBuilder};

use super::super::{Layer, Sequential};
use super::config::Bad;
use crate::Element;

/// Parses an HDF5 image.
pub(super) fn open(bytes: Vec<u8>) -> Result<File, Bad> {
    File::from_bytes(bytes).map_err(|e| format!("not a readable HDF5 file ({e})"))
}

/// Keras's name for a layer in the weights file: its class in snake case, numbered per
/// class in model order (`dense`, `dense_1`, …), as `saving_lib` names the entries of a
/// layer list.
pub(super) fn keras3_names<T>(model: &Sequential<T>) -> Vec<String> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    model
        .layers
        .iter()
        .map(|(_, l)| {
            let class = match l {
                Layer::Dense(_) => "dense",
                Layer::Activation(_) => "activation",
                Layer::Dropout(_) => "dropout",
                Layer::Flatten(_) => "flatten",
            };
            let c = counts.entry(class).or_insert(0);
            let name = if *c == 0 {
                class.to_owned()
            } else {
                format!("{class}_{c}")
            };
            *c += 1;
            name
        })
        .collect()
}

/// Reads `path` as a `T` array of exactly `shape`; the shape and the dtype are checked
/// before any data is read.
pub(super) fn read_exact<T: Element>(
    file: &File,
    path: &str,
    shape: &[usize],
) -> Result<Vec<T>, Bad> {
    let ds = file
        .dataset(path)
        .map_err(|_| format!("the weights have no dataset {path}"))?;
    let got = ds
        .shape()
        .map_err(|e| format!("dataset {path}: unreadable shape ({e})"))?;
    if got.len() != shape.len() || got.iter().zip(shape).any(|(&g, &s)| g != s as u64) {
        return Err(format!(
            "dataset {path} has shape {got:?}; the model's configuration needs {shape:?}"
        ));
    }
    let dtype = ds
        .dtype()
        .map_err(|e| format!("dataset {path}: unreadable dtype ({e})"))?;
    let want = if T::NAME == "f64" {
        DType::F64
    } else {
        DType::F32
    };
    if dtype != want {
        return Err(format!(
            "dataset {path} holds {dtype:?}; a model of {} reads {want:?}",
            T::NAME
        ));
    }
    let data: Vec<T> = if T::NAME == "f64" {
        T::from_f64_vec(ds.read_f64().map_err(|e| format!("dataset {path}: {e}"))?)
            .ok_or_else(|| format!("dataset {path}: f64 data for a model of {}", T::NAME))?
    } else {
        T::from_f32_vec(ds.read_f32().map_err(|e| format!("dataset {path}: {e}"))?)
    };
    let n: usize = shape.iter().product();
    if data.len() != n {
        return Err(format!(
            "dataset {path}: {} values for shape {shape:?}",
            data.len()
        ));
    }
    Ok(data)
}

/// The names of the datasets in group `path` (none if it does not exist).
fn dataset_names(file: &File, path: &str) -> Vec<String> {
    file.group(path)
        .and_then(|g| g.datasets())
        .unwrap_or_default()
}

/// Each layer's input size (its last axis), from the model's input shape, for the Dense
/// layers whether or not they are built yet.
fn dense_inputs<T: Element>(model: &Sequential<T>) -> Vec<Option<usize>> {
    let mut shape = model.input.clone();
    model
        .layers
        .iter()
        .map(|(_, l)| {
            let k = shape.as_ref().and_then(|s| s.last().copied());
            match l {
                Layer::Dense(d) => {
                    let k = k.or(d.in_features());
                    shape = Some(vec![d.units()]);
                    k
                }
                Layer::Flatten(_) => {
                    shape = shape
                        .as_ref()
                        .map(|s| vec![s.iter().fold(1usize, |a, &d| a.saturating_mul(d))]);
                    k
                }
                _ => k,
            }
        })
        .collect()
}

/// Sets every Dense layer's weights from `read(layer index, layer name, expected
/// shapes)`.
fn set_all<T: Element>(
    model: &mut Sequential<T>,
    mut read: impl FnMut(usize, &str, &[Vec<usize>]) -> Result<Vec<Vec<T>>, Bad>,
) -> Result<(), Bad> {
    let ks = dense_inputs(model);
    for (i, (name, l)) in model.layers.iter_mut().enumerate() {
        let Layer::Dense(d) = l else { continue };
        let k = ks[i].ok_or_else(|| format!("layer {name:?}: input size unknown"))?;
        let mut shapes = vec![vec![k, d.units()]];
        if d.use_bias {
            shapes.push(vec![d.units()]);
        }
        let mut vals = read(i, name, &shapes)?.into_iter();
        let kernel = vals.next().unwrap_or_default();
        let bias = vals.next().unwrap_or_default();
        d.set_weights_owned(k, kernel, false, bias)
            .map_err(|e| format!("layer {name:?}: {e}"))?;
    }
    Ok(())
}

/// Keras 3's layout: `layers/<keras name>/vars/0` (kernel), `/1` (bias).
pub(super) fn read_keras3<T: Element>(file: &File, model: &mut Sequential<T>) -> Result<(), Bad> {
    if file.group("layers").is_err() {
        return Err("the weights file has no \"layers\" group (not a Keras 3 weights file)".into());
    }
    let names = keras3_names(model);
    set_all(model, |i, name, shapes| {
        let base = format!("layers/{}/vars", names[i]);
        let present = dataset_names(file, &base);
        if present.len() != shapes.len() {
            return Err(format!(
                "layer {name:?}: {base} holds {} variables ({present:?}); its configuration \
                 has {} (kernel{})",
                present.len(),
                shapes.len(),
                if shapes.len() == 2 { ", bias" } else { "" }
            ));
        }
        shapes
            .iter()
            .enumerate()
            .map(|(j, s)| read_exact(file, &format!("{base}/{j}"), s))
            .collect()
    })
}

/// A string-list attribute (Keras writes `layer_names` / `weight_names` as such; an
/// empty list as an empty float array).
fn string_list(v: Option<&AttrValue>) -> Option<Vec<String>> {
    match v? {
        AttrValue::VarLenStringArray(a)
        | AttrValue::VarLenAsciiStringArray(a)
        | AttrValue::StringArray(a)
        | AttrValue::AsciiStringArray(a)
        | AttrValue::VarLenAsciiCharArray(a) => Some(a.clone()),
        AttrValue::F64Array(a) if a.is_empty() => Some(Vec::new()),
        AttrValue::VarLenString(s) | AttrValue::VarLenAsciiString(s) | AttrValue::String(s) => {
            Some(vec![s.clone()])
        }
        _ => None,
    }
}

/// The legacy layout under `root` (`model_weights` in a full-model `.h5`, the root group
/// in a legacy weights file): a group per layer name whose `weight_names` attribute
/// lists its datasets, kernel first.
pub(super) fn read_legacy<T: Element>(
    file: &File,
    root: &str,
    model: &mut Sequential<T>,
) -> Result<(), Bad> {
    set_all(model, |_, name, shapes| {
        let group = if root.is_empty() {
            name.to_owned()
        } else {
            format!("{root}/{name}")
        };
        let g = file
            .group(&group)
            .map_err(|_| format!("the weights have no group {group} for layer {name:?}"))?;
        let attrs = g
            .attrs()
            .map_err(|e| format!("group {group}: unreadable attributes ({e})"))?;
        let wn = string_list(attrs.get("weight_names"))
            .ok_or_else(|| format!("group {group} has no weight_names list"))?;
        if wn.len() != shapes.len() {
            return Err(format!(
                "layer {name:?}: the file lists {} weights ({wn:?}); its configuration has {}",
                wn.len(),
                shapes.len()
            ));
        }
        wn.iter()
            .zip(shapes)
            .map(|(w, s)| read_exact(file, &format!("{group}/{w}"), s))
            .collect()
    })
}

/// The model's weights in Keras 3's layout, as an HDF5 image.
pub(super) fn write_keras3<T: Element>(model: &Sequential<T>) -> Result<Vec<u8>, Bad> {
    let mut b = FileBuilder::new();
    let mut layers = b.create_group("layers");
    for ((name, l), kname) in model.layers.iter().zip(keras3_names(model)) {
        let mut g = layers.create_group(&kname);
        let mut vars = g.create_group("vars");
        vars.set_attr("name", AttrValue::String(name.clone()));
        if let Layer::Dense(d) = l {
            let k = d
                .in_features()
                .ok_or_else(|| format!("layer {name:?} is not built: its input size is unknown"))?;
            let n = d.units();
            let mut put = |key: &str, data: &[T], shape: &[u64]| {
                let ds = vars.create_dataset(key);
                match T::as_f32s(data) {
                    Some(f) => ds.with_f32_data(f),
                    None => ds.with_f64_data(&data.iter().map(|v| v.widen()).collect::<Vec<_>>()),
                };
                ds.with_shape(shape);
            };
            let kernel = d
                .kernel_for_keras()
                .map_err(|e| format!("layer {name:?}: {e}"))?;
            put("0", &kernel, &[k as u64, n as u64]);
            if d.use_bias {
                put("1", &d.bias, &[n as u64]);
            }
        }
        g.add_group(vars.finish());
        layers.add_group(g.finish());
    }
    b.add_group(layers.finish());
    // A compiled model's optimizer, after its first step: Keras's `optimizer/vars`.
    if let Some(saved) = model.saved_training() {
        let vars = super::training::optimizer_vars(model, &saved);
        if !vars.is_empty() {
            let (_, name) = super::training::optimizer_name(&saved.optimizer);
            let mut opt = b.create_group("optimizer");
            let mut g = opt.create_group("vars");
            g.set_attr("name", AttrValue::String(name.to_owned()));
            g.create_dataset("0")
                .with_i64_data(&[i64::try_from(saved.iterations).unwrap_or(i64::MAX)])
                .with_shape(&[]);
            g.create_dataset("1")
                .with_f32_data(&[saved.optimizer.learning_rate() as f32])
                .with_shape(&[]);
            for (i, (shape, data)) in vars.iter().enumerate() {
                let ds = g.create_dataset(&(i + 2).to_string());
                match T::as_f32s(data) {
                    Some(f) => ds.with_f32_data(f),
                    None => ds.with_f64_data(&data.iter().map(|v| v.widen()).collect::<Vec<_>>()),
                };
                ds.with_shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
            }
            opt.add_group(g.finish());
            b.add_group(opt.finish());
        }
    }
    let mut top = b.create_group("vars");
    top.set_attr("name", AttrValue::String(model.name.clone()));
    b.add_group(top.finish());
    b.finish()
        .map_err(|e| format!("cannot encode the weights as HDF5 ({e})"))
}
