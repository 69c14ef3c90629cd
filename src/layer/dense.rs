//! Keras's `Dense` layer over [`dense_forward_into`](crate::dense_forward_into).

use super::{Constraint, Initializer, Regularizer, Tensor};
use crate::{
    dense_forward_into, dense_forward_packed, Activation, DenseError, Element, MatMut, MatRef,
    PackedKernel,
};

/// Keras's `Dense(units, activation, use_bias, kernel_initializer, bias_initializer,
/// kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
/// bias_constraint)`, with Keras's defaults: no activation (linear), a bias, a
/// glorot-uniform kernel, a zero bias, no regularizers, no constraints.
///
/// It acts on the last axis of an input of any rank ≥ 2: `(*, in) → (*, units)`. The
/// kernel is `(in, units)` (Keras layout), the bias `(units,)`. The input size comes from
/// [`input_dim`](Dense::input_dim) (the size of the last axis, the same as
/// `input_shape(&[in])`), from [`build`](Dense::build), or from the first call.
///
/// An `f32` layer packs its weight for the crate's microkernels on its second call
/// ([`PackedKernel`], a one-time copy of the kernel) and runs the prepared path
/// ([`dense_forward_packed`]) from then on; `set_weights`, `build` and
/// `apply_constraints` drop the packing. `f64` layers always run [`dense_forward_into`].
///
/// ```
/// use dense_kernel::{layer::Dense, Activation};
/// let mut d = Dense::<f32>::new(3).activation(Activation::Relu).input_dim(2).seed(1);
/// assert_eq!(d.count_params()?, 2 * 3 + 3);
/// // A rank-3 input (2, 2, 2): Dense maps its last axis.
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
/// let y = d.call(&x, &[2, 2, 2])?;
/// assert_eq!(y.shape, vec![2, 2, 3]);
/// assert!(y.data.iter().all(|v| *v >= 0.0));
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dense<T> {
    pub(super) units: usize,
    pub(super) activation: Activation,
    pub(super) use_bias: bool,
    pub(super) kernel_initializer: Initializer,
    pub(super) bias_initializer: Initializer,
    pub(super) kernel_regularizer: Option<Regularizer>,
    pub(super) bias_regularizer: Option<Regularizer>,
    pub(super) activity_regularizer: Option<Regularizer>,
    pub(super) kernel_constraint: Option<Constraint>,
    pub(super) bias_constraint: Option<Constraint>,
    /// The per-example input shape (without the batch axis), if given.
    input_shape: Option<Vec<usize>>,
    seed: Option<u64>,
    name: Option<String>,
    /// `(in, units)` row-major once built; `(units, in)` (PyTorch's layout) while
    /// `kernel_t` is set.
    pub(super) kernel: Vec<T>,
    /// The kernel is held as PyTorch's `(units, in)`: a layer loaded from a state_dict
    /// runs it through the transposed view. Training, constraints and `set_weights`
    /// bring it to Keras's layout first.
    pub(super) kernel_t: bool,
    pub(super) bias: Vec<T>,
    pub(super) in_features: Option<usize>,
    pub(super) activity_penalty: Option<f64>,
    /// Calls since the weights last changed.
    calls: u32,
    /// The packed kernel and bias (f32 only), made on the second call.
    packed: Option<PackedKernel>,
}

impl<T: Element> Dense<T> {
    /// A layer of `units` outputs with Keras's defaults (checked when built: Keras
    /// refuses `units = 0`).
    pub fn new(units: usize) -> Self {
        Dense {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
            input_shape: None,
            seed: None,
            name: None,
            kernel: Vec::new(),
            kernel_t: false,
            bias: Vec::new(),
            in_features: None,
            activity_penalty: None,
            calls: 0,
            packed: None,
        }
    }

