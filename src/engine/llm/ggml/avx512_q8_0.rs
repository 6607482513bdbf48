//! The Q8_0 matmul with AVX-512 VNNI, bit for bit [`super::dots::dot_q8_0`] for every
//! (activation row, weight row) pair, as [`super::avx2::tile_q8_0`] is.
//!
//! `dot_q8_0` keeps eight f32 lanes per pair: lane l takes the integer sum of products
//! 4l..4l+3 of each block, times the product of the two scales, by one FMA per block.
//! One 32-bit lane of `vpdpbusd` sums exactly those four products, so a 512-bit register
//! holds the eight lanes of two pairs (two weight rows against one activation row).
//! `vpdpbusd` multiplies unsigned by signed bytes: one side is offset by 128 (xor 0x80)
//! and the sum starts from −128 × the other side's four-value sums, which leaves it
//! exact. For prompts each group of eight weight rows is packed once (two rows' blocks
//! side by side, their offset sums, their scales spread over lanes) and four activation
//! rows at a time pass over it; one activation row (generation) reads the weights where
//! they lie, sixteen rows at a time. The float steps are the scalar kernel's in its
//! order; `hsum_float_8`'s tree runs for sixteen pairs at once on shuffles.

// Built only by Rust >= 1.89, whose AVX-512 intrinsics are stable (see build.rs).
#![allow(clippy::incompatible_msrv)]
// Lane and register indices read more plainly than iterator chains in this code.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use candle_core::quantized::k_quants::BlockQ8_0;

use super::blocks::{bytes_of, Q8_0};
use super::matmul::OutPtr;

/// Bytes of one Q8_0 block: the f16 scale, then 32 signed bytes.
const SIZE: usize = 34;
/// Weight-row pairs packed together for prompts (eight rows).
const PAIRS: usize = 4;
/// Activation rows per pass over a packed group: with `PAIRS`, sixteen accumulators.
const ROWS: usize = 4;

/// One block of two weight rows, as the prompt kernel reads it for every activation row.
#[derive(Clone, Copy)]
struct Pair {
    /// The two rows' 32 bytes, in the low and high 256 bits.
    x: __m512i,
    /// −128 × each lane's four-byte sum, which cancels the activations' +128 offset.
    corr: __m512i,
    /// The two rows' scales, each over its eight lanes.
    d: __m512,
}

#[inline(always)]
unsafe fn half(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The f16 scale bits at the head of the block at `p`.
#[inline(always)]
unsafe fn scale_bits(p: *const u8) -> u16 {
    (p as *const u16).read_unaligned()
}

/// The 32 bytes at `lo` and the 32 at `hi`, in the low and high 256 bits.
#[inline(always)]
unsafe fn two(lo: *const u8, hi: *const u8) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_loadu_si256(lo as *const __m256i)),
        _mm256_loadu_si256(hi as *const __m256i),
    )
}

/// Scale `a` in the low eight lanes, `b` in the high eight (f16 bits, converted exactly).
#[inline(always)]
unsafe fn two_scales(a: u16, b: u16) -> __m512 {
    _mm512_cvtph_ps(_mm256_set_m128i(
        _mm_set1_epi16(b as i16),
        _mm_set1_epi16(a as i16),
    ))
}

/// −128 × the sum of each 32-bit lane's four signed bytes of `v`.
#[inline(always)]
unsafe fn minus_128_sums(v: __m512i) -> __m512i {
    let zero = _mm512_setzero_si512();
    _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(-128), v))
}

/// [`super::dots::hsum8`] of each 256-bit half of `v`: lane 2k + h holds that of half h
/// of `v[k]`. Each step adds the same two values `hsum8` adds.
#[inline(always)]
unsafe fn reduce8(v: &[__m512; 8]) -> __m512 {
    // Lanes i and i + 4 of each half: 128-bit lane L of s1[i] holds pair 4i + L.
    let mut s1 = [_mm512_setzero_ps(); 4];
    for i in 0..4 {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        s1[i] = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        );
    }
    // r0 + r2 and r1 + r3, for two registers side by side in each 128-bit lane.
    let mut s2 = [_mm512_setzero_ps(); 2];
    for j in 0..2 {
        let (c, d) = (s1[2 * j], s1[2 * j + 1]);
        s2[j] = _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(c, d),
            _mm512_shuffle_ps::<0xEE>(c, d),
        );
    }
    // Lane t of 128-bit lane L: pair 4t + L.
    let s3 = _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(s2[0], s2[1]),
        _mm512_shuffle_ps::<0xDD>(s2[0], s2[1]),
    );
    let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_permutexvar_ps(order, s3)
}

