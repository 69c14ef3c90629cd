//! The yardstick: a naive triple loop accumulating in `f64`, the activations'
//! definitions in `f64`, and [`check_dense`], the derived-tolerance comparison that the
//! tests, the fuzz targets and the benches use to judge any fast path.
//!
//! Nothing here is fast, and nothing here is meant to be: it is written to be obviously
//! right. The row-wise activations are implemented again here, independently of the
//! kernel's (a sort-based sparsemax against the kernel's pivoting one).

use crate::activation::scalar;
use crate::forward::check_shapes;
use crate::{Activation, DenseError, Element, Mat, MatRef};

/// The element-wise activation `act` at `x`, evaluated in `f64`; `None` for softmax,
/// log_softmax and sparsemax, which need the whole row (see [`activation_row`]).
///
/// ```
/// use dense_kernel::{reference::activation_f64, Activation};
/// assert_eq!(activation_f64(Activation::Relu, -2.0), Some(0.0));
/// assert_eq!(activation_f64(Activation::HardShrink { threshold: 0.5 }, f64::NAN), Some(0.0));
/// assert_eq!(activation_f64(Activation::Softmax, 1.0), None);
/// ```
pub fn activation_f64(act: Activation, x: f64) -> Option<f64> {
    scalar::eval(act, x)
}

/// Applies `act` to one row of pre-activations in place, in `f64`: the row-wise
/// activations by their textbook definitions, the element-wise ones element by element.
pub fn activation_row(act: Activation, row: &mut [f64]) {
    if let Some(f) = row_wise_fn(act) {
        let y = f(row);
        row.copy_from_slice(&y);
    } else {
        for v in row.iter_mut() {
            *v = scalar::eval(act, *v).unwrap_or(f64::NAN);
        }
    }
}

/// A row-wise activation's reference: the whole row in, the whole row out.
type RowFn = fn(&[f64]) -> Vec<f64>;

fn row_wise_fn(act: Activation) -> Option<RowFn> {
    match act {
        Activation::Softmax => Some(softmax),
        Activation::LogSoftmax => Some(log_softmax),
        Activation::Sparsemax => Some(sparsemax),
        _ => None,
    }
}

/// `None` if the row holds NaN or `+∞`, or nothing but `−∞` (every row-wise activation
/// is NaN there); otherwise the maximum.
fn finite_max(z: &[f64]) -> Option<f64> {
    if z.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return None;
    }
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (m > f64::NEG_INFINITY).then_some(m)
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let Some(m) = finite_max(z) else {
        return vec![f64::NAN; z.len()];
    };
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn log_softmax(z: &[f64]) -> Vec<f64> {
    let Some(m) = finite_max(z) else {
        return vec![f64::NAN; z.len()];
    };
    let lse = z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    z.iter().map(|v| (v - m) - lse).collect()
}

/// Martins & Astudillo (2016), Algorithm 1: sort, find the support size
/// `k = max{k : 1 + k·z₍ₖ₎ > Σ_{i≤k} z₍ᵢ₎}`, threshold `τ = (Σ_{i≤k} z₍ᵢ₎ − 1)/k`.
/// Computed on the row shifted by its maximum (the projection is shift-equivariant).
fn sparsemax(z: &[f64]) -> Vec<f64> {
    let Some(m) = finite_max(z) else {
        return vec![f64::NAN; z.len()];
    };
    let shifted: Vec<f64> = z.iter().map(|v| v - m).collect();
    let mut sorted = shifted.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let (mut cum, mut tau) = (0.0, 0.0);
    for (i, &v) in sorted.iter().enumerate() {
        let k = (i + 1) as f64;
        cum += v;
        if 1.0 + k * v > cum {
            tau = (cum - 1.0) / k;
        } else {
            break;
        }
    }
    shifted.iter().map(|v| (v - tau).max(0.0)).collect()
}

