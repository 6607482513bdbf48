//! AVX2 versions of the block dot products: the same integer sums, grouped into the
//! same lanes, and the same float operations in the same order as the portable ones
//! (tests check them bit for bit).
//!
//! These run where [`crate::cpu::features`] reports AVX2 and FMA (F16C too for the
//! Q8_0 tiles); [`super::matmul`] checks before it calls them.

// Lane and register indices read more plainly than iterator chains in this code.
#![allow(clippy::needless_range_loop)]

use super::blocks::{bytes_of, Q8K, Q8_0};
use super::dots::{hsum8, scale_min_k4};
use super::matmul::OutPtr;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8_0};
use half::f16;
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn hsum_ps(x: __m256) -> f32 {
    let mut l = [0f32; 8];
    _mm256_storeu_ps(l.as_mut_ptr(), x);
    hsum8(l)
}

#[inline(always)]
unsafe fn hsum_epi32(x: __m256i) -> i32 {
    let mut l = [0i32; 8];
    _mm256_storeu_si256(l.as_mut_ptr() as *mut __m256i, x);
    l.iter().sum()
}

#[inline(always)]
unsafe fn half(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// `C` weight rows · `R` activation rows of Q8_0 blocks, each dot as [`super::dots::dot_q8_0`]
/// (constant sizes keep the accumulators in registers).
#[inline(always)]
unsafe fn q8_0_block<const C: usize, const R: usize>(
    wb: &[u8],
    a: &[Q8_0],
    per: usize,
    col: usize,
    row: usize,
) -> [[f32; R]; C] {
    const SIZE: usize = 34;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); R]; C];
    for bi in 0..per {
        let mut ay = [_mm256_setzero_si256(); R];
        let mut dy = [0f32; R];
        for r in 0..R {
            let y = a.get_unchecked((row + r) * per + bi);
            ay[r] = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            dy[r] = half(y.d.to_bits());
        }
        for c in 0..C {
            let blk = wb.as_ptr().add(((col + c) * per + bi) * SIZE);
            let dw = half(u16::from_le_bytes([*blk, *blk.add(1)]));
            let qx = _mm256_loadu_si256(blk.add(2) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            for r in 0..R {
                let sy = _mm256_sign_epi8(ay[r], qx);
                let q = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones));
                acc[c][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[r]), q, acc[c][r]);
            }
        }
    }
    let mut out = [[0f32; R]; C];
    for c in 0..C {
        for r in 0..R {
            out[c][r] = hsum_ps(acc[c][r]);
        }
    }
    out
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn q8_0_store<const C: usize, const R: usize>(
    wb: &[u8],
    a: &[Q8_0],
    per: usize,
    n: usize,
    col: usize,
    row: usize,
    out: OutPtr,
) {
    let v = q8_0_block::<C, R>(wb, a, per, col, row);
    for c in 0..C {
        for r in 0..R {
            *out.at((row + r) * n + col + c) = v[c][r];
        }
    }
}

/// [`super::dots::dot_q8_0`] for columns `cols` of an m × n product: four weight rows at
/// a time for one activation row, else two weight rows by four activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_q8_0(
    w: &[BlockQ8_0],
    a: &[Q8_0],
    per: usize,
    m: usize,
    n: usize,
    cols: std::ops::Range<usize>,
    out: OutPtr,
) {
    let wb = bytes_of(w);
    let mut col = cols.start;
    if m == 1 {
        while col < cols.end {
            q8_0_store::<1, 1>(wb, a, per, n, col, 0, out);
            col += 1;
        }
        return;
    }
    // One weight row at a time: interleaving several rows' blocks halves the
    // bandwidth here (measured), while four activation rows share each weight load.
    while col < cols.end {
        let mut row = 0;
        while row + 4 <= m {
            q8_0_store::<1, 4>(wb, a, per, n, col, row, out);
            row += 4;
        }
        while row < m {
            q8_0_store::<1, 1>(wb, a, per, n, col, row, out);
            row += 1;
        }
        col += 1;
    }
}

