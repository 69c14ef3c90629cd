//! Keras's `Activation` layer, `Input`, and `Sequential` (also in the `Input`-first
//! functional form), with buffers reused across calls and Keras 3's `summary()` table.

use super::{Dense, Dropout, Tensor};
use crate::forward::apply_activation_rows;
use crate::{Activation, DenseError, Element};

/// Keras's `Activation(activation)` layer: the activation alone, on the last axis (the
/// row-wise ones, softmax & co., over it). No parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationLayer {
    activation: Activation,
    name: Option<String>,
}

impl ActivationLayer {
    /// The layer for `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer {
            activation,
            name: None,
        }
    }
    /// Its name (default `activation`, numbered `activation_1`, … in a model).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// Applies the activation in place to `data` of `shape` (rank ≥ 1, last axis the
    /// one row-wise activations run over).
    ///
    /// # Errors
    /// [`DenseError::InputShape`] if `data`'s length is not the shape's product.
    pub fn call_in_place<T: Element>(
        &self,
        data: &mut [T],
        shape: &[usize],
    ) -> Result<(), DenseError> {
        if shape.is_empty() || super::numel(shape).ok() != Some(data.len()) {
            return Err(DenseError::InputShape {
                shape: shape.to_vec(),
                len: data.len(),
                expected_last: None,
            });
        }
        apply_activation_rows(self.activation, data, shape[shape.len() - 1]);
        Ok(())
    }
}

/// Keras's `Input(shape)`: the per-example shape (no batch axis) a functional model
/// starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    shape: Vec<usize>,
}

impl Input {
    /// `keras.Input(shape)`; `Input::new(&[5])` is `Input((5,))`.
    pub fn new(shape: &[usize]) -> Self {
        Input {
            shape: shape.to_vec(),
        }
    }
}

/// Keras's `Flatten()`: every axis but the batch folded into one, `(batch, d1, …, dn)` →
/// `(batch, d1·…·dn)`, row-major as the data already is (nothing moves). No parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flatten {
    name: Option<String>,
}

impl Flatten {
    /// The layer.
    pub fn new() -> Self {
        Flatten { name: None }
    }
    /// Its name (default `flatten`, numbered `flatten_1`, … in a model).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// `(batch, d1, …, dn)` → `(batch, d1·…·dn)` in place (capacity ≥ 2 already).
pub(super) fn flatten_shape(shape: &mut Vec<usize>) {
    let rest = shape
        .iter()
        .skip(1)
        .fold(1usize, |a, &d| a.saturating_mul(d));
    shape.truncate(1);
    shape.push(rest);
}

/// A summary row: name, type, output shape per example (`None`: unknown), parameters
/// (`None`: unbuilt).
type SummaryRow = (String, &'static str, Option<Vec<usize>>, Option<usize>);

/// One layer of a [`Sequential`].
#[derive(Clone, Debug)]
#[non_exhaustive]
// A model holds a handful of layers, built once: boxing Dense would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Layer<T> {
    /// A [`Dense`] layer.
    Dense(Dense<T>),
    /// An [`ActivationLayer`].
    Activation(ActivationLayer),
    /// A [`Dropout`] layer.
    Dropout(Dropout),
    /// A [`Flatten`] layer.
    Flatten(Flatten),
}

impl<T> From<Flatten> for Layer<T> {
    fn from(f: Flatten) -> Self {
        Layer::Flatten(f)
    }
}

impl<T> From<Dropout> for Layer<T> {
    fn from(d: Dropout) -> Self {
        Layer::Dropout(d)
    }
}

impl<T> From<Dense<T>> for Layer<T> {
    fn from(d: Dense<T>) -> Self {
        Layer::Dense(d)
    }
}

impl<T> From<ActivationLayer> for Layer<T> {
    fn from(a: ActivationLayer) -> Self {
        Layer::Activation(a)
    }
}

/// A chain of layers: Keras's `Sequential([...])`, or (from [`Sequential::functional`])
/// the functional model `Model(Input(shape), layers(...))` of a simple chain.
///
/// Layers get Keras's names in order of kind (`dense`, `dense_1`, …, `activation`, …);
/// unlike Keras, the numbering is per model (there is no process-wide counter), which is
/// what Keras shows in a fresh session. Unseeded Dense layers get seed `model seed + i`.
///
/// ```
/// use dense_kernel::layer::{ActivationLayer, Dense, Sequential};
/// use dense_kernel::Activation::{Sigmoid, Softmax};
/// let mut model = Sequential::<f32>::new()
///     .add(Dense::new(7).input_dim(4))?
///     .add(ActivationLayer::new(Sigmoid))?
///     .add(Dense::new(13))?
///     .add(ActivationLayer::new(Sigmoid))?
///     .add(Dense::new(5))?
///     .add(ActivationLayer::new(Softmax))?;
/// assert_eq!(model.count_params()?, 35 + 104 + 70);
/// assert!(model.summary().contains("Total params: 209 (836.00 B)"));
/// let (y, shape) = model.forward(&[0.5; 8], &[2, 4])?;
/// assert_eq!(shape, &[2, 5]);
/// assert!((y[..5].iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sequential<T> {
    pub(super) name: String,
    pub(super) input: Option<Vec<usize>>,
    /// The functional model's InputLayer name (default `input_layer`).
    pub(super) input_name: Option<String>,
    pub(super) functional: bool,
    seed: u64,
    pub(super) layers: Vec<(String, Layer<T>)>,
    /// What `compile` set up: loss, optimizer and its state, workspaces.
    pub(super) training: Option<Box<super::train::Training<T>>>,
    /// Ping-pong buffers for the forward pass, kept across calls.
    bufs: [Vec<T>; 2],
    out_shape: Vec<usize>,
}

