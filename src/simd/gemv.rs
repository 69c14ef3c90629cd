//! The skinny-product microkernels (small `M`): `out += x·w` streaming the weight matrix
//! once, with no packing, written once against [`Vector`] and instantiated per backend.
//!
//! One kernel, [`axpy`], for a weight whose rows (`k`) are contiguous over `n` (Keras
//! `(in, units)` row-major): `out[i, :] += Σₚ x[i, p]·w[p, :]`, four weight rows at a
//! time, the output block kept in L1; outputs up to four vectors wide keep their sums in
//! registers instead ([`axpy_narrow`]). Other layouts (PyTorch's `(units, in)`, seen
//! transposed) are first packed into that layout a few columns at a time
//! (`paths::skinny`), so every layout sums in the same order.
//!
//! The kernel touches each output element's K-sum in an order fixed by `k` alone, so
//! splitting `n` or `m` across threads never changes a result bit.

// Register tiles are indexed [row][column] by constant-bound loops the compiler unrolls
// into registers; index loops say that more plainly than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::vector::{Real, Vector};

/// A skinny product over raw, already validated views: `out += x·w`.
///
/// `x(i, p)` is at `x + i·rsx + p·csx`; `out(i, j)` at `out + i·ldo + j`; `w(p, j)` at
/// `w + p·ldw + j`.
#[derive(Clone, Copy)]
pub struct Skinny<T> {
    /// Rows of `x` and `out`.
    pub m: usize,
    /// The inner dimension.
    pub k: usize,
    /// Columns of `out`.
    pub n: usize,
    /// `x`'s first element.
    pub x: *const T,
    /// `x`'s row stride, in elements.
    pub rsx: isize,
    /// `x`'s column stride, in elements.
    pub csx: isize,
    /// `w`'s first element.
    pub w: *const T,
    /// The stride of `w`'s contiguous lines, in elements.
    pub ldw: isize,
    /// `out`'s first element.
    pub out: *mut T,
    /// `out`'s row stride, in elements.
    pub ldo: isize,
    /// The bias for columns `0..n` (`n` elements), or null. The kernels add it to the
    /// first K block's sums and write every element of `out`, which is never read before
    /// it is written.
    pub bias: *const T,
    /// Add each sum to what `out` holds instead of to the bias: one K block (`k` at most
    /// [`K_BLOCK`](super::K_BLOCK)) of a longer sum whose earlier blocks are in `out`.
    /// Only for outputs the register kernel takes ([`axpy_narrow`]), whose sums stay in
    /// registers until they are stored.
    pub add_out: bool,
    /// `m × n` elements (rows `n` apart) for the axpy kernel's partial sums of K blocks
    /// after the first, where `k` is over one block and the output is wider than its
    /// register kernel takes; else unused (may be null).
    pub part: *mut T,
}

// SAFETY: a `Skinny` is only a description of views: a thread that holds one (or a
// reference to one) may read `T`s through its input pointers and write `T`s through
// `out` and `part`, so moving or sharing it across threads needs `T: Send + Sync`, as
// for a `&[T]` beside a `&mut [T]`. Whoever runs it from several threads hands each
// thread disjoint output columns or rows (see `paths::skinny`).
unsafe impl<T: Send + Sync> Send for Skinny<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Skinny<T> {}

/// Weight rows taken together by [`axpy`].
const KU: usize = 4;