    /// The activation (Keras `activation`; `None` there is [`Activation::Linear`]).
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// Keras `use_bias` (default `true`).
    pub fn use_bias(mut self, b: bool) -> Self {
        self.use_bias = b;
        self
    }
    /// Keras `kernel_initializer` (default glorot_uniform).
    pub fn kernel_initializer(mut self, i: Initializer) -> Self {
        self.kernel_initializer = i;
        self
    }
    /// Keras `bias_initializer` (default zeros).
    pub fn bias_initializer(mut self, i: Initializer) -> Self {
        self.bias_initializer = i;
        self
    }
    /// Keras `kernel_regularizer`.
    pub fn kernel_regularizer(mut self, r: Regularizer) -> Self {
        self.kernel_regularizer = Some(r);
        self
    }
    /// Keras `bias_regularizer`.
    pub fn bias_regularizer(mut self, r: Regularizer) -> Self {
        self.bias_regularizer = Some(r);
        self
    }
    /// Keras `activity_regularizer`: a penalty on each call's output, divided by the
    /// batch size (the first axis), as Keras 3 does.
    pub fn activity_regularizer(mut self, r: Regularizer) -> Self {
        self.activity_regularizer = Some(r);
        self
    }
    /// Keras `kernel_constraint`, applied by [`apply_constraints`](Dense::apply_constraints).
    pub fn kernel_constraint(mut self, c: Constraint) -> Self {
        self.kernel_constraint = Some(c);
        self
    }
    /// Keras `bias_constraint`.
    pub fn bias_constraint(mut self, c: Constraint) -> Self {
        self.bias_constraint = Some(c);
        self
    }
    /// Keras `input_dim`: the size of the input's **last axis** (not its rank); the same
    /// as `input_shape(&[dim])`.
    pub fn input_dim(self, dim: usize) -> Self {
        self.input_shape(&[dim])
    }
    /// Keras `input_shape`: the per-example shape without the batch axis. Only its last
    /// entry sizes the kernel; the rest shows in the summary's output shape.
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.input_shape = Some(shape.to_vec());
        self
    }
    /// Seed for the initializers (kernel from `seed`, bias from a value derived from it).
    /// Default 0; a [`Sequential`](super::Sequential) gives each unseeded layer its own.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// The layer's name (default `dense`; a model numbers unnamed layers `dense_1`, …).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub(crate) fn name_opt(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub(crate) fn seed_opt(&self) -> Option<u64> {
        self.seed
    }
    pub(crate) fn input_shape_opt(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    /// Number of output units.
    pub fn units(&self) -> usize {
        self.units
    }
    /// The layer's activation.
    pub fn get_activation(&self) -> Activation {
        self.activation
    }
    /// The input size (last axis), once known.
    pub fn in_features(&self) -> Option<usize> {
        self.in_features
            .or_else(|| self.input_shape.as_ref().and_then(|s| s.last().copied()))
    }
    /// Whether the weights exist.
    pub fn is_built(&self) -> bool {
        self.in_features.is_some()
    }

    fn check_config(&self) -> Result<(), DenseError> {
        if self.units == 0 {
            return Err(DenseError::InvalidConfig {
                what: "Dense units must be a positive integer, got 0".into(),
            });
        }
        if let Some(s) = &self.input_shape {
            if s.is_empty() {
                return Err(DenseError::InvalidConfig {
                    what: "input_shape must have at least one axis (the features)".into(),
                });
            }
        }
        for r in [
            &self.kernel_regularizer,
            &self.bias_regularizer,
            &self.activity_regularizer,
        ]
        .into_iter()
        .flatten()
        {
            r.validate()?;
        }
        Ok(())
    }

    /// Creates the weights for inputs whose last axis is `in_features`, with the
    /// initializers and the seed. Building again for the same size keeps the weights.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] for `units = 0`, bad initializer or regularizer
    /// parameters, a size other than `input_dim`'s, or a rebuild for another size.
    pub fn build(&mut self, in_features: usize) -> Result<(), DenseError> {
        self.check_config()?;
        if let Some(k) = self.in_features() {
            if k != in_features {
                return Err(DenseError::InvalidConfig {
                    what: format!(
                        "Dense({}) is for inputs of last axis {k}, asked to build for {in_features}",
                        self.units
                    ),
                });
            }
        }
        if self.is_built() {
            return Ok(());
        }
        let seed = self.seed.unwrap_or(0);
        let kernel = self
            .kernel_initializer
            .sample::<T>(&[in_features, self.units], seed)?;
        let bias = if self.use_bias {
            self.bias_initializer
                .sample::<T>(&[self.units], seed ^ 0xB1A5_B1A5_B1A5_B1A5)?
        } else {
            Vec::new()
        };
        self.kernel = kernel;
        self.kernel_t = false;
        self.bias = bias;
        self.in_features = Some(in_features);
        self.weights_changed();
        Ok(())
    }

    /// `in·units + units` (or `in·units` without a bias): Keras's `count_params`.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] while the input size is unknown (Keras raises too).
    pub fn count_params(&self) -> Result<usize, DenseError> {
        let k = self
            .in_features()
            .ok_or_else(|| DenseError::InvalidConfig {
                what: "count_params on a Dense layer whose input size is unknown: give \
                   input_dim, build it, or call it first"
                    .into(),
            })?;
        k.checked_mul(self.units)
            .and_then(|p| p.checked_add(if self.use_bias { self.units } else { 0 }))
            .ok_or_else(|| DenseError::InvalidConfig {
                what: format!("{k}x{} parameters overflow usize", self.units),
            })
    }

    fn built_in(&mut self) -> Result<usize, DenseError> {
        if let Some(k) = self.in_features {
            return Ok(k);
        }
        let k = self
            .in_features()
            .ok_or_else(|| DenseError::InvalidConfig {
                what: "the layer is not built: give input_dim, build it, or call it first".into(),
            })?;
        self.build(k)?;
        Ok(k)
    }

    /// The weights in Keras's order, `[kernel (in, units), bias (units,)]` (no bias
    /// without `use_bias`). Builds the layer if its input size is known.
    ///
    /// # Errors
    /// [`DenseError::InvalidConfig`] if the input size is unknown.
    pub fn get_weights(&mut self) -> Result<Vec<Tensor<T>>, DenseError> {
        let k = self.built_in()?;
        let data = if self.kernel_t {
            self.keras_kernel(k)?
        } else {
            super::try_copy(&self.kernel, k, self.units)?
        };
        let mut w = vec![Tensor {
            shape: vec![k, self.units],
            data,
        }];
        if self.use_bias {
            w.push(Tensor {
                shape: vec![self.units],
                data: super::try_copy(&self.bias, 1, self.units)?,
            });
        }
        Ok(w)
    }

    /// Sets the weights, Keras order `[kernel (in, units), bias (units,)]`. An unbuilt
    /// layer takes its input size from the kernel (which must agree with `input_dim`).
    ///
    /// # Errors
    /// [`DenseError::WeightShape`] for the wrong number of arrays, a wrong shape, or data
    /// whose length is not its shape's product.
    pub fn set_weights(&mut self, weights: &[Tensor<T>]) -> Result<(), DenseError> {
        let want = 1 + usize::from(self.use_bias);
        if weights.len() != want {
            return Err(DenseError::WeightShape {
                name: "weights",
                expected: vec![want],
                actual: vec![weights.len()],
            });
        }
        let k = self
            .in_features()
            .unwrap_or_else(|| match weights[0].shape[..] {
                [k, _] => k,
                _ => 0,
            });
        self.check_config()?;
        let check = |name: &'static str, t: &Tensor<T>, shape: Vec<usize>| {
            let n = super::numel(&t.shape).ok();
            if t.shape != shape || n != Some(t.data.len()) {
                let mut actual = t.shape.clone();
                if n != Some(t.data.len()) {
                    // Report the data length when it disagrees with its own shape.
                    actual = vec![t.data.len()];
                }
                return Err(DenseError::WeightShape {
                    name,
                    expected: shape,
                    actual,
                });
            }
            Ok(())
        };
        check("kernel", &weights[0], vec![k, self.units])?;
        if self.use_bias {
            check("bias", &weights[1], vec![self.units])?;
        }
        self.kernel = super::try_copy(&weights[0].data, k, self.units)?;
        self.kernel_t = false;
        self.bias = if self.use_bias {
            super::try_copy(&weights[1].data, 1, self.units)?
        } else {
            Vec::new()
        };
        self.in_features = Some(k);
        self.weights_changed();
        Ok(())
    }

    /// Takes `kernel` `(k, units)` and `bias` as they are (a model file's weights, already
    /// checked against the configuration): no initializer run, no copy.
    /// With `transposed`, `kernel` is PyTorch's `(units, k)` and stays so (see
    /// `kernel_t`).
    pub(super) fn set_weights_owned(
        &mut self,
        k: usize,
        kernel: Vec<T>,
        transposed: bool,
        bias: Vec<T>,
    ) -> Result<(), DenseError> {
        self.check_config()?;
        let bias_len = if self.use_bias { self.units } else { 0 };
        if self.in_features().is_some_and(|b| b != k)
            || k.checked_mul(self.units) != Some(kernel.len())
            || bias.len() != bias_len
        {
            return Err(DenseError::WeightShape {
                name: "kernel",
                expected: vec![k, self.units],
                actual: vec![kernel.len()],
            });
        }
        self.kernel = kernel;
        self.kernel_t = transposed;
        self.bias = bias;
        self.in_features = Some(k);
        self.weights_changed();
        Ok(())
    }

    /// The kernel in Keras's `(in, units)` layout, copied through the transposed view.
    fn keras_kernel(&self, k: usize) -> Result<Vec<T>, DenseError> {
        if self.kernel_t {
            Ok(MatRef::from_slice(&self.kernel, self.units, k)?
                .t()
                .to_mat()?
                .into_vec())
        } else {
            super::try_copy(&self.kernel, k, self.units)
        }
    }

    /// Brings a PyTorch-layout kernel to Keras's layout (before training or a
    /// constraint, which work on `(in, units)`); nothing if it is in Keras's already.
    pub(super) fn make_keras_layout(&mut self) -> Result<(), DenseError> {
        if let (true, Some(k)) = (self.kernel_t, self.in_features) {
            self.kernel = self.keras_kernel(k)?;
            self.kernel_t = false;
            self.weights_changed();
        }
        Ok(())
    }

    /// The kernel in Keras's layout for a file: borrowed, or copied if held transposed.
    pub(super) fn kernel_for_keras(&self) -> Result<std::borrow::Cow<'_, [T]>, DenseError> {
        match self.in_features {
            Some(k) if self.kernel_t => Ok(std::borrow::Cow::Owned(self.keras_kernel(k)?)),
            _ => Ok(std::borrow::Cow::Borrowed(&self.kernel)),
        }
    }

    pub(super) fn weights_changed(&mut self) {
        self.calls = 0;
        self.packed = None;
    }

    /// Whether the layer currently runs the packed (prepared) path.
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// The kernel as a `(in, units)` view (built layers only): a transposed view where
    /// the layer holds PyTorch's `(units, in)` weight (from `load_safetensors`).
    pub fn kernel(&self) -> Option<MatRef<'_, T>> {
        let k = self.in_features?;
        if self.kernel_t {
            MatRef::from_slice(&self.kernel, self.units, k)
                .ok()
                .map(MatRef::t)
        } else {
            MatRef::from_slice(&self.kernel, k, self.units).ok()
        }
    }

    /// The bias (built layers with `use_bias` only).
    pub fn bias(&self) -> Option<&[T]> {
        (self.in_features.is_some() && self.use_bias).then_some(&self.bias[..])
    }

    /// The output shape for an input of `shape` (batch axis first): `(*, units)`.
    ///
    /// # Errors
    /// [`DenseError::InputShape`] for rank < 2 or a last axis other than the layer's.
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>, DenseError> {
        self.check_shape(shape)?;
        let mut out = shape.to_vec();
        *out.last_mut().unwrap_or(&mut 0) = self.units;
        Ok(out)
    }

    /// Whether the layer takes inputs of `shape` (rank ≥ 2, its last axis the input
    /// size if built), without allocating.
    pub(super) fn check_shape(&self, shape: &[usize]) -> Result<(), DenseError> {
        let bad = || DenseError::InputShape {
            shape: shape.to_vec(),
            len: 0,
            expected_last: self.in_features(),
        };
        let (&last, lead) = shape.split_last().ok_or_else(bad)?;
        if lead.is_empty() || self.in_features().is_some_and(|k| k != last) {
            return Err(bad());
        }
        Ok(())
    }

    /// The layer on `input` of `shape` (batch axis first, rank ≥ 2), into a new tensor.
    /// The first call builds the layer if needed; the input is read in place, not copied.
    ///
    /// # Errors
    /// [`DenseError::InputShape`] for rank < 2, a last axis other than the layer's, or
    /// data whose length is not the shape's product; the build's errors.
    pub fn call(&mut self, input: &[T], shape: &[usize]) -> Result<Tensor<T>, DenseError> {
        self.prepare(input, shape)?;
        let out_shape = self.output_shape(shape)?;
        let (rows, len) = super::output_len(shape, self.units)?;
        let mut data = Vec::new();
        super::try_grow(&mut data, len, rows, self.units)?;
        self.call_into(input, shape, &mut data)?;
        Ok(Tensor {
            shape: out_shape,
            data,
        })
    }

    /// Checks the input and builds on first use (no allocation).
    fn prepare(&mut self, input: &[T], shape: &[usize]) -> Result<(), DenseError> {
        let bad = |expected_last| DenseError::InputShape {
            shape: shape.to_vec(),
            len: input.len(),
            expected_last,
        };
        let (&last, lead) = shape.split_last().ok_or_else(|| bad(self.in_features()))?;
        if lead.is_empty() || super::numel(shape)? != input.len() {
            return Err(bad(self.in_features()));
        }
        if self.in_features().is_some_and(|k| k != last) {
            return Err(bad(self.in_features()));
        }
        if !self.is_built() {
            self.build(last)?;
        }
        self.check_shape(shape)
    }

    /// [`call`](Dense::call) into `out` (`shape` with its last axis replaced by
    /// `units`, row-major): no allocation.
    ///
    /// # Errors
    /// As [`call`](Dense::call), and [`DenseError::OutputShape`] if `out` has the wrong
    /// length.
    pub fn call_into(
        &mut self,
        input: &[T],
        shape: &[usize],
        out: &mut [T],
    ) -> Result<(), DenseError> {
        self.prepare(input, shape)?;
        let k = self.in_features.unwrap_or(0);
        let (m, len) = super::output_len(shape, self.units)?;
        if out.len() != len {
            return Err(DenseError::OutputShape {
                expected: (m, self.units),
                actual: (out.len() / self.units.max(1), self.units),
            });
        }
        self.calls = self.calls.saturating_add(1);
        if self.packed.is_none() && self.calls >= 2 {
            // The second call: the layer is in use, pack once (f32 only).
            self.pack(k)?;
        }
        match (&self.packed, T::as_f32s(input)) {
            (Some(p), Some(x)) => Self::run_packed(p, self.activation, x, m, k, out)?,
            _ => self.run_unpacked(input, m, k, out)?,
        }
        self.activity_penalty = self.activity_regularizer.map(|r| {
            // Keras: the penalty over the whole output, divided by the batch size
            // (`divide_no_nan`: 0 for an empty batch).
            let batch = shape[0] as f64;
            if batch == 0.0 {
                0.0
            } else {
                r.penalty(out) / batch
            }
        });
        Ok(())
    }

    // `pack`, `run_packed` and `run_unpacked` are separate functions so that an
    // unoptimised build keeps only the branch taken on the stack (`tests/small_stack.rs`).

    /// Packs the f32 kernel and bias for the packed path (nothing for `f64`).
    fn pack(&mut self, k: usize) -> Result<(), DenseError> {
        if let Some(w) = T::as_f32s(&self.kernel) {
            let b = if self.use_bias {
                T::as_f32s(&self.bias)
            } else {
                None
            };
            let view = if self.kernel_t {
                MatRef::from_slice(w, self.units, k)?.t()
            } else {
                MatRef::from_slice(w, k, self.units)?
            };
            self.packed = Some(PackedKernel::new(view, b)?);
        }
        Ok(())
    }

    fn run_packed(
        p: &PackedKernel,
        act: Activation,
        x: &[f32],
        m: usize,
        k: usize,
        out: &mut [T],
    ) -> Result<(), DenseError> {
        let o = T::as_f32s_mut(out).ok_or_else(|| DenseError::InvalidConfig {
            what: "packed path on a non-f32 output".into(),
        })?;
        let n = p.units();
        dense_forward_packed(
            MatRef::from_slice(x, m, k)?,
            p,
            act,
            MatMut::from_slice(o, m, n)?,
        )
    }

    fn run_unpacked(
        &self,
        input: &[T],
        m: usize,
        k: usize,
        out: &mut [T],
    ) -> Result<(), DenseError> {
        dense_forward_into(
            MatRef::from_slice(input, m, k)?,
            if self.kernel_t {
                MatRef::from_slice(&self.kernel, self.units, k)?.t()
            } else {
                MatRef::from_slice(&self.kernel, k, self.units)?
            },
            self.use_bias.then_some(&self.bias[..]),
            self.activation,
            MatMut::from_slice(out, m, self.units)?,
        )
    }

    /// The regularization penalties Keras would add to the loss, in the order of
    /// Keras's `layer.losses`: the last call's activity penalty, then the kernel's, then
    /// the bias's (each only if set).
    pub fn losses(&self) -> Vec<f64> {
        let mut l = Vec::new();
        if let Some(p) = self.activity_penalty {
            l.push(p);
        }
        if self.is_built() {
            if let Some(r) = self.kernel_regularizer {
                l.push(r.penalty(&self.kernel));
            }
            if let (Some(r), true) = (self.bias_regularizer, self.use_bias) {
                l.push(r.penalty(&self.bias));
            }
        }
        l
    }

    /// Projects the kernel and the bias with their constraints (Keras applies them after
    /// each optimizer step; here, when asked).
    ///
    /// # Errors
    /// The constraint's [`DenseError::InvalidConfig`] (an axis the weight lacks).
    pub fn apply_constraints(&mut self) -> Result<(), DenseError> {
        let Some(k) = self.in_features else {
            return Ok(());
        };
        if self.kernel_constraint.is_some() {
            self.make_keras_layout()?;
        }
        if let Some(c) = self.kernel_constraint {
            c.apply(&mut self.kernel, &[k, self.units])?;
        }
        if let (Some(c), true) = (self.bias_constraint, self.use_bias) {
            c.apply(&mut self.bias, &[self.units])?;
        }
        if self.kernel_constraint.is_some() || self.bias_constraint.is_some() {
            self.weights_changed();
        }
        Ok(())
    }
}
