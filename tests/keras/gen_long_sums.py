#!/usr/bin/env python3
"""Generate long-sum (large K) Keras 3 accuracy fixtures for `dense-kernel`.

Purpose: measure how far real Keras (JAX backend, XLA on the CPU) is from the
exact pre-activation z = x.W + b on long dot products (K = 1024, 4096,
16384), so that the crate's float32 summation order can be required to be at
least as accurate as Keras on the same data.  Every case is a float32
`keras.layers.Dense(N, use_bias=True, activation='linear')`, so the output IS
the pre-activation.

How to run (from the repository root):

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy mpmath
    /tmp/kvenv/bin/python tests/keras/gen_long_sums.py

Versions used to produce the committed long_sums.txt: keras 3.15.1,
jax/jaxlib 0.10.2, numpy 2.4.6, Python 3.11, CPU only (x86-64 with AVX-512,
2 cores).  Keras's outputs are deterministic here and did not change with
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
but XLA's dot kernel choice may depend on the CPU and version, so they may
differ on other machines; the truth does not.  mpmath is not needed here.

Outputs:
    tests/keras/long_sums.txt         the fixtures (format in its header)
    /tmp/longsum/keras_errors.txt     error report (also printed): Keras's
        error per case and the error of emulated summation orders (sequential
        f32 FMA chain, blocked chains, L-lane partial sums, block sums in
        f64), for choosing the crate's summation order.  The emulated FMA is
        correctly rounded (float64 sum + exact TwoSum error, midpoint fix-up;
        see fma32).  Override the path with --errors PATH.

Data generator (reproducible bit for bit without libm)
------------------------------------------------------
SplitMix64, one generator per case, state initialised to the case's `seed`
(table CASES below).  next_u64():

    state = (state + 0x9E3779B97F4A7C15) mod 2^64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) mod 2^64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) mod 2^64
    return z ^ (z >> 31)

uniform01() = (next_u64() >> 40) / 2^24: an exact float32 in [0, 1) (a
multiple of 2^-24).

Distributions of one value:
    "uniform": v = uniform01()                               (U(0, 1))
    "normal":  s = u1 + u2 + u3 + u4 with four successive uniform01() draws,
               summed in float64 (exact); v = float32((s - 2.0) *
               1.7320508075688772), i.e. one float64 subtraction (exact), one
               float64 multiply (rounded to nearest float64), then rounded to
               nearest-even float32 (Rust: `((s - 2.0) * 1.7320508075688772f64)
               as f32`).  Irwin-Hall, mean 0, variance 1.

Draw order per case: the input x (M, K) in row-major order, then the kernel W
(K, N) (Keras layout, row-major, i.e. W[p][n] at index p*N + n), then the
bias b (N).  All three use the case's distribution.  If kernel_scale != 1
(an exact power of two) every kernel value is multiplied by it after being
drawn (exact); input and bias are never scaled.

Truth: each product x[m][p] * W[p][n] of two float32 values is exact in
float64; truth[m][n] = math.fsum of the K products and b[n] (the correctly
rounded float64 value of the exact sum).

What XLA does (found with this script, checked bit for bit on every case by
emulate_xla): M = 1 is one float32 FMA chain over all of K, 2 <= M <= 32 sums
blocks of 512, M = 64 (N = 32) blocks of 1024 with two accumulators; the bias
is a separate float32 add at the end.  So Keras's error at M = 1 is that of
a naive chain (about 8x its error at M >= 2 on all-positive data).

Keras runs in a child process of this script (as in gen_fixtures.py):
KERAS_BACKEND=jax, JAX_PLATFORMS=cpu, JAX_ENABLE_X64 unset (float32), no
XLA_FLAGS set; the layer is built for (M, K), given [W, b] with set_weights
and called eagerly on x.
"""

import math
import os
import subprocess
import sys
import tempfile
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_FIXTURES = os.path.join(HERE, "long_sums.txt")
OUT_ERRORS_DEFAULT = "/tmp/longsum/keras_errors.txt"

