//! Training a [`Sequential`]: Keras's `compile`, `train_on_batch`, `fit` and
//! `evaluate`, over the kernel-level backward pass, with every buffer kept in the model
//! (no allocation per step once the first step has sized them).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use super::optimizer::Clip;
use super::rng::Rng;
use super::{Layer, Loss, Metric, Optimizer, Sequential};
use crate::backward::{
    activation_backward, backward_packed, dense_backward_with, f32_slice, f32s,
    forward_train_packed, SliceGrads, TrainPacks,
};
use crate::{dense_forward_train, DenseError, Element, Gradients, MatMut, MatRef};

/// What [`Sequential::compile_with`] takes besides the optimizer and the loss: Keras's
/// `metrics` and the optimizer's gradient clipping (`clipnorm`, `clipvalue`,
/// `global_clipnorm`; at most one).
///
/// ```
/// use dense_kernel::layer::{CompileOptions, Metric};
/// let o = CompileOptions::new().metrics(&[Metric::Accuracy]).clipnorm(1.0);
/// # let _ = o;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompileOptions {
    metrics: Vec<Metric>,
    clip: Clip,
}

impl CompileOptions {
    /// No metrics, no clipping.
    pub fn new() -> Self {
        Self::default()
    }
    /// The metrics `fit` and `evaluate` report (Keras's `metrics=[...]`).
    pub fn metrics(mut self, metrics: &[Metric]) -> Self {
        self.metrics = metrics.to_vec();
        self
    }
    /// Each variable's gradient scaled to an L2 norm of at most `c`.
    pub fn clipnorm(mut self, c: f64) -> Self {
        self.clip.clipnorm = Some(c);
        self
    }
    /// Each gradient element clipped to `[−c, c]`.
    pub fn clipvalue(mut self, c: f64) -> Self {
        self.clip.clipvalue = Some(c);
        self
    }
    /// All gradients scaled together to a global L2 norm of at most `c`.
    pub fn global_clipnorm(mut self, c: f64) -> Self {
        self.clip.global_clipnorm = Some(c);
        self
    }
}

/// Keras's `fit` arguments: `batch_size` (32), `epochs` (1), `verbose` (1: a progress
/// bar per epoch on standard output; 2: one line per epoch; 0: silent), `shuffle`
/// (true; the order comes from `seed`, 0 by default), `validation_split` (0: the last
/// fraction of the samples, taken before shuffling, as Keras does) or
/// `validation_data`.
///
/// ```
/// use dense_kernel::layer::FitOptions;
/// let o: FitOptions = FitOptions::new().batch_size(16).epochs(3).verbose(0).seed(7);
/// # let _ = o;
/// ```
#[derive(Clone, Debug)]
pub struct FitOptions<'a, T = f32> {
    batch_size: usize,
    epochs: usize,
    verbose: u8,
    shuffle: bool,
    seed: u64,
    validation_split: f64,
    validation_data: Option<Data<'a, T>>,
}

/// Borrowed samples: `(x, x_shape, y, y_shape)`.
type Data<'a, T> = (&'a [T], &'a [usize], &'a [T], &'a [usize]);

impl<T> Default for FitOptions<'_, T> {
    fn default() -> Self {
        FitOptions {
            batch_size: 32,
            epochs: 1,
            verbose: 1,
            shuffle: true,
            seed: 0,
            validation_split: 0.0,
            validation_data: None,
        }
    }
}

impl<'a, T> FitOptions<'a, T> {
    /// Keras's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Samples per step (the last batch of an epoch may be smaller).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Passes over the data.
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }
    /// 0 silent, 1 progress bar, 2 one line per epoch.
    pub fn verbose(mut self, v: u8) -> Self {
        self.verbose = v;
        self
    }
    /// Shuffle the training samples before each epoch.
    pub fn shuffle(mut self, s: bool) -> Self {
        self.shuffle = s;
        self
    }
    /// The seed of the shuffling.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// The fraction of the samples (the last ones) held out for validation.
    pub fn validation_split(mut self, f: f64) -> Self {
        self.validation_split = f;
        self
    }
    /// Samples to validate on after each epoch (instead of a split).
    pub fn validation_data(
        mut self,
        x: &'a [T],
        x_shape: &'a [usize],
        y: &'a [T],
        y_shape: &'a [usize],
    ) -> Self {
        self.validation_data = Some((x, x_shape, y, y_shape));
        self
    }
}

/// What `fit` returns: Keras's `history.history`, one value per epoch for `loss`, each
/// metric, and with validation `val_loss` and `val_<metric>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    series: Vec<(String, Vec<f64>)>,
}

impl History {
    /// The values of `key` (`"loss"`, `"accuracy"`, `"val_loss"`, …), one per epoch.
    pub fn get(&self, key: &str) -> Option<&[f64]> {
        self.series
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &v[..])
    }
    /// The keys, in the order Keras's progress bar shows them.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.series.iter().map(|(k, _)| k.as_str())
    }
    fn push(&mut self, key: &str, v: f64) {
        match self.series.iter_mut().find(|(k, _)| k == key) {
            Some((_, s)) => s.push(v),
            None => self.series.push((key.to_owned(), vec![v])),
        }
    }
}

