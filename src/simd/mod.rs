//! Vector kernels for the activation epilogue, and the run-time choice between them.
//!
//! Downstream crates build this crate for generic x86-64 (SSE2) unless they set
//! `target-cpu`, and `wide` picks its instructions at compile time. So the x86 fast
//! paths are functions compiled under `#[target_feature]` (AVX-512: `avx512f`;
//! AVX2: `avx2,fma`), written as `core::arch` register types behind one [`Vector`]
//! interface, and chosen once per process with `is_x86_feature_detected!`. The portable
//! path uses `wide`. The math bodies (`math.rs`) and the activation mapping
//! (`kernels.rs`) are written once, generic over [`Vector`], and instantiated per
//! backend.
//!
//! The choice can be forced for testing with the environment variable
//! `DENSE_KERNEL_SIMD` (`avx512`, `avx2` or `portable`), read once, at the first call;
//! a forced path the CPU lacks is ignored (and [`simd_path`] says what runs instead).
//!
//! [`Vector`]: vector::Vector

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod coeffs;
mod gemv;
#[cfg(target_arch = "x86_64")]
mod gemv_t;
mod kernels;
mod math;
mod pack;
mod portable;
pub(crate) mod sgemm;
mod vector;

use crate::Activation;
pub use gemv::Skinny;

/// The K-sum's block: every path sums `K` in blocks of this many steps at fixed offsets
/// (`0..256`, `256..512`, …), each block's partial sums started from zero (one
/// multiply-add per step, in `p` order: fused where the CPU has FMA), the first block's
/// sum then added to the bias and each later one to the running total
/// (`tests/sum_order.rs` checks every path bit for bit against this order). The rounding error then grows like
/// `γ(K_BLOCK + K/K_BLOCK)` rather than `γ(K)`: at `K = 4096` every path is within
/// Keras's (XLA's) own error on its long-sum fixtures, where a single chain per output
/// had up to 10× it (docs/ACCURACY.md). 256 is matrixmultiply's own `kc` (its GEMM sums
/// in this order too) and, for f32 sums added in f32, about the size that balances the
/// error inside the blocks against the error of adding them up at `K = 4096`.
pub(crate) const K_BLOCK: usize = 256;
use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

/// The vector instruction set an activation kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimdPath {
    /// x86-64 with AVX-512F: 16 `f32` lanes.
    Avx512,
    /// x86-64 with AVX2 and FMA: 8 `f32` lanes.
    Avx2Fma,
    /// The `wide` kernels, compiled for the build's target features.
    Portable,
}

impl SimdPath {
    /// Every path, fastest first.
    pub const ALL: [SimdPath; 3] = [SimdPath::Avx512, SimdPath::Avx2Fma, SimdPath::Portable];

    /// A short name: `"avx512"`, `"avx2+fma"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Avx512 => "avx512",
            SimdPath::Avx2Fma => "avx2+fma",
            SimdPath::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        let f = cpu_features();
        match self {
            SimdPath::Avx512 => f.avx512f && f.avx2 && f.fma,
            SimdPath::Avx2Fma => f.avx2 && f.fma,
            SimdPath::Portable => true,
        }
    }

    fn index(self) -> usize {
        match self {
            SimdPath::Avx512 => 0,
            SimdPath::Avx2Fma => 1,
            SimdPath::Portable => 2,
        }
    }

    /// Parses the `DENSE_KERNEL_SIMD` spelling.
    fn parse(s: &str) -> Option<SimdPath> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(SimdPath::Avx512),
            "avx2" | "avx2+fma" => Some(SimdPath::Avx2Fma),
            "portable" | "wide" => Some(SimdPath::Portable),
            _ => None,
        }
    }
}

impl fmt::Display for SimdPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The CPU features the kernels care about, as detected at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuFeatures {
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX2.
    pub avx2: bool,
    /// FMA3.
    pub fma: bool,
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            ("avx512f", self.avx512f),
            ("avx2", self.avx2),
            ("fma", self.fma),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        if names.is_empty() {
            f.pad("none")
        } else {
            f.pad(&names.join(" "))
        }
    }
}

