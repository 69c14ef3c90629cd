//! The packed path's register-blocked `f32` GEMM microkernels, one per instruction set
//! (the AVX-512 one generic over its tile, `avx512::sgemm_avx512`):
//!
//! - AVX-512, 12×32 (`M = 12, V = 2`): up to 12 rows × 32 columns (24 `zmm` accumulators, two
//!   weight vectors and a broadcast: 27 of the 32 registers), or, for a tile of at most
//!   16 valid columns, its first 16 columns alone (12 accumulators, half the FMAs);
//! - AVX-512, 8×48 (`M = 8, V = 3`): up to 8 rows × 48 columns (24 accumulators, three
//!   weight vectors and a broadcast), on the 16-column thirds that hold valid columns,
//!   the last as an 8-column `ymm` tail where 8 suffice;
//! - `sgemm_6x16_avx2fma`: up to 6 rows × 16 columns (12 `ymm` accumulators of 16).
//!
//! Each computes, for one tile, `C[r][j] = bias[j] + Σ_p A[r][p]·B[p][j]` over the first
//! `kc` block and `C[r][j] = (Σ_p A[r][p]·B[p][j]) + C[r][j]` over later ones (the sum
//! so far added last, so its rows can be prefetched while the products run), and on the
//! last block applies relu in registers when asked. `B` is the packed weight panel: `kc`
//! rows of `NR` contiguous floats (zero-padded past the last column). `A` is the packed
//! input tile: `kc` groups of `MR` floats, element `(r, p)` at `p·MR + r` (packed per
//! tile by the driver, so the kernel's loads are sequential whatever the input's
//! strides, and rows `lda` apart never collide in one L1 set). Columns past `cols` are
//! neither read nor written in `C` (masked loads and stores). The K-sum runs in the same
//! order for every tile, row and thread: inside a block `p = 0, 1, …` with one fused
//! multiply-add each, then the block's sum added to the earlier blocks'.

