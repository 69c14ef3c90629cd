//! The fuzz targets' bodies: each turns arbitrary bytes into a call and checks the
//! crate's answer against an independent oracle. `fuzz/fuzz_targets/` (cargo-fuzz,
//! nightly features) run them under libFuzzer; `tests/fuzz_corpus.rs` replays the
//! committed corpus through the same functions on stable, so CI covers every target.
//! Both include this file as a module (`#[path]`): it is not part of the library. It
//! uses the crate's test hooks (the `internals` feature).
//!
//! Each returns `Ok(())` when the crate behaved, or a description of what it got wrong.
//! A panic inside the crate is a failure too (libFuzzer reports it; the replay test
//! fails on it).
//!
//! The oracles do not call the crate's own validation: view validity, shape agreement
//! and output size are re-derived here from the definitions, in `u128` arithmetic.

// Each fuzz target uses one of these entry points; the replay test uses them all.
#![allow(dead_code)]

use dense_kernel::reference::{activation_ulp_bound, check_activation_value, check_dense};
use dense_kernel::{
    dense_forward, dense_forward_into_on, dense_forward_packed, Activation, Element, ForwardPath,
    MatMut, MatRef, PackedKernel, SimdPath,
};

/// Every name Keras 3.15's `keras.activations.get` takes for a shape-keeping activation
/// with defaults (`sorted(keras.src.activations.ALL_OBJECTS_DICT)` minus `glu`, which
/// halves the last axis, and `threshold`, which has no defaults).
pub const KERAS_NAMES: &[&str] = &[
    "celu",
    "elu",
    "exponential",
    "gelu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
];

/// Calls whose output has more elements than this are only checked for their
/// accept/reject decision, not run (a fuzz iteration must stay in milliseconds).
const MAX_OUT: u128 = 1 << 16;
/// Calls with more multiply-adds than this are not run either.
const MAX_MACS: u128 = 1 << 20;
/// Slices longer than this are not allocated: the case gets a short slice instead
/// (which makes a "claimed size far larger than the slice").
const MAX_SLICE: u128 = 1 << 18;

/// Reads the fuzzer's bytes; past their end it continues with a fixed pseudo-random
/// sequence, so short inputs still fill whole matrices with varied values.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
    state: u64,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes {
            data,
            pos: 0,
            state: 0x9E37_79B9_7F4A_7C15 ^ data.len() as u64,
        }
    }

    fn u8(&mut self) -> u8 {
        if let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            b
        } else {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in a.iter_mut() {
            *b = self.u8();
        }
        a
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.u8() as usize % from.len()]
    }
}

/// Sizes around every threshold the crate switches on: SIMD widths (4, 8, 16 lanes), the
/// skinny kernels' row limits (16, 32), the dot kernel's `K` (16), the skinny column
/// alignment (64) and the GEMM's column chunk (1024).
const EDGE_SIZES: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
    1023, 1024, 1025,
];

/// Sizes no slice here can back: only valid with a zero-sized partner dimension or a
/// broadcast (stride 0), and overflowing `usize` when multiplied.
const HUGE_SIZES: &[usize] = &[
    usize::MAX,
    usize::MAX / 2 + 1,
    isize::MAX as usize,
    1 << 32,
    1 << 40,
    1 << 20,
];

fn dim(r: &mut Bytes<'_>) -> usize {
    match r.u8() {
        b @ 0..=159 => (b % 40) as usize,
        160..=239 => r.pick(EDGE_SIZES),
        _ => r.pick(HUGE_SIZES),
    }
}

fn stride(r: &mut Bytes<'_>) -> usize {
    match r.u8() {
        b @ 0..=199 => (b % 50) as usize,
        200..=249 => r.pick(EDGE_SIZES),
        _ => r.pick(HUGE_SIZES),
    }
}

/// An activation: any variant, with Keras's default parameters or others (negative,
/// zero, large, and now and then NaN, ±∞, −0, huge or subnormal).
fn activation(r: &mut Bytes<'_>) -> Activation {
    use Activation::*;
    let base = r.pick(Activation::all());
    const PARAMS: &[f64] = &[0.0, 0.1, -0.5, 1.0, 2.5, -3.0, 1e-3, 10.0, 0.2, 6.0];
    if r.u8() < 128 {
        return base;
    }
    // Mostly the list; bytes 250..=255 give NaN, ±∞, −0, 10³⁰⁰ (∞ in f32) and an f32
    // subnormal, parameters no Keras user writes but the kernels must still take.
    let mut p = || match r.u8() {
        b @ 0..=249 => PARAMS[b as usize % PARAMS.len()],
        250 => f64::NAN,
        251 => f64::INFINITY,
        252 => f64::NEG_INFINITY,
        253 => -0.0,
        254 => 1e300,
        _ => 1e-40,
    };
    match base {
        LeakyRelu { .. } => LeakyRelu {
            negative_slope: p(),
        },
        Elu { .. } => Elu { alpha: p() },
        Celu { .. } => Celu { alpha: p() },
        Squareplus { .. } => Squareplus { b: p() },
        SoftShrink { .. } => SoftShrink { threshold: p() },
        HardShrink { .. } => HardShrink { threshold: p() },
        Threshold { .. } => Threshold {
            threshold: p(),
            default_value: p(),
        },
        ReluWith { .. } => {
            let negative_slope = p();
            let max = p();
            let threshold = p();
            ReluWith {
                negative_slope,
                max_value: (max >= 0.0).then_some(max),
                threshold,
            }
        }
        a => a,
    }
}

/// A value: mostly moderate, often special (±0, ±∞, NaN, subnormal, extreme).
fn value<T: Element>(r: &mut Bytes<'_>) -> T {
    let b = r.u8();
    let v = match b {
        0 => 0.0,
        1 => -0.0,
        2 => f64::NAN,
        3 => f64::INFINITY,
        4 => f64::NEG_INFINITY,
        5 => T::min_positive_value().widen() / 4.0, // subnormal
        6 => T::max_value().widen(),
        7 => -T::max_value().widen(),
        8 => 1e30,
        9 => -90.0,
        10 => 90.0,
        _ => (f64::from(b) - 133.0) / 16.0,
    };
    T::narrow(v)
}

