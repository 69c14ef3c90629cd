//! The run-time choice of SIMD path: what `simd_path()` reports is what runs, a forced
//! path (`DENSE_KERNEL_SIMD`) really runs, and a path the CPU lacks is refused.
//!
//! CI runs the whole suite once per path: `DENSE_KERNEL_SIMD=portable cargo test`, etc.

use dense_kernel::{
    apply_activation_on, cpu_features, dense_forward, path_runs, simd_path, Activation, MatRef,
    SimdPath,
};

#[test]
fn dense_forward_runs_on_the_reported_path() {
    let path = simd_path();
    assert!(path.is_available());
    let before: Vec<u64> = SimdPath::ALL.iter().map(|&p| path_runs(p)).collect();
    let x = [0.5f32, -1.0, 2.0, 0.25, 3.0, -0.5];
    let w = [1.0f32, -2.0, 0.5, 0.75, 1.5, -1.0];
    let y = dense_forward(
        MatRef::from_slice(&x, 2, 3).unwrap(),
        MatRef::from_slice(&w, 3, 2).unwrap(),
        None,
        Activation::Sigmoid,
    )
    .unwrap();
    assert_eq!(y.rows(), 2);
    for (i, &p) in SimdPath::ALL.iter().enumerate() {
        let ran = path_runs(p) - before[i];
        if p == path {
            assert!(ran >= 1, "{p} is the reported path but did not run");
        } else {
            assert_eq!(ran, 0, "{p} ran although {path} is the reported path");
        }
    }
}

#[test]
fn forced_path_is_the_one_that_runs() {
    let Ok(want) = std::env::var("DENSE_KERNEL_SIMD") else {
        eprintln!(
            "DENSE_KERNEL_SIMD not set: nothing forced (running on {})",
            simd_path()
        );
        return;
    };
    let forced = SimdPath::ALL.into_iter().find(|p| {
        p.name().starts_with(want.trim()) || want.trim() == "avx2" && *p == SimdPath::Avx2Fma
    });
    let forced = forced.unwrap_or_else(|| panic!("DENSE_KERNEL_SIMD={want} names no path"));
    if !forced.is_available() {
        eprintln!(
            "{forced} forced but this CPU lacks it ({}): skipped",
            cpu_features()
        );
        return;
    }
    assert_eq!(
        simd_path(),
        forced,
        "DENSE_KERNEL_SIMD={want} was not honoured"
    );
    let before = path_runs(forced);
    let mut v = vec![1.0f64; 37];
    assert!(apply_activation_on(
        simd_path(),
        Activation::Tanh,
        &mut v,
        37
    ));
    assert_eq!(path_runs(forced), before + 1);
    assert!((v[0] - 1f64.tanh()).abs() < 1e-15);
}

#[test]
fn unavailable_paths_are_refused_and_touch_nothing() {
    for p in SimdPath::ALL {
        let mut v = vec![-1.0f32; 20];
        let ok = apply_activation_on(p, Activation::Relu, &mut v, 20);
        assert_eq!(ok, p.is_available(), "{p}");
        let want = if ok { 0.0 } else { -1.0 };
        assert!(v.iter().all(|&x| x == want), "{p}: {v:?}");
    }
    assert!(SimdPath::Portable.is_available());
}

#[test]
fn every_path_handles_every_tail_length() {
    // Lengths around each register width, so full registers, masked tails and both.
    for p in SimdPath::ALL.into_iter().filter(|p| p.is_available()) {
        for len in 0..=40usize {
            let x: Vec<f32> = (0..len).map(|i| i as f32 * 0.37 - 5.0).collect();
            let mut y = x.clone();
            assert!(apply_activation_on(
                p,
                Activation::Sigmoid,
                &mut y,
                len.max(1)
            ));
            for (a, b) in x.iter().zip(&y) {
                let want = 1.0 / (1.0 + (-f64::from(*a)).exp());
                assert!(
                    (f64::from(*b) - want).abs() < 1e-6,
                    "{p} len {len}: σ({a}) = {b}"
                );
            }
            // Row-wise: softmax over rows of 7 (ragged against every width).
            if len % 7 == 0 && len > 0 {
                let mut s = x.clone();
                assert!(apply_activation_on(p, Activation::Softmax, &mut s, 7));
                for row in s.chunks(7) {
                    let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{p} softmax row sums to {sum}");
                }
            }
        }
    }
}

#[test]
fn names_and_features_display() {
    assert_eq!(SimdPath::Avx512.to_string(), "avx512");
    assert_eq!(SimdPath::Avx2Fma.to_string(), "avx2+fma");
    assert_eq!(SimdPath::Portable.to_string(), "portable");
    let f = cpu_features().to_string();
    assert!(!f.is_empty());
    assert_eq!(
        SimdPath::Avx512.is_available(),
        cpu_features().avx512f && cpu_features().avx2 && cpu_features().fma
    );
}

/// `Element`'s kernel entry, reachable from safe code through the trait bound, takes
/// any row length: 0 (and lengths that do not divide the data) mean one row, as in
/// `apply_activation_on`; it used to panic (`chunks_exact_mut(0)`) for the row-wise
/// activations.
#[test]
fn the_element_entry_takes_any_row_length() {
    fn apply<T: dense_kernel::Element>(
        path: SimdPath,
        act: Activation,
        d: &mut [T],
        cols: usize,
    ) -> bool {
        T::apply_on(path, act, d, cols)
    }
    for path in SimdPath::ALL {
        for act in [
            Activation::Softmax,
            Activation::LogSoftmax,
            Activation::Sparsemax,
            Activation::Relu,
        ] {
            for cols in [0, 3, 5, 7] {
                let mut a = [1.0f32, 2.0, 3.0, -1.0, 0.5, 2.5];
                let mut b = [1.0f64, 2.0, 3.0, -1.0, 0.5, 2.5];
                let ran = apply(path, act, &mut a, cols);
                assert_eq!(ran, path.is_available());
                assert_eq!(apply(path, act, &mut b, cols), ran);
                let mut e: [f32; 0] = [];
                assert_eq!(apply(path, act, &mut e, cols), ran);
                if ran && act != Activation::Relu && cols != 3 {
                    // One row of 6: it sums to 1 (softmax, sparsemax).
                    if act != Activation::LogSoftmax {
                        let s: f64 = b.iter().sum();
                        assert!((s - 1.0).abs() < 1e-12, "{path} {act} {cols}: {s}");
                    }
                }
            }
        }
    }
}