# --------------------------------------------------------------------------
# The cases: (id, dist, M, K, N, seed, kernel_scale).  All float32, linear,
# use_bias=True.  kernel_scale is an exact power of two.
# --------------------------------------------------------------------------
CASES = [
    # K = 4096, x and W ~ U(0, 1): all-positive sums (the hard case)
    ("k4096_m1_n256_uniform", "uniform", 1, 4096, 256, 4096_0101, 1.0),
    ("k4096_m2_n256_uniform", "uniform", 2, 4096, 256, 4096_0102, 1.0),
    ("k4096_m3_n256_uniform", "uniform", 3, 4096, 256, 4096_0103, 1.0),
    ("k4096_m4_n256_uniform", "uniform", 4, 4096, 256, 4096_0104, 1.0),
    ("k4096_m8_n64_uniform", "uniform", 8, 4096, 64, 4096_0108, 1.0),
    ("k4096_m16_n64_uniform", "uniform", 16, 4096, 64, 4096_0116, 1.0),
    ("k4096_m32_n64_uniform", "uniform", 32, 4096, 64, 4096_0132, 1.0),
    ("k4096_m64_n32_uniform", "uniform", 64, 4096, 32, 4096_0164, 1.0),
    # K = 4096, x and W ~ N(0, 1) (Irwin-Hall)
    ("k4096_m1_n256_normal", "normal", 1, 4096, 256, 4096_0201, 1.0),
    ("k4096_m2_n256_normal", "normal", 2, 4096, 256, 4096_0202, 1.0),
    ("k4096_m3_n256_normal", "normal", 3, 4096, 256, 4096_0203, 1.0),
    ("k4096_m4_n256_normal", "normal", 4, 4096, 256, 4096_0204, 1.0),
    ("k4096_m8_n64_normal", "normal", 8, 4096, 64, 4096_0208, 1.0),
    ("k4096_m16_n64_normal", "normal", 16, 4096, 64, 4096_0216, 1.0),
    ("k4096_m32_n64_normal", "normal", 32, 4096, 64, 4096_0232, 1.0),
    ("k4096_m64_n32_normal", "normal", 64, 4096, 32, 4096_0264, 1.0),
    # K = 4096, normal with the kernel scaled by 2^-5 (weight-like magnitudes)
    ("k4096_m1_n256_normal_ks2m5", "normal", 1, 4096, 256, 4096_0301, 2.0 ** -5),
    ("k4096_m2_n256_normal_ks2m5", "normal", 2, 4096, 256, 4096_0302, 2.0 ** -5),
    ("k4096_m3_n256_normal_ks2m5", "normal", 3, 4096, 256, 4096_0303, 2.0 ** -5),
    ("k4096_m4_n256_normal_ks2m5", "normal", 4, 4096, 256, 4096_0304, 2.0 ** -5),
    ("k4096_m8_n64_normal_ks2m5", "normal", 8, 4096, 64, 4096_0308, 2.0 ** -5),
    ("k4096_m16_n64_normal_ks2m5", "normal", 16, 4096, 64, 4096_0316, 2.0 ** -5),
    ("k4096_m32_n64_normal_ks2m5", "normal", 32, 4096, 64, 4096_0332, 2.0 ** -5),
    ("k4096_m64_n32_normal_ks2m5", "normal", 64, 4096, 32, 4096_0364, 2.0 ** -5),
    # trend in K
    ("k1024_m1_n256_uniform", "uniform", 1, 1024, 256, 1024_0101, 1.0),
    ("k1024_m4_n256_uniform", "uniform", 4, 1024, 256, 1024_0104, 1.0),
    ("k1024_m1_n256_normal", "normal", 1, 1024, 256, 1024_0201, 1.0),
    ("k1024_m4_n256_normal", "normal", 4, 1024, 256, 1024_0204, 1.0),
    ("k16384_m1_n256_uniform", "uniform", 1, 16384, 256, 16384_0101, 1.0),
    ("k16384_m4_n256_uniform", "uniform", 4, 16384, 256, 16384_0104, 1.0),
    ("k16384_m1_n256_normal", "normal", 1, 16384, 256, 16384_0201, 1.0),
    ("k16384_m4_n256_normal", "normal", 4, 16384, 256, 16384_0204, 1.0),
]