/// Pre-activations `z = x·W + b` by the naive triple loop in `f64`, with, per output,
/// the magnitude `Σ|x·w| + |b|` over its finite terms (the scale of its rounding error).
fn preactivations<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
) -> Result<(Mat<f64>, Mat<f64>), DenseError> {
    let (m, n) = check_shapes(&input, &kernel, bias)?;
    let mut z = Mat::try_zeros(m, n)?;
    let mut s = Mat::try_zeros(m, n)?;
    let k = input.cols();
    for i in 0..m {
        for j in 0..n {
            let b = bias.map_or(0.0, |b| b[j].widen());
            let (mut acc, mut mag) = (b, if b.is_finite() { b.abs() } else { 0.0 });
            for p in 0..k {
                let xv = input.get(i, p).unwrap_or_default().widen();
                let wv = kernel.get(p, j).unwrap_or_default().widen();
                let prod = xv * wv;
                acc += prod;
                if prod.is_finite() {
                    mag += prod.abs();
                } else if xv.is_finite() && wv.is_finite() {
                    // A product of finite values that overflows f64 (only possible for
                    // f64 inputs): a fused multiply-add would not overflow there, so the
                    // kernel's result is not determined by this sum. Mark it.
                    mag = f64::INFINITY;
                }
            }
            z.as_mut_slice()[i * n + j] = acc;
            s.as_mut_slice()[i * n + j] = mag;
        }
    }
    Ok((z, s))
}

/// The Dense forward pass in `f64`: naive triple loop, then the activation's `f64`
/// definition. The same validation as [`dense_forward`](crate::dense_forward).
pub fn dense_reference<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
) -> Result<Mat<f64>, DenseError> {
    let (mut z, _) = preactivations(input, kernel, bias)?;
    let act = act.params_as::<T>();
    let n = z.cols();
    if n > 0 {
        for row in z.as_mut_slice().chunks_exact_mut(n) {
            activation_row(act, row);
        }
    }
    Ok(z)
}

/// `γ(n) = n·u/(1 − n·u)`: the classic bound on the relative error of an `n`-term
/// floating-point sum of products, in any order (Higham, *Accuracy and Stability of
/// Numerical Algorithms*, §3.1), for unit roundoff `u`.
fn gamma(n: usize, u: f64) -> f64 {
    let nu = n as f64 * u;
    if nu >= 1.0 {
        f64::INFINITY
    } else {
        nu / (1.0 - nu)
    }
}

/// Unit roundoff of `T` (half the machine epsilon).
fn unit_roundoff<T: Element>() -> f64 {
    T::epsilon().widen() / 2.0
}

/// Smallest positive subnormal of `T`: the absolute rounding step near zero.
fn tiny<T: Element>() -> f64 {
    T::min_positive_value().widen() * T::epsilon().widen()
}

/// How many ulps (of `T`) an element-wise activation may differ from its `f64` value
/// evaluated at the exact pre-activation, beyond what the pre-activation's own error
/// explains: the scalar epilogue rounds an accurate `f64` value once (half an ulp, plus
/// the `f64` evaluation's error, which for `f64` outputs is up to a few ulps: see
/// [`Activation`]'s accuracy notes); 4 covers both.
fn ulp_budget(_act: Activation) -> f64 {
    4.0
}

