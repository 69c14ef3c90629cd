#!/usr/bin/env python3
"""Real-Keras ground truth for the backward pass: every activation's vector-Jacobian
product, and the gradients of a whole Dense layer, as jax's autodiff gives them.

What is computed
----------------
Activations (tests/keras/backward.txt): for every shape-keeping Keras 3 activation the
crate has (src/activation/mod.rs, `Activation`), with Keras's defaults and a few other
parameter sets, Keras's own function is differentiated by jax:

    dz = jax.jit(lambda z, dy: jax.vjp(lambda z: keras.activations.X(z, **params), z)[1](dy)[0])

in float32 (JAX_ENABLE_X64 unset, as a float32 Keras model trains) and in float64
(JAX_ENABLE_X64=1), KERAS_BACKEND=jax, CPU.  Row-wise activations (softmax,
log_softmax, sparsemax) act on the last axis of a (rows, L) array, one length L per
call.  For sparsemax the file also holds `dzp`, the VJP of sparsemax as its paper
defines it (the crate's forward follows the paper, not Keras 3.15, whose rows do not sum
to 1): dz_i = dy_i - mean_{j in S} dy_j for i in the support S = {i : y_i > 0}, else 0;
computed exactly (rationals, via mpmath) and rounded once to the dtype; a row holding
NaN or +inf, or only -inf, gives a NaN row (the crate's forward convention); when some
dy_j (j in S) is not finite the mean is taken in float64 IEEE arithmetic.

Dense (tests/keras/backward_dense.txt): a real `keras.layers.Dense(N, activation=...)`
built for (M, K), called with `layer.stateless_call([W, b], [], x)` under `jax.vjp`:
the cotangents dL/dx, dL/dW, dL/db of L = sum(dy * Dense(x)) for given x, W, b, dy.

How to run (from the repository root), with the venv of gen_fixtures.py:

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy mpmath
    /tmp/kvenv/bin/python tests/keras/gen_backward.py

Versions used for the committed fixtures: keras 3.15.1, jax/jaxlib 0.10.2, numpy 2.4.6,
scipy 1.17.1, mpmath 1.4.1, Python 3.11, CPU (x86-64, AVX-512).

Outputs (next to this script):
    backward.txt          the activations' VJPs (format in its header)
    backward_dense.txt    the Dense gradients (format in its header)
    backward_summary.txt  the checks, also printed: the VJP formulas of
                          docs/BACKWARD_NOTES.md (numpy float64, jax's operation order)
                          against jax's float64 VJP; Keras's float32 VJP against its
                          float64 VJP at the same inputs; the row-wise formulas; the Dense
                          gradients against emulated summation orders; what XLA compiled
`gen_backward.py --table [f32|f64]` reads backward.txt back and prints the conventions
table of docs/BACKWARD_NOTES.md.  The Keras work runs in two child processes of this script
(`--child f32` with JAX_ENABLE_X64 unset, `--child f64` with JAX_ENABLE_X64=1), as in
gen_fixtures.py.  Everything is deterministic.

Input generator (SplitMix64, as in gen_long_sums.py; the Rust tests need not regenerate
anything: every input is stored in the files)
--------------------------------------------------------------------------------
    state = (state + 0x9E3779B97F4A7C15) mod 2^64; z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) mod 2^64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) mod 2^64; return z ^ (z >> 31)
uniform01() = (next_u64() >> 40) / 2^24.  normal() = f32((u1 + u2 + u3 + u4 - 2) *
1.7320508075688772) from four uniform01() draws (Irwin-Hall; as gen_long_sums.py).

Element-wise cases, float32 inputs (pairs (z, dy), in this order):
  1. for z in KINK5 + SPECIALS32 and dy in (1.0, r, 0.0): (z, dy), where KINK5 is, for
     each kink k of the case (rounded to float32, as Keras casts parameters), the five
     float32 values k-2, k-1, k, k+1, k+2 ulps (steps along the bit patterns), and r is a
     fresh normal();
  2. for z in CORE (the kinks, +-0, +-inf, NaN, +-1e30, +-FLT_MAX) and dy in
     (+inf, -inf, NaN): (z, dy);
  3. NRAND pairs: u = next_u64(), kind = u % 4, v = u >> 32: kind 0: z = the float32
     with bit pattern v (anything: NaN, inf, subnormal); kind 1, 2: z =
     f32((v >> 8) / 2^24 * 16 - 8) in [-8, 8); kind 3: a kink moved by
     ((v & 0xff) % 65) - 32 ulps; then dy = normal().
Float64 inputs: the float32 pairs widened (exact), then extras: for z in KINK5_64 +
SPECIALS64 and dy in (1.0, r): (z, dy), KINK5_64 being the kinks (float64) and their
neighbours at 1 and 2 float64 ulps.  So the f64 result at index i < n32 is the float64 VJP at the f32 case's inputs:
a near-exact reference for the float32 results.

Row-wise cases: rows of lengths 1, 2, 7, 33; per length the row kinds ROW_KINDS below
(random, ties, +inf, -inf, NaN, all -inf, huge, dy with zeros / inf / NaN, sparsemax
support-boundary ties).  Float64 inputs are the float32 rows widened.

Dense cases: see DENSE_CASES; x, W, b, dy are normal() draws in that order (W scaled by
KSCALE, b by 0.5, both exact), then x row 0 and b[0] are set to 0 when M >= 2 (so
z[0][0] = 0 exactly: the relu kink inside a layer).  Float64 inputs are the float32
ones widened.

File formats: see the headers written by write_backward() and write_dense().
"""

import math
import os
import struct
import subprocess
import sys
import tempfile
import warnings
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ACT = os.path.join(HERE, "backward.txt")
OUT_DENSE = os.path.join(HERE, "backward_dense.txt")
OUT_SUMMARY = os.path.join(HERE, "backward_summary.txt")
M64 = (1 << 64) - 1
NRAND = 48
INF = float("inf")
NAN = float("nan")
F32_MAX = 3.4028234663852886e38
F32_TINY = 1.1754943508222875e-38
F64_MAX = sys.float_info.max
F64_TINY = sys.float_info.min

SPECIALS32 = [0.0, -0.0, INF, -INF, NAN, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0,
              6.0, -6.0, 17.0, -17.0, 20.0, -20.0, 30.0, -30.0, 88.5, -88.5, 89.0, -89.0,
              100.0, -100.0, 1e4, -1e4, 1e13, -1e13, 2e19, -2e19, 1e30, -1e30, F32_MAX,
              -F32_MAX, F32_TINY, -F32_TINY, 1e-45, -1e-45, 1e-40, -1e-40, 1e-20, -1e-20]
SPECIALS64 = [F64_MAX, -F64_MAX, F64_TINY, -F64_TINY, 5e-324, -5e-324, 1e-310, -1e-310,
              1e300, -1e300, 1e160, -1e160, 36.0, -36.0, 38.0, -38.0, 40.0, -40.0,
              709.5, -709.5, 710.0, -710.0, 745.5, -745.5, 800.0, -800.0]
CORE_EXTRA = [0.0, -0.0, INF, -INF, NAN, 1e30, -1e30, F32_MAX, -F32_MAX]
DY_CORE = [INF, -INF, NAN]


def relu_p(ns, mv, t):
    return ("relu", [("negative_slope", ns), ("max_value", mv), ("threshold", t)])


