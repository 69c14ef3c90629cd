//! The packed path's unit tests.

use super::*;
use super::{driver::*, plan::*, weights::*};

/// A deterministic `M × K` input, `K × N` weight and `N` bias with small exact values.
fn data(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
        .collect();
    let w = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0)
        .collect();
    let b = (0..n).map(|i| i as f32 / 3.0 - 1.0).collect();
    (x, w, b)
}

/// A repacked kernel (same shape with new values, then other shapes, in either
/// layout and with or without bias) gives the bits of a freshly packed one: the
/// panels it reuses without clearing keep their zero padding.
#[test]
fn repacking_in_place_equals_packing_afresh() {
    let mut p =
        PackedKernel::for_one_call(MatRef::from_slice(&[0.0f32; 4], 2, 2).unwrap(), None).unwrap();
    for &(m, k, n, bias, torch, salt) in &[
        (7, 33, 45, true, false, 0usize),
        (7, 33, 45, true, false, 1),
        (7, 33, 45, false, true, 2),
        (5, 300, 70, true, false, 3),
        (5, 300, 70, true, false, 4),
        (9, 33, 45, true, true, 5),
        (3, 12, 200, false, false, 6),
    ] {
        let (x, w0, b) = data(m, k, n);
        let w: Vec<f32> = w0.iter().map(|v| v + salt as f32 / 16.0).collect();
        let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
        let kv = if torch {
            MatRef::from_slice(&wt, n, k).unwrap().t()
        } else {
            MatRef::from_slice(&w, k, n).unwrap()
        };
        let bias = bias.then_some(&b[..]);
        p.repack(kv, bias).unwrap();
        let fresh = PackedKernel::for_one_call(kv, bias).unwrap();
        let (mut y1, mut y2) = (vec![0.0f32; m * n], vec![1.0f32; m * n]);
        let xv = MatRef::from_slice(&x, m, k).unwrap();
        crate::dense_forward_packed(
            xv,
            &p,
            Activation::Linear,
            crate::MatMut::from_slice(&mut y1, m, n).unwrap(),
        )
        .unwrap();
        crate::dense_forward_packed(
            xv,
            &fresh,
            Activation::Linear,
            crate::MatMut::from_slice(&mut y2, m, n).unwrap(),
        )
        .unwrap();
        let bits = |v: &[f32]| v.iter().map(|t| t.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&y1),
            bits(&y2),
            "{m}x{k}x{n} bias={} torch={torch} salt={salt}",
            bias.is_some()
        );
    }
}

/// Every packing the CPU can run, including the matrixmultiply fallback.
fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::None];
    #[cfg(target_arch = "x86_64")]
    {
        if SimdPath::Avx512.is_available() {
            v.push(Isa::Avx512);
            v.push(Isa::Avx512N48);
        }
        if SimdPath::Avx2Fma.is_available() {
            v.push(Isa::Avx2);
        }
    }
    v
}