/// Checks `out` (row-major `M × N`) against the reference within a tolerance derived
/// from the error bounds, and returns a description of the first violation.
///
/// Per output, the pre-activation computed in `T` is within
/// `Δ = γ(K+2)·(Σ|x·w| + |b|) + (K+2)·η` of the exact one (`γ` as in Higham, with `T`'s
/// unit roundoff; `K+1` roundings for the K-sum and the bias add, plus one of slack for
/// an activation that rounds its argument first, as `x/√2` in gelu; `η` is `T`'s
/// smallest subnormal, for underflowing products). The reference's own `f64` error is
/// added. The activation's parameters are taken at `T`'s precision
/// ([`Activation::params_as`]). Then:
/// - element-wise: the output must lie between the smallest and largest value of the
///   activation over `z ± Δ` (sampled at `z`, `z ± Δ/2`, `z ± Δ`, which also brackets
///   both sides of a discontinuity), widened by a few ulps of `T`
///   (4 ulps for every activation today) and `4η`; `±∞` is accepted where that bound reaches past `T::MAX`;
/// - softmax: `|y − y*| ≤ y*·(e^(2Δ + ρ) − 1)`, since shifting every input by at most `Δ`
///   scales each output by at most `e^(±2Δ)`, with `ρ` the rounding of `z − max`, of the
///   `N`-term sum and of the division;
/// - log_softmax: `|y − y*| ≤ 2Δ + ρ` (log-sum-exp is 1-Lipschitz in the max norm);
/// - sparsemax: `|y − y*| ≤ ‖Δ‖₂ + ρ` (a Euclidean projection is 1-Lipschitz).
///
/// Results below the smallest normal number of `T` may come back flushed to zero (most
/// vector kernels flush; see [`UlpBound`]). NaN and `±∞` must match the reference exactly. Outputs whose terms could overflow `T`
/// (`Σ|x·w| + |b|` beyond `T::MAX`) are not checked: the result of an overflowing sum is
/// not defined by the reference (their whole row, for row-wise activations).
pub fn check_dense<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    bias: Option<&[T]>,
    act: Activation,
    out: &[T],
) -> Result<(), String> {
    let (z, s) = preactivations(input, kernel, bias).map_err(|e| e.to_string())?;
    let act = act.params_as::<T>();
    let (m, n) = (z.rows(), z.cols());
    if out.len() != m * n {
        return Err(format!(
            "output has {} elements, expected {m}x{n}",
            out.len()
        ));
    }
    if n == 0 {
        return Ok(());
    }
    let k = input.cols();
    let u = unit_roundoff::<T>();
    let eta = tiny::<T>();
    let max_t = T::max_value().widen();
    let g = gamma(k + 2, u) + gamma(k + 1, f64::EPSILON / 2.0);
    for i in 0..m {
        let zr = &z.as_slice()[i * n..(i + 1) * n];
        let sr = &s.as_slice()[i * n..(i + 1) * n];
        let got: Vec<f64> = out[i * n..(i + 1) * n].iter().map(|v| v.widen()).collect();
        let delta: Vec<f64> = sr.iter().map(|&s| g * s + (k + 2) as f64 * eta).collect();
        let overflow: Vec<bool> = sr.iter().map(|&s| s * (1.0 + g) > max_t).collect();
        let ctx = |j: usize, msg: String| {
            format!(
                "{act} ({}) at ({i}, {j}) of {m}x{n}, K = {k}: z = {:e} ± {:e}: {msg}",
                T::NAME,
                zr[j],
                delta[j]
            )
        };
        if act.is_row_wise() {
            if overflow.iter().any(|&o| o) {
                continue;
            }
            check_row(act, zr, &delta, &got, u, eta, max_t).map_err(|(j, msg)| ctx(j, msg))?;
        } else {
            for j in 0..n {
                if overflow[j] {
                    continue;
                }
                check_element(act, zr[j], delta[j], got[j], u, eta, max_t)
                    .map_err(|msg| ctx(j, msg))?;
            }
        }
    }
    Ok(())
}

fn check_element(
    act: Activation,
    z: f64,
    delta: f64,
    got: f64,
    u: f64,
    eta: f64,
    max_t: f64,
) -> Result<(), String> {
    let f = |x: f64| scalar::eval(act, x).unwrap_or(f64::NAN);
    let center = f(z);
    // Where the activation is NaN on an interval of finite arguments, a pre-activation
    // within its bound may land inside or outside it whatever side `z` is on.
    let region = nan_region(act).filter(|_| z.is_finite());
    let (reach_nan, reach_number) = match region {
        // A single NaN point (celu with α = 0 at 0): reached if the bound covers it;
        // every other argument in the bound gives a number.
        Some((a, b)) if a == b => (z - delta <= a && z + delta >= a, delta > 0.0 || z != a),
        Some((a, b)) => {
            // Widened by 10⁻⁶: the kernels see the parameter rounded to `T`.
            let (wa, wb) = (a * (1.0 + 1e-6), b * (1.0 + 1e-6));
            let (na, nb) = (a * (1.0 - 1e-6), b * (1.0 - 1e-6));
            (
                z - delta < wb && z + delta > wa,
                z - delta <= na || z + delta >= nb,
            )
        }
        None => (center.is_nan(), !center.is_nan()),
    };
    if got.is_nan() || !reach_number {
        return if got.is_nan() && reach_nan || !got.is_nan() && reach_number {
            Ok(())
        } else {
            Err(format!("got {got:e}, expected {center:e}"))
        };
    }
    let samples: Vec<f64> = if z.is_finite() {
        let edges = region.map_or([f64::NAN; 2], |(a, b)| [a, b]);
        // Kinks and jumps, with their f64 neighbours: where an activation is not
        // monotone across one (leaky_relu with a negative slope has its minimum at 0),
        // the extreme value over z ± Δ is there, not at the five evenly spaced samples.
        // Likewise the smooth minimum of gelu, silu and their kin.
        let kinks = kinks(act)
            .into_iter()
            .flat_map(|k| [k.next_down(), k, k.next_up()])
            .chain(stationary_point(act));
        [-1.0, -0.5, 0.0, 0.5, 1.0]
            .iter()
            .map(|t| f(z + t * delta))
            .chain(
                edges
                    .into_iter()
                    .chain(kinks)
                    .filter(|&e| z - delta <= e && e <= z + delta)
                    .map(f),
            )
            .filter(|v| !v.is_nan())
            .collect()
    } else {
        vec![center]
    };
    if samples.is_empty() {
        return Err(format!("got {got:e}, expected {center:e}"));
    }
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let scale = samples
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |a, v| a.max(v.abs()));
    let mut r = 2.0 * ulp_budget(act) * u * scale + 4.0 * eta;
    if act == Activation::TanhShrink && z.is_finite() {
        // The f64 definition's own error: x − tanh(x) for |x| ≥ 0.4 (outside its series)
        // is exact to a few f64 roundings of |x|, not of the smaller result.
        r += 4.0 * (f64::EPSILON / 2.0) * z.abs();
    }
    let (lo, hi) = (lo - r, hi + r);
    let ok = if got == f64::INFINITY {
        hi >= max_t
    } else if got == f64::NEG_INFINITY {
        lo <= -max_t
    } else {
        lo <= got && got <= hi || flushed(got, lo, hi, eta, u)
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "got {got:e}, allowed [{lo:e}, {hi:e}] (f(z) = {center:e})"
        ))
    }
}

