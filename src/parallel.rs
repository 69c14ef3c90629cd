//! How work is split across rayon threads, and when not to split.
//!
//! Work runs on the caller's current pool (`rayon::current_num_threads`, so
//! `ThreadPool::install` and `RAYON_NUM_THREADS` apply, and a call from inside a
//! `par_iter` just adds tasks to the same pool: no deadlock, no extra threads). A call is
//! cut into at most one piece per thread and never into pieces smaller than
//! [`MIN_MACS_PER_PIECE`]; only `M` or `N` is ever split, never `K`.

use crate::{Activation, Element};
use core::ops::Range;
use rayon::prelude::*;

/// The least work (multiply-adds) worth a piece of its own: a rayon hand-off costs a few
/// microseconds, ~2·10⁵ multiply-adds at the skinny kernels' speed here; four times that
/// keeps the overhead near 5%. Under the fuzzer (`cfg(fuzzing)`, set by cargo-fuzz) a
/// few hundred, so that its small calls split across threads too.
pub(crate) const MIN_MACS_PER_PIECE: u64 = if cfg!(fuzzing) { 1 << 8 } else { 1 << 20 };

/// Pieces for `macs` multiply-adds that can be cut at most `max_pieces` ways.
pub(crate) fn pieces(macs: u64, max_pieces: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_work = usize::try_from(macs / MIN_MACS_PER_PIECE).unwrap_or(usize::MAX);
    threads.min(by_work).min(max_pieces).max(1)
}

/// Piece `p` of `pieces` over `0..len`, boundaries on multiples of `align` (the last
/// piece takes the rest): near-equal, disjoint, covering.
#[inline]
pub(crate) fn split(len: usize, pieces: usize, p: usize, align: usize) -> Range<usize> {
    let units = len.div_ceil(align);
    let start = (units * p / pieces * align).min(len);
    let end = if p + 1 == pieces {
        len
    } else {
        (units * (p + 1) / pieces * align).min(len)
    };
    start..end
}

/// Runs `f(p)` for every piece `p`, inline when there is one; the first error (of
/// pieces that fail, in no set order) is returned once every piece has finished or been
/// skipped.
#[inline]
pub(crate) fn try_for_each<E: Send>(
    pieces: usize,
    f: impl Fn(usize) -> Result<(), E> + Sync + Send,
) -> Result<(), E> {
    if pieces <= 1 {
        f(0)
    } else {
        (0..pieces).into_par_iter().try_for_each(f)
    }
}

/// Applies a row-wise activation to every row of a row-major `· × n` output, rows split
/// across threads when the call's work (`macs`) was worth splitting.
pub(crate) fn apply_rows<T: Element>(act: Activation, out: &mut [T], n: usize, macs: u64) {
    let m = out.len() / n.max(1);
    let p = pieces(macs, m);
    if p <= 1 {
        crate::simd::apply(act, out, n);
    } else {
        let rows = m.div_ceil(p);
        out.par_chunks_mut(rows * n)
            .for_each(|c| crate::simd::apply(act, c, n));
    }
}