impl<T: Element> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Sequential<T> {
    /// An empty `Sequential` named `sequential`.
    pub fn new() -> Self {
        Sequential {
            name: "sequential".into(),
            input: None,
            input_name: None,
            functional: false,
            seed: 0,
            layers: Vec::new(),
            training: None,
            bufs: [Vec::new(), Vec::new()],
            out_shape: Vec::new(),
        }
    }

    /// The functional form `keras.Model(Input(shape), …)` of a chain, named `functional`;
    /// its summary starts with the `input_layer (InputLayer)` row, as Keras's does.
    pub fn functional(input: Input) -> Self {
        Sequential {
            name: "functional".into(),
            input: Some(input.shape),
            functional: true,
            ..Self::new()
        }
    }

    /// The model's name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The per-example input shape (no batch axis), once known (from an [`Input`], the
    /// first layer's `input_dim`, or a model file).
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input.as_deref()
    }

    /// The model's name (Keras's `model.name`).
    pub fn model_name(&self) -> &str {
        &self.name
    }

    /// The seed unseeded Dense layers derive theirs from (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Appends a layer, naming it if it has no name, and builds it if the shape it
    /// receives is known (from an [`Input`], or the first layer's `input_dim`).
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for a duplicate layer name, an `input_dim` on a
    /// layer that is not first, or a layer whose input size disagrees with the previous
    /// layer's output; the layer's build errors.
    // Keras's name for it (`model.add(layer)`), not `std::ops::Add`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Into<Layer<T>>) -> Result<Self, DenseError> {
        let mut layer = layer.into();
        let (kind, given) = match &layer {
            Layer::Dense(d) => ("dense", d.name_opt().map(str::to_owned)),
            Layer::Activation(a) => ("activation", a.name.clone()),
            Layer::Dropout(d) => {
                d.validate()?;
                ("dropout", d.name.clone())
            }
            Layer::Flatten(f) => ("flatten", f.name.clone()),
        };
        let name = match given {
            Some(n) => n,
            None => {
                let count = self
                    .layers
                    .iter()
                    .filter(|(_, l)| {
                        matches!(
                            (l, kind),
                            (Layer::Dense(_), "dense")
                                | (Layer::Activation(_), "activation")
                                | (Layer::Dropout(_), "dropout")
                                | (Layer::Flatten(_), "flatten")
                        )
                    })
                    .count();
                if count == 0 {
                    kind.to_owned()
                } else {
                    format!("{kind}_{count}")
                }
            }
        };
        if self.layers.iter().any(|(n, _)| *n == name) {
            return Err(DenseError::InvalidConfig {
                what: format!("the model already has a layer named {name:?}"),
            });
        }
        if let Layer::Dense(d) = &mut layer {
            if let Some(s) = d.input_shape_opt() {
                if !self.layers.is_empty() || self.functional {
                    return Err(DenseError::InvalidConfig {
                        what: format!(
                            "{name}: only a Sequential's first layer takes input_dim/input_shape"
                        ),
                    });
                }
                self.input = Some(s.to_vec());
            }
            if d.seed_opt().is_none() {
                let i = self.layers.len() as u64;
                *d = d.clone().seed(self.seed.wrapping_add(i));
            }
        }
        if let Layer::Dropout(d) = &mut layer {
            if d.seed_opt().is_none() {
                let i = self.layers.len() as u64;
                *d = d.clone().seed(self.seed.wrapping_add(i));
            }
        }
        self.layers.push((name, layer));
        self.build_known()?;
        Ok(self)
    }

    /// Builds every layer whose input shape is known; returns the output shape (per
    /// example, no batch axis) if the whole chain is known.
    fn build_known(&mut self) -> Result<Option<Vec<usize>>, DenseError> {
        let Some(mut shape) = self.input.clone() else {
            return Ok(None);
        };
        for (name, l) in &mut self.layers {
            if let Layer::Dense(d) = l {
                let last = *shape.last().ok_or_else(|| DenseError::InvalidConfig {
                    what: format!("{name}: Dense needs inputs of rank >= 2"),
                })?;
                d.build(last)?;
                *shape.last_mut().unwrap_or(&mut 0) = d.units();
            }
            if let Layer::Flatten(_) = l {
                // Per example: no batch axis.
                shape = vec![shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))];
            }
        }
        Ok(Some(shape))
    }

    /// Per-layer `(name, type, output shape per example, params)`, for [`summary`](Self::summary).
    fn rows(&self) -> Vec<SummaryRow> {
        let mut shape = self.input.clone();
        let mut rows = Vec::new();
        if self.functional {
            rows.push((
                self.input_name
                    .clone()
                    .unwrap_or_else(|| "input_layer".to_owned()),
                "InputLayer",
                shape.clone(),
                Some(0),
            ));
        }
        for (name, l) in &self.layers {
            match l {
                Layer::Dense(d) => {
                    if let Some(s) = shape.as_mut() {
                        if let Some(last) = s.last_mut() {
                            *last = d.units();
                        }
                    }
                    let params = d.count_params().ok();
                    rows.push((name.clone(), "Dense", shape.clone(), params));
                }
                Layer::Activation(_) => {
                    rows.push((name.clone(), "Activation", shape.clone(), Some(0)));
                }
                Layer::Dropout(_) => {
                    rows.push((name.clone(), "Dropout", shape.clone(), Some(0)));
                }
                Layer::Flatten(_) => {
                    if let Some(s) = shape.as_mut() {
                        *s = vec![s.iter().fold(1usize, |a, &d| a.saturating_mul(d))];
                    }
                    rows.push((name.clone(), "Flatten", shape.clone(), Some(0)));
                }
            }
        }
        rows
    }

    /// Total parameters (Keras's `count_params`).
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] if some Dense layer's input size is still unknown.
    pub fn count_params(&self) -> Result<usize, DenseError> {
        self.layers.iter().try_fold(0usize, |acc, (_, l)| match l {
            Layer::Dense(d) => Ok(acc.saturating_add(d.count_params()?)),
            Layer::Activation(_) | Layer::Dropout(_) | Layer::Flatten(_) => Ok(acc),
        })
    }

    /// The layers, in order, with their names.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &Layer<T>)> {
        self.layers.iter().map(|(n, l)| (n.as_str(), l))
    }

    /// Every Dense layer's weights in layer order, Keras's `model.get_weights()`:
    /// `[kernel (in, units), bias (units,)]` per layer (no bias without `use_bias`).
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] if a Dense layer is not built yet; allocation
    /// failures.
    pub fn get_weights(&mut self) -> Result<Vec<Tensor<T>>, DenseError> {
        let mut all = Vec::new();
        for (_, l) in &mut self.layers {
            if let Layer::Dense(d) = l {
                all.extend(d.get_weights()?);
            }
        }
        Ok(all)
    }

    /// The number of trainable variables: each Dense layer's kernel, and its bias.
    pub(super) fn trainable_count(&self) -> usize {
        self.layers
            .iter()
            .map(|(_, l)| match l {
                Layer::Dense(d) => 1 + usize::from(d.use_bias),
                _ => 0,
            })
            .sum()
    }

    /// Every regularization penalty of the last forward pass, summed in `f64`: what
    /// Keras adds to the loss it reports.
    pub(super) fn penalty_sum(&self) -> f64 {
        let mut p = 0.0;
        for (_, l) in &self.layers {
            if let Layer::Dense(d) = l {
                p += d.activity_penalty.unwrap_or(0.0);
                if let Some(r) = d.kernel_regularizer {
                    p += r.penalty(&d.kernel);
                }
                if let (Some(r), true) = (d.bias_regularizer, d.use_bias) {
                    p += r.penalty(&d.bias);
                }
            }
        }
        p
    }

    /// Sets every Dense layer's weights from Keras's `model.get_weights()` order.
    ///
    /// # Errors
    /// [`DenseError::WeightShape`] for the wrong number of arrays or a wrong shape.
    pub fn set_weights(&mut self, weights: &[Tensor<T>]) -> Result<(), DenseError> {
        let need = self.trainable_count();
        if weights.len() != need {
            return Err(DenseError::WeightShape {
                name: "weights",
                expected: vec![need],
                actual: vec![weights.len()],
            });
        }
        let mut at = 0;
        for (_, l) in &mut self.layers {
            if let Layer::Dense(d) = l {
                let n = 1 + usize::from(d.use_bias);
                d.set_weights(&weights[at..at + n])?;
                at += n;
            }
        }
        Ok(())
    }

    /// The layer called `name`, mutably (to set its weights, say).
    pub fn layer_mut(&mut self, name: &str) -> Option<&mut Layer<T>> {
        self.layers
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l)
    }

    /// The Dense layer called `name`, mutably.
    pub fn dense_mut(&mut self, name: &str) -> Option<&mut Dense<T>> {
        match self.layer_mut(name) {
            Some(Layer::Dense(d)) => Some(d),
            _ => None,
        }
    }

    /// Runs the chain on `input` of `shape` (batch axis first). Returns the output and
    /// its shape, borrowed from the model's buffers, which are reused by the next call
    /// (no allocation once they have grown to the largest layer's output).
    ///
    /// # Errors
    /// The layers' errors ([`DenseError::InputShape`] for a shape the first layer does
    /// not take).
    pub fn forward(
        &mut self,
        input: &[T],
        shape: &[usize],
    ) -> Result<(&[T], &[usize]), DenseError> {
        if super::numel(shape)? != input.len() {
            return Err(DenseError::InputShape {
                shape: shape.to_vec(),
                len: input.len(),
                expected_last: self.input.as_ref().and_then(|s| s.last().copied()),
            });
        }
        if let Some(s) = &self.input {
            if shape.len() != s.len() + 1 || shape[1..] != s[..] {
                return Err(DenseError::InputShape {
                    shape: shape.to_vec(),
                    len: input.len(),
                    expected_last: s.last().copied(),
                });
            }
        }
        // The running shape lives in the model's own buffer (no allocation per call).
        let mut cur_shape = std::mem::take(&mut self.out_shape);
        cur_shape.clear();
        cur_shape.extend_from_slice(shape);
        // Which buffer holds the current activations (None: still the caller's input).
        let mut cur: Option<usize> = None;
        for (_, l) in &mut self.layers {
            match l {
                Layer::Dense(d) => {
                    let src_len = cur.map_or(input.len(), |i| self.bufs[i].len());
                    if !d.is_built() && cur_shape.len() >= 2 {
                        d.build(cur_shape[cur_shape.len() - 1])?;
                    }
                    d.check_shape(&cur_shape)
                        .map_err(|_| DenseError::InputShape {
                            shape: cur_shape.clone(),
                            len: src_len,
                            expected_last: d.in_features(),
                        })?;
                    let (rows, len) = super::output_len(&cur_shape, d.units())?;
                    let dst_i = cur.map_or(0, |i| 1 - i);
                    let [b0, b1] = &mut self.bufs;
                    let (src, dst): (&[T], &mut Vec<T>) = match cur {
                        None => (input, b0),
                        Some(0) => (&b0[..], b1),
                        Some(_) => (&b1[..], b0),
                    };
                    let in_len = super::numel(&cur_shape)?;
                    let src = if cur.is_some() {
                        &src[..in_len.min(src.len())]
                    } else {
                        src
                    };
                    super::try_grow(dst, len, rows, d.units())?;
                    d.call_into(src, &cur_shape, &mut dst[..len])?;
                    cur = Some(dst_i);
                    *cur_shape.last_mut().unwrap_or(&mut 0) = d.units();
                }
                Layer::Activation(a) => {
                    let len = super::numel(&cur_shape)?;
                    let i = match cur {
                        Some(i) => i,
                        None => {
                            if input.len() != len {
                                return Err(DenseError::InputShape {
                                    shape: cur_shape.clone(),
                                    len: input.len(),
                                    expected_last: None,
                                });
                            }
                            copy_into(&mut self.bufs[0], input, &cur_shape)?;
                            0
                        }
                    };
                    a.call_in_place(&mut self.bufs[i][..len], &cur_shape)?;
                    cur = Some(i);
                }
                // Inference: the identity.
                Layer::Dropout(_) => {}
                Layer::Flatten(_) => flatten_shape(&mut cur_shape),
            }
        }
        let len = super::numel(&cur_shape)?;
        let i = match cur {
            Some(i) => i,
            None => {
                // No layers: the output is the input, copied into the model's buffer.
                copy_into(&mut self.bufs[0], input, &cur_shape)?;
                0
            }
        };
        self.out_shape = cur_shape;
        Ok((&self.bufs[i][..len], &self.out_shape))
    }

    /// [`forward`](Self::forward) into an owned tensor.
    ///
    /// # Errors
    /// As [`forward`](Self::forward).
    pub fn predict(&mut self, input: &[T], shape: &[usize]) -> Result<Tensor<T>, DenseError> {
        let (d, s) = self.forward(input, shape)?;
        let (rows, cols) = s
            .split_last()
            .map_or((1, 0), |(&c, _)| (d.len() / c.max(1), c));
        Ok(Tensor {
            shape: s.to_vec(),
            data: super::try_copy(d, rows, cols)?,
        })
    }

    /// The regularization penalties of every layer, in layer order (see
    /// [`Dense::losses`]).
    pub fn losses(&self) -> Vec<f64> {
        self.layers
            .iter()
            .flat_map(|(_, l)| match l {
                Layer::Dense(d) => d.losses(),
                Layer::Activation(_) | Layer::Dropout(_) | Layer::Flatten(_) => Vec::new(),
            })
            .collect()
    }

    /// Keras 3's `model.summary()` table, as Keras renders it at `line_length=76` (its
    /// choice on an 80-column terminal): one row per layer with its name and type, its
    /// output shape with `None` for the batch, its parameter count, then the totals with
    /// their size in bytes (4 per `f32` parameter, 8 per `f64`). A layer whose input size
    /// is unknown shows `?` and `0 (unbuilt)`, as in Keras.
    pub fn summary(&self) -> String {
        const W: [usize; 3] = [33, 24, 15];
        let line = |l: char, m: char, r: char, h: char| {
            let mut s = String::new();
            s.push(l);
            for (i, w) in W.iter().enumerate() {
                s.extend(std::iter::repeat_n(h, *w));
                s.push(if i + 1 == W.len() { r } else { m });
            }
            s.push('\n');
            s
        };
        let cells = |v: char, c: [&str; 3]| {
            format!(
                "{v} {:<w0$} {v} {:<w1$} {v} {:>w2$} {v}\n",
                c[0],
                c[1],
                c[2],
                w0 = W[0] - 2,
                w1 = W[1] - 2,
                w2 = W[2] - 2
            )
        };
        let mut s = format!("Model: \"{}\"\n", self.name);
        s += &line('┏', '┳', '┓', '━');
        s += &cells('┃', ["Layer (type)", "Output Shape", "Param #"]);
        s += &line('┡', '╇', '┩', '━');
        let rows = self.rows();
        for (i, (name, ty, shape, params)) in rows.iter().enumerate() {
            let shape = match shape {
                Some(sh) => {
                    let dims: Vec<String> = sh.iter().map(usize::to_string).collect();
                    format!("(None, {})", dims.join(", "))
                }
                None => "?".to_owned(),
            };
            let params = match params {
                Some(p) => thousands(*p),
                None => "0 (unbuilt)".to_owned(),
            };
            s += &cells('│', [&format!("{name} ({ty})"), &shape, &params]);
            if i + 1 < rows.len() {
                s += &line('├', '┼', '┤', '─');
            }
        }
        s += &line('└', '┴', '┘', '─');
        let total: usize = rows.iter().filter_map(|r| r.3).sum();
        let bytes = total as f64 * std::mem::size_of::<T>() as f64;
        s += &format!(
            " Total params: {} ({})\n",
            thousands(total),
            readable_size(bytes)
        );
        s += &format!(
            " Trainable params: {} ({})\n",
            thousands(total),
            readable_size(bytes)
        );
        s += " Non-trainable params: 0 (0.00 B)\n";
        s
    }
}

