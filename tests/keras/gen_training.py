#!/usr/bin/env python3
"""Real-Keras ground truth for training: `compile` / `train_on_batch` / `fit` / `evaluate`
on small Dense models, every optimizer, loss, accuracy metric, regularizer and constraint
the crate implements, in float32 and float64.

What is computed
----------------
For every case of CASES below (N <= 64 samples, K <= 12 features, <= 16 units, mostly
2-3 epochs; a partial last batch in most cases) a Keras `Sequential([Input((K,)), ...])`
is built from the case's layers, given the case's initial weights with `set_weights`, and
compiled with the case's optimizer object, loss object and metrics list
(`model.compile(optimizer=..., loss=..., metrics=...)`, every other argument at its
default).  Then, in that order:

1. `train_on_batch(x[i:i+B], y[i:i+B], return_dict=True)` over consecutive batches of the
   data, in order, for E epochs (so exactly `fit(shuffle=False)`'s batches); the "loss"
   each call returns is recorded (`step_losses`: the batch loss, `sum_over_batch_size`,
   plus every regularization penalty; Keras returns it from a fresh `Mean` tracker as
   (loss * B) / B in the metric dtype).  Then `final_weights` (`get_weights()`) and
   `model.evaluate(x, y, batch_size=B, return_dict=True)`.
2. A FRESH model, optimizer and loss object, the same initial weights:
   `model.fit(x, y, batch_size=B, epochs=E, shuffle=False, verbose=0)`; its
   `history.history` (per-epoch "loss" and metrics, and val_* for the one case with a
   validation split) and its final weights.  Step 1 and 2 are independent runs from
   identical starting points (in practice their final weights agree bit for bit).

Three runs, from the SAME initial weights and data (generated as float32, widened
exactly for the float64 runs), each in its own child process of this script
(`--child f32|f64|f64x SPEC OUT`), merged by the parent:

- "float32": JAX_ENABLE_X64 unset, `keras.config.set_floatx("float32")`.
- "float64": JAX_ENABLE_X64=1, `set_floatx("float64")` before anything is built, so
  layers, optimizer variables, the learning rate variable, the loss and the metrics are
  all float64.  Unpatched Keras, and NOT float64 throughout (below).
- "float64_exact": the float64 run with Keras's float32 leaks patched out in that child
  only (`patch_float64_leaks`); each case also asserts that the traced train and test
  steps (`jax.make_jaxpr` of `model.train_step` / `model.test_step`: forward, loss,
  regularizers, backward, clipping, optimizer, constraints, metrics) hold no float32
  value at all.

The float32 leaks of the "float64" run (keras 3.15.1, jax backend).  The root is
`result_type` (keras/src/backend/common/dtypes.py:276): it maps every 64-bit result to
32 bits on every backend but tensorflow (`BIT64_TO_BIT32_DTYPE`, dtypes.py:240), even
with JAX_ENABLE_X64 set, so `result_type("float64", ...)` is "float32".  An exhaustive
scan of the traced steps of all cases finds it used on float64 data in three places:
- `mean` (keras/src/backend/jax/numpy.py:231, 262-263): the sum and the division run in
  float32 (the backward pass too), the result is cast back.  Hits the per-sample last-axis
  mean of mean_squared_error / mean_absolute_error / huber / binary_crossentropy
  (keras/src/losses/losses.py:1788, 1825, 2001, 2414): per-sample losses rounded to
  float32 (~1e-7 relative), and the gradient scaled by the float32 rounding of 1/(B n)
  (B rows, n outputs; 2.98e-8 relative for B = 8, n = 3; exact when B n is a power of
  two); and the per-sample mean of the MeanMetricWrapper metrics
  (keras/src/metrics/reduction_metrics.py:43), e.g. binary_accuracy over 3 outputs.
- `tanh` (keras/src/backend/jax/numpy.py:1410-1412; `keras.activations.tanh` is
  `ops.tanh`, the numpy one): the input is cast to float32 and the OUTPUT stays float32
  (the next layer casts it back, keras/src/layers/layer.py:885), so tanh and its
  derivative are float32 (~2e-7 relative; the derivative up to ~1e-5 relative where
  1 - tanh^2 is small) and so is everything computed from the output before that cast:
  an activity regularizer on a tanh layer (keras/src/regularizers/regularizers.py:265,
  its 0.01 becomes 0.0099999998) and its division by the batch size
  (keras/src/layers/layer.py:1025-1028).  Every gradient upstream of a tanh is affected.
- `argmax` (keras/src/backend/jax/numpy.py:430-431): the accuracy metrics compare argmax
  of float32-rounded values (only a near-tie can change; none does here).
The fix is one line, `BIT64_TO_BIT32_DTYPE["float64"] = "float64"` (JAX's own x64
promotion); everything else (cross-entropies incl. from_logits and label smoothing, the
sum_over_batch_size reduction, the loss tracker, regularizers, constraints, all the
optimizers and the clipping options, the other activations) was already float64: with the
patch, cases without tanh and without those four losses give bit-identical results.
"float64" against "float64_exact": identical in the 14 cases with neither leak; otherwise up
to 2.2e-7 relative in the step losses, 6.8e-8 in evaluate / fit history and 2.8e-7 absolute
(6e-5 relative, on a small weight) in the final weights.  An independent numpy float64
reproduction (hand-written forward, backprop and optimizer) of 7 cases matches
"float64_exact" to <= 9e-16 relative in every step loss and <= 2.3e-16 absolute in the
final weights.

jit: `compile`'s default `jit_compile="auto"` resolves to True with the jax backend
(`Trainer._resolve_auto_jit_compile`, keras/src/trainers/trainer.py:256), so every
train / test step ran under `jax.jit` (XLA, CPU); the resolved value is in meta.jit_compile.

validation_split (case "adam_cce_valsplit"): Keras 3.15 takes the LAST
floor-complement of the samples, before any shuffling:
`split_at = floor(N * (1 - validation_split))`, train = [0, split_at), validation =
[split_at, N) (keras/src/trainers/data_adapters/array_slicing.py:461-520,
`train_validation_split`, called by fit at keras/src/backend/jax/trainer.py:389-397).
For N = 32, 0.25: train = the first 24 samples, validation = the last 8.  In that case
the train_on_batch loop runs over the first 24 samples only, so step_losses match fit's
training steps; `evaluate` is still on all N samples; fit_history has val_loss and
val_<metric> (one evaluate of the validation part at the end of every epoch, batch size
B, the epoch's final weights).

Observed with the committed fixtures (checked when they were generated, not by this
script): fit's final weights equal the train_on_batch loop's bit for bit in every case
and dtype.  fit's epoch "loss" is the loss tracker's total / count, total += loss_k * B_k,
count += B_k in the metric dtype (keras/src/backend/jax/trainer.py:96-104); rebuilding it
from step_losses in that dtype gives the recorded value exactly for all but a handful of
epochs, which are 1 ulp off (the step value recorded is (loss*B)/B, and XLA fuses the
tracker update).  "accuracy" resolved to binary_accuracy for seed_model_b (one output
unit) and to categorical_accuracy for the 3-output multi-label binary_crossentropy case.
seed_model_b's loss is -log(clip(1, eps, 1 - eps)) = -log(1 - eps): 1.1920929e-07 in
float32 (1 - 1e-7 rounds to 1 - 2^-23) against 1.00000005e-07 in float64; its weights
never change.  Otherwise float32 and float64 agree to ~1e-6 relative in the losses and
~1e-6 absolute in the weights (~7e-6 / 2.5e-6 for the 40-step run).

Not covered: Dropout (its RNG cannot be reproduced), sample/class weights,
learning-rate schedules, EMA, gradient accumulation, loss_scale_factor.

How to run (from the repository root), with the venv of gen_fixtures.py:

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy
    KERAS_BACKEND=jax /tmp/kvenv/bin/python tests/keras/gen_training.py

(KERAS_BACKEND is set by the script for its children anyway.)  Takes about 6 minutes
on 2 CPU cores.  Versions used for the committed fixtures: keras 3.15.1, jax/jaxlib 0.10.2,
numpy 2.4.6, Python 3.11.7, CPU (x86-64).  Everything is deterministic.

Output (next to this script): training.json
-------------------------------------------
Every floating-point VALUE (data, weights, losses, metrics) is a string of 16 lowercase
hex digits: the IEEE-754 float64 bit pattern, float32 values widened exactly first
(`struct.pack(">d", v).hex()`).  Configs (optimizer, loss, regularizer and constraint
parameters) are plain JSON numbers, as written in the Keras call.

    {"meta": {"keras", "jax", "numpy", "python", "jit_compile", "generator"},
     "cases": [{
        "name", "input_dim",
        "layers": [{"class": "Dense", "units", "activation", "use_bias",
                    "kernel_regularizer", "bias_regularizer", "activity_regularizer"
                      (null or {"l1", "l2"}),
                    "kernel_constraint", "bias_constraint"
                      (null, {"name": "max_norm", "max_value", "axis"}, {"name": "non_neg"},
                       {"name": "unit_norm", "axis"},
                       {"name": "min_max_norm", "min_value", "max_value", "rate", "axis"})}
                   | {"class": "Activation", "activation"}],
        "optimizer": {"name": sgd|adam|adamw|rmsprop|adagrad, its parameters, "clipnorm",
                      "clipvalue", "global_clipnorm"},
        "loss": {"name", and from_logits / label_smoothing / delta where the loss has them},
        "metrics": [as passed to compile], "resolved_metrics": [the metric functions
          Keras resolved them to, e.g. "accuracy" -> "categorical_accuracy"],
        "batch_size", "epochs", "validation_split" (null or 0.25),
        "x_shape", "x", "y_shape", "y" (row-major), "initial_weights" (get_weights()
          order: per Dense layer the kernel (in, units) row-major, then the bias),
        "float32": {"step_losses", "final_weights", "evaluate": {"loss", <metric>...},
                    "fit_history": {"loss": [per epoch], <metric>: [...], val_...},
                    "fit_final_weights"},
        "float64": {the same}, "float64_exact": {the same}}]}

Inputs: numpy Generator(PCG64, seed 20260611), drawn in the order of CASES: x =
standard_normal (N, K) as float32; targets from a random linear "teacher" T ~
standard_normal (K, C): classification labels argmax(x T + 0.5 noise), binary labels
(x T + 0.5 noise > 0), regression targets tanh(x T / sqrt(K)) + 0.1 noise, all float32
(class indices as float32 values 0.0, 1.0, ...).  Initial kernels glorot-uniform
(limit sqrt(6 / (fan_in + fan_out))), biases 0.1 * standard_normal, float32 (non-zero
biases, so bias gradients, regularizers and constraints all matter); in the cases marked
colscale (max_norm, min_max_norm) the first kernel's columns are then multiplied, in
float32, alternately by 0.4 and 1.4, so that column norms start both below 0.5 and above
1.0 and every bound of the constraint is exercised.
"""