/// `out = bias + x·w` for the row-contiguous weight layout, `K` summed in blocks of
/// [`K_BLOCK`](super::K_BLOCK) steps (each block's sums started from zero, the first
/// block's sum then added to the bias, each later one to the running total: the crate's
/// one K-sum order).
///
/// The weight is streamed once, front to back, `KU` rows at a time over their whole
/// width: a few long sequential streams, what memory and the prefetchers serve best.
/// Each `KU`-row group is applied to the output two rows at a time, the pair's `2·KU`
/// values of `x` held in registers across the sweep; the group (`KU` rows) stays in L2
/// for the pairs after the first. Measured at K = N = 4096 (f32, AVX2): cutting the
/// rows into L1-sized column blocks ran ~25% slower at M = 1 and ~35% slower at M = 8
/// (a 4 KiB-strided walk), and applying each weight register to all rows at once ran
/// 4× slower at M = 16 (output rows 16 KiB apart share L1 sets). A block's running sums
/// live in `out` for the first block and in `s.part` for later ones (the total is in
/// `out` then); the block's last group adds them to the bias or the total as it stores.
///
/// # Safety
/// Inside the backend's entry; `s` describes views valid for its `m × k`, `k × n` and
/// `m × n` extents, `out` aliasing neither input; where `k > K_BLOCK` and the output is
/// wider than [`axpy_narrow`] takes, `s.part` is writable for `m × n` elements (rows `n`
/// apart) aliasing nothing else.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
pub(crate) unsafe fn axpy<V: Vector>(s: &Skinny<V::E>) {
    debug_assert!(
        !s.add_out || (s.n <= narrow_cols::<V>() && s.k <= super::K_BLOCK),
        "add_out is for one block of the register kernel"
    );
    if s.n <= narrow_cols::<V>() {
        // SAFETY: forwarded (the caller's promise), with n ≤ 4·LANES.
        unsafe {
            match s.n.div_ceil(V::LANES) {
                0 => {}
                1 => axpy_narrow::<V, 1>(s),
                2 => axpy_narrow::<V, 2>(s),
                3 => axpy_narrow::<V, 3>(s),
                _ => axpy_narrow::<V, 4>(s),
            }
        }
        return;
    }
    if s.k == 0 {
        // An empty sum: the bias.
        // SAFETY: forwarded; the sweep reads no weight row.
        unsafe { axpy_rows::<V, 0, true, true>(s, &Target::first(s), 0) };
        return;
    }
    let mut b0 = 0;
    while b0 < s.k {
        let b1 = (b0 + super::K_BLOCK).min(s.k);
        let t = if b0 == 0 {
            Target::first(s)
        } else {
            debug_assert!(
                !s.part.is_null(),
                "a K > K_BLOCK sweep needs its partial sums"
            );
            Target::later(s)
        };
        // SAFETY: every call covers weight rows p..p+KK ≤ b1 ≤ k, all rows and all
        // columns, inside the views; the target's buffers are the caller's (above).
        unsafe {
            let mut p = b0;
            // Groups of KU steps, then single ones; the block's last group stores the
            // finished sums (`LAST`).
            let groups = (b1 - b0) / KU;
            for g in 0..groups {
                match (g == 0, p + KU == b1) {
                    (true, true) => axpy_rows::<V, KU, true, true>(s, &t, p),
                    (true, false) => axpy_rows::<V, KU, true, false>(s, &t, p),
                    (false, true) => axpy_rows::<V, KU, false, true>(s, &t, p),
                    (false, false) => axpy_rows::<V, KU, false, false>(s, &t, p),
                }
                p += KU;
            }
            while p < b1 {
                match (p == b0, p + 1 == b1) {
                    (true, true) => axpy_rows::<V, 1, true, true>(s, &t, p),
                    (true, false) => axpy_rows::<V, 1, true, false>(s, &t, p),
                    (false, true) => axpy_rows::<V, 1, false, true>(s, &t, p),
                    (false, false) => axpy_rows::<V, 1, false, false>(s, &t, p),
                }
                p += 1;
            }
        }
        b0 = b1;
    }
}

/// The widest output [`axpy_narrow`] takes (at most four vectors).
pub(crate) const fn narrow_cols<V: Vector>() -> usize {
    let v = if V::AXPY_NARROW < 4 {
        V::AXPY_NARROW
    } else {
        4
    };
    v * V::LANES
}

/// Where one block of [`axpy`]'s sweep keeps its running sums (`sums`, rows `ld` apart)
/// and what its last group adds to them before storing to `out`: the bias (a row
/// repeated, `add_ld = 0`; none if null) for the first block, the total in `out` itself
/// for later ones.
struct Target<T> {
    sums: *mut T,
    ld: isize,
    add: *const T,
    add_ld: isize,
}

impl<T> Target<T> {
    /// The first block: its sums in `out`, then the bias added.
    fn first(s: &Skinny<T>) -> Self {
        Target {
            sums: s.out,
            ld: s.ldo,
            add: s.bias,
            add_ld: 0,
        }
    }
    /// A later block: its sums in `s.part`, then the total (in `out`) added.
    fn later(s: &Skinny<T>) -> Self {
        Target {
            sums: s.part,
            ld: s.n as isize,
            add: s.out,
            add_ld: s.ldo,
        }
    }
}

/// Every row of the block's sums over weight rows `p..p+KK` (from zero when `FIRST`,
/// finished into `out` when `LAST`): row pairs, then the odd row.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn axpy_rows<V: Vector, const KK: usize, const FIRST: bool, const LAST: bool>(
    s: &Skinny<V::E>,
    t: &Target<V::E>,
    p: usize,
) {
    let mut i = 0;
    while i + 2 <= s.m {
        // SAFETY: forwarded; rows i, i+1 exist.
        unsafe { axpy_tile::<V, 2, KK, FIRST, LAST>(s, t, i, p) };
        i += 2;
    }
    if i < s.m {
        // SAFETY: forwarded; row i exists.
        unsafe { axpy_tile::<V, 1, KK, FIRST, LAST>(s, t, i, p) };
    }
}

