//! Model files (the `model-files` feature): Keras 3 `.keras`, legacy Keras `.h5`,
//! `.weights.h5`, and PyTorch state_dicts in safetensors.
//!
//! Every reader takes the file's bytes and checks before it allocates: entry sizes in the
//! zip against fixed caps and against what the configuration declares, dataset shapes
//! and dtypes against the configuration before any data is read. A bad file is a
//! [`DenseError::ModelFile`] naming the file and what is wrong. Writers build the whole
//! file in memory and write it to the given path only, in one `std::fs::write`.

mod config;
mod config_write;
mod torch;
mod training;
mod weights;

use std::io::{Cursor, Read, Write};
use std::path::Path;

use super::{Layer, Sequential};
use crate::{Activation, DenseError, Element};

pub use torch::load_safetensors;

/// `config.json` and `metadata.json` above this many bytes are refused (Keras's own for
/// a chain of a few hundred layers is well under 1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The Keras version written into `metadata.json` and the legacy attributes: the
/// format this crate writes is the one Keras 3.15 writes and reads.
pub const KERAS_VERSION: &str = "3.15.1";

pub(super) fn file_error(path: &Path, what: impl Into<String>) -> DenseError {
    DenseError::ModelFile {
        path: path.display().to_string(),
        what: what.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, DenseError> {
    std::fs::read(path).map_err(|e| file_error(path, format!("cannot read the file ({e})")))
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Whether a zip's end-of-central-directory record sits in the last 64 KiB + 22 bytes.
fn has_zip_end(bytes: &[u8]) -> bool {
    let from = bytes.len().saturating_sub((64 << 10) + 22);
    bytes[from..].windows(4).any(|w| w == b"PK\x05\x06")
}

/// Reads entry `name` of `zip`, refusing more than `cap` bytes (declared or actual).
fn zip_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    cap: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip
        .by_name(name)
        .map_err(|e| format!("the archive has no readable {name} ({e})"))?;
    if entry.size() > cap {
        return Err(format!(
            "{name} declares {} bytes, more than the {cap} this model can need",
            entry.size()
        ));
    }
    let mut out = Vec::new();
    out.try_reserve(entry.size() as usize)
        .map_err(|_| format!("{name}: cannot allocate {} bytes", entry.size()))?;
    entry
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{name}: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "{name} inflates past its declared size (a zip bomb?)"
        ));
    }
    Ok(out)
}

/// The bytes the parameters of `spec` take, if they fit a `usize`.
fn param_bytes<T: Element>(layers: &[config::Parsed<T>]) -> Option<usize> {
    let mut shape: Option<Vec<usize>> = None;
    let mut total = 0usize;
    for p in layers {
        if shape.is_none() {
            shape = p.input.clone().or_else(|| p.build_input.clone());
        }
        match &p.layer {
            Some(Layer::Dense(d)) => {
                let s = shape.as_mut()?;
                let k = *s.last()?;
                let n = d.units();
                total = total.checked_add(k.checked_mul(n)?.checked_add(n)?)?;
                *s.last_mut()? = n;
            }
            Some(Layer::Flatten(_)) => {
                let s = shape.as_mut()?;
                let p = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
                *s = vec![p];
            }
            _ => {}
        }
    }
    total.checked_mul(std::mem::size_of::<T>())
}

/// Parses a config, checks it against the bytes the weights have, and builds the model.
/// Returns the model (its Dense layers not built yet) and its parameters' bytes.
fn model_from_config<T: Element>(
    json: &[u8],
    weight_bytes: u64,
) -> Result<(Sequential<T>, u64), String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("the model config is not JSON ({e})"))?;
    let spec = config::parse_model::<T>(&v)?;
    let need = param_bytes(&spec.layers)
        .ok_or("the configuration's parameter count overflows (or a shape is unknown)")?;
    if need as u64 > weight_bytes {
        return Err(format!(
            "the configuration declares {need} bytes of parameters but the weights hold only \
             {weight_bytes} bytes"
        ));
    }
    Ok((config::build(spec)?, need as u64))
}