# (case id, keras name, [(param, value)], kinks).  Every Activation variant with Keras's
# defaults, then other parameter sets.
ELEMENTWISE = [
    ("linear", "linear", [], [0.0]),
    ("relu", "relu", [], [0.0]),
    ("relu6", "relu6", [], [0.0, 6.0]),
    ("leaky_relu", "leaky_relu", [], [0.0]),
    ("elu", "elu", [], [0.0]),
    ("selu", "selu", [], [0.0]),
    ("celu", "celu", [], [0.0]),
    ("gelu", "gelu", [("approximate", False)], [0.0]),
    ("gelu_tanh", "gelu", [("approximate", True)], [0.0]),
    ("sigmoid", "sigmoid", [], [0.0]),
    ("hard_sigmoid", "hard_sigmoid", [], [-3.0, 3.0, 0.0]),
    ("silu", "silu", [], [0.0]),
    ("hard_silu", "hard_silu", [], [-3.0, 3.0, 0.0]),
    ("tanh", "tanh", [], [0.0]),
    ("softplus", "softplus", [], [0.0]),
    ("softsign", "softsign", [], [0.0]),
    ("mish", "mish", [], [0.0]),
    ("exponential", "exponential", [], [0.0]),
    ("log_sigmoid", "log_sigmoid", [], [0.0]),
    ("hard_tanh", "hard_tanh", [], [-1.0, 1.0]),
    ("tanh_shrink", "tanh_shrink", [], [0.0]),
    ("squareplus", "squareplus", [], [0.0]),
    ("sparse_plus", "sparse_plus", [], [-1.0, 1.0, 0.0]),
    ("soft_shrink", "soft_shrink", [], [-0.5, 0.5]),
    ("hard_shrink", "hard_shrink", [], [-0.5, 0.5]),
    ("sparse_sigmoid", "sparse_sigmoid", [], [-1.0, 1.0]),
    ("threshold_0.5_-1", "threshold", [("threshold", 0.5), ("default_value", -1.0)], [0.5]),
    # relu with parameters: every branch of Keras's ReLU.static_call
    ("relu_s0.1_m6_t0.5", *relu_p(0.1, 6.0, 0.5), [0.5, 0.0, 6.0]),
    ("relu_m6", *relu_p(0.0, 6.0, 0.0), [0.0, 6.0]),          # relu6 fast path
    ("relu_m4", *relu_p(0.0, 4.0, 0.0), [0.0, 4.0]),          # relu + clip
    ("relu_t0.5", *relu_p(0.0, None, 0.5), [0.5, 0.0]),       # where(x > t)
    ("relu_s0.1_t0.5", *relu_p(0.1, None, 0.5), [0.5, 0.0]),
    ("relu_s0.1_m6", *relu_p(0.1, 6.0, 0.0), [0.0, 6.0]),
    ("relu_t-1", *relu_p(0.0, None, -1.0), [-1.0, 0.0]),
    ("relu_t-1_m4", *relu_p(0.0, 4.0, -1.0), [-1.0, 0.0, 4.0]),
    ("relu_s0.1", *relu_p(0.1, None, 0.0), [0.0]),            # delegates to leaky_relu
    ("relu_s0.3_m0.7_t0.1", *relu_p(0.3, 0.7, 0.1), [0.1, 0.0, 0.7]),
    # other parameters
    ("leaky_relu_0.1", "leaky_relu", [("negative_slope", 0.1)], [0.0]),
    ("leaky_relu_0", "leaky_relu", [("negative_slope", 0.0)], [0.0]),
    ("elu_0.5", "elu", [("alpha", 0.5)], [0.0]),
    ("celu_0.5", "celu", [("alpha", 0.5)], [0.0]),
    ("squareplus_1", "squareplus", [("b", 1.0)], [0.0]),
    ("squareplus_0.1", "squareplus", [("b", 0.1)], [0.0]),
    ("soft_shrink_1", "soft_shrink", [("threshold", 1.0)], [-1.0, 1.0]),
    ("soft_shrink_0.1", "soft_shrink", [("threshold", 0.1)], [-0.1, 0.1]),
    ("hard_shrink_1", "hard_shrink", [("threshold", 1.0)], [-1.0, 1.0]),
    ("hard_shrink_0.1", "hard_shrink", [("threshold", 0.1)], [-0.1, 0.1]),
    ("threshold_-0.25_0", "threshold", [("threshold", -0.25), ("default_value", 0.0)],
     [-0.25]),
    ("threshold_0.1_0.3", "threshold", [("threshold", 0.1), ("default_value", 0.3)], [0.1]),
]

ROWWISE = ["softmax", "log_softmax", "sparsemax"]
ROW_LENS = [1, 2, 7, 33]
ROW_KINDS = ["random", "random_big", "dy_zeros", "all_equal", "tie_max", "pos_inf",
             "neg_inf", "nan", "all_neg_inf", "huge", "dy_inf", "dy_nan", "boundary",
             "two_pos_inf"]

# Dense: (case id, M, K, N, seed, kernel scale, [activations])
DENSE_ACTS = ["linear", "relu", "sigmoid", "gelu", "softmax"]
DENSE_CASES = [
    ("m1_k7_n5", 1, 7, 5, 7001, 0.5),
    ("m3_k260_n5", 3, 260, 5, 7002, 0.0625),
    ("m100_k8_n6", 100, 8, 6, 7003, 0.5),
    ("m17_k33_n10", 17, 33, 10, 7004, 0.25),
]


# --------------------------------------------------------------------------
# bits, generator
# --------------------------------------------------------------------------

class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform01(self):
        return (self.next() >> 40) / 2.0**24

    def normal(self):
        s = self.uniform01() + self.uniform01() + self.uniform01() + self.uniform01()
        return float(np.float32((s - 2.0) * 1.7320508075688772))


def b32(f):
    return struct.unpack("<I", struct.pack("<f", f))[0]


def f32(b):
    return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]


def b64(f):
    return struct.unpack("<Q", struct.pack("<d", f))[0]


def f64(b):
    return struct.unpack("<d", struct.pack("<Q", b & M64))[0]


def step32(x, n):
    """The float32 `n` ulps from float32 `x` along the real line."""
    b = b32(x)
    key = b if b < 0x80000000 else -(b & 0x7FFFFFFF)
    key += n
    return f32(key if key >= 0 else (0x80000000 | (-key)))


def step64(x, n):
    b = b64(x)
    key = b if b < (1 << 63) else -(b & ((1 << 63) - 1))
    key += n
    return f64(key if key >= 0 else ((1 << 63) | (-key)))


def r32(x):
    return float(np.float32(x))


