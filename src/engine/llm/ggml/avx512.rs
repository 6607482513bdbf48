//! The K-quant matmuls with AVX-512, each bit for bit the portable or AVX2 kernel it
//! replaces: Q4_K for prompts ([`gemm_q4k`], sixteen weight rows by four activation
//! rows) and for generation ([`gemv_q4k`], one row by sixteen), Q6_K for generation
//! ([`dot_q6k_pair`], two weight rows per pass).
//!
//! Q4_K is most of a Q4_K_M model, and llama.cpp multiplies it with one float FMA per 64
//! values (prompts, [`super::dots::dot_q4k`] with `per_64`) or per block (generation) for
//! each (row, column). Per pair [`super::avx2::dot_q4k`] spends most of its time on what
//! is not multiplying: a horizontal sum and the scale and min extraction for every 64
//! values. For prompts the sixteen weight rows of a column group are repacked once for
//! all activation rows (as llama.cpp repacks Q4_K at load, but per call, so loading
//! copies nothing): a vector holds four quant bytes of each row, a broadcast activation
//! meets all sixteen in one `vpdpbusd`, and each lane sums one row with no horizontal
//! sum. For generation one `vpdpbusd` takes each pair's 64 products, sixteen pairs' sums
//! are reduced together by one shuffle tree, and scales and mins are gathered and
//! unpacked in vector registers. Either way each lane then gets the scalar kernel's FMAs
//! in the scalar kernel's order; integer sums are exact in any grouping, so every result
//! is bit for bit that of `dot_q4k`.

// Built only by Rust >= 1.89, whose AVX-512 intrinsics are stable (see build.rs).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;
use std::ops::Range;

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K};
use half::f16;

use super::blocks::{bytes_of, Q8K};
use super::dots::{hsum8, scale_min_k4};
use super::matmul::OutPtr;

/// Bytes of one Q4_K block.
const SIZE: usize = 144;

/// Sixteen weight rows of Q4_K (a column group), repacked for [`gemm_q4k`]: one vector
/// holds the same four quant bytes of all sixteen rows, so a broadcast activation meets
/// sixteen rows at once and each i32 lane sums one row, with no horizontal sums. Rows
/// past the group's width are zero.
struct Group {
    /// `[block][64-value group j][4-byte step e]`: lane c holds row c's bytes
    /// `32j + 4e..32j + 4e + 4` (low nibbles: values `64j + 4e..`, high: `64j + 32 + 4e..`).
    qs: Vec<[i32; 16]>,
    /// `[block][sub-block]`: the 6-bit scales.
    scales: Vec<[i32; 16]>,
    /// `[block][j]`: the mins of sub-blocks 2j and 2j + 1 as an i16 pair.
    mins: Vec<[i32; 16]>,
    /// `[block]`: the block scales.
    d: Vec<[f32; 16]>,
    /// `[block]`: the block min scales.
    dmin: Vec<[f32; 16]>,
}

impl Group {
    fn new(per: usize) -> Group {
        Group {
            qs: vec![[0; 16]; per * 32],
            scales: vec![[0; 16]; per * 8],
            mins: vec![[0; 16]; per * 4],
            d: vec![[0.0; 16]; per],
            dmin: vec![[0.0; 16]; per],
        }
    }

    /// Rows `col..col + width` of `wb` (`per` blocks each).
    fn fill(&mut self, wb: &[u8], per: usize, col: usize, width: usize) {
        for bi in 0..per {
            for c in 0..16 {
                if c >= width {
                    // A short last group: zero rows, results not stored.
                    (self.d[bi][c], self.dmin[bi][c]) = (0.0, 0.0);
                    (0..32).for_each(|i| self.qs[bi * 32 + i][c] = 0);
                    (0..8).for_each(|i| self.scales[bi * 8 + i][c] = 0);
                    (0..4).for_each(|i| self.mins[bi * 4 + i][c] = 0);
                    continue;
                }
                let b = &wb[((col + c) * per + bi) * SIZE..][..SIZE];
                self.d[bi][c] = f16::from_le_bytes([b[0], b[1]]).to_f32();
                self.dmin[bi][c] = f16::from_le_bytes([b[2], b[3]]).to_f32();
                let mut mins = [0i32; 8];
                for sub in 0..8 {
                    let (sc, m) = scale_min_k4(sub, &b[4..16]);
                    self.scales[bi * 8 + sub][c] = sc;
                    mins[sub] = m;
                }
                for j in 0..4 {
                    self.mins[bi * 4 + j][c] = mins[2 * j] | mins[2 * j + 1] << 16;
                }
                for (i, q) in b[16..].chunks_exact(4).enumerate() {
                    self.qs[bi * 32 + i][c] = i32::from_le_bytes([q[0], q[1], q[2], q[3]]);
                }
            }
        }
    }