/// Thread pools of 1, 2 and 3 threads, made once: a call re-run on another pool must give
/// the same bits (the crate never splits a K-sum). Under the fuzzer calls split from a
/// few hundred multiply-adds (`parallel::MIN_MACS_PER_PIECE`), so pieces do run apart.
fn pools() -> &'static [rayon::ThreadPool] {
    static POOLS: std::sync::OnceLock<Vec<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOLS.get_or_init(|| {
        (1..=3)
            .map(|t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .expect("a fuzzing thread pool")
            })
            .collect()
    })
}

/// Whether two results are the same bit for bit (any NaN equal to any NaN).
fn same_bits<T: Element>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.widen().to_bits() == y.widen().to_bits() || (x.is_nan() && y.is_nan()))
}

/// The smallest slice length a `rows × cols` view with these strides needs, or `None`
/// when the view is invalid whatever the slice (element count or furthest offset beyond
/// `usize`, a stride beyond `isize`, for empty views too). The definition, in `u128`.
fn needed(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<u128> {
    let (r, c) = (rows as u128, cols as u128);
    if r * c > usize::MAX as u128 {
        return None;
    }
    if rs as u128 > isize::MAX as u128 || cs as u128 > isize::MAX as u128 {
        return None;
    }
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    let last = (r - 1) * rs as u128 + (c - 1) * cs as u128 + 1;
    (last <= usize::MAX as u128).then_some(last)
}

/// One operand: its shape (as the call sees it), strides, and a slice that may be too
/// short. `valid` is the oracle's verdict on the view.
struct Operand<T> {
    data: Vec<T>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    /// Built as `from_slice(cols, rows).t()` (a transposed row-major matrix).
    transposed: bool,
    valid: bool,
}

impl<T: Element> Operand<T> {
    fn new(r: &mut Bytes<'_>, rows: usize, cols: usize) -> Self {
        let mode = r.u8() % 4;
        let (rs, cs, transposed) = match mode {
            0 => (cols, 1, false),
            1 => (1, rows, true),
            _ => (stride(r), stride(r), false),
        };
        let need = needed(rows, cols, rs, cs);
        // Usually exactly enough, sometimes a little more or (invalid) a little less.
        let len = match (need, r.u8()) {
            (Some(n), d) if n <= MAX_SLICE => match d {
                0..=199 => n,
                200..=229 => n + u128::from(d % 5),
                _ => n.saturating_sub(u128::from(d % 3) + 1),
            },
            (_, d) => u128::from(d % 64),
        };
        let valid = need.is_some_and(|n| len >= n);
        let data = (0..len).map(|_| value::<T>(r)).collect();
        Operand {
            data,
            rows,
            cols,
            rs,
            cs,
            transposed,
            valid,
        }
    }

    fn view(&self) -> Result<MatRef<'_, T>, dense_kernel::DenseError> {
        view_of(&self.data, self)
    }
}

/// `op`'s view over `data` (its own elements, or the same ones as another type).
fn view_of<'a, E: Element, T>(
    data: &'a [E],
    op: &Operand<T>,
) -> Result<MatRef<'a, E>, dense_kernel::DenseError> {
    if op.transposed {
        MatRef::from_slice(data, op.cols, op.rows).map(MatRef::t)
    } else {
        MatRef::from_strided(data, op.rows, op.cols, op.rs, op.cs)
    }
}

/// The packed path (`f32` only) on the same call: `PackedKernel::new` must refuse a
/// wrong bias, `dense_forward_packed` a wrong input; a valid call must match the
/// reference in a NaN-filled output. `None` for `f64` or a weight too large to pack
/// here.
fn packed_case<T: Element>(
    input: &Operand<T>,
    kernel: &Operand<T>,
    bias: Option<&[T]>,
    act: Activation,
    valid: bool,
) -> Option<Result<(), String>> {
    let (xd, wd) = (T::as_f32s(&input.data)?, T::as_f32s(&kernel.data)?);
    if kernel.rows as u128 * kernel.cols as u128 > MAX_MACS {
        return None;
    }
    let bf = match bias {
        Some(b) => Some(T::as_f32s(b)?),
        None => None,
    };
    let (Ok(x), Ok(w)) = (view_of(xd, input), view_of(wd, kernel)) else {
        return Some(Err("f32 views of valid operands refused".into()));
    };
    let (m, n) = (x.rows(), w.cols());
    let packed = match PackedKernel::new(w, bf) {
        Ok(p) => p,
        Err(_) if bf.is_some_and(|b| b.len() != n) => return Some(Ok(())),
        Err(e) => return Some(Err(format!("packing refused ({e})"))),
    };
    if bf.is_some_and(|b| b.len() != n) {
        return Some(Err("packed a bias of the wrong length".into()));
    }
    let mut out = vec![f32::NAN; m * n];
    let Ok(o) = MatMut::from_slice(&mut out, m, n) else {
        return Some(Err("output view refused".into()));
    };
    let r = dense_forward_packed(x, &packed, act, o);
    Some(match (valid, r) {
        (false, Ok(())) => Err("packed path accepted an invalid call".into()),
        (false, Err(_)) => Ok(()),
        (true, Err(e)) => Err(format!("packed path refused ({e})")),
        (true, Ok(())) => check_dense(x, w, bf, act, &out)
            .map_err(|e| format!("packed: {e}"))
            .and_then(|()| packed_reuse(x, xd, w, bf, act, &packed, &out)),
    })
}

