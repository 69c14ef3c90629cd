//! The backward pass at the kernel level: `dense_forward_train` keeps the forward's
//! bits, `dense_backward` is within bounds derived from the error analysis of the
//! `f64` reference on every activation, both weight layouts and edge shapes, and its
//! gradients are bitwise the same for any thread count.

use dense_kernel::reference::dense_backward_reference;
use dense_kernel::{
    dense_backward, dense_forward, dense_forward_into, dense_forward_train, Activation, DenseError,
    Element, Gradients, MatMut, MatRef,
};

fn values<T: Element>(len: usize, seed: u64, scale: f64) -> Vec<T> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            T::narrow((((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) * scale)
        })
        .collect()
}

/// `γ(n) = n·u/(1 − n·u)`.
fn gamma(n: usize, u: f64) -> f64 {
    let nu = n as f64 * u;
    nu / (1.0 - nu)
}

struct Grads<T> {
    dz: Vec<T>,
    dx: Vec<T>,
    dw: Vec<T>,
    db: Vec<T>,
}

#[allow(clippy::too_many_arguments)]
fn backward<T: Element>(
    x: MatRef<'_, T>,
    w: MatRef<'_, T>,
    act: Activation,
    z: &[T],
    dy: &[T],
    m: usize,
    n: usize,
) -> Result<Grads<T>, DenseError> {
    let k = x.cols();
    let nan = T::narrow(f64::NAN);
    let (mut dz, mut dx, mut dw, mut db) = (
        vec![nan; m * n],
        vec![nan; m * k],
        vec![nan; k * n],
        vec![nan; n],
    );
    dense_backward(
        x,
        w,
        act,
        MatRef::from_slice(z, m, n)?,
        MatRef::from_slice(dy, m, n)?,
        Gradients {
            pre_activation: MatMut::from_slice(&mut dz, m, n)?,
            input: Some(MatMut::from_slice(&mut dx, m, k)?),
            kernel: MatMut::from_slice(&mut dw, k, n)?,
            bias: Some(&mut db),
        },
    )?;
    Ok(Grads { dz, dx, dw, db })
}

fn close(what: &str, got: f64, want: f64, tol: f64) -> Result<(), String> {
    if got.is_nan() && want.is_nan() {
        return Ok(());
    }
    if (got - want).abs() <= tol {
        Ok(())
    } else {
        Err(format!("{what}: {got:e} vs {want:e} (tolerance {tol:e})"))
    }
}

