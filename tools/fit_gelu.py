"""Tables for the proposed AVX-512 erf-GELU (gelu_f32_lut, degree-5 folded form).

    a·Φ(−a) = 2^⌊nf'⌋ · P_i(a − mid_i) · (1 + ee)

  * t  = fma(a·a, −1/H, M): the sixteenths grid; nf = t − M = −N/16 (exact),
    nf' = t − (M − c) = nf + c (exact; c = the exponent offset, see below).
  * s  = a² + nf·H, formed exactly and rounded once by fma(a, a, fma(t, H, −M·H))
    (H = 2 ln 2 cut to 12 bits, so nf·H is exact). The rest of 2 ln 2 is NOT added:
        e^(−a²/2) = 2^nf · e^(−s·ln2/H) · e^(κa²),   κ = (2 ln 2 − H)/(2H)   (exact identity)
    so the exponential's polynomial is fitted to e^(−s·ln2/H) − 1 = s·g(s) and the
    smooth factor e^(κa²) (≤ 1.0048 at a = 14.4) goes into the interval polynomials.
  * 1 + ee = T_j·(1 + em), em = s·g(s), ee = fma(T_j, em, B_j), j = low 4 bits of t,
    T_j = 2^(j/16 − k_j) (k_j = 1 where j/16 + c ≥ 1, so that ⌊nf'⌋ takes the carry),
    B_j = T_j − 1 (each rounded to f32 separately).
  * P_i(u), degree 5 in u = a − mid_i, fits F(a) = a·e^(a²/2)·Φ(−a)·e^(κa²) (a folded in:
    no a·R product). Interval 24 (a ∈ [0, 1/8)) has mid = 0 and c0 = 0, so P = a·(…) keeps
    its relative accuracy as a → 0 (down to subnormal a); elsewhere mid_i is picked (among
    f32 near the centre) so that F(mid_i) rounds to f32 with error ≲ 1e-4 ulp (the constant
    term), and the higher coefficients are rounded to f32 one at a time, refitting the rest.

Run: python3 tools/fit_gelu.py 7 0.05 final   (the committed tables; writes tables_final.json and
prints the Rust literals). Needs numpy, scipy, mpmath.
"""
import json
import struct
import sys

import mpmath as mp
import numpy as np
from scipy.special import ndtr

mp.mp.dps = 40
LN2 = float(mp.log(2))
H = 1.38623046875  # 2 ln 2 cut to 12 bits (2839/2048)
assert H * 2048 == 2839
KAPPA = (2 * mp.log(2) - H) / (2 * H)
M = 786432.0  # 1.5·2^19: ulp 1/16
AMAX = 14.4


def f32(v):
    return float(np.float32(v))


def f32_lit(v):
    v = f32(v)
    for p in range(1, 18):
        t = f"{v:.{p}g}"
        if f32(float(t)) == v:
            if "e" not in t and "." not in t:
                t += ".0"
            return t
    raise ValueError(v)


GAMMA = 1.0  # set in main: P fits γ·F, the exponential's tables carry 1/γ


def F_mp(a):
    a = mp.mpf(a)
    return mp.mpf(GAMMA) * a * mp.exp(a * a / 2) * mp.ncdf(-a) * mp.exp(KAPPA * a * a)


def F_np(a):
    # f64, relative error ~1e-15 (a² exact in f64 for f32 a).
    return GAMMA * a * np.exp(a * a / 2) * ndtr(-a) * np.exp(float(KAPPA) * a * a)


def G_np(a):
    # F(a)/a
    return GAMMA * np.exp(a * a / 2) * ndtr(-a) * np.exp(float(KAPPA) * a * a)


NI = 32        # intervals: 32 (AVX-512, key bits >> 20) or 8 (AVX2 vpermps, key bits >> 22)
ZERO = 24      # the interval holding a = 0 (key in [1, 1 + 1/8) or [1, 1.5))
JN = 16        # exponent grid: 2^(j/JN)


def interval(i):
    per = NI // 4  # intervals per binade of key
    z = (127 * per) % NI
    e, m = divmod((i - z) % NI, per)
    lo = 2.0 ** e * (1 + m / per) - 1
    hi = min(2.0 ** e * (1 + (m + 1) / per) - 1, AMAX)
    return lo, hi


