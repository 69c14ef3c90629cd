//! The packed forward pass: the loop nest over column chunks, `k` blocks, row blocks,
//! panels and tiles, the split across threads, and where the epilogue runs.

use super::input::*;
use super::kernel::*;
use super::plan::*;
use super::weights::*;
use super::*;

/// The packed forward pass into the row-major `out` (`M × N`), shapes checked by the
/// caller.
///
/// # Errors
/// [`DenseError::ScratchAllocation`] if a thread's scratch buffer cannot be allocated
/// (`out` is then partly written).
pub(crate) fn run(
    input: MatRef<'_, f32>,
    packed: &PackedKernel,
    act: Activation,
    out: &mut [f32],
) -> Result<(), DenseError> {
    let (m, k, n) = (input.rows(), packed.k, packed.n);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let bias = packed.has_bias.then(|| &packed.bias[..n]);
    let elementwise = !act.is_row_wise() && act != Activation::Linear;
    let in_register_relu = act == Activation::Relu;
    let macs = (m as u64).saturating_mul(k as u64).saturating_mul(n as u64);
    if packed.isa == Isa::None || k == 0 {
        // No microkernel on this CPU (the weight was kept row-major), or nothing to sum:
        // the unpacked paths (an empty K = 0 view reads nothing).
        let len = if packed.isa == Isa::None { k * n } else { 0 };
        let kv = MatRef::from_slice(&packed.body()[..len], k, n)?;
        return crate::paths::run(crate::paths::ForwardPath::Auto, input, kv, bias, act, out);
    }
    if macs <= TINY_MACS && !packed.small.is_empty() {
        // Tiny: the unpacked paths on the row-major copy (bitwise their results).
        let kv = MatRef::from_slice(&packed.small, k, n)?;
        return crate::paths::run(crate::paths::ForwardPath::Auto, input, kv, bias, act, out);
    }
    let (mr, nr) = packed.isa.tile();
    let panels = n.div_ceil(nr);
    // Split whole row tiles if there are at least as many rows as columns, else whole
    // panels (the operand each piece re-reads is the smaller one); see `splits_by_rows`.
    let by_rows = splits_by_rows(packed.isa, m, n, rayon::current_num_threads());
    let pieces = if by_rows {
        parallel::pieces(macs, m.div_ceil(mr))
    } else {
        parallel::pieces(macs, panels)
    };
    let shared = SharedOut::new(out, m, n);
    parallel::try_for_each(pieces, |p| {
        let (rows, cols) = if by_rows {
            (parallel::split(m, pieces, p, mr), 0..n)
        } else {
            (0..m, parallel::split(n, pieces, p, nr))
        };
        if rows.is_empty() || cols.is_empty() {
            return Ok(());
        }
        // SAFETY: `split` gives the pieces disjoint ranges of rows (or of columns).
        let mut block = unsafe { shared.block(rows, cols) };
        piece(
            input,
            packed,
            act,
            in_register_relu,
            elementwise,
            pieces > 1 && !by_rows,
            &mut block,
        )
    })?;
    if act.is_row_wise() {
        parallel::apply_rows(act, out, n, macs);
    }
    Ok(())
}

/// Whether a call of `m × n` outputs on `isa`'s kernel, on `threads` threads, is split
/// by row tiles (each piece reading the whole weight) rather than by panels (each
/// reading the whole input): where `m ≥ n`, and also where whole row tiles share out
/// more evenly than whole panels (the slowest piece's share of tiles against of
/// panels). A layer of three 48-column panels split two ways gave one thread one panel
/// and the other two: by rows it ran up to 1.72× as fast on two threads of Zen 5; where
/// both split as evenly, by panels stays, having measured faster (docs/PERFORMANCE.md,
/// "`splits_by_rows`").
pub(super) fn splits_by_rows(isa: Isa, m: usize, n: usize, threads: usize) -> bool {
    let (mr, nr) = isa.tile();
    // The speed-up a split into whole units allows: units over the largest piece.
    let speedup =
        |units: usize| units as f64 / units.div_ceil(threads.clamp(1, units.max(1))) as f64;
    m >= n || speedup(m.div_ceil(mr)) > speedup(n.div_ceil(nr))
}