/// Stores the first `count` of the eight floats `v` at `p`.
#[inline(always)]
unsafe fn store8(v: __m256, p: *mut f32, count: usize) {
    if count >= 8 {
        _mm256_storeu_ps(p, v);
    } else {
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(l.as_ptr(), p, count);
    }
}

/// Packs block by block the weight rows `col..col + 2·PAIRS`, the row `last` standing in
/// for those past it.
#[inline(always)]
unsafe fn pack(wb: *const u8, per: usize, col: usize, last: usize, out: &mut [[Pair; PAIRS]]) {
    for (bi, blk) in out.iter_mut().enumerate() {
        for (j, p) in blk.iter_mut().enumerate() {
            let c0 = (col + 2 * j).min(last);
            let c1 = (col + 2 * j + 1).min(last);
            let (b0, b1) = (
                wb.add((c0 * per + bi) * SIZE),
                wb.add((c1 * per + bi) * SIZE),
            );
            let x = two(b0.add(2), b1.add(2));
            *p = Pair {
                x,
                corr: minus_128_sums(x),
                d: two_scales(scale_bits(b0), scale_bits(b1)),
            };
        }
    }
}

/// The accumulators of activation rows `row..row + R` against a packed group.
#[inline(always)]
unsafe fn rows<const R: usize>(
    packed: &[[Pair; PAIRS]],
    ab: *const u8,
    dy: &[f32],
    per: usize,
    row: usize,
) -> [[__m512; PAIRS]; R] {
    let bias = _mm512_set1_epi8(-128);
    let mut acc = [[_mm512_setzero_ps(); PAIRS]; R];
    for (bi, blk) in packed.iter().enumerate() {
        for r in 0..R {
            let i = (row + r) * per + bi;
            let y = _mm256_loadu_si256(ab.add(i * SIZE + 2) as *const __m256i);
            let yu = _mm512_xor_si512(_mm512_broadcast_i64x4(y), bias);
            let d_y = _mm512_set1_ps(*dy.get_unchecked(i));
            for j in 0..PAIRS {
                let s = _mm512_dpbusd_epi32(blk[j].corr, yu, blk[j].x);
                let d = _mm512_mul_ps(blk[j].d, d_y);
                acc[r][j] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[r][j]);
            }
        }
    }
    acc
}

/// Sums and stores the accumulators of [`rows`]: (row + r, col + 2j + h) from half h of
/// `acc[r][j]`, for the columns before `end`.
#[inline(always)]
unsafe fn store<const R: usize>(
    acc: &[[__m512; PAIRS]; R],
    row: usize,
    col: usize,
    end: usize,
    n: usize,
    out: OutPtr,
) {
    const { assert!(PAIRS == 4) };
    let count = end - col;
    for r in (0..R).step_by(2) {
        // Two rows' eight columns, in order.
        let mut v = [_mm512_setzero_ps(); 8];
        v[..4].copy_from_slice(&acc[r]);
        if r + 1 < R {
            v[4..].copy_from_slice(&acc[r + 1]);
        }
        let s = reduce8(&v);
        store8(
            _mm512_castps512_ps256(s),
            out.at((row + r) * n + col),
            count,
        );
        if r + 1 < R {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(s)));
            store8(hi, out.at((row + r + 1) * n + col), count);
        }
    }
}