    /// Rows `row..row + 4` of `a` against the group: lane c of result r is
    /// `dot_q4k(weight row c, activation row row + r)` with `per_64`.
    #[inline(always)]
    unsafe fn four_rows(&self, a: &[Q8K], per: usize, row: usize) -> [__m512; 4] {
        let m4 = _mm512_set1_epi8(0x0F);
        let load = |v: &[i32; 16]| _mm512_loadu_si512(v.as_ptr() as *const __m512i);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut acc_min = [_mm512_setzero_ps(); 4];
        for bi in 0..per {
            let y: [&Q8K; 4] = std::array::from_fn(|r| a.get_unchecked((row + r) * per + bi));
            let d = _mm512_loadu_ps(self.d[bi].as_ptr());
            let dmin = _mm512_loadu_ps(self.dmin[bi].as_ptr());
            // `d * y.d` as the scalar kernel rounds it.
            let yd: [__m512; 4] = std::array::from_fn(|r| _mm512_set1_ps(y[r].d));
            for j in 0..4 {
                let mut lo = [_mm512_setzero_si512(); 4];
                let mut hi = [_mm512_setzero_si512(); 4];
                for e in 0..8 {
                    let q = load(&self.qs[bi * 32 + j * 8 + e]);
                    let ql = _mm512_and_si512(q, m4);
                    let qh = _mm512_and_si512(_mm512_srli_epi16::<4>(q), m4);
                    for r in 0..4 {
                        let at = y[r].qs.as_ptr().add(64 * j + 4 * e);
                        let yl = _mm512_set1_epi32((at as *const i32).read_unaligned());
                        let yh = _mm512_set1_epi32((at.add(32) as *const i32).read_unaligned());
                        lo[r] = _mm512_dpbusd_epi32(lo[r], ql, yl);
                        hi[r] = _mm512_dpbusd_epi32(hi[r], qh, yh);
                    }
                }
                let (s0, s1) = (
                    load(&self.scales[bi * 8 + 2 * j]),
                    load(&self.scales[bi * 8 + 2 * j + 1]),
                );
                let mins = load(&self.mins[bi * 4 + j]);
                for r in 0..4 {
                    let isum = _mm512_add_epi32(
                        _mm512_mullo_epi32(lo[r], s0),
                        _mm512_mullo_epi32(hi[r], s1),
                    );
                    let bs = &y[r].bsums[4 * j..4 * j + 4];
                    let pair =
                        (bs[0] + bs[1]) as u16 as u32 | ((bs[2] + bs[3]) as u16 as u32) << 16;
                    let imin = _mm512_madd_epi16(mins, _mm512_set1_epi32(pair as i32));
                    acc[r] =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, yd[r]), acc[r]);
                    acc_min[r] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(imin),
                        _mm512_mul_ps(dmin, yd[r]),
                        acc_min[r],
                    );
                }
            }
        }
        std::array::from_fn(|r| _mm512_sub_ps(acc[r], acc_min[r]))
    }
}

/// Lane `i` of the two results: the sum of the low eight and of the high eight i32 lanes
/// of `v[i]`.
#[inline(always)]
unsafe fn reduce16(v: &[__m512i; 16]) -> (__m512i, __m512i) {
    let mut a = [_mm512_setzero_si512(); 8];
    for i in 0..8 {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
    }
    // Per 128-bit lane of b[i]: the lane's sums of v[4i], v[4i+1], v[4i+2], v[4i+3].
    let mut b = [_mm512_setzero_si512(); 4];
    for i in 0..4 {
        let (x, y) = (a[2 * i], a[2 * i + 1]);
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    }
    // [low(v0..3), high(v0..3), low(v4..7), high(v4..7)] and the same for v8..15.
    let c0 = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x88>(b[0], b[1]),
        _mm512_shuffle_i32x4::<0xDD>(b[0], b[1]),
    );
    let c1 = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x88>(b[2], b[3]),
        _mm512_shuffle_i32x4::<0xDD>(b[2], b[3]),
    );
    (
        _mm512_shuffle_i32x4::<0x88>(c0, c1),
        _mm512_shuffle_i32x4::<0xDD>(c0, c1),
    )
}

/// `out[row][col]` for rows `0..rows` (a multiple of four) and the columns `cols`, each
/// the value of [`super::dots::dot_q4k`] with `per_64`: sixteen weight rows at a time,
/// repacked ([`Group`]) once for all activation rows, against four activation rows.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `w` holds `n` rows and `a` at least `rows`
/// rows of `per` blocks; `out` is an `rows × n` buffer whose columns `cols` are the
/// caller's alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
pub unsafe fn gemm_q4k(
    w: &[BlockQ4K],
    a: &[Q8K],
    per: usize,
    rows: usize,
    n: usize,
    cols: Range<usize>,
    out: OutPtr,
) {
    debug_assert_eq!(rows % 4, 0);
    debug_assert!(w.len() >= n * per && a.len() >= rows * per);
    let wb = bytes_of(w);
    let mut group = Group::new(per);
    let mut col = cols.start;
    while col < cols.end {
        let width = (cols.end - col).min(16);
        group.fill(wb, per, col, width);
        for row in (0..rows).step_by(4) {
            let res = group.four_rows(a, per, row);
            for (r, v) in res.iter().enumerate() {
                let mut lanes = [0f32; 16];
                _mm512_storeu_ps(lanes.as_mut_ptr(), *v);
                for (c, &x) in lanes[..width].iter().enumerate() {
                    *out.at((row + r) * n + col + c) = x;
                }
            }
        }
        col += width;
    }
}