import json
import math
import os
import platform
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "training.json")
SEED = 20260611


def hx(v):
    """float (or numpy float32/64) -> 16 hex digits of its float64 bit pattern."""
    return struct.pack(">d", float(v)).hex()


def unhx(s):
    return struct.unpack(">d", bytes.fromhex(s))[0]


def hlist(a):
    return [hx(v) for v in np.asarray(a).ravel()]


# ---------------------------------------------------------------------------------------
# Cases.  Layer tuples: ("D", units, activation, extra-kwargs) or ("A", activation).
# Regularizers: ("l2", 0.01), ("l1", 0.01), ("l1_l2", (l1, l2)).
# Constraints: dicts in the JSON form.
# target: "cce" one-hot, "scce" (N,) indices, "scce1" (N, 1) indices, "bce" 0/1, "reg".
# ---------------------------------------------------------------------------------------

def D(units, activation="linear", **kw):
    return ("D", units, activation, kw)


def A(activation):
    return ("A", activation)


MAXNORM = {"name": "max_norm", "max_value": 1.0, "axis": 0}
NONNEG = {"name": "non_neg"}
UNITNORM = {"name": "unit_norm", "axis": 0}
MINMAX = {"name": "min_max_norm", "min_value": 0.5, "max_value": 1.0, "rate": 1.0, "axis": 0}

