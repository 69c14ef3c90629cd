//! The packed weight: [`PackedKernel`], its panels and how a weight in any layout is
//! copied into them.

use super::plan::*;
use super::*;

/// A Dense layer's `f32` weight (and bias) packed once for the crate's microkernels:
/// build it with [`PackedKernel::new`], then call
/// [`dense_forward_packed`](crate::dense_forward_packed) as often as needed, from any
/// number of threads (`Send + Sync`, read-only).
///
/// Packing copies the weight once (`K·N` floats, rounded up to whole panels). On a CPU
/// with neither AVX-512 nor AVX2+FMA it keeps a plain row-major copy and the forward
/// pass runs matrixmultiply. `f64` has no packed path: use [`dense_forward`](crate::dense_forward).
///
/// ```
/// use dense_kernel::{dense_forward_packed, Activation, MatMut, MatRef, PackedKernel};
/// let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, -1.0]; // (in = 3, units = 2), Keras layout
/// let packed = PackedKernel::new(MatRef::from_slice(&w, 3, 2)?, Some(&[0.5, -10.0]))?;
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut y = [0.0f32; 4];
/// dense_forward_packed(MatRef::from_slice(&x, 2, 3)?, &packed, Activation::Relu,
///                      MatMut::from_slice(&mut y, 2, 2)?)?;
/// assert_eq!(y, [4.5, 0.0, 10.5, 0.0]);
/// # Ok::<(), dense_kernel::DenseError>(())
/// ```
#[derive(Debug)]
pub struct PackedKernel {
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) isa: Isa,
    /// Panels (or, for `Isa::None`, the row-major `K × N` weight), starting at `start`.
    pub(super) data: Vec<f32>,
    pub(super) start: usize,
    /// The bias, zero-padded to whole panels; empty without a bias.
    pub(super) bias: Vec<f32>,
    /// The weight row-major (`K × N`) for tiny calls, when `K·N ≤ TINY_MACS`; else
    /// empty.
    pub(super) small: Vec<f32>,
    pub(super) has_bias: bool,
    /// Columns per chunk ([`chunk_cols`], from this CPU's L2 size).
    pub(super) nc: usize,
    /// The longest `k` block and the rows per input block ([`blocking`]). The packing's
    /// `k` blocks follow `kc_max`, so it is fixed at pack time.
    pub(super) kc_max: usize,
    pub(super) mc: usize,
    /// Whether the AVX-512 kernel may read the input in place ([`DIRECT_PANELS`]; the
    /// L1d's associativity is known), and that associativity.
    pub(super) direct_avx512: bool,
    pub(super) l1d_ways: usize,
    /// Wider pieces read in place too when their input fits in this many bytes (half
    /// the L2; 0 where its size is unknown) and its rows are not a multiple of 4 KiB
    /// apart ([`DIRECT_PANELS`]).
    pub(super) direct_input_bytes: usize,
    /// This CPU's L2 in bytes (0 where unknown), for [`prefetches_output`].
    pub(super) l2_bytes: usize,
    /// Whether this is an Intel CPU, where wide pieces of 12-row tiles read their input
    /// in place ([`reads_in_place`]).
    pub(super) intel: bool,
}

/// A copy with its own buffer, its panels 64-byte aligned in it as in the original (a
/// derived `clone` kept the original's offset, so the copy's panels started wherever the
/// new allocation put them).
impl Clone for PackedKernel {
    fn clone(&self) -> Self {
        let body = self.body();
        let mut data = Vec::with_capacity(body.len() + 16);
        data.resize(body.len() + 16, 0.0);
        let start = data.as_ptr().align_offset(64).min(15);
        data[start..start + body.len()].copy_from_slice(body);
        data.truncate(start + body.len());
        PackedKernel {
            data,
            start,
            bias: self.bias.clone(),
            small: self.small.clone(),
            ..*self
        }
    }
}

impl PackedKernel {
    /// Packs `kernel` (`(in, units)`; a PyTorch `(units, in)` weight as its `.t()` view,
    /// any strides) and `bias` (`units` values, or `None`).
    ///
    /// # Errors
    /// [`DenseError::BiasLength`] for a bias of the wrong length;
    /// [`DenseError::AllocationFailed`] if the packed copy cannot be allocated.
    pub fn new(kernel: MatRef<'_, f32>, bias: Option<&[f32]>) -> Result<Self, DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        Self::new_for(isa, crate::simd::l2_bytes(), kernel, bias, true)
    }

