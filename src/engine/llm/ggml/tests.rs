//! Tests of the ggml kernels against each other and against plain arithmetic: the
//! rounding of activations, every weight type's matmul, the AVX2 kernels bit for bit
//! against the portable ones, softmax, `expf` and GELU.

use super::attention::{attention, attention_rows_impl, softmax_row_impl, v_expf, Attention};
use super::avx2;
use super::blocks::{quantize_q8_0, quantize_q8k, Q8K, Q8_0};
use super::dots::{dot_q4k, dot_q6k, dot_q6k_tiled, dot_q8_0};
use super::matmul::{Acts, Blocks, GgmlMatMul, OutPtr};
use super::pointwise::gelu;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;

/// Values in [-2, 2).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut v = crate::testing::Lcg::new(seed).values(n);
    v.iter_mut().for_each(|x| *x *= 4.0);
    v
}

#[test]
fn q8_0_rounds_ties_to_even_and_scales_by_127_over_amax() {
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    let mut out = [Q8_0 {
        d: f16::ZERO,
        qs: [0; 32],
    }];
    quantize_q8_0(&x, &mut out);
    assert_eq!(out[0].d.to_f32(), 1.0);
    assert_eq!(&out[0].qs[..4], &[127, 2, -4, 0]);
}

#[test]
fn q8k_scale_follows_the_signed_maximum() {
    let mut x = random(256, 1);
    x[7] = -9.0;
    let mut out = [Q8K {
        d: 0.0,
        qs: [0; 256],
        bsums: [0; 16],
    }];
    quantize_q8k(&x, &mut out);
    // The largest magnitude is negative, so the scale is positive and it maps to -127.
    assert_eq!(out[0].qs[7], -127);
    assert!((out[0].d - 9.0 / 127.0).abs() < 1e-7);
    let s: i16 = out[0].qs[..16].iter().map(|&q| q as i16).sum();
    assert_eq!(out[0].bsums[0], s);
}

/// Every supported type against the dequantized weight times the dequantized
/// activations: the integer products must agree up to float rounding.
#[test]
fn matmul_equals_dequantized_product_of_quantized_operands() {
    let (m, n, k) = (3, 40, 512);
    let w = Tensor::from_vec(random(n * k, 2), (n, k), &Device::Cpu).unwrap();
    let x = random(m * k, 3);
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q8_0,
        GgmlDType::Q2K,
        GgmlDType::Q3K,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let q = QTensor::quantize(&w, dtype).unwrap();
        let mm = GgmlMatMul::new(&q).unwrap().unwrap();
        let got = mm.forward(&x, m);
        let wd = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // The activations as the kernel sees them.
        let xq: Vec<f32> = match mm.quantize(&x, m) {
            Acts::Q8_0(a) => a
                .iter()
                .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d.to_f32()))
                .collect(),
            Acts::Q8K(a) => a
                .iter()
                .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
                .collect(),
        };
        for r in 0..m {
            for c in 0..n {
                let want: f64 = (0..k).map(|i| wd[c][i] as f64 * xq[r * k + i] as f64).sum();
                let g = got[r * n + c] as f64;
                assert!(
                    (g - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{dtype:?} ({r},{c}): {g} vs {want}"
                );
            }
        }
    }
}

#[test]
fn v_expf_is_within_two_ulp_of_exp() {
    for i in -2000..=800 {
        let x = i as f32 * 0.05;
        let (a, b) = (v_expf(x), x.exp());
        assert!(
            (a - b).abs() <= 2.0 * f32::EPSILON * b.max(f32::MIN_POSITIVE),
            "{x}: {a} vs {b}"
        );
    }
    assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
}

#[test]
fn softmax_sums_to_one_and_ignores_alignment() {
    let mut a = vec![0.5f32, -1.0, 2.0, 3.0, -50.0, f32::NEG_INFINITY, 1.0];
    let mut b = a.clone();
    softmax_row_impl(&mut a, 0);
    softmax_row_impl(&mut b, 13);
    let s: f32 = a.iter().sum();
    assert!((s - 1.0).abs() < 1e-6);
    assert_eq!(a[5], 0.0);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-7);
    }
}