# --------------------------------------------------------------------------
# SplitMix64 data generator
# --------------------------------------------------------------------------
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1


class SplitMix64:
    """Scalar reference implementation (used to check the vectorised one)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)


def splitmix_block(seed, start, count):
    """Outputs number start .. start+count-1 (0-based) of SplitMix64(seed),
    vectorised: output i is mix(seed + (i + 1) * GAMMA mod 2^64)."""
    i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed & MASK64) + i * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def uniform01_from(u):
    return ((u >> np.uint64(40)).astype(np.float64) / 16777216.0)


class CaseGen:
    def __init__(self, seed, dist):
        self.seed = seed
        self.dist = dist
        self.pos = 0  # number of u64 draws consumed

    def values(self, count):
        per = 1 if self.dist == "uniform" else 4
        u = uniform01_from(splitmix_block(self.seed, self.pos, count * per))
        self.pos += count * per
        if self.dist == "uniform":
            v = u.astype(np.float32)
            assert np.array_equal(v.astype(np.float64), u)
            return v
        u = u.reshape(count, 4)
        s = ((u[:, 0] + u[:, 1]) + u[:, 2]) + u[:, 3]  # exact
        return ((s - 2.0) * 1.7320508075688772).astype(np.float32)


def gen_case_data(case):
    cid, dist, m, k, n, seed, ks = case
    g = CaseGen(seed, dist)
    x = g.values(m * k).reshape(m, k)
    w = g.values(k * n).reshape(k, n)
    b = g.values(n)
    if ks != 1.0:
        assert math.frexp(ks)[0] == 0.5, "kernel_scale must be a power of two"
        w2 = (w.astype(np.float64) * ks).astype(np.float32)
        assert np.array_equal(w2.astype(np.float64), w.astype(np.float64) * ks)
        w = w2
    return x, w, b


def self_check_generator():
    g = SplitMix64(1234567)
    ref = [g.next_u64() for _ in range(1000)]
    vec = splitmix_block(1234567, 0, 1000).tolist()
    assert ref == vec, "vectorised SplitMix64 mismatch"
    assert splitmix_block(1234567, 500, 500).tolist() == ref[500:]
    # a known SplitMix64 test vector (seed 0): first output 0xE220A8397B1DCDAF
    assert SplitMix64(0).next_u64() == 0xE220A8397B1DCDAF
    # scalar re-derivation of a few normal values
    g = SplitMix64(42)
    cg = CaseGen(42, "normal")
    vals = cg.values(50)
    for v in vals:
        s = sum((g.next_u64() >> 40) / 16777216.0 for _ in range(4))
        assert np.float32((s - 2.0) * 1.7320508075688772) == v


# --------------------------------------------------------------------------
# Keras side (child process)
# --------------------------------------------------------------------------


def keras_child(npz_in, npz_out):
    import warnings
    os.environ["KERAS_BACKEND"] = "jax"
    warnings.simplefilter("ignore")
    import jax
    import keras
    assert keras.__version__ == "3.15.1", keras.__version__
    assert keras.backend.backend() == "jax"
    assert not jax.config.jax_enable_x64
    data = np.load(npz_in, allow_pickle=False)
    n = int(data["n"])
    res = {}
    for i in range(n):
        x = data["x%d" % i]
        kern = data["k%d" % i]
        bias = data["b%d" % i]
        assert x.dtype == np.float32 and kern.dtype == np.float32
        layer = keras.layers.Dense(kern.shape[1], activation="linear",
                                   use_bias=True, dtype="float32")
        layer.build(x.shape)
        layer.set_weights([kern, bias])
        for wv, wn in zip(layer.get_weights(), [kern, bias]):
            assert wv.dtype == np.float32, wv.dtype
            assert np.array_equal(wv, wn)
        y = np.asarray(layer(x))
        assert y.shape == (x.shape[0], kern.shape[1]), y.shape
        assert y.dtype == np.float32, y.dtype
        res["y%d" % i] = y
    import jaxlib
    res["versions"] = np.array("keras %s, jax %s, jaxlib %s, numpy %s, python %s" % (
        keras.__version__, jax.__version__, jaxlib.__version__, np.__version__,
        sys.version.split()[0]))
    np.savez(npz_out, **res)


def run_keras(datas, extra_env=None):
    with tempfile.TemporaryDirectory() as td:
        fin = os.path.join(td, "in.npz")
        fout = os.path.join(td, "out.npz")
        arrs = {"n": np.array(len(datas))}
        for i, (x, w, b) in enumerate(datas):
            arrs["x%d" % i] = x
            arrs["k%d" % i] = w
            arrs["b%d" % i] = b
        np.savez(fin, **arrs)
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "jax"
        env["JAX_PLATFORMS"] = "cpu"
        env.pop("JAX_ENABLE_X64", None)
        if extra_env:
            env.update(extra_env)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--keras-child",
                        fin, fout], check=True, env=env)
        out = np.load(fout)
        return [out["y%d" % i] for i in range(len(datas))], str(out["versions"])


# --------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------


def compute_truth(x, w, b):
    m, k = x.shape
    n = w.shape[1]
    w64 = w.astype(np.float64)
    b_list = b.astype(np.float64).tolist()
    t = np.empty((m, n), dtype=np.float64)
    for i in range(m):
        cols = (x[i].astype(np.float64)[:, None] * w64).T.tolist()  # exact
        for j in range(n):
            t[i, j] = math.fsum(cols[j] + [b_list[j]])
    return t


def exact_truth(x, w, b, i, j):
    acc = Fraction(float(b[j]))
    for a, c in zip(x[i].tolist(), w[:, j].tolist()):
        acc += Fraction(a) * Fraction(c)
    return acc


# --------------------------------------------------------------------------
# Emulated float32 summation orders
# --------------------------------------------------------------------------


def fma32(p, c):
    """Correctly rounded float32 fma: round32(p + c) where p is an exact
    float64 product of two float32 values and c a float32 array.  Computed
    as s = p + c in float64 plus the exact TwoSum error e; round32(s) is
    correct unless s is exactly a float32 midpoint and e != 0, which is
    fixed up explicitly (no double-rounding error)."""
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    e = (p - (s - bb)) + (c64 - bb)
    r = s.astype(np.float32)
    diff = s - r.astype(np.float64)  # exact
    need = (e != 0) & (diff != 0)
    if need.any():
        rr = r[need]
        dd = diff[need]
        other = np.nextafter(rr, np.where(dd > 0, np.float32(np.inf),
                                          np.float32(-np.inf)).astype(np.float32))
        mid = (rr.astype(np.float64) + other.astype(np.float64)) * 0.5
        fix = (s[need] == mid) & (np.sign(e[need]) == np.sign(dd))
        r[need] = np.where(fix, other, rr)
    return r


def round32_exact(fr):
    """Nearest-even float32 of a Fraction (finite, normal range)."""
    c = np.float32(float(fr))
    best = None
    for v in (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))):
        d = abs(Fraction(float(v)) - fr)
        key = (d, int(np.abs(v).view(np.uint32)) & 1)
        if best is None or key < best[0]:
            best = (key, v)
    return best[1]


def self_check_fma32():
    rng = np.random.default_rng(7)
    n = 20000
    a = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    bq = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    c = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    # crafted double-rounding cases: p = 2^-24 (1 + 2^-23)(1 - 2^-23) =
    # 2^-24 (1 - 2^-46), so p + c lands on a float32 midpoint in float64
    extra_a, extra_b, extra_c = [], [], []
    fa = np.float32(2.0 ** -24 * (1 + 2.0 ** -23))
    fb = np.float32(1 - 2.0 ** -23)
    for cc in (1.0 + 2.0 ** -23, 1.0, 3.0 + 2.0 ** -22, 2.0 ** 10 * (1 + 2.0 ** -23)):
        for sa in (1.0, -1.0):
            for sc in (1.0, -1.0):
                scale = 2.0 ** 10 if cc > 2.0 ** 9 else 1.0
                extra_a.append(np.float32(sa * fa * scale))
                extra_b.append(fb)
                extra_c.append(np.float32(sc * cc))
    a = np.concatenate([a, np.array(extra_a, np.float32)])
    bq = np.concatenate([bq, np.array(extra_b, np.float32)])
    c = np.concatenate([c, np.array(extra_c, np.float32)])
    p = a.astype(np.float64) * bq.astype(np.float64)
    r = fma32(p, c)
    naive = (p + c.astype(np.float64)).astype(np.float32)
    fixed = 0
    for i in range(len(a)):
        fr = Fraction(float(a[i])) * Fraction(float(bq[i])) + Fraction(float(c[i]))
        want = round32_exact(fr)
        assert r[i] == want, (a[i], bq[i], c[i], r[i], want)
        fixed += naive[i] != want
    return fixed


def chain_from_bias(x64, w64, b):
    """acc = b; for p in 0..K: acc = fma(x[p], w[p], acc)."""
    m = x64.shape[0]
    acc = np.broadcast_to(b, (m, w64.shape[1])).astype(np.float32)
    for p in range(x64.shape[1]):
        acc = fma32(x64[:, p, None] * w64[p, None, :], acc)
    return acc


def blocked(x64, w64, b, kc, lanes=1, reduce="tree", start="b", acc64=False):
    """General blocked / multi-lane float32 summation.

    K is cut into blocks of kc (kc = K: one block).  Inside a block, lane l
    (0 <= l < lanes) sums the positions p = block_start + j*lanes + l,
    j = 0, 1, ..., with an FMA chain starting from 0.0; at the end of the
    block the lanes are reduced, "tree": halving (lane l += lane l + h for
    h = lanes/2, lanes/4, ..., 1), "seq": ((l0 + l1) + l2) + ...  The block
    sums t_0, t_1, ... are then combined in order:
        start "b": acc = b; acc = acc + t_i (float32 adds)
        start "0": acc = t_0; acc = acc + t_i (i >= 1); y = acc + b
        acc64:     y = float32(b + t_0 + t_1 + ...) summed in float64
    """
    m, k = x64.shape
    n = w64.shape[1]
    kc = min(kc, k)
    nb = k // kc
    assert nb * kc == k and kc % lanes == 0
    s = np.zeros((nb * lanes, m, n), np.float32)
    base = (np.arange(nb)[:, None] * kc + np.arange(lanes)[None, :]).reshape(-1)
    for j in range(kc // lanes):
        idx = base + j * lanes
        s = fma32(x64[:, idx].T[:, :, None] * w64[idx][:, None, :], s)
    s = s.reshape(nb, lanes, m, n)
    if reduce == "tree":
        h = lanes
        while h > 1:
            h //= 2
            s = s[:, :h] + s[:, h:2 * h]
        t = s[:, 0]
    else:
        t = s[:, 0]
        for lane in range(1, lanes):
            t = t + s[:, lane]
    if acc64:
        acc = np.broadcast_to(b, (m, n)).astype(np.float64)
        for i in range(nb):
            acc = acc + t[i].astype(np.float64)
        return acc.astype(np.float32)
    if start == "b":
        acc = np.broadcast_to(b, (m, n)).astype(np.float32)
        for i in range(nb):
            acc = acc + t[i]
        return acc
    acc = t[0]
    for i in range(1, nb):
        acc = acc + t[i]
    return acc + b


def emulate_xla(x, w, b):
    """Bit-exact reproduction of what Keras 3.15.1 / jax 0.10.2 (XLA CPU,
    x86-64 AVX-512) returned for every case of this file (found empirically;
    other shapes or machines may differ): the dot x.W, then + b as a separate
    float32 add.  M = 1: one FMA chain over all of K from 0.  2 <= M <= 32
    (N = 256 / 64): blocks of 512, each an FMA chain from 0, block sums added
    in order starting from the first.  M = 64 (N = 32): blocks of 1024, each
    with two interleaved FMA accumulators (even / odd p) added at the end of
    the block, block sums added in order."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    m = x.shape[0]
    if m == 1:
        return blocked(x64, w64, b, x.shape[1], start="0")
    if m <= 32:
        return blocked(x64, w64, b, 512, start="0")
    return blocked(x64, w64, b, 1024, lanes=2, reduce="seq", start="0")