/// The training state `compile` creates: part of the model, cloned with it.
#[derive(Clone, Debug)]
pub(crate) struct Training<T> {
    optimizer: Optimizer,
    loss: Loss,
    metrics: Vec<Metric>,
    clip: Clip,
    /// Optimizer steps taken (Keras's `optimizer.iterations`).
    iterations: u64,
    /// Per trainable variable (each Dense's kernel, then its bias), its slot arrays.
    slots: Vec<Vec<Vec<T>>>,
    /// Per layer, the Dropout mask generator.
    rngs: Vec<Option<Rng>>,
    /// Per layer, the packed weights of an `f32` Dense layer's steps.
    packs: Vec<TrainPacks>,
    ws: Workspace<T>,
    fit: FitBufs<T>,
}

/// What a model file keeps of the training state: Keras's `compile_config` and the
/// optimizer's variables.
pub(super) struct SavedTraining<'a, T> {
    pub(super) optimizer: Optimizer,
    pub(super) loss: Loss,
    pub(super) metrics: &'a [Metric],
    pub(super) clip: (Option<f64>, Option<f64>, Option<f64>),
    pub(super) iterations: u64,
    /// Per variable (each Dense's kernel, then its bias), its slots in the crate's order.
    pub(super) slots: &'a [Vec<Vec<T>>],
}

impl<T: Element> Sequential<T> {
    /// The training state for a model file, if the model is compiled.
    pub(super) fn saved_training(&self) -> Option<SavedTraining<'_, T>> {
        let tr = self.training.as_deref()?;
        Some(SavedTraining {
            optimizer: tr.optimizer,
            loss: tr.loss,
            metrics: &tr.metrics,
            clip: (tr.clip.clipnorm, tr.clip.clipvalue, tr.clip.global_clipnorm),
            iterations: tr.iterations,
            slots: &tr.slots,
        })
    }

    /// After `compile`: the step count and slots a model file saved (one entry per
    /// variable, each with the optimizer's slots, of the variable's length).
    pub(super) fn restore_training(
        &mut self,
        iterations: u64,
        slots: Vec<Vec<Vec<T>>>,
    ) -> Result<(), DenseError> {
        let tr = self
            .training
            .as_deref_mut()
            .ok_or(DenseError::NotCompiled)?;
        tr.iterations = iterations;
        tr.slots = slots;
        Ok(())
    }
}

/// Buffers reused from step to step.
#[derive(Clone, Debug, Default)]
struct Workspace<T> {
    /// Per layer: its output, and (Dense) its pre-activation or (Dropout) its mask.
    outs: Vec<Vec<T>>,
    zs: Vec<Vec<T>>,
    shapes: Vec<Vec<usize>>,
    dy: Vec<T>,
    dz: Vec<T>,
    dx: Vec<T>,
    /// Per trainable variable, its gradient.
    grads: Vec<Vec<T>>,
    scratch: Vec<f64>,
    /// `evaluate`'s batch shapes.
    ex_shape: Vec<usize>,
    ey_shape: Vec<usize>,
}

/// `fit`'s buffers: the gathered batch, the sample order, the metric sums.
#[derive(Clone, Debug, Default)]
struct FitBufs<T> {
    x: Vec<T>,
    y: Vec<T>,
    x_shape: Vec<usize>,
    y_shape: Vec<usize>,
    order: Vec<usize>,
    sums: Vec<f64>,
    val_sums: Vec<f64>,
    line: String,
}

fn input_error(shape: &[usize], len: usize) -> DenseError {
    DenseError::InputShape {
        shape: shape.to_vec(),
        len,
        expected_last: None,
    }
}

/// Rank ≥ 1 and data of the shape's size.
fn check_data<T>(data: &[T], shape: &[usize]) -> Result<(), DenseError> {
    if shape.is_empty() || super::numel(shape)? != data.len() {
        return Err(input_error(shape, data.len()));
    }
    Ok(())
}

impl<T: Element> Sequential<T> {
    /// Keras's `model.compile(optimizer, loss)`: sets up training (a fresh optimizer
    /// state, step count 0). See [`compile_with`](Self::compile_with) for metrics and
    /// clipping.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for an optimizer or loss parameter Keras refuses.
    pub fn compile(&mut self, optimizer: Optimizer, loss: Loss) -> Result<(), DenseError> {
        self.compile_with(optimizer, loss, &CompileOptions::default())
    }