/// Every kernel at the edges of its tiles, with the output exactly `M × N` long:
/// `N ≡ 1..=31 (mod 32)` and past the 48-column tiles at one row (the 1-row 4-panel
/// kernel) and a few, `N < 8` and `N = 8, 9`, sums of one and of several `K` blocks
/// and `k` blocks (later ones load the running sum), with and without a bias, input
/// packed and read in place. Debug builds check every output address a kernel forms
/// (`Tile::c_at`: never past a row's last valid column); the results are checked
/// against the reference.
#[test]
fn kernels_form_no_address_past_the_output_at_any_edge() {
    let widths = (1..=33).chain([40, 47, 48, 49, 63, 65, 95, 96, 97, 100]);
    for isa in isas().into_iter().filter(|&i| i != Isa::None) {
        for n in widths.clone() {
            for &(m, k) in &[(1, 300), (2, 1100), (7, 600)] {
                let (x, w, b) = data(m, k, n);
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                for bias in [Some(&b[..]), None] {
                    let mut p = PackedKernel::new_for(isa, Some(1 << 20), kv, bias, false).unwrap();
                    for direct in [false, true] {
                        p.direct_avx512 = direct;
                        p.l1d_ways = 16;
                        let act = [Activation::Relu, Activation::Linear][n % 2];
                        {
                            let mut out = Vec::with_capacity(m * n);
                            out.resize(m * n, f32::NAN);
                            run(xv, &p, act, &mut out).unwrap();
                            crate::reference::check_dense(xv, kv, bias, act, &out).unwrap_or_else(
                                |e| panic!("{isa:?} {m}x{k}x{n} direct {direct}: {e}"),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn clones_keep_their_panels_64_byte_aligned_and_their_results() {
    for isa in isas() {
        let (m, k, n) = (5, 300, 70);
        let (x, w, b) = data(m, k, n);
        let kv = MatRef::from_slice(&w, k, n).unwrap();
        let xv = MatRef::from_slice(&x, m, k).unwrap();
        let p = PackedKernel::new_for(isa, Some(1 << 20), kv, Some(&b), true).unwrap();
        let mut want = vec![f32::NAN; m * n];
        run(xv, &p, Activation::Gelu, &mut want).unwrap();
        // Clones of clones, with allocations of other sizes in between so that the
        // allocator hands out differently aligned blocks.
        let mut c = p.clone();
        let mut keep = Vec::new();
        for i in 0..16 {
            keep.push(vec![0u8; 4 * i + 4]);
            c = c.clone();
            assert_eq!(c.body().as_ptr() as usize % 64, 0, "{isa:?} clone {i}");
            assert_eq!(c.body(), p.body());
            let mut got = vec![f32::NAN; m * n];
            run(xv, &c, Activation::Gelu, &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{isa:?} clone {i}");
        }
    }
}

#[test]
fn parts_cover_the_range_in_near_equal_pieces() {
    for len in 0..100 {
        for parts in 1..12 {
            let mut next = 0;
            for i in 0..parts {
                let r = part(len, parts, i);
                assert_eq!(r.start, next, "{len} in {parts}: part {i} starts");
                assert!(r.len() == len / parts || r.len() == len / parts + 1);
                next = r.end;
            }
            assert_eq!(next, len);
        }
    }
}

#[test]
fn narrow_layers_take_the_half_tile_on_a_12_way_l1d() {
    #[cfg(target_arch = "x86_64")]
    {
        let amd = |k, n, ways| Isa::Avx512.for_layer(k, n, false, ways);
        // Zen 5-like: 12 ways. Rows spread over the sets: the 12×32 half tile.
        for (k, n) in [(784, 10), (300, 1), (100, 16), (256, 8), (3000, 16)] {
            assert_eq!(amd(k, n, Some(12)), Isa::Avx512, "{k}x{n}");
        }
        // Rows 2, 4, 6 or 8 KiB apart (6 or 12 of 12 rows in one set), wider
        // layers, Zen 4's 8 ways, an unknown L1d, or Intel: as `for_units`.
        for (k, n, ways) in [
            (512, 10, Some(12)),
            (1024, 10, Some(12)),
            (1536, 10, Some(12)),
            (4096, 16, Some(12)),
            (784, 17, Some(12)),
            (784, 10, Some(8)),
            (784, 10, None),
        ] {
            assert_eq!(amd(k, n, ways), Isa::Avx512N48, "{k}x{n}, {ways:?}");
        }
        assert_eq!(Isa::Avx512.for_layer(784, 10, true, Some(12)), Isa::Avx512);
        assert_eq!(Isa::Avx2.for_layer(784, 10, false, Some(12)), Isa::Avx2);
    }
    assert_eq!(Isa::None.for_layer(784, 10, false, Some(12)), Isa::None);
}

#[test]
fn layers_of_up_to_192_units_take_the_8x48_kernel_on_avx512_amd() {
    #[cfg(target_arch = "x86_64")]
    {
        for n in [0, 1, 10, 16, 17, 40, 48, 100, 144, 191, 192] {
            assert_eq!(
                Isa::Avx512.for_units(n, false),
                Isa::Avx512N48,
                "N = {n}, AMD"
            );
            assert_eq!(
                Isa::Avx512.for_units(n, true),
                Isa::Avx512,
                "N = {n}, Intel"
            );
        }
        for n in [193, 256, 1000, usize::MAX] {
            for intel in [false, true] {
                assert_eq!(Isa::Avx512.for_units(n, intel), Isa::Avx512, "N = {n}");
            }
        }
    }
    for n in [1, 10, 1000] {
        for intel in [false, true] {
            assert_eq!(Isa::None.for_units(n, intel), Isa::None);
            #[cfg(target_arch = "x86_64")]
            assert_eq!(Isa::Avx2.for_units(n, intel), Isa::Avx2);
        }
    }
}

#[test]
fn every_tile_shape_gives_the_same_bits() {
    // The kernels differ in tile shape and register width, not in the order of any
    // output's K-sum (bias, then p = 0, 1, … one FMA each, k blocks added in turn),
    // so for the in-register activations every packing, packed or read in place,
    // gives the same bits.
    let tiles: Vec<Isa> = isas().into_iter().filter(|&i| i != Isa::None).collect();
    // Widths whose last 48-column panel holds 4, 16, 24, 32, 48, 40 and 1 columns:
    // every vector count of the 8×48 kernel, with and without its 8-column tail.
    for &(m, k, n) in &[
        (37, 300, 100),
        (11, 333, 72),
        (21, 700, 64),
        (13, 1300, 80),
        (9, 2100, 48),
        (100, 784, 40),
        (8, 512, 193),
    ] {
        let (x, w, b) = data(m, k, n);
        let kv = MatRef::from_slice(&w, k, n).unwrap();
        let xv = MatRef::from_slice(&x, m, k).unwrap();
        for act in [Activation::Linear, Activation::Relu] {
            let mut first: Option<(Isa, Vec<u32>)> = None;
            for &isa in &tiles {
                for direct in [false, true] {
                    let mut p =
                        PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                            .unwrap();
                    p.direct_avx512 = direct;
                    p.l1d_ways = 16;
                    let mut out = vec![f32::NAN; m * n];
                    run(xv, &p, act, &mut out).unwrap();
                    let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    match &first {
                        None => first = Some((isa, bits)),
                        Some((isa0, bits0)) => assert!(
                            *bits0 == bits,
                            "{m}x{k}x{n} {act}: {isa:?} (direct {direct}) vs {isa0:?}"
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn pieces_of_up_to_36_rows_run_as_one_block_on_the_12x32_kernel() {
    for rows in 1..=MC_ONE {
        assert_eq!(
            rows.div_ceil(block_rows(Isa::Avx512, rows, MC)),
            1,
            "{rows}"
        );
        // The short-sum and large-L2 blockings too.
        assert_eq!(
            rows.div_ceil(block_rows(Isa::Avx512, rows, 12)),
            1,
            "{rows}"
        );
        assert_eq!(block_rows(Isa::Avx512, rows, MC_L2), MC_L2);
    }
    for rows in [MC_ONE + 1, 64, 1000] {
        assert_eq!(block_rows(Isa::Avx512, rows, MC), MC);
        assert_eq!(block_rows(Isa::Avx512, rows, 12), 12);
    }
    for isa in [Isa::Avx512N48, Isa::Avx2, Isa::None] {
        for rows in [1, 25, 32, MC_ONE, 100] {
            assert_eq!(block_rows(isa, rows, MC), MC, "{isa:?} {rows}");
        }
    }
    // Every row block's tiles fit the buffer, for any blocking and tile height.
    for (mc, kc) in [(MC, KC), (12, KC), (MC_L2, KC_L2)] {
        for isa in isas().into_iter().filter(|&i| i != Isa::None) {
            let mr = isa.tile().0;
            for rows in 1..=200 {
                let b = block_rows(isa, rows, mc);
                let blocks = rows.div_ceil(b);
                let tallest = part(rows, blocks, 0).len();
                assert!(tallest.div_ceil(mr) * mr * kc <= A_BLOCK, "{isa:?} {rows}");
            }
        }
    }
}

#[test]
fn calls_split_by_rows_where_row_tiles_share_out_more_evenly() {
    // m ≥ n: rows.
    assert!(splits_by_rows(Isa::Avx512, 128, 100, 2));
    // Three 48-column panels on two threads: 2 + 1; six 8-row tiles: 3 + 3.
    assert!(splits_by_rows(Isa::Avx512N48, 48, 128, 2));
    assert!(splits_by_rows(Isa::Avx512N48, 36, 128, 2));
    // Three tiles against three panels: as even, panels stay.
    assert!(!splits_by_rows(Isa::Avx512N48, 24, 128, 2));
    // Two panels, or eight: even either way.
    assert!(!splits_by_rows(Isa::Avx512N48, 48, 96, 2));
    assert!(!splits_by_rows(Isa::Avx512, 24, 256, 2));
    // Wide layers keep the panel split; one thread never splits at all.
    assert!(!splits_by_rows(Isa::Avx512, 100, 1000, 2));
    assert!(!splits_by_rows(Isa::Avx512, 512, 1024, 16));
    assert!(!splits_by_rows(Isa::Avx512N48, 48, 128, 1));
}

#[test]
fn the_input_block_buffer_holds_every_row_block() {
    // `piece` sizes its scratch request by `input_block_floats`: every row block's
    // tiles by every `k` block fit it, and it never exceeds the largest buffer.
    for isa in isas().into_iter().filter(|&i| i != Isa::None) {
        let mr = isa.tile().0;
        for l2 in [Some(1 << 20), Some(2 << 20), None] {
            for k in [1, 15, 16, 64, 100, 511, 512, 1024, 1025, 2049, 3000] {
                let w = vec![0.5f32; k * 40];
                let kv = MatRef::from_slice(&w, k, 40).unwrap();
                let p = PackedKernel::new_for(isa, l2, kv, None, true).unwrap();
                for rows in 1..=120 {
                    let need = input_block_floats(&p, rows);
                    assert!(need <= A_BLOCK, "{isa:?} k={k} rows={rows}: {need}");
                    let blocks = rows.div_ceil(block_rows(isa, rows, p.mc));
                    let mut largest = 0;
                    for rb in 0..blocks {
                        let tiles = part(rows, blocks, rb).len().div_ceil(mr);
                        for ks in k_blocks(k, p.kc_max) {
                            largest = largest.max(tiles * mr * ks.len());
                        }
                    }
                    // Enough, and no more than the tallest block needs.
                    assert_eq!(largest, need, "{isa:?} k={k} rows={rows}");
                }
            }
        }
    }
}

#[test]
fn one_block_or_several_give_the_same_bits() {
    // 25..36 rows run as one block on the 12×32 kernel; the same rows inside a
    // taller batch run in blocks of 24. Sums of two k blocks and a ragged last panel.
    for isa in isas().into_iter().filter(|&i| i != Isa::None) {
        for &(m, k, n) in &[(25, 1100, 70), (32, 300, 100), (36, 2100, 33)] {
            let tall = 2 * m + 3;
            // Inexact values, so that a change in any sum's order would show.
            let wave = |len: usize, f: f32| -> Vec<f32> {
                (0..len).map(|i| (i as f32 * f).sin()).collect()
            };
            let (x, w, b) = (wave(tall * k, 0.37), wave(k * n, 0.71), wave(n, 1.3));
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let p =
                PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true).unwrap();
            for act in [Activation::Relu, Activation::Gelu] {
                let mut all = vec![f32::NAN; tall * n];
                run(MatRef::from_slice(&x, tall, k).unwrap(), &p, act, &mut all).unwrap();
                let xv = MatRef::from_slice(&x[..m * k], m, k).unwrap();
                let mut few = vec![f32::NAN; m * n];
                run(xv, &p, act, &mut few).unwrap();
                let same = few
                    .iter()
                    .zip(&all[..m * n])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} {m}x{k}x{n} {act}");
                crate::reference::check_dense(xv, kv, Some(&b), act, &few)
                    .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
            }
        }
    }
}

#[test]
fn k_blocks_cut_k_into_near_equal_blocks_of_at_most_kc_at_k_block_multiples() {
    for kc in [KC, KC_L2] {
        for k in [0, 1, 255, 257, kc - 1, kc, kc + 1, 2 * kc + 1, 1100, 5000] {
            let blocks: Vec<_> = k_blocks(k, kc).collect();
            assert_eq!(blocks.len(), k.div_ceil(kc), "K = {k}");
            let mut next = 0;
            for b in &blocks {
                assert_eq!(b.start, next, "K = {k}");
                assert!(!b.is_empty() && b.len() <= kc, "K = {k}: {b:?}");
                assert!(b.start.is_multiple_of(K_BLOCK), "K = {k}: {b:?}");
                next = b.end;
            }
            assert_eq!(next, k);
        }
    }
    let lens: Vec<usize> = k_blocks(KC + 76, KC).map(|b| b.len()).collect();
    assert_eq!(lens, [768, 332]);
    let lens: Vec<usize> = k_blocks(1100, KC_L2).map(|b| b.len()).collect();
    assert_eq!(lens, [512, 512, 76]);
}

#[test]
fn chunks_narrow_only_where_a_large_l2_holds_them() {
    let mib = 1usize << 20;
    for (k, l2, nc) in [
        (1024, Some(2 * mib), 256),
        (2048, Some(2 * mib), 256),
        (512, Some(2 * mib), 512),
        (256, Some(2 * mib), 1024),
        (1024, Some(4 * mib), 512),
        (4096, Some(2 * mib), 256),
        (1024, Some(mib), 1024),
        (1024, None, 1024),
        (0, Some(2 * mib), 1024),
        (usize::MAX, Some(2 * mib), 256),
    ] {
        let got = chunk_cols(k, KC, l2);
        assert_eq!(got, nc, "K = {k}, L2 = {l2:?}");
        // Chunks start at multiples of the chunk width, which must be whole panels.
        assert_eq!(got % 32, 0);
    }
}

#[test]
#[cfg(target_arch = "x86_64")] // the tile heights exist only there
fn wide_pieces_read_in_place_only_for_long_sums() {
    // A Zen 4-like core: 8-way L1d, 1 MiB of L2 (half of it for in-place inputs).
    let pack = |isa: Isa, k: usize, n: usize| {
        let w = vec![0.5f32; k * n];
        let kv = MatRef::from_slice(&w, k, n).unwrap();
        let mut p = PackedKernel::new_for(isa, Some(1 << 20), kv, None, false).unwrap();
        p.direct_avx512 = true;
        p.l1d_ways = 8;
        p.direct_input_bytes = 1 << 19;
        p
    };
    let p = pack(Isa::Avx512, 100, 1000);
    // Rows 400 bytes apart, 2 to an L1 set: narrow pieces read in place, but the
    // whole 1000 columns (32 panels) of a 100-long sum pack.
    assert!(reads_in_place(&p, 256, 4 * 32, 100, 1, false));
    assert!(!reads_in_place(&p, 256, 1000, 100, 1, false));
    // K = 784 (rows 3136 bytes apart, no two in one set): wide pieces read in place
    // while the input fits in the budget, and never for strided columns.
    let p = pack(Isa::Avx512, 784, 256);
    assert!(reads_in_place(&p, 128, 256, 784, 1, false));
    assert!(!reads_in_place(&p, 256, 256, 784, 1, false));
    assert!(!reads_in_place(&p, 128, 256, 784, 2, false));
    // The 8×48 kernel: up to four panels, whatever K.
    let p = pack(Isa::Avx512N48, 16, 192);
    assert!(reads_in_place(&p, 4096, 192, 16, 1, false));
    assert!(!reads_in_place(&p, 4096, 193, 16, 1, false));
    // A 12-way L1d (Zen 5, the Xeons): narrow pieces read in place even 4 KiB
    // apart; wide ones only with their rows spread over the sets (K = 784, not
    // K = 512: rows 2 KiB apart, 6 of 12 in one set).
    let zen5 = |k: usize, n: usize| {
        let mut p = pack(Isa::Avx512, k, n);
        p.l1d_ways = 12;
        p
    };
    assert!(reads_in_place(&zen5(1024, 128), 256, 128, 1024, 1, false));
    assert!(reads_in_place(&zen5(784, 256), 128, 256, 784, 1, false));
    assert!(!reads_in_place(&zen5(512, 1024), 64, 1024, 512, 1, false));
    assert!(reads_in_place(&zen5(512, 128), 64, 128, 512, 1, false));
    // Wide pieces whose row tiles have 12 rows pack, except on Intel; 11-row tiles
    // read in place; narrow pieces read in place either way.
    let mut p = zen5(1000, 4000);
    p.direct_input_bytes = 1 << 20;
    p.intel = false;
    for (rows, tallest) in [(24, 12), (36, 12), (48, 12), (12, 12), (35, 12)] {
        assert_eq!(tallest_tile(&p, rows), tallest, "{rows}");
        assert!(!reads_in_place(&p, rows, 4000, 1000, 1, false), "{rows}");
        assert!(reads_in_place(&p, rows, 128, 1000, 1, false), "{rows}");
    }
    for (rows, tallest) in [(11, 11), (32, 11), (60, 10), (128, 11), (1, 1)] {
        assert_eq!(tallest_tile(&p, rows), tallest, "{rows}");
        assert!(reads_in_place(&p, rows, 4000, 1000, 1, false), "{rows}");
    }
    // Narrow pieces of 12-row tiles whose rows another piece reads too (a call
    // split by columns) pack; of 11-row tiles they still read in place.
    assert!(!reads_in_place(&p, 24, 128, 1000, 1, true));
    assert!(reads_in_place(&p, 22, 128, 1000, 1, true));
    p.intel = true;
    assert!(reads_in_place(&p, 24, 4000, 1000, 1, false));
    assert!(reads_in_place(&p, 48, 4000, 1000, 1, false));
    assert!(reads_in_place(&p, 24, 128, 1000, 1, true));
}

#[test]
fn rows_a_multiple_of_4_kib_apart_share_one_l1_set() {
    // 4 KiB apart: every row in set 0; 2 KiB: two sets; 1 KiB: four; a stride of
    // 49 lines (odd) sends 12 rows to 12 sets.
    assert_eq!(rows_per_l1_set(1024, 12), 12);
    assert_eq!(rows_per_l1_set(2048, 5), 5);
    assert_eq!(rows_per_l1_set(512, 12), 6);
    assert_eq!(rows_per_l1_set(512, 4), 2);
    assert_eq!(rows_per_l1_set(256, 12), 3);
    assert_eq!(rows_per_l1_set(784, 12), 1);
    // Rows 8 floats apart: two to a 64-byte line, so six lines hold twelve rows.
    assert_eq!(rows_per_l1_set(8, 12), 2);
    assert_eq!(rows_per_l1_set(1024, 0), 0);
}

#[test]
fn reading_the_input_in_place_changes_no_bit() {
    // Input rows 3 floats longer than K (a strided view), pieces of 1 to 5 panels
    // (5 > DIRECT_PANELS: packed either way), every tile shape, 1 to 70 rows.
    for isa in isas().into_iter().filter(|&i| i != Isa::None) {
        for &(m, k, n) in &[(70, 300, 100), (13, 257, 33), (5, 40, 17), (30, 1024, 160)] {
            let ld = k + 3;
            let (x, w, b) = data(m, ld, n);
            let xv = MatRef::from_strided(&x, m, k, ld, 1).unwrap();
            let kv = MatRef::from_slice(&w[..k * n], k, n).unwrap();
            let mut p =
                PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true).unwrap();
            let mut outs = Vec::new();
            for direct in [false, true] {
                p.direct_avx512 = direct;
                let mut out = vec![f32::NAN; m * n];
                run(xv, &p, Activation::Relu, &mut out).unwrap();
                crate::reference::check_dense(xv, kv, Some(&b), Activation::Relu, &out)
                    .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} direct {direct}: {e}"));
                outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
            assert!(outs[0] == outs[1], "{isa:?} {m}x{k}x{n}");
        }
    }
}

#[test]
#[cfg(target_arch = "x86_64")] // the tile heights exist only there
fn the_blocking_follows_the_l2() {
    let mib = 1usize << 20;
    for (l2, want) in [
        (None, (KC, MC)),
        (Some(mib), (KC, MC)),
        (Some(2 * mib - 1), (KC, MC)),
        (Some(2 * mib), (KC_L2, MC_L2)),
        (Some(usize::MAX), (KC_L2, MC_L2)),
    ] {
        for isa in [Isa::Avx512, Isa::Avx512N48, Isa::Avx2, Isa::None] {
            assert_eq!(blocking(l2, isa, 1024), want, "L2 = {l2:?}, {isa:?}");
        }
    }
    // Short sums on the 12×32 kernel with the small-L2 blocking: one-tile row blocks.
    for k in [64, 100, 511] {
        assert_eq!(blocking(Some(mib), Isa::Avx512, k), (KC, 12), "K = {k}");
        assert_eq!(blocking(Some(mib), Isa::Avx512N48, k), (KC, MC), "K = {k}");
        assert_eq!(blocking(Some(2 * mib), Isa::Avx512, k), (KC_L2, MC_L2));
    }
    for k in [0, 63, 512] {
        assert_eq!(blocking(Some(mib), Isa::Avx512, k), (KC, MC), "K = {k}");
    }
}

#[test]
fn either_blocking_matches_the_reference() {
    // K = 1100: two k blocks (768 + 332) with KC = 1024, three (512 + 512 + 76) with KC_L2 = 512; M = 50:
    // row blocks of 17, 17, 16 (MC = 24) or 25, 25 (MC_L2 = 48), tiles of 9, 8, 8.
    let mib = 1usize << 20;
    for isa in isas() {
        for l2 in [None, Some(2 * mib)] {
            for &(m, k, n) in &[
                (50, 1100, 70),
                (97, 513, 33),
                (48, 512, 64),
                (1, 1025, 40),
                (50, 200, 70),
            ] {
                let (x, w, b) = data(m, k, n);
                let kv = MatRef::from_slice(&w, k, n).unwrap();
                let xv = MatRef::from_slice(&x, m, k).unwrap();
                let p = PackedKernel::new_for(isa, l2, kv, Some(&b), true).unwrap();
                assert_eq!((p.kc_max, p.mc), blocking(l2, isa, k));
                for act in [Activation::Relu, Activation::Gelu] {
                    let mut out = vec![f32::NAN; m * n];
                    run(xv, &p, act, &mut out).unwrap();
                    crate::reference::check_dense(xv, kv, Some(&b), act, &out)
                        .unwrap_or_else(|e| panic!("{isa:?} {l2:?} {m}x{k}x{n} {act}: {e}"));
                }
            }
        }
    }
}

#[test]
fn only_large_outputs_with_rows_4_kib_apart_prefetch_their_rows() {
    let mib = 1 << 20;
    // 1024³ (4 MiB, rows 4 KiB apart) and 256×1024×4096 (16 KiB) on a 1 MiB L2.
    assert!(prefetches_output(4 * mib, 4096, mib));
    assert!(prefetches_output(4 * mib, 16384, mib));
    // Rows spread over the L1 sets (N = 1000, 1536), however large the output.
    assert!(!prefetches_output(4 * mib, 4000, mib));
    assert!(!prefetches_output(64 * mib, 6144, mib));
    // Outputs the L2 holds: 256×1024² is exactly 1 MiB.
    assert!(!prefetches_output(mib, 4096, mib));
    assert!(prefetches_output(mib + 4096, 4096, mib));
    assert!(!prefetches_output(2 * mib, 4096, 2 * mib));
    // An unknown L2 counts as 1 MiB.
    assert!(!prefetches_output(mib, 4096, 0));
    assert!(prefetches_output(2 * mib, 4096, 0));
}

#[test]
fn prefetching_the_output_changes_no_bit() {
    // Rows 4 KiB (8 KiB) apart; the output is over a 64 KiB L2 (prefetched) and
    // under a 1 GiB one (not); either L2 is under 2 MiB, so the blocking is the same.
    for isa in isas() {
        for &(m, k, n) in &[(70, 40, 1024), (13, 300, 2048)] {
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let out_bytes = m * n * 4;
            let (small, large) = (64 << 10, 1 << 30);
            assert!(prefetches_output(out_bytes, n * 4, small));
            assert!(!prefetches_output(out_bytes, n * 4, large));
            let pa = PackedKernel::new_for(isa, Some(small), kv, Some(&b), true).unwrap();
            let pb = PackedKernel::new_for(isa, Some(large), kv, Some(&b), true).unwrap();
            for act in [Activation::Relu, Activation::Gelu] {
                let (mut ya, mut yb) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                run(xv, &pa, act, &mut ya).unwrap();
                run(xv, &pb, act, &mut yb).unwrap();
                crate::reference::check_dense(xv, kv, Some(&b), act, &ya)
                    .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
                let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ya), bits(&yb), "{isa:?} {m}x{k}x{n} {act}");
            }
        }
    }
}

#[test]
fn the_chunk_width_does_not_change_a_bit() {
    for isa in isas() {
        let (m, k, n) = (30, 300, 700);
        let (x, w, b) = data(m, k, n);
        let kv = MatRef::from_slice(&w, k, n).unwrap();
        let xv = MatRef::from_slice(&x, m, k).unwrap();
        let mut p =
            PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true).unwrap();
        let mut outs = Vec::new();
        for nc in [NC, 256, 64] {
            p.nc = nc;
            let mut out = vec![f32::NAN; m * n];
            run(xv, &p, Activation::Gelu, &mut out).unwrap();
            outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        assert!(outs[0] == outs[1] && outs[0] == outs[2], "{isa:?}");
        let out: Vec<f32> = outs[0].iter().map(|&v| f32::from_bits(v)).collect();
        crate::reference::check_dense(xv, kv, Some(&b), Activation::Gelu, &out)
            .unwrap_or_else(|e| panic!("{isa:?}: {e}"));
    }
}

/// Gelu and sigmoid on output rows 8 KiB apart run tile by tile: the same bits as
/// the linear result with the activation applied afterwards, for several row
/// tiles, one row (the 4-panel kernel), and sums of two `k` blocks.
#[test]
fn the_tile_epilogue_changes_no_bit() {
    for isa in isas() {
        let avx512 = isa != Isa::None && isa != Isa::Avx2;
        assert_eq!(epilogue_per_tile(isa, Activation::Gelu, 2048), avx512);
        assert_eq!(epilogue_per_tile(isa, Activation::Sigmoid, 4096), avx512);
        assert!(!epilogue_per_tile(isa, Activation::Gelu, 2000));
        assert!(!epilogue_per_tile(isa, Activation::Tanh, 2048));
        assert!(!epilogue_per_tile(isa, Activation::Gelu, usize::MAX / 2));
        for (m, k, n) in [(13, 40, 2048), (1, 40, 2048), (7, 1100, 2048)] {
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            let p = PackedKernel::new_for(isa, Some(1 << 20), kv, Some(&b), true).unwrap();
            let mut linear = vec![f32::NAN; m * n];
            run(xv, &p, Activation::Linear, &mut linear).unwrap();
            for act in [Activation::Gelu, Activation::Sigmoid] {
                // The tile pass runs the AVX-512 kernels (the packings that take it
                // run only where they are dispatched); the block pass the
                // dispatched path, which a test run may have forced elsewhere.
                let path = if avx512 {
                    SimdPath::Avx512
                } else {
                    crate::simd_path()
                };
                let mut want = linear.clone();
                assert!(crate::simd::apply_activation_on(path, act, &mut want, n));
                let mut got = vec![f32::NAN; m * n];
                run(xv, &p, act, &mut got).unwrap();
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} {m}x{k}x{n} {act}");
            }
        }
    }
}

#[test]
fn every_isa_matches_the_reference() {
    use crate::reference::check_dense;
    for isa in isas() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (13, 257, 33),
            (5, 2100, 20),
            (25, 3, 65),
            (7, 0, 5),
            (121, 40, 17),
        ] {
            let (x, w, b) = data(m, k, n);
            let kv = MatRef::from_slice(&w, k, n).unwrap();
            let xv = MatRef::from_slice(&x, m, k).unwrap();
            for act in [
                Activation::Linear,
                Activation::Relu,
                Activation::Sigmoid,
                Activation::Softmax,
            ] {
                let p = PackedKernel::new_for(isa, crate::simd::l2_bytes(), kv, Some(&b), true)
                    .unwrap();
                let mut out = vec![f32::NAN; m * n];
                run(xv, &p, act, &mut out).unwrap();
                check_dense(xv, kv, Some(&b), act, &out)
                    .unwrap_or_else(|e| panic!("{isa:?} {m}x{k}x{n} {act}: {e}"));
            }
        }
    }
}