/// Prefetches into L1 the lines holding `rows` rows of `cols` floats, `ld` apart, from
/// `c`: a tile's output, just before its kernel call on the first `kc` block, where the
/// output is too large to stay cached from one call to the next (the kernels prefetch
/// only the running sum that [`Init::Load`] reads). The lines arrive while the call's
/// products run rather than at its stores. A no-op off x86-64.
#[inline]
pub(crate) fn prefetch_rows(c: *const f32, rows: usize, cols: usize, ld: usize) {
    #[cfg(target_arch = "x86_64")]
    if cols > 0 {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for r in 0..rows {
            let row = c.wrapping_add(r * ld);
            // One address per 64-byte line from the row's first float to its last.
            let (first, last) = (row as usize >> 6, row.wrapping_add(cols - 1) as usize >> 6);
            for line in 0..=last.wrapping_sub(first) {
                // SAFETY: SSE is part of x86-64; a prefetch never faults, reads nothing
                // into registers and writes nothing, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(row.wrapping_byte_add(line << 6).cast()) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (c, rows, cols, ld);
}

/// What a tile's block sum is added to before it is stored (the accumulators always
/// start from zero: the crate's K-sum order, see [`crate::simd::K_BLOCK`]).
#[derive(Clone, Copy)]
pub(crate) enum Init {
    /// This bias row (the tile's width in readable floats, zero-padded), or nothing if
    /// null: the first block of the sum.
    Bias(*const f32),
    /// The output tile itself: the sum so far (a later block).
    Load,
}

/// One tile's operands (pointers into validated buffers; see each kernel's contract).
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub kc: usize,
    /// The packed input tile, `kc × MR` for the kernel's tile height `MR` (element
    /// `(r, p)` at `p·MR + r`); or, with
    /// `lda > 0`, the input itself: element `(r, p)` at `r·lda + p` (for the 1-row
    /// kernel, its one row at `p`).
    pub a: *const f32,
    /// 0 for a packed input tile, else the input's row stride (see `a`).
    pub lda: usize,
    pub b: *const f32,
    pub c: *mut f32,
    pub ldc: usize,
    /// Valid columns of the tile, from 1 to its width.
    pub cols: usize,
    pub init: Init,
    /// Apply relu to the result before storing (last `kc` block only).
    pub relu: bool,
}

impl Tile {
    /// Element `(r, col)` of the output tile, for `r < rows` (the kernel's `R`) and
    /// `col ≤ cols`: the in-bounds rule of every output address a kernel forms (at most
    /// one past a row's last valid column, never into the masked-off rest of a vector
    /// past the output's end), checked in debug builds.
    ///
    /// # Safety
    /// `t.c` is valid for `rows` rows of `cols` floats `ldc` apart (the kernels'
    /// contract), so the address is inside that allocation or one past a row's end.
    #[inline(always)]
    pub(crate) unsafe fn c_at(&self, r: usize, rows: usize, col: usize) -> *mut f32 {
        debug_assert!(
            r < rows && col <= self.cols,
            "output address ({r}, {col}) outside a {rows}x{} tile",
            self.cols
        );
        // SAFETY: the caller's (above).
        unsafe { self.c.add(r * self.ldc + col) }
    }

    /// Float `i` of a panel row block `p` (`p < kc`, `i < width`): the in-bounds rule
    /// of every weight address a kernel reads, checked in debug builds.
    ///
    /// # Safety
    /// `t.b` is readable for `kc × width` floats.
    #[inline(always)]
    pub(crate) unsafe fn b_at(&self, p: usize, width: usize, i: usize) -> *const f32 {
        debug_assert!(
            p < self.kc && i < width,
            "panel address ({p}, {i}) outside {}x{width}",
            self.kc
        );
        // SAFETY: the caller's (above).
        unsafe { self.b.add(p * width + i) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Init, Tile};
    use core::arch::x86_64::*;

    /// Tile width in columns.
    pub(crate) const NR: usize = 32;
    /// Tile height in rows.
    pub(crate) const MR: usize = 12;
    /// The 8×48 tile's width and height (see [`sgemm_avx512`]).
    pub(crate) const NR48: usize = 48;
    pub(crate) const MR8: usize = 8;
    /// How many steps of the K-sum ahead [`sgemm_avx512`] prefetches its panel
    /// (32 rows: 4 KiB ahead) and input tile: with `kc` of 512 or 1024 the panel streams from
    /// L2, and on a Xeon with 2 MiB of L2 this ran up to 1.10× as fast at `kc = 1024`
    /// (docs/PERFORMANCE.md, "`PREFETCH`").
    const PREFETCH: usize = 32;
    /// How many steps ahead [`sgemm_avx512`] also prefetches its panel into L2 (256
    /// rows: 32 KiB ahead of a 32-column panel, 48 KiB of a 48-column one), for panels
    /// that stream from L3 or memory: there the hardware prefetchers alone left a few-row
    /// product waiting on the weight (8×4096² on Zen 4: 73 → 100 GFLOP/s, the DRAM roof),
    /// while shapes whose weight is cached do not notice it (docs/PERFORMANCE.md,
    /// "`PREFETCH_L2`").
    const PREFETCH_L2: usize = 256;

    /// `R` rows (1..=`M`) of an `M`-row tile whose panel rows hold `V` 16-float
    /// vectors, `H` (1..=`V`) of them computed: the 12×32 tile (`M = 12, V = 2`) and
    /// the 8×48 one (`M = 8, V = 3`), both 24 accumulators at full width.
    ///
    /// - 12×32: a tile of at most 16 valid columns (a layer's
    ///   last panel when `N mod 32` is 1..=16) runs `H = 1`, 12 accumulators and half the
    ///   FMAs, reading the first 16 floats of each 32-float panel row (up to 1.29× on a
    ///   Xeon; docs/PERFORMANCE.md, "The half tile").
    /// - 8×48: for layers whose width is a multiple of 48 or just
    ///   under one (`N = 40, 48, 96`) one tile covers what the 12×32 kernel covers with a
    ///   full tile and a half one (re-reading the input for the second); each step
    ///   loads three weight vectors and broadcasts eight inputs for its 24 FMAs. A tile
    ///   whose valid columns end within 8 of a 16-column vector runs `T`: that last
    ///   vector as a 256-bit tail (`ymm` FMAs on the low half of the broadcast, 512-bit
    ///   masked loads and stores with the upper lanes masked off): on Zen 4 a 256-bit FMA
    ///   takes half the issue of a 512-bit one, and the tail ran up to 1.48× as fast as a
    ///   full vector (docs/PERFORMANCE.md, "The 8-column tail").
    ///
    /// `D` (direct): the input is read in place, `t.lda` apart, instead of from a packed
    /// tile. The sum runs in the same order for either shape (see the module docs), so
    /// both give the same bits.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `R ≤ M`; `16·H + 8·T ≤ 16·V`. `t.a` is readable for
    /// `t.kc × M` floats (`D`: for `t.kc` floats from each of `t.a + r·t.lda`, `r < R`);
    /// `t.b` for `t.kc × 16·V` floats; `t.c` readable (for `Init::Load`) and writable
    /// for `R` rows of `t.cols ≤ 16·H + 8·T` floats `t.ldc` apart, aliasing neither
    /// input; a bias pointer, if not null, is readable for `16·V` floats.
    #[target_feature(enable = "avx512f")]
    unsafe fn sgemm_avx512<
        const M: usize,
        const V: usize,
        const R: usize,
        const H: usize,
        const T: bool,
        const D: bool,
    >(
        t: &Tile,
    ) {
        const { assert!(16 * H + 8 * (T as usize) <= 16 * V && H + T as usize >= 1) };
        let nr = 16 * V;
        // Lane masks for the 16-column vectors, and (`T`) for the 8-column tail after
        // them (in a 16-lane mask: the tail goes through 512-bit masked loads and stores,
        // its upper lanes never read or written).
        let mask = |h: usize| -> __mmask16 {
            let left = t.cols.saturating_sub(16 * h).min(16);
            ((1u32 << left) - 1) as u16
        };
        let m: [__mmask16; H] = core::array::from_fn(mask);
        let mt = mask(H) & 0xff;
        let mut acc = [[_mm512_setzero_ps(); H]; R];
        let mut tail = [_mm256_setzero_ps(); R];
        match t.init {
            Init::Bias(_) => {}
            Init::Load => {
                // The sum so far is added after this block's products (below), so the
                // tile's C rows, likely not in L1, are only prefetched here: they
                // arrive while the FMAs run instead of stalling the start.
                for r in 0..R {
                    let c = t.c.wrapping_add(r * t.ldc);
                    // Prefetches never fault, whatever the address.
                    for h in 0..H + T as usize {
                        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(16 * h).cast());
                    }
                }
            }
        }
        // `D`: one pointer per input row, each walking its `kc` floats.
        let rows: [*const f32; R] = core::array::from_fn(|r| t.a.wrapping_add(r * t.lda));
        // One step of the K-sum: row p of the panel times group p of the input tile.
        // SAFETY: (every call) p < kc, so row p of the packed panel (16·V floats, of
        // which the first 16·H, and 8 more with a tail, are read) and group p of the
        // packed input tile (M floats, R ≤ M used), or (`D`) element p of input row
        // r < R, are inside them (contract).
        #[allow(clippy::undocumented_unsafe_blocks)] // the SAFETY above
        let step = |acc: &mut [[__m512; H]; R], tail: &mut [__m256; R], p: usize| unsafe {
            let b: [__m512; H] = core::array::from_fn(|h| _mm512_loadu_ps(t.b_at(p, nr, 16 * h)));
            let bt = if T {
                _mm256_loadu_ps(t.b_at(p, nr, 16 * H))
            } else {
                _mm256_setzero_ps()
            };
            for (r, (row, tr)) in acc.iter_mut().zip(tail.iter_mut()).enumerate() {
                debug_assert!(p < t.kc);
                let a = _mm512_set1_ps(if D {
                    *rows[r].add(p)
                } else {
                    *t.a.add(p * M + r)
                });
                for h in 0..H {
                    row[h] = _mm512_fmadd_ps(a, b[h], row[h]);
                }
                if T {
                    // The low half of the broadcast: the same value in 8 lanes.
                    *tr = _mm256_fmadd_ps(_mm512_castps512_ps256(a), bt, *tr);
                }
            }
        };
        // The call's steps in blocks of the crate's K-sum (`K_BLOCK`; the call starts at a
        // block's start): each block summed from zero, then added to the bias (the first
        // block of the sum) or to the sum so far in C, and stored. Inside a call the C
        // tile is then still in L1 when the next block adds to it; a kernel call per
        // block cost 7–15% at 32×512² and 512×784×40 (one thread, Xeon).
        let mut init = t.init;
        let mut p = 0;
        loop {
            let end = (p + crate::simd::K_BLOCK).min(t.kc);
            let last = end == t.kc;
            // Four steps per loop trip: the loop's own integer work then takes fewer of the
            // issue slots the FMAs need.
            while p + 4 <= end {
                // The panel rows and input groups `PREFETCH` steps on, into L1: with
                // `kc` of 512 or more the panel (64 KiB and up) streams from L2, ahead of
                // the hardware prefetchers. Prefetches never fault, whatever the address
                // (past the end of the panel they fetch lines that are not used).
                // And `PREFETCH_L2` steps on, into L2: a panel streaming from L3 or memory.
                let (bp, ap, bp2) = (
                    t.b.wrapping_add((p + PREFETCH) * nr),
                    t.a.wrapping_add((p + PREFETCH) * M),
                    t.b.wrapping_add((p + PREFETCH_L2) * nr),
                );
                for q in 0..4 {
                    for h in 0..H + T as usize {
                        _mm_prefetch::<_MM_HINT_T1>(bp2.wrapping_add(q * nr + 16 * h).cast());
                    }
                }
                for q in 0..4 {
                    for h in 0..H + T as usize {
                        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(q * nr + 16 * h).cast());
                    }
                }
                for q in 0..(4 * M).div_ceil(16) {
                    // 4 steps of the input tile: 4·M floats, three lines for M = 12, two
                    // for 8 (read in place, the rows are left to the hardware prefetchers).
                    if !D {
                        _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(q * 16).cast());
                    }
                }
                step(&mut acc, &mut tail, p);
                step(&mut acc, &mut tail, p + 1);
                step(&mut acc, &mut tail, p + 2);
                step(&mut acc, &mut tail, p + 3);
                p += 4;
            }
            while p < end {
                step(&mut acc, &mut tail, p);
                p += 1;
            }
            match init {
                Init::Load => {
                    for (r, (row, tr)) in acc.iter_mut().zip(tail.iter_mut()).enumerate() {
                        // SAFETY: row r < R of C is readable for `cols` floats; each vector
                        // h < H (and the tail) holds at least one of them (`cols > 16·(H−1)`,
                        // or `> 16·H` with a tail: the contract), so its first float is
                        // inside the row, and the masks keep the loads inside them.
                        unsafe {
                            for h in 0..H {
                                let c = t.c_at(r, R, 16 * h);
                                row[h] = _mm512_add_ps(row[h], _mm512_maskz_loadu_ps(m[h], c));
                            }
                            if T {
                                let c = t.c_at(r, R, 16 * H);
                                let old = _mm512_castps512_ps256(_mm512_maskz_loadu_ps(mt, c));
                                *tr = _mm256_add_ps(*tr, old);
                            }
                        }
                    }
                }
                Init::Bias(b) if !b.is_null() => {
                    // The block's sum, then the bias: the crate's K-sum order (the bias is
                    // added to the first block's sum, not summed into it).
                    // SAFETY: a non-null bias row holds 16·V readable floats (contract), and
                    // 16·H (+ 8 with a tail) ≤ 16·V.
                    let bv: [__m512; H] =
                        core::array::from_fn(|h| unsafe { _mm512_loadu_ps(b.add(16 * h)) });
                    let bt = if T {
                        // SAFETY: as above.
                        unsafe { _mm256_loadu_ps(b.add(16 * H)) }
                    } else {
                        _mm256_setzero_ps()
                    };
                    for (row, tr) in acc.iter_mut().zip(tail.iter_mut()) {
                        for h in 0..H {
                            row[h] = _mm512_add_ps(row[h], bv[h]);
                        }
                        if T {
                            *tr = _mm256_add_ps(*tr, bt);
                        }
                    }
                }
                Init::Bias(_) => {}
            }
            if last && t.relu {
                let z = _mm512_setzero_ps();
                for (row, tr) in acc.iter_mut().zip(tail.iter_mut()) {
                    for v in row.iter_mut() {
                        // max(NaN, 0) must stay NaN, as relu(NaN) = NaN: vmaxps returns its
                        // second operand when either is NaN, so put the value second.
                        *v = _mm512_max_ps(z, *v);
                    }
                    if T {
                        *tr = _mm256_max_ps(_mm256_setzero_ps(), *tr);
                    }
                }
            }
            for (r, (row, tr)) in acc.iter().zip(tail.iter()).enumerate() {
                // SAFETY: row r < R of C is writable for `cols` floats; masked stores
                // write nothing past them (the tail's upper 8 lanes are masked off).
                unsafe {
                    for h in 0..H {
                        _mm512_mask_storeu_ps(t.c_at(r, R, 16 * h), m[h], row[h]);
                    }
                    if T {
                        let c = t.c_at(r, R, 16 * H);
                        _mm512_mask_storeu_ps(c, mt, _mm512_castps256_ps512(*tr));
                    }
                }
            }
            if last {
                break;
            }
            acc = [[_mm512_setzero_ps(); H]; R];
            tail = [_mm256_setzero_ps(); R];
            init = Init::Load;
        }
    }

    /// One input row against `NP` (1..=4) consecutive panels of one `k` block (up to 128
    /// columns, `t.cols` of them valid), panel `q` at `t.b + q·stride`: `NP` weight
    /// streams read side by side (a one-row product is bound by reading the weight) and
    /// 2·`NP` accumulators, where a 1-row [`sgemm_avx512`] 12×32 tile reads one panel
    /// and chains two. Each output element sums in
    /// that kernel's order (bias or zero, then `p = 0, 1, …` one FMA each, the earlier
    /// blocks' sum added last), so results are its results, bit for bit.
    ///
    /// # Safety
    /// The CPU has AVX-512F. `t.a` is readable for `t.kc` floats if `t.lda > 0` (the
    /// row in place), else for `t.kc × 12` (a packed tile, row 0 used);
    /// each of the `NP` panels at `t.b + q·stride` for `t.kc × 32` floats; `t.c`
    /// readable (for `Init::Load`) and writable for `t.cols ≤ 32·NP` floats, aliasing
    /// neither input; a bias pointer, if not null, is readable for `32·NP` floats.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn sgemm_1xn_avx512<const NP: usize>(t: &Tile, stride: usize) {
        // Lane masks of the 2·NP 16-column vectors (only the valid columns).
        let mask = |v: usize| -> __mmask16 {
            let left = t.cols.saturating_sub(16 * v).min(16);
            ((1u32 << left) - 1) as u16
        };
        let masks: [[__mmask16; 2]; NP] = core::array::from_fn(|q| [mask(2 * q), mask(2 * q + 1)]);
        let mut acc = [[_mm512_setzero_ps(); 2]; NP];
        // The row in place (lda > 0: consecutive floats) or packed (every MR-th).
        let step = if t.lda > 0 { 1 } else { MR };
        // In blocks of the crate's K-sum, as the tile kernel (see there).
        let mut init = t.init;
        let mut p0 = 0;
        loop {
            let end = (p0 + crate::simd::K_BLOCK).min(t.kc);
            let last = end == t.kc;
            for p in p0..end {
                // SAFETY: p < kc: element (0, p) of the input row (in place or packed) and
                // row p of each of the NP panels are inside them (contract).
                unsafe {
                    let a = _mm512_set1_ps(*t.a.add(p * step));
                    for (q, pair) in acc.iter_mut().enumerate() {
                        // Panel q's row p: its 32 floats at `q·stride + p·NR` (`p < kc`).
                        debug_assert!(p < t.kc);
                        let b = t.b.add(q * stride + p * NR);
                        pair[0] = _mm512_fmadd_ps(a, _mm512_loadu_ps(b), pair[0]);
                        pair[1] = _mm512_fmadd_ps(a, _mm512_loadu_ps(b.add(16)), pair[1]);
                    }
                }
            }
            for (q, pair) in acc.iter_mut().enumerate() {
                let [m0, m1] = masks[q];
                // Panel q's two vectors of C: the first holds at least one valid column
                // (`cols > 32·(NP−1)`), the second only where `cols > 32·q + 16`; its address
                // is formed only then (`at`), never past the row's end.
                // SAFETY: both offsets are at most `cols` (a row of one; checked by `c_at`).
                let c0 = unsafe { t.c_at(0, 1, 32 * q) };
                // SAFETY: formed only where `cols > 32·q + 16`: at most `cols`.
                let c1 = (m1 != 0).then(|| unsafe { t.c_at(0, 1, 32 * q + 16) });
                match init {
                    Init::Load => {
                        // SAFETY: the output row is readable for `cols` floats; the masks
                        // keep every load inside them.
                        unsafe {
                            pair[0] = _mm512_add_ps(pair[0], _mm512_maskz_loadu_ps(m0, c0));
                            if let Some(c1) = c1 {
                                pair[1] = _mm512_add_ps(pair[1], _mm512_maskz_loadu_ps(m1, c1));
                            }
                        }
                    }
                    Init::Bias(b) if !b.is_null() => {
                        // The block's sum, then the bias (the crate's K-sum order).
                        // SAFETY: a non-null bias row holds 32·NP readable floats (contract).
                        unsafe {
                            pair[0] = _mm512_add_ps(pair[0], _mm512_loadu_ps(b.add(32 * q)));
                            pair[1] = _mm512_add_ps(pair[1], _mm512_loadu_ps(b.add(32 * q + 16)));
                        }
                    }
                    Init::Bias(_) => {}
                }
                if last && t.relu {
                    // As in the tile kernel: the value second, so NaN stays NaN.
                    let z = _mm512_setzero_ps();
                    pair[0] = _mm512_max_ps(z, pair[0]);
                    pair[1] = _mm512_max_ps(z, pair[1]);
                }
                // SAFETY: the output row is writable for `cols` floats; the masks keep every
                // store inside them.
                unsafe {
                    _mm512_mask_storeu_ps(c0, m0, pair[0]);
                    if let Some(c1) = c1 {
                        _mm512_mask_storeu_ps(c1, m1, pair[1]);
                    }
                }
            }
            if last {
                break;
            }
            acc = [[_mm512_setzero_ps(); 2]; NP];
            init = Init::Load;
            p0 = end;
        }
    }

    /// Runs [`sgemm_1xn_avx512`] over `t.cols.div_ceil(32)` (1..=4) panels.
    ///
    /// # Safety
    /// As [`sgemm_1xn_avx512`] with `NP` that panel count.
    pub(crate) unsafe fn run_row(t: &Tile, stride: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            match t.cols.div_ceil(NR) {
                1 => sgemm_1xn_avx512::<1>(t, stride),
                2 => sgemm_1xn_avx512::<2>(t, stride),
                3 => sgemm_1xn_avx512::<3>(t, stride),
                4 => sgemm_1xn_avx512::<4>(t, stride),
                _ => {}
            }
        }
    }

    /// Packs `M` (8 or 12) input rows for the `M`-row tile kernels: `dst[p·M + r] =
    /// rows[r][p]` for `p < kc`, 16 values of `p` at a time by an in-register transpose
    /// (for 12 rows, 12 loads of 16 floats become 16 groups of 12 with 56 shuffles, where
    /// element by element it would take 192 scalar loads and stores).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `M` is 8 or 12; every `rows[r]` is readable for `kc` floats
    /// (callers with fewer real rows repeat one: its values land in lanes the kernel does
    /// not read); `dst` is writable for `kc·M` floats and overlaps no row.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn pack<const M: usize>(rows: &[*const f32; M], kc: usize, dst: *mut f32) {
        // The transpose works on groups of four rows and 16 lanes.
        const { assert!(M == 8 || M == 12) };
        let keep = ((1u32 << M) - 1) as __mmask16;
        let mut p = 0;
        while p + 16 <= kc {
            // SAFETY: p + 16 ≤ kc: the 16 floats at rows[r] + p are readable, and the 16
            // groups at dst + (p + q)·M (M floats each, the masked stores write no
            // more) lie inside dst's kc·M.
            unsafe {
                let mut r = [_mm512_setzero_ps(); M];
                for (v, row) in r.iter_mut().zip(rows) {
                    *v = _mm512_loadu_ps(row.add(p));
                }
                // Per 128-bit lane L, u[4i + j] = rows 4i..4i+3 at column 4L + j (zeros
                // for the groups of rows past M).
                let mut u = [_mm512_setzero_ps(); 16];
                for i in 0..M / 4 {
                    let t0 = _mm512_unpacklo_ps(r[4 * i], r[4 * i + 1]);
                    let t1 = _mm512_unpackhi_ps(r[4 * i], r[4 * i + 1]);
                    let t2 = _mm512_unpacklo_ps(r[4 * i + 2], r[4 * i + 3]);
                    let t3 = _mm512_unpackhi_ps(r[4 * i + 2], r[4 * i + 3]);
                    u[4 * i] = _mm512_shuffle_ps::<0x44>(t0, t2);
                    u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t0, t2);
                    u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t1, t3);
                    u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t1, t3);
                }
                // Column 4L + j gathers lane L of u[j], u[4 + j], u[8 + j] (rows M..15
                // do not exist: zeros, never stored).
                let z = _mm512_setzero_ps();
                for j in 0..4 {
                    let x0 = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
                    let x1 = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
                    let x2 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], z);
                    let x3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], z);
                    let cols = [
                        _mm512_shuffle_f32x4::<0x88>(x0, x2),
                        _mm512_shuffle_f32x4::<0xDD>(x0, x2),
                        _mm512_shuffle_f32x4::<0x88>(x1, x3),
                        _mm512_shuffle_f32x4::<0xDD>(x1, x3),
                    ];
                    for (l, c) in cols.iter().enumerate() {
                        _mm512_mask_storeu_ps(dst.add((p + 4 * l + j) * M), keep, *c);
                    }
                }
            }
            p += 16;
        }
        while p < kc {
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: p < kc: inside row r and inside dst.
                unsafe { *dst.add(p * M + r) = *row.add(p) };
            }
            p += 1;
        }
    }

    /// Runs the `rows`-row variant (1..=12) of the 12×32 tile, on one 16-column half
    /// when `t.cols ≤ 16`.
    ///
    /// # Safety
    /// As [`sgemm_avx512`] with `M = 12, V = 2, R = rows`.
    pub(crate) unsafe fn run(rows: usize, t: &Tile) {
        // SAFETY: (every arm) forwarded contract; `cols ≤ 16` is what `H = 1` needs,
        // and `lda > 0` means the input is readable in place (`D`).
        unsafe {
            match (t.cols <= 16, t.lda > 0) {
                (true, false) => run_h::<MR, 2, 1, false, false>(rows, t),
                (false, false) => run_h::<MR, 2, 2, false, false>(rows, t),
                (true, true) => run_h::<MR, 2, 1, false, true>(rows, t),
                (false, true) => run_h::<MR, 2, 2, false, true>(rows, t),
            }
        }
    }

    /// Runs the `rows`-row variant (1..=8) of the 8×48 tile on the fewest 16-column
    /// vectors, plus an 8-column tail, that hold `t.cols` (a 40-column tile runs two
    /// vectors and a tail: on Zen 4 a 256-bit FMA takes half the issue of a 512-bit one).
    ///
    /// # Safety
    /// As [`sgemm_avx512`] with `M = 8, V = 3, R = rows`.
    pub(crate) unsafe fn run48(rows: usize, t: &Tile) {
        // SAFETY: (every arm) forwarded contract; `H` vectors and the tail cover
        // `cols ≤ 16·H + 8·T` (≤ 48), and `lda > 0` means the input is readable in
        // place (`D`).
        unsafe {
            match (t.cols.div_ceil(8), t.lda > 0) {
                (1, false) => run_h::<MR8, 3, 0, true, false>(rows, t),
                (2, false) => run_h::<MR8, 3, 1, false, false>(rows, t),
                (3, false) => run_h::<MR8, 3, 1, true, false>(rows, t),
                (4, false) => run_h::<MR8, 3, 2, false, false>(rows, t),
                (5, false) => run_h::<MR8, 3, 2, true, false>(rows, t),
                (6, false) => run_h::<MR8, 3, 3, false, false>(rows, t),
                (1, true) => run_h::<MR8, 3, 0, true, true>(rows, t),
                (2, true) => run_h::<MR8, 3, 1, false, true>(rows, t),
                (3, true) => run_h::<MR8, 3, 1, true, true>(rows, t),
                (4, true) => run_h::<MR8, 3, 2, false, true>(rows, t),
                (5, true) => run_h::<MR8, 3, 2, true, true>(rows, t),
                (6, true) => run_h::<MR8, 3, 3, false, true>(rows, t),
                _ => debug_assert!(false, "a tile of 1..=48 columns (the caller's contract)"),
            }
        }
    }

    /// [`run`] or [`run48`] for `H` of the `V` vectors (and `T`, the tail) of an
    /// `M`-row tile.
    ///
    /// # Safety
    /// As [`sgemm_avx512`] with `R = rows`.
    unsafe fn run_h<
        const M: usize,
        const V: usize,
        const H: usize,
        const T: bool,
        const D: bool,
    >(
        rows: usize,
        t: &Tile,
    ) {
        // SAFETY: forwarded contract; the arms past M are never taken (rows ≤ M).
        unsafe {
            match rows {
                12 if M >= 12 => sgemm_avx512::<M, V, 12, H, T, D>(t),
                11 if M >= 11 => sgemm_avx512::<M, V, 11, H, T, D>(t),
                10 if M >= 10 => sgemm_avx512::<M, V, 10, H, T, D>(t),
                9 if M >= 9 => sgemm_avx512::<M, V, 9, H, T, D>(t),
                8 => sgemm_avx512::<M, V, 8, H, T, D>(t),
                7 => sgemm_avx512::<M, V, 7, H, T, D>(t),
                6 => sgemm_avx512::<M, V, 6, H, T, D>(t),
                5 => sgemm_avx512::<M, V, 5, H, T, D>(t),
                4 => sgemm_avx512::<M, V, 4, H, T, D>(t),
                3 => sgemm_avx512::<M, V, 3, H, T, D>(t),
                2 => sgemm_avx512::<M, V, 2, H, T, D>(t),
                1 => sgemm_avx512::<M, V, 1, H, T, D>(t),
                _ => debug_assert!(false, "a tile of 1..=M rows (the caller's contract)"),
            }
        }
    }
}