/// Loads a Keras model: a Keras 3 `.keras` file (a zip of `config.json`,
/// `metadata.json` and `model.weights.h5`) or a legacy full-model `.h5` file
/// (`model.save("m.h5")`), told apart by their first bytes.
///
/// The model must be a `Sequential` or a functional chain of `InputLayer`, `Dense`,
/// `Activation`, `Dropout` and `Flatten` layers whose dtype policy is `T`'s (`float32`
/// for `f32`, `float64` for `f64`); every Dense parameter (activation, bias,
/// initializers, regularizers, constraints) comes from the file. Layer and model names
/// are Keras's, so [`Sequential::summary`] shows what Keras's `summary()` shows. A
/// `.keras` file saved after `compile` comes back compiled, as Keras's `load_model`
/// does: its optimizer (SGD, Adam, AdamW, RMSprop, Adagrad, with clipping), loss and
/// metrics from `compile_config`, and the step count and every optimizer slot from
/// `optimizer/vars`, so training continues where it stopped. A `compile_config` naming
/// something the crate lacks (a learning-rate schedule, EMA, loss scaling, another
/// optimizer or loss) leaves the model uncompiled, as a failed compile does in Keras;
/// a legacy `.h5` is loaded uncompiled.
///
/// ```no_run
/// use dense_kernel::layer::load_model;
/// let mut model = load_model::<f32>("model.keras")?;
/// println!("{}", model.summary());
/// let y = model.predict(&[0.0; 8], &[2, 4])?;
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
///
/// # Errors
/// [`DenseError::ModelFile`] naming the file and the problem: unreadable, neither a zip
/// nor HDF5, a missing or oversized entry, a layer this crate does not run (named with
/// its class), a dtype policy other than `T`'s, weights whose shape or dtype disagree
/// with the configuration.
pub fn load_model<T: Element>(path: impl AsRef<Path>) -> Result<Sequential<T>, DenseError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    // A zip is found from its end (its central directory), as Python's zipfile and so
    // Keras find it: a damaged first local header alone does not stop either.
    let r = if bytes.starts_with(HDF5_MAGIC) {
        load_legacy_h5::<T>(bytes)
    } else if bytes.starts_with(ZIP_MAGIC) || has_zip_end(&bytes) {
        load_keras_zip::<T>(&bytes)
    } else {
        Err("neither a .keras file (zip) nor a legacy .h5 file (HDF5)".to_owned())
    };
    r.map_err(|e| file_error(path, e))
}

fn load_keras_zip<T: Element>(bytes: &[u8]) -> Result<Sequential<T>, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable .keras zip ({e})"))?;
    let cfg = zip_entry(&mut zip, "config.json", MAX_CONFIG_BYTES)?;
    let declared = zip
        .by_name("model.weights.h5")
        .map_err(|e| format!("the archive has no readable model.weights.h5 ({e})"))?
        .size();
    let (mut model, need) = model_from_config::<T>(&cfg, declared)?;
    // The weights file: the parameters (three times, for an optimizer's slots saved
    // beside them) plus HDF5's bookkeeping.
    let cap = need
        .saturating_mul(4)
        .saturating_add(1 << 20)
        .saturating_add((model.layers.len() as u64).saturating_mul(64 << 10));
    let h5 = zip_entry(&mut zip, "model.weights.h5", cap)?;
    let file = weights::open(h5)?;
    weights::read_keras3(&file, &mut model)?;
    // Keras compiles a loaded model from its compile_config and restores the
    // optimizer's variables; so does the crate, where it has everything named there.
    let v: serde_json::Value = serde_json::from_slice(&cfg).map_err(|e| e.to_string())?;
    if let Some((opt, loss, opts)) = v.get("compile_config").and_then(training::parse_compile) {
        if model.compile_with(opt, loss, &opts).is_ok() {
            training::read_optimizer(&file, &mut model)?;
        }
    }
    Ok(model)
}

fn param_bytes_of<T: Element>(model: &Sequential<T>) -> u64 {
    model
        .layers
        .iter()
        .map(|(_, l)| match l {
            Layer::Dense(d) => (d.kernel.len() + d.bias.len()) as u64,
            _ => 0,
        })
        .sum::<u64>()
        .saturating_mul(std::mem::size_of::<T>() as u64)
}

fn string_attr(v: Option<&hdf5_pure::AttrValue>) -> Option<String> {
    use hdf5_pure::AttrValue as A;
    match v? {
        A::VarLenString(s) | A::VarLenAsciiString(s) | A::String(s) | A::AsciiString(s) => {
            Some(s.clone())
        }
        A::StringSized { value, .. } | A::AsciiStringSized { value, .. } => Some(value.clone()),
        _ => None,
    }
}

fn load_legacy_h5<T: Element>(bytes: Vec<u8>) -> Result<Sequential<T>, String> {
    let len = bytes.len() as u64;
    let file = weights::open(bytes)?;
    let attrs = file
        .root()
        .attrs()
        .map_err(|e| format!("unreadable root attributes ({e})"))?;
    let cfg = string_attr(attrs.get("model_config")).ok_or(
        "the HDF5 file has no model_config attribute: a weights file, not a model \
         (load it with Sequential::load_weights)",
    )?;
    if cfg.len() as u64 > MAX_CONFIG_BYTES {
        return Err("model_config is larger than MAX_CONFIG_BYTES".into());
    }
    let (mut model, _) = model_from_config::<T>(cfg.as_bytes(), len)?;
    weights::read_legacy(&file, "model_weights", &mut model)?;
    Ok(model)
}

