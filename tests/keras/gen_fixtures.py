#!/usr/bin/env python3
"""Generate Keras 3 parity fixtures for the `dense-kernel` crate.

Every case is one real `keras.layers.Dense` layer (JAX backend, CPU), built for
an input shape, given fixed weights with `set_weights`, and called on a fixed
input.  Next to Keras's output the file stores a float64 ground truth: the
exact dot product plus bias (rational arithmetic), then the activation
evaluated with mpmath at high precision and correctly rounded to float64.

How to run (from the repository root):

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy mpmath
    /tmp/kvenv/bin/python tests/keras/gen_fixtures.py

Versions used to produce the committed fixtures: keras 3.15.1, jax/jaxlib 0.10.2,
numpy 2.4.6, mpmath 1.4.1, Python 3.11, CPU only.

Outputs (next to this script):
    fixtures.txt  the fixtures (format described in its header)
    SUMMARY.txt   max |keras - truth| per case and NaN/inf pattern mismatches

The script is deterministic: all data comes from a seeded numpy Generator.
The Keras work runs in two child processes of this same script: one with
JAX_ENABLE_X64 unset (float32 cases) and one with JAX_ENABLE_X64=1 (float64
cases; without it JAX silently truncates float64 weights to float32).
"""

import math
import os
import subprocess
import sys
import tempfile
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_FIXTURES = os.path.join(HERE, "fixtures.txt")
OUT_SUMMARY = os.path.join(HERE, "SUMMARY.txt")
SEED = 20240611

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

NAN = float("nan")
INF = float("inf")

# --------------------------------------------------------------------------
# Activation specs: (keras_name, params) where params is an ordered list of
# (name, value).  Parameterized activations always carry all their params.
# --------------------------------------------------------------------------


def relu_p(ns, mv, t):
    return ("relu", [("negative_slope", ns), ("max_value", mv), ("threshold", t)])


ACTS = [
    ("linear", []),
    relu_p(0.0, None, 0.0),
    ("relu6", []),
    ("leaky_relu", [("negative_slope", 0.2)]),
    ("elu", [("alpha", 1.0)]),
    ("selu", []),
    ("celu", [("alpha", 1.0)]),
    ("gelu", [("approximate", False)]),
    ("gelu", [("approximate", True)]),
    ("sigmoid", []),
    ("hard_sigmoid", []),
    ("silu", []),
    ("swish", []),
    ("hard_silu", []),
    ("hard_swish", []),
    ("tanh", []),
    ("softplus", []),
    ("softsign", []),
    ("mish", []),
    ("exponential", []),
    ("log_sigmoid", []),
    ("hard_tanh", []),
    ("tanh_shrink", []),
    ("squareplus", [("b", 4.0)]),
    ("sparse_plus", []),
    ("soft_shrink", [("threshold", 0.5)]),
    ("hard_shrink", [("threshold", 0.5)]),
    ("sparse_sigmoid", []),
    ("threshold", [("threshold", 0.5), ("default_value", -1.0)]),
    ("softmax", []),
    ("log_softmax", []),
    ("sparsemax", []),
    # non-default parameters
    relu_p(0.1, 6.0, 0.5),
    relu_p(0.0, 6.0, 0.0),   # Keras's relu6 fast path inside ReLU.static_call
    relu_p(0.0, 4.0, 0.0),   # generic clip path
    relu_p(0.0, None, 0.5),
    relu_p(0.1, None, 0.5),
    relu_p(0.1, 6.0, 0.0),
    relu_p(0.0, None, -1.0),  # negative threshold: x kept on (-1, 0) (Keras formula)
    relu_p(0.1, None, 0.0),  # delegates to leaky_relu in Keras
    ("leaky_relu", [("negative_slope", 0.1)]),
    ("elu", [("alpha", 0.5)]),
    ("celu", [("alpha", 0.5)]),
    ("squareplus", [("b", 1.0)]),
    ("soft_shrink", [("threshold", 1.0)]),
    ("hard_shrink", [("threshold", 1.0)]),
    ("threshold", [("threshold", -0.25), ("default_value", 0.0)]),
]

# Parameters that float32 cannot represent exactly.  Keras (JAX backend) uses
# them at the layer's precision (weak-typed Python scalars / ops.cast), so for
# float32 layers the truth takes them rounded to float32 (see eff_spec).  These
# get a float32 (5, 9) case, a float64 (4, 8) case and a threshold probe case.
F32_PARAM_ACTS = [
    ("hard_shrink", [("threshold", 0.1)]),
    ("soft_shrink", [("threshold", 0.1)]),
    ("threshold", [("threshold", 0.1), ("default_value", 0.3)]),
    relu_p(0.3, 0.7, 0.1),
    ("leaky_relu", [("negative_slope", 0.01)]),
    ("elu", [("alpha", 0.3)]),
    ("celu", [("alpha", 0.3)]),
    ("squareplus", [("b", 0.1)]),
]

# squareplus with b < 0: NaN where x*x + b < 0 (Keras and truth alike).
SQUAREPLUS_NEG = ("squareplus", [("b", -1.0)])
SQUAREPLUS_NEG_PROBES = [-3.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 100.0, -100.0,
                         NAN, INF, -INF]

# Activations that get extra K = 4096 cases (input (1, 4096), units 2).
LONG_K_ACTS = [
    relu_p(0.0, None, 0.0),
    ("gelu", [("approximate", False)]),
    ("sigmoid", []),
    ("tanh", []),
    ("softmax", []),
    ("silu", []),
]