/// Attention over new tokens as dispatched (AVX-512 where the CPU has it) bit for bit
/// the portable row-by-row path, for prompts and for one new token: head sizes of Qwen,
/// Gemma and smaller, caches that start past 0 and off a multiple of 16, sliding
/// windows, odd numbers of rows per thread's share, and scores large enough for
/// `expf`'s out-of-range branch.
#[test]
fn attention_is_bit_for_bit_the_portable_path() {
    let round =
        |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| f16::from_f32(x).to_f32()).collect() };
    let mut case = 0u64;
    for (hd, rep, seq, offset, start, window, scale) in [
        (128, 6, 37, 0, 0, None, 0.0884),
        (256, 4, 70, 0, 0, Some(16), 1.0),
        (64, 1, 19, 21, 5, None, 0.125),
        (128, 2, 33, 40, 13, Some(40), 0.0884),
        (64, 3, 9, 3, 0, None, 40.0),
        // One new token (generation).
        (128, 6, 1, 1508, 0, None, 0.0884),
        (256, 4, 1, 700, 189, Some(512), 1.0),
        (64, 2, 1, 0, 0, None, 0.125),
        (128, 1, 1, 37, 5, None, 40.0),
    ] {
        case += 1;
        let n = offset + seq - start;
        let q = round(random(rep * seq * hd, 30 + case));
        let k = round(random(n * hd, 40 + case));
        let v = round(random(n * hd, 50 + case));
        let a = Attention {
            q: &q,
            k: &k,
            v: &v,
            head_dim: hd,
            seq,
            offset,
            start,
            window,
            scale,
        };
        let got = attention(&a);
        let mut want = vec![0f32; got.len()];
        attention_rows_impl(&a, 0..rep * seq, &mut want);
        for (i, (x, y)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "case {case}: value {i}: {x} vs {y}"
            );
        }
    }
}

/// The AVX2 kernels give the portable kernels' results bit for bit.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_kernels_equal_portable_ones_bit_for_bit() {
    if !crate::cpu::features().avx2_fma_f16c() {
        eprintln!("skipped: no AVX2/FMA on this CPU");
        return;
    }
    let (n, k) = (8, 1024);
    let w = Tensor::from_vec(random(n * k, 7), (n, k), &Device::Cpu).unwrap();
    let x = random(k, 8);
    // The Q8_0 tile kernel over a 5 × 7 product (4-row and 1-row blocks, a lone
    // column) against the portable dot product.
    let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
    let mm = GgmlMatMul::new(&q).unwrap().unwrap();
    let xs = random(5 * k, 9);
    if let (Blocks::Q8_0(wb), Acts::Q8_0(a)) = (&mm.w, mm.quantize(&xs, 5)) {
        let per = k / 32;
        let mut out = vec![0f32; 5 * 7];
        unsafe { avx2::tile_q8_0(wb, &a, per, 5, 7, 0..7, OutPtr(out.as_mut_ptr())) };
        for r in 0..5 {
            for c in 0..7 {
                let want = dot_q8_0(&wb[c * per..(c + 1) * per], &a[r * per..(r + 1) * per]);
                assert_eq!(out[r * 7 + c].to_bits(), want.to_bits(), "Q8_0 ({r},{c})");
            }
        }
    }
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
        let q = QTensor::quantize(&w, dtype).unwrap();
        let mm = GgmlMatMul::new(&q).unwrap().unwrap();
        let acts = mm.quantize(&x, 1);
        for col in 0..n {
            let (fast, slow): (Vec<f32>, Vec<f32>) = match (&mm.w, &acts) {
                (Blocks::Q4K(w), Acts::Q8K(a)) => {
                    let r = &w[col * k / 256..(col + 1) * k / 256];
                    let f = unsafe { vec![avx2::dot_q4k(r, a, false), avx2::dot_q4k(r, a, true)] };
                    (f, vec![dot_q4k(r, a, false), dot_q4k(r, a, true)])
                }
                (Blocks::Q6K(w), Acts::Q8K(a)) => {
                    let r = &w[col * k / 256..(col + 1) * k / 256];
                    let f = unsafe { vec![avx2::dot_q6k(r, a), avx2::dot_q6k_tiled(r, a)] };
                    (f, vec![dot_q6k(r, a), dot_q6k_tiled(r, a)])
                }
                _ => unreachable!(),
            };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "{dtype:?} column {col}");
        }
    }
}

