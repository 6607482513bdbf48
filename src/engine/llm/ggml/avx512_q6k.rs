//! The Q6_K matmuls with AVX-512: for prompts ([`gemm_q6k`], VNNI), bit for bit
//! [`super::dots::dot_q6k_tiled`] (ggml's tiled kernel, taken from eight rows on), and
//! for generation ([`dot_q6k_pair`]), bit for bit [`super::avx2::dot_q6k`].
//!
//! Per pair, [`super::avx2::dot_q6k_tiled`] spends much of its time unpacking the 6-bit
//! codes again for every activation row and reducing eight lanes to one sum per block.
//! Here each group of sixteen weight rows is unpacked once per call into a small buffer,
//! interleaved so that one 512-bit line holds four consecutive codes (0..63) of each of
//! the sixteen rows. An activation's four bytes, broadcast, then go into one `vpdpbusd`
//! whose i32 lanes are the sixteen rows' sums: no horizontal reduction at all. A 16-value
//! sub-block starts from -32 × its activation sum (the codes' offset), and is multiplied
//! by the sixteen rows' scales (`vpmulld`) before it joins the block's sum; codes
//! pre-multiplied by their scales as i16 with `vpdpwssd` instead measured about half as
//! fast (twice the multiplies). Each line loaded serves six activation rows. Integer sums
//! are exact in any grouping, so only the float steps need keeping: per block,
//! `s1 as f32 * dw` and one FMA with the activation scale, per (row, column), as the
//! scalar kernel does.

// Built only by Rust >= 1.89, whose AVX-512 intrinsics are stable (see build.rs).
#![allow(clippy::incompatible_msrv)]
// Lane, row and sub-block indices read more plainly than iterator chains in this code.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use candle_core::quantized::k_quants::BlockQ6K;
use half::f16;

use super::blocks::{bytes_of, Q8K};
use super::dots::hsum8;
use super::matmul::OutPtr;

/// Bytes of one Q6_K block: `ql[128]`, `qh[64]`, `scales: [i8; 16]`, `d: f16`.
const SIZE: usize = 210;
/// Weight rows interleaved in one line: one per i32 lane.
const GROUP: usize = 16;
/// Lines per block of a group: 64 of codes (4 values each), 16 of scales, 1 of `d`.
const LINES: usize = 81;
/// Activation rows per pass over a block's lines, their sums kept in registers (six
/// measured about a tenth faster than four, eight slower).
const ROWS: usize = 6;

/// One interleaved line: lane `k` is weight row `k` of the group.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Transposes sixteen vectors of sixteen i32: lane `k` of `r[j]` becomes lane `j` of
/// the result `k`.
#[inline(always)]
unsafe fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
    let mut a = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // b[4g + j], 128-bit chunk c: lane 4c + j of rows 4g..4g+4.
    let mut b = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let a = &a[4 * g..4 * g + 4];
        b[4 * g] = _mm512_unpacklo_epi64(a[0], a[2]);
        b[4 * g + 1] = _mm512_unpackhi_epi64(a[0], a[2]);
        b[4 * g + 2] = _mm512_unpacklo_epi64(a[1], a[3]);
        b[4 * g + 3] = _mm512_unpackhi_epi64(a[1], a[3]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let (b0, b1, b2, b3) = (b[j], b[4 + j], b[8 + j], b[12 + j]);
        let c0 = _mm512_shuffle_i32x4::<0x44>(b0, b1);
        let c1 = _mm512_shuffle_i32x4::<0xEE>(b0, b1);
        let c2 = _mm512_shuffle_i32x4::<0x44>(b2, b3);
        let c3 = _mm512_shuffle_i32x4::<0xEE>(b2, b3);
        out[j] = _mm512_shuffle_i32x4::<0x88>(c0, c2);
        out[4 + j] = _mm512_shuffle_i32x4::<0xDD>(c0, c2);
        out[8 + j] = _mm512_shuffle_i32x4::<0x88>(c1, c3);
        out[12 + j] = _mm512_shuffle_i32x4::<0xDD>(c1, c3);
    }
    out
}

/// The 256 codes (0..63) of one block in element order, 64 per vector.
#[inline(always)]
unsafe fn codes(b: *const u8) -> [__m512i; 4] {
    let m15 = _mm512_set1_epi8(15);
    let m3 = _mm512_set1_epi8(3);
    let mut q = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        // Bytes 64h.. of `ql`: values 128h..128h+32 and 128h+32..128h+64 in the low
        // nibbles, the next 64 in the high ones; `qh` holds their top two bits, two bits
        // per 32-value quarter.
        let l = _mm512_loadu_si512(b.add(64 * h) as *const __m512i);
        let hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(b.add(128 + 32 * h) as *const __m256i));
        let top = |shift: __m512i| {
            _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srlv_epi64(hb, shift), m3))
        };
        let lo = _mm512_and_si512(l, m15);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(l), m15);
        q[2 * h] = _mm512_or_si512(lo, top(_mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)));
        q[2 * h + 1] = _mm512_or_si512(hi, top(_mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4)));
    }
    q
}