ROW_ACTS = ("softmax", "log_softmax", "sparsemax")
SUBSET = ("linear", "relu", "gelu", "sigmoid", "tanh", "softmax", "softplus", "silu")


def fmt_param(v):
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v))


def act_line(spec):
    name, params = spec
    return " ".join([name] + ["%s=%s" % (k, fmt_param(v)) for k, v in params])


def act_id(spec):
    name, params = spec
    s = name
    for k, v in params:
        short = "".join(w[0] for w in k.split("_"))
        s += "_%s%s" % (short, fmt_param(v))
    return s


def is_default(spec):
    """True for the plain default-parameter form of an activation (the one
    that gets every case); non-default variants get a reduced set."""
    name, params = spec
    defaults = {
        "relu": [("negative_slope", 0.0), ("max_value", None), ("threshold", 0.0)],
        "leaky_relu": [("negative_slope", 0.2)],
        "elu": [("alpha", 1.0)],
        "celu": [("alpha", 1.0)],
        "gelu": [("approximate", False)],
        "squareplus": [("b", 4.0)],
        "soft_shrink": [("threshold", 0.5)],
        "hard_shrink": [("threshold", 0.5)],
    }
    return name not in defaults or params == defaults[name]


# --------------------------------------------------------------------------
# Case construction (numpy only; no Keras in the parent process)
# --------------------------------------------------------------------------


class Case:
    def __init__(self, cid, spec, dtype, x, kernel, bias, note=None):
        self.cid = cid
        self.spec = spec
        self.dtype = dtype
        self.x = np.asarray(x, dtype=dtype)
        self.kernel = np.asarray(kernel, dtype=dtype)
        self.bias = None if bias is None else np.asarray(bias, dtype=dtype)
        self.note = note
        self.keras = None
        self.keras_dtype = None
        self.truth = None


def f32_neighbours(v):
    v = np.float32(v)
    return [float(np.nextafter(v, np.float32(-np.inf))), float(v),
            float(np.nextafter(v, np.float32(np.inf)))]


BASE_PROBES = [NAN, INF, -INF, 0.0, -0.0, 1e-40, -1e-40, 3.4e38, -3.4e38,
               -100.0, -88.75, -20.0, -1.0, -0.5, 0.5, 1.0, 3.0, 20.0, 88.75, 100.0]


def kinks(spec):
    name, params = spec
    d = dict(params)
    ks = []
    if name == "relu":
        ks += [0.0, d["threshold"]]
        if d["max_value"] is not None:
            ks.append(d["max_value"])
    elif name == "relu6":
        ks += [0.0, 6.0]
    elif name in ("leaky_relu", "elu", "celu", "selu"):
        ks += [0.0]
    elif name in ("hard_sigmoid", "hard_silu", "hard_swish"):
        ks += [-3.0, 3.0]
    elif name in ("hard_tanh", "sparse_plus", "sparse_sigmoid"):
        ks += [-1.0, 1.0]
    elif name in ("soft_shrink", "hard_shrink"):
        ks += [-d["threshold"], d["threshold"]]
    elif name == "threshold":
        ks += [d["threshold"]]
    elif name == "exponential":
        ks += [88.72283935546875, 88.7228469848633]  # around ln(FLT_MAX)
    out = []
    for k in ks:
        out += f32_neighbours(k)
    return out


def probe_values(spec):
    vals = []
    seen = set()
    for v in BASE_PROBES + kinks(spec):
        key = "nan" if v != v else (repr(float(np.float32(v))))
        if key in seen:
            continue
        seen.add(key)
        vals.append(v)
    return vals


def param_probe_values():
    """Probes around float32(0.1) and 0.7 for the F32_PARAM_ACTS cases."""
    vals = []
    for v in (0.1, -0.1, 0.7):
        vals += f32_neighbours(v)  # below, float32(v), above
    vals += [-1.0, -0.5, 0.0, -0.0, 0.5, 1.0, NAN, INF, -INF]
    return vals


