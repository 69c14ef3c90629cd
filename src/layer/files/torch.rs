//! PyTorch: the state_dict of an `nn.Sequential` of `nn.Linear` (and parameter-free
//! activations) saved with `safetensors.torch.save_file`.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use super::super::{Dense, Layer, Sequential};
use super::{check_activations, file_error};
use crate::{Activation, DenseError, Element};

/// One `nn.Linear`: `weight` `(out, in)` and its optional `bias`.
#[derive(Default)]
struct Linear<'a> {
    weight: Option<TensorView<'a>>,
    bias: Option<TensorView<'a>>,
}

/// Little-endian `f32`/`f64` bytes → `T`, checked against `T`'s dtype.
fn values<T: Element>(t: &TensorView<'_>, key: &str) -> Result<Vec<T>, String> {
    let bytes = t.data();
    match (t.dtype(), T::NAME) {
        (Dtype::F32, "f32") => Ok(bytes
            .chunks_exact(4)
            .map(|c| T::narrow(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))))
            .collect()),
        (Dtype::F64, "f64") => Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                T::narrow(f64::from_le_bytes(b))
            })
            .collect()),
        (d, _) => Err(format!(
            "tensor {key} is {d:?}; a model of {} reads {} tensors",
            T::NAME,
            if T::NAME == "f64" { "F64" } else { "F32" }
        )),
    }
}

/// Loads the state_dict of a PyTorch `nn.Sequential` of `nn.Linear` layers (keys
/// `"0.weight"` `(out, in)`, `"0.bias"`, `"2.weight"`, …, in index order) with one
/// Keras activation per Linear, in order, as a [`Sequential`] of [`Dense`] layers named
/// `dense`, `dense_1`, ….
///
/// A state_dict has no architecture, so the activations are the caller's:
/// `nn.Sequential(Linear(8, 16), ReLU(), Linear(16, 4))` is
/// `load_safetensors::<f32>(path, &[Activation::Relu, Activation::Linear])`. Each layer
/// keeps PyTorch's `(out, in)` weight as it is and runs it as the transposed view of
/// Keras's `(in, out)` kernel (packed from that view on its second call), so loading
/// moves no weight; training, a constraint or `set_weights` brings it to Keras's
/// layout first, and `get_weights` / `save` give Keras's layout. The tensors' dtype
/// must be `T`'s (`F32` for `f32`, `F64` for `f64`).
///
/// ```no_run
/// use dense_kernel::layer::load_safetensors;
/// use dense_kernel::Activation::{Relu, Softmax};
/// let mut model = load_safetensors::<f32>("mlp.safetensors", &[Relu, Softmax])?;
/// let y = model.predict(&[0.0; 16], &[2, 8])?;
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
///
/// # Errors
/// [`DenseError::ModelFile`]: an unreadable or malformed file, a key that is not
/// `<index>.weight` / `<index>.bias`, a weight that is not 2-D, a bias or an input size
/// that does not fit its neighbour, the wrong dtype, or a number of activations that is
/// not the number of Linear layers.
pub fn load_safetensors<T: Element>(
    path: impl AsRef<Path>,
    activations: &[Activation],
) -> Result<Sequential<T>, DenseError> {
    let path = path.as_ref();
    let bytes = super::read_file(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_error(path, format!("not a readable safetensors file ({e})")))?;
    let mut linears: BTreeMap<usize, Linear<'_>> = BTreeMap::new();
    for (key, view) in st.iter() {
        let parsed = key
            .split_once('.')
            .and_then(|(i, what)| Some((i.parse::<usize>().ok()?, what)));
        let slot = match parsed {
            Some((i, "weight")) => &mut linears.entry(i).or_default().weight,
            Some((i, "bias")) => &mut linears.entry(i).or_default().bias,
            _ => {
                return Err(file_error(
                    path,
                    format!(
                        "tensor {key:?} is not an nn.Sequential Linear's \"<index>.weight\" \
                         or \"<index>.bias\""
                    ),
                ))
            }
        };
        *slot = Some(view);
    }
    check_activations(path, linears.len(), activations)?;
    // The layers are added unbuilt (no initializer runs); each then takes PyTorch's
    // (out, in) weight as it is and runs it through the transposed view.
    let mut model = Sequential::<T>::new();
    let mut prev_out: Option<usize> = None;
    let mut loaded = Vec::new();
    for ((i, lin), &act) in linears.iter().zip(activations) {
        let key = format!("{i}.weight");
        let w = lin
            .weight
            .as_ref()
            .ok_or_else(|| file_error(path, format!("{i}.bias has no {key}")))?;
        let &[out, inp] = w.shape() else {
            return Err(file_error(
                path,
                format!(
                    "{key} has shape {:?}; a Linear weight is (out, in)",
                    w.shape()
                ),
            ));
        };
        if out == 0 {
            return Err(file_error(path, format!("{key} has 0 outputs")));
        }
        if let Some(p) = prev_out.filter(|&p| p != inp) {
            return Err(file_error(
                path,
                format!("{key} takes {inp} inputs but the layer before gives {p}"),
            ));
        }
        let weight = values::<T>(w, &key).map_err(|e| file_error(path, e))?;
        let bias = match &lin.bias {
            Some(b) => {
                let bkey = format!("{i}.bias");
                if b.shape() != [out] {
                    return Err(file_error(
                        path,
                        format!("{bkey} has shape {:?}; {key} needs ({out},)", b.shape()),
                    ));
                }
                values::<T>(b, &bkey).map_err(|e| file_error(path, e))?
            }
            None => Vec::new(),
        };
        model = model.add(Dense::new(out).activation(act).use_bias(lin.bias.is_some()))?;
        loaded.push((inp, weight, bias));
        prev_out = Some(out);
    }
    let first_in = loaded.first().map_or(0, |l| l.0);
    for ((_, layer), (inp, weight, bias)) in model.layers.iter_mut().zip(loaded) {
        if let Layer::Dense(d) = layer {
            d.set_weights_owned(inp, weight, true, bias)?;
        }
    }
    model.input = Some(vec![first_in]);
    Ok(model)
}