    /// `compile` with metrics and gradient clipping.
    ///
    /// ```
    /// use dense_kernel::layer::{CompileOptions, Dense, Metric, Sequential};
    /// use dense_kernel::Activation;
    /// let mut model = Sequential::<f32>::new()
    ///     .add(Dense::new(3).activation(Activation::Softmax).input_dim(2))?;
    /// model.compile_with("adam".parse()?, "categorical_crossentropy".parse()?,
    ///     &CompileOptions::new().metrics(&[Metric::Accuracy]))?;
    /// let x = [1.0f32, 0.0, 0.0, 1.0];
    /// let y = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
    /// let first = model.train_on_batch(&x, &[2, 2], &y, &[2, 3])?;
    /// for _ in 0..200 {
    ///     model.train_on_batch(&x, &[2, 2], &y, &[2, 3])?;
    /// }
    /// assert!(model.evaluate(&x, &[2, 2], &y, &[2, 3])? < first);
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for a parameter Keras refuses or more than one kind
    /// of clipping.
    pub fn compile_with(
        &mut self,
        optimizer: Optimizer,
        loss: Loss,
        options: &CompileOptions,
    ) -> Result<(), DenseError> {
        optimizer.validate()?;
        loss.validate()?;
        options.clip.validate()?;
        let rngs = self
            .layers
            .iter()
            .map(|(_, l)| match l {
                Layer::Dropout(d) => Some(Rng::new(d.seed_opt().unwrap_or(0))),
                _ => None,
            })
            .collect();
        self.training = Some(Box::new(Training {
            optimizer,
            loss,
            metrics: options.metrics.clone(),
            clip: options.clip,
            iterations: 0,
            slots: Vec::new(),
            rngs,
            packs: Vec::new(),
            ws: Workspace::default(),
            fit: FitBufs::default(),
        }));
        Ok(())
    }

    /// The optimizer steps taken since `compile` (Keras's `optimizer.iterations`).
    pub fn iterations(&self) -> u64 {
        self.training.as_ref().map_or(0, |t| t.iterations)
    }

    /// Keras's `train_on_batch(x, y)`: one optimizer step on this batch. Returns the loss
    /// Keras returns: the batch's loss plus every regularization penalty, computed before
    /// the update.
    ///
    /// # Errors
    /// [`DenseError::NotCompiled`]; [`DenseError::InputShape`] for `x` the model does
    /// not take; [`DenseError::TargetShape`] / [`DenseError::InvalidLabel`] for targets
    /// that do not fit the loss; allocation failures.
    pub fn train_on_batch(
        &mut self,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
    ) -> Result<f64, DenseError> {
        let mut tr = self.training.take().ok_or(DenseError::NotCompiled)?;
        let r = self.step(&mut tr, x, x_shape, y, y_shape, None);
        self.training = Some(tr);
        r
    }

    /// The model's output and its shape for `x`, checked against the model's input.
    fn check_input(&self, x: &[T], x_shape: &[usize]) -> Result<(), DenseError> {
        if x_shape.len() < 2 || super::numel(x_shape)? != x.len() {
            return Err(input_error(x_shape, x.len()));
        }
        if let Some(s) = &self.input {
            if x_shape.len() != s.len() + 1 || x_shape[1..] != s[..] {
                return Err(DenseError::InputShape {
                    shape: x_shape.to_vec(),
                    len: x.len(),
                    expected_last: s.last().copied(),
                });
            }
        }
        Ok(())
    }