/// The AVX2+FMA microkernel (CPUs without AVX-512).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{Init, Tile};
    use core::arch::x86_64::*;

    /// Tile width in columns.
    pub(crate) const NR: usize = 16;
    /// Tile height in rows.
    pub(crate) const MR: usize = 6;
    /// How many steps ahead [`sgemm_6x16_avx2fma`] prefetches its panel into L2 (256
    /// rows of 64 bytes: 16 KiB ahead), as the AVX-512 kernels do, for the same reason
    /// (8×4096² on Zen 4 held to AVX2+FMA: 45 → 57 GFLOP/s). Unmeasured on CPUs whose best
    /// path is AVX2+FMA (docs/PERFORMANCE.md, "`PREFETCH_L2`").
    const PREFETCH_L2: usize = 256;

    /// Lane mask for `n` (0..=8) leading lanes of a `ymm`.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    unsafe fn mask(n: usize) -> __m256i {
        // SAFETY: the caller guarantees AVX2 (these touch registers only, no memory).
        unsafe {
            let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
        }
    }

    /// `R` rows (1..=6) of the 6×16 tile.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA. `t.a` is readable for `t.kc × 6` floats (with
    /// `t.lda > 0`: for `t.kc` floats from each of `t.a + r·t.lda`, `r < R`); `t.b` for
    /// `t.kc × 16` floats; `t.c` readable (for `Init::Load`) and writable
    /// for `R` rows of `t.cols ≤ 16` floats `t.ldc` apart, aliasing neither input; a bias
    /// pointer, if not null, is readable for 16 floats.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn sgemm_6x16_avx2fma<const R: usize>(t: &Tile) {
        let full = t.cols == NR;
        // SAFETY: this function's contract includes AVX2.
        let (m0, m1) = unsafe { (mask(t.cols.min(8)), mask(t.cols.saturating_sub(8))) };
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        match t.init {
            Init::Bias(_) => {}
            Init::Load => {
                // As in the AVX-512 kernel: the sum so far is added last, its rows
                // prefetched now.
                for r in 0..R {
                    let c = t.c.wrapping_add(r * t.ldc);
                    _mm_prefetch::<_MM_HINT_T0>(c.cast());
                    _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(8).cast());
                }
            }
        }
        // In blocks of the crate's K-sum, as the AVX-512 tile kernel (see there).
        let mut init = t.init;
        let mut p0 = 0;
        loop {
            let end = (p0 + crate::simd::K_BLOCK).min(t.kc);
            let last = end == t.kc;
            if t.lda == 0 {
                for p in p0..end {
                    // The panel row (one line) `PREFETCH_L2` steps on, into L2 (a prefetch
                    // never faults, past the panel's end included).
                    _mm_prefetch::<_MM_HINT_T1>(t.b.wrapping_add((p + PREFETCH_L2) * NR).cast());
                    // SAFETY: p < kc: row p of the packed panel and group p of the packed
                    // input tile (6 floats, R ≤ 6 used) are inside them (contract).
                    unsafe {
                        let b0 = _mm256_loadu_ps(t.b_at(p, NR, 0));
                        let b1 = _mm256_loadu_ps(t.b_at(p, NR, 8));
                        for (r, row) in acc.iter_mut().enumerate() {
                            let a = _mm256_broadcast_ss(&*t.a.add(p * MR + r));
                            row[0] = _mm256_fmadd_ps(a, b0, row[0]);
                            row[1] = _mm256_fmadd_ps(a, b1, row[1]);
                        }
                    }
                }
            } else {
                // The input read in place: one pointer per row, each walking its `kc`
                // floats (for a single panel, packing would copy what is read only once).
                let rows: [*const f32; R] = core::array::from_fn(|r| t.a.wrapping_add(r * t.lda));
                for p in p0..end {
                    // The panel row (one line) `PREFETCH_L2` steps on, into L2 (a prefetch
                    // never faults, past the panel's end included).
                    _mm_prefetch::<_MM_HINT_T1>(t.b.wrapping_add((p + PREFETCH_L2) * NR).cast());
                    // SAFETY: p < kc: row p of the packed panel, and element p of input
                    // row r < R (`kc` readable floats from `a + r·lda`), are inside them
                    // (contract).
                    unsafe {
                        let b0 = _mm256_loadu_ps(t.b_at(p, NR, 0));
                        let b1 = _mm256_loadu_ps(t.b_at(p, NR, 8));
                        for (row, ar) in acc.iter_mut().zip(&rows) {
                            let a = _mm256_broadcast_ss(&*ar.add(p));
                            row[0] = _mm256_fmadd_ps(a, b0, row[0]);
                            row[1] = _mm256_fmadd_ps(a, b1, row[1]);
                        }
                    }
                }
            }
            match init {
                Init::Load => {
                    for (r, row) in acc.iter_mut().enumerate() {
                        // SAFETY: row r < R of C is readable for `cols` floats; the masks
                        // (or `full`) keep the loads inside them, and the second half's
                        // address is formed only where it holds a valid column (`cols > 8`),
                        // as the stores below do.
                        unsafe {
                            let c = t.c_at(r, R, 0);
                            let (c0, c1) = if full {
                                (_mm256_loadu_ps(c), _mm256_loadu_ps(t.c_at(r, R, 8)))
                            } else if t.cols > 8 {
                                (_mm256_loadu_ps(c), _mm256_maskload_ps(t.c_at(r, R, 8), m1))
                            } else {
                                (_mm256_maskload_ps(c, m0), _mm256_setzero_ps())
                            };
                            row[0] = _mm256_add_ps(row[0], c0);
                            row[1] = _mm256_add_ps(row[1], c1);
                        }
                    }
                }
                Init::Bias(b) if !b.is_null() => {
                    // The block's sum, then the bias (the crate's K-sum order).
                    // SAFETY: a non-null bias row holds 16 readable floats (contract).
                    let (b0, b1) = unsafe { (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))) };
                    for row in acc.iter_mut() {
                        row[0] = _mm256_add_ps(row[0], b0);
                        row[1] = _mm256_add_ps(row[1], b1);
                    }
                }
                Init::Bias(_) => {}
            }
            if last && t.relu {
                let z = _mm256_setzero_ps();
                for row in acc.iter_mut() {
                    // vmaxps returns the second operand if either is NaN: value second.
                    row[0] = _mm256_max_ps(z, row[0]);
                    row[1] = _mm256_max_ps(z, row[1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                // SAFETY: row r < R of C is writable for `cols` floats; the masked stores
                // (or `full`, or `cols ≥ 8` for the plain first half) write nothing past
                // them; with `cols ≤ 8` the second half holds no valid column and neither
                // its address is formed nor anything stored.
                unsafe {
                    let c = t.c_at(r, R, 0);
                    if full {
                        _mm256_storeu_ps(c, row[0]);
                        _mm256_storeu_ps(t.c_at(r, R, 8), row[1]);
                    } else if t.cols > 8 {
                        // vmaskmovps stores are slow on AMD cores: only the ragged half.
                        _mm256_storeu_ps(c, row[0]);
                        _mm256_maskstore_ps(t.c_at(r, R, 8), m1, row[1]);
                    } else if t.cols == 8 {
                        _mm256_storeu_ps(c, row[0]);
                    } else {
                        _mm256_maskstore_ps(c, m0, row[0]);
                    }
                }
            }
            if last {
                break;
            }
            acc = [[_mm256_setzero_ps(); 2]; R];
            init = Init::Load;
            p0 = end;
        }
    }

    /// Packs a 6-row tile of the input, k-major: group `p` (6 floats at `dst + 6p`) is
    /// column `p` of `rows`. Eight columns at a time by an in-register 8×8 transpose
    /// (rows 6 and 7 are copies of rows 4 and 5): 22 shuffles and 8 overlapping stores
    /// for 48 floats, where element by element it takes 48 scalar loads and stores.
    ///
    /// # Safety
    /// The CPU has AVX2; every `rows[r]` is readable for `kc` floats (callers with
    /// fewer real rows repeat one: its values land in lanes the kernel does not read);
    /// `dst` is writable for `kc·6 + 2` floats (the last store spills two past the
    /// tile; what it writes there is overwritten by whatever comes next) and overlaps
    /// no row.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn pack_6(rows: &[*const f32; MR], kc: usize, dst: *mut f32) {
        let mut p = 0;
        while p + 8 <= kc {
            // SAFETY: p + 8 ≤ kc: the 8 floats at rows[r] + p are readable, and the 8
            // stores at dst + (p + j)·6, 8 floats each, end at dst + (p + 7)·6 + 8 ≤
            // dst + kc·6 + 2, inside dst's kc·6 + 2 writable floats (contract).
            unsafe {
                let mut r = [_mm256_setzero_ps(); MR];
                for (v, row) in r.iter_mut().zip(rows) {
                    *v = _mm256_loadu_ps(row.add(p));
                }
                // Per 128-bit lane L: u[j] = rows 0..3 at column 4L + j, w[j] = rows 4, 5
                // (and their copies) at column 4L + j.
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let u = [
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xEE>(t0, t2),
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xEE>(t1, t3),
                ];
                let w = [
                    _mm256_shuffle_ps::<0x44>(t4, t4),
                    _mm256_shuffle_ps::<0xEE>(t4, t4),
                    _mm256_shuffle_ps::<0x44>(t5, t5),
                    _mm256_shuffle_ps::<0xEE>(t5, t5),
                ];
                // Whole 8-float stores in increasing address order: each one's last two
                // lanes (copies) spill into the next group, which the next store (or the
                // scalar tail) then overwrites; the last spills 2 floats past the tile.
                // vmaskmovps stores cost several times more on AMD cores.
                let mut g = [_mm256_setzero_ps(); 8];
                for j in 0..4 {
                    g[j] = _mm256_permute2f128_ps::<0x20>(u[j], w[j]);
                    g[4 + j] = _mm256_permute2f128_ps::<0x31>(u[j], w[j]);
                }
                for (j, v) in g.iter().enumerate() {
                    _mm256_storeu_ps(dst.add((p + j) * MR), *v);
                }
            }
            p += 8;
        }
        while p < kc {
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: p < kc: inside row r and inside dst.
                unsafe { *dst.add(p * MR + r) = *row.add(p) };
            }
            p += 1;
        }
    }

    /// Runs the `rows`-row variant (1..=6).
    ///
    /// # Safety
    /// As [`sgemm_6x16_avx2fma`] with `R = rows`.
    pub(crate) unsafe fn run(rows: usize, t: &Tile) {
        // SAFETY: forwarded contract.
        unsafe {
            match rows {
                6 => sgemm_6x16_avx2fma::<6>(t),
                5 => sgemm_6x16_avx2fma::<5>(t),
                4 => sgemm_6x16_avx2fma::<4>(t),
                3 => sgemm_6x16_avx2fma::<3>(t),
                2 => sgemm_6x16_avx2fma::<2>(t),
                1 => sgemm_6x16_avx2fma::<1>(t),
                _ => {}
            }
        }
    }
}