/// See [`super::dots::dot_q4k`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q4k(w: &[BlockQ4K], a: &[Q8K], per_64: bool) -> f32 {
    const SIZE: usize = 144;
    let m4 = _mm256_set1_epi8(0x0F);
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
        let scales = &b[4..16];
        let (mut vsum, mut imin) = (_mm256_setzero_si256(), 0i32);
        for j in 0..4 {
            let q = _mm256_loadu_si256(b.as_ptr().add(16 + 32 * j) as *const __m256i);
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            let y0 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j) as *const __m256i);
            let y1 = _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32) as *const __m256i);
            let (s0, m0) = scale_min_k4(2 * j, scales);
            let (s1, m1) = scale_min_k4(2 * j + 1, scales);
            // Integer sums are exact in any grouping.
            let p = _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16(s0 as i16)),
                _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16(s1 as i16)),
            );
            vsum = _mm256_add_epi32(vsum, p);
            imin += m0 * (y.bsums[4 * j] as i32 + y.bsums[4 * j + 1] as i32)
                + m1 * (y.bsums[4 * j + 2] as i32 + y.bsums[4 * j + 3] as i32);
            if per_64 {
                acc = (hsum_epi32(vsum) as f32).mul_add(d * y.d, acc);
                acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
                (vsum, imin) = (_mm256_setzero_si256(), 0);
            }
        }
        if !per_64 {
            acc = (hsum_epi32(vsum) as f32).mul_add(d * y.d, acc);
            acc_min = (imin as f32).mul_add(dmin * y.d, acc_min);
        }
    }
    acc - acc_min
}

/// The eight i32 lanes of ggml's AVX2 Q6_K kernel for one block (see
/// [`super::dots::dot_q6k`]), scales applied and the -32 offset taken out.
#[inline(always)]
unsafe fn q6k_lanes(b: &[u8], y: &Q8K) -> __m256i {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    let ql = b.as_ptr();
    let qh = b.as_ptr().add(128);
    let sc = b.as_ptr().add(192) as *const i8;
    let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
    let scales = _mm_loadu_si128(sc as *const __m128i);
    let scales16 = _mm256_cvtepi8_epi16(scales);
    let sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales16), 5);
    let mut sumi = _mm256_setzero_si256();
    for j in 0..2 {
        let q4a = _mm256_loadu_si256(ql.add(64 * j) as *const __m256i);
        let q4b = _mm256_loadu_si256(ql.add(64 * j + 32) as *const __m256i);
        let h = _mm256_loadu_si256(qh.add(32 * j) as *const __m256i);
        let h0 = _mm256_slli_epi16(_mm256_and_si256(h, m3), 4);
        let h1 = _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(12)), 2);
        let h2 = _mm256_and_si256(h, _mm256_set1_epi8(48));
        let h3 = _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(-64)), 2);
        let q = [
            _mm256_or_si256(_mm256_and_si256(q4a, m15), h0),
            _mm256_or_si256(_mm256_and_si256(q4b, m15), h1),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4a, 4), m15), h2),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4b, 4), m15), h3),
        ];
        for (c, qc) in q.iter().enumerate() {
            let chunk = 4 * j + c;
            let y8 = _mm256_loadu_si256(y.qs.as_ptr().add(32 * chunk) as *const __m256i);
            let p16 = _mm256_maddubs_epi16(*qc, y8);
            // Scales of the chunk's two 16-value halves, one per i16 lane.
            let s_lo = _mm_set1_epi16(*sc.add(2 * chunk) as i16);
            let s_hi = _mm_set1_epi16(*sc.add(2 * chunk + 1) as i16);
            let s16 = _mm256_set_m128i(s_hi, s_lo);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s16, p16));
        }
    }
    _mm256_sub_epi32(sumi, sclsub)
}

/// See [`super::dots::dot_q6k`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q6k(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
    const SIZE: usize = 210;
    let mut acc = _mm256_setzero_ps();
    for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
        let d = y.d * f16::from_le_bytes([b[208], b[209]]).to_f32();
        let lanes = q6k_lanes(b, y);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    hsum_ps(acc)
}

/// See [`super::dots::dot_q6k_tiled`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q6k_tiled(w: &[BlockQ6K], a: &[Q8K]) -> f32 {
    const SIZE: usize = 210;
    let mut acc = 0f32;
    for (b, y) in bytes_of(w).chunks_exact(SIZE).zip(a) {
        let dw = f16::from_le_bytes([b[208], b[209]]).to_f32();
        let s1 = hsum_epi32(q6k_lanes(b, y));
        acc = (s1 as f32 * dw).mul_add(y.d, acc);
    }
    acc
}