/// One activation row: sixteen weight rows per pass, read in place.
#[inline(always)]
unsafe fn gemv(wb: *const u8, a: &[Q8_0], per: usize, cols: Range<usize>, out: OutPtr) {
    let bias = _mm512_set1_epi8(-128);
    // The weights take the +128 offset here, so the activations' sums are the ones to
    // take out, once per block for all columns.
    let mut ys = Vec::with_capacity(per);
    for y in &a[..per] {
        let v = _mm512_broadcast_i64x4(_mm256_loadu_si256(y.qs.as_ptr() as *const __m256i));
        ys.push((v, minus_128_sums(v), half(y.d.to_bits())));
    }
    // Lanes 2j (low eight) and 2j + 1 (high eight) of the sixteen columns' scales.
    let mut spread = [_mm512_setzero_si512(); 8];
    for j in 0..8 {
        let (lo, hi) = (
            _mm256_set1_epi32(2 * j as i32),
            _mm256_set1_epi32(2 * j as i32 + 1),
        );
        spread[j] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    }
    let last = cols.end - 1;
    let mut col = cols.start;
    while col < cols.end {
        let mut base = [wb; 16];
        for i in 0..16 {
            base[i] = wb.add((col + i).min(last) * per * SIZE);
        }
        let mut acc = [_mm512_setzero_ps(); 8];
        for (bi, &(yv, corr, dy)) in ys.iter().enumerate() {
            let at = bi * SIZE;
            let h = |i: usize| scale_bits(base[i].add(at)) as i16;
            let bits = _mm256_set_epi16(
                h(15),
                h(14),
                h(13),
                h(12),
                h(11),
                h(10),
                h(9),
                h(8),
                h(7),
                h(6),
                h(5),
                h(4),
                h(3),
                h(2),
                h(1),
                h(0),
            );
            let d = _mm512_mul_ps(_mm512_cvtph_ps(bits), _mm512_set1_ps(dy));
            for j in 0..8 {
                let (b0, b1) = (base[2 * j].add(at), base[2 * j + 1].add(at));
                let xu = _mm512_xor_si512(two(b0.add(2), b1.add(2)), bias);
                let s = _mm512_dpbusd_epi32(corr, xu, yv);
                let dj = _mm512_permutexvar_ps(spread[j], d);
                acc[j] = _mm512_fmadd_ps(dj, _mm512_cvtepi32_ps(s), acc[j]);
            }
        }
        let s = reduce8(&acc);
        let count = cols.end - col;
        if count >= 16 {
            _mm512_storeu_ps(out.at(col), s);
        } else {
            let mut l = [0f32; 16];
            _mm512_storeu_ps(l.as_mut_ptr(), s);
            std::ptr::copy_nonoverlapping(l.as_ptr(), out.at(col), count);
        }
        col += 16;
    }
}

/// [`super::dots::dot_q8_0`] for every activation row and the weight rows `cols` of an
/// m × n product, with AVX-512 VNNI.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI, FMA and F16C; `w` holds `n` rows and `a` `m`
/// rows of `per` blocks; `out` is an m × n buffer whose columns `cols` are the caller's
/// alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub unsafe fn tile_q8_0(
    w: &[BlockQ8_0],
    a: &[Q8_0],
    per: usize,
    m: usize,
    n: usize,
    cols: Range<usize>,
    out: OutPtr,
) {
    debug_assert!(w.len() >= n * per && a.len() >= m * per && cols.end <= n);
    if cols.is_empty() || m == 0 {
        return;
    }
    let wb = bytes_of(w).as_ptr();
    if m == 1 {
        gemv(wb, a, per, cols, out);
        return;
    }
    let ab = bytes_of(a).as_ptr();
    // The activations' scales as f32, once for every column group.
    let mut dy = vec![0f32; m * per];
    let mut eights = a[..m * per].chunks_exact(8);
    for (i, y) in eights.by_ref().enumerate() {
        let h = |k: usize| y[k].d.to_bits() as i16;
        let bits = _mm_set_epi16(h(7), h(6), h(5), h(4), h(3), h(2), h(1), h(0));
        _mm256_storeu_ps(dy.as_mut_ptr().add(8 * i), _mm256_cvtph_ps(bits));
    }
    let done = m * per - eights.remainder().len();
    for (d, y) in dy[done..].iter_mut().zip(eights.remainder()) {
        *d = half(y.d.to_bits());
    }
    let zero = Pair {
        x: _mm512_setzero_si512(),
        corr: _mm512_setzero_si512(),
        d: _mm512_setzero_ps(),
    };
    let mut packed = vec![[zero; PAIRS]; per];
    let mut col = cols.start;
    while col < cols.end {
        pack(wb, per, col, cols.end - 1, &mut packed);
        let mut row = 0;
        while row + ROWS <= m {
            let acc = rows::<ROWS>(&packed, ab, &dy, per, row);
            store(&acc, row, col, cols.end, n, out);
            row += ROWS;
        }
        while row < m {
            let acc = rows::<1>(&packed, ab, &dy, per, row);
            store(&acc, row, col, cols.end, n, out);
            row += 1;
        }
        col += 2 * PAIRS;
    }
}