#[test]
fn gelu_table_matches_the_formula_at_f16_precision() {
    for &x in &[-12.0f32, -3.0, -0.5, 0.0, 0.3, 1.0, 2.5, 9.9, 11.0] {
        let exact = 0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh());
        assert!(
            (gelu(x) - exact).abs() <= 0.01 * exact.abs().max(0.01),
            "{x}"
        );
    }
    assert_eq!(gelu(-10.5), 0.0);
    assert_eq!(gelu(10.5), 10.5);
}

/// Random (n, k) weights quantized to `dtype` (a k-quant) times `m` random rows as
/// dispatched on this CPU, every output bit for bit `want(weight blocks, activation
/// blocks, row, column)`. Weights from `seed`, activations from `seed + 1`.
fn assert_k_quant_matmul(
    dtype: GgmlDType,
    (m, n, k): (usize, usize, usize),
    seed: u64,
    want: impl Fn(&Blocks, &[Q8K], usize, usize) -> f32,
) {
    let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
    let x = random(m * k, seed + 1);
    let q = QTensor::quantize(&w, dtype).unwrap();
    let mm = GgmlMatMul::new(&q).unwrap().unwrap();
    let got = mm.forward(&x, m);
    let Acts::Q8K(a) = mm.quantize(&x, m) else {
        unreachable!()
    };
    for r in 0..m {
        for c in 0..n {
            let want = want(&mm.w, &a, r, c);
            assert_eq!(
                got[r * n + c].to_bits(),
                want.to_bits(),
                "{dtype:?} m {m} n {n} k {k}: ({r},{c}) {} vs {want}",
                got[r * n + c]
            );
        }
    }
}

/// The Q4_K matmul as dispatched on this CPU (the AVX-512 VNNI kernel on weights
/// repacked at load where the CPU has it), bit for bit against the portable kernel in ggml's
/// order: per 64 values for the rows in fours, per block for the rest. Shapes leave
/// rows and columns over the multiples of four and sixteen.
#[test]
fn q4k_matmul_is_bit_for_bit_the_portable_kernel() {
    if !crate::cpu::features().avx512_vnni_f16c() {
        println!("note: no AVX-512 VNNI here; the AVX2 path is what this test compares");
    }
    for (m, n, k) in [
        (4, 16, 256),
        (5, 37, 512),
        (8, 19, 768),
        (13, 40, 256),
        (3, 8, 256),
        (1, 48, 512),
    ] {
        let per = k / 256;
        assert_k_quant_matmul(GgmlDType::Q4K, (m, n, k), 7, |w, a, r, c| {
            let Blocks::Q4K(wb) = w else { unreachable!() };
            let rows_in_fours = m - m % 4;
            dot_q4k(
                &wb[c * per..(c + 1) * per],
                &a[r * per..(r + 1) * per],
                r < rows_in_fours,
            )
        });
    }
}

/// The Q6_K matmul as dispatched below eight rows (two weight rows per AVX-512 pass where
/// the CPU has it) bit for bit against the portable kernel in ggml's `vec_dot` order.
#[test]
fn q6k_matmul_below_eight_rows_is_bit_for_bit_the_portable_kernel() {
    for (m, n, k) in [(1, 33, 512), (3, 16, 256), (7, 5, 768)] {
        let per = k / 256;
        assert_k_quant_matmul(GgmlDType::Q6K, (m, n, k), 9, |w, a, r, c| {
            let Blocks::Q6K(wb) = w else { unreachable!() };
            dot_q6k(&wb[c * per..(c + 1) * per], &a[r * per..(r + 1) * per])
        });
    }
}