def emulate(x, w, b):
    """Return {name: y (M, N) float32} for emulated summation orders."""
    x64 = x.astype(np.float64)
    w64 = w.astype(np.float64)
    k = x.shape[1]
    out = {}
    # sequential FMA chain starting from the bias / from 0 with b added last
    out["chain(b)"] = chain_from_bias(x64, w64, b)
    out["chain(0)+b"] = blocked(x64, w64, b, k, start="0")
    # blocks of B, each an FMA chain from 0, block sums added onto the bias
    for bs in (64, 128, 256, 512, 1024):
        out["block%d" % bs] = blocked(x64, w64, b, bs)
    # blocks of 512 added from 0, bias last (= Keras for 2 <= M <= 32)
    out["block512(0)+b"] = blocked(x64, w64, b, 512, start="0")
    # L lanes over all of K (p mod L), halving reduction, then + b
    for lanes in (8, 16):
        out["lanes%d" % lanes] = blocked(x64, w64, b, k, lanes=lanes, start="0")
    # 8 lanes inside blocks of 256, block results added onto the bias
    out["block256x8lanes"] = blocked(x64, w64, b, 256, lanes=8)
    # block sums (and bias) accumulated in float64, one final rounding
    for bs in (256, 512, 1024):
        out["block%d+f64" % bs] = blocked(x64, w64, b, bs, acc64=True)
    out["block512x8lanes+f64"] = blocked(x64, w64, b, 512, lanes=8, acc64=True)
    return out