    /// One training step; adds each metric's sum over the batch to `metric_sums`.
    fn step(
        &mut self,
        tr: &mut Training<T>,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        metric_sums: Option<&mut [f64]>,
    ) -> Result<f64, DenseError> {
        self.check_input(x, x_shape)?;
        check_data(y, y_shape)?;
        let nl = self.layers.len();
        let ws = &mut tr.ws;
        ws.outs.resize_with(nl, Vec::new);
        ws.zs.resize_with(nl, Vec::new);
        ws.shapes.resize_with(nl, Vec::new);
        tr.packs.resize_with(nl, TrainPacks::default);
        // Layers added after `compile` get their Dropout generators here.
        for i in tr.rngs.len()..nl {
            tr.rngs.push(match &self.layers[i].1 {
                Layer::Dropout(d) => Some(Rng::new(d.seed_opt().unwrap_or(0))),
                _ => None,
            });
        }
        let batch = x_shape[0] as f64;

        // Forward, keeping every layer's output (and Dense pre-activations).
        for i in 0..nl {
            let (done, rest) = ws.outs.split_at_mut(i);
            let out = &mut rest[0];
            let (shapes_done, shapes_rest) = ws.shapes.split_at_mut(i);
            let in_shape: &[usize] = if i == 0 { x_shape } else { &shapes_done[i - 1] };
            let in_len = super::numel(in_shape)?;
            let input: &[T] = if i == 0 { x } else { &done[i - 1][..in_len] };
            let out_shape = &mut shapes_rest[0];
            out_shape.clear();
            out_shape.extend_from_slice(in_shape);
            match &mut self.layers[i].1 {
                Layer::Dense(d) => {
                    let k = in_shape[in_shape.len() - 1];
                    if !d.is_built() {
                        d.build(k)?;
                    }
                    // A PyTorch-layout kernel (load_safetensors) trains in Keras's.
                    d.make_keras_layout()?;
                    if d.in_features != Some(k) {
                        return Err(DenseError::InputShape {
                            shape: in_shape.to_vec(),
                            len: in_len,
                            expected_last: d.in_features,
                        });
                    }
                    let n = d.units;
                    *out_shape.last_mut().unwrap_or(&mut 0) = n;
                    let (rows, len) = super::output_len(in_shape, n)?;
                    super::try_grow(out, len, rows, n)?;
                    super::try_grow(&mut ws.zs[i], len, rows, n)?;
                    let bias = d.use_bias.then_some(&d.bias[..]);
                    match (T::as_f32s(input), T::as_f32s(&d.kernel)) {
                        // f32: the packed path, weights repacked into reused buffers.
                        (Some(xf), Some(wf)) => forward_train_packed(
                            &mut tr.packs[i],
                            MatRef::from_slice(xf, rows, k)?,
                            MatRef::from_slice(wf, k, n)?,
                            bias.map(f32s).transpose()?,
                            d.activation,
                            f32_slice(&mut ws.zs[i][..len])?,
                            f32_slice(&mut out[..len])?,
                        )?,
                        _ => dense_forward_train(
                            MatRef::from_slice(input, rows, k)?,
                            MatRef::from_slice(&d.kernel, k, n)?,
                            bias,
                            d.activation,
                            MatMut::from_slice(&mut ws.zs[i][..len], rows, n)?,
                            MatMut::from_slice(&mut out[..len], rows, n)?,
                        )?,
                    }
                    d.activity_penalty = d.activity_regularizer.map(|r| {
                        if batch == 0.0 {
                            0.0
                        } else {
                            r.penalty(&out[..len]) / batch
                        }
                    });
                }
                Layer::Activation(a) => {
                    let cols = in_shape[in_shape.len() - 1];
                    super::try_grow(out, in_len, in_len / cols.max(1), cols)?;
                    out[..in_len].copy_from_slice(input);
                    a.call_in_place(&mut out[..in_len], in_shape)?;
                }
                Layer::Flatten(_) => {
                    let cols = in_shape[in_shape.len() - 1];
                    super::try_grow(out, in_len, in_len / cols.max(1), cols)?;
                    out[..in_len].copy_from_slice(input);
                    super::model::flatten_shape(out_shape);
                }
                Layer::Dropout(d) => {
                    let cols = in_shape[in_shape.len() - 1];
                    let rows = in_len / cols.max(1);
                    super::try_grow(out, in_len, rows, cols)?;
                    super::try_grow(&mut ws.zs[i], in_len, rows, cols)?;
                    let mask = &mut ws.zs[i][..in_len];
                    let rate = d.rate();
                    let keep = 1.0 - rate;
                    let rng = tr.rngs.get_mut(i).and_then(Option::as_mut);
                    match rng {
                        Some(rng) if rate > 0.0 => {
                            for ((o, m), v) in out.iter_mut().zip(mask.iter_mut()).zip(input) {
                                let kept = rng.uniform() < keep;
                                *m = T::narrow(f64::from(u8::from(kept)));
                                *o = if kept {
                                    T::narrow(v.widen() / keep)
                                } else {
                                    T::zero()
                                };
                            }
                        }
                        _ => {
                            mask.fill(T::narrow(1.0));
                            out[..in_len].copy_from_slice(input);
                        }
                    }
                }
            }
        }

        // The loss and its gradient with respect to the output.
        let (out, out_shape): (&[T], &[usize]) = match nl {
            0 => (x, x_shape),
            _ => {
                let s = &ws.shapes[nl - 1];
                (&ws.outs[nl - 1][..super::numel(s)?], s)
            }
        };
        tr.loss.check_target(y_shape, out_shape)?;
        let cols = out_shape[out_shape.len() - 1];
        super::try_grow(&mut ws.dy, out.len(), out.len() / cols.max(1), cols)?;
        let mut value = tr
            .loss
            .value_and_grad(y, out, cols, Some(&mut ws.dy[..out.len()]))?;
        if let Some(sums) = metric_sums {
            for (s, m) in sums.iter_mut().zip(&tr.metrics) {
                *s += m.resolve(y_shape, out_shape).sum(y, out, cols)?;
            }
        }
        value += self.penalty_sum();

        // Backward, from the last layer to the first Dense.
        let n_vars = self.trainable_count();
        ws.grads.resize_with(n_vars, Vec::new);
        let first_dense = self
            .layers
            .iter()
            .position(|(_, l)| matches!(l, Layer::Dense(_)));
        let mut var = n_vars;
        if let Some(fd) = first_dense {
            for i in (fd..nl).rev() {
                let in_shape: &[usize] = if i == 0 { x_shape } else { &ws.shapes[i - 1] };
                let in_len = super::numel(in_shape)?;
                let input: &[T] = if i == 0 { x } else { &ws.outs[i - 1][..in_len] };
                let cols_in = in_shape[in_shape.len() - 1];
                let rows = in_len / cols_in.max(1);
                match &self.layers[i].1 {
                    Layer::Dense(d) => {
                        let (k, n) = (cols_in, d.units);
                        let len = rows * n;
                        if let Some(r) = d.activity_regularizer {
                            if batch > 0.0 {
                                r.add_gradient(&ws.outs[i][..len], &mut ws.dy[..len], 1.0 / batch);
                            }
                        }
                        var -= 1 + usize::from(d.use_bias);
                        super::try_grow(&mut ws.dz, len, rows, n)?;
                        let need_dx = i > fd;
                        if need_dx {
                            super::try_grow(&mut ws.dx, in_len, rows, k)?;
                        }
                        let (gk, gb) = ws.grads[var..].split_at_mut(1);
                        super::try_grow(&mut gk[0], k * n, k, n)?;
                        let bias_grad = match gb.first_mut() {
                            Some(b) if d.use_bias => {
                                super::try_grow(b, n, 1, n)?;
                                Some(&mut b[..n])
                            }
                            _ => None,
                        };
                        let dx = if need_dx {
                            Some(&mut ws.dx[..in_len])
                        } else {
                            None
                        };
                        match (T::as_f32s(input), T::as_f32s(&d.kernel)) {
                            (Some(xf), Some(wf)) => backward_packed(
                                &mut tr.packs[i],
                                MatRef::from_slice(xf, rows, k)?,
                                MatRef::from_slice(wf, k, n)?,
                                d.activation,
                                f32s(&ws.zs[i][..len])?,
                                f32s(&ws.dy[..len])?,
                                SliceGrads {
                                    dz: f32_slice(&mut ws.dz[..len])?,
                                    dx: dx.map(f32_slice).transpose()?,
                                    dw: f32_slice(&mut gk[0][..k * n])?,
                                    db: bias_grad.map(f32_slice).transpose()?,
                                },
                                &mut ws.scratch,
                            )?,
                            _ => dense_backward_with(
                                MatRef::from_slice(input, rows, k)?,
                                MatRef::from_slice(&d.kernel, k, n)?,
                                d.activation,
                                MatRef::from_slice(&ws.zs[i][..len], rows, n)?,
                                MatRef::from_slice(&ws.dy[..len], rows, n)?,
                                Gradients {
                                    pre_activation: MatMut::from_slice(&mut ws.dz[..len], rows, n)?,
                                    input: dx
                                        .map(|d| MatMut::from_slice(d, rows, k))
                                        .transpose()?,
                                    kernel: MatMut::from_slice(&mut gk[0][..k * n], k, n)?,
                                    bias: bias_grad,
                                },
                                &mut ws.scratch,
                            )?,
                        }
                        if let Some(r) = d.kernel_regularizer {
                            r.add_gradient(&d.kernel, &mut gk[0][..k * n], 1.0);
                        }
                        if let (Some(r), Some(b)) = (d.bias_regularizer, gb.first_mut()) {
                            if d.use_bias {
                                r.add_gradient(&d.bias, &mut b[..n], 1.0);
                            }
                        }
                        if need_dx {
                            std::mem::swap(&mut ws.dy, &mut ws.dx);
                        }
                    }
                    Layer::Activation(a) => {
                        super::try_grow(&mut ws.dx, in_len, rows, cols_in)?;
                        activation_backward(
                            a.activation(),
                            input,
                            &ws.dy[..in_len],
                            &mut ws.dx[..in_len],
                            cols_in,
                            &mut ws.scratch,
                        );
                        std::mem::swap(&mut ws.dy, &mut ws.dx);
                    }
                    // A reshape: the gradient passes through as it is.
                    Layer::Flatten(_) => {}
                    Layer::Dropout(d) => {
                        let keep = 1.0 - d.rate();
                        let mask = &ws.zs[i][..in_len];
                        for (g, m) in ws.dy[..in_len].iter_mut().zip(mask) {
                            *g = if m.widen() != 0.0 {
                                T::narrow(g.widen() / keep)
                            } else {
                                T::zero()
                            };
                        }
                    }
                }
            }
        }

        // The update: clipping, the optimizer's rule, then the constraints.
        let kinds = tr.optimizer.slots();
        // Fresh slots on the first step, and if the variables changed since (a layer
        // added or rebuilt after `compile`).
        let stale = tr.slots.len() != n_vars
            || tr
                .slots
                .iter()
                .zip(&ws.grads)
                .any(|(s, g)| s.len() != kinds.count || s.iter().any(|a| a.len() != g.len()));
        if stale {
            tr.slots.clear();
            for g in &ws.grads {
                let mut s = Vec::with_capacity(kinds.count);
                for j in 0..kinds.count {
                    let init = if j == 0 { kinds.first_init } else { 0.0 };
                    s.push(vec![T::narrow(init); g.len()]);
                }
                tr.slots.push(s);
            }
        }
        let global = tr.clip.global_scale(ws.grads.iter().map(|g| &g[..]));
        tr.iterations += 1;
        let t = tr.iterations;
        let mut v = 0;
        for (_, l) in &mut self.layers {
            if let Layer::Dense(d) = l {
                let kn = d.kernel.len();
                let g = &mut ws.grads[v][..kn];
                tr.clip.apply(g, global);
                tr.optimizer.update(t, &mut d.kernel, g, &mut tr.slots[v]);
                v += 1;
                if d.use_bias {
                    let n = d.bias.len();
                    let g = &mut ws.grads[v][..n];
                    tr.clip.apply(g, global);
                    tr.optimizer.update(t, &mut d.bias, g, &mut tr.slots[v]);
                    v += 1;
                }
                d.weights_changed();
                d.apply_constraints()?;
            }
        }
        Ok(value)
    }