/// The finite arguments where `act` is NaN, if there are any: `squareplus` with `b < 0`
/// on the open interval `|x| < √−b` (`√(x² + b)` of a negative number), `celu` with
/// `α = +0` at the single point `x = ±0` (`0·expm1(0/0)`), given as `(0, 0)`, and with
/// `α = −0` on `x ≤ 0`.
/// The arguments where `act` has a kink or a jump (NaN entries: none).
fn kinks(act: Activation) -> [f64; 3] {
    use Activation::*;
    match act {
        ReluWith {
            threshold,
            max_value,
            ..
        } => [0.0, threshold, max_value.unwrap_or(f64::NAN)],
        Threshold { threshold, .. } => [0.0, threshold, f64::NAN],
        HardShrink { threshold } | SoftShrink { threshold } => [0.0, -threshold, threshold],
        _ => [0.0, f64::NAN, f64::NAN],
    }
}

/// Where a smooth activation that is not monotone takes its minimum (to f64 precision:
/// `Φ(x) + x·φ(x) = 0` for gelu, `σ(x)·(1 + x·(1 − σ(x))) = 0` for silu, and so on,
/// solved by bisection); `None` for the monotone ones, whose extremes over an interval
/// are at its ends, and for those whose turns are kinks ([`kinks`]).
fn stationary_point(act: Activation) -> Option<f64> {
    use Activation::*;
    match act {
        Gelu => Some(-0.751_791_524_693_564_5),
        GeluTanh => Some(-0.752_461_422_071_016_2),
        Silu => Some(-1.278_464_542_761_074),
        Mish => Some(-1.192_431_214_515_495_2),
        // x·relu6(x + 3)/6: x(x + 3)/6 on [−3, 3], lowest at −3/2.
        HardSilu => Some(-1.5),
        _ => None,
    }
}

fn nan_region(act: Activation) -> Option<(f64, f64)> {
    match act {
        Activation::Squareplus { b } if b < 0.0 => {
            let e = (-b).sqrt();
            Some((-e, e))
        }
        // α = −0: x/α = +∞ for every x < 0, so α·expm1(+∞) = −0·∞ is NaN there too
        // (found by the fuzzer's −0 parameters).
        Activation::Celu { alpha } if alpha == 0.0 && alpha.is_sign_negative() => {
            Some((f64::NEG_INFINITY, 0.0))
        }
        Activation::Celu { alpha: 0.0 } => Some((0.0, 0.0)),
        _ => None,
    }
}

/// Whether `got` is a flush to zero of a result allowed in `[lo, hi]`: a value below
/// the smallest normal number (`η/(2u)`) where the allowed range reaches below it too.
/// The vector kernels flush such results instead of paying for gradual underflow.
fn flushed(got: f64, lo: f64, hi: f64, eta: f64, u: f64) -> bool {
    let min_normal = eta / (2.0 * u);
    got.abs() < min_normal && lo < min_normal && hi > -min_normal
}

