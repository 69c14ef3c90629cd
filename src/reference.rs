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
/// NaN and `±∞` must match the reference exactly. Outputs whose terms could overflow `T`
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
    if center.is_nan() || got.is_nan() {
        return if center.is_nan() == got.is_nan() {
            Ok(())
        } else {
            Err(format!("got {got:e}, expected {center:e}"))
        };
    }
    let samples: Vec<f64> = if z.is_finite() {
        [-1.0, -0.5, 0.0, 0.5, 1.0]
            .iter()
            .map(|t| f(z + t * delta))
            .filter(|v| !v.is_nan())
            .collect()
    } else {
        vec![center]
    };
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
        lo <= got && got <= hi
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "got {got:e}, allowed [{lo:e}, {hi:e}] (f(z) = {center:e})"
        ))
    }
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
    // Σ y·|z − max|: how much the rounding of z − max moves the softmax sum.
    let spread: f64 = z
        .iter()
        .zip(&want)
        .filter(|(z, _)| z.is_finite())
        .map(|(z, y)| (y * (z - m)).abs())
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
                let lo = (zj - dj - m).exp() / d_hi;
                let hi = (zj + dj - m).exp() / d_lo;
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
            lo <= g && g <= hi
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