/// One case through the forward and the backward, checked against the reference.
fn check_case<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
    torch: bool,
    seed: u64,
) -> Result<(), String> {
    let e = |e: DenseError| e.to_string();
    let x = values::<T>(m * k, seed, 2.0);
    let w_data = values::<T>(k * n, seed + 1, 1.0);
    let b = values::<T>(n, seed + 2, 1.0);
    let dy = values::<T>(m * n, seed + 3, 1.5);
    let xv = MatRef::from_slice(&x, m, k).map_err(e)?;
    // PyTorch layout: the same numbers stored (n, k), seen transposed.
    let w_t: Vec<T> = (0..n * k).map(|i| w_data[(i % k) * n + i / k]).collect();
    let wv = if torch {
        MatRef::from_slice(&w_t, n, k).map_err(e)?.t()
    } else {
        MatRef::from_slice(&w_data, k, n).map_err(e)?
    };

    // The forward that keeps z: z is the linear forward's bits, y the activation's.
    let nan = T::narrow(f64::NAN);
    let (mut z, mut y) = (vec![nan; m * n], vec![nan; m * n]);
    dense_forward_train(
        xv,
        wv,
        Some(&b),
        act,
        MatMut::from_slice(&mut z, m, n).map_err(e)?,
        MatMut::from_slice(&mut y, m, n).map_err(e)?,
    )
    .map_err(e)?;
    let mut lin = vec![nan; m * n];
    dense_forward_into(
        xv,
        wv,
        Some(&b),
        Activation::Linear,
        MatMut::from_slice(&mut lin, m, n).map_err(e)?,
    )
    .map_err(e)?;
    let bits = |v: &[T]| v.iter().map(|t| t.widen().to_bits()).collect::<Vec<_>>();
    if bits(&z) != bits(&lin) {
        return Err("z is not the linear forward's result".into());
    }
    let full = dense_forward(xv, wv, Some(&b), act).map_err(e)?;
    if !act.is_row_wise() && bits(&y) != bits(full.as_slice()) {
        return Err("y is not dense_forward's result".into());
    }

    let g = backward(xv, wv, act, &z, &dy, m, n).map_err(e)?;
    let r = dense_backward_reference(
        xv,
        wv,
        act,
        MatRef::from_slice(&z, m, n).map_err(e)?,
        MatRef::from_slice(&dy, m, n).map_err(e)?,
    )
    .map_err(e)?;
    let u = T::epsilon().widen() / 2.0;
    let eta = T::min_positive_value().widen() * T::epsilon().widen();
    // dz: one rounding of an f64 value (element-wise), or of a row product whose f64
    // evaluation the reference does another way (row-wise): a few u of the terms.
    let mut dz_err = vec![0.0f64; m * n];
    for i in 0..m {
        let row_mag: f64 = (0..n).map(|j| dy[i * n + j].widen().abs()).sum();
        for j in 0..n {
            let want = r.dz.as_slice()[i * n + j];
            let extra = if act.is_row_wise() {
                16.0 * f64::EPSILON * (dy[i * n + j].widen().abs() + row_mag)
            } else {
                0.0
            };
            let tol = u * want.abs()
                + eta
                + extra
                + if act.is_row_wise() {
                    u * row_mag * 2.0
                } else {
                    0.0
                };
            dz_err[i * n + j] = tol;
            close(&format!("dz[{i},{j}]"), g.dz[i * n + j].widen(), want, tol)?;
        }
    }
    // dx = dz·Wᵀ: the K-sum bound over N terms, plus dz's own error through |W|.
    for i in 0..m {
        for p in 0..k {
            let prop: f64 = (0..n)
                .map(|j| dz_err[i * n + j] * wv.get(p, j).unwrap().widen().abs())
                .sum();
            let tol = gamma(n + 1, u) * (r.dx.1.as_slice()[i * k + p] + prop)
                + prop
                + (n + 1) as f64 * eta;
            close(
                &format!("dx[{i},{p}]"),
                g.dx[i * k + p].widen(),
                r.dx.0.as_slice()[i * k + p],
                tol,
            )?;
        }
    }
    // dW = xᵀ·dz over M terms.
    for p in 0..k {
        for j in 0..n {
            let prop: f64 = (0..m)
                .map(|i| dz_err[i * n + j] * xv.get(i, p).unwrap().widen().abs())
                .sum();
            let tol = gamma(m + 1, u) * (r.dw.1.as_slice()[p * n + j] + prop)
                + prop
                + (m + 1) as f64 * eta;
            close(
                &format!("dW[{p},{j}]"),
                g.dw[p * n + j].widen(),
                r.dw.0.as_slice()[p * n + j],
                tol,
            )?;
        }
    }
    // db: an f64 sum rounded once.
    for j in 0..n {
        let prop: f64 = (0..m).map(|i| dz_err[i * n + j]).sum();
        let tol = u * r.db.0[j].abs() + gamma(m, f64::EPSILON / 2.0) * r.db.1[j] + prop + eta;
        close(&format!("db[{j}]"), g.db[j].widen(), r.db.0[j], tol)?;
    }
    Ok(())
}

const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 7, 5),
    (3, 300, 5),
    (17, 33, 10),
    (40, 8, 17),
    (0, 4, 3),
    (4, 0, 3),
    (4, 5, 0),
    (33, 260, 20),
];