fn check_row(
    act: Activation,
    z: &[f64],
    delta: &[f64],
    got: &[f64],
    u: f64,
    eta: f64,
    max_t: f64,
) -> Result<(), (usize, String)> {
    let n = z.len();
    let nf = n as f64;
    let mut want = z.to_vec();
    activation_row(act, &mut want);
    let finite = || z.iter().zip(delta).filter(|(z, _)| z.is_finite());
    let m = finite().fold(f64::NEG_INFINITY, |a, (&z, _)| a.max(z));
    // The softmax denominators (shifted by m) at the extremes of the perturbed inputs.
    let d_hi: f64 = finite().map(|(z, d)| (z + d - m).exp()).sum();
    let d_lo: f64 = finite().map(|(z, d)| (z - d - m).exp()).sum();
    // The same, each shifted by its own largest term so it is ≥ 1: when Δ is huge in
    // absolute terms (|z| near f64::MAX), e^(z − Δ − m) underflows and the plain d_lo
    // is 0, which would leave the softmax bounds at 0/0.
    let m_lo = finite().fold(f64::NEG_INFINITY, |a, (&z, &d)| a.max(z - d));
    let m_hi = finite().fold(f64::NEG_INFINITY, |a, (&z, &d)| a.max(z + d));
    let d_lo_s: f64 = finite().map(|(z, d)| (z - d - m_lo).exp()).sum();
    let d_hi_s: f64 = finite().map(|(z, d)| (z + d - m_hi).exp()).sum();
    // Σ y·|z − max|: how much the rounding of z − max moves the softmax sum.
    let spread: f64 = z
        .iter()
        .zip(&want)
        .filter(|(z, _)| z.is_finite())
        // A zero output contributes nothing, even where z − max overflows to −∞ (a row
        // spanning ±f64::MAX), which would otherwise make the sum 0·∞ = NaN.
        .map(|(z, y)| if *y == 0.0 { 0.0 } else { (y * (z - m)).abs() })
        .sum();
    let dl2 = delta.iter().map(|d| d * d).sum::<f64>().sqrt();
    for j in 0..n {
        let (w, g) = (want[j], got[j]);
        if !w.is_finite() || !z[j].is_finite() || g.is_nan() {
            if w.is_nan() && g.is_nan() || w == g {
                continue;
            }
            return Err((j, format!("got {g:e}, expected {w:e}")));
        }
        let (zj, dj, rj) = (z[j], delta[j], (z[j] - m).abs());
        // [lo, hi]: the exact activation over all inputs within ±Δ; r: this
        // implementation's own rounding.
        let (lo, hi, r) = match act {
            Activation::Softmax => {
                let lo = (zj - dj - m_hi).exp() / d_hi_s;
                let hi = (zj + dj - m_lo).exp() / d_lo_s;
                let rho = (2.0 * u * (rj + spread) + (2.0 * nf + 8.0) * u).exp_m1();
                let (lo, hi) = (
                    if lo >= 0.0 { lo } else { 0.0 },
                    if hi <= 1.0 { hi } else { 1.0 },
                );
                (lo, hi, if hi > 0.0 { rho * hi } else { 0.0 })
            }
            Activation::LogSoftmax => {
                let lo = zj - dj - m - d_hi.ln();
                let hi = zj + dj - m - d_lo.ln();
                let (lo, hi) = (
                    if lo.is_nan() { f64::NEG_INFINITY } else { lo },
                    if hi <= 0.0 { hi } else { 0.0 },
                );
                (lo, hi, u * (2.0 * rj + w.abs() + 2.0 * nf + 8.0))
            }
            _ => (w - dl2, w + dl2, (4.0 * nf + 16.0) * u),
        };
        let (lo, hi) = (lo - r - 4.0 * eta, hi + r + 4.0 * eta);
        let ok = if g.is_infinite() {
            // A finite value past T::MAX rounds to ±∞ in T.
            (g > 0.0 && hi >= max_t) || (g < 0.0 && lo <= -max_t)
        } else {
            lo <= g && g <= hi || flushed(g, lo, hi, eta, u)
        };
        if !ok {
            return Err((
                j,
                format!("got {g:e}, expected {w:e} within [{lo:e}, {hi:e}]"),
            ));
        }
    }
    Ok(())
}

/// How closely a vector kernel's element-wise activation must follow the definition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UlpBound {
    /// Bit for bit the scalar formula's result (rounded once from `f64`), signed zeros
    /// and NaN included.
    BitExact,
    /// At most this many units in the last place of the exact value, for outputs in the
    /// normal range. Outputs whose exact magnitude is below the smallest normal number
    /// may come back flushed to zero (keeping the sign); NaN, ±∞ and the outputs at
    /// `x = ±0` must match exactly (in `f64`, the outputs at `±0` only where they are
    /// zero: the `f64` reference is itself rounded, so `squareplus(0) = √b/2` is held to
    /// the ulp bound like any other value).
    Ulps(f64),
}