/// The Q6_K matmul as dispatched from eight rows on (the AVX-512 VNNI gemm, sixteen
/// weight rows at a time, where the CPU has it) bit for bit against the portable kernel
/// in ggml's tiled order. Shapes leave one to five activation rows over the gemm's
/// multiples of six and weight rows over its multiples of sixteen, and take one to four
/// blocks per row.
#[test]
fn q6k_matmul_from_eight_rows_is_bit_for_bit_the_portable_kernel() {
    if !crate::cpu::features().avx512_vnni_f16c() {
        println!("note: no AVX-512 VNNI here; the AVX2 path is what this test compares");
    }
    for m in [8, 9, 11, 13, 33, 64] {
        for n in [16, 17, 35, 48] {
            for per in 1..=4 {
                let seed = (m * 1000 + n * 10 + per) as u64;
                assert_k_quant_matmul(GgmlDType::Q6K, (m, n, 256 * per), seed, |w, a, r, c| {
                    let Blocks::Q6K(wb) = w else { unreachable!() };
                    dot_q6k_tiled(&wb[c * per..(c + 1) * per], &a[r * per..(r + 1) * per])
                });
            }
        }
    }
}

/// The Q8_0 matmul as dispatched on this CPU (the AVX-512 VNNI kernel where the CPU has
/// it) bit for bit against the portable kernel, and the AVX-512 kernel alone on a column
/// range that starts and ends inside its groups. Shapes leave rows and columns past the
/// kernels' tiles; weights are raw blocks with every byte value (-128 included) and whole
/// blocks at ±127, activations are rounded as the engine rounds them, some blocks at ±127.
#[test]
fn q8_0_matmul_is_bit_for_bit_the_portable_kernel() {
    if !crate::cpu::features().avx512_vnni_f16c() {
        println!("note: no AVX-512 VNNI here; the AVX2 path is what this test compares");
    }
    let mut lcg = crate::testing::Lcg::new(11);
    for (m, n, per) in [
        (1, 37, 3),
        (1, 16, 1),
        (2, 16, 1),
        (3, 9, 2),
        (5, 40, 5),
        (8, 23, 4),
        (13, 17, 1),
        (33, 50, 2),
        (6, 7, 3),
    ] {
        let k = per * 32;
        let mut bytes = Vec::with_capacity(n * per * 34);
        for (b, v) in lcg.values(n * per * 33).chunks_exact(33).enumerate() {
            // Random mantissas, so that a scale product rounded otherwise would show.
            bytes.extend(f16::from_f32((v[0] + 0.75) * 0.01).to_le_bytes());
            for &x in &v[1..] {
                let q = match (b % 4, x < 0.0) {
                    (0, true) => -127,
                    (0, false) => 127,
                    _ => (x * 256.0).floor() as i8,
                };
                bytes.push(q as u8);
            }
        }
        let len = bytes.len();
        let mm = GgmlMatMul::in_place(GgmlDType::Q8_0, n, k, &bytes.into(), 0..len)
            .unwrap()
            .unwrap();
        let mut x = random(m * k, 12 + m as u64);
        for (i, v) in x.iter_mut().enumerate() {
            if (i / 32) % 3 == 1 {
                *v = if i % 2 == 0 { 2.0 } else { -2.0 };
            }
        }
        let got = mm.forward(&x, m);
        let (Blocks::Q8_0(wb), Acts::Q8_0(a)) = (&mm.w, mm.quantize(&x, m)) else {
            unreachable!()
        };
        let want =
            |r: usize, c: usize| dot_q8_0(&wb[c * per..(c + 1) * per], &a[r * per..(r + 1) * per]);
        for r in 0..m {
            for c in 0..n {
                assert_eq!(
                    got[r * n + c].to_bits(),
                    want(r, c).to_bits(),
                    "m {m} n {n} per {per}: ({r},{c}) {} vs {}",
                    got[r * n + c],
                    want(r, c)
                );
            }
        }
        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
        if crate::cpu::features().avx512_vnni_f16c() {
            let cols = 3..n - 2;
            let mut out = vec![f32::NAN; m * n];
            let ptr = OutPtr(out.as_mut_ptr());
            unsafe { super::avx512_q8_0::tile_q8_0(wb, &a, per, m, n, cols.clone(), ptr) };
            for r in 0..m {
                for c in 0..n {
                    let v = out[r * n + c];
                    match cols.contains(&c) {
                        true => assert_eq!(v.to_bits(), want(r, c).to_bits(), "({r},{c})"),
                        false => assert!(v.is_nan(), "({r},{c}) outside the columns written"),
                    }
                }
            }
        }
    }
}
