"""Near-minimax polynomial coefficients for the SIMD activation kernels (src/simd/coeffs.rs).

Each polynomial is a Chebyshev fit (mpmath.chebyfit) of a smooth auxiliary function,
evaluated in 50-digit arithmetic; the printed error is the fit's max absolute error over
the interval (the auxiliary functions are all of size ~0.3..1.2, so this is also about
the relative error). Run: python3 tools/fit_coeffs.py  (needs mpmath).
"""
import struct

import mpmath as mp

mp.mp.dps = 50
LN2 = mp.log(2)


def fit(name, f, a, b, n):
    poly, err = mp.chebyfit(f, [a, b], n, error=True)
    # chebyfit gives the highest degree first; we print lowest first.
    coeffs = list(reversed(poly))
    print(f"// {name}: degree {n - 1} on [{mp.nstr(a, 6)}, {mp.nstr(b, 6)}], fit error {mp.nstr(err, 3)}")
    print(f"pub(crate) const {name}: [f64; {n}] = [")
    for c in coeffs:
        print(f"    {float(c)!r},")
    print("];")


def f32(x):
    return mp.mpf(struct.unpack("f", struct.pack("f", float(x)))[0])


def fit_f32_rel(f, a, b, n, nodes=120, c0=None):
    # The coefficients are rounded to f32 one at a time, lowest first, each time
    # refitting the higher ones (relative least squares on Chebyshev nodes) to absorb
    # the rounding; returns them with the relative error at the nodes. `c0`, if given
    # (an f32), is the constant term, fixed instead of fitted.
    xs = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / nodes) for k in range(nodes)]
    fx = [f(x) for x in xs]
    fixed = [] if c0 is None else [c0]
    for i in range(len(fixed), n):
        m = n - i
        A = mp.matrix(nodes, m)
        rhs = mp.matrix(nodes, 1)
        for r, (x, y) in enumerate(zip(xs, fx)):
            done = sum(c * x**j for j, c in enumerate(fixed))
            for j in range(m):
                A[r, j] = x ** (i + j) / y
            rhs[r] = (y - done) / y
        sol, _ = mp.qr_solve(A, rhs)
        fixed.append(f32(sol[0]))
    err = max(abs(sum(c * x**j for j, c in enumerate(fixed)) / y - 1) for x, y in zip(xs, fx))
    return fixed, err


def fit_f32(name, f, a, b, n, nodes=300):
    # For polynomials evaluated in f32 lanes (see fit_f32_rel), printed exactly as the
    # f32 values.
    fixed, err = fit_f32_rel(f, a, b, n, nodes)
    print(f"// {name}: degree {n - 1} on [{mp.nstr(a, 6)}, {mp.nstr(b, 6)}], f32 coefficients, relative error {mp.nstr(err, 3)} (at the nodes)")
    print(f"pub(crate) const {name}: [f64; {n}] = [")
    for c in fixed:
        print(f"    {float(c)!r},")
    print("];")


def gelu_mills(a):
    # R(a) = e^(a^2/2) Phi(-a): Phi(-a) = e^(-a^2/2) R(a), R smooth and slowly varying.
    return mp.exp(a * a / 2) * mp.erfc(a / mp.sqrt(2)) / 2


def f32_lit(v):
    # The shortest decimal that reads back as the same f32 (clippy's excessive_precision
    # rejects the f64 repr of an f32 value).
    for p in range(1, 18):
        t = f"{float(v):.{p}g}"
        if f32(t) == v:
            return repr(float(t))
    raise ValueError(v)


def next_f32(v, k):
    # The f32 k steps above (k < 0: below) the f32 v > 0.
    b = struct.unpack("I", struct.pack("f", float(v)))[0]
    return mp.mpf(struct.unpack("f", struct.pack("I", b + k))[0])