/// The accuracy the vector kernels promise for element-wise `act` in type `T`, on every
/// [`SimdPath`](crate::SimdPath) that has FMA (AVX-512, AVX2+FMA, and the portable path
/// where the build targets an FMA machine). `None` for the row-wise activations.
///
/// For `f32` the bound is against the correctly rounded result (the `f64` definition,
/// whose own error is far below an `f32` ulp). For `f64` it is against the crate's scalar
/// `f64` definitions ([`activation_f64`], which use the platform's `exp`, `tanh`, …),
/// so it includes their own error (≤ 1 ulp for glibc).
pub fn activation_ulp_bound<T: Element>(act: Activation) -> Option<UlpBound> {
    use Activation::*;
    if T::NAME == "f32" {
        return Some(match act {
            Softmax | LogSoftmax | Sparsemax => return None,
            Exponential => UlpBound::Ulps(1.0),
            Sigmoid | Silu => UlpBound::Ulps(2.5),
            Tanh | Elu { .. } | Selu | Celu { .. } => UlpBound::Ulps(2.0),
            GeluTanh => UlpBound::Ulps(3.0),
            // gelu: the AVX-512 table form (1.58 on the exhaustive sweep), f64 lanes
            // elsewhere (0.52).
            Gelu => UlpBound::Ulps(2.0),
            Softplus | Mish | LogSigmoid => UlpBound::Ulps(4.0),
            // Evaluated in f64 lanes and rounded once.
            Softsign | Squareplus { .. } | TanhShrink => UlpBound::Ulps(1.0),
            _ => UlpBound::BitExact,
        });
    }
    // f64: against the scalar definitions, whose own error (≲ 1 ulp each) is included.
    Some(match act {
        Softmax | LogSoftmax | Sparsemax => return None,
        Exponential => UlpBound::Ulps(1.0),
        Tanh | Elu { .. } | Celu { .. } => UlpBound::Ulps(2.0),
        Selu => UlpBound::Ulps(3.0),
        Sigmoid | Silu | Softplus | LogSigmoid | GeluTanh => UlpBound::Ulps(4.0),
        Mish => UlpBound::Ulps(6.0),
        Softsign | Squareplus { .. } => UlpBound::Ulps(4.0),
        // x − tanh(x) cancels for 0.4 ≤ |x| < 1 (up to ~20 ulps of either tanh).
        TanhShrink => UlpBound::Ulps(64.0),
        // f64 gelu runs the scalar definition itself.
        _ => UlpBound::BitExact,
    })
}

/// Below this the `f64` reference itself is inexact (subnormal intermediates).
const F64_REFERENCE_FLOOR: f64 = 1e-290;

/// `|y − exact|` in units of `T`'s last place at `exact` (the spacing of `T` numbers in
/// `exact`'s binade; the smallest subnormal spacing below the normal range).
pub fn ulp_error<T: Element>(y: T, exact: f64) -> f64 {
    let mant = T::epsilon().widen(); // 2^(1 − p)
    let min_normal = T::min_positive_value().widen();
    let a = exact.abs();
    let ulp = if a < min_normal {
        min_normal * mant
    } else {
        // 2^floor(log2 a) · 2^(1 − p), from the exponent bits (exact).
        let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        2f64.powi(e) * mant
    };
    (y.widen() - exact).abs() / ulp
}

/// Checks one vector-kernel output `y = act(x)` against [`activation_ulp_bound`]; the
/// error message names the input, the output and the exact value.
pub fn check_activation_value<T: Element>(act: Activation, x: T, y: T) -> Result<(), String> {
    let act = act.params_as::<T>();
    let Some(exact) = activation_f64(act, x.widen()) else {
        return Err(format!("{act} is row-wise"));
    };
    check_activation_exact(act, x, y, exact)
}