    /// Keras's `model.evaluate(x, y)` with its default batch size 32: the loss (plus the
    /// regularization penalties, as Keras reports it), the mean over the batches
    /// weighted by their sizes. Dropout is the identity.
    ///
    /// # Errors
    /// As [`train_on_batch`](Self::train_on_batch).
    pub fn evaluate(
        &mut self,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
    ) -> Result<f64, DenseError> {
        Ok(self.evaluate_with(x, x_shape, y, y_shape, 32)?[0].1)
    }

    /// `evaluate` with a batch size, returning the loss and each compiled metric by name
    /// (`[("loss", …), ("accuracy", …)]`).
    ///
    /// # Errors
    /// As [`train_on_batch`](Self::train_on_batch); [`DenseError::InvalidConfig`] for a
    /// batch size of 0.
    pub fn evaluate_with(
        &mut self,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        batch_size: usize,
    ) -> Result<Vec<(String, f64)>, DenseError> {
        let tr = self.training.as_ref().ok_or(DenseError::NotCompiled)?;
        let names: Vec<String> = tr.metrics.iter().map(Metric::to_string).collect();
        let mut sums = vec![0.0; names.len()];
        let loss = self.evaluate_sums(x, x_shape, y, y_shape, batch_size, &mut sums)?;
        let n = x_shape.first().copied().unwrap_or(0) as f64;
        let mut out = vec![("loss".to_owned(), loss)];
        for (name, s) in names.into_iter().zip(sums) {
            out.push((name, if n > 0.0 { s / n } else { 0.0 }));
        }
        Ok(out)
    }

