//! Calling the microkernels: one tile on the packing's kernel, whether this CPU has
//! them, and the lone-kernel rate for the benches.

use super::plan::*;
use super::*;

/// Runs one tile on the packing's microkernel.
///
/// # Safety
/// As the microkernels' contracts, for `rows` rows.
#[inline]
pub(super) unsafe fn tile(isa: Isa, rows: usize, t: &Tile) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: packings for AVX-512 are made only when the dispatched path is AVX-512
        // (the CPU has it); the operand contract is the caller's.
        Isa::Avx512 => unsafe { crate::simd::sgemm::avx512::run(rows, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for `Isa::Avx512` (the 8×48 packing is made only where that one
        // would be).
        Isa::Avx512N48 => unsafe { crate::simd::sgemm::avx512::run48(rows, t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2+FMA packings are made only when the CPU has both: when the
        // dispatched path is AVX2+FMA (`Isa::current`; `Isa::for_units` never picks it
        // on an AVX-512 CPU), or by this module's tests after checking the CPU; the
        // operand contract is the caller's.
        Isa::Avx2 => unsafe { crate::simd::sgemm::avx2::run(rows, t) },
        _ => {}
    }
}

/// One input row against the 1..=4 panels `t.cols` spans (the AVX-512 packing only).
///
/// # Safety
/// As `sgemm::avx512::sgemm_1xn_avx512`; the packing is `Isa::Avx512` (the CPU has it).
pub(super) unsafe fn row_tile(t: &Tile, stride: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract; AVX-512 packings exist only on CPUs with it.
    unsafe {
        crate::simd::sgemm::avx512::run_row(t, stride)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (t, stride);
}

/// Whether this CPU runs a packed microkernel (else packings are row-major copies for
/// matrixmultiply).
pub(crate) fn has_microkernels() -> bool {
    Isa::current() != Isa::None
}

/// Whether a layer of `n` units packs for the 8×48 tile on this CPU (by its width
/// alone: layers of at most 16 units on a 12-way L1d may take the 12×32 half tile
/// instead, [`Isa::for_layer`]; `dense_forward` packs those per call either way).
pub(crate) fn takes_8x48(n: usize) -> bool {
    Isa::current().for_units(n, crate::simd::is_intel()) == Isa::Avx512N48
}

/// The `k` block of [`microkernel_flops`]: short enough for the panel (256·32·4 = 32 KiB)
/// and the input tile to stay in L1 together.
#[cfg(feature = "internals")]
pub(super) const BENCH_KC: usize = 256;

/// Runs the packed path's microkernel on one full tile `reps` times, with `kc = BENCH_KC`
/// and every operand in L1 (64-byte aligned, as packed weights are), and returns the FLOPs
/// done: the kernel's own rate, for the benches to set beside the whole path's. `None`
/// on CPUs without the microkernels.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn microkernel_flops(reps: usize) -> Option<f64> {
    let isa = Isa::current();
    if isa == Isa::None {
        return None;
    }
    let (mr, nr) = isa.tile();
    let a = vec![0.5f32; BENCH_KC * mr];
    let b = vec![0.25f32; BENCH_KC * nr + 16];
    let off = b.as_ptr().align_offset(64).min(15);
    let mut c = vec![0.0f32; mr * nr];
    for _ in 0..reps {
        let t = Tile {
            kc: BENCH_KC,
            a: a.as_ptr(),
            b: b[off..].as_ptr(),
            c: c.as_mut_ptr(),
            lda: 0,
            ldc: nr,
            cols: nr,
            init: Init::Load,
            relu: false,
        };
        // SAFETY: `isa` is this CPU's; `a` holds BENCH_KC·mr floats, `b` BENCH_KC·nr from `off`, `c`
        // mr rows of nr, all separate buffers.
        unsafe { tile(isa, mr, &t) };
    }
    core::hint::black_box(&c);
    Some((2 * reps * BENCH_KC * mr * nr) as f64)
}