/// [`check_activation_value`] with the exact value already computed:
/// `exact = activation_f64(act.params_as::<T>(), x)` (for sweeps that also report it).
pub fn check_activation_exact<T: Element>(
    act: Activation,
    x: T,
    y: T,
    exact: f64,
) -> Result<(), String> {
    let rounded = T::narrow(exact);
    let bound = activation_ulp_bound::<T>(act).unwrap_or(UlpBound::Ulps(4.0));
    let fail = |why: &str| {
        Err(format!(
            "{act}({:e}) = {:e}, exact {exact:e} (rounded {:e}): {why}",
            x.widen(),
            y.widen(),
            rounded.widen()
        ))
    };
    let same_bits =
        |a: T, b: T| (a.is_nan() && b.is_nan()) || a.widen().to_bits() == b.widen().to_bits();
    match bound {
        UlpBound::BitExact => {
            if !same_bits(y, rounded) {
                return fail("not bit-exact with the scalar formula");
            }
        }
        UlpBound::Ulps(b) => {
            // At x = ±0 the value must be exact: in f32 against the correctly rounded
            // value; in f64, whose reference is the scalar definition with its own
            // rounding, where that value is zero (its sign included). Elsewhere in f64
            // (squareplus(0) = √b/2) the ulp bound applies, as for any other x.
            let exact_at_zero = x.is_zero() && (T::NAME == "f32" || exact == 0.0);
            if exact.is_nan()
                || y.is_nan()
                || exact.is_infinite()
                || exact_at_zero
                || x.is_infinite()
            {
                if !same_bits(y, rounded) {
                    return fail("special value must match exactly");
                }
            } else if rounded.is_infinite() {
                // The exact value overflows T: ±∞ (or the largest finite value).
                if !(y == rounded
                    || y.abs() == T::max_value()
                        && y.is_sign_positive() == rounded.is_sign_positive())
                {
                    return fail("must overflow like the exact value");
                }
            } else if exact.abs() < T::min_positive_value().widen() {
                if (y.widen() - exact).abs() > T::min_positive_value().widen() {
                    return fail("below the normal range: only a flush to zero is allowed");
                }
            } else if T::NAME == "f64" && exact.abs() < F64_REFERENCE_FLOOR {
                // The scalar f64 definitions pass through subnormal intermediates here
                // (x·eˣ with eˣ < 2⁻¹⁰²²) and keep only ~40 bits.
                if (y.widen() - exact).abs() > exact.abs() * 2f64.powi(-36) {
                    return fail("near f64 underflow: more than 2^-36 relative");
                }
            } else {
                let e = ulp_error(y, exact);
                if e.is_nan() || e > b {
                    return fail(&format!("{e:.3} ulps, bound {b}"));
                }
            }
        }
    }
    Ok(())
}

/// The Dense backward pass in `f64` ([`dense_backward_reference`]): each gradient and,
/// for tolerances, the sum of its terms' magnitudes.
#[derive(Clone, Debug)]
pub struct BackwardReference {
    /// `dL/dz`, `(M, N)`.
    pub dz: Mat<f64>,
    /// `dL/dx = dz·Wᵀ`, `(M, K)`, and `Σ_n |dz·w|` per element.
    pub dx: (Mat<f64>, Mat<f64>),
    /// `dL/dW = xᵀ·dz`, `(K, N)`, and `Σ_m |x·dz|` per element.
    pub dw: (Mat<f64>, Mat<f64>),
    /// `dL/db = Σ_rows dz`, `(N)`, and `Σ_rows |dz|`.
    pub db: (Vec<f64>, Vec<f64>),
}