    /// The weighted mean loss over batches; metric sums (over examples) added to `sums`.
    fn evaluate_sums(
        &mut self,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        batch_size: usize,
        sums: &mut [f64],
    ) -> Result<f64, DenseError> {
        let mut tr = self.training.take().ok_or(DenseError::NotCompiled)?;
        let r = self.evaluate_inner(&mut tr, x, x_shape, y, y_shape, batch_size, sums);
        self.training = Some(tr);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_inner(
        &mut self,
        tr: &mut Training<T>,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        batch_size: usize,
        sums: &mut [f64],
    ) -> Result<f64, DenseError> {
        if batch_size == 0 {
            return Err(DenseError::InvalidConfig {
                what: "batch_size must be at least 1".into(),
            });
        }
        self.check_input(x, x_shape)?;
        check_data(y, y_shape)?;
        let n = x_shape[0];
        if y_shape[0] != n {
            return Err(DenseError::TargetShape {
                shape: y_shape.to_vec(),
                prediction: x_shape.to_vec(),
                loss: tr.loss.to_string(),
            });
        }
        let (xr, yr) = (x.len() / n.max(1), y.len() / n.max(1));
        let mut total = 0.0;
        let mut start = 0;
        while start < n {
            let b = batch_size.min(n - start);
            set_batch(&mut tr.ws.ex_shape, x_shape, b);
            set_batch(&mut tr.ws.ey_shape, y_shape, b);
            let xb = &x[start * xr..(start + b) * xr];
            let yb = &y[start * yr..(start + b) * yr];
            let (out, out_shape) = self.forward(xb, &tr.ws.ex_shape)?;
            tr.loss.check_target(&tr.ws.ey_shape, out_shape)?;
            let cols = out_shape[out_shape.len() - 1];
            let mut value = tr.loss.value_and_grad(yb, out, cols, None)?;
            for (s, m) in sums.iter_mut().zip(&tr.metrics) {
                *s += m.resolve(&tr.ws.ey_shape, out_shape).sum(yb, out, cols)?;
            }
            value += self.penalty_sum();
            total += value * b as f64;
            start += b;
        }
        Ok(if n > 0 { total / n as f64 } else { 0.0 })
    }

    /// Keras's `model.fit(x, y, batch_size, epochs, verbose, shuffle,
    /// validation_split / validation_data)`: `epochs` passes over the training samples
    /// in batches (the last one partial), one optimizer step per batch. Returns the
    /// [`History`]: per epoch the mean loss over the batches weighted by their sizes (the
    /// penalties included, as Keras reports it), each metric over the epoch, and the
    /// validation loss and metrics after the epoch.
    ///
    /// ```
    /// use dense_kernel::layer::{Dense, FitOptions, Sequential};
    /// use dense_kernel::Activation;
    /// // y = 2x − 1 from 16 samples.
    /// let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
    /// let y: Vec<f32> = x.iter().map(|v| 2.0 * v - 1.0).collect();
    /// let mut model = Sequential::<f32>::new().add(Dense::new(1).input_dim(1))?;
    /// model.compile("sgd".parse()?, "mse".parse()?)?;
    /// let opts = FitOptions::new().batch_size(4).epochs(50).verbose(0);
    /// let h = model.fit(&x, &[16, 1], &y, &[16, 1], &opts)?;
    /// let loss = h.get("loss").unwrap();
    /// assert_eq!(loss.len(), 50);
    /// assert!(loss[49] < loss[0] / 10.0);
    /// # Ok::<(), dense_kernel::DenseError>(())
    /// ```
    ///
    /// # Errors
    /// As [`train_on_batch`](Self::train_on_batch); [`DenseError::InvalidConfig`] for a
    /// batch size of 0 or a validation split outside `[0, 1)`;
    /// [`DenseError::TargetShape`] if `x` and `y` hold different numbers of samples.
    pub fn fit(
        &mut self,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        options: &FitOptions<'_, T>,
    ) -> Result<History, DenseError> {
        let mut tr = self.training.take().ok_or(DenseError::NotCompiled)?;
        let r = self.fit_inner(&mut tr, x, x_shape, y, y_shape, options);
        self.training = Some(tr);
        r
    }

    fn fit_inner(
        &mut self,
        tr: &mut Training<T>,
        x: &[T],
        x_shape: &[usize],
        y: &[T],
        y_shape: &[usize],
        o: &FitOptions<'_, T>,
    ) -> Result<History, DenseError> {
        if o.batch_size == 0 || !(0.0..1.0).contains(&o.validation_split) {
            return Err(DenseError::InvalidConfig {
                what: format!(
                    "fit: batch_size {} must be >= 1 and validation_split {} in [0, 1)",
                    o.batch_size, o.validation_split
                ),
            });
        }
        check_data(x, x_shape)?;
        check_data(y, y_shape)?;
        let n_all = x_shape[0];
        if y_shape[0] != n_all {
            return Err(DenseError::TargetShape {
                shape: y_shape.to_vec(),
                prediction: x_shape.to_vec(),
                loss: tr.loss.to_string(),
            });
        }
        let (xr, yr) = (x.len() / n_all.max(1), y.len() / n_all.max(1));
        // Keras: the validation samples are the last ones, split before shuffling.
        let n = if o.validation_data.is_none() && o.validation_split > 0.0 {
            (n_all as f64 * (1.0 - o.validation_split)).floor() as usize
        } else {
            n_all
        };
        let mut val_shapes = (x_shape.to_vec(), y_shape.to_vec());
        val_shapes.0[0] = n_all - n;
        val_shapes.1[0] = n_all - n;
        let validation: Option<Data<'_, T>> = match o.validation_data {
            Some(d) => Some(d),
            None if n < n_all => Some((&x[n * xr..], &val_shapes.0, &y[n * yr..], &val_shapes.1)),
            None => None,
        };

        let names: Vec<String> = tr.metrics.iter().map(Metric::to_string).collect();
        // The logs in Keras's (alphabetical) order: `None` is the loss.
        let mut keys: Vec<Option<usize>> = std::iter::once(None)
            .chain((0..names.len()).map(Some))
            .collect();
        keys.sort_by_key(|k| k.map_or("loss", |i| names[i].as_str()));
        let mut history = History::default();
        let mut rng = Rng::new(o.seed);
        let mut fb = std::mem::take(&mut tr.fit);
        fb.order.clear();
        fb.order.extend(0..n);
        fb.sums.resize(names.len(), 0.0);
        fb.val_sums.resize(names.len(), 0.0);
        let steps = n.div_ceil(o.batch_size);
        let mut out = std::io::stdout();
        let mut result = Ok(());
        for epoch in 0..o.epochs {
            if o.shuffle {
                for i in (1..n).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    fb.order.swap(i, j);
                }
            }
            if o.verbose == 1 {
                let _ = writeln!(out, "Epoch {}/{}", epoch + 1, o.epochs);
            }
            let started = Instant::now();
            let mut last_print = started;
            fb.sums.fill(0.0);
            let (mut loss_sum, mut seen) = (0.0, 0usize);
            for s in 0..steps {
                let lo = s * o.batch_size;
                let b = o.batch_size.min(n - lo);
                set_batch(&mut fb.x_shape, x_shape, b);
                set_batch(&mut fb.y_shape, y_shape, b);
                let (xb, yb): (&[T], &[T]) = if o.shuffle {
                    if let Err(e) = gather(&mut fb.x, x, xr, &fb.order[lo..lo + b])
                        .and_then(|()| gather(&mut fb.y, y, yr, &fb.order[lo..lo + b]))
                    {
                        result = Err(e);
                        break;
                    }
                    (&fb.x[..b * xr], &fb.y[..b * yr])
                } else {
                    (&x[lo * xr..(lo + b) * xr], &y[lo * yr..(lo + b) * yr])
                };
                let value =
                    match self.step(tr, xb, &fb.x_shape, yb, &fb.y_shape, Some(&mut fb.sums)) {
                        Ok(v) => v,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    };
                loss_sum += value * b as f64;
                seen += b;
                if o.verbose == 1 {
                    let now = Instant::now();
                    if now - last_print >= Duration::from_millis(50) || s + 1 == steps {
                        last_print = now;
                        fb.line.clear();
                        progress(&mut fb.line, s + 1, steps, now - started);
                        push_logs(&mut fb.line, &keys, &names, loss_sum, &fb.sums, seen);
                        let end = if s + 1 == steps { "" } else { "\r" };
                        let _ = write!(out, "\r{}{end}", fb.line);
                        let _ = out.flush();
                    }
                }
            }
            if result.is_err() {
                break;
            }
            let per = |v: f64| if seen > 0 { v / seen as f64 } else { 0.0 };
            history.push("loss", per(loss_sum));
            for (name, s) in names.iter().zip(&fb.sums) {
                history.push(name, per(*s));
            }
            fb.line.clear();
            if let Some((vx, vxs, vy, vys)) = validation {
                fb.val_sums.fill(0.0);
                let vl =
                    match self.evaluate_inner(tr, vx, vxs, vy, vys, o.batch_size, &mut fb.val_sums)
                    {
                        Ok(v) => v,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    };
                let vn = vxs.first().copied().unwrap_or(0) as f64;
                let vper = |v: f64| if vn > 0.0 { v / vn } else { 0.0 };
                history.push("val_loss", vl);
                for (name, s) in names.iter().zip(&fb.val_sums) {
                    history.push(&format!("val_{name}"), vper(*s));
                }
                for k in &keys {
                    let (name, v) = match k {
                        None => ("loss", vl),
                        Some(i) => (names[*i].as_str(), vper(fb.val_sums[*i])),
                    };
                    let _ = write!(fb.line, " - val_{name}: ");
                    keras_number(&mut fb.line, v);
                }
            }
            match o.verbose {
                1 => {
                    let _ = writeln!(out, "{}", fb.line);
                }
                2 => {
                    let val = std::mem::take(&mut fb.line);
                    let el = started.elapsed();
                    let _ = write!(fb.line, "{steps}/{steps} - {}s - ", el.as_secs());
                    per_step(&mut fb.line, el, steps);
                    push_logs(&mut fb.line, &keys, &names, loss_sum, &fb.sums, seen);
                    let _ = writeln!(out, "Epoch {}/{}\n{}{val}", epoch + 1, o.epochs, fb.line);
                }
                _ => {}
            }
        }
        tr.fit = fb;
        result.map(|()| history)
    }
}

