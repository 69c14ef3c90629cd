//! The sealed [`Element`] trait: the two float types the kernel computes in, and the glue
//! from each to its GEMM.

use std::fmt::{Debug, Display};

/// A float type the kernel computes in: `f32` or `f64`.
///
/// Sealed (its supertrait `GemmOps` is not nameable outside the crate): the GEMM and
/// the vector kernels exist for exactly these two types.
pub trait Element:
    num_traits::Float
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + crate::paths::gemm::GemmOps
    + crate::simd::Lanes
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Exact widening to `f64` (both types convert without rounding).
    fn widen(self) -> f64;

    /// Rounds an `f64` to the nearest value of this type (overflowing to ±∞).
    fn narrow(x: f64) -> Self;

    /// The slice as `f32`s if this type is `f32` (the packed path is `f32`-only).
    #[doc(hidden)]
    fn as_f32s(s: &[Self]) -> Option<&[f32]>;

    /// The mutable slice as `f32`s if this type is `f32`.
    #[doc(hidden)]
    fn as_f32s_mut(s: &mut [Self]) -> Option<&mut [f32]>;

    /// `f32` values as this type: the same vector for `f32` (no copy), widened for `f64`.
    #[doc(hidden)]
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self>;

    /// `f64` values as this type: the same vector for `f64`, `None` for `f32` (which would
    /// have to round).
    #[doc(hidden)]
    fn from_f64_vec(v: Vec<f64>) -> Option<Vec<Self>>;
}

impl Element for f32 {
    const NAME: &'static str = "f32";

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn widen(self) -> f64 {
        f64::from(self)
    }

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn narrow(x: f64) -> Self {
        x as f32
    }

    fn as_f32s(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }

    fn as_f32s_mut(s: &mut [f32]) -> Option<&mut [f32]> {
        Some(s)
    }

    fn from_f32_vec(v: Vec<f32>) -> Vec<f32> {
        v
    }

    fn from_f64_vec(_: Vec<f64>) -> Option<Vec<f32>> {
        None
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn widen(self) -> f64 {
        self
    }

    #[cfg_attr(not(dense_kernel_unoptimized), inline(always))]
    #[cfg_attr(dense_kernel_unoptimized, inline(never))]
    fn narrow(x: f64) -> Self {
        x
    }

    fn as_f32s(_: &[f64]) -> Option<&[f32]> {
        None
    }

    fn as_f32s_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }

    fn from_f32_vec(v: Vec<f32>) -> Vec<f64> {
        v.into_iter().map(f64::from).collect()
    }

    fn from_f64_vec(v: Vec<f64>) -> Option<Vec<f64>> {
        Some(v)
    }
}