/// Rows `i..i+R` of the block's sums += `x[i.., p..p+KK]·w[p..p+KK, :]`, the `R·KK`
/// values of `x` held broadcast in registers across the column sweep; with `LAST`, the
/// target's addend added and the result stored to `out`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn axpy_tile<
    V: Vector,
    const R: usize,
    const KK: usize,
    const FIRST: bool,
    const LAST: bool,
>(
    s: &Skinny<V::E>,
    t: &Target<V::E>,
    i: usize,
    p: usize,
) {
    let zero = V::splat(0.0);
    let mut xb = [[zero; KK]; R];
    let mut srow = [t.sums; R];
    let mut orow = [s.out; R];
    let mut arow = [t.add; R];
    let mut wrow = [s.w; KK];
    // SAFETY: every offset names an element inside the views or the target's buffers
    // (caller's bounds); a null addend is never offset.
    unsafe {
        for r in 0..R {
            for q in 0..KK {
                let xv =
                    *s.x.offset((i + r) as isize * s.rsx + (p + q) as isize * s.csx);
                xb[r][q] = V::splat(xv.to_f64());
            }
            srow[r] = t.sums.offset((i + r) as isize * t.ld);
            orow[r] = s.out.offset((i + r) as isize * s.ldo);
            if !t.add.is_null() {
                arow[r] = t.add.offset((i + r) as isize * t.add_ld);
            }
        }
        for (q, w) in wrow.iter_mut().enumerate() {
            *w = s.w.offset((p + q) as isize * s.ldw);
        }
    }
    let has_add = !t.add.is_null();
    let end = s.n;
    let mut j = 0;
    while j + V::LANES <= end {
        // SAFETY: columns j..j+LANES are inside the block and the target's rows.
        unsafe {
            let mut wv = [zero; KK];
            for q in 0..KK {
                wv[q] = V::load(wrow[q].add(j));
            }
            for r in 0..R {
                let mut acc = if FIRST { zero } else { V::load(srow[r].add(j)) };
                for q in 0..KK {
                    acc = xb[r][q].mul_add(wv[q], acc);
                }
                if LAST {
                    if has_add {
                        acc = acc + V::load(arow[r].add(j));
                    }
                    acc.store(orow[r].add(j));
                } else {
                    acc.store(srow[r].add(j));
                }
            }
        }
        j += V::LANES;
    }
    if j < end {
        let left = end - j;
        // SAFETY: the left < LANES columns j..end are inside the block and the target's
        // rows; masked lanes are neither read nor written.
        unsafe {
            let mut wv = [zero; KK];
            for q in 0..KK {
                wv[q] = V::load_part(wrow[q].add(j), left, zero);
            }
            for r in 0..R {
                let mut acc = if FIRST {
                    zero
                } else {
                    V::load_part(srow[r].add(j), left, zero)
                };
                for q in 0..KK {
                    acc = xb[r][q].mul_add(wv[q], acc);
                }
                if LAST {
                    if has_add {
                        acc = acc + V::load_part(arow[r].add(j), left, zero);
                    }
                    acc.store_part(orow[r].add(j), left);
                } else {
                    acc.store_part(srow[r].add(j), left);
                }
            }
        }
    }
}

/// [`axpy`] for an output at most [`Vector::AXPY_NARROW`] (≤ 4) vectors wide (`NV`
/// of them, the last possibly partial): each block's sums stay in registers from its
/// first step to its last, where the group-by-group sweep stored and reloaded them every
/// [`KU`] steps, a chain through memory per output vector; the total lives in `out`
/// between blocks. The same FMAs and adds in the same order as the sweep, so the same
/// bits, and up to 2.5× as fast (1×784×10; docs/PERFORMANCE.md, "`axpy_narrow`").
///
/// # Safety
/// As [`axpy`], with `s.n ≤ NV·LANES` and `NV ≥ 1` (`s.part` unused).
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn axpy_narrow<V: Vector, const NV: usize>(s: &Skinny<V::E>) {
    let mut i = 0;
    while i + 2 <= s.m {
        // SAFETY: forwarded; rows i, i+1 exist.
        unsafe { axpy_narrow_tile::<V, 2, NV>(s, i) };
        i += 2;
    }
    if i < s.m {
        // SAFETY: forwarded; row i exists.
        unsafe { axpy_narrow_tile::<V, 1, NV>(s, i) };
    }
}