/// One packing reused: by a clone, from several threads at once, on 1 and 3 threads, and
/// for a shorter batch (the first rows of the same input, for non-transposed ones) —
/// the same bits for the same call, the reference's bound for the other shape.
fn packed_reuse(
    x: MatRef<'_, f32>,
    x_data: &[f32],
    w: MatRef<'_, f32>,
    b: Option<&[f32]>,
    act: Activation,
    packed: &PackedKernel,
    want: &[f32],
) -> Result<(), String> {
    let (m, n) = (x.rows(), w.cols());
    let run = |p: &PackedKernel, x: MatRef<'_, f32>| -> Result<Vec<f32>, String> {
        let mut out = vec![f32::NAN; x.rows() * n];
        let o = MatMut::from_slice(&mut out, x.rows(), n).map_err(|e| e.to_string())?;
        dense_forward_packed(x, p, act, o).map_err(|e| format!("packed reuse refused ({e})"))?;
        Ok(out)
    };
    let copy = packed.clone();
    if !same_bits(&run(&copy, x)?, want) {
        return Err("a clone of the packing gives other bits".into());
    }
    for pool in [&pools()[0], &pools()[2]] {
        if !same_bits(&pool.install(|| run(packed, x))?, want) {
            return Err(format!(
                "the packing on {} threads gives other bits",
                pool.current_num_threads()
            ));
        }
    }
    let (a, c) = std::thread::scope(|s| {
        let a = s.spawn(|| run(packed, x));
        let c = s.spawn(|| run(&copy, x));
        (a.join(), c.join())
    });
    for r in [a, c] {
        match r {
            Ok(Ok(y)) if same_bits(&y, want) => {}
            Ok(Ok(_)) => return Err("the packing shared by two threads gives other bits".into()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a thread sharing the packing panicked".into()),
        }
    }
    if m > 1 {
        // The first rows as a batch of their own (a view over the same elements).
        let rows = m / 2;
        let part = MatRef::from_strided(x_data, rows, x.cols(), x.row_stride(), x.col_stride())
            .map_err(|e| format!("sub-batch view: {e}"))?;
        check_dense(part, w, b, act, &run(packed, part)?)
            .map_err(|e| format!("packed, first {rows} rows: {e}"))?;
    }
    Ok(())
}

/// Fuzz target `dense_shapes`: arbitrary shapes (zero, odd, around every threshold,
/// claimed far beyond their slices), strides, transposed views, a bias present, absent
/// or of the wrong length, every activation, `f32` and `f64`, values with NaN, ±∞ and
/// subnormals, on every forced path and (for `f32`) through a [`PackedKernel`]. The crate
/// must return `Err` exactly when the call is invalid, and otherwise match the reference
/// within the derived tolerance ([`check_dense`]), NaN/∞ pattern included.
pub fn dense_shapes(data: &[u8]) -> Result<(), String> {
    let mut r = Bytes::new(data);
    if r.u8() & 1 == 0 {
        dense_case::<f32>(&mut r)
    } else {
        dense_case::<f64>(&mut r)
    }
}

fn dense_case<T: Element>(r: &mut Bytes<'_>) -> Result<(), String> {
    let act = activation(r);
    let (m, k, n) = (dim(r), dim(r), dim(r));
    // The kernel's row count is usually the input's column count, sometimes not.
    let k2 = if r.u8() < 230 { k } else { dim(r) };
    let input = Operand::<T>::new(r, m, k);
    let kernel = Operand::<T>::new(r, k2, n);
    let bias: Option<Vec<T>> = match r.u8() % 8 {
        0 | 1 => None,
        2 => {
            // Wrong length (or, by chance, the right one).
            let len = (r.u8() % 70) as usize;
            Some((0..len).map(|_| value::<T>(r)).collect())
        }
        _ if n as u128 <= MAX_SLICE => Some((0..n).map(|_| value::<T>(r)).collect()),
        _ => Some(vec![T::zero(); 3]),
    };
    let path = r.pick(&[
        ForwardPath::Auto,
        ForwardPath::Tiny,
        ForwardPath::Skinny,
        ForwardPath::Gemm,
    ]);

    let desc = || {
        format!(
            "{} {act} M={m} K={k} (kernel rows {k2}) N={n}, input strides ({}, {}){} len {}, \
             kernel strides ({}, {}){} len {}, bias {:?}, path {path:?}",
            T::NAME,
            input.rs,
            input.cs,
            if input.transposed { " (t)" } else { "" },
            input.data.len(),
            kernel.rs,
            kernel.cs,
            if kernel.transposed { " (t)" } else { "" },
            kernel.data.len(),
            bias.as_ref().map(Vec::len),
        )
    };

    // The views: each accepted exactly when the oracle says it is valid.
    let (xv, wv) = (input.view(), kernel.view());
    for (name, op, v) in [
        ("input", &input, xv.is_ok()),
        ("kernel", &kernel, wv.is_ok()),
    ] {
        if v != op.valid {
            return Err(format!(
                "{name} view: crate says {}, oracle says {}: {}",
                if v { "valid" } else { "invalid" },
                if op.valid { "valid" } else { "invalid" },
                desc()
            ));
        }
    }
    let (Ok(x), Ok(w)) = (xv, wv) else {
        return Ok(());
    };
    let b = bias.as_deref();
    let out_len = m as u128 * n as u128;
    let shapes_agree = k == k2 && b.is_none_or(|b| b.len() == n);
    let out_bytes = out_len.saturating_mul(std::mem::size_of::<T>() as u128);
    let valid = shapes_agree && out_bytes <= isize::MAX as u128;
    // Each dimension bounded too: the reference loops over M and N even when the other
    // is zero.
    let runnable = m as u128 <= MAX_OUT
        && n as u128 <= MAX_OUT
        && k as u128 <= MAX_MACS
        && out_len <= MAX_OUT
        && out_len.saturating_mul(k as u128) <= MAX_MACS;
    if valid && !runnable {
        return Ok(());
    }
    if !shapes_agree {
        if out_len <= MAX_OUT {
            if let Some(r) = packed_case(&input, &kernel, b, act, false) {
                r.map_err(|e| format!("{e}: {}", desc()))?;
            }
        }
        // Rejected before anything is allocated: safe to call whatever the size.
        return match dense_forward(x, w, b, act) {
            Ok(_) => Err(format!("accepted an invalid call: {}", desc())),
            Err(e) if e.to_string().is_empty() => Err(format!("empty error: {}", desc())),
            Err(_) => Ok(()),
        };
    }
    if !valid {
        // An output too large for `isize` bytes: must be refused, not attempted.
        return match dense_forward(x, w, b, act) {
            Ok(_) => Err(format!("accepted an oversized output: {}", desc())),
            Err(_) => Ok(()),
        };
    }

    let y = dense_forward(x, w, b, act).map_err(|e| format!("refused ({e}): {}", desc()))?;
    if (y.rows(), y.cols()) != (m, n) {
        return Err(format!("output is {}x{}: {}", y.rows(), y.cols(), desc()));
    }
    check_dense(x, w, b, act, y.as_slice()).map_err(|e| format!("{e}: {}", desc()))?;

    // The forced path into a NaN-filled buffer: the old contents must not leak in.
    let mut out = vec![T::nan(); m * n];
    let out_view = MatMut::from_slice(&mut out, m, n).map_err(|e| e.to_string())?;
    dense_forward_into_on(path, x, w, b, act, out_view)
        .map_err(|e| format!("into refused ({e}): {}", desc()))?;
    check_dense(x, w, b, act, &out).map_err(|e| format!("into: {e}: {}", desc()))?;
    // The same forced call on one thread and on two or three: the same bits.
    let threads = 2 + (r.u8() % 2) as usize;
    let mut one = vec![T::nan(); m * n];
    let mut many = vec![T::nan(); m * n];
    for (pool, buf) in [(0, &mut one), (threads - 1, &mut many)] {
        let o = MatMut::from_slice(buf, m, n).map_err(|e| e.to_string())?;
        pools()[pool]
            .install(|| dense_forward_into_on(path, x, w, b, act, o))
            .map_err(|e| format!("pool refused ({e}): {}", desc()))?;
    }
    if !same_bits(&one, &many) {
        return Err(format!("1 thread and {threads} differ: {}", desc()));
    }
    if let Some(r) = packed_case(&input, &kernel, b, act, true) {
        r.map_err(|e| format!("{e}: {}", desc()))?;
    }
    // A wrongly shaped output is refused.
    if m * n > 0 {
        let mut short = vec![T::zero(); m * n - 1];
        let bad = MatMut::from_slice(&mut short, m * n - 1, 1).map_err(|e| e.to_string())?;
        if dense_forward_into_on(path, x, w, b, act, bad).is_ok() {
            return Err(format!("accepted a wrongly shaped output: {}", desc()));
        }
    }
    Ok(())
}