def build_cases():
    rng = np.random.default_rng(SEED)
    # Cases added after the first committed fixtures draw from their own
    # stream so that the data of the original cases stays unchanged.
    rng2 = np.random.default_rng([SEED, 2])
    cases = []

    def norm(shape, std):
        return rng.standard_normal(shape) * std

    def norm2(shape, std):
        return rng2.standard_normal(shape) * std

    def rank4_case(aid, spec):
        x = norm2((2, 2, 2, 5), 1.0)
        w = norm2((5, 3), 0.8)
        b = norm2((3,), 0.5)
        return Case(aid + "__f32_2x2x2x5_u3_bias", spec, np.float32, x, w, b)

    def largez_case(aid, spec):
        # rows 2, 3 are the negations of rows 0, 1, so z spans about [-120, 120]
        x = norm2((2, 9), 1.0).astype(np.float32).astype(np.float64)
        x = np.concatenate([x, -x])
        w = norm2((9, 6), 1.0)
        w = w * (120.0 / np.max(np.abs(x @ w)))
        b = norm2((6,), 0.5)
        return Case(aid + "__f32_4x9_u6_bias_largez", spec, np.float32, x, w, b)

    def long_k_case(aid, spec):
        # x ~ N(0, 1); each kernel column rescaled so that z is about 1.25 and
        # -2.75 (both positive for relu), i.e. O(1)..O(3) after 4096 terms
        x = norm2((1, 4096), 1.0).astype(np.float32).astype(np.float64)
        w = norm2((4096, 2), 1.0)
        z = (x @ w).reshape(-1)
        target = np.array([1.25, 2.75 if spec[0] == "relu" else -2.75])
        w = w * (target / z)
        b = norm2((2,), 0.5)
        return Case(aid + "__f32_1x4096_u2_bias_normal", spec, np.float32, x, w, b)

    for spec in ACTS:
        aid = act_id(spec)
        name = spec[0]
        default = is_default(spec)

        # 1. float32 (5, 9) -> 6, bias
        x = norm((5, 9), 1.0)
        w = norm((9, 6), 0.6)
        b = norm((6,), 0.5)
        cases.append(Case(aid + "__f32_5x9_u6_bias", spec, np.float32, x, w, b))

        # 2. float32 rank 3 (2, 3, 7) -> 5, no bias
        x = norm((2, 3, 7), 1.0)
        w = norm((7, 5), 0.7)
        cases.append(Case(aid + "__f32_2x3x7_u5_nobias", spec, np.float32, x, w, None))

        # 3. rank 4 and large |z| (original stream for the first subset,
        # own stream for all other activations)
        if not (name in SUBSET and default):
            cases.append(rank4_case(aid, spec))
            cases.append(largez_case(aid, spec))
        if name in SUBSET and default:
            x = norm((2, 2, 2, 5), 1.0)
            w = norm((5, 3), 0.8)
            b = norm((3,), 0.5)
            cases.append(Case(aid + "__f32_2x2x2x5_u3_bias", spec, np.float32, x, w, b))

            # large |z|: rescale the kernel so max |z| ~ 115
            x = norm((4, 9), 1.0).astype(np.float32).astype(np.float64)
            w = norm((9, 6), 1.0)
            z = x @ w
            w = w * (115.0 / np.max(np.abs(z)))
            b = norm((6,), 0.5)
            cases.append(Case(aid + "__f32_4x9_u6_bias_largez", spec, np.float32, x, w, b))

        # 3b. long sums K = 4096. The (2, 4096) -> 3 cases are ~0.2 MB of text
        # each, so only `linear` gets them; the activations of LONG_K_ACTS get
        # one smaller (1, 4096) -> 2 case each (long_k_case).
        if spec == ("linear", []):
            x = rng.uniform(0.0, 1.0, (2, 4096))
            w = rng.uniform(0.0, 1.0, (4096, 3))
            b = rng.uniform(0.0, 1.0, (3,))
            cases.append(Case(aid + "__f32_2x4096_u3_bias_positive", spec, np.float32, x, w, b))
        if spec == ("linear", []):
            x = norm((2, 4096), 1.0)
            w = norm((4096, 3), 0.03)
            b = norm((3,), 0.5)
            cases.append(Case(aid + "__f32_2x4096_u3_bias_normal", spec, np.float32, x, w, b))

        if spec in LONG_K_ACTS:
            cases.append(long_k_case(aid, spec))

        # 4. float64 (4, 8) -> 5, bias
        x = norm((4, 8), 1.0)
        w = norm((8, 5), 0.65)
        b = norm((5,), 0.5)
        cases.append(Case(aid + "__f64_4x8_u5_bias", spec, np.float64, x, w, b))

        # 5. special-value probes (element-wise activations only)
        if name not in ROW_ACTS:
            pv = probe_values(spec)
            x = np.array(pv, dtype=np.float32).reshape(len(pv), 1)
            cases.append(Case(aid + "__f32_probe", spec, np.float32, x, [[1.0]], None))

        # 6. row probes
        if name in ROW_ACTS:
            rows = [
                ("inf", [1.0, INF, 2.0]),
                ("nan", [NAN, 1.0, 2.0]),
                ("neginf", [-INF, 1.0, 2.0]),
                ("allneginf", [-INF, -INF, -INF]),
                ("wide", [100.0, -100.0, 50.0, 0.0]),
                ("huge", [1e30, -1e30, 0.0]),
                ("ties", [2.0, 2.0, 2.0, 2.0]),
                ("close", [1.0, 0.9]),
                ("single", [5.0]),
                ("mixed", [0.1, 0.2, 0.3, 3.0]),
            ]
            for rid, row in rows:
                cases.append(Case(aid + "__f32_row_" + rid, spec, np.float32,
                                  [[1.0]], [row], None))

    # parameters that float32 cannot represent exactly
    for spec in F32_PARAM_ACTS:
        aid = act_id(spec)
        x = norm2((5, 9), 1.0)
        w = norm2((9, 6), 0.6)
        b = norm2((6,), 0.5)
        cases.append(Case(aid + "__f32_5x9_u6_bias", spec, np.float32, x, w, b))
        x = norm2((4, 8), 1.0)
        w = norm2((8, 5), 0.65)
        b = norm2((5,), 0.5)
        cases.append(Case(aid + "__f64_4x8_u5_bias", spec, np.float64, x, w, b))
        pv = param_probe_values()
        x = np.array(pv, dtype=np.float32).reshape(len(pv), 1)
        cases.append(Case(aid + "__f32_probe", spec, np.float32, x, [[1.0]], None))

    # squareplus with negative b
    pv = SQUAREPLUS_NEG_PROBES
    x = np.array(pv, dtype=np.float32).reshape(len(pv), 1)
    cases.append(Case(act_id(SQUAREPLUS_NEG) + "__f32_probe", SQUAREPLUS_NEG, np.float32,
                      x, [[1.0]], None))

    ids = [c.cid for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


# --------------------------------------------------------------------------
# Keras side (runs in a child process)
# --------------------------------------------------------------------------


def keras_activation(spec):
    import keras
    name, params = spec
    a = keras.activations
    d = dict(params)
    if name == "relu":
        return lambda t: a.relu(t, negative_slope=d["negative_slope"],
                                max_value=d["max_value"], threshold=d["threshold"])
    if name == "leaky_relu":
        return lambda t: a.leaky_relu(t, negative_slope=d["negative_slope"])
    if name == "elu":
        return lambda t: a.elu(t, alpha=d["alpha"])
    if name == "celu":
        return lambda t: a.celu(t, alpha=d["alpha"])
    if name == "gelu":
        return lambda t: a.gelu(t, approximate=d["approximate"])
    if name == "squareplus":
        return lambda t: a.squareplus(t, b=d["b"])
    if name in ("soft_shrink", "hard_shrink"):
        fn = getattr(a, name)
        return lambda t: fn(t, threshold=d["threshold"])
    if name == "threshold":
        return lambda t: a.threshold(t, d["threshold"], d["default_value"])
    assert not params
    return name  # resolved by keras.activations.get (covers swish/hard_swish)


def keras_child(npz_in, npz_out, want_dtype):
    import warnings
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ["KERAS_BACKEND"] = "jax"
    warnings.simplefilter("ignore")
    import jax
    import keras
    assert keras.__version__ == "3.15.1", keras.__version__
    assert keras.backend.backend() == "jax"
    if want_dtype == "float64":
        assert jax.config.jax_enable_x64, "float64 child needs JAX_ENABLE_X64=1"
    else:
        assert not jax.config.jax_enable_x64
    import ast
    data = np.load(npz_in, allow_pickle=False)
    n = int(data["n"])
    res = {}
    for i in range(n):
        spec = ast.literal_eval(str(data["spec%d" % i]))
        spec = (spec[0], [tuple(p) for p in spec[1]])
        x = data["x%d" % i]
        kern = data["k%d" % i]
        has_bias = ("b%d" % i) in data
        assert x.dtype == np.dtype(want_dtype)
        layer = keras.layers.Dense(kern.shape[1], activation=keras_activation(spec),
                                   use_bias=has_bias, dtype=want_dtype)
        layer.build(x.shape)
        weights = [kern] + ([data["b%d" % i]] if has_bias else [])
        layer.set_weights(weights)
        # the weights must really be stored at the requested precision
        for wv, wn in zip(layer.get_weights(), weights):
            assert wv.dtype == np.dtype(want_dtype), (wv.dtype, want_dtype)
            assert np.array_equal(wv, wn, equal_nan=True)
        y = np.asarray(layer(x))
        assert y.shape == x.shape[:-1] + (kern.shape[1],), y.shape
        res["y%d" % i] = y
    np.savez(npz_out, **res)


def run_keras(cases, dtype_name):
    with tempfile.TemporaryDirectory() as td:
        fin = os.path.join(td, "in.npz")
        fout = os.path.join(td, "out.npz")
        arrs = {"n": np.array(len(cases))}
        for i, c in enumerate(cases):
            arrs["spec%d" % i] = np.array(repr(c.spec))
            arrs["x%d" % i] = c.x
            arrs["k%d" % i] = c.kernel
            if c.bias is not None:
                arrs["b%d" % i] = c.bias
        np.savez(fin, **arrs)
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "jax"
        env["JAX_PLATFORMS"] = "cpu"
        if dtype_name == "float64":
            env["JAX_ENABLE_X64"] = "1"
        else:
            env.pop("JAX_ENABLE_X64", None)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--keras-child",
                        fin, fout, dtype_name], check=True, env=env)
        out = np.load(fout)
        for i, c in enumerate(cases):
            y = out["y%d" % i]
            c.keras_dtype = str(y.dtype)
            c.keras = y