/// One thread's block, in the module's loop order: for each column chunk (`NC`) and
/// `k` block (≤ `KC`), each row block (≤ `MC` rows, or the whole piece: [`block_rows`])
/// is packed into row tiles (`kc × MR`
/// each, k-major) in this thread's scratch buffer (up to 144 KiB), then every weight panel of the chunk
/// (`kc × NR`, streamed from L2) meets every row tile. After the last `k`
/// block, the element-wise epilogue runs on the row block's `mc × nc` output, just
/// written and still in L2.
pub(super) fn piece(
    input: MatRef<'_, f32>,
    packed: &PackedKernel,
    act: Activation,
    in_register_relu: bool,
    elementwise: bool,
    shared_rows: bool,
    block: &mut Block<'_, f32>,
) -> Result<(), DenseError> {
    let (k, isa) = (packed.k, packed.isa);
    // `run` took K = 0 (the bias) and empty outputs elsewhere: every view here is
    // non-empty, so each offset below names an element.
    debug_assert!(k > 0 && !block.rows.is_empty() && !block.cols.is_empty());
    let (mr, nr) = isa.tile();
    let (rows, cols) = (block.rows.clone(), block.cols.clone());
    let ld = block.ld();
    let base = block.as_mut_ptr();
    let body = packed.body();
    let panels = packed.n.div_ceil(nr);
    // One row alone runs the 1-row, 4-panel kernel: four weight streams at once, where
    // a 1-row tile reads one panel at a time (memory-bound; relu on Zen 4, alternating
    // runs: 1×1024² 28 → 36 GFLOP/s, 1×4096² 8.5 → 10.9).
    let row4 = isa == Isa::Avx512 && rows.len() == 1;
    // A piece a few panels wide meets each input tile a few times, and packing it costs
    // about what those products do: the kernels then read the input in place. The AVX2+FMA
    // kernel (6 row streams) for one panel (on Zen 4 the packing was a quarter of
    // 512×784×10); the 8-row AVX-512 kernel for up to `DIRECT_PANELS` (8 rows fit Zen
    // 4's 8 ways even 4 KiB apart); the 12-row one for up to `DIRECT_PANELS` where the L1d
    // has 12 ways or more, enough for 12 rows a multiple of 4 KiB apart, which all fall
    // in one set, or, on a smaller L1d, where fewer than half its ways hold the rows
    // that share a set (`rows_per_l1_set`; Zen 4's 8 ways, AVX-512 packings, one
    // process: rows 1 KiB apart, 3 to a set, 64×256×40 1.16–1.17×; 3136 bytes,
    // 128×784×256 1.02×; 2 KiB, 6 to a set, 256×512×100 0.85×; 4 KiB, all 12 in one,
    // 1024×1024×10 0.83×), and for wider pieces whose input sits in L2, whose rows
    // are not 4 KiB apart and whose sum is at least `DIRECT_WIDE_MIN_K` long
    // (`reads_in_place`).
    let (rs, cs) = (input.row_stride(), input.col_stride());
    // A single row (`row4`) is read in place wherever its elements are consecutive,
    // rather than packed as a 12-row tile of copies: relu, one thread, Zen 4, both
    // alternated in one process (medians of 15 rounds), 1×784×256 1.20×, 1×512×320
    // 1.19×, 1×64×320 and 1×64×1280 1.13×, 1×1024² and 1×300×1000 1.11×, 1×16×1280
    // 1.05×, 1×4096² 1.05× (the same values in the same order: the same bits).
    let direct = if row4 {
        cs == 1 && rs > 0
    } else {
        reads_in_place(packed, rows.len(), cols.len(), rs, cs, shared_rows)
    }
    .then(|| input.data());
    // The input block buffer, as much of this thread's scratch as this piece needs
    // (`input_block_floats`; none where the kernels read the input in place).
    let need = if direct.is_some() {
        0
    } else {
        input_block_floats(packed, rows.len())
    };
    let mut run = |a_block: &mut [MaybeUninit<f32>]| {
        // Whole panels per chunk (the 8×48 kernel's 48 columns do not divide `NC`), so
        // that every chunk, like every piece, starts on a panel.
        let nc = (packed.nc / nr).max(1) * nr;
        // Gelu and sigmoid on output rows a multiple of 8 KiB apart run tile by tile
        // (`epilogue_per_tile`), each tile's just after the next tile's products.
        let per_tile = elementwise && !in_register_relu && epilogue_per_tile(isa, act, ld);
        let act32 = act.params_as::<f32>();
        let prefetch_out = matches!(isa, Isa::Avx512 | Isa::Avx512N48)
            && prefetches_output(
                rows.len()
                    .saturating_mul(cols.len())
                    .saturating_mul(core::mem::size_of::<f32>()),
                ld.saturating_mul(core::mem::size_of::<f32>()),
                packed.l2_bytes,
            );
        let apply_tile = |(i, h, j, w): (usize, usize, usize, usize)| {
            // SAFETY: `per_tile` holds only for the AVX-512 kernels, which run only where
            // the CPU has AVX-512 (`Isa::current`); the tile (rows i..i+h, columns j..j+w,
            // as the kernel call that wrote it) lies inside this piece's block, `ld` apart,
            // and no other reference to those elements is live while this runs.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                let done = crate::simd::apply_tile_avx512(
                    act32,
                    base.add((i - rows.start) * ld + (j - cols.start)),
                    h,
                    w,
                    ld,
                );
                debug_assert!(done, "{act} has no tile epilogue");
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (i, h, j, w, act32);
        };
        let mut c0 = cols.start;
        while c0 < cols.end {
            let c1 = (c0 + nc).min(cols.end);
            for ks in k_blocks(k, packed.kc_max) {
                let (k0, kc) = (ks.start, ks.len());
                let (first, last) = (k0 == 0, k0 + kc == k);
                let blocks = rows.len().div_ceil(block_rows(isa, rows.len(), packed.mc));
                for rb in 0..blocks {
                    let rr = part(rows.len(), blocks, rb);
                    let (r0, r1) = (rows.start + rr.start, rows.start + rr.end);
                    // At most `block_rows` rows: at most mc / mr tiles of ≤ mr rows each
                    // (mc a multiple of mr), or, on the 12×32 kernel, ≤ MC_ONE / 12 tiles.
                    let tiles = (r1 - r0).div_ceil(mr);
                    debug_assert!(
                        direct.is_some() || tiles * mr * kc <= a_block.len() - PACK_SLACK
                    );
                    if direct.is_none() {
                        pack_input(isa, input, r0..r1, tiles, k0..k0 + kc, mr, a_block);
                    }
                    let mut pending: Option<(usize, usize, usize, usize)> = None;
                    let mut j = c0;
                    while j < c1 {
                        // A single row takes up to four panels per kernel call (`row4`).
                        let w = if row4 {
                            (4 * nr).min(c1 - j)
                        } else {
                            nr.min(c1 - j)
                        };
                        let panel = j / nr;
                        // SAFETY: j < N, so panel `j / nr` exists, and its rows k0..k0+kc
                        // (k0 + kc ≤ K) of this k block are inside the packed body: they
                        // start at `panel_offset` and hold kc·nr floats, and the blocks up
                        // to and including this one hold (k0 + kc)·panels·nr ≤ K·panels·nr.
                        // Column chunks are whole panels and pieces start at multiples of
                        // nr, so j is a multiple of nr and the tile is the panel's first `w`
                        // columns.
                        let b =
                            unsafe { body.as_ptr().add(panel_offset(k0, kc, panel, panels, nr)) };
                        let bias = if packed.has_bias {
                            // SAFETY: the padded bias holds `panels·nr` floats.
                            unsafe { packed.bias.as_ptr().add(panel * nr) }
                        } else {
                            core::ptr::null()
                        };
                        for ti in 0..tiles {
                            let tr = part(r1 - r0, tiles, ti);
                            let (i, h) = (r0 + tr.start, tr.len());
                            if first && prefetch_out {
                                // The tile's output, not cached since the last call (later
                                // `k` blocks' kernels prefetch the running sum themselves).
                                crate::simd::sgemm::prefetch_rows(
                                    base.wrapping_add((i - rows.start) * ld + (j - cols.start)),
                                    h,
                                    w,
                                    ld,
                                );
                            }
                            // SAFETY: row tile `ti` (rows i..i+h, h ≤ mr) was packed at
                            // `ti·mr·kc` in `a_block` (kc·mr floats, inside the buffer:
                            // `pack_input` wrote them through bounds-checked slices of it,
                            // which `input_block_floats` sized), and its rows < h, all the
                            // kernel reads, were written there; or, `direct`, the kernel
                            // reads input rows i..i+h (< M) at columns k0..k0+kc (≤ K) in
                            // place: unit column stride, so element (i + r, k0 + p) is at
                            // (i + r)·rs + k0 + p, inside the validated view's slice; the
                            // output tile (rows i..i+h, columns j..j+w) lies inside this
                            // piece's block (`base` is its first element; rows and columns
                            // relative to it), which no other piece touches. The kernels
                            // sum the call's steps in blocks of the crate's K-sum
                            // (`K_BLOCK`), which start at multiples of it in K as this
                            // `k` block does (`k_blocks`, asserted here).
                            #[allow(clippy::undocumented_unsafe_blocks)] // the SAFETY above
                            unsafe {
                                debug_assert!(k0.is_multiple_of(K_BLOCK));
                                let t = Tile {
                                    kc,
                                    a: match direct {
                                        Some(x) => x.as_ptr().add(i * rs + k0),
                                        None => a_block.as_ptr().add(ti * mr * kc).cast::<f32>(),
                                    },
                                    lda: if direct.is_some() { rs } else { 0 },
                                    b,
                                    c: base.add((i - rows.start) * ld + (j - cols.start)),
                                    ldc: ld,
                                    cols: w,
                                    init: if first { Init::Bias(bias) } else { Init::Load },
                                    relu: last && in_register_relu,
                                };
                                if row4 {
                                    // (As above, for the w ≤ 4·nr columns: they span the
                                    // w.div_ceil(nr) panels from `panel`, kc·nr floats
                                    // apart in this k block, and the padded bias holds
                                    // as many panels' floats from `panel·nr`.)
                                    row_tile(&t, kc * nr);
                                } else {
                                    tile(isa, h, &t);
                                }
                            }
                            if per_tile && last {
                                // The tile before this one (its output final), while this
                                // one's products are still in flight.
                                if let Some(prev) = pending.replace((i, h, j, w)) {
                                    apply_tile(prev);
                                }
                            }
                        }
                        j += w;
                    }
                    if let Some(prev) = pending.take() {
                        apply_tile(prev);
                    }
                    if last && elementwise && !in_register_relu && !per_tile {
                        // The mc × nc block just finished is still in L2.
                        // SAFETY: rows r0..r1 and columns c0..c1 lie inside this piece's
                        // block; the sub-block is used alone while it lives.
                        let mut sub = unsafe { block.sub(r0..r1, c0..c1) };
                        sub.apply_elementwise(act);
                    }
                }
            }
            c0 = c1;
        }
    };
    if need == 0 {
        run(&mut []);
        Ok(())
    } else {
        debug_assert!(need <= A_BLOCK);
        crate::paths::scratch::with_buffer::<f32, _>(need + PACK_SLACK, INPUT_BLOCK_FLOATS, run)
    }
}