fn sweep<T: Element>() {
    let mut failures = Vec::new();
    for (c, &(m, k, n)) in SHAPES.iter().enumerate() {
        for (a, &act) in Activation::all().iter().enumerate() {
            for torch in [false, true] {
                let seed = (c * 1000 + a * 10 + torch as usize) as u64;
                if let Err(e) = check_case::<T>(m, k, n, act, torch, seed) {
                    failures.push(format!("{} {m}x{k}x{n} {act} torch={torch}: {e}", T::NAME));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_activation_and_shape_within_the_derived_bounds_f32() {
    sweep::<f32>();
}

#[test]
fn every_activation_and_shape_within_the_derived_bounds_f64() {
    sweep::<f64>();
}

#[test]
fn gradients_are_bitwise_the_same_for_any_thread_count() {
    let (m, k, n) = (300, 280, 70);
    let x = values::<f32>(m * k, 1, 2.0);
    let w = values::<f32>(k * n, 2, 1.0);
    let z = values::<f32>(m * n, 3, 3.0);
    let dy = values::<f32>(m * n, 4, 1.0);
    for act in [Activation::Relu, Activation::Gelu, Activation::Softmax] {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let g = backward(
                    MatRef::from_slice(&x, m, k).unwrap(),
                    MatRef::from_slice(&w, k, n).unwrap(),
                    act,
                    &z,
                    &dy,
                    m,
                    n,
                )
                .unwrap();
                [g.dz, g.dx, g.dw, g.db].map(|v| v.iter().map(|t| t.to_bits()).collect::<Vec<_>>())
            })
        };
        let one = run(1);
        for threads in [2, 3, 7] {
            assert!(
                run(threads) == one,
                "{act}: {threads} threads differ from 1"
            );
        }
    }
}

#[test]
fn kinks_take_keras_one_sided_values() {
    // (activation, z, dz at dy = 1), from real Keras 3.15 (tests/keras/backward.txt).
    let relu4 = Activation::ReluWith {
        negative_slope: 0.0,
        max_value: Some(4.0),
        threshold: 0.0,
    };
    let cases = [
        (Activation::Relu, 0.0f32, 0.0f32),
        (Activation::Relu6, 6.0, 0.0),
        (Activation::LEAKY_RELU, 0.0, 1.0),
        (relu4, 4.0, 0.5),
        (Activation::Celu { alpha: 1.0 }, 0.0, 1.0),
        (Activation::SparseSigmoid, -1.0, 0.25),
        (Activation::HardSigmoid, 3.0, 0.0),
        (Activation::HardSigmoid, 2.999_999_8, 0.0), // fl(z + 3) = 6
        (Activation::HardSilu, -3.0, 0.0),
        (Activation::HardSilu, 3.0, 1.0),
        (Activation::HardTanh, 1.0, 1.0),
        (Activation::SoftShrink { threshold: 0.5 }, 0.5, 0.0),
        (Activation::Elu { alpha: 0.5 }, 0.0, 0.5),
    ];
    for (act, z, want) in cases {
        let g = backward(
            MatRef::from_slice(&[1.0f32], 1, 1).unwrap(),
            MatRef::from_slice(&[1.0f32], 1, 1).unwrap(),
            act,
            &[z],
            &[1.0],
            1,
            1,
        )
        .unwrap();
        assert_eq!(g.dz[0], want, "{act} at {z}");
    }
    // A branch jax selects away is 0 even for dy = ∞ or NaN.
    for dy in [f32::INFINITY, f32::NAN] {
        let g = backward(
            MatRef::from_slice(&[1.0f32], 1, 1).unwrap(),
            MatRef::from_slice(&[1.0f32], 1, 1).unwrap(),
            Activation::Relu,
            &[-1.0],
            &[dy],
            1,
            1,
        )
        .unwrap();
        assert_eq!(g.dz[0], 0.0, "relu below 0 with dy = {dy}");
    }
}

#[test]
fn shapes_that_do_not_chain_are_errors() {
    let x = [0.0f32; 6];
    let w = [0.0f32; 6];
    let (z, dy) = ([0.0f32; 4], [0.0f32; 4]);
    let (mut dz, mut dw, mut db) = ([0.0f32; 4], [0.0f32; 6], [0.0f32; 3]);
    let r = dense_backward(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 3, 2).unwrap(),
        Activation::Relu,
        MatRef::from_slice(&z, 2, 2).unwrap(),
        MatRef::from_slice(&dy, 2, 2).unwrap(),
        Gradients {
            pre_activation: MatMut::from_slice(&mut dz, 2, 2).unwrap(),
            input: None,
            kernel: MatMut::from_slice(&mut dw, 3, 2).unwrap(),
            bias: Some(&mut db),
        },
    );
    assert_eq!(r, Err(DenseError::BiasLength { len: 3, units: 2 }));
    let r = dense_backward(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 3, 2).unwrap(),
        Activation::Relu,
        MatRef::from_slice(&z, 2, 2).unwrap(),
        MatRef::from_slice(&dy, 1, 2).unwrap(),
        Gradients {
            pre_activation: MatMut::from_slice(&mut dz, 2, 2).unwrap(),
            input: None,
            kernel: MatMut::from_slice(&mut dw, 3, 2).unwrap(),
            bias: None,
        },
    );
    assert!(matches!(
        r,
        Err(DenseError::OutputShape {
            expected: (2, 2),
            actual: (1, 2)
        })
    ));
}