SGD = {"name": "sgd", "learning_rate": 0.05, "momentum": 0.0, "nesterov": False}
SGDM = dict(SGD, momentum=0.9)
SGDN = dict(SGD, momentum=0.9, nesterov=True)
ADAM = {"name": "adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-07, "amsgrad": False}
ADAMS = dict(ADAM, amsgrad=True)
ADAMW = dict(ADAM, name="adamw", weight_decay=0.004)
ADAMW1 = dict(ADAMW, weight_decay=0.1)
RMS = {"name": "rmsprop", "learning_rate": 0.01, "rho": 0.9, "momentum": 0.0,
       "epsilon": 1e-07, "centered": False}
RMSM = dict(RMS, momentum=0.5)
RMSC = dict(RMS, centered=True)
ADAG = {"name": "adagrad", "learning_rate": 0.05, "initial_accumulator_value": 0.1,
        "epsilon": 1e-07}

CCE = {"name": "categorical_crossentropy", "from_logits": False, "label_smoothing": 0.0}
CCEL = dict(CCE, from_logits=True)
CCES = dict(CCE, label_smoothing=0.1)
SCCE = {"name": "sparse_categorical_crossentropy", "from_logits": False}
SCCEL = dict(SCCE, from_logits=True)
BCE = {"name": "binary_crossentropy", "from_logits": False, "label_smoothing": 0.0}
BCEL = dict(BCE, from_logits=True)
BCES = dict(BCE, label_smoothing=0.1)
MSE = {"name": "mean_squared_error"}
MAE = {"name": "mean_absolute_error"}
HUB = {"name": "huber", "delta": 1.0}
HUB5 = {"name": "huber", "delta": 0.5}


def C(name, K, layers, opt, loss, metrics, target, N, B, E, vsplit=None, colscale=False):
    return dict(name=name, K=K, layers=layers, opt=opt, loss=loss, metrics=metrics,
                target=target, N=N, B=B, E=E, vsplit=vsplit, colscale=colscale)


CASES = [
    # --- optimizers -------------------------------------------------------------------
    C("sgd_mse_relu", 6, [D(8, "relu"), D(3)], SGD, MSE, [], "reg", 22, 8, 3),
    C("sgd_momentum_mae_tanh", 5, [D(8, "tanh"), D(2)], SGDM, MAE, [], "reg", 20, 6, 3),
    C("sgd_nesterov_huber_sigmoid", 6, [D(10, "sigmoid"), D(3)], SGDN, HUB, [], "reg",
      24, 8, 3),
    C("adam_cce_relu_l2", 6, [D(8, "relu", kernel_regularizer=("l2", 0.01)),
                              D(3, "softmax")], ADAM, CCE, ["accuracy"], "cce", 22, 8, 3),
    C("adam_amsgrad_cce_logits_gelu", 7, [D(9, "gelu"), D(4)], ADAMS, CCEL,
      ["categorical_accuracy"], "cce", 26, 8, 3),
    C("adamw_cce_smoothing_elu_l1", 6, [D(8, "elu", kernel_regularizer=("l1", 0.01)),
                                        D(3, "softmax")], ADAMW, CCES, ["accuracy"],
      "cce", 22, 8, 3),
    C("adamw_wd0.1_scce_softplus", 5, [D(8, "softplus"), D(4, "softmax")], ADAMW1, SCCE,
      ["accuracy"], "scce", 21, 8, 3),
    C("rmsprop_scce_logits_labels_n1", 6, [D(8, "tanh"), D(3)], RMS, SCCEL,
      ["sparse_categorical_accuracy"], "scce1", 22, 8, 3),
    C("rmsprop_momentum_bce_sigmoid", 6, [D(8, "relu"), D(1, "sigmoid")], RMSM, BCE,
      ["accuracy"], "bce", 22, 8, 3),
    C("rmsprop_centered_bce_logits_multilabel", 6, [D(8, "elu"), D(3)], RMSC, BCEL,
      ["accuracy", "binary_accuracy"], "bce", 22, 8, 3),
    C("adagrad_bce_smoothing", 5, [D(7, "softplus"), D(1, "sigmoid")], ADAG, BCES,
      ["binary_accuracy"], "bce", 20, 8, 3),
    C("adagrad_cce_sigmoid", 6, [D(8, "sigmoid"), D(3, "softmax")], ADAG, CCE,
      ["accuracy"], "cce", 24, 8, 2),
    C("rmsprop_mse_deep_tanh_sigmoid", 6, [D(8, "tanh"), D(6, "sigmoid"), D(2)], RMS, MSE,
      [], "reg", 22, 8, 3),
    # --- clipping ---------------------------------------------------------------------
    C("sgd_clipnorm0.1_mse", 6, [D(8, "relu"), D(3)], dict(SGD, clipnorm=0.1), MSE, [],
      "reg", 22, 8, 3),
    C("adam_clipvalue0.01_cce", 6, [D(8, "tanh"), D(3, "softmax")],
      dict(ADAM, clipvalue=0.01), CCE, ["accuracy"], "cce", 22, 8, 3),
    C("sgd_momentum_global_clipnorm0.1_huber0.5", 6, [D(8, "relu"), D(3)],
      dict(SGDM, global_clipnorm=0.1), HUB5, [], "reg", 22, 8, 3),
    # --- losses -----------------------------------------------------------------------
    C("adam_scce_labels_n1_probs", 6, [D(8, "relu"), D(4, "softmax")], ADAM, SCCE,
      ["accuracy"], "scce1", 22, 8, 3),
    C("sgd_scce_logits_labels_n", 6, [D(8, "gelu"), D(3)], SGDM, SCCEL, ["accuracy"],
      "scce", 24, 8, 3),
    C("adam_bce_logits_single", 6, [D(8, "tanh"), D(1)], ADAM, BCEL, ["accuracy"], "bce",
      22, 8, 3),
    C("adam_mae_linear", 5, [D(6, "relu"), D(2)], ADAM, MAE, [], "reg", 20, 8, 3),
    C("adagrad_huber1_linear", 5, [D(6, "elu"), D(2)], ADAG, HUB, [], "reg", 20, 6, 3),
    # --- regularizers -----------------------------------------------------------------
    C("adam_mse_l1l2_biasl2_activityl2", 6,
      [D(8, "relu", kernel_regularizer=("l1_l2", (0.005, 0.01)),
         bias_regularizer=("l2", 0.01), activity_regularizer=("l2", 0.01)),
       D(3, "linear", kernel_regularizer=("l2", 0.01))], ADAM, MSE, [], "reg", 22, 8, 3),
    C("sgd_momentum_cce_activityl2_hidden", 6,
      [D(10, "tanh", activity_regularizer=("l2", 0.01)), D(3, "softmax")], SGDM, CCE,
      ["accuracy"], "cce", 22, 8, 3),
    # --- constraints ------------------------------------------------------------------
    C("adam_cce_maxnorm_bias_nonneg", 6,
      [D(8, "relu", kernel_constraint=MAXNORM, bias_constraint=NONNEG),
       D(3, "softmax")], ADAM, CCE, ["accuracy"], "cce", 22, 8, 3, colscale=True),
    C("sgd_mse_kernel_nonneg", 6, [D(8, "sigmoid", kernel_constraint=NONNEG), D(2)],
      SGD, MSE, [], "reg", 22, 8, 3),
    C("adam_cce_unitnorm", 6, [D(8, "relu", kernel_constraint=UNITNORM),
                               D(3, "softmax", kernel_constraint=UNITNORM)], ADAM, CCE,
      ["accuracy"], "cce", 22, 8, 3),
    C("rmsprop_mse_minmaxnorm", 6, [D(8, "tanh", kernel_constraint=MINMAX), D(2)], RMS,
      MSE, [], "reg", 22, 8, 3, colscale=True),
    # --- layer shapes -----------------------------------------------------------------
    C("adam_nobias_separate_softmax", 6,
      [D(8, "relu", use_bias=False), D(3, use_bias=False), A("softmax")], ADAM, CCE,
      ["categorical_accuracy"], "cce", 22, 8, 3),
    C("adamw_separate_activations", 6,
      [D(8), A("tanh"), D(6, "softplus"), D(3), A("softmax")], ADAMW, CCE, ["accuracy"],
      "cce", 22, 8, 3),
    # --- the seed's two models (examples/keras_seed.rs) ---------------------------------
    C("seed_model_a", 4, [D(7), A("sigmoid"), D(13), A("sigmoid"), D(5), A("softmax")],
      dict(ADAM, learning_rate=0.001), CCE, ["accuracy"], "cce", 24, 8, 3),
    C("seed_model_b", 5, [D(1, "softmax")], dict(ADAM, learning_rate=0.001), CCE,
      ["accuracy"], "cce", 16, 8, 2),
    # --- a longer run and a validation split -------------------------------------------
    C("long_adam_mlp_12_16_10", 12, [D(16, "relu"), D(10, "softmax")], ADAM, CCE,
      ["accuracy"], "cce", 64, 16, 10),
    C("adam_cce_valsplit", 6, [D(8, "relu"), D(3, "softmax")], ADAM, CCE, ["accuracy"],
      "cce", 32, 8, 3, vsplit=0.25),
]


def out_units(case):
    for l in reversed(case["layers"]):
        if l[0] == "D":
            return l[1]


def generate(rng):
    """Data and initial weights of every case (float32), in CASES order."""
    specs = []
    for case in CASES:
        N, K = case["N"], case["K"]
        C_ = out_units(case)
        x = rng.standard_normal((N, K)).astype(np.float32)
        t = rng.standard_normal((K, max(C_, 1)))
        z = x.astype(np.float64) @ t + 0.5 * rng.standard_normal((N, max(C_, 1)))
        tgt = case["target"]
        if tgt == "cce":
            y = np.eye(C_, dtype=np.float32)[np.argmax(z, axis=1)]
        elif tgt in ("scce", "scce1"):
            y = np.argmax(z, axis=1).astype(np.float32)
            if tgt == "scce1":
                y = y.reshape(N, 1)
        elif tgt == "bce":
            y = (z > 0).astype(np.float32)
        elif tgt == "reg":
            y = (np.tanh(x.astype(np.float64) @ t / math.sqrt(K))
                 + 0.1 * rng.standard_normal((N, C_))).astype(np.float32)
        weights = []
        fan_in = K
        for l in case["layers"]:
            if l[0] != "D":
                continue
            units, kw = l[1], l[3]
            lim = math.sqrt(6.0 / (fan_in + units))
            k = rng.uniform(-lim, lim, (fan_in, units)).astype(np.float32)
            if case["colscale"] and not weights:
                # first kernel's columns alternately x0.4 / x1.4 (float32 products), so
                # the norm constraints' lower and upper bounds both bite
                k = k * np.where(np.arange(units) % 2 == 0, 0.4, 1.4).astype(np.float32)
            weights.append(k)
            if kw.get("use_bias", True):
                weights.append((0.1 * rng.standard_normal(units)).astype(np.float32))
            fan_in = units
        specs.append({"x": x, "y": y, "w": weights})
    return specs


# ---------------------------------------------------------------------------------------
# Child: runs every case in one dtype.
# ---------------------------------------------------------------------------------------

def patch_float64_leaks():
    """The "float64_exact" run: make Keras's type promotion keep float64 (see the
    docstring).  `result_type` maps every 64-bit result to 32 bits on the jax backend
    (keras/src/backend/common/dtypes.py:240, applied at :276); with this, mean (and so
    the MSE / MAE / Huber / BCE losses and the mean-metric wrappers), tanh and argmax
    compute in float64 like everything else.  Only ever called in the f64x child."""
    from keras.src.backend.common import dtypes

    assert dtypes.result_type("float64") == "float32"  # the leak is there
    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    assert dtypes.result_type("float64") == "float64"
    assert dtypes.result_type("float64", "float32") == "float64"
    assert dtypes.result_type("float64", float) == "float64"


def assert_no_float32(model, x, y):
    """No float32 value anywhere in the traced train and test steps (forward, loss,
    regularizers, backward, clipping, optimizer, constraints, metrics)."""
    import jax

    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    train = str(jax.make_jaxpr(model.train_step)(state, (x, y)))
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 metrics_variables=True)
    test = str(jax.make_jaxpr(model.test_step)(state, (x, y)))
    assert "f64" in train and "f32" not in train and "f32" not in test