/// Interleaves weight rows `col..col + 16` (all `per` blocks) into `pack`.
#[inline(always)]
unsafe fn repack(wb: &[u8], per: usize, col: usize, pack: &mut [Line]) {
    let mut rows = [[_mm512_setzero_si512(); 4]; GROUP];
    let mut scales = [_mm512_setzero_si512(); GROUP];
    let mut d = [0u16; GROUP];
    for bi in 0..per {
        for k in 0..GROUP {
            let b = wb.as_ptr().add(((col + k) * per + bi) * SIZE);
            rows[k] = codes(b);
            scales[k] = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(192) as *const __m128i));
            d[k] = u16::from_le_bytes([*b.add(208), *b.add(209)]);
        }
        let dst = pack.as_mut_ptr().add(bi * LINES) as *mut __m512i;
        for g in 0..4 {
            let lines = transpose16(&std::array::from_fn(|k| rows[k][g]));
            for (j, v) in lines.iter().enumerate() {
                _mm512_store_si512(dst.add(16 * g + j), *v);
            }
        }
        for (s, v) in transpose16(&scales).iter().enumerate() {
            _mm512_store_si512(dst.add(64 + s), *v);
        }
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr() as *const __m256i));
        _mm512_store_ps(dst.add(80) as *mut f32, dw);
    }
}

/// `out[row + r][col..col + 16]` for `r < R` from a group's `pack`.
#[inline(always)]
unsafe fn pass<const R: usize>(
    pack: &[Line],
    a: &[Q8K],
    per: usize,
    row: usize,
    n: usize,
    col: usize,
    out: OutPtr,
) {
    let mut acc = [_mm512_setzero_ps(); R];
    for bi in 0..per {
        let lines = pack.as_ptr().add(bi * LINES) as *const __m512i;
        let y: [&Q8K; R] = std::array::from_fn(|r| a.get_unchecked((row + r) * per + bi));
        // -32 × each sub-block's activation sum: where that sub-block's sum starts.
        let mut start = [[0i32; 16]; R];
        for (s, yr) in start.iter_mut().zip(&y) {
            let bsums =
                _mm512_cvtepi16_epi32(_mm256_loadu_si256(yr.bsums.as_ptr() as *const __m256i));
            let v = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<5>(bsums));
            _mm512_storeu_si512(s.as_mut_ptr() as *mut __m512i, v);
        }
        let mut isum = [_mm512_setzero_si512(); R];
        for sub in 0..16 {
            let mut t: [__m512i; R] = std::array::from_fn(|r| _mm512_set1_epi32(start[r][sub]));
            for c in 0..4 {
                let w = _mm512_load_si512(lines.add(4 * sub + c));
                for r in 0..R {
                    let q = y[r].qs.as_ptr().add(16 * sub + 4 * c) as *const i32;
                    t[r] = _mm512_dpbusd_epi32(t[r], w, _mm512_set1_epi32(q.read_unaligned()));
                }
            }
            let scale = _mm512_load_si512(lines.add(64 + sub));
            for r in 0..R {
                isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(t[r], scale));
            }
        }
        let dw = _mm512_load_ps(lines.add(80) as *const f32);
        for r in 0..R {
            let sd = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r]), dw);
            acc[r] = _mm512_fmadd_ps(sd, _mm512_set1_ps(y[r].d), acc[r]);
        }
    }
    for (r, v) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.at((row + r) * n + col), *v);
    }
}

/// `out[row][col]` for rows `0..rows` and the columns of `cols` in whole groups of
/// sixteen, each the value of [`super::dots::dot_q6k_tiled`]. Returns the first column
/// it did not do (the caller does the last one to fifteen).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `w` holds `n` rows and `a` at least `rows`
/// rows of `per` blocks; `out` is an `rows × n` buffer whose columns `cols` are the
/// caller's alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
pub unsafe fn gemm_q6k(
    w: &[BlockQ6K],
    a: &[Q8K],
    per: usize,
    rows: usize,
    n: usize,
    cols: Range<usize>,
    out: OutPtr,
) -> usize {
    debug_assert!(w.len() >= n * per && a.len() >= rows * per);
    let wb = bytes_of(w);
    let mut pack = vec![Line([0; 64]); per * LINES];
    let mut col = cols.start;
    while col + GROUP <= cols.end {
        repack(wb, per, col, &mut pack);
        let mut row = 0;
        while row + ROWS <= rows {
            pass::<ROWS>(&pack, a, per, row, n, col, out);
            row += ROWS;
        }
        match rows - row {
            0 => {}
            1 => pass::<1>(&pack, a, per, row, n, col, out),
            2 => pass::<2>(&pack, a, per, row, n, col, out),
            3 => pass::<3>(&pack, a, per, row, n, col, out),
            4 => pass::<4>(&pack, a, per, row, n, col, out),
            _ => pass::<5>(&pack, a, per, row, n, col, out),
        }
        col += GROUP;
    }
    col
}