    /// Packs `kernel` and `bias` into this kernel's own buffers, reusing their memory
    /// (no allocation once they are large enough): training packs its changing weights
    /// once per step. After an error the kernel is empty (`0 × 0`).
    pub(crate) fn repack(
        &mut self,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
    ) -> Result<(), DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        // The same layout as before: every padding element is still zero, so the
        // panels need not be cleared first (the packing overwrites the rest).
        let l2 = crate::simd::l2_bytes();
        let same = (self.k, self.n, self.isa, self.kc_max)
            == (
                kernel.rows(),
                kernel.cols(),
                isa,
                blocking(l2, isa, kernel.rows()).0,
            );
        let buffers = (
            std::mem::take(&mut self.data),
            std::mem::take(&mut self.bias),
        );
        // An empty kernel over empty buffers until the new packing is in place.
        self.small.clear();
        (self.k, self.n, self.start, self.has_bias) = (0, 0, 0, false);
        *self = Self::new_into(isa, l2, kernel, bias, false, buffers, same)?;
        Ok(())
    }

    /// [`new`](Self::new) for one call of more than `TINY_MACS` multiply-adds
    /// (`dense_forward`'s narrow layers): no row-major copy for tiny calls.
    pub(crate) fn for_one_call(
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
    ) -> Result<Self, DenseError> {
        let isa = Isa::current().for_layer(
            kernel.rows(),
            kernel.cols(),
            crate::simd::is_intel(),
            crate::simd::l1d_ways(),
        );
        Self::new_for(isa, crate::simd::l2_bytes(), kernel, bias, false)
    }

    /// Packs for `isa`'s microkernel with the blocking of a core with `l2` bytes of L2
    /// ([`blocking`], [`chunk_cols`]).
    pub(super) fn new_for(
        isa: Isa,
        l2: Option<usize>,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
        keep_small: bool,
    ) -> Result<Self, DenseError> {
        Self::new_into(
            isa,
            l2,
            kernel,
            bias,
            keep_small,
            (Vec::new(), Vec::new()),
            false,
        )
    }

    /// [`new_for`](Self::new_for) into `buffers` (panels, bias), whose memory is
    /// reused when large enough; `same_layout`: the panels hold a packing of the same
    /// shape, ISA and blocking (their padding is zero), so they are not cleared first.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_into(
        isa: Isa,
        l2: Option<usize>,
        kernel: MatRef<'_, f32>,
        bias: Option<&[f32]>,
        keep_small: bool,
        (mut data, mut b): (Vec<f32>, Vec<f32>),
        same_layout: bool,
    ) -> Result<Self, DenseError> {
        let (k, n) = (kernel.rows(), kernel.cols());
        if let Some(b) = bias {
            if b.len() != n {
                return Err(DenseError::BiasLength {
                    len: b.len(),
                    units: n,
                });
            }
        }
        let (_, nr) = isa.tile();
        let panels = n.div_ceil(nr);
        let (kc_max, mc) = blocking(l2, isa, k);
        let len = panels
            .checked_mul(nr)
            .and_then(|c| c.checked_mul(k))
            .and_then(|l| l.checked_add(16))
            .ok_or(DenseError::AllocationFailed { rows: k, cols: n })?;
        if !(same_layout && data.len() == len) {
            data.clear();
            data.try_reserve_exact(len)
                .map_err(|_| DenseError::AllocationFailed { rows: k, cols: n })?;
            data.resize(len, 0.0);
        }
        // First element on a 64-byte boundary (a whole cache line per panel row).
        let start = data.as_ptr().align_offset(64).min(15);
        let body = &mut data[start..];
        // Element (p, j) of the view: in bounds for p < K, j < N (checked when the view
        // was built), read straight from the slice (no per-element Option).
        let (src, rs, cs) = (kernel.data(), kernel.row_stride(), kernel.col_stride());
        let get = |p: usize, j: usize| src[p * rs + j * cs];
        if n == 0 {
            // Nothing to pack. K may be anything here (an empty view can claim any row
            // count), so no loop below may run over it.
        } else if isa == Isa::None {
            for p in 0..k {
                for j in 0..n {
                    body[p * n + j] = get(p, j);
                }
            }
        } else {
            // k block by k block; inside one, the panels one after another (the order
            // the forward pass reads them in: one sequential stream per k block). Large
            // weights fill their panels on the rayon pool (each panel is its own
            // region: the same bytes for any thread count).
            let fill = |panel: &mut [f32], k0: usize, jp: usize| {
                let w = nr.min(n - jp * nr);
                if cs == 1 {
                    for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                        // Keras layout: the panel row is a contiguous run of the
                        // weight's row (one copy, not `w` indexed reads).
                        let at = (k0 + p) * rs + jp * nr;
                        crate::paths::block::copy_small(&mut row[..w], &src[at..at + w]);
                    }
                } else {
                    // Any other layout (a PyTorch weight's `.t()`: `k` contiguous,
                    // columns K apart) in blocks of 16 panel rows: each column's 16
                    // values are then a cache line or two read once, and the block's 16
                    // rows (2 KiB) stay in L1 while its columns fill them. Row by
                    // row, the `w` columns of one row were `w` lines K floats apart,
                    // which for K a multiple of 1024 all fell in one L1 set and were
                    // evicted before their next value was read. On Zen 4, medians:
                    // 1024² 2.7–3.1 ms → 0.69 ms, 512² 0.39 → 0.16 ms, 784×128
                    // 0.11 → 0.05 ms (the Keras layout: 0.20, 0.04, 0.013).
                    for (b, rows) in panel.chunks_mut(16 * nr).enumerate() {
                        let (p0, h) = (k0 + 16 * b, rows.len() / nr);
                        for c in 0..w {
                            if rs == 1 {
                                // The column's h values are contiguous.
                                let at = (jp * nr + c) * cs + p0;
                                let col = &src[at..at + h];
                                for (row, &v) in rows.chunks_exact_mut(nr).zip(col) {
                                    row[c] = v;
                                }
                            } else {
                                for (i, row) in rows.chunks_exact_mut(nr).enumerate() {
                                    row[c] = get(p0 + i, jp * nr + c);
                                }
                            }
                        }
                    }
                }
            };
            let parallel = k.saturating_mul(n) >= PAR_PACK_MIN && rayon::current_num_threads() > 1;
            let mut rest = &mut body[..k * panels * nr];
            for ks in k_blocks(k, kc_max) {
                let (k0, kc) = (ks.start, ks.len());
                let (block, r) = rest.split_at_mut(kc * panels * nr);
                rest = r;
                debug_assert_eq!(panel_offset(k0, kc, 0, panels, nr), k0 * panels * nr);
                if parallel {
                    use rayon::prelude::*;
                    block
                        .par_chunks_mut(kc * nr)
                        .enumerate()
                        .for_each(|(jp, panel)| fill(panel, k0, jp));
                } else {
                    for (jp, panel) in block.chunks_mut(kc * nr).enumerate() {
                        fill(panel, k0, jp);
                    }
                }
            }
        }
        let mut small = Vec::new();
        if keep_small
            && isa != Isa::None
            && n > 0
            && (k as u64).saturating_mul(n as u64) <= TINY_MACS
        {
            small.reserve_exact(k * n);
            for p in 0..k {
                small.extend((0..n).map(|j| get(p, j)));
            }
        }
        b.clear();
        if let Some(bias) = bias {
            b.try_reserve_exact(panels * nr)
                .map_err(|_| DenseError::AllocationFailed { rows: 1, cols: n })?;
            b.extend_from_slice(bias);
            b.resize(if isa == Isa::None { n } else { panels * nr }, 0.0);
        }
        Ok(PackedKernel {
            k,
            n,
            isa,
            data,
            start,
            bias: b,
            small,
            has_bias: bias.is_some(),
            nc: chunk_cols(k, kc_max, l2),
            kc_max,
            mc,
            direct_avx512: crate::simd::l1d_ways().is_some(),
            l1d_ways: crate::simd::l1d_ways().unwrap_or(0),
            direct_input_bytes: l2.map_or(0, |b| b / 2),
            l2_bytes: l2.unwrap_or(0),
            intel: crate::simd::is_intel(),
        })
    }

    /// The input size `K` (`in_features`).
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// The output size `N` (`units`).
    pub fn units(&self) -> usize {
        self.n
    }

    /// Whether a bias was packed.
    pub fn has_bias(&self) -> bool {
        self.has_bias
    }

    /// Bytes held by the packed copy.
    pub fn packed_bytes(&self) -> usize {
        (self.data.capacity() + self.bias.capacity() + self.small.capacity()) * 4
    }

    /// Whether the packing is for one of the crate's own microkernels (AVX-512 or
    /// AVX2+FMA); `false` on CPUs with neither, where the forward pass runs
    /// matrixmultiply.
    pub fn uses_microkernels(&self) -> bool {
        self.isa != Isa::None
    }

    pub(super) fn body(&self) -> &[f32] {
        &self.data[self.start..]
    }
}