def child(dtype, spec_path, out_path):
    os.environ["KERAS_BACKEND"] = "jax"
    wide = dtype in ("f64", "f64x")
    if wide:
        os.environ["JAX_ENABLE_X64"] = "1"
    else:
        os.environ.pop("JAX_ENABLE_X64", None)
    import warnings

    warnings.simplefilter("ignore")
    import keras

    fx = "float64" if wide else "float32"
    npdt = np.float64 if wide else np.float32
    keras.config.set_floatx(fx)
    if dtype == "f64x":
        patch_float64_leaks()

    with open(spec_path) as f:
        spec = json.load(f)

    def arr(hexes, shape):
        a = np.array([unhx(s) for s in hexes], dtype=np.float64).reshape(shape)
        return a.astype(npdt)  # exact: f32 values, or their f64 widening

    def reg(r):
        if r is None:
            return None
        kind, v = r
        if kind == "l2":
            return keras.regularizers.L2(v)
        if kind == "l1":
            return keras.regularizers.L1(v)
        return keras.regularizers.L1L2(l1=v[0], l2=v[1])

    def con(c):
        if c is None:
            return None
        n = c["name"]
        if n == "max_norm":
            return keras.constraints.MaxNorm(max_value=c["max_value"], axis=c["axis"])
        if n == "non_neg":
            return keras.constraints.NonNeg()
        if n == "unit_norm":
            return keras.constraints.UnitNorm(axis=c["axis"])
        return keras.constraints.MinMaxNorm(min_value=c["min_value"],
                                            max_value=c["max_value"], rate=c["rate"],
                                            axis=c["axis"])

    def build(case):
        layers = [keras.Input((case["K"],), dtype=fx)]
        for l in case["layers"]:
            if l[0] == "D":
                kw = l[3]
                layers.append(keras.layers.Dense(
                    l[1], activation=l[2], use_bias=kw.get("use_bias", True),
                    kernel_regularizer=reg(kw.get("kernel_regularizer")),
                    bias_regularizer=reg(kw.get("bias_regularizer")),
                    activity_regularizer=reg(kw.get("activity_regularizer")),
                    kernel_constraint=con(kw.get("kernel_constraint")),
                    bias_constraint=con(kw.get("bias_constraint")),
                    dtype=fx))
            else:
                layers.append(keras.layers.Activation(l[1], dtype=fx))
        return keras.Sequential(layers)

    def optimizer(o):
        o = dict(o)
        name = o.pop("name")
        cls = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
               "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop,
               "adagrad": keras.optimizers.Adagrad}[name]
        return cls(**o)

    def loss_obj(l):
        l = dict(l)
        name = l.pop("name")
        cls = {"categorical_crossentropy": keras.losses.CategoricalCrossentropy,
               "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
               "binary_crossentropy": keras.losses.BinaryCrossentropy,
               "mean_squared_error": keras.losses.MeanSquaredError,
               "mean_absolute_error": keras.losses.MeanAbsoluteError,
               "huber": keras.losses.Huber}[name]
        return cls(**l)

    def compiled(case, w0):
        model = build(case)
        model.set_weights(w0)
        for v in model.weights:
            assert v.dtype == fx, (v.path, v.dtype)
        loss = loss_obj(case["loss"])
        model.compile(optimizer=optimizer(case["opt"]), loss=loss,
                      metrics=list(case["metrics"]) or None)
        assert loss.dtype == fx
        return model

    def resolved(model):
        cm = model._compile_metrics
        if cm is None:
            return []
        out = []
        for m in cm.metrics:
            fn = getattr(m, "_fn", None)
            out.append(fn.__name__ if fn is not None else type(m).__name__)
        return out

    results = []
    jit = None
    for case, data in zip(spec["cases"], spec["data"]):
        x = arr(data["x"], data["x_shape"])
        y = arr(data["y"], data["y_shape"])
        w0 = [arr(h, s) for h, s in zip(data["w"], data["w_shapes"])]
        B, E = case["B"], case["E"]
        n_train = len(x)
        if case["vsplit"]:
            n_train = int(math.floor(len(x) * (1.0 - case["vsplit"])))

        # 1. train_on_batch loop, then evaluate.
        model = compiled(case, w0)
        jit = model.jit_compile if jit is None else jit
        assert model.jit_compile == jit
        steps = []
        for _ in range(E):
            for i in range(0, n_train, B):
                j = min(i + B, n_train)
                logs = model.train_on_batch(x[i:j], y[i:j], return_dict=True)
                steps.append(logs["loss"])
        res_metrics = resolved(model)
        final = model.get_weights()
        ev = model.evaluate(x, y, batch_size=B, return_dict=True, verbose=0)

        # 2. fit from a fresh model and optimizer.
        model2 = compiled(case, w0)
        hist = model2.fit(x, y, batch_size=B, epochs=E, shuffle=False, verbose=0,
                          validation_split=case["vsplit"] or 0.0)
        fit_final = model2.get_weights()
        assert resolved(model2) == res_metrics
        if dtype == "f64x":
            assert_no_float32(model, x[:B], y[:B])

        results.append({
            "resolved_metrics": res_metrics,
            "step_losses": [hx(v) for v in steps],
            "final_weights": [hlist(w) for w in final],
            "evaluate": {k: hx(v) for k, v in ev.items()},
            "fit_history": {k: [hx(v) for v in vs] for k, vs in hist.history.items()},
            "fit_final_weights": [hlist(w) for w in fit_final],
        })
        print(f"[{dtype}] {case['name']}: {len(steps)} steps, loss {steps[0]:.6g} -> "
              f"{steps[-1]:.6g}, fit==tob weights: "
              f"{all(np.array_equal(a, b) for a, b in zip(final, fit_final))}",
              file=sys.stderr, flush=True)

    import jax

    with open(out_path, "w") as f:
        json.dump({"jit_compile": bool(jit), "results": results, "keras": keras.__version__,
                   "jax": jax.__version__}, f)