/// `YYYY-MM-DD@HH:MM:SS` (UTC) for `metadata.json`, as Keras writes its `date_saved`.
fn date_saved() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DenseError> {
    std::fs::write(path, bytes)
        .map_err(|e| file_error(path, format!("cannot write the file ({e})")))
}

impl<T: Element> Sequential<T> {
    /// Saves the model as a Keras 3 `.keras` file (`model.save("m.keras")`): the zip of
    /// `metadata.json`, `config.json` and `model.weights.h5` that
    /// `keras.models.load_model` opens. A compiled model keeps what Keras keeps: the
    /// optimizer, loss and metrics (`compile_config`) and, once it has taken a step, the
    /// step count and the optimizer's slots in Keras's order (`optimizer/vars`); Keras
    /// (and [`load_model`]) continue training from them.
    ///
    /// The file is built in memory and written to `path` alone.
    ///
    /// # Errors
    /// [`DenseError::ModelFile`] if `path` does not end in `.keras` (as Keras requires),
    /// the model is not built (its input shape unknown), an activation has no Keras name
    /// (a parameterised `threshold`, `gelu(approximate=True)` …), or writing fails.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), DenseError> {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) != Some("keras") {
            return Err(file_error(path, "a Keras model file's name ends in .keras"));
        }
        let cfg = config_write::model_json(self).map_err(|e| file_error(path, e))?;
        let h5 = weights::write_keras3(self).map_err(|e| file_error(path, e))?;
        let meta = serde_json::json!({"keras_version": KERAS_VERSION, "date_saved": date_saved()});
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut put = |name: &str, data: &[u8]| -> Result<(), String> {
            zip.start_file(name, opts).map_err(|e| e.to_string())?;
            zip.write_all(data).map_err(|e| e.to_string())
        };
        put("metadata.json", meta.to_string().as_bytes())
            .and_then(|()| put("config.json", cfg.to_string().as_bytes()))
            .and_then(|()| put("model.weights.h5", &h5))
            .map_err(|e| file_error(path, format!("cannot build the zip ({e})")))?;
        zip.finish()
            .map_err(|e| file_error(path, format!("cannot build the zip ({e})")))?;
        write_file(path, out.get_ref())
    }

    /// Saves the weights as Keras 3's `model.save_weights("m.weights.h5")` does:
    /// `layers/<name>/vars/<i>` in HDF5, which Keras's `load_weights` reads into the same
    /// architecture.
    ///
    /// # Errors
    /// [`DenseError::ModelFile`] if `path` does not end in `.weights.h5` (as Keras
    /// requires), a Dense layer is not built, or writing fails.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<(), DenseError> {
        let path = path.as_ref();
        if !path.to_string_lossy().ends_with(".weights.h5") {
            return Err(file_error(
                path,
                "a Keras weights file's name ends in .weights.h5",
            ));
        }
        let h5 = weights::write_keras3(self).map_err(|e| file_error(path, e))?;
        write_file(path, &h5)
    }

    /// Loads weights saved by Keras's `model.save_weights` (or [`save_weights`]) into this
    /// model, which must have the same layers: a Keras 3 `.weights.h5`
    /// (`layers/<name>/vars/<i>`), or a legacy `.h5` (weights-only or a full model), read
    /// by layer name.
    ///
    /// [`save_weights`]: Self::save_weights
    ///
    /// # Errors
    /// [`DenseError::ModelFile`] for an unreadable file or a weight whose shape or dtype
    /// disagrees with the model. The model is then unchanged: the weights are read into
    /// a copy, which replaces the model only when every layer has loaded.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<(), DenseError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        if !bytes.starts_with(HDF5_MAGIC) {
            return Err(file_error(path, "not an HDF5 file"));
        }
        let need = param_bytes_of(self);
        if (bytes.len() as u64) < need {
            return Err(file_error(
                path,
                format!(
                    "{} bytes cannot hold the model's {need} bytes of weights",
                    bytes.len()
                ),
            ));
        }
        let file = weights::open(bytes).map_err(|e| file_error(path, e))?;
        let mut staged = self.clone();
        let r = if file.group("layers").is_ok() {
            weights::read_keras3(&file, &mut staged)
        } else if file.group("model_weights").is_ok() {
            weights::read_legacy(&file, "model_weights", &mut staged)
        } else {
            weights::read_legacy(&file, "", &mut staged)
        };
        r.map_err(|e| file_error(path, e))?;
        *self = staged;
        Ok(())
    }
}

/// [`load_safetensors`] takes one activation per `Linear`: an error naming both counts
/// otherwise.
pub(super) fn check_activations(
    path: &Path,
    linears: usize,
    activations: &[Activation],
) -> Result<(), DenseError> {
    if linears != activations.len() {
        return Err(file_error(
            path,
            format!(
                "the state_dict has {linears} Linear layers but {} activations were given \
                 (one per Linear, in order)",
                activations.len()
            ),
        ));
    }
    Ok(())
}