# --------------------------------------------------------------------------
# Ground truth (exact z, activation in mpmath, correctly rounded to float64)
# --------------------------------------------------------------------------

import mpmath  # noqa: E402

mp = mpmath.mp
PRECS = (640, 1280)  # evaluate at both (more if needed); the rounded results must agree


def mpf_to_float(v):
    """Correctly rounded (nearest-even) conversion of an mpf to float64,
    keeping the sign of results that underflow to zero."""
    v = mpmath.mpf(v)
    if mpmath.isnan(v):
        return NAN
    if mpmath.isinf(v):
        return INF if v > 0 else -INF
    if v == 0:
        return 0.0
    sign, man, exp, bc = v._mpf_
    s = -1.0 if sign else 1.0
    if exp + bc < -1080:
        return s * 0.0
    if exp + bc > 1030:
        return s * INF
    fr = Fraction(man) * (Fraction(2) ** exp)
    try:
        return s * float(fr)
    except OverflowError:
        return s * INF


def exact_z(x_row, kcol, bias):
    """Exact x.w + b. Non-finite terms follow IEEE float64 rules (the f32/f64
    inputs promoted to f64; inf*0 = nan, inf + -inf = nan)."""
    terms = [float(a) * float(b) for a, b in zip(x_row, kcol)]
    if bias is not None:
        terms.append(float(bias))
    if not all(math.isfinite(t) for t in terms) or not all(
            math.isfinite(float(a)) for a in x_row) or not all(
            math.isfinite(float(b)) for b in kcol):
        s = -0.0  # IEEE additive identity (keeps -0.0)
        for t in terms:
            s += t
        # an inf/nan input makes z non-finite unless everything else was 0
        if math.isfinite(s):
            # e.g. a finite combination after all (cannot happen with the
            # cases generated here); fall through to exact arithmetic
            pass
        else:
            return s
    acc = Fraction(0)
    for a, b in zip(x_row, kcol):
        acc += Fraction(float(a)) * Fraction(float(b))
    if bias is not None:
        acc += Fraction(float(bias))
    if acc == 0:
        # sign of an exactly-zero z: follow IEEE (matters only for z = -0.0)
        s = -0.0
        for t in terms:
            s += t
        return s
    return acc