def abs_sum(x, w, b):
    """sum_p |x[m][p] * W[p][n]| + |b[n]| in float64 (for scaled errors)."""
    w64 = np.abs(w.astype(np.float64))
    out = np.empty((x.shape[0], w.shape[1]))
    for i in range(x.shape[0]):
        out[i] = (np.abs(x[i].astype(np.float64))[:, None] * w64).sum(axis=0)
    return out + np.abs(b.astype(np.float64))


def err_stats(y, truth, asum):
    """max |y - truth|, RMS error, max error in float32 ulps of the truth,
    max error in units of 2^-24 * (sum |x*w| + |b|) (condition-scaled)."""
    d = np.abs(y.astype(np.float64) - truth)
    mant, ex = np.frexp(truth)
    ulp = np.ldexp(1.0, ex - 24)  # float32 ulp of the truth (|t| in [2^(ex-1), 2^ex))
    return (float(d.max()), float(np.sqrt(np.mean(d * d))), float((d / ulp).max()),
            float((d / (asum * 2.0 ** -24)).max()))


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

HEADER = """\
# Keras 3 long-sum (large K) Dense fixtures for dense-kernel. GENERATED FILE, do not edit.
# Produced by tests/keras/gen_long_sums.py; see its docstring to regenerate.
# Versions: {versions}; CPU only (x86-64 with AVX-512, 2 cores).
#
# Every case: float32 keras.layers.Dense(N, activation='linear', use_bias=True)
# built for input shape (M, K), set_weights([W, b]) and called on x (JAX
# backend, XLA CPU, JAX_ENABLE_X64 unset, no XLA_FLAGS). The output is the
# pre-activation z = x.W + b.
#
# Inputs are NOT stored; regenerate them (bit for bit, no libm needed):
#   SplitMix64, one generator per case, state = <seed>; next_u64():
#     state = state + 0x9E3779B97F4A7C15 (mod 2^64); z = state;
#     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 (mod 2^64);
#     z = (z ^ (z >> 27)) * 0x94D049BB133111EB (mod 2^64); return z ^ (z >> 31).
#   uniform01() = (next_u64() >> 40) as f32 / 2^24 (exact, in [0, 1)).
#   dist uniform: v = uniform01().
#   dist normal:  s = u1 + u2 + u3 + u4 (four successive uniform01() draws,
#     summed in f64, exact); v = ((s - 2.0) * 1.7320508075688772f64) as f32
#     (one f64 multiply, then round to nearest-even f32). Mean 0, variance 1.
#   Draw order: x (M, K) row-major, then W (K, N) row-major (Keras layout,
#   W[p][n] at p*N + n), then b (N), all from the case's distribution; then
#   every W value is multiplied by kernel_scale (an exact power of two; x and b
#   are not scaled).
#
# Format (whitespace-separated tokens, '#' lines are comments), per case:
#   case <id> dist <uniform|normal> m <M> k <K> n <N> seed <seed> kernel_scale <s>
#   keras <M*N values, row-major (m, n)>
#   truth <M*N values, row-major>
#   end
# keras values: the shortest decimal that rounds (nearest-even) to the same
# float32 (parse directly as f32). truth: repr of a float64 = math.fsum of the
# K exact float64 products x[m][p]*W[p][n] and b[n], i.e. the exact z
# correctly rounded to float64.
#
# Observed (the generator checks it on every case, see emulate_xla): on this
# machine Keras's outputs are reproduced bit for bit by float32 FMA chains,
# then + b as a separate float32 add: M = 1: one chain over all of K from 0;
# 2 <= M <= 32: blocks of 512 (chain from 0 each), block sums added in order;
# M = 64 (N = 32): blocks of 1024 with two interleaved accumulators (even/odd
# p, added at the end of the block), block sums added in order. Other
# shapes, CPUs or XLA versions may choose other kernels.
"""