/// Floats of packed input a piece of `rows` rows needs at most: its tallest row
/// block's tiles ([`block_rows`]), `mr` rows each, by its longest `k` block
/// ([`k_blocks`]). At most [`A_BLOCK`].
pub(super) fn input_block_floats(packed: &PackedKernel, rows: usize) -> usize {
    let mr = packed.isa.tile().0;
    let blocks = rows.div_ceil(block_rows(packed.isa, rows, packed.mc).max(1));
    // `part` makes the first block the tallest.
    let block = part(rows, blocks.max(1), 0).len();
    let kc = k_blocks(packed.k, packed.kc_max)
        .map(|b| b.len())
        .max()
        .unwrap_or(0);
    block.div_ceil(mr) * mr * kc
}

/// Whether a piece writing `out_bytes` of output, its rows `ld_bytes` apart, prefetches
/// each tile's output rows just before the tile's first kernel call
/// ([`crate::simd::sgemm::prefetch_rows`]; the kernels prefetch the running sum of
/// later `k` blocks themselves): where the output is larger than the L2 (`l2` bytes,
/// 1 MiB where unknown), so that its lines come from L3 or memory, and its rows are a
/// multiple of 4 KiB apart, so that a tile's rows all fall in one L1 set: the tiles'
/// stores otherwise found their lines in L3 or memory. Up to 1.10× as fast on Zen 5 there;
/// nothing or a loss where rows are not so aligned or the output fits in the L2. Only the
/// AVX-512 kernels take it: the AVX2+FMA kernel measured no gain (docs/PERFORMANCE.md,
/// "`prefetches_output`").
pub(super) fn prefetches_output(out_bytes: usize, ld_bytes: usize, l2: usize) -> bool {
    out_bytes > if l2 == 0 { 1 << 20 } else { l2 } && ld_bytes.is_multiple_of(4096)
}