def to_mpf(z):
    if isinstance(z, Fraction):
        return mpmath.mpf(z.numerator) / z.denominator
    return mpmath.mpf(z)


# activations whose value at -0.0 is -0.0 under IEEE evaluation (odd near 0)
SIGNED_ZERO = {"linear", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
               "hard_silu", "hard_swish", "tanh", "softsign", "mish", "hard_tanh"}


def elementwise_mp(spec, z):
    """Activation of a finite mpf z, at the current mp precision."""
    name, params = spec
    d = dict(params)
    one = mpmath.mpf(1)
    if name == "linear":
        return z
    if name == "relu":
        ns, mv, t = d["negative_slope"], d["max_value"], d["threshold"]
        ns_m, t_m = mpmath.mpf(ns), mpmath.mpf(t)
        # Keras ReLU.static_call, evaluated exactly
        if ns != 0.0 and mv is None and t == 0:
            return z if z >= 0 else ns_m * z
        neg_part = max(t_m - z, 0) if ns != 0.0 else None
        if t != 0:
            y = z if z > t_m else mpmath.mpf(0)
            clip = mv is not None
        elif mv == 6:
            y = min(max(z, 0), 6)
            clip = False
        else:
            y = max(z, 0)
            clip = mv is not None
        if clip:
            y = min(max(y, 0), mpmath.mpf(mv))
        if ns != 0.0:
            y = y - ns_m * neg_part
        return y
    if name == "relu6":
        return min(max(z, 0), 6)
    if name == "leaky_relu":
        return z if z >= 0 else mpmath.mpf(d["negative_slope"]) * z
    if name == "elu":
        return z if z > 0 else mpmath.mpf(d["alpha"]) * mpmath.expm1(z)
    if name == "selu":
        return mpmath.mpf(SELU_SCALE) * (z if z > 0 else mpmath.mpf(SELU_ALPHA) * mpmath.expm1(z))
    if name == "celu":
        al = mpmath.mpf(d["alpha"])
        return max(z, 0) + al * mpmath.expm1(min(z, 0) / al)
    if name == "gelu":
        if d["approximate"]:
            u = mpmath.sqrt(2 / mpmath.pi) * (z + mpmath.mpf("0.044715") * z ** 3)
            # 0.5*z*(1 + tanh(u)) == z / (1 + exp(-2u))  (no cancellation)
            return z / (1 + mpmath.exp(-2 * u))
        return z / 2 * mpmath.erfc(-z / mpmath.sqrt(2))
    if name == "sigmoid":
        return one / (1 + mpmath.exp(-z))
    if name == "hard_sigmoid":
        return min(max(z + 3, 0), 6) / 6
    if name in ("silu", "swish"):
        return z / (1 + mpmath.exp(-z))
    if name in ("hard_silu", "hard_swish"):
        return z * (min(max(z + 3, 0), 6) / 6)
    if name == "tanh":
        return mpmath.tanh(z)
    if name == "softplus":
        return mpmath.log1p(mpmath.exp(z))
    if name == "softsign":
        return z / (1 + abs(z))
    if name == "mish":
        return z * mpmath.tanh(mpmath.log1p(mpmath.exp(z)))
    if name == "exponential":
        return mpmath.exp(z)
    if name == "log_sigmoid":
        return -mpmath.log1p(mpmath.exp(-z))
    if name == "hard_tanh":
        return min(max(z, -1), 1)
    if name == "tanh_shrink":
        return z - mpmath.tanh(z)
    if name == "squareplus":
        b = mpmath.mpf(d["b"])
        if z * z + b < 0:
            return mpmath.nan  # b < 0 and |z| < sqrt(-b): sqrt of a negative
        r = mpmath.sqrt(z * z + b)
        return (z + r) / 2 if z >= 0 else b / (2 * (r - z))
    if name == "sparse_plus":
        if z <= -1:
            return mpmath.mpf(0)
        if z >= 1:
            return z
        return (z + 1) ** 2 / 4
    if name == "soft_shrink":
        t = mpmath.mpf(d["threshold"])
        return z - t if z > t else (z + t if z < -t else mpmath.mpf(0))
    if name == "hard_shrink":
        return z if abs(z) > mpmath.mpf(d["threshold"]) else mpmath.mpf(0)
    if name == "sparse_sigmoid":
        return min(max((z + 1) / 2, 0), 1)
    if name == "threshold":
        return z if z > mpmath.mpf(d["threshold"]) else mpmath.mpf(d["default_value"])
    raise ValueError(name)