/// `shape` with its first axis set to `b`, into `dst` (no allocation once grown).
fn set_batch(dst: &mut Vec<usize>, shape: &[usize], b: usize) {
    dst.clear();
    dst.extend_from_slice(shape);
    dst[0] = b;
}

/// The rows `idx` of `src` (rows of `width`) into `dst`.
fn gather<T: Element>(
    dst: &mut Vec<T>,
    src: &[T],
    width: usize,
    idx: &[usize],
) -> Result<(), DenseError> {
    super::try_grow(dst, idx.len() * width, idx.len(), width)?;
    for (d, &i) in dst.chunks_mut(width.max(1)).zip(idx) {
        d.copy_from_slice(&src[i * width..(i + 1) * width]);
    }
    Ok(())
}

/// A logged value as Keras's progress bar prints it: `{:.4f}` above 1e-3 in
/// magnitude, else Python's `{:.4e}` (`0.0000e+00`, `5.0000e-04`).
fn keras_number(line: &mut String, v: f64) {
    if v.abs() > 1e-3 || !v.is_finite() {
        let _ = write!(line, "{v:.4}");
        return;
    }
    let s = format!("{v:.4e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    let _ = write!(
        line,
        "{mant}e{}{:02}",
        if e < 0 { '-' } else { '+' },
        e.abs()
    );
}