/// Two Q6_K rows · one Q8_K row, each as [`super::avx2::dot_q6k`] (ggml's AVX2
/// `ggml_vec_dot_q6_K_q8_K`) computes it: the same eight i32 lanes per row, the low 256
/// bits for `wa` and the high 256 for `wb`, the same FMA per lane and block, the same
/// final sum. Generation (one activation row) takes Q6_K this way, two weight rows per
/// pass.
///
/// # Safety
/// The CPU must have AVX-512 F and BW; `wa`, `wb` and `a` hold the same number of blocks.
#[target_feature(enable = "avx512f,avx512bw,fma")]
pub unsafe fn dot_q6k_pair(wa: &[BlockQ6K], wb: &[BlockQ6K], a: &[Q8K]) -> (f32, f32) {
    let (ba, bb) = (bytes_of(wa), bytes_of(wb));
    let m3 = _mm512_set1_epi8(3);
    let m15 = _mm512_set1_epi8(15);
    let pair = |pa: *const u8, pb: *const u8| {
        _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(pa as *const __m256i)),
            _mm256_loadu_si256(pb as *const __m256i),
        )
    };
    let mut acc = _mm512_setzero_ps();
    for (i, y) in a.iter().enumerate() {
        let (xa, xb) = (&ba[i * SIZE..][..SIZE], &bb[i * SIZE..][..SIZE]);
        // The weights stream from memory once per token; ask for them ahead.
        for row in [xa, xb] {
            let ahead = row.as_ptr().wrapping_add(4 * SIZE) as *const i8;
            for line in (0..SIZE).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
            }
        }
        let q8sums = _mm512_broadcast_i64x4(_mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i));
        let scales16 = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(
                xa.as_ptr().add(192) as *const __m128i
            ))),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.as_ptr().add(192) as *const __m128i)),
        );
        let sclsub = _mm512_slli_epi32::<5>(_mm512_madd_epi16(q8sums, scales16));
        let mut sumi = _mm512_setzero_si512();
        for j in 0..2 {
            let q4a = pair(xa.as_ptr().add(64 * j), xb.as_ptr().add(64 * j));
            let q4b = pair(xa.as_ptr().add(64 * j + 32), xb.as_ptr().add(64 * j + 32));
            let h = pair(xa.as_ptr().add(128 + 32 * j), xb.as_ptr().add(128 + 32 * j));
            let h0 = _mm512_slli_epi16::<4>(_mm512_and_si512(h, m3));
            let h1 = _mm512_slli_epi16::<2>(_mm512_and_si512(h, _mm512_set1_epi8(12)));
            let h2 = _mm512_and_si512(h, _mm512_set1_epi8(48));
            let h3 = _mm512_srli_epi16::<2>(_mm512_and_si512(h, _mm512_set1_epi8(-64)));
            let q = [
                _mm512_or_si512(_mm512_and_si512(q4a, m15), h0),
                _mm512_or_si512(_mm512_and_si512(q4b, m15), h1),
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(q4a), m15), h2),
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(q4b), m15), h3),
            ];
            for (c, qc) in q.iter().enumerate() {
                let chunk = 4 * j + c;
                let y8 = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    y.qs.as_ptr().add(32 * chunk) as *const __m256i
                ));
                let p16 = _mm512_maddubs_epi16(*qc, y8);
                // Per 128-bit lane, the scale of its 16 values: sub-blocks 2·chunk and
                // 2·chunk + 1 of each row, taken from `scales16`.
                let lo = 2 * chunk as i16;
                let idx = _mm512_set_epi16(
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    17 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    16 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    1 + lo,
                    lo,
                    lo,
                    lo,
                    lo,
                    lo,
                    lo,
                    lo,
                    lo,
                );
                let s16 = _mm512_permutexvar_epi16(idx, scales16);
                sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(s16, p16));
            }
        }
        let lanes = _mm512_sub_epi32(sumi, sclsub);
        let da = y.d * f16::from_le_bytes([xa[208], xa[209]]).to_f32();
        let db = y.d * f16::from_le_bytes([xb[208], xb[209]]).to_f32();
        let d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(da), _mm512_set1_ps(db));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lanes), acc);
    }
    let mut l = [0f32; 16];
    _mm512_storeu_ps(l.as_mut_ptr(), acc);
    let half = |h: &[f32]| hsum8([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    (half(&l[..8]), half(&l[8..]))
}
