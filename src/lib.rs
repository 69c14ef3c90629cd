//! # dense-kernel
//!
//! The neural-network Dense (fully connected) layer's forward pass on the CPU,
//! `y = act(x · W + b)`, as one call: Keras's `Dense`, PyTorch's `nn.Linear`.
//!
//! - [`dense_forward`] / [`dense_forward_into`] over `f32` and `f64` ([`Element`]).
//! - Inputs are [`MatRef`] views: row-major, strided or transposed ([`MatRef::t`]), so a
//!   Keras `(in, units)` kernel and a PyTorch `(units, in)` weight both go in without a
//!   copy.
//! - The path is chosen from the shape: tiny problems run inline, small batches (GEMV,
//!   `M ≤ 16`) stream the weight once through our own kernels for both weight layouts,
//!   the rest runs matrixmultiply's blocked GEMM in column chunks with the bias fused
//!   (pre-filled, `β = 1`) and the activation applied to each chunk while it is hot.
//! - Work is split over `M` or `N` (never `K`) on the caller's rayon pool, so results
//!   are bitwise the same for any thread count.
//! - Every shape-keeping Keras 3 activation ([`Activation`]), with Keras's definitions,
//!   names ([`std::str::FromStr`]) and defaults.
//! - Bad input is an error ([`DenseError`]), never a panic.
//! - A weight used many times can be packed once ([`PackedKernel`]) for the crate's own
//!   AVX-512 or AVX2+FMA microkernels ([`dense_forward_packed`], `f32`).
//! - The backward pass: [`dense_forward_train`] keeps the pre-activation,
//!   [`dense_backward`] gives `dL/dz`, `dL/dx`, `dL/dW`, `dL/db`.
//! - [`layer`]: Keras's `Dense` with its parameters, initializers, regularizers and
//!   constraints, the `Activation` and `Dropout` layers, `Sequential`, Keras 3's
//!   `summary()`, and training: `compile` with Keras's losses and optimizers,
//!   `train_on_batch`, `fit`, `evaluate`.
//!
//! ```
//! use dense_kernel::{dense_forward, Activation, MatRef};
//!
//! // A batch of 2 inputs with 3 features, a layer of 2 units.
//! let x = [0.5f32, -1.0, 2.0,
//!          1.5, 0.0, -0.5];
//! let w = [0.1f32, 0.2,      // kernel (in = 3, units = 2), Keras layout
//!          0.3, 0.4,
//!          0.5, 0.6];
//! let b = [0.0f32, 0.1];
//! let act: Activation = "sigmoid".parse()?;
//! let y = dense_forward(MatRef::from_slice(&x, 2, 3)?, MatRef::from_slice(&w, 3, 2)?, Some(&b), act)?;
//! assert_eq!((y.rows(), y.cols()), (2, 2));
//! let z00 = 0.5f32 * 0.1 - 1.0 * 0.3 + 2.0 * 0.5;
//! assert!((y.get(0, 0).unwrap() - 1.0 / (1.0 + (-z00).exp())).abs() < 1e-6);
//! # Ok::<(), dense_kernel::DenseError>(())
//! ```
//!
//! ## Accuracy
//! The only rounding that grows with the problem is the GEMM's K-sum, which every path
//! sums in the same blocked order (blocks of 256 steps, each from zero, added in turn
//! onto the bias): each pre-activation is within `γ(K+1)·(Σ|x·w| + |b|)` of the exact
//! value (`γ(n) = n·u/(1 − n·u)`, `u` the unit roundoff), and in practice within
//! Keras's own error at `K = 4096` (docs/ACCURACY.md). Activations run in vector kernels
//! picked at run time for the CPU ([`simd_path`]: AVX-512, AVX2+FMA or portable), each
//! within a documented number of ulps of the exact value (see [`Activation`] for the
//! bounds, special values and the few deliberate departures from Keras).
//! [`reference`](mod@reference) holds the naive yardstick and the checks the tests use.
//!
//! ## Stack and memory
//! A call needs little of its caller's stack: every public entry point, layer API
//! included, runs on a thread of 32 KiB in an optimised build (16 KiB measured) and 64
//! KiB unoptimised, alone or as the workers of a rayon pool of such threads
//! (`tests/small_stack.rs`). Buffers go on the heap: the packed path's input block and
//! the skinny path's partial sums live in one buffer per thread and element type,
//! allocated on the thread's first use (144 KiB for `f32` packed calls) and kept until
//! the thread exits, so a prepared call allocates nothing after its first on a thread
//! (buffers over 4 MiB are freed after the call). Every size is checked and every
//! allocation fallible: a shape too large to hold is a [`DenseError`], never a panic or
//! an abort.

#![warn(missing_docs)]

mod activation;
#[cfg(feature = "ndarray")]
mod array;
mod backward;
mod element;
mod error;
mod forward;
pub mod layer;
mod matrix;
mod parallel;
mod paths;
pub mod reference;
mod simd;

pub use activation::{Activation, SELU_ALPHA, SELU_SCALE};
#[cfg(feature = "ndarray")]
pub use array::dense_forward_array;
pub use backward::{dense_backward, dense_forward_train, Gradients};
pub use element::Element;
pub use error::DenseError;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use forward::dense_forward_into_on;
pub use forward::{dense_forward, dense_forward_into, dense_forward_packed};
pub use matrix::{Mat, MatMut, MatRef};
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use paths::packed::microkernel_flops;
pub use paths::packed::PackedKernel;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use paths::ForwardPath;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use simd::{apply_activation_on, path_runs};
pub use simd::{cpu_features, simd_path, CpuFeatures, SimdPath};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