/// Rows `i..i+R` of `out` = bias + `x[i.., :]·w` for the `n ≤ NV·LANES` columns, each
/// block's `R·NV` sums in registers: the first block's sums plus the bias (loaded once),
/// each later one's plus the total so far, read back from `out`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn axpy_narrow_tile<V: Vector, const R: usize, const NV: usize>(s: &Skinny<V::E>, i: usize) {
    let zero = V::splat(0.0);
    // Valid lanes of the last vector (1..=LANES): masked loads and stores only for a
    // partial one. (No closures here: they would not inherit the backend's target
    // features, and the vector loads would stop inlining.)
    let last = s.n - (NV - 1) * V::LANES;
    let partial = last < V::LANES;
    // SAFETY: every offset names an element inside the views: rows i..i+R < m, steps
    // p < k, columns below n (the last vector's loads and stores masked to them), the
    // bias (if not null) n elements (caller's bounds).
    unsafe {
        let mut acc = [[zero; NV]; R];
        let b1 = s.k.min(super::K_BLOCK);
        narrow_steps::<V, R, NV>(s, i, 0, b1, &mut acc, last, partial);
        if s.add_out {
            for (r, row) in acc.iter_mut().enumerate() {
                let o = s.out.offset((i + r) as isize * s.ldo);
                for (v, a) in row.iter_mut().enumerate() {
                    *a = *a + narrow_load::<V>(o.add(v * V::LANES), v + 1 < NV || !partial, last);
                }
            }
        } else if !s.bias.is_null() {
            for v in 0..NV {
                let b = narrow_load::<V>(s.bias.add(v * V::LANES), v + 1 < NV || !partial, last);
                for row in acc.iter_mut() {
                    row[v] = row[v] + b;
                }
            }
        }
        narrow_store::<V, R, NV>(s, i, &acc, last, partial);
        let mut b0 = b1;
        while b0 < s.k {
            let b1 = (b0 + super::K_BLOCK).min(s.k);
            let mut acc = [[zero; NV]; R];
            narrow_steps::<V, R, NV>(s, i, b0, b1, &mut acc, last, partial);
            for (r, row) in acc.iter_mut().enumerate() {
                let o = s.out.offset((i + r) as isize * s.ldo);
                for (v, a) in row.iter_mut().enumerate() {
                    *a = *a + narrow_load::<V>(o.add(v * V::LANES), v + 1 < NV || !partial, last);
                }
            }
            narrow_store::<V, R, NV>(s, i, &acc, last, partial);
            b0 = b1;
        }
    }
}

/// Steps `p0..p1` of [`axpy_narrow_tile`]'s rows onto `acc`.
///
/// # Safety
/// As [`axpy_narrow_tile`], with `p1 ≤ k`.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn narrow_steps<V: Vector, const R: usize, const NV: usize>(
    s: &Skinny<V::E>,
    i: usize,
    p0: usize,
    p1: usize,
    acc: &mut [[V; NV]; R],
    last: usize,
    partial: bool,
) {
    // SAFETY: rows i..i+R, steps p < p1 ≤ k and columns below n are inside the views
    // (the caller's bounds).
    unsafe {
        for p in p0..p1 {
            let w = s.w.offset(p as isize * s.ldw);
            let mut wv = [V::splat(0.0); NV];
            for v in 0..NV {
                wv[v] = narrow_load::<V>(w.add(v * V::LANES), v + 1 < NV || !partial, last);
            }
            for r in 0..R {
                let xv = *s.x.offset((i + r) as isize * s.rsx + p as isize * s.csx);
                let xb = V::splat(xv.to_f64());
                for v in 0..NV {
                    acc[r][v] = xb.mul_add(wv[v], acc[r][v]);
                }
            }
        }
    }
}

/// A whole vector at `p`, or (not `whole`) its first `last` lanes.
///
/// # Safety
/// `p` is readable for `LANES` elements (`whole`) or `last` of them.
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn narrow_load<V: Vector>(p: *const V::E, whole: bool, last: usize) -> V {
    // SAFETY: the caller's.
    unsafe {
        if whole {
            V::load(p)
        } else {
            V::load_part(p, last, V::splat(0.0))
        }
    }
}

/// Stores [`axpy_narrow_tile`]'s rows.
///
/// # Safety
/// As [`axpy_narrow_tile`].
#[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
#[cfg_attr(dense_kernel_unoptimized, inline(never))]
unsafe fn narrow_store<V: Vector, const R: usize, const NV: usize>(
    s: &Skinny<V::E>,
    i: usize,
    acc: &[[V; NV]; R],
    last: usize,
    partial: bool,
) {
    // SAFETY: rows i..i+R of `out` are writable for n elements (the caller's bounds).
    unsafe {
        for (r, row) in acc.iter().enumerate() {
            let o = s.out.offset((i + r) as isize * s.ldo);
            for (v, a) in row.iter().enumerate() {
                if v + 1 < NV || !partial {
                    a.store(o.add(v * V::LANES));
                } else {
                    a.store_part(o.add(v * V::LANES), last);
                }
            }
        }
    }
}