def elementwise_special(spec, z):
    """Truth for non-finite z (a float): NaN or +-inf."""
    name, params = spec
    d = dict(params)
    if z != z:
        # NaN: propagate, except where Keras's formula is a select on a comparison
        if name in ("soft_shrink", "hard_shrink"):
            return 0.0
        if name == "threshold":
            return float(d["default_value"])
        if name == "relu" and d["threshold"] != 0 and d["negative_slope"] == 0.0:
            # where(x > t, x, 0) then (optional) clip: NaN -> 0 in Keras's formula
            return 0.0
        return NAN
    pos = z > 0
    if name == "relu":
        ns, mv, t = d["negative_slope"], d["max_value"], d["threshold"]
        if pos:
            return INF if mv is None else float(mv)
        return -INF if ns > 0 else 0.0
    if name == "threshold":
        return INF if pos else float(d["default_value"])
    table = {
        # name: (f(+inf), f(-inf))  -- mathematical limits
        "linear": (INF, -INF), "relu6": (6.0, 0.0), "leaky_relu": (INF, -INF),
        "elu": (INF, -d.get("alpha", 1.0)), "celu": (INF, -d.get("alpha", 1.0)),
        "selu": (INF, -SELU_SCALE * SELU_ALPHA), "gelu": (INF, -0.0),
        "sigmoid": (1.0, 0.0), "hard_sigmoid": (1.0, 0.0), "silu": (INF, -0.0),
        "swish": (INF, -0.0), "hard_silu": (INF, -0.0), "hard_swish": (INF, -0.0),
        "tanh": (1.0, -1.0), "softplus": (INF, 0.0), "softsign": (1.0, -1.0),
        "mish": (INF, -0.0), "exponential": (INF, 0.0), "log_sigmoid": (-0.0, -INF),
        "hard_tanh": (1.0, -1.0), "tanh_shrink": (INF, -INF), "squareplus": (INF, 0.0),
        "sparse_plus": (INF, 0.0), "soft_shrink": (INF, -INF), "hard_shrink": (INF, -INF),
        "sparse_sigmoid": (1.0, 0.0),
    }
    v = table[name][0 if pos else 1]
    if name == "squareplus" and not pos and d["b"] < 0:
        v = -0.0  # b/(2(sqrt(z^2+b) - z)) tends to 0 from below
    if name == "selu" and not pos:
        # exact -scale*alpha, correctly rounded
        with mpmath.workprec(PRECS[0]):
            v = mpf_to_float(-mpmath.mpf(SELU_SCALE) * mpmath.mpf(SELU_ALPHA))
    return v


MAX_PREC = 1 << 19


def mpf_to_fraction(v):
    sign, man, exp, bc = v._mpf_
    r = Fraction(man) * (Fraction(2) ** exp)
    return -r if sign else r


def near_f64_midpoint(v, prec):
    """True if the mpf v (computed at `prec` bits) lies so close to the
    midpoint between two adjacent float64 values that the correctly rounded
    float64 of the true value is not decided by v."""
    if not mpmath.isfinite(v) or v == 0:
        return False
    f = mpf_to_float(v)
    if f == 0.0 or not math.isfinite(f):
        return False
    V = mpf_to_fraction(v)
    F = Fraction(f)
    tol = abs(V) / (Fraction(2) ** (prec - 32))
    for nb in (math.nextafter(f, -INF), math.nextafter(f, INF)):
        if math.isfinite(nb) and abs(V - (F + Fraction(nb)) / 2) <= tol:
            return True
    return False


def needs_tie_check(spec, z):
    """True where the activation is computed with a transcendental function
    (then its value cannot be exactly a float64 midpoint, and a value that
    looks like one means the working precision was too low, e.g. gelu(z) =
    z * (1 - tiny) with z itself a midpoint).  Rational branches are exact in
    mpmath and may legitimately be ties."""
    name = spec[0]
    if name in ("elu", "selu"):
        return z <= 0
    if name == "celu":
        return z < 0
    return name in ("gelu", "sigmoid", "silu", "swish", "tanh", "softplus", "mish",
                    "exponential", "log_sigmoid", "tanh_shrink", "squareplus")


def evaluate_rounded(fn, tie_check, what):
    """Evaluate fn() (a list of mpf) at PRECS[0], PRECS[1], then doubling
    precisions, until two consecutive precisions round to the same float64s
    (sign of zero included) and, if tie_check, none of the values is within
    the working precision of a float64 midpoint.  Returns the float64s."""
    def key(f):
        return "nan" if f != f else (f, math.copysign(1.0, f))
    prev = None
    prec = PRECS[0]
    while True:
        with mpmath.workprec(prec):
            vals = fn()
            fl = [mpf_to_float(v) for v in vals]
            amb = tie_check and any(near_f64_midpoint(v, prec) for v in vals)
        if (prev is not None and [key(f) for f in fl] == [key(f) for f in prev]
                and not amb and prec >= PRECS[1]):
            return fl
        assert prec < MAX_PREC, ("truth not decided", what, prec, fl)
        prev = fl
        prec = PRECS[1] if prec == PRECS[0] else 2 * prec


def elementwise_truth(spec, z):
    if not isinstance(z, Fraction):
        if not math.isfinite(z):
            return elementwise_special(spec, z)
        if z == 0.0:
            r = elementwise_truth(spec, Fraction(0))
            if r == 0.0 and math.copysign(1.0, z) < 0 and spec[0] in SIGNED_ZERO:
                return -0.0
            return r
        z = Fraction(z)
    check = needs_tie_check(spec, z)
    a = evaluate_rounded(lambda: [elementwise_mp(spec, to_mpf(z))], check, (spec, z))[0]
    # sign of zero: hard_silu(x <= -3) = x * 0 -> -0.0 (as the -inf limit)
    if a == 0.0 and spec[0] in ("hard_silu", "hard_swish") and z < 0:
        return -0.0
    return a