/// Fuzz target `activation_values`: arbitrary `f32`/`f64` bit patterns through every
/// element-wise activation on every SIMD path this CPU has (within
/// [`activation_ulp_bound`] of the `f64` definition; NaN, ±0 and ±∞ exactly as it says),
/// and rows of them through the row-wise ones (softmax, log_softmax, sparsemax) on every
/// forced forward path (within [`check_dense`]'s bound).
pub fn activation_values(data: &[u8]) -> Result<(), String> {
    let mut r = Bytes::new(data);
    if r.u8() & 1 == 0 {
        values_case::<f32>(&mut r, |r| f32::from_bits(u32::from_le_bytes(r.bytes())))
    } else {
        values_case::<f64>(&mut r, |r| f64::from_bits(u64::from_le_bytes(r.bytes())))
    }
}

fn values_case<T: Element>(
    r: &mut Bytes<'_>,
    bits: impl Fn(&mut Bytes<'_>) -> T,
) -> Result<(), String> {
    let act = activation(r);
    let len = 1 + (r.u8() % 70) as usize;
    // Bit patterns from the bytes for as long as they last, then moderate values.
    let xs: Vec<T> = (0..len)
        .map(|_| {
            if r.pos < r.data.len() {
                bits(r)
            } else {
                value::<T>(r)
            }
        })
        .collect();
    if act.is_row_wise() {
        // K = 0: the pre-activation is the bias exactly, so the rows are `xs` as given.
        let rows = 1 + (r.u8() % 3) as usize;
        let (cols, bias) = (len, &xs[..]);
        let empty: [T; 0] = [];
        let (x, w) = (
            MatRef::from_slice(&empty, rows, 0).map_err(|e| e.to_string())?,
            MatRef::from_slice(&empty, 0, cols).map_err(|e| e.to_string())?,
        );
        for path in [
            ForwardPath::Auto,
            ForwardPath::Tiny,
            ForwardPath::Skinny,
            ForwardPath::Gemm,
        ] {
            let mut out = vec![T::nan(); rows * cols];
            let o = MatMut::from_slice(&mut out, rows, cols).map_err(|e| e.to_string())?;
            dense_forward_into_on(path, x, w, Some(bias), act, o).map_err(|e| e.to_string())?;
            check_dense(x, w, Some(bias), act, &out)
                .map_err(|e| format!("{} {act} on {path:?}, row {bias:?}: {e}", T::NAME))?;
        }
        return Ok(());
    }
    if activation_ulp_bound::<T>(act).is_none() {
        return Err(format!(
            "{act}: no accuracy bound for an element-wise activation"
        ));
    }
    for path in SimdPath::ALL {
        let mut ys = xs.clone();
        let ran = dense_kernel::apply_activation_on(path, act, &mut ys, len);
        if ran != path.is_available() {
            return Err(format!(
                "{path}: ran = {ran}, available = {}",
                path.is_available()
            ));
        }
        if !ran {
            continue;
        }
        for (&x, &y) in xs.iter().zip(&ys) {
            check_activation_value(act, x, y).map_err(|e| format!("{} on {path}: {e}", T::NAME))?;
        }
    }
    Ok(())
}

/// Fuzz target `activation_names`: arbitrary strings through `Activation::from_str`.
/// `Ok` exactly for [`KERAS_NAMES`]; an accepted name's `Display` is its canonical name
/// (`silu` for `swish`, `hard_silu` for `hard_swish`) and parses back to the same value.
/// Then an arbitrary activation (parameters included, NaN and ±∞ among them) must
/// display without panicking, and parse back to itself when its parameters are Keras's
/// defaults (Keras's `get` takes no call syntax, so other parameters must not parse).
pub fn activation_names(data: &[u8]) -> Result<(), String> {
    let s = String::from_utf8_lossy(data);
    let known = KERAS_NAMES.contains(&s.as_ref());
    match s.parse::<Activation>() {
        Ok(a) if !known => return Err(format!("{s:?} parsed as {a:?}: not a Keras name")),
        Err(e) if known => return Err(format!("{s:?} refused: {e}")),
        Ok(a) => {
            let canonical = match s.as_ref() {
                "swish" => "silu",
                "hard_swish" => "hard_silu",
                n => n,
            };
            let shown = a.to_string();
            if shown != canonical {
                return Err(format!("{s:?} displays as {shown:?}"));
            }
            if shown.parse::<Activation>().ok() != Some(a) {
                return Err(format!("{shown:?} does not parse back to {a:?}"));
            }
        }
        Err(e) if e.to_string().is_empty() => return Err(format!("{s:?}: empty error")),
        Err(_) => {}
    }
    // Any activation, with arbitrary f64 parameters.
    let mut r = Bytes::new(data);
    let mut a = activation(&mut r);
    let any = f64::from_bits(u64::from_le_bytes(r.bytes()));
    if r.u8() < 64 {
        use Activation::*;
        a = match a {
            LeakyRelu { .. } => LeakyRelu {
                negative_slope: any,
            },
            Elu { .. } => Elu { alpha: any },
            Celu { .. } => Celu { alpha: any },
            Squareplus { .. } => Squareplus { b: any },
            SoftShrink { .. } => SoftShrink { threshold: any },
            HardShrink { .. } => HardShrink { threshold: any },
            a => a,
        };
    }
    let shown = a.to_string();
    // `ReluWith` with Keras's defaults is relu, and displays as such.
    let same = |b: Activation| {
        b == a
            || b == Activation::Relu
                && a == Activation::ReluWith {
                    negative_slope: 0.0,
                    max_value: None,
                    threshold: 0.0,
                }
    };
    match shown.parse::<Activation>() {
        Ok(b) if !same(b) => Err(format!(
            "{a:?} displays as {shown:?}, which parses as {b:?}"
        )),
        Ok(_) if !KERAS_NAMES.contains(&shown.as_str()) => Err(format!(
            "{a:?} displays as {shown:?}, not a Keras name, yet it parses"
        )),
        Err(_) if KERAS_NAMES.contains(&shown.as_str()) => Err(format!(
            "{a:?} displays as the Keras name {shown:?}, which does not parse"
        )),
        _ => Ok(()),
    }
}

/// A parameter for the layer API: moderate values, and now and then NaN, ±∞, −0, huge.
fn param(r: &mut Bytes<'_>) -> f64 {
    const P: &[f64] = &[0.0, 0.01, 0.5, 1.0, 2.0, -1.0, 1e-3, 3.0, 0.05, 10.0];
    match r.u8() {
        b @ 0..=229 => P[b as usize % P.len()],
        230..=234 => f64::NAN,
        235..=239 => f64::INFINITY,
        240..=244 => f64::NEG_INFINITY,
        245..=249 => -0.0,
        _ => 1e300,
    }
}

fn initializer(r: &mut Bytes<'_>) -> dense_kernel::layer::Initializer {
    use dense_kernel::layer::{Distribution, FanMode, Initializer as I};
    match r.u8() % 14 {
        0 => I::GlorotUniform,
        1 => I::GlorotNormal,
        2 => I::HeUniform,
        3 => I::HeNormal,
        4 => I::LecunUniform,
        5 => I::LecunNormal,
        6 => I::RandomUniform {
            minval: param(r),
            maxval: param(r),
        },
        7 => I::RandomNormal {
            mean: param(r),
            stddev: param(r),
        },
        8 => I::TruncatedNormal {
            mean: param(r),
            stddev: param(r),
        },
        9 => I::Zeros,
        10 => I::Ones,
        11 => I::Constant { value: param(r) },
        12 => I::Orthogonal { gain: param(r) },
        _ => I::VarianceScaling {
            scale: param(r),
            mode: r.pick(&[FanMode::FanIn, FanMode::FanOut, FanMode::FanAvg]),
            distribution: r.pick(&[
                Distribution::Uniform,
                Distribution::TruncatedNormal,
                Distribution::UntruncatedNormal,
            ]),
        },
    }
}

fn constraint(r: &mut Bytes<'_>) -> dense_kernel::layer::Constraint {
    use dense_kernel::layer::Constraint as C;
    let axis = r.pick(&[0usize, 1, 2, 7]);
    match r.u8() % 4 {
        0 => C::MaxNorm {
            max_value: param(r),
            axis,
        },
        1 => C::MinMaxNorm {
            min_value: param(r),
            max_value: param(r),
            rate: param(r),
            axis,
        },
        2 => C::NonNeg,
        _ => C::UnitNorm { axis },
    }
}

/// A tensor shape: rank 0 to 4, dimensions mostly small, sometimes at an edge or huge.
fn shape(r: &mut Bytes<'_>) -> Vec<usize> {
    let rank = r.u8() % 5;
    (0..rank)
        .map(|_| match r.u8() {
            b @ 0..=199 => (b % 9) as usize,
            200..=239 => r.pick(EDGE_SIZES),
            _ => r.pick(HUGE_SIZES),
        })
        .collect()
}

/// The element count of a shape, exactly (0 if any axis is), saturating past `u128`.
fn numel128(shape: &[usize]) -> u128 {
    if shape.contains(&0) {
        0
    } else {
        shape
            .iter()
            .fold(1u128, |a, &v| a.saturating_mul(v as u128))
    }
}

/// `Some(n)` for a shape of `n ≤ MAX_SLICE` elements (0 if any axis is).
fn small_numel(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    let n = shape.iter().try_fold(1u128, |a, &d| {
        let p = a * d as u128;
        (p <= MAX_SLICE).then_some(p)
    })?;
    usize::try_from(n).ok()
}

/// Fuzz target `layer_api`: the Keras layer API under arbitrary configurations and
/// shapes. A `Dense` (any units, activation, bias or not, initializers, regularizers and
/// constraints with parameters NaN, ±∞ or huge among them, an `input_dim` or none) is
/// called on an input of arbitrary rank and shape (the data's length sometimes wrong,
/// the shape sometimes overflowing), twice (the second call of an `f32` layer packs),
/// then its weights are read, set back and constrained; a `Sequential` of it, an
/// `Activation` layer and a second `Dense` runs forward and predict; a `Constraint` and
/// an `Initializer` take arbitrary shapes. Nothing may panic; every call returns `Ok`
/// exactly when its input is valid, and a `Dense` output matches the reference within
/// [`check_dense`]'s bound.
pub fn layer_api(data: &[u8]) -> Result<(), String> {
    let mut r = Bytes::new(data);
    if r.u8() & 1 == 0 {
        layer_case::<f32>(&mut r)
    } else {
        layer_case::<f64>(&mut r)
    }
}

fn layer_case<T: Element>(r: &mut Bytes<'_>) -> Result<(), String> {
    use dense_kernel::layer::{ActivationLayer, Dense, Regularizer, Sequential};
    let units = match r.u8() {
        b @ 0..=229 => (b % 12) as usize,
        230..=249 => r.pick(EDGE_SIZES),
        _ => r.pick(HUGE_SIZES),
    };
    let act = activation(r);
    let use_bias = r.u8() & 1 == 0;
    let (ki, bi) = (initializer(r), initializer(r));
    let mut d = Dense::<T>::new(units)
        .activation(act)
        .use_bias(use_bias)
        .kernel_initializer(ki)
        .bias_initializer(bi)
        .seed(u64::from(r.u8()));
    // A configuration Keras takes whatever its parameters: one that must build (the
    // parameterless initializers, no regularizer, no input_dim or the input's own).
    let plain_init = |i: dense_kernel::layer::Initializer| {
        use dense_kernel::layer::Initializer as I;
        matches!(
            i,
            I::GlorotUniform
                | I::GlorotNormal
                | I::HeUniform
                | I::HeNormal
                | I::LecunUniform
                | I::LecunNormal
                | I::Zeros
                | I::Ones
        )
    };
    let flags = r.u8();
    let mut plain = units > 0 && plain_init(ki) && plain_init(bi) && flags & 3 == 0;
    if flags & 1 != 0 {
        d = d.kernel_regularizer(Regularizer::l1_l2(param(r), param(r)));
    }
    if flags & 2 != 0 {
        d = d.activity_regularizer(Regularizer::l2(param(r)));
    }
    if flags & 4 != 0 {
        d = d.kernel_constraint(constraint(r));
    }
    if flags & 8 != 0 {
        d = d.bias_constraint(constraint(r));
    }
    let mut input_dim = None;
    if flags & 16 != 0 {
        let k = (r.u8() % 9) as usize;
        input_dim = Some(k);
        d = d.input_dim(k);
    }
    let shape = shape(r);
    let numel = small_numel(&shape);
    // Usually exactly the shape's elements, sometimes one too few or too many.
    let len = match (numel, r.u8()) {
        (Some(n), 0..=219) => n,
        (Some(n), b) if b & 1 == 0 => n + 1,
        (Some(n), _) => n.saturating_sub(1),
        (None, b) => (b % 5) as usize,
    };
    let x: Vec<T> = (0..len).map(|_| value::<T>(r)).collect();
    let desc = || {
        format!(
            "{} Dense({units}, {act}) on {shape:?} ({len} values)",
            T::NAME
        )
    };
    // A weight or an output that would fit in memory but not in a fuzz iteration (the
    // crate would allocate and fill it) is not run; one past `usize` must be refused.
    let rows = shape.split_last().map_or(1u128, |(_, l)| numel128(l));
    let last = shape.last().map_or(0u128, |&v| v as u128);
    let (weight, output) = (
        last.saturating_mul(units as u128),
        rows.saturating_mul(units as u128),
    );
    let huge = |v: u128| v > usize::MAX as u128;
    let too_big = |v: u128| v > 1 << 22 && !huge(v);
    if too_big(weight)
        || too_big(output)
        || too_big(units as u128)
        || (rows > 1 << 22 && !huge(rows))
    {
        return Ok(());
    }

    // Two calls: the first builds (and, for f32, the second packs).
    for call in 0..2 {
        let res = d.call(&x, &shape);
        let well_formed = shape.len() >= 2 && numel == Some(len);
        plain &= input_dim.is_none_or(|k| shape.last() == Some(&k))
            && !huge(output)
            && !huge(rows)
            && !huge(weight);
        match &res {
            Err(e) if e.to_string().is_empty() => return Err(format!("empty error: {}", desc())),
            Err(e) if well_formed && plain => {
                return Err(format!(
                    "call {call} refused a valid input ({e}): {}",
                    desc()
                ))
            }
            Err(_) => {}
            Ok(_) if !well_formed => {
                return Err(format!(
                    "call {call} accepted a malformed input: {}",
                    desc()
                ))
            }
            Ok(y) => {
                let mut want = shape.clone();
                *want.last_mut().unwrap_or(&mut 0) = units;
                if y.shape != want || numel128(&want) != y.data.len() as u128 {
                    return Err(format!(
                        "call {call}: output shape {:?} ({} values): {}",
                        y.shape,
                        y.data.len(),
                        desc()
                    ));
                }
                let k = shape[shape.len() - 1];
                let m = numel128(&shape[..shape.len() - 1]) as usize;
                let w = d
                    .get_weights()
                    .map_err(|e| format!("weights ({e}): {}", desc()))?;
                let (xv, wv) = (
                    MatRef::from_slice(&x, m, k).map_err(|e| e.to_string())?,
                    MatRef::from_slice(&w[0].data, k, units).map_err(|e| e.to_string())?,
                );
                let b = use_bias.then(|| &w[1].data[..]);
                // The reference only where it stays quick: it keeps every term apart, and
                // for a row-wise activation bounds each output over its whole row.
                let macs = (m as u128) * (k.max(1) as u128) * (units as u128);
                let row = if act.is_row_wise() { units as u128 } else { 1 };
                let checked = macs.saturating_mul(row) <= 1 << 16;
                if checked {
                    check_dense(xv, wv, b, act, &y.data)
                        .map_err(|e| format!("call {call}: {e}: {}", desc()))?;
                }
                // call_into agrees, and refuses an output of the wrong length.
                let mut out = vec![T::nan(); y.data.len()];
                d.call_into(&x, &shape, &mut out)
                    .map_err(|e| format!("call_into refused ({e}): {}", desc()))?;
                if checked {
                    check_dense(xv, wv, b, act, &out)
                        .map_err(|e| format!("call_into: {e}: {}", desc()))?;
                }
                let mut short = vec![T::zero(); out.len() + 1];
                if d.call_into(&x, &shape, &mut short).is_ok() {
                    return Err(format!("call_into took a wrong output length: {}", desc()));
                }
            }
        }
    }
    // Weights out and back in, constraints, penalties: no panic; a round trip keeps them.
    if let Ok(w) = d.get_weights() {
        d.set_weights(&w)
            .map_err(|e| format!("set_weights of get_weights ({e}): {}", desc()))?;
        if d.get_weights().ok().as_ref() != Some(&w) {
            return Err(format!("weights changed in a round trip: {}", desc()));
        }
        let _ = d.apply_constraints();
        let _ = d.losses();
        let _ = d.count_params();
    }
    // The layer in a model, between an activation and a second layer.
    let model = Sequential::<T>::new()
        .add(d)
        .and_then(|m| m.add(ActivationLayer::new(activation(r))))
        .and_then(|m| m.add(Dense::new((r.u8() % 6) as usize + 1).seed(3)));
    if let Ok(mut model) = model {
        for _ in 0..2 {
            match model.forward(&x, &shape) {
                Ok((y, s)) => {
                    if numel128(s) != y.len() as u128 {
                        return Err(format!("model output {s:?} has {} values", y.len()));
                    }
                }
                Err(e) if e.to_string().is_empty() => return Err("empty model error".into()),
                Err(_) => {}
            }
        }
        if let Ok(t) = model.predict(&x, &shape) {
            if numel128(&t.shape) != t.data.len() as u128 {
                return Err(format!("predict output {:?}", t.shape));
            }
        }
        let _ = model.summary();
        let _ = model.losses();
    }
    // A constraint and an initializer on arbitrary shapes.
    let cshape = self::shape(r);
    let c = constraint(r);
    if let Some(n) = small_numel(&cshape) {
        let mut w: Vec<T> = (0..n).map(|_| value::<T>(r)).collect();
        let before = w.len();
        let _ = c.apply(&mut w, &cshape);
        if w.len() != before {
            return Err("a constraint changed the weight's length".into());
        }
    } else if c.apply::<T>(&mut [], &cshape).is_ok() && !cshape.contains(&0) {
        return Err(format!(
            "{c:?} accepted an empty weight of shape {cshape:?}"
        ));
    }
    let init = initializer(r);
    let n = numel128(&cshape);
    if n <= MAX_SLICE {
        if let Ok(v) = init.sample::<T>(&cshape, 7) {
            if v.len() as u128 != n {
                return Err(format!("{init:?} gave {} values for {cshape:?}", v.len()));
            }
        }
    } else if huge(n) && init.sample::<T>(&cshape, 7).is_ok() {
        return Err(format!("{init:?} sampled an impossible {cshape:?}"));
    }
    training_case::<T>(r)
}

/// Training: a small model with a Dropout, any optimizer, loss, metrics and clipping
/// (parameters NaN, ±∞, −0 or huge among them), targets of the right shape or not,
/// `train_on_batch`, `fit` (batch size 0, validation split outside [0, 1) included) and
/// `evaluate`: `Ok` for a plain valid setup, errors with a message, never a panic.
fn training_case<T: Element>(r: &mut Bytes<'_>) -> Result<(), String> {
    use dense_kernel::layer::{
        CompileOptions, Dense, Dropout, FitOptions, Loss, Metric, Optimizer, Sequential,
    };
    let (k, hidden, out) = (
        (r.u8() % 6) as usize + 1,
        (r.u8() % 6) as usize,
        (r.u8() % 5) as usize + 1,
    );
    let (a1, a2) = (activation(r), activation(r));
    let rate = if r.u8() & 1 == 0 { 0.25 } else { param(r) };
    let model = Sequential::<T>::new()
        .seed(u64::from(r.u8()))
        .add(Dense::new(hidden).activation(a1).input_dim(k))
        .and_then(|m| m.add(Dropout::new(rate)))
        .and_then(|m| m.add(Dense::new(out).activation(a2)));
    let mut model = match model {
        Ok(m) => m,
        Err(e) if e.to_string().is_empty() => return Err("empty model error".into()),
        // Units 0 or a rate outside [0, 1]: refused, as Keras refuses them.
        Err(_) if hidden == 0 || !(0.0..=1.0).contains(&rate) => return Ok(()),
        Err(e) => return Err(format!("a valid training model was refused: {e}")),
    };
    let (lr, p2) = (param(r).abs(), param(r));
    let opt = match r.u8() % 6 {
        0 => Optimizer::Sgd {
            learning_rate: lr,
            momentum: p2,
            nesterov: r.u8() & 1 == 0,
        },
        1 => Optimizer::Adam {
            learning_rate: lr,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: p2,
            amsgrad: r.u8() & 1 == 0,
        },
        2 => Optimizer::AdamW {
            learning_rate: lr,
            weight_decay: p2,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        },
        3 => Optimizer::RmsProp {
            learning_rate: lr,
            rho: 0.9,
            momentum: p2,
            epsilon: 1e-7,
            centered: r.u8() & 1 == 0,
        },
        4 => Optimizer::Adagrad {
            learning_rate: lr,
            initial_accumulator_value: p2,
            epsilon: 1e-7,
        },
        _ => "adam".parse().map_err(|e| format!("{e}"))?,
    };
    let logits = r.u8() & 1 == 0;
    let ls = param(r);
    let loss = match r.u8() % 6 {
        0 => Loss::CategoricalCrossentropy {
            from_logits: logits,
            label_smoothing: ls,
        },
        1 => Loss::SparseCategoricalCrossentropy {
            from_logits: logits,
        },
        2 => Loss::BinaryCrossentropy {
            from_logits: logits,
            label_smoothing: ls,
        },
        3 => Loss::MeanSquaredError,
        4 => Loss::MeanAbsoluteError,
        _ => Loss::Huber { delta: ls },
    };
    let metrics = [
        Metric::Accuracy,
        Metric::CategoricalAccuracy,
        Metric::SparseCategoricalAccuracy,
        Metric::BinaryAccuracy,
    ];
    let mut opts = CompileOptions::new().metrics(&metrics[..(r.u8() % 5) as usize]);
    match r.u8() % 8 {
        0 => opts = opts.clipnorm(param(r)),
        1 => opts = opts.clipvalue(param(r)),
        2 => opts = opts.global_clipnorm(param(r)),
        3 => opts = opts.clipnorm(1.0).clipvalue(1.0),
        _ => {}
    }
    if let Err(e) = model.compile_with(opt, loss, &opts) {
        return if e.to_string().is_empty() {
            Err("empty compile error".into())
        } else {
            Ok(())
        };
    }
    let n = (r.u8() % 6) as usize;
    let x: Vec<T> = (0..n * k).map(|_| value::<T>(r)).collect();
    // Targets: the loss's own shape (class indices for the sparse loss), or another.
    let (y_shape, y): (Vec<usize>, Vec<T>) = match r.u8() % 4 {
        0 if matches!(loss, Loss::SparseCategoricalCrossentropy { .. }) => (
            vec![n],
            (0..n).map(|_| T::narrow(f64::from(r.u8() % 7))).collect(),
        ),
        0 | 1 => (vec![n, out], (0..n * out).map(|_| value::<T>(r)).collect()),
        2 => (
            vec![n, 1],
            (0..n).map(|_| T::narrow(f64::from(r.u8() % 7))).collect(),
        ),
        _ => {
            let s = shape(r);
            match small_numel(&s) {
                Some(len) if len <= 64 => (s, (0..len).map(|_| value::<T>(r)).collect()),
                _ => (vec![n], vec![T::zero(); n]),
            }
        }
    };
    let nonempty = |e: dense_kernel::DenseError, what: &str| {
        if e.to_string().is_empty() {
            Err(format!("empty {what} error"))
        } else {
            Ok(())
        }
    };
    if let Err(e) = model.train_on_batch(&x, &[n, k], &y, &y_shape) {
        nonempty(e, "train_on_batch")?;
    }
    let fit = FitOptions::new()
        .batch_size((r.u8() % 4) as usize)
        .epochs((r.u8() % 3) as usize)
        .verbose(0)
        .shuffle(r.u8() & 1 == 0)
        .validation_split(if r.u8() & 1 == 0 { 0.0 } else { param(r) });
    if let Err(e) = model.fit(&x, &[n, k], &y, &y_shape, &fit) {
        nonempty(e, "fit")?;
    }
    if let Err(e) = model.evaluate(&x, &[n, k], &y, &y_shape) {
        nonempty(e, "evaluate")?;
    }
    Ok(())
}

/// `model_files`: the first byte picks the reader (`.keras`/legacy `.h5` through
/// `load_model`, `.weights.h5` through `Sequential::load_weights`, safetensors through
/// `load_safetensors`) and the element type; the rest is the file. Any answer but a
/// panic is allowed for a bad file; a file that loads must also run, save, and load back
/// to a model that gives the same outputs bit for bit.
pub fn model_files(data: &[u8]) -> Result<(), String> {
    let Some((&sel, file)) = data.split_first() else {
        return Ok(());
    };
    if sel & 1 == 0 {
        model_file_case::<f32>(sel >> 1, file)
    } else {
        model_file_case::<f64>(sel >> 1, file)
    }
}

/// A scratch path of this process and thread (libFuzzer runs one input at a time per
/// process; the replay test may use several threads).
fn scratch_path(ext: &str) -> std::path::PathBuf {
    let id = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>();
    std::env::temp_dir().join(format!(
        "dense-kernel-fuzz-{}-{id}.{ext}",
        std::process::id()
    ))
}

fn model_file_case<T: Element>(kind: u8, file: &[u8]) -> Result<(), String> {
    use dense_kernel::layer::{load_model, load_safetensors, Dense, Sequential};
    let ext = match kind % 3 {
        0 => "keras",
        1 => "weights.h5",
        _ => "safetensors",
    };
    let path = scratch_path(ext);
    std::fs::write(&path, file).map_err(|e| e.to_string())?;
    let loaded = match kind % 3 {
        0 => load_model::<T>(&path),
        1 => {
            // A fixed small model the weights may fit: 4 → 3 (relu) → 2.
            let m = Sequential::<T>::new()
                .add(Dense::new(3).input_dim(4).activation(Activation::Relu))
                .and_then(|m| m.add(Dense::new(2)));
            m.and_then(|mut m| m.load_weights(&path).map(|()| m))
        }
        _ => {
            let acts = [
                Activation::Relu,
                Activation::Tanh,
                Activation::Softmax,
                Activation::Linear,
            ];
            let n = usize::from(kind / 3 % 4) + 1;
            load_safetensors::<T>(&path, &acts[..n])
        }
    };
    let _ = std::fs::remove_file(&path);
    let Ok(mut model) = loaded else {
        return Ok(());
    };
    if kind % 3 == 2 {
        // A state_dict's layers run PyTorch's (out, in) weights through the transposed
        // view, whose one-off skinny path sums in another order than Keras's layout
        // (issue 31); `save` writes Keras's layout. Set the model's weights in Keras's
        // layout first, so that the bits compared below come from one layout.
        let w = model
            .get_weights()
            .map_err(|e| format!("get_weights of a loaded model: {e}"))?;
        model
            .set_weights(&w)
            .map_err(|e| format!("set_weights of its own weights: {e}"))?;
    }
    // It loaded: it must run, and (where it has a Keras form) save and load back equal.
    let Some(shape) = model.input_shape().map(<[usize]>::to_vec) else {
        return Err("a loaded model has no input shape".into());
    };
    let per: u128 = shape.iter().map(|&d| d as u128).product();
    if per > MAX_SLICE {
        return Ok(());
    }
    let mut full = vec![2usize];
    full.extend(&shape);
    let x: Vec<T> = (0..2 * per as usize)
        .map(|i| T::narrow((i % 7) as f64 / 4.0 - 0.75))
        .collect();
    let y = model
        .predict(&x, &full)
        .map_err(|e| format!("a loaded model does not run: {e}"))?;
    let saved = scratch_path("keras");
    if model.save(&saved).is_ok() {
        let back = load_model::<T>(&saved);
        let _ = std::fs::remove_file(&saved);
        let mut back = back.map_err(|e| format!("a saved model does not load: {e}"))?;
        let y2 = back.predict(&x, &full).map_err(|e| e.to_string())?;
        if y.shape != y2.shape || !same_bits(&y.data, &y2.data) {
            return Err("save → load changed the model's outputs".into());
        }
    }
    Ok(())
}