def case_seed(i):
    return 1000 + i


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def elementwise_inputs(idx, kinks):
    """(z32, dy32, zx64, dyx64) as Python float lists."""
    g = SplitMix64(case_seed(idx))
    k32 = [r32(k) for k in kinks]
    kink5 = [step32(k, d) for k in k32 for d in (-2, -1, 0, 1, 2)]
    z, dy = [], []
    for v in kink5 + [r32(s) for s in SPECIALS32]:
        for d in (1.0, g.normal(), 0.0):
            z.append(v)
            dy.append(d)
    for v in k32 + [r32(s) for s in CORE_EXTRA]:
        for d in DY_CORE:
            z.append(v)
            dy.append(d)
    for _ in range(NRAND):
        u = g.next()
        kind, v = u % 4, u >> 32
        if kind == 0:
            zz = f32(v)
        elif kind in (1, 2):
            zz = r32((v >> 8) / 2.0**24 * 16.0 - 8.0)
        else:
            zz = step32(k32[(v >> 8) % len(k32)], ((v & 0xFF) % 65) - 32)
        z.append(zz)
        dy.append(g.normal())
    zx, dyx = [], []
    kink5_64 = [step64(float(k), d) for k in kinks for d in (-2, -1, 0, 1, 2)]
    for v in kink5_64 + SPECIALS64:
        for d in (1.0, g.normal()):
            zx.append(v)
            dyx.append(d)
    return z, dy, zx, dyx