/// Output rows this many bytes apart, or a multiple of it, take the tile-by-tile
/// epilogue ([`epilogue_per_tile`]).
pub(super) const TILE_EPILOGUE_STRIDE: usize = 8 << 10;

/// Whether `piece` applies `act` tile by tile, each tile's outputs just after the next
/// tile's kernel call (still in L1 or L2, and overlapping that call's tail), rather
/// than on the whole `mc × nc` block after its last tile: for the AVX-512 kernels,
/// the activations [`crate::simd::has_tile_epilogue`] lists (gelu, sigmoid), and
/// output rows a multiple of 8 KiB apart (`N` a multiple of 2048). There the block's
/// 24 rows of 4 KiB share few L2 sets (a 1 MiB, 16-way L2 maps addresses 64 KiB apart
/// to one set: rows 16 KiB apart put 6 of the block's rows in each set the block
/// touches, beside the weight slice streaming through), and the block pass found them
/// evicted. Up to 1.10× as fast on Zen 5 where rows are so aligned, nothing or a little
/// loss elsewhere (docs/PERFORMANCE.md, "`epilogue_per_tile`").
pub(super) fn epilogue_per_tile(isa: Isa, act: Activation, ld: usize) -> bool {
    let avx512 = {
        #[cfg(target_arch = "x86_64")]
        {
            matches!(isa, Isa::Avx512 | Isa::Avx512N48)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = isa;
            false
        }
    };
    avx512
        && crate::simd::has_tile_epilogue(act)
        && ld
            .checked_mul(core::mem::size_of::<f32>())
            .is_some_and(|b| b.is_multiple_of(TILE_EPILOGUE_STRIDE))
}