def row_truth(name, zs):
    """softmax / log_softmax / sparsemax of one row of z (Fractions or floats)."""
    n = len(zs)
    isnan = [not isinstance(z, Fraction) and z != z for z in zs]
    ispinf = [not isinstance(z, Fraction) and z == INF for z in zs]
    isninf = [not isinstance(z, Fraction) and z == -INF for z in zs]
    if any(isnan) or any(ispinf) or all(isninf):
        return [NAN] * n
    fin = [i for i in range(n) if not isninf[i]]
    zf = [z if isinstance(z, Fraction) else Fraction(z) for z in (zs[i] for i in fin)]
    out = [0.0 if name != "log_softmax" else -INF] * n
    if name == "sparsemax":
        # Martins & Astudillo (2016), exact rational arithmetic
        srt = sorted(zf, reverse=True)
        cum = Fraction(0)
        k, cum_k = 0, Fraction(0)
        for j, v in enumerate(srt, start=1):
            cum += v
            if 1 + j * v > cum:
                k, cum_k = j, cum
        tau = (cum_k - 1) / k
        ps = [max(v - tau, Fraction(0)) for v in zf]
        assert sum(ps) == 1
        for i, p in zip(fin, ps):
            out[i] = float(p)
        return out

    def evaluate():
        zm = [to_mpf(v) for v in zf]
        m = max(zm)
        e = [mpmath.exp(v - m) for v in zm]
        s = mpmath.fsum(e)
        if name == "softmax":
            return [v / s for v in e]
        ls = mpmath.log(s)
        return [(v - m) - ls for v in zm]
    res = [evaluate_rounded(evaluate, True, (name, zs))]
    for i, v in zip(fin, res[0]):
        out[i] = v
    return out


def eff_spec(spec, dtype):
    """The activation spec with its numeric parameters at the layer's
    precision: Keras (JAX backend) applies Python-float parameters to a
    float32 tensor as float32 values (weak typing / ops.cast), so for float32
    layers the truth uses each parameter rounded to float32."""
    if dtype != np.float32:
        return spec
    name, params = spec
    out = []
    for k, v in params:
        if isinstance(v, float):
            v = float(np.float32(v))
        out.append((k, v))
    return (name, out)


def compute_truth(c):
    spec = eff_spec(c.spec, c.dtype)
    x2 = c.x.reshape(-1, c.x.shape[-1])
    n_units = c.kernel.shape[1]
    rows = []
    for r in range(x2.shape[0]):
        zs = [exact_z(x2[r], c.kernel[:, j], None if c.bias is None else c.bias[j])
              for j in range(n_units)]
        if spec[0] in ROW_ACTS:
            rows.append(row_truth(spec[0], zs))
        else:
            rows.append([elementwise_truth(spec, z) for z in zs])
    c.truth = np.array(rows, dtype=np.float64).reshape(c.x.shape[:-1] + (n_units,))


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


F32_MAX = Fraction(float(np.finfo(np.float32).max))
F32_OVERFLOW = F32_MAX + Fraction(2) ** 103  # half an ulp above FLT_MAX


def f32_rounds_to(text, v):
    """True if the decimal `text` rounds (nearest, ties to even) to the
    float32 `v` when parsed directly as float32 (as Rust's str::parse::<f32>
    does), checked exactly with rationals, and also when parsed as float64
    first and then rounded to float32."""
    v = np.float32(v)
    if np.isnan(v):
        return text == "nan"
    if np.isinf(v):
        return text == ("inf" if v > 0 else "-inf")
    d = Fraction(text)
    if d == 0 or v == 0:
        ok = d == 0 and v == 0 and text.startswith("-") == bool(np.signbit(v))
    else:
        fv = Fraction(float(v))
        with np.errstate(over="ignore"):
            lo = np.nextafter(v, np.float32(-np.inf))
            hi = np.nextafter(v, np.float32(np.inf))
        # beyond +-FLT_MAX the rounding boundary is +-F32_OVERFLOW
        lo = -F32_OVERFLOW * 2 - fv if np.isinf(lo) else Fraction(float(lo))
        hi = F32_OVERFLOW * 2 - fv if np.isinf(hi) else Fraction(float(hi))
        m_lo, m_hi = (lo + fv) / 2, (fv + hi) / 2
        even = int(np.abs(v).view(np.uint32)) % 2 == 0
        ok = (m_lo < d < m_hi) or (even and d in (m_lo, m_hi))
    via64 = np.float32(float(text))
    return ok and via64.tobytes() == v.tobytes()


def fmt_f32(v):
    """Shortest decimal that round-trips to the float32 v; 'nan', 'inf',
    '-inf' for specials; positional for 1e-4 <= |v| < 1e16 like Python's repr,
    otherwise scientific (e.g. 1e-40, 3.4e+38)."""
    v = np.float32(v)
    if np.isnan(v):
        t = "nan"
    elif np.isinf(v):
        t = "inf" if v > 0 else "-inf"
    elif v == 0 or 1e-4 <= abs(float(v)) < 1e16:
        t = np.format_float_positional(v, unique=True, trim="0")
    else:
        t = np.format_float_scientific(v, unique=True, trim="-", exp_digits=1)
    assert f32_rounds_to(t, v), (t, float(v))
    return t


def fmt_vals(a, f32=False):
    a = np.asarray(a).reshape(-1)
    if f32:
        assert a.dtype == np.float32, a.dtype
        return " ".join(fmt_f32(v) for v in a)
    return " ".join(repr(float(v)) for v in a)