def row_inputs(idx, length):
    """A list of (z row, dy row) (float32 values as Python floats)."""
    g = SplitMix64(case_seed(500 + idx * 10 + ROW_LENS.index(length)))
    rows = []
    L = length
    for kind in ROW_KINDS:
        z = [g.normal() for _ in range(L)]
        dy = [g.normal() for _ in range(L)]
        if kind == "random_big":
            z = [r32(3.0 * v) for v in z]
        elif kind == "dy_zeros":
            dy = [0.0 if j % 2 == 0 else dy[j] for j in range(L)]
        elif kind == "all_equal":
            z = [0.75] * L
        elif kind == "tie_max":
            m = max(z) + 1.0
            z[0] = r32(m)
            z[-1] = r32(m)
        elif kind == "pos_inf":
            z[L // 2] = INF
        elif kind == "neg_inf":
            z[L // 2] = -INF
        elif kind == "nan":
            z[L // 2] = NAN
        elif kind == "all_neg_inf":
            z = [-INF] * L
        elif kind == "huge":
            z = [r32(v * 1e30) for v in z]
        elif kind == "dy_inf":
            dy[(L - 1) // 2] = INF
        elif kind == "dy_nan":
            dy[(L - 1) // 2] = NAN
        elif kind == "boundary":
            # sparsemax support boundary: z_1 - tau = 0 exactly for the paper's tau
            base = [1.0, 0.0, -0.5, 0.25, -3.0, 0.5, -1.0]
            z = [base[j % len(base)] for j in range(L)]
        elif kind == "two_pos_inf":
            z[0] = INF
            z[-1] = INF
        rows.append((z, dy))
    return rows


def dense_inputs(M, K, N, seed, kscale):
    g = SplitMix64(seed)
    x = [g.normal() for _ in range(M * K)]
    W = [g.normal() * kscale for _ in range(K * N)]
    b = [g.normal() * 0.5 for _ in range(N)]
    dy = [g.normal() for _ in range(M * N)]
    if M >= 2:
        for p in range(K):
            x[p] = 0.0
        b[0] = 0.0
    return (np.array(x).reshape(M, K), np.array(W).reshape(K, N), np.array(b),
            np.array(dy).reshape(M, N))


# --------------------------------------------------------------------------
# child: the Keras / jax work
# --------------------------------------------------------------------------

def child(which, out_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    warnings.filterwarnings("ignore")
    import jax
    import keras
    from keras import activations as A

    dt = np.float32 if which == "f32" else np.float64
    if which == "f64":
        assert jax.config.jax_enable_x64, "float64 child needs JAX_ENABLE_X64=1"
    res = {"versions": np.array([keras.__version__, jax.__version__, np.__version__,
                                 sys.version.split()[0]])}

    def act_fn(name, params):
        f = getattr(A, name)
        if name == "tanh" and which == "f64":
            # keras.activations.tanh -> keras.ops.tanh -> backend.numpy.tanh casts to
            # result_type(x.dtype, float), which the jax backend forces to 32 bits: Keras
            # 3.15 evaluates tanh of a float64 tensor in float32.  Use the float64 op
            # Keras's backend has (keras.src.backend.jax.nn.tanh = jax.nn.tanh).
            from keras.src.backend.jax import nn as knn
            f = knn.tanh
        kw = dict(params)
        return lambda z: f(z, **kw)

    def vjps(f):
        jitted = jax.jit(lambda z, dy: jax.vjp(f, z)[1](dy)[0])
        eager = lambda z, dy: jax.vjp(f, z)[1](dy)[0]  # noqa: E731
        return jitted, eager

    for idx, (cid, name, params, kinks) in enumerate(ELEMENTWISE):
        z, dy, zx, dyx = elementwise_inputs(idx, kinks)
        if which == "f64":
            z, dy = z + zx, dy + dyx
        z = np.array(z, dtype=dt)
        dy = np.array(dy, dtype=dt)
        jitted, eager = vjps(act_fn(name, params))
        dz = np.asarray(jitted(z, dy))
        dze = np.asarray(eager(z, dy))
        res["ew_%s" % cid] = dz
        res["ewe_%s" % cid] = dze
        res["ewy_%s" % cid] = np.asarray(jax.jit(act_fn(name, params))(z))

    for ridx, name in enumerate(ROWWISE):
        f = act_fn(name, [])
        jitted, eager = vjps(f)
        for L in ROW_LENS:
            rows = row_inputs(ridx, L)
            z = np.array([r[0] for r in rows], dtype=dt)
            dy = np.array([r[1] for r in rows], dtype=dt)
            res["rw_%s_%d" % (name, L)] = np.asarray(jitted(z, dy))
            res["rwe_%s_%d" % (name, L)] = np.asarray(eager(z, dy))
            res["rwy_%s_%d" % (name, L)] = np.asarray(jax.jit(f)(z))

    for cid, M, K, N, seed, kscale in DENSE_CASES:
        x, W, b, dy = dense_inputs(M, K, N, seed, kscale)
        x, W, b, dy = (np.asarray(a, dtype=np.float32).astype(dt) for a in (x, W, b, dy))
        for act in DENSE_ACTS:
            layer = keras.layers.Dense(N, activation=act, dtype=dt.__name__)
            layer.build((M, K))
            layer.set_weights([W, b])

            def fwd(x_, W_, b_, layer=layer):
                y, _ = layer.stateless_call([W_, b_], [], x_)
                return y

            g = jax.jit(lambda x_, W_, b_, dy_, fwd=fwd: jax.vjp(fwd, x_, W_, b_)[1](dy_))
            dx, dW, db = (np.asarray(a) for a in g(x, W, b, dy))
            z = np.asarray(jax.jit(lambda x_, W_, b_: x_ @ W_ + b_)(x, W, b))
            dz = np.asarray(jax.jit(lambda z_, dy_, act=act: jax.vjp(
                getattr(A, act), z_)[1](dy_)[0])(z, dy))
            res["dn_%s_%s" % (cid, act)] = np.concatenate([dx.ravel(), dW.ravel(), db])
            res["dnz_%s_%s" % (cid, act)] = z
            res["dndz_%s_%s" % (cid, act)] = dz
            if act == "linear":
                # what XLA made of the Dense VJP: its dots, reductions and fusions
                txt = g.lower(x, W, b, dy).compile().as_text()
                lines = txt.splitlines()
                start = [i for i, ln in enumerate(lines) if ln.startswith("ENTRY")][0]
                keep = [ln.strip() for ln in lines[:start]
                        if "ROOT" in ln and ("reduce" in ln or " dot(" in ln)]
                keep += ["ENTRY:"] + [ln.strip() for ln in lines[start + 1:]
                                      if ln.strip() and ln.strip() != "}"
                                      and "parameter(" not in ln and "constant(" not in ln]
                res["hlo_%s" % cid] = np.array(["\n".join(keep)])
    np.savez(out_path, **res)


def run_children(tmp):
    out = {}
    for which in ("f32", "f64"):
        path = os.path.join(tmp, which + ".npz")
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "jax"
        env["JAX_PLATFORMS"] = "cpu"
        env.pop("JAX_ENABLE_X64", None)
        if which == "f64":
            env["JAX_ENABLE_X64"] = "1"
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", which, path],
                       env=env, check=True)
        with np.load(path, allow_pickle=False) as d:
            out[which] = {k: d[k] for k in d.files}
    return out


# --------------------------------------------------------------------------
# sparsemax as its paper defines it (exact), and its VJP
# --------------------------------------------------------------------------

def round_frac(q, dt):
    import mpmath
    if q == 0:
        return 0.0
    prec = 24 if dt == np.float32 else 53
    v = mpmath.fdiv(q.numerator, q.denominator, prec=prec, rounding="n")
    return float(v)


def sparsemax_paper_vjp(z, dy, dt):
    L = len(z)
    if any(math.isnan(v) or v == INF for v in z) or all(v == -INF for v in z):
        return [NAN] * L
    zf = [Fraction(v) if v != -INF else None for v in z]
    fin = sorted([v for v in zf if v is not None], reverse=True)
    cs, k, ssum = Fraction(0), 0, Fraction(0)
    for j, v in enumerate(fin, 1):
        cs += v
        if 1 + j * v > cs:
            k, ssum = j, cs
    tau = (ssum - 1) / k
    S = [i for i in range(L) if zf[i] is not None and zf[i] > tau]
    out = [0.0] * L
    if all(math.isfinite(dy[i]) for i in S):
        mean = sum(Fraction(dy[i]) for i in S) / len(S)
        for i in S:
            out[i] = round_frac(Fraction(dy[i]) - mean, dt)
    else:
        mean = sum(dy[i] for i in S) / len(S)
        for i in S:
            out[i] = float(dt(dy[i] - mean))
    return out


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def hexes(vals, dt):
    a = np.asarray(vals, dtype=dt)
    if dt == np.float32:
        return ["%08x" % v for v in a.view(np.uint32)]
    return ["%016x" % v for v in a.view(np.uint64)]


def emit(lines, key, vals, dt):
    h = hexes(vals, dt)
    lines.append("%s %d" % (key, len(h)))
    for i in range(0, len(h), 16):
        lines.append(" ".join(h[i:i + 16]))


def fmt_param(v):
    if v is None:
        return "None"
    if isinstance(v, bool):
        return repr(v)
    return repr(float(v))


def call_text(name, params):
    return "keras.activations.%s(z%s)" % (
        name, "".join(", %s=%s" % (k, fmt_param(v)) for k, v in params))


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == np.float32:
        a, b = a.view(np.uint32), b.view(np.uint32)
    else:
        a, b = a.view(np.uint64), b.view(np.uint64)
    return int(np.sum(a != b))


def write_backward(res, versions):
    r32_, r64_ = res["f32"], res["f64"]
    lines = [
        "# Real Keras 3 (jax) backward passes of the activations: dz = VJP(act)(z; dy), bit",
        "# for bit.  GENERATED FILE, do not edit: tests/keras/gen_backward.py (see its",
        "# docstring for the inputs).  Conventions: docs/BACKWARD_NOTES.md.",
        "# keras %s, jax %s, numpy %s, python %s, CPU." % tuple(versions),
        "# dz = jax.jit(lambda z, dy: jax.vjp(act, z)[1](dy)[0]), act = the Keras call on",
        "# the `act` line; float32 with JAX_ENABLE_X64 unset, float64 with it set.",
        "#",
        "# Format.  Values are IEEE bit patterns in hex: 8 digits (f32), 16 digits (f64).",
        "# An array is a line `<key> <count>` followed by its values, 16 per line.",
        "# Element-wise case:",
        "#   act <id> <keras call>          e.g. act relu_m4 keras.activations.relu(z, ...)",
        "#   kinks <k ...>                   the case's kinks (Python floats)",
        "#   f32 <n>                         then arrays z, dy, dz (n values each)",
        "#   f64 <n64>                       then arrays zx, dyx (n64 - n values each) and",
        "#                                   dz (n64 values).  The f64 inputs are the f32",
        "#                                   z, dy widened (indices 0..n) followed by zx, dyx.",
        "#   end",
        "# Row-wise case (softmax, log_softmax, sparsemax):",
        "#   act <id> <keras call>",
        "#   rows <L1 L2 ...>                row lengths; z, dy, dz are the rows concatenated",
        "#   f32 <n>   arrays z, dy, dz [, dzp]",
        "#   f64 <n>   array dz [, dzp]      (inputs: the f32 rows widened)",
        "#   end",
        "# dzp (sparsemax only): the paper's sparsemax VJP, not Keras's (see the script).",
        "# A comment line `# <id> <dtype>: jit differs from eager ...` notes the inputs",
        "# where jax's op-by-op (eager) VJP differs from the jitted one (jit stored).",
        "# tanh f64: keras.activations.tanh computes a float64 tensor in float32 (Keras",
        "# 3.15's jax result_type forces 32 bits); its f64 dz here is of",
        "# keras.src.backend.jax.nn.tanh (jax.nn.tanh) in float64.",
    ]
    for idx, (cid, name, params, kinks) in enumerate(ELEMENTWISE):
        z, dy, zx, dyx = elementwise_inputs(idx, kinks)
        lines.append("act %s %s" % (cid, call_text(name, params)))
        lines.append("kinks " + " ".join(repr(float(k)) for k in kinks))
        for which, rr in (("f32", r32_), ("f64", r64_)):
            dz, dze = rr["ew_%s" % cid], rr["ewe_%s" % cid]
            nd = same_bits(dz, dze)
            if nd:
                bad = np.nonzero((dz.view(np.uint32 if which == "f32" else np.uint64))
                                 != (dze.view(np.uint32 if which == "f32" else np.uint64)))[0]
                lines.append("# %s %s: jit differs from eager at %d inputs (indices %s)" % (
                    cid, which, nd, " ".join(str(i) for i in bad[:12])))
        lines.append("f32 %d" % len(z))
        emit(lines, "z", z, np.float32)
        emit(lines, "dy", dy, np.float32)
        emit(lines, "dz", r32_["ew_%s" % cid], np.float32)
        lines.append("f64 %d" % (len(z) + len(zx)))
        emit(lines, "zx", zx, np.float64)
        emit(lines, "dyx", dyx, np.float64)
        emit(lines, "dz", r64_["ew_%s" % cid], np.float64)
        lines.append("end")
    for ridx, name in enumerate(ROWWISE):
        lines.append("act %s %s" % (name, call_text(name, [])))
        zs, dys, lens = [], [], []
        for L in ROW_LENS:
            for z, dy in row_inputs(ridx, L):
                zs += z
                dys += dy
                lens.append(L)
        lines.append("rows " + " ".join(str(L) for L in lens))
        for which, rr in (("f32", r32_), ("f64", r64_)):
            nd = sum(same_bits(rr["rw_%s_%d" % (name, L)], rr["rwe_%s_%d" % (name, L)])
                     for L in ROW_LENS)
            if nd:
                lines.append("# %s %s: jit differs from eager at %d inputs" % (name, which, nd))
        for which, dt, rr in (("f32", np.float32, r32_), ("f64", np.float64, r64_)):
            dz = np.concatenate([rr["rw_%s_%d" % (name, L)].ravel() for L in ROW_LENS])
            lines.append("%s %d" % (which, len(zs)))
            if which == "f32":
                emit(lines, "z", zs, np.float32)
                emit(lines, "dy", dys, np.float32)
            emit(lines, "dz", dz, dt)
            if name == "sparsemax":
                dzp = []
                for L in ROW_LENS:
                    for z, dy in row_inputs(ridx, L):
                        dzp += sparsemax_paper_vjp(z, dy, dt)
                emit(lines, "dzp", dzp, dt)
        lines.append("end")
    with open(OUT_ACT, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def write_dense(res, versions):
    lines = [
        "# Real Keras 3 (jax) gradients of a Dense layer, bit for bit.",
        "# GENERATED FILE, do not edit: tests/keras/gen_backward.py (see its docstring).",
        "# keras %s, jax %s, numpy %s, python %s, CPU." % tuple(versions),
        "# layer = keras.layers.Dense(N, activation=act, dtype=dtype), built for (M, K),",
        "# (dx, dW, db) = jax.vjp(lambda x, W, b: layer.stateless_call([W, b], [], x)[0],",
        "#                        x, W, b)[1](dy), jitted; i.e. the gradients of",
        "# L = sum(dy * act(x.W + b)).  W is Keras's (K, N) kernel, row-major.",
        "# Format: values are IEEE bit patterns in hex (8 digits f32, 16 digits f64); an",
        "# array is a line `<key> <count>` then its values, 16 per line, row-major.",
        "#   case <id> M <M> K <K> N <N>",
        "#   x W b dy                (f32 inputs; the f64 runs use them widened)",
        "#   grad <act> f32          then arrays dx (M*K), dW (K*N), db (N)",
        "#   grad <act> f64          the same in f64",
        "#   end",
    ]
    for cid, M, K, N, seed, kscale in DENSE_CASES:
        x, W, b, dy = dense_inputs(M, K, N, seed, kscale)
        lines.append("case %s M %d K %d N %d" % (cid, M, K, N))
        emit(lines, "x", x.ravel(), np.float32)
        emit(lines, "W", W.ravel(), np.float32)
        emit(lines, "b", b, np.float32)
        emit(lines, "dy", dy.ravel(), np.float32)
        for act in DENSE_ACTS:
            for which, dt in (("f32", np.float32), ("f64", np.float64)):
                v = res[which]["dn_%s_%s" % (cid, act)]
                lines.append("grad %s %s" % (act, which))
                emit(lines, "dx", v[:M * K], dt)
                emit(lines, "dW", v[M * K:M * K + K * N], dt)
                emit(lines, "db", v[M * K + K * N:], dt)
        lines.append("end")
    with open(OUT_DENSE, "w") as fh:
        fh.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# checks (printed): the documented formulas against jax float64, and Keras's float32
# against its own float64 on the same inputs
# --------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _softplus(z):
    return np.logaddexp(z, 0.0)


def _softplus_grad(z):
    """jax's logaddexp JVP factor: exp(where(z==inf,0,z) - where(sp==inf,0,sp))."""
    sp = _softplus(z)
    q = np.where(z == INF, 0.0, z)
    t = np.where(sp == INF, 0.0, sp)
    return np.exp(q - t)


def _tie_max(a, c):
    """d max(a, c)/da as jax's balanced rule gives it: 1, 1/2 at a tie, 0."""
    m = np.maximum(a, c)
    return np.where(a == m, 1.0, 0.0) / np.where(m == c, 2.0, 1.0), m


def _tie_min(a, c):
    m = np.minimum(a, c)
    return np.where(a == m, 1.0, 0.0) / np.where(m == c, 2.0, 1.0), m


def formula(name, params, z, dy):
    """The VJP as the note documents it (jax's operations and order), float64 numpy."""
    from scipy.special import erfc, expit
    p = dict(params)
    W = np.where
    if name == "linear":
        return dy.copy()
    if name == "relu":
        s, mx, t = (p.get("negative_slope", 0.0), p.get("max_value"),
                    p.get("threshold", 0.0))
        if s != 0 and mx is None and t == 0:
            return W(z >= 0, dy, s * dy)
        clip = mx is not None
        if t != 0:
            c = z > t
            x1 = W(c, z, 0.0)
            gate = c
        elif mx == 6:
            gate = (z > 0) & (z < 6)
            x1 = np.minimum(np.maximum(z, 0.0), 6.0)
            clip = False
        else:
            gate = z > 0
            x1 = np.maximum(z, 0.0)
        if clip:
            fmax, m = _tie_max(x1, 0.0)
            fmin, _ = _tie_min(m, mx)
            base = W(gate, (dy * fmin) * fmax, 0.0)
        else:
            base = W(gate, dy, 0.0)
        if s != 0:
            neg = (-z + t) > 0 if t != 0 else (-z) > 0
            base = base + (-W(neg, s * (-dy), 0.0))
        return base
    if name == "relu6":
        return W((z > 0) & (z < 6), dy, 0.0)
    if name == "leaky_relu":
        s = p.get("negative_slope", 0.2)
        return W(z >= 0, dy, s * dy)
    if name == "elu":
        a = p.get("alpha", 1.0)
        return W(z > 0, dy, (a * dy) * (np.expm1(z) + 1.0))
    if name == "selu":
        q = SELU_SCALE * dy
        return W(z > 0, q, (SELU_ALPHA * q) * (np.expm1(z) + 1.0))
    if name == "celu":
        a = p.get("alpha", 1.0)
        fmax, _ = _tie_max(z, 0.0)
        fmin, m = _tie_min(z, 0.0)
        e = np.expm1(m / a) + 1.0
        return (((a * dy) * e) / a) * fmin + dy * fmax
    if name == "gelu" and not p.get("approximate", False):
        r = 0.7071067811865476
        e = -z * r
        q = -(((-1.1283791670955126 * ((0.5 * z) * dy)) * np.exp(-(e * e))) * r)
        return q + 0.5 * (dy * erfc(e))
    if name == "gelu":
        c0, c1 = 0.7978845608028654, 0.044715
        t = np.tanh(c0 * (z + c1 * z ** 3))
        l = 0.5 * (1.0 + t)
        pp = (0.5 * (z * dy)) * (1.0 - t)
        s = c0 * (pp + pp * t)
        return (dy * l + s) + (c1 * s) * (3.0 * z * z)
    if name == "sigmoid":
        s = expit(z)
        return dy * (s * (1.0 - s))
    if name == "hard_sigmoid":
        # XLA turns the division by 6 into a multiplication by fl(1/6)
        u = z + 3.0
        return W((u > 0) & (u < 6), dy * (1.0 / 6.0), 0.0)
    if name == "silu":
        s = expit(z)
        return dy * s + (z * dy) * (s * (1.0 - s))
    if name == "hard_silu":
        u = z + 3.0
        hs = np.minimum(np.maximum(u, 0.0), 6.0) * (1.0 / 6.0)
        # XLA contracts dy*hs + p into one FMA (not emulated here)
        return dy * hs + W((u > 0) & (u < 6), (z * dy) * (1.0 / 6.0), 0.0)
    if name == "tanh":
        t = np.tanh(z)
        e = dy * (1.0 - t)
        return e + e * t
    if name == "softplus":
        return dy * _softplus_grad(z)
    if name == "log_sigmoid":
        return -((-dy) * _softplus_grad(-z))
    if name == "softsign":
        d = np.abs(z) + 1.0
        t = (dy * (1.0 / (d * d))) * z
        k = dy / d
        return W(z >= 0, (k + (-t)) + (-0.0), (k + 0.0) + t)
    if name == "mish":
        t = np.tanh(_softplus(z))
        bn = (z * dy) * (1.0 - t)
        return dy * t + (bn + bn * t) * _softplus_grad(z)
    if name == "exponential":
        return dy * np.exp(z)
    if name == "hard_tanh":
        return W((z > 1) | (z < -1), 0.0, dy)
    if name == "tanh_shrink":
        t = np.tanh(z)
        f = (-dy) * (1.0 - t)
        return (dy + f) + f * t
    if name == "squareplus":
        b = p.get("b", 4.0)
        i = np.sqrt(z * z + b)
        l = dy / 2.0
        return l + (l * (0.5 / i)) * (2.0 * z)
    if name == "sparse_plus":
        o = W(z <= -1, 0.0, dy)
        d = z >= 1
        return W(d, o, 0.0) + (W(d, 0.0, o) / 4.0) * (2.0 * (z + 1.0))
    if name in ("soft_shrink", "hard_shrink"):
        t = p.get("threshold", 0.5)
        return W(np.abs(z) > t, dy, 0.0)
    if name == "sparse_sigmoid":
        fmax, m = _tie_max(z + 1.0, 0.0)
        fmin, _ = _tie_min(m, 2.0)
        return ((0.5 * dy) * fmin) * fmax
    if name == "threshold":
        return W(z > p["threshold"], dy, 0.0)
    raise KeyError(name)


def daz(a):
    """XLA on the CPU reads subnormal inputs as zero (sign kept)."""
    a = np.asarray(a, dtype=np.float64)
    return np.where((a != 0) & (np.abs(a) < F64_TINY), np.copysign(0.0, a), a)


ftz = daz


def keras_sparsemax_vjp(z, dy):
    """The VJP of Keras 3.15's sparsemax (its own tau), float64 numpy, one row."""
    z = np.asarray(z, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    L = len(z)
    order = np.argsort(-z, kind="stable")
    zs = z[order]
    cs = np.cumsum(zs)
    r = np.arange(1, L + 1)
    support = zs - (cs - 1) / r > 0
    k = support.sum()
    tau = (np.sum(np.where(support, cs, 0.0)) - 1) / k
    d = z - tau
    g = np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0))
    # d tau / d zs_i = #{j >= i : support_j} / k
    wsorted = np.cumsum(support[::-1])[::-1] / k
    w = np.zeros(L)
    w[order] = wsorted
    return g * dy - w * np.sum(g * dy)


def classify(a):
    return np.where(np.isnan(a), 3, np.where(np.isposinf(a), 1, np.where(np.isneginf(a), 2, 0)))


def compare(a, b, dt):
    """(exact matches, pattern mismatches, max ulps where both finite and zero or
    normal), a vs b."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    pat = classify(a) != classify(b)
    tiny = float(np.finfo(dt).tiny)
    fin = (np.isfinite(a) & np.isfinite(b) & ((a == 0) | (np.abs(a) >= tiny))
           & ((b == 0) | (np.abs(b) >= tiny)))
    u = ulps(a[fin], b[fin], dt) if fin.any() else np.zeros(1)
    return int(same.sum()), int(pat.sum()), float(u.max()) if u.size else 0.0


def ulps(a, b, dt):
    """|a - b| in ulps of dt at b's magnitude (both finite)."""
    fi = np.finfo(dt)
    mag = np.maximum(np.abs(b), float(fi.tiny))
    ulp = np.exp2(np.floor(np.log2(mag)) - fi.nmant)
    return np.abs(a - b) / ulp


def fmt_z(v):
    return "%.9g" % v


def report(res):
    r32_, r64_ = res["f32"], res["f64"]
    print("\n== element-wise: documented formula (numpy float64) vs jax float64 VJP")
    print("   columns: case, n, exact, NaN/inf-pattern mismatches, max ulps (both finite,")
    print("   zero or normal), max |difference| / (eps * |dy|).  Inputs read with XLA's")
    print("   denormals-are-zero, results flushed (as XLA on the CPU does)")
    with np.errstate(all="ignore"):
        for idx, (cid, name, params, kinks) in enumerate(ELEMENTWISE):
            z, dy, zx, dyx = elementwise_inputs(idx, kinks)
            z64 = np.array(z + zx)
            dy64 = np.array(dy + dyx)
            ref = ftz(formula(name, params, daz(z64), daz(dy64)))
            jx = r64_["ew_%s" % cid]
            ex, pat, mu = compare(ref, jx, np.float64)
            okd = np.isfinite(ref) & np.isfinite(jx) & (dy64 != 0) & np.isfinite(dy64)
            rel = (np.max(np.abs(ref[okd] - jx[okd]) / (np.abs(dy64[okd]) * 2.0**-52))
                   if okd.any() else 0.0)
            bad = np.nonzero(classify(ref) != classify(jx))[0]
            extra = ""
            if len(bad):
                extra = "  e.g. " + ", ".join("z=%s dy=%s: formula %s jax %s" % (
                    fmt_z(z64[i]), fmt_z(dy64[i]), ref[i], jx[i]) for i in bad[:3])
            print("   %-22s %4d %4d %3d %9.3g %7.3g%s" % (cid, len(z64), ex, pat, mu, rel, extra))

        print("\n== element-wise: Keras float32 VJP vs Keras float64 VJP at the same inputs")
        print("   (z, dy, both results finite, zero or normal): max f32 ulps, the 3 worst z;")
        print("   pattern: NaN/inf differences f32 vs f64 (any inputs)")
        for idx, (cid, name, params, kinks) in enumerate(ELEMENTWISE):
            z, dy, zx, dyx = elementwise_inputs(idx, kinks)
            n = len(z)
            a = r32_["ew_%s" % cid].astype(np.float64)
            b = r64_["ew_%s" % cid][:n]
            zz, dd = np.array(z), np.array(dy)
            t32 = F32_TINY
            ok = (np.isfinite(zz) & np.isfinite(dd) & np.isfinite(a) & np.isfinite(b)
                  & ((zz == 0) | (np.abs(zz) >= t32)) & ((dd == 0) | (np.abs(dd) >= t32))
                  & ((b == 0) | (np.abs(b) >= t32)) & ((a == 0) | (np.abs(a) >= t32)))
            u = np.zeros(n)
            u[ok] = ulps(a[ok], b[ok], np.float32)
            worst = np.argsort(-u)[:3]
            pat = np.nonzero(classify(a) != classify(b))[0]
            print("   %-22s max %10.3g ulps; worst at z=%s; pattern diffs %d%s" % (
                cid, u.max(), ", ".join("%s(%.3g)" % (fmt_z(zz[i]), u[i]) for i in worst
                                        if u[i] > 0.5),
                len(pat),
                (" e.g. " + ", ".join("z=%s dy=%s: f32 %s f64 %s" % (
                    fmt_z(zz[i]), fmt_z(dd[i]), a[i], b[i]) for i in pat[:3])) if len(pat)
                else ""))

        print("\n== row-wise: formula vs jax float64 (max error / (eps * row scale), rows")
        print("   where the NaN/inf pattern agrees); sparsemax = Keras's own tau, its VJP as")
        print("   the notes give it; sparsemax_paper = the paper's VJP (dzp) vs Keras's")
        for ridx, name in list(enumerate(ROWWISE)) + [(2, "sparsemax_paper")]:
            worst, patd, nrows, nspecial, patd_special = 0.0, 0, 0, 0, 0
            for L in ROW_LENS:
                rows = row_inputs(ridx, L)
                jxname = "sparsemax" if name == "sparsemax_paper" else name
                jx = r64_["rw_%s_%d" % (jxname, L)]
                for k, (z, dy) in enumerate(rows):
                    z = np.array(z)
                    dy = np.array(dy)
                    mx = np.max(z)
                    o = np.exp(z - mx)
                    y = o / o.sum()
                    if name == "softmax":
                        ref = y * (dy - np.sum(y * dy))
                        scale = np.max(y * (np.abs(dy) + np.sum(np.abs(y * dy))))
                    elif name == "log_softmax":
                        ref = dy - y * np.sum(dy)
                        scale = np.max(np.abs(dy) + y * np.sum(np.abs(dy)))
                    elif name == "sparsemax":
                        ref = keras_sparsemax_vjp(z, dy)
                        scale = np.max(np.abs(dy)) * L
                    else:
                        ref = np.array(sparsemax_paper_vjp(list(z), list(dy), np.float64))
                        scale = np.max(np.abs(dy)) * 2
                    nrows += 1
                    special = not (np.all(np.isfinite(z)) and np.all(np.isfinite(dy))
                                   and np.max(np.abs(z)) < 1e20)
                    nspecial += special
                    if (classify(ref) != classify(jx[k])).any():
                        patd += 1
                        patd_special += special
                        continue
                    fin = np.isfinite(ref)
                    if fin.any() and scale > 0 and np.isfinite(scale):
                        e = np.max(np.abs(ref[fin] - jx[k][fin])) / (2.0**-52 * scale)
                        worst = max(worst, e)
            print("   %-16s rows %d (%d with inf/NaN/huge z or dy); NaN/inf pattern differs "
                  "in %d rows (%d of them special); max err %.3g"
                  % (name, nrows, nspecial, patd, patd_special, worst))

        print("\n== Dense: jax gradients vs emulated summation orders (fraction bit-exact)")
        for which, dt in (("f32", np.float32), ("f64", np.float64)):
            rr = res[which]
            for cid, M, K, N, seed, kscale in DENSE_CASES:
                x, Wk, b, dy = dense_inputs(M, K, N, seed, kscale)
                x = x.astype(np.float32).astype(dt)
                Wk = Wk.astype(np.float32).astype(dt)
                for act in DENSE_ACTS:
                    v = rr["dn_%s_%s" % (cid, act)]
                    dx = v[:M * K].reshape(M, K)
                    dW = v[M * K:M * K + K * N].reshape(K, N)
                    db = v[M * K + K * N:]
                    dz = rr["dndz_%s_%s" % (cid, act)]
                    out = []
                    for label, got, cands in (
                        ("db", db, dense_sum_cands(dz, dt)),
                        ("dW", dW, dense_dot_cands(x.T, dz, dt)),
                        ("dx", dx, dense_dot_cands(dz, Wk.T, dt)),
                    ):
                        parts = []
                        for cname, cv in cands:
                            parts.append("%s %.2f" % (cname, np.mean(
                                (cv == got) | (np.isnan(cv) & np.isnan(got)))))
                        out.append("%s[%s]" % (label, ", ".join(parts)))
                    print("   %s %-12s %-8s %s" % (which, cid, act, "; ".join(out)))
    print("\n== Dense: Keras float32 gradients vs Keras float64 (same inputs): max over the")
    print("   elements of |g32 - g64| / (2^-24 * sum of |terms|) (the sum's condition-aware")
    print("   error, in units of f32 eps; a sequential f32 sum of n terms is below ~n).  For")
    print("   activations other than linear/relu it includes the float32 error of z = x.W + b")
    print("   (forward) and of act'(z), e.g. gelu's dz through act'' at K = 260")
    for cid, M, K, N, seed, kscale in DENSE_CASES:
        x, Wk, b, dy = dense_inputs(M, K, N, seed, kscale)
        x = np.abs(x.astype(np.float32).astype(np.float64))
        Wk = np.abs(Wk.astype(np.float32).astype(np.float64))
        parts = []
        for act in DENSE_ACTS:
            v32 = res["f32"]["dn_%s_%s" % (cid, act)].astype(np.float64)
            v64 = res["f64"]["dn_%s_%s" % (cid, act)]
            adz = np.abs(res["f64"]["dndz_%s_%s" % (cid, act)])
            scale = np.concatenate([(adz @ Wk.T).ravel(), (x.T @ adz).ravel(),
                                    adz.sum(axis=0)])
            ok = scale > 0
            e = np.zeros_like(scale)
            e[ok] = np.abs(v32 - v64)[ok] / (2.0**-24 * scale[ok])
            nk = M * K
            ex, ew, eb = (e[:nk].max() if nk else 0, e[nk:nk + K * N].max(),
                          e[nk + K * N:].max())
            parts.append("%s dx %.2f dW %.2f db %.2f" % (act, ex, ew, eb))
        print("   %-12s %s" % (cid, "; ".join(parts)))

    print("\n== optimized HLO of the Dense VJP (linear), dots / reductions / fusions:")
    for which in ("f32", "f64"):
        for cid, M, K, N, seed, kscale in DENSE_CASES:
            print("   %s %s:" % (which, cid))
            for line in str(res[which]["hlo_%s" % cid][0]).splitlines():
                line = line.split(", metadata=")[0].split(", backend_config=")[0]
                print("      " + line[:200])


def _round(q, dt):
    import mpmath
    if q == 0:
        return 0.0
    return float(mpmath.fdiv(q.numerator, q.denominator,
                             prec=24 if dt == np.float32 else 53, rounding="n"))


def xla_window32_sum(col, dt):
    """XLA CPU's column sum for 32 < M (below ~650 rows): rows padded to a multiple of
    32 (floor(pad/2) zeros before, the rest after), each window of 32 summed in order,
    then the window sums in order.  M <= 32: one sum in row order."""
    M = len(col)
    nw = -(-M // 32)
    lo = (nw * 32 - M) // 2
    tot = dt(0)
    for w in range(nw):
        s = dt(0)
        for m in range(w * 32 - lo, w * 32 - lo + 32):
            if 0 <= m < M:
                s = dt(s + col[m])
        tot = dt(tot + s)
    return tot


def dense_sum_cands(dz, dt):
    """Column sums of dz (M, N) in candidate orders."""
    M, N = dz.shape
    seq = np.zeros(N, dtype=dt)
    for m in range(M):
        seq = (seq + dz[m]).astype(dt)
    win = np.array([xla_window32_sum(dz[:, n], dt) for n in range(N)], dtype=dt)
    exact = np.array([_round(sum((Fraction(float(v)) for v in dz[:, n]), Fraction(0)), dt)
                      if np.all(np.isfinite(dz[:, n])) else float(np.sum(dz[:, n]))
                      for n in range(N)], dtype=dt)
    return [("seq", seq), ("window32", win), ("exact", exact)]


def dense_dot_cands(a, bmat, dt):
    """a (P, R) . bmat (R, Q) in candidate orders: sequential mul+add, sequential FMA
    chain, pairwise tree of the rounded products, correctly rounded."""
    P, R = a.shape
    Q = bmat.shape[1]
    seq = np.zeros((P, Q), dtype=dt)
    for r in range(R):
        seq = (seq + (a[:, r:r + 1] * bmat[r:r + 1, :]).astype(dt)).astype(dt)
    pw = [(a[:, r:r + 1] * bmat[r:r + 1, :]).astype(dt) for r in range(R)]
    while len(pw) > 1:
        pw = [(pw[i] + pw[i + 1]).astype(dt) if i + 1 < len(pw) else pw[i]
              for i in range(0, len(pw), 2)]
    fma = np.full((P, Q), np.nan, dtype=dt)
    if P * Q * R <= 20000:
        acc = [[0.0] * Q for _ in range(P)]
        for i in range(P):
            for j in range(Q):
                s = Fraction(0)
                ok = True
                for r in range(R):
                    av, bv = float(a[i, r]), float(bmat[r, j])
                    if not (math.isfinite(av) and math.isfinite(bv)):
                        ok = False
                        break
                    s = Fraction(_round(s + Fraction(av) * Fraction(bv), dt))
                acc[i][j] = float(s) if ok else NAN
        fma = np.array(acc, dtype=dt)
    exact = np.array([[_round(sum((Fraction(float(a[i, r])) * Fraction(float(bmat[r, j]))
                                   for r in range(R)), Fraction(0)), dt)
                       if np.all(np.isfinite(a[i])) and np.all(np.isfinite(bmat[:, j]))
                       else NAN for j in range(Q)] for i in range(P)], dtype=dt)
    return [("seq", seq), ("fma-chain", fma), ("pairwise", pw[0]), ("exact", exact)]


# --------------------------------------------------------------------------
# reading the fixture back (a check of the format) and the conventions table of
# docs/BACKWARD_NOTES.md:  gen_backward.py --table [f32|f64]
# --------------------------------------------------------------------------

def parse_backward(path=OUT_ACT):
    cases, cur, key, need, sect = [], None, None, 0, None
    for line in open(path):
        t = line.split()
        if not t or t[0].startswith("#"):
            continue
        if need:
            cur[sect][key] += t
            need -= len(t)
            continue
        if t[0] == "act":
            cur = {"id": t[1], "call": " ".join(t[2:]), "f32": {}, "f64": {}}
            cases.append(cur)
        elif t[0] == "kinks":
            cur["kinks"] = [float(v) for v in t[1:]]
        elif t[0] == "rows":
            cur["rows"] = [int(v) for v in t[1:]]
        elif t[0] in ("f32", "f64"):
            sect = t[0]
            cur[sect]["n"] = int(t[1])
        elif t[0] == "end":
            cur = None
        else:
            key, need = t[0], int(t[1])
            cur[sect][key] = []
    for c in cases:
        for sname, dt, ut in (("f32", np.float32, np.uint32), ("f64", np.float64, np.uint64)):
            for k, v in list(c[sname].items()):
                if k != "n":
                    c[sname][k] = np.array([int(h, 16) for h in v], dtype=ut).view(dt)
    return cases


def conventions_table(which="f32"):
    def g(v):
        if v is None:
            return "?"
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+inf" if v > 0 else "-inf"
        if v == 0:
            return "-0" if math.copysign(1, v) < 0 else "0"
        return "%.6g" % v

    ft = np.float32 if which == "f32" else np.float64
    print("| case | kink: left / **at** / right (dy = 1) | dz at +0, -0, +inf, -inf, NaN "
          "(dy = 1) | dy = 0 at +inf, -inf, NaN | at the first kink: dy = +inf, NaN |")
    print("|---|---|---|---|---|")
    for c in parse_backward():
        if "kinks" not in c:
            continue
        z, dy, dz = c["f32"]["z"], c["f32"]["dy"], c["f32"]["dz"]
        if which == "f64":
            z = np.concatenate([z.astype(np.float64), c["f64"]["zx"]])
            dy = np.concatenate([dy.astype(np.float64), c["f64"]["dyx"]])
            dz = c["f64"]["dz"]

        def at(zv, dv):
            zv, dv = float(zv), float(dv)
            for i in range(len(z)):
                zi, di = float(z[i]), float(dy[i])
                if ((zi == zv and math.copysign(1, zi) == math.copysign(1, zv))
                        or (math.isnan(zv) and math.isnan(zi))) and (
                        di == dv or (math.isnan(dv) and math.isnan(di))):
                    return float(dz[i])
            return None

        kinks = sorted(set(ft(k) for k in c["kinks"]))
        parts = []
        for k in kinks:
            lo, hi = np.nextafter(k, ft(-INF)), np.nextafter(k, ft(INF))
            if k == 0:  # the smallest normals: subnormals read as 0 (XLA)
                lo, hi = -np.finfo(ft).tiny, np.finfo(ft).tiny
            parts.append("%s: %s / **%s** / %s" % (g(k), g(at(lo, 1.0)), g(at(k, 1.0)),
                                                   g(at(hi, 1.0))))
        sp = ", ".join(g(at(v, 1.0)) for v in (0.0, -0.0, INF, -INF, NAN))
        zero = ", ".join(g(at(v, 0.0)) for v in (INF, -INF, NAN))
        k0 = kinks[0]
        dinf = "%s, %s" % (g(at(k0, INF)), g(at(k0, NAN)))
        print("| %s | %s | %s | %s | %s |" % (c["id"], "; ".join(parts), sp, zero, dinf))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--table":
        conventions_table(sys.argv[2] if len(sys.argv) > 2 else "f32")
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "--report-only":
        # re-run the report from saved child results (debugging aid)
        res = {w: dict(np.load(os.path.join(sys.argv[2], w + ".npz"))) for w in ("f32", "f64")}
        report(res)
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    keep = os.environ.get("GEN_BACKWARD_KEEP")  # a directory to keep the child results in
    if keep:
        os.makedirs(keep, exist_ok=True)
        res = run_children(keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_children(tmp)
    versions = [str(v) for v in res["f32"]["versions"]]
    write_backward(res, versions)
    write_dense(res, versions)
    for p in (OUT_ACT, OUT_DENSE):
        print("wrote %s (%d bytes)" % (p, os.path.getsize(p)))
    if "--no-report" not in sys.argv:
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print("# Printed by tests/keras/gen_backward.py (GENERATED FILE, do not edit);")
            print("# keras %s, jax %s, numpy %s, python %s, CPU." % tuple(versions))
            report(res)
        print(buf.getvalue())
        with open(OUT_SUMMARY, "w") as fh:
            fh.write(buf.getvalue())


if __name__ == "__main__":
    main()