def fit_gelu_lut(amax, deg, tries=25, nodes=40):
    # One polynomial in u = a - mid per table entry. Entry i covers the a whose a + 1
    # (in [1, 16)) has bits 20..24 of its f32 pattern equal to i: binade e = 0..3 of
    # a + 1 and the top three bits m of its mantissa, i = (24 + 8e + m) mod 32 (the
    # exponent field of 1.0 is 127, and 8*127 = 1016 = 24 mod 32). The intervals are
    # 0.125 wide near 0 and 1 wide near amax; each is widened by a millionth of its width,
    # as a + 1 rounds and may pick a neighbour for an a right at a boundary.
    # The constant term is R(mid) rounded to f32, so the mid is picked (among f32 values
    # near the interval's centre) where that rounding is smallest: of the `tries` best
    # such mids, the one whose whole fit is best.
    mids, coefs, worst = [None] * 32, [None] * 32, 0
    for i in range(32):
        e, m = divmod((i - 24) % 32, 8)
        lo = 2**e * (1 + mp.mpf(m) / 8) - 1
        hi = min(2**e * (1 + mp.mpf(m + 1) / 8) - 1, amax)
        centre, d = f32((lo + hi) / 2), (hi - lo) * mp.mpf("1e-6")
        near = []
        for k in range(-6000, 6000, 3):
            mid = next_f32(centre, k)
            r = gelu_mills(mid)
            near.append((abs(f32(r) - r) / r, mid))
        near.sort(key=lambda t: t[0])
        best = None
        for _, mid in near[:tries]:
            c, err = fit_f32_rel(
                lambda u: gelu_mills(mid + u), lo - mid - d, hi - mid + d, deg + 1, nodes, f32(gelu_mills(mid))
            )
            if best is None or err < best[0]:
                best = (err, mid, c)
        err, mids[i], coefs[i] = best
        worst = max(worst, err)
    print(f"// GELU_LUT: e^(a²/2)·Φ(−a) on 32 intervals of a in [0, {mp.nstr(amax, 5)}], degree {deg} in")
    print(f"// a − GELU_LUT_MID[i], f32 coefficients, relative error {mp.nstr(worst, 3)} (at the nodes)")
    print("pub(crate) const GELU_LUT_MID: [f32; 32] = [")
    for v in mids:
        print(f"    {f32_lit(v)},")
    print("];")
    print(f"pub(crate) const GELU_LUT: [[f32; 32]; {deg + 1}] = [")
    for j in range(deg + 1):
        print("    [")
        for i in range(32):
            print(f"        {f32_lit(coefs[i][j])},")
        print("    ],")
    print("];")


def gelu_exp_g(s):
    # e^(-s/2) = 1 + s g(s): the table gelu's exponential of its reduced argument.
    if abs(s) < mp.mpf("1e-20"):
        return -mp.mpf(1) / 2 + s / 8
    return (mp.exp(-s / 2) - 1) / s


def gelu_exp_tables():
    # s = a^2 - N ln2/8 is at most ln2/16 in size (N = a^2 8/ln2 rounded; a little more
    # for the rounding of a^2 on the way to N).
    hs = LN2 / 16 * mp.mpf("1.01")
    c, err = fit_f32_rel(gelu_exp_g, -hs, hs, 3)
    print(f"// GELU_EXP_G: e^(−s/2) = 1 + s·g(s), degree 2 on [{mp.nstr(-hs, 6)}, {mp.nstr(hs, 6)}], f32")
    print(f"// coefficients, relative error {mp.nstr(err, 3)} (at the nodes)")
    print("pub(crate) const GELU_EXP_G: [f64; 3] = [" + ", ".join(repr(float(v)) for v in c) + "];")
    print("// GELU_EXP2: 2^(j/16) and 2^(j/16) − 1, each rounded to f32.")
    for name, off in (("GELU_EXP2", 0), ("GELU_EXP2_M1", 1)):
        if off == 0:
            print("#[allow(clippy::approx_constant)] // 2^(8/16) = √2 is an entry, not a stand-in")
        print(f"pub(crate) const {name}: [f32; 16] = [")
        for j in range(16):
            print(f"    {f32_lit(f32(mp.mpf(2) ** (mp.mpf(j) / 16) - off))},")
        print("];")