def fmt_case(case, keras_y, truth):
    from gen_fixtures import fmt_f32
    cid, dist, m, k, n, seed, ks = case
    lines = ["case %s dist %s m %d k %d n %d seed %d kernel_scale %s"
             % (cid, dist, m, k, n, seed, repr(float(ks)))]
    lines.append("keras " + " ".join(fmt_f32(v) for v in keras_y.reshape(-1)))
    lines.append("truth " + " ".join(repr(float(v)) for v in truth.reshape(-1)))
    lines.append("end")
    return lines


def main():
    sys.path.insert(0, HERE)
    errors_path = OUT_ERRORS_DEFAULT
    if "--errors" in sys.argv:
        errors_path = sys.argv[sys.argv.index("--errors") + 1]
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    seeds = [c[5] for c in CASES]
    assert len(seeds) == len(set(seeds)), "duplicate seeds"

    self_check_generator()
    nfix = self_check_fma32()
    print("fma32 emulation checked (double rounding would have been wrong in %d "
          "test cases)" % nfix, flush=True)

    datas = [gen_case_data(c) for c in CASES]
    keras_ys, versions = run_keras(datas)
    print("keras done:", versions, flush=True)

    out_lines = [HEADER.format(versions=versions).rstrip("\n")]
    report = []
    strat_names = None
    worst = {}  # strategy -> list of (case, ok_max, ok_rms, max ratio, rms ratio)
    keras_rows = []
    report.append("# Per case: Keras's error vs the exact truth (max abs, RMS, max in f32")
    report.append("# ulps of the truth, max in units of 2^-24*(sum|x*w|+|b|)), whether")
    report.append("# emulate_xla() reproduces Keras bit for bit, then each emulated order")
    report.append("# with its ratios to Keras's max and RMS error.")
    for case, (x, w, b), ky in zip(CASES, datas, keras_ys):
        t = compute_truth(x, w, b)
        # spot-check fsum against exact rationals
        for (i, j) in ((0, 0), (x.shape[0] - 1, w.shape[1] - 1)):
            assert float(exact_truth(x, w, b, i, j)) == t[i, j], (case[0], i, j)
        out_lines += fmt_case(case, ky, t)
        asum = abs_sum(x, w, b)
        kmax, krms, kulp, kulpa = err_stats(ky, t, asum)
        xla_eq = int(np.sum(emulate_xla(x, w, b) == ky))
        emu = emulate(x, w, b)
        if strat_names is None:
            strat_names = list(emu)
        keras_rows.append("%-28s %9.3e %9.3e %9.2f %6.2f   %5d/%d" % (
            case[0], kmax, krms, kulp, kulpa, xla_eq, ky.size))
        report.append("%s keras max %.3e rms %.3e ulp %.2f ulpA %.2f |t|max %.3e "
                      "xla-emulation bit-equal %d/%d" % (
                          case[0], kmax, krms, kulp, kulpa, float(np.abs(t).max()),
                          xla_eq, ky.size))
        for name in strat_names:
            emax, erms, eulp, eulpa = err_stats(emu[name], t, asum)
            okm, okr = emax <= kmax, erms <= krms
            worst.setdefault(name, []).append((case[0], okm, okr, emax / kmax, erms / krms))
            report.append("    %-20s max %.3e rms %.3e ulp %9.2f ulpA %6.2f  ratio max %.2f "
                          "rms %.2f%s%s" % (name, emax, erms, eulp, eulpa, emax / kmax,
                                            erms / krms, "" if okm else " MAX>KERAS",
                                            "" if okr else " RMS>KERAS"))
        print("\n".join(report[-1 - len(strat_names):]), flush=True)

    summary = ["", "# Keras error per case",
               "%-28s %9s %9s %9s %6s   %s" % ("case", "max_abs", "rms", "max_ulp",
                                              "ulpA", "xla-emulation bit-equal")]
    summary += keras_rows
    summary.append("")
    summary.append("# per strategy: cases where max or RMS exceeds Keras's; worst ratios")
    for name in strat_names:
        rows = worst[name]
        badm = [r[0] for r in rows if not r[1]]
        badr = [r[0] for r in rows if not r[2]]
        summary.append("%-20s max<=keras on all: %-5s (%2d bad)  rms<=keras on all: %-5s "
                       "(%2d bad)  worst ratio max %.2f rms %.2f" % (
                           name, not badm, len(badm), not badr, len(badr),
                           max(r[3] for r in rows), max(r[4] for r in rows)))
        if badm:
            summary.append("    max>keras: " + " ".join(badm))
        if badr:
            summary.append("    rms>keras: " + " ".join(badr))
    for which, col in (("max", 3), ("RMS", 4)):
        summary.append("")
        summary.append("# %s error ratio to Keras's (strategy / keras), columns = strategies "
                       "in the order above (numbered)" % which)
        summary.append("%-28s" % "case" + "".join("%7d" % (i + 1) for i in range(len(strat_names))))
        for ci, case in enumerate(CASES):
            summary.append("%-28s" % case[0] + "".join(
                "%7.2f" % worst[name][ci][col] for name in strat_names))
    summary.append("# columns: " + " ".join("%d=%s" % (i + 1, nm) for i, nm in enumerate(strat_names)))
    report += summary

    with open(OUT_FIXTURES, "w") as f:
        f.write("\n".join(out_lines) + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(errors_path)), exist_ok=True)
    with open(errors_path, "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(summary))
    print("long_sums.txt bytes:", os.path.getsize(OUT_FIXTURES))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--keras-child":
        keras_child(sys.argv[2], sys.argv[3])
    else:
        main()