HEADER = """\
# Keras 3 Dense-layer parity fixtures for dense-kernel. GENERATED FILE, do not edit.
# Produced by tests/keras/gen_fixtures.py (keras 3.15.1, jax 0.10.2 CPU backend,
# numpy 2.4.6, mpmath 1.4.1); see that script's docstring to regenerate.
#
# Format (whitespace-separated tokens, '#' lines are comments):
#   case <id> / activation <name> [param=value ...] / dtype float32|float64 /
#   input_shape <dims...> / units <N> / use_bias 1|0 / input <values> /
#   kernel <values, (K, N) C order> / [bias <values>] / keras <values> /
#   truth <values> / end
# Values: in float32 cases, input/kernel/bias/keras are written as the shortest
# decimal that rounds (nearest-even) to the same float32, e.g. 0.1, 1e-40,
# 3.4e+38, nan, inf, -inf (parse them directly as f32); truth is always
# repr(float(v)) (shortest round-trip float64). Float64 cases use repr(float(v))
# everywhere. Parameters (param=value) are written as given to Keras; for
# float32 layers they are taken at float32 precision (Keras/JAX casts them to
# the tensor dtype, e.g. threshold=0.1 compares x > float32(0.1)), and the
# truth does the same; float64 layers use them as float64.
# keras = real keras.layers.Dense output. truth = exact x.w + b (rational
# arithmetic on the same f32/f64 inputs) followed by the activation evaluated in
# mpmath (640 and 1280 bits, cross-checked, and at doubled precisions where
# that does not yet decide the rounding) and correctly rounded to float64.
# Truth follows the mathematical definitions: sparsemax per Martins & Astudillo
# 2016 (Keras 3.15.1's sparsemax is wrong), limits at +-inf (e.g. gelu(-inf) =
# -0.0), no float32 overflow/flush-to-zero; relu with parameters follows
# Keras's ReLU.static_call formula exactly (NaN -> 0 when threshold != 0 and
# negative_slope == 0, because of where(x > t, x, 0)); hard_shrink/soft_shrink
# (NaN) = 0 and threshold(NaN) = default_value as in Keras; squareplus with
# b < 0 is NaN where x*x + b < 0 (as in Keras) and -0.0 at -inf (the limit).
# Lines "# keras_output_dtype float32" before a float64 case mark activations
# for which Keras 3.15.1 returns float32 from a float64 layer.
"""


def write_fixtures(cases):
    lines = [HEADER.rstrip("\n")]
    for c in cases:
        if c.dtype == np.float64 and c.keras_dtype != "float64":
            lines.append("# keras_output_dtype %s" % c.keras_dtype)
        lines.append("case " + c.cid)
        lines.append("activation " + act_line(c.spec))
        lines.append("dtype " + ("float32" if c.dtype == np.float32 else "float64"))
        lines.append("input_shape " + " ".join(str(d) for d in c.x.shape))
        lines.append("units %d" % c.kernel.shape[1])
        lines.append("use_bias %d" % (0 if c.bias is None else 1))
        f32 = c.dtype == np.float32
        if f32:
            assert c.keras_dtype == "float32", (c.cid, c.keras_dtype)
        lines.append("input " + fmt_vals(c.x, f32))
        lines.append("kernel " + fmt_vals(c.kernel, f32))
        if c.bias is not None:
            lines.append("bias " + fmt_vals(c.bias, f32))
        lines.append("keras " + fmt_vals(c.keras, f32))
        lines.append("truth " + fmt_vals(c.truth))
        lines.append("end")
    with open(OUT_FIXTURES, "w") as f:
        f.write("\n".join(lines) + "\n")


def cls(v):
    if v != v:
        return "nan"
    if v == INF:
        return "+inf"
    if v == -INF:
        return "-inf"
    return "fin"


def summarize(cases):
    out = ["# case_id activation dtype keras_dtype max_abs_diff(finite in both) "
           "max_rel_diff pattern_differs [mismatches: index keras truth]"]
    mism_cases = []
    for c in cases:
        k = np.asarray(c.keras, dtype=np.float64).reshape(-1)
        t = c.truth.reshape(-1)
        md, mr = 0.0, 0.0
        bad = []
        for i, (a, b) in enumerate(zip(k, t)):
            ca, cb = cls(a), cls(b)
            if ca != cb:
                bad.append("%d:%r/%r" % (i, float(a), float(b)))
            elif ca == "fin":
                d = abs(a - b)
                md = max(md, d)
                if b != 0:
                    mr = max(mr, d / abs(b))
        if bad:
            mism_cases.append(c.cid)
        out.append("%s %s %s %s %.3e %.3e %s%s" % (
            c.cid, act_line(c.spec).replace(" ", ","),
            "float32" if c.dtype == np.float32 else "float64", c.keras_dtype, md, mr,
            "DIFFERS" if bad else "same", (" " + " ".join(bad)) if bad else ""))
    text = "\n".join(out) + "\n"
    with open(OUT_SUMMARY, "w") as f:
        f.write(text)
    return text, mism_cases


def main():
    cases = build_cases()
    f32 = [c for c in cases if c.dtype == np.float32]
    f64 = [c for c in cases if c.dtype == np.float64]
    run_keras(f32, "float32")
    run_keras(f64, "float64")
    for c in cases:
        compute_truth(c)
        assert c.truth.shape == c.keras.shape, (c.cid, c.truth.shape, c.keras.shape)
    # sanity: sparsemax truth rows sum to 1
    for c in cases:
        if c.spec[0] == "sparsemax":
            for row in c.truth.reshape(-1, c.truth.shape[-1]):
                if not np.any(np.isnan(row)):
                    assert abs(math.fsum(row) - 1.0) < 1e-15, (c.cid, row)
    write_fixtures(cases)
    text, mism = summarize(cases)
    sys.stdout.write(text)
    f64_as_f32 = sorted({act_line(c.spec) for c in f64 if c.keras_dtype != "float64"})
    print("cases:", len(cases), " float32:", len(f32), " float64:", len(f64))
    print("float64 cases where Keras returned non-float64:", f64_as_f32)
    print("cases whose NaN/inf pattern differs:", len(mism))
    print("fixtures.txt bytes:", os.path.getsize(OUT_FIXTURES))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--keras-child":
        keras_child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