def gelu_small(s):
    # Phi(x) = 1/2 + x P(x^2): gelu(x) = x/2 + s P(s), s = x^2.
    if s < mp.mpf("1e-30"):
        return 1 / mp.sqrt(2 * mp.pi) - s / (6 * mp.sqrt(2 * mp.pi))
    x = mp.sqrt(s)
    return (mp.ncdf(x) - mp.mpf(1) / 2) / x


def exp_q(r):
    # (e^r - 1 - r) / r^2, so e^r = 1 + r + r^2 q(r) and expm1(r) = r + r^2 q(r).
    if abs(r) < mp.mpf("1e-20"):
        return mp.mpf(1) / 2 + r / 6
    return (mp.exp(r) - 1 - r) / r**2


def log_r(y):
    # log(1+f) = 2z + z^3 R(z^2), z = f/(2+f): R(y) = (2 atanh(sqrt y) - 2 sqrt y)/y^1.5.
    if y < mp.mpf("1e-30"):
        return mp.mpf(2) / 3 + 2 * y / 5
    s = mp.sqrt(y)
    return (2 * mp.atanh(s) - 2 * s) / (y * s)


def tanh_t(y):
    # tanh(x) = x + x^3 T(x^2).
    if y < mp.mpf("1e-30"):
        return -mp.mpf(1) / 3 + 2 * y / 15
    x = mp.sqrt(y)
    return (mp.tanh(x) - x) / (y * x)


GELU_C = mp.mpf(3)


def gelu_q(w):
    # Phi(-a) = e^(-a^2/2) Q(w) / (a + C) with w = (a - C) / (a + C), a = |x| >= 0:
    # Q(w) = (a + C) e^(a^2/2) erfc(a/sqrt 2)/2, smooth on [-1, 1] (-> 1/sqrt(2 pi) as
    # a -> inf). One reciprocal, 1/(a + C), gives both w and the quotient.
    a = GELU_C * (1 + w) / (1 - w)
    return (a + GELU_C) * mp.exp(a * a / 2) * mp.erfc(a / mp.sqrt(2)) / 2


h = LN2 / 2
zmax = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
print("// Generated by tools/fit_coeffs.py: do not edit by hand.")
fit("EXP_Q_F32", exp_q, -h, h, 6)
fit("EXP_Q_F64", exp_q, -h, h, 10)
fit("LOG_R_F32", log_r, 0, zmax**2, 3)
fit("LOG_R_F64", log_r, 0, zmax**2, 7)
fit("TANH_T_F32", tanh_t, 0, mp.mpf("0.875") ** 2, 7)
fit("TANH_T_F64", tanh_t, 0, mp.mpf("0.875") ** 2, 14)
# Below -13.25 the f32 gelu is under the smallest normal (flushed to -0).
amax = mp.mpf("13.25")
wmax = (amax - GELU_C) / (amax + GELU_C)
print(f"/// The `C` of the GELU fit's variable `w = (|x| − C)/(|x| + C)`.")
print(f"pub(crate) const GELU_C: f64 = {mp.nstr(GELU_C, 5)};")
fit("GELU_Q", gelu_q, -1, wmax, 11)
fit_f32("GELU_Q_F32", gelu_q, -1, wmax, 11)
print("/// Below this `|x|` the f32 gelu is `x/2 + x²·P(x²)`.")
print("pub(crate) const GELU_SMALL: f64 = 0.75;")
fit_f32("GELU_P_F32", gelu_small, 0, mp.mpf("0.75") ** 2, 5)
# The table form keeps subnormal results, so its clamp sits where x·Φ(x) itself rounds
# to −0: 14.4·Φ(−14.4) = 3.7e-46, a quarter of the smallest f32 subnormal.
fit_gelu_lut(mp.mpf("14.4"), 4)
gelu_exp_tables()