/// Keras's time per step: `12ms/step`, `850us/step`, `2s/step`.
fn per_step(line: &mut String, el: Duration, steps: usize) {
    let us = el.as_secs_f64() * 1e6 / steps.max(1) as f64;
    let _ = if us < 1e3 {
        write!(line, "{}us/step", us.round())
    } else if us < 1e6 {
        write!(line, "{}ms/step", (us / 1e3).round())
    } else {
        write!(line, "{}s/step", (us / 1e6).round())
    };
}

/// Keras 3's progress bar: `3/10 ━━━━━━━━━━━━━━━━━━━━ 0s 5ms/step`.
fn progress(line: &mut String, step: usize, steps: usize, el: Duration) {
    const WIDTH: usize = 20;
    let done = (WIDTH * step).checked_div(steps).unwrap_or(WIDTH);
    let _ = write!(line, "{step}/{steps} ");
    for i in 0..WIDTH {
        line.push(if i < done { '━' } else { '─' });
    }
    let _ = write!(line, " {}s ", el.as_secs());
    per_step(line, el, step);
}

/// ` - name: value` for the loss and the metrics, in the order of `keys`.
fn push_logs(
    line: &mut String,
    keys: &[Option<usize>],
    names: &[String],
    loss_sum: f64,
    sums: &[f64],
    seen: usize,
) {
    let seen = seen.max(1) as f64;
    for k in keys {
        let (name, v) = match k {
            None => ("loss", loss_sum),
            Some(i) => (names[*i].as_str(), sums[*i]),
        };
        let _ = write!(line, " - {name}: ");
        keras_number(line, v / seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_values_print_as_keras_prints_them() {
        let show = |v: f64| {
            let mut s = String::new();
            keras_number(&mut s, v);
            s
        };
        // Python: f"{v:.4f}" above 1e-3 in magnitude, else f"{v:.4e}".
        assert_eq!(show(1.20457), "1.2046");
        assert_eq!(show(0.0), "0.0000e+00");
        assert_eq!(show(5e-4), "5.0000e-04");
        assert_eq!(show(-1.1920929e-7), "-1.1921e-07");
        assert_eq!(show(1e-3), "1.0000e-03");
    }

    #[test]
    fn progress_bar_is_keras_s() {
        let mut s = String::new();
        progress(&mut s, 3, 3, Duration::from_millis(1830));
        push_logs(
            &mut s,
            &[Some(0), None],
            &["accuracy".into()],
            3.0,
            &[1.5],
            3,
        );
        assert_eq!(
            s,
            "3/3 ━━━━━━━━━━━━━━━━━━━━ 1s 610ms/step - accuracy: 0.5000 - loss: 1.0000"
        );
        let mut s = String::new();
        progress(&mut s, 1, 4, Duration::from_micros(300));
        assert_eq!(s, "1/4 ━━━━━─────────────── 0s 300us/step");
    }
}