/// The vector features of this CPU (detected once; `false` everywhere off x86-64).
pub fn cpu_features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CpuFeatures {
    CpuFeatures {
        avx512f: std::arch::is_x86_feature_detected!("avx512f"),
        avx2: std::arch::is_x86_feature_detected!("avx2"),
        fma: std::arch::is_x86_feature_detected!("fma"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CpuFeatures {
    CpuFeatures {
        avx512f: false,
        avx2: false,
        fma: false,
    }
}

/// This core's L2 size in bytes (CPUID leaf `0x8000_0006`, which Intel and AMD CPUs
/// both fill: ECX bits 31..16, in KiB), read once; `None` off x86-64 or where the CPU
/// (or hypervisor) does not report it. It picks the packed path's blocking, chunk width
/// and whether large outputs' rows are prefetched (`paths::packed`).
pub(crate) fn l2_bytes() -> Option<usize> {
    static L2: OnceLock<Option<usize>> = OnceLock::new();
    *L2.get_or_init(read_l2)
}

/// Whether the CPU's vendor string (CPUID leaf 0) is `GenuineIntel`, read once; `false`
/// off x86-64. It only steers which tile of the packed path's AVX-512 kernel narrow
/// layers take (`Isa::for_units` in `paths::packed`: 12×32 on Intel, 8×48 elsewhere for
/// layers of at most 192 units).
pub(crate) fn is_intel() -> bool {
    static INTEL: OnceLock<bool> = OnceLock::new();
    *INTEL.get_or_init(read_is_intel)
}

/// The L1 data cache's associativity (ways), read once: CPUID leaf 4 (Intel's cache
/// parameters: the level-1 data cache's EBX bits 31..22, plus one) or, where that
/// reports no caches, leaf `0x8000_0005` (AMD: ECX bits 23..16); `None` off x86-64 or
/// where neither reports it. It only steers whether the packed path's AVX-512 kernel
/// reads the input in place (`DIRECT_PANELS` in `paths::packed`: 12 row streams a
/// multiple of 4 KiB apart all fall in one set, which needs 12 ways).
pub(crate) fn l1d_ways() -> Option<usize> {
    static WAYS: OnceLock<Option<usize>> = OnceLock::new();
    *WAYS.get_or_init(read_l1d_ways)
}

#[cfg(target_arch = "x86_64")]
fn read_l1d_ways() -> Option<usize> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86-64 CPU; leaves 4 and 0x8000_0005 are read only
    // if the highest basic (leaf 0) or extended (leaf 0x8000_0000) leaf reaches them.
    // (`__cpuid` and `__cpuid_count` are safe functions in newer Rust, unsafe ones in
    // some this crate supports.)
    #[allow(unused_unsafe)]
    unsafe {
        if __cpuid(0).eax >= 4 {
            // Subleaves until the null cache type (a bound, should a hypervisor never
            // report one).
            for i in 0..16 {
                let r = __cpuid_count(4, i);
                let (kind, level) = (r.eax & 0x1f, (r.eax >> 5) & 0x7);
                if kind == 0 {
                    break;
                }
                if kind == 1 && level == 1 {
                    return Some((r.ebx >> 22) as usize + 1);
                }
            }
        }
        if __cpuid(0x8000_0000).eax >= 0x8000_0005 {
            let ways = ((__cpuid(0x8000_0005).ecx >> 16) & 0xff) as usize;
            if ways > 0 {
                return Some(ways);
            }
        }
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn read_l1d_ways() -> Option<usize> {
    None
}

#[cfg(target_arch = "x86_64")]
fn read_is_intel() -> bool {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86-64 CPU, and leaf 0 always does. (`__cpuid` is
    // a safe function in newer Rust, an unsafe one in some this crate supports.)
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid(0) };
    // The vendor string is EBX, EDX, ECX in that order: "Genu", "ineI", "ntel".
    (r.ebx, r.edx, r.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
}

#[cfg(not(target_arch = "x86_64"))]
fn read_is_intel() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn read_l2() -> Option<usize> {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 0x8000_0000 gives the highest
    // extended leaf, and 0x8000_0006 is read only if it is at most that. (`__cpuid` is
    // a safe function in newer Rust, an unsafe one in some this crate supports.)
    #[allow(unused_unsafe)]
    let ecx = unsafe {
        if __cpuid(0x8000_0000).eax < 0x8000_0006 {
            return None;
        }
        __cpuid(0x8000_0006).ecx
    };
    let kib = (ecx >> 16) as usize;
    (kib > 0).then_some(kib << 10)
}

#[cfg(not(target_arch = "x86_64"))]
fn read_l2() -> Option<usize> {
    None
}

/// The path `dense_forward` runs its activations on: the fastest this CPU has, unless
/// `DENSE_KERNEL_SIMD` names another available one. Chosen once per process.
///
/// ```
/// let path = dense_kernel::simd_path();
/// println!("activations run on {path} (cpu: {})", dense_kernel::cpu_features());
/// assert!(path.is_available());
/// ```
pub fn simd_path() -> SimdPath {
    static PATH: OnceLock<SimdPath> = OnceLock::new();
    *PATH.get_or_init(|| {
        let forced = std::env::var("DENSE_KERNEL_SIMD")
            .ok()
            .and_then(|s| SimdPath::parse(&s));
        match forced {
            Some(p) if p.is_available() => p,
            _ => SimdPath::ALL
                .into_iter()
                .find(|p| p.is_available())
                .unwrap_or(SimdPath::Portable),
        }
    })
}

thread_local! {
    /// How many blocks each path has processed on this thread (a diagnostic for tests
    /// that force a path: it is counted inside the path's own entry function).
    static RUNS: Cell<[u64; 3]> = const { Cell::new([0; 3]) };
}

/// Counts one block processed by `path` on this thread.
#[inline]
fn record_run(path: SimdPath) {
    RUNS.with(|r| {
        let mut v = r.get();
        v[path.index()] += 1;
        r.set(v);
    });
}

/// How many activation blocks `path` has processed on the calling thread (for tests
/// that check a forced path really ran).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn path_runs(path: SimdPath) -> u64 {
    RUNS.with(|r| r.get()[path.index()])
}

/// The element types' entry into the kernels (sealed with [`crate::Element`]).
pub trait Lanes: Sized {
    /// Applies `act` (parameters already rounded to `Self`) on `path` to rows of `cols`
    /// elements (0, or a length that does not divide the data's, means one row);
    /// `false` (and nothing done) if the CPU lacks the path.
    #[doc(hidden)]
    fn apply_on(path: SimdPath, act: Activation, data: &mut [Self], cols: usize) -> bool;

    /// `out = bias + x·w` for a skinny product on the process's path ([`simd_path`]),
    /// with the axpy kernel.
    ///
    /// # Safety
    /// `s` describes valid views for its extents, `out` aliasing neither input; for
    /// `s.k` over one `K_BLOCK` and an output wider than the register kernel,
    /// `s.part` is writable for `s.m × s.n` elements aliasing nothing else.
    #[doc(hidden)]
    unsafe fn skinny(s: &Skinny<Self>);

    /// `out = bias + x·w` for a weight whose steps are contiguous (`w(p, j)` at
    /// `w + j·ldw + p`) straight from it, where the process's path has such a kernel
    /// for `s.m` rows, `x`'s strides and `s.k ≥ 1`: the number of leading columns done
    /// (all of them, or 0 where there is no such kernel).
    ///
    /// # Safety
    /// `s` describes valid views for its extents (the weight read as above), `out`
    /// aliasing neither input.
    #[doc(hidden)]
    unsafe fn skinny_t(s: &Skinny<Self>) -> usize;

    /// The widest output the skinny kernel keeps in registers on the process's path
    /// (the widths for which [`Skinny::add_out`] may be set).
    #[doc(hidden)]
    fn skinny_narrow_cols() -> usize;

    /// `dst[p·ldd + c] = src[c·lds + p·ldp]` for `c < cols`, `p < k`: a weight's
    /// columns packed for the axpy kernel (transposed in registers where `ldp == 1`
    /// and the CPU has AVX2; values are moved, never changed).
    ///
    /// # Safety
    /// `src + c·lds + p·ldp` is readable and `dst + p·ldd + c` writable for those `c`,
    /// `p`, the two aliasing nothing in common.
    #[doc(hidden)]
    unsafe fn pack_cols(
        src: *const Self,
        lds: isize,
        ldp: isize,
        k: usize,
        cols: usize,
        dst: *mut Self,
        ldd: usize,
    );
}

impl Lanes for f32 {
    unsafe fn pack_cols(
        src: *const f32,
        lds: isize,
        ldp: isize,
        k: usize,
        cols: usize,
        dst: *mut f32,
        ldd: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if ldp == 1 && matches!(simd_path(), SimdPath::Avx512 | SimdPath::Avx2Fma) {
            // SAFETY: both paths are only returned where the CPU has avx2; the
            // bounds are the caller's promise.
            unsafe { pack::pack_cols_avx2(src, lds, k, cols, dst, ldd) };
            return;
        }
        // SAFETY: the caller's promise.
        unsafe { pack::pack_cols_scalar(src, lds, ldp, k, cols, dst, ldd) }
    }

    fn skinny_narrow_cols() -> usize {
        match simd_path() {
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => gemv::narrow_cols::<avx512::F32x16>(),
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2Fma => gemv::narrow_cols::<avx2::F32x8>(),
            _ => gemv::narrow_cols::<portable::P32>(),
        }
    }

    unsafe fn skinny_t(s: &Skinny<f32>) -> usize {
        #[cfg(target_arch = "x86_64")]
        if s.m <= gemv_t::MAX_ROWS
            && s.k >= 1
            && s.csx == 1
            && matches!(simd_path(), SimdPath::Avx512 | SimdPath::Avx2Fma)
        {
            // SAFETY: both paths are only returned where the CPU has avx2 and fma; the
            // views are the caller's promise, the row count and input stride checked.
            unsafe { gemv_t::skinny_t_f32(s) };
            return s.n;
        }
        let _ = s;
        0
    }

    unsafe fn skinny(s: &Skinny<f32>) {
        match simd_path() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_path` only returns paths this CPU has; the views are the
            // caller's promise.
            SimdPath::Avx512 => unsafe { avx512::skinny_f32(s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            SimdPath::Avx2Fma => unsafe { avx2::skinny_f32(s) },
            // SAFETY: the views are the caller's promise.
            _ => unsafe { portable::skinny_f32(s) },
        }
    }

    fn apply_on(path: SimdPath, act: Activation, data: &mut [f32], cols: usize) -> bool {
        if !path.is_available() {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        let cols = row_len(data.len(), cols);
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` checked avx512f, avx2 and fma on this CPU.
            SimdPath::Avx512 => unsafe { avx512::apply_f32(act, data, cols) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` checked avx2 and fma on this CPU.
            SimdPath::Avx2Fma => unsafe { avx2::apply_f32(act, data, cols) },
            _ => portable::apply_f32(act, data, cols),
        }
        true
    }
}

impl Lanes for f64 {
    unsafe fn pack_cols(
        src: *const f64,
        lds: isize,
        ldp: isize,
        k: usize,
        cols: usize,
        dst: *mut f64,
        ldd: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if ldp == 1 && matches!(simd_path(), SimdPath::Avx512 | SimdPath::Avx2Fma) {
            // SAFETY: both paths are only returned where the CPU has avx2; the
            // bounds are the caller's promise.
            unsafe { pack::pack_cols_avx2(src, lds, k, cols, dst, ldd) };
            return;
        }
        // SAFETY: the caller's promise.
        unsafe { pack::pack_cols_scalar(src, lds, ldp, k, cols, dst, ldd) }
    }

    fn skinny_narrow_cols() -> usize {
        match simd_path() {
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx512 => gemv::narrow_cols::<avx512::F64x8>(),
            #[cfg(target_arch = "x86_64")]
            SimdPath::Avx2Fma => gemv::narrow_cols::<avx2::F64x4>(),
            _ => gemv::narrow_cols::<portable::P64>(),
        }
    }

    unsafe fn skinny_t(_: &Skinny<f64>) -> usize {
        0
    }

    unsafe fn skinny(s: &Skinny<f64>) {
        match simd_path() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `simd_path` only returns paths this CPU has; the views are the
            // caller's promise.
            SimdPath::Avx512 => unsafe { avx512::skinny_f64(s) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            SimdPath::Avx2Fma => unsafe { avx2::skinny_f64(s) },
            // SAFETY: the views are the caller's promise.
            _ => unsafe { portable::skinny_f64(s) },
        }
    }

    fn apply_on(path: SimdPath, act: Activation, data: &mut [f64], cols: usize) -> bool {
        if !path.is_available() {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        let cols = row_len(data.len(), cols);
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` checked avx512f, avx2 and fma on this CPU.
            SimdPath::Avx512 => unsafe { avx512::apply_f64(act, data, cols) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_available` checked avx2 and fma on this CPU.
            SimdPath::Avx2Fma => unsafe { avx2::apply_f64(act, data, cols) },
            _ => portable::apply_f64(act, data, cols),
        }
        true
    }
}

/// Applies `act` in place to a row-major block whose rows have `cols` elements, on the
/// process's path ([`simd_path`]).
pub(crate) fn apply<T: crate::Element>(act: Activation, data: &mut [T], cols: usize) {
    apply_activation_on(simd_path(), act, data, cols);
}

/// Whether [`apply_tile_avx512`] applies `act` (the exp-based activations the packed
/// path's targets name: the erf gelu and sigmoid).
pub(crate) fn has_tile_epilogue(act: Activation) -> bool {
    matches!(act, Activation::Gelu | Activation::Sigmoid)
}

/// Applies `act` (parameters as `f32`) to a strided `f32` tile with the AVX-512
/// kernels, if [`has_tile_epilogue`] lists it; `false` (nothing done) otherwise. One
/// call per tile: the body's constants are set up once for all its rows.
///
/// # Safety
/// The CPU supports `avx512f`, `avx2` and `fma`; every row `r < rows` is readable and
/// writable for `cols` floats from `p + r·ld`, and nothing else accesses them meanwhile.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn apply_tile_avx512(
    act: Activation,
    p: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { avx512::apply_f32_tile(act, p, rows, cols, ld) }
}

/// Applies `act` in place to a row-major block whose rows have `cols` elements, on a
/// given path; `false` (and nothing done) if the CPU lacks it. For tests and benches
/// that compare paths; `dense_forward` uses [`simd_path`].
#[doc(hidden)]
pub fn apply_activation_on<T: crate::Element>(
    path: SimdPath,
    act: Activation,
    data: &mut [T],
    cols: usize,
) -> bool {
    if data.is_empty() || act == Activation::Linear {
        return path.is_available();
    }
    T::apply_on(path, act.params_as::<T>(), data, cols)
}

/// The row length the kernels use for `len` elements in rows of `cols`: `cols`, or the
/// whole `len` as one row where `cols` is 0 or does not divide it (`len > 0`).
fn row_len(len: usize, cols: usize) -> usize {
    if cols == 0 || !len.is_multiple_of(cols) {
        len
    } else {
        cols
    }
}

#[cfg(test)]
mod tests {
    /// The CPUID vendor check agrees with the kernel's own reading of it.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn the_vendor_matches_proc_cpuinfo() {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let vendor = info
            .lines()
            .find_map(|l| l.strip_prefix("vendor_id"))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim)
            .expect("/proc/cpuinfo names a vendor_id");
        assert_eq!(super::is_intel(), vendor == "GenuineIntel", "{vendor}");
    }

    /// The CPUID associativity agrees with the kernel's (sysfs) where it reports one.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn the_l1d_ways_match_sysfs() {
        let dir = "/sys/devices/system/cpu/cpu0/cache/index0";
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(ways)) =
            (read("level"), read("type"), read("ways_of_associativity"))
        else {
            return; // no sysfs cache description here: nothing to compare with
        };
        assert_eq!((level.trim(), kind.trim()), ("1", "Data"));
        let ways: usize = ways.trim().parse().unwrap();
        // AMD's 0xff means fully associative; sysfs then reports the line count.
        if super::l1d_ways() != Some(0xff) {
            assert_eq!(super::l1d_ways(), Some(ways));
        }
    }
}