/// `out[row][col]` for one activation row and the columns of `cols` in whole groups of
/// sixteen (lane c of every vector is column c of the group), each the value of
/// [`super::dots::dot_q4k`] in gemv order (one FMA per block). Returns the first column
/// it did not do.
///
/// # Safety
/// As [`gemm_q4k`], with `row` a row of `a`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
pub unsafe fn gemv_q4k(
    w: &[BlockQ4K],
    a: &[Q8K],
    per: usize,
    row: usize,
    n: usize,
    cols: Range<usize>,
    out: OutPtr,
) -> usize {
    debug_assert!(w.len() >= n * per && a.len() >= (row + 1) * per);
    let wb = bytes_of(w);
    let shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    let m4 = _mm512_set1_epi8(0x0F);
    if per * SIZE * 15 > i32::MAX as usize {
        return cols.start; // offsets past the gathers' reach: the caller's kernel does it all
    }
    let (kmask1, kmask2, kmask3) = (
        _mm512_set1_epi32(0x3f3f_3f3f),
        _mm512_set1_epi32(0x0f0f_0f0f),
        _mm512_set1_epi32(0x0303_0303),
    );
    // Byte offsets of the sixteen columns' blocks from the first one's.
    let offsets = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((per * SIZE) as i32),
    );
    let mut col = cols.start;
    while col + 16 <= cols.end {
        let mut acc = _mm512_setzero_ps();
        let mut acc_min = _mm512_setzero_ps();
        for bi in 0..per {
            let y = a.get_unchecked(row * per + bi);
            // The sixteen blocks' headers side by side (lane c: column c): the two f16
            // scales, then ggml's `utmp` unpacking of the 6-bit scales and mins.
            let base = wb.as_ptr().add((col * per + bi) * SIZE) as *const i32;
            let word = |at: usize| _mm512_i32gather_epi32::<1>(offsets, base.byte_add(at));
            let (w0, u0, u1, u2) = (word(0), word(4), word(8), word(12));
            let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w0));
            let dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(w0)));
            let high = |u: __m512i, v: __m512i| {
                _mm512_or_si512(
                    _mm512_and_si512(v, kmask2),
                    _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(u), kmask3)),
                )
            };
            let packed = [
                _mm512_and_si512(u0, kmask1),
                high(u0, u2),
                _mm512_and_si512(u1, kmask1),
                high(u1, _mm512_srli_epi32::<4>(u2)),
            ];
            // Scales of sub-blocks 0..8, then mins of sub-blocks 0..8.
            let sm: [__m512i; 16] = std::array::from_fn(|k| {
                let v = packed[k / 4];
                _mm512_and_si512(
                    _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * (k % 4) as i32)),
                    _mm512_set1_epi32(0xFF),
                )
            });
            let mut isum = _mm512_setzero_si512();
            for j in 0..4 {
                let yv = _mm512_loadu_si512(y.qs.as_ptr().add(64 * j) as *const __m512i);
                let mut p = [_mm512_setzero_si512(); 16];
                for (c, pc) in p.iter_mut().enumerate() {
                    let q = wb.as_ptr().add(((col + c) * per + bi) * SIZE + 16 + 32 * j);
                    let q = _mm512_broadcast_i64x4(_mm256_loadu_si256(q as *const __m256i));
                    let wv = _mm512_and_si512(_mm512_srlv_epi64(q, shift), m4);
                    *pc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, yv);
                }
                let (lo, hi) = reduce16(&p);
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(lo, sm[2 * j]));
                isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(hi, sm[2 * j + 1]));
            }
            let mut imin = _mm512_setzero_si512();
            for sub in 0..8 {
                let bsub = y.bsums[2 * sub] as i32 + y.bsums[2 * sub + 1] as i32;
                imin = _mm512_add_epi32(
                    imin,
                    _mm512_mullo_epi32(sm[8 + sub], _mm512_set1_epi32(bsub)),
                );
            }
            let yd = _mm512_set1_ps(y.d);
            let dv = _mm512_mul_ps(d, yd);
            let dminv = _mm512_mul_ps(dmin, yd);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dv, acc);
            acc_min = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dminv, acc_min);
        }
        let mut res = [0f32; 16];
        _mm512_storeu_ps(res.as_mut_ptr(), _mm512_sub_ps(acc, acc_min));
        for (c, v) in res.into_iter().enumerate() {
            *out.at(row * n + col + c) = v;
        }
        col += 16;
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
    const SIZE6: usize = 210;
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
        let (xa, xb) = (&ba[i * SIZE6..][..SIZE6], &bb[i * SIZE6..][..SIZE6]);
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