/// The Dense backward pass, naively in `f64`, from the input, the kernel, the
/// pre-activation `z` the forward kept and `dL/dy` (all as `T` values, widened):
/// `dz` by the activation's derivative as [`dense_backward`](crate::dense_backward)
/// defines it (Keras's one-sided values at kinks; the row-wise activations' products
/// from this module's own softmax, log_softmax and sparsemax), then triple loops for
/// `dx`, `dW` and `db`.
pub fn dense_backward_reference<T: Element>(
    input: MatRef<'_, T>,
    kernel: MatRef<'_, T>,
    act: Activation,
    pre_activation: MatRef<'_, T>,
    grad_output: MatRef<'_, T>,
) -> Result<BackwardReference, DenseError> {
    let (m, n) = check_shapes(&input, &kernel, None)?;
    let k = input.cols();
    for v in [&pre_activation, &grad_output] {
        if (v.rows(), v.cols()) != (m, n) {
            return Err(DenseError::OutputShape {
                expected: (m, n),
                actual: (v.rows(), v.cols()),
            });
        }
    }
    let act = act.params_as::<T>();
    let at = |v: &MatRef<'_, T>, i: usize, j: usize| v.get(i, j).map_or(f64::NAN, |x| x.widen());
    let round = |v: f64| T::narrow(v).widen();
    let mut dz = Mat::try_zeros(m, n)?;
    for i in 0..m {
        let z: Vec<f64> = (0..n).map(|j| at(&pre_activation, i, j)).collect();
        let dy: Vec<f64> = (0..n).map(|j| at(&grad_output, i, j)).collect();
        let row = &mut dz.as_mut_slice()[i * n..(i + 1) * n];
        match row_wise_fn(act) {
            Some(f) => {
                let y = f(&z);
                match act {
                    Activation::Softmax => {
                        let s: f64 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
                        for ((r, y), d) in row.iter_mut().zip(&y).zip(&dy) {
                            *r = y * (d - s);
                        }
                    }
                    Activation::LogSoftmax => {
                        let s: f64 = dy.iter().sum();
                        for ((r, y), d) in row.iter_mut().zip(&y).zip(&dy) {
                            *r = d - y.exp() * s;
                        }
                    }
                    _ => {
                        // Sparsemax: the support is where the projection is positive.
                        let on: Vec<f64> = y
                            .iter()
                            .zip(&dy)
                            .filter(|(y, _)| **y > 0.0)
                            .map(|(_, d)| *d)
                            .collect();
                        let mean = on.iter().sum::<f64>() / on.len().max(1) as f64;
                        for ((r, y), d) in row.iter_mut().zip(&y).zip(&dy) {
                            *r = if y.is_nan() {
                                f64::NAN
                            } else if *y > 0.0 {
                                d - mean
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            None => {
                for ((r, z), d) in row.iter_mut().zip(&z).zip(&dy) {
                    *r = match crate::activation::grad::elementwise(act, *z, round) {
                        Some(crate::activation::grad::Grad::Factor(g)) => d * g,
                        _ => 0.0,
                    };
                }
            }
        }
    }
    let dzs = dz.as_slice();
    let mut dx = Mat::try_zeros(m, k)?;
    let mut dx_mag = Mat::try_zeros(m, k)?;
    for i in 0..m {
        for p in 0..k {
            let (mut s, mut a) = (0.0, 0.0);
            for j in 0..n {
                let t = dzs[i * n + j] * at(&kernel, p, j);
                s += t;
                a += t.abs();
            }
            dx.as_mut_slice()[i * k + p] = s;
            dx_mag.as_mut_slice()[i * k + p] = a;
        }
    }
    let mut dw = Mat::try_zeros(k, n)?;
    let mut dw_mag = Mat::try_zeros(k, n)?;
    for p in 0..k {
        for j in 0..n {
            let (mut s, mut a) = (0.0, 0.0);
            for i in 0..m {
                let t = at(&input, i, p) * dzs[i * n + j];
                s += t;
                a += t.abs();
            }
            dw.as_mut_slice()[p * n + j] = s;
            dw_mag.as_mut_slice()[p * n + j] = a;
        }
    }
    let db: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| dzs[i * n + j]).sum())
        .collect();
    let db_mag: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| dzs[i * n + j].abs()).sum())
        .collect();
    Ok(BackwardReference {
        dz,
        dx: (dx, dx_mag),
        dw: (dw, dw_mag),
        db: (db, db_mag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over `z ± Δ` around a smooth minimum the allowed range reaches down to the
    /// minimum, though none of the five evenly spaced samples lands on it; below it (by
    /// more than the rounding budget) stays rejected.
    #[test]
    fn the_range_around_a_smooth_minimum_reaches_the_minimum() {
        let (u, eta) = (unit_roundoff::<f32>(), tiny::<f32>());
        let max_t = f64::from(f32::MAX);
        for act in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
            Activation::Mish,
            Activation::HardSilu,
        ] {
            let x0 = stationary_point(act).unwrap();
            let f = |x: f64| scalar::eval(act, x).unwrap();
            // It is the minimum: lower than its neighbours a little way off.
            assert!(f(x0) < f(x0 - 1e-3) && f(x0) < f(x0 + 1e-3), "{act}");
            // Samples at z + {-1, -0.5, 0, 0.5, 1}·Δ: 0.3Δ from z is between them.
            let (delta, z) = (0.25, x0 + 0.075);
            let lowest = f(x0);
            assert!(
                lowest < f(z) - 1e-6,
                "{act}: the test needs a dip between samples"
            );
            check_element(act, z, delta, lowest, u, eta, max_t)
                .unwrap_or_else(|e| panic!("{act}: {e}"));
            let below = lowest - 64.0 * u * lowest.abs();
            assert!(
                check_element(act, z, delta, below, u, eta, max_t).is_err(),
                "{act}: {below:e} accepted"
            );
        }
        // Monotone activations have none.
        for act in [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Elu { alpha: 1.0 },
        ] {
            assert_eq!(stationary_point(act), None);
        }
    }
}