/// `buf` ← a copy of `input` (of `shape`), fallibly.
fn copy_into<T: Element>(buf: &mut Vec<T>, input: &[T], shape: &[usize]) -> Result<(), DenseError> {
    buf.clear();
    let cols = shape.last().copied().unwrap_or(1);
    buf.try_reserve(input.len())
        .map_err(|_| DenseError::AllocationFailed {
            rows: input.len() / cols.max(1),
            cols,
        })?;
    buf.extend_from_slice(input);
    Ok(())
}

/// `1234567` → `"1,234,567"`, as Python's `f"{n:,}"`.
fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut s = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// Keras's `readable_memory_size`: 1024-based units, two decimals.
fn readable_size(mut b: f64) -> String {
    for unit in ["B", "KB", "MB", "GB", "TB"] {
        if b / 1024.0 < 1.0 {
            return format!("{b:.2} {unit}");
        }
        b /= 1024.0;
    }
    format!("{b:.2} PB")
}

#[cfg(test)]
mod tests {
    use super::{readable_size, thousands};

    #[test]
    fn keras_number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(209), "209");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(readable_size(836.0), "836.00 B");
        assert_eq!(readable_size(1024.0), "1.00 KB");
        assert_eq!(readable_size(4.0 * 1_234_567.0), "4.71 MB");
    }
}