# ---------------------------------------------------------------------------------------
# Parent.
# ---------------------------------------------------------------------------------------

def reg_json(r):
    if r is None:
        return None
    kind, v = r
    if kind == "l2":
        return {"l1": 0.0, "l2": v}
    if kind == "l1":
        return {"l1": v, "l2": 0.0}
    return {"l1": v[0], "l2": v[1]}


def layer_json(l):
    if l[0] == "A":
        return {"class": "Activation", "activation": l[1]}
    kw = l[3]
    return {"class": "Dense", "units": l[1], "activation": l[2],
            "use_bias": kw.get("use_bias", True),
            "kernel_regularizer": reg_json(kw.get("kernel_regularizer")),
            "bias_regularizer": reg_json(kw.get("bias_regularizer")),
            "activity_regularizer": reg_json(kw.get("activity_regularizer")),
            "kernel_constraint": kw.get("kernel_constraint"),
            "bias_constraint": kw.get("bias_constraint")}


def opt_json(o):
    o = dict(o)
    for k in ("clipnorm", "clipvalue", "global_clipnorm"):
        o.setdefault(k, None)
    return o


def dumps(obj, indent=0):
    """JSON with the hex arrays on one line each (compact but diffable)."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, separators=(",", ":"))
        items = [f"{pad} {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def leak_size(a, b):
    """Max relative difference of the step losses, max relative and absolute difference
    of the final weights (train_on_batch loop) between two runs."""
    la = np.array([unhx(v) for v in a["step_losses"]])
    lb = np.array([unhx(v) for v in b["step_losses"]])
    wa = np.concatenate([[unhx(v) for v in w] for w in a["final_weights"]])
    wb = np.concatenate([[unhx(v) for v in w] for w in b["final_weights"]])
    rl = np.max(np.abs(la - lb) / np.maximum(np.abs(lb), 1e-300))
    aw = np.max(np.abs(wa - wb))
    rw = np.max(np.abs(wa - wb) / np.maximum(np.abs(wb), 1e-300))
    return f"losses rel {rl:.2e}, weights rel {rw:.2e} abs {aw:.2e}"


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names)
    rng = np.random.Generator(np.random.PCG64(SEED))
    specs = generate(rng)
    spec = {
        "cases": [{k: v for k, v in c.items()} for c in CASES],
        "data": [{"x": hlist(s["x"]), "x_shape": list(s["x"].shape),
                  "y": hlist(s["y"]), "y_shape": list(s["y"].shape),
                  "w": [hlist(w) for w in s["w"]],
                  "w_shapes": [list(w.shape) for w in s["w"]]} for s in specs],
    }
    with tempfile.TemporaryDirectory() as tmp:
        sp = os.path.join(tmp, "spec.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        res = {}
        for dt in ("f32", "f64", "f64x"):
            op = os.path.join(tmp, dt + ".json")
            env = dict(os.environ, KERAS_BACKEND="jax")
            env.pop("JAX_ENABLE_X64", None)
            if dt in ("f64", "f64x"):
                env["JAX_ENABLE_X64"] = "1"
            subprocess.run([sys.executable, os.path.abspath(__file__), "--child", dt, sp,
                            op], check=True, env=env)
            with open(op) as f:
                res[dt] = json.load(f)
    assert res["f32"]["jit_compile"] == res["f64"]["jit_compile"] == \
        res["f64x"]["jit_compile"]
    cases = []
    for i, (c, s, d) in enumerate(zip(CASES, specs, spec["data"])):
        r32, r64 = res["f32"]["results"][i], res["f64"]["results"][i]
        r64x = res["f64x"]["results"][i]
        assert r32["resolved_metrics"] == r64["resolved_metrics"] == \
            r64x["resolved_metrics"]
        out = {
            "name": c["name"],
            "input_dim": c["K"],
            "layers": [layer_json(l) for l in c["layers"]],
            "optimizer": opt_json(c["opt"]),
            "loss": dict(c["loss"]),
            "metrics": list(c["metrics"]),
            "resolved_metrics": r32["resolved_metrics"],
            "batch_size": c["B"],
            "epochs": c["E"],
            "validation_split": c["vsplit"],
            "x_shape": d["x_shape"], "x": d["x"],
            "y_shape": d["y_shape"], "y": d["y"],
            "initial_weights": d["w"],
        }
        for key, r in (("float32", r32), ("float64", r64), ("float64_exact", r64x)):
            out[key] = {k: r[k] for k in ("step_losses", "final_weights", "evaluate",
                                          "fit_history", "fit_final_weights")}
        cases.append(out)
        print(f"{c['name']}: float64 vs float64_exact: {leak_size(r64, r64x)}")
    doc = {
        "meta": {"keras": res["f32"]["keras"], "jax": res["f32"]["jax"],
                 "numpy": np.__version__, "python": platform.python_version(),
                 "jit_compile": res["f32"]["jit_compile"],
                 "generator": "tests/keras/gen_training.py"},
        "cases": cases,
    }
    text = dumps(doc) + "\n"
    json.loads(text)  # well-formed
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: {len(cases)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