def fit_seq(xs, target, powers, fixed_first=None, weight=None):
    """Least squares (relative: rows divided by weight) of target ≈ Σ c_k x^p_k, the
    coefficients rounded to f32 one at a time (lowest power first), refitting the rest."""
    w = np.ones_like(xs) if weight is None else weight
    cs = []
    resid = target.copy()
    if fixed_first is not None:
        cs.append(fixed_first)
        resid = resid - fixed_first * xs ** powers[0]
        rest = powers[1:]
    else:
        rest = powers
    h = np.max(np.abs(xs))
    for n in range(len(rest)):
        ps = rest[n:]
        A = np.stack([(xs / h) ** p for p in ps], 1) / w[:, None]
        sol, *_ = np.linalg.lstsq(A, resid / w, rcond=None)
        c = f32(sol[0] / h ** ps[0])
        cs.append(c)
        resid = resid - c * xs ** ps[0]
    return cs


def cheb(lo, hi, n):
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)


def next_f32(v, k):
    b = np.float32(v).view(np.uint32) + np.uint32(k) if k >= 0 else np.float32(v).view(np.uint32) - np.uint32(-k)
    return float(np.uint32(b).view(np.float32))


def eval_poly(cs, u):
    p = np.zeros_like(u)
    for c in reversed(cs):
        p = p * u + c
    return p


def fit_interval(i, deg=5, nodes=64, tries=12, span=6000):
    nodes = max(nodes, 12 * deg)
    lo, hi = interval(i)
    d = (hi - lo) * 1e-6
    dense = np.linspace(lo - d, hi + d, 4001)
    if i == ZERO:
        # a ∈ [0, 1/8): P(a) = a·(c1 + c2 a + …); c0 = 0, mid = 0.
        xs = cheb(0, hi + d, nodes)
        # c1 = γ/2 exactly (G(0) = γ·R(0) = γ/2; γ is an f32, so γ/2 is too)
        cs = [0.0] + fit_seq(xs, G_np(xs), list(range(deg)), fixed_first=GAMMA / 2, weight=G_np(xs))
        dd = dense[dense > 0]
        err = np.max(np.abs(eval_poly(cs, dd) / F_np(dd) - 1))
        return 0.0, cs, err
    centre = f32((lo + hi) / 2)
    cands = np.array([next_f32(centre, k) for k in range(-span, span + 1)])
    Fc = F_np(cands)
    rel = np.abs(Fc.astype(np.float32).astype(np.float64) - Fc) / Fc
    best = None
    for j in np.argsort(rel)[:tries]:
        mid = float(cands[j])
        c0 = f32(F_mp(mid))  # mpmath for the constant term itself
        us = cheb(lo - d - mid, hi + d - mid, nodes)
        fx = F_np(us + mid)
        cs = fit_seq(us, fx, list(range(deg + 1)), fixed_first=c0, weight=fx)
        err = np.max(np.abs(eval_poly(cs, dense - mid) / F_np(dense) - 1))
        if best is None or err < best[2]:
            best = (mid, cs, err)
    return best


def exp_tables(c16):
    """T_j, B_j for offset c = c16/16, and g(s) (degree 2) for e^(−s ln2/H) − 1 = s·g(s)."""
    T, B = [], []
    for j in range(JN):
        k = 1 if j + c16 >= JN else 0
        v = mp.mpf(2) ** (mp.mpf(j) / JN - k) / mp.mpf(GAMMA)
        T.append(f32(v))
        B.append(f32(v - 1))
    # s range: |a² − N·H/16| ≤ H/32, plus the roundings of a² and of −1/H on the way to N
    hs = H / (2 * JN) * 1.002
    ss = cheb(-hs, hs, 200)
    lam = LN2 / H
    # target g(s) = (e^(−λs) − 1)/s, in mpmath; absolute error of s·g weighted: fit g with
    # weight 1/|s| (i.e. minimise |s|·|Δg|).
    g = np.array([float(mp.expm1(-lam * mp.mpf(s)) / mp.mpf(s)) for s in ss])
    G = fit_seq(ss, g, list(range(GDEG + 1)), weight=1.0 / np.abs(ss))
    sd = np.linspace(-hs, hs, 20001)
    sd = sd[sd != 0]
    gerr = max(abs(float(mp.mpf(s) * sum(c * mp.mpf(s) ** k for k, c in enumerate(G)) - mp.expm1(-lam * mp.mpf(s)))) for s in sd[::50])
    return T, B, G, gerr


GDEG = 2


def main():
    global GAMMA, NI, ZERO, JN, GDEG
    c16 = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    eps = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    GAMMA = f32(2.0 ** -eps)
    name = sys.argv[3] if len(sys.argv) > 3 else str(c16)
    deg = 5
    if len(sys.argv) > 4 and sys.argv[4] == "avx2":
        NI, JN, GDEG = 8, 8, 3
        deg = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    ZERO = (127 * (NI // 4)) % NI
    mids, coefs, errs = [], [], []
    for i in range(NI):
        mid, cs, err = fit_interval(i, deg)
        mids.append(mid)
        coefs.append(cs)
        errs.append(err)
    T, B, G, gerr = exp_tables(c16)
    tab = {
        "deg": deg,
        "NI": NI,
        "JN": JN,
        "offset16": c16,
        "gamma": GAMMA,
        "H": H,
        "M": M * 16 / JN,
        "M_nf": M * 16 / JN - c16 / JN,
        "Ct": f32(-1.0 / H),
        "mid": mids,
        "lut": [[coefs[i][k] for i in range(NI)] for k in range(deg + 1)],
        "exp_g": G,
        "exp2": T,
        "exp2_m1": B,
        "fit_err": errs,
        "g_abs_err": gerr,
    }
    json.dump(tab, open(f"/tmp/gelu/tables_{name}.json", "w"), indent=1)
    print(f"// fit: max relative error of the f32-coefficient polynomials {max(errs):.3e}"
          f" ({max(errs) * 2**24:.3f} u of 2^-24), worst interval {int(np.argmax(errs))}; em abs err {gerr:.2e}")
    if NI == 32:
        print(rust(tab))


def rust(tab):
    out = []
    g = tab["gamma"]
    out.append("// Generated by fit_gelu.py " + " ".join(sys.argv[1:]) + ": do not edit by hand.")
    out.append(f"// GELU_LUT: γ·a·e^(a²/2)·Φ(−a)·e^(κa²) (γ = {f32_lit(g)}, κ = (2 ln 2 − H)/(2H), H = 2839/2048,")
    out.append("// 2 ln 2 cut to 12 bits) on 32 intervals of a in [0, 14.4], degree 5 in a − GELU_LUT_MID[i],")
    out.append(f"// f32 coefficients, relative error {max(tab['fit_err']):.2e}; interval 24 (a < 1/8) has mid 0, constant")
    out.append("// term 0 and linear term γ/2 (exact), so it stays accurate as a → 0.")
    out.append("pub(crate) const GELU_LUT_MID: [f32; 32] = [")
    out += [f"    {f32_lit(v)}," for v in tab["mid"]]
    out.append("];")
    out.append("pub(crate) const GELU_LUT: [[f32; 32]; 6] = [")
    for row in tab["lut"]:
        out.append("    [")
        out += [f"        {f32_lit(v)}," for v in row]
        out.append("    ],")
    out.append("];")
    out.append(f"// GELU_EXP_G: e^(−s·ln2/H) − 1 = s·g(s), degree 2, |s| ≤ H/32, f32 coefficients (abs error {tab['g_abs_err']:.1e}).")
    out.append("pub(crate) const GELU_EXP_G: [f64; 3] = [" + ", ".join(repr(v) for v in tab["exp_g"]) + "];")
    c16 = tab["offset16"]
    out.append(f"// GELU_EXP2: 2^(j/16 − k_j)/γ (k_j = 1 for j ≥ {16 - c16}: ⌊nf + {c16}/16⌋ takes the carry) and that")
    out.append("// minus 1, each rounded to f32.")
    if any(abs(v - 2 ** 0.5) < 1e-7 for v in tab["exp2"]):
        out.append("#[allow(clippy::approx_constant)] // 2^(8/16) = √2 is an entry, not a stand-in")
    out.append("pub(crate) const GELU_EXP2: [f32; 16] = [")
    out += [f"    {f32_lit(v)}," for v in tab["exp2"]]
    out.append("];")
    out.append("pub(crate) const GELU_EXP2_M1: [f32; 16] = [")
    out += [f"    {f32_lit(v)}," for v in tab["exp2_m1"]]
    out.append("];")
    return "\n".join(out)


if __name__ == "__main__":
    main()
