//! Attention over several new tokens (prompts) with AVX-512, bit for bit the portable
//! path of [`super::attention`].
//!
//! The portable path takes one query at a time and one key at a time: each score is a
//! 16-lane dot product reduced on its own, the softmax and the f16 rounding run one
//! value at a time over the whole cache (masked keys included), and each weighted value
//! is summed over positions into 16 slots. Here two queries meet eight keys per pass
//! (sixteen 16-lane accumulators, reduced together by one shuffle tree that adds in
//! `reduce16`'s order), only the key blocks a query can see are visited, the softmax
//! runs sixteen lanes at a time with ggml's vector `expf`, and the values are read
//! transposed (`vt`, one row per dimension, positions from a multiple of 16) so that a
//! slot is a vector lane: position `t` feeds lane `t % 16` by FMA in increasing `t`,
//! exactly the portable order. Masked keys weigh exactly 0 there, so visiting fewer of
//! them changes no sum.

// Built only by Rust >= 1.89, whose AVX-512 intrinsics are stable (see build.rs).
#![allow(clippy::incompatible_msrv)]
// Query, key and lane indices read more plainly than iterator chains in this code.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::attention::Attention;
use super::dots::LANES;

/// Keys (scores) or dimensions (values) per pass, for each of two queries.
const BLOCK: usize = 8;

/// Values transposed for [`attention_rows`]: row `d` holds dimension `d` of the values
/// at absolute positions `base..base + width`, zero where the cache holds none.
pub struct Transposed {
    data: Vec<f32>,
    base: usize,
    width: usize,
}

impl Transposed {
    /// `v` holds (positions from `start`, head_dim) values.
    pub fn new(v: &[f32], head_dim: usize, start: usize) -> Transposed {
        let n = v.len() / head_dim;
        let base = start - start % LANES;
        let width = (start + n).div_ceil(LANES) * LANES - base;
        let mut data = vec![0f32; head_dim * width];
        for (t, row) in v.chunks_exact(head_dim).enumerate() {
            let col = start - base + t;
            for (d, &x) in row.iter().enumerate() {
                data[d * width + col] = x;
            }
        }
        Transposed { data, base, width }
    }
}

/// Lane `4k + j` of the result is the [`super::dots::reduce16`] sum of `v[4j + k]`:
/// halves added (8, 4, 2, 1) for sixteen vectors at once.
#[inline(always)]
unsafe fn reduce16x16(v: &[__m512; 16]) -> [f32; 16] {
    let mut a = [_mm512_setzero_ps(); 8];
    for m in 0..8 {
        let (x, y) = (v[2 * m], v[2 * m + 1]);
        a[m] = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(x, y),
            _mm512_shuffle_f32x4::<0xEE>(x, y),
        );
    }
    let mut b = [_mm512_setzero_ps(); 4];
    for m in 0..4 {
        let (x, y) = (a[2 * m], a[2 * m + 1]);
        b[m] = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(x, y),
            _mm512_shuffle_f32x4::<0xDD>(x, y),
        );
    }
    let mut c = [_mm512_setzero_ps(); 2];
    for m in 0..2 {
        let (x, y) = (_mm512_castps_pd(b[2 * m]), _mm512_castps_pd(b[2 * m + 1]));
        c[m] = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
        );
    }
    let d = _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(c[0], c[1]),
        _mm512_shuffle_ps::<0xDD>(c[0], c[1]),
    );
    let mut out = [0f32; 16];
    _mm512_storeu_ps(out.as_mut_ptr(), d);
    out
}

/// Where [`reduce16x16`] puts the sum of its input `i`.
#[inline(always)]
fn lane_of(i: usize) -> usize {
    4 * (i % 4) + i / 4
}

/// `reduce16` of one vector.
#[inline(always)]
unsafe fn reduce16(v: __m512) -> f32 {
    let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let x = _mm256_add_ps(_mm512_castps512_ps256(v), high);
    let y = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let z = _mm_add_ps(y, _mm_movehl_ps(y, y));
    _mm_cvtss_f32(_mm_add_ss(z, _mm_movehdup_ps(z)))
}

/// ggml's AVX-512 `ggml_v_expf`, of which [`super::attention::v_expf`] is one lane.
#[inline(always)]
unsafe fn v_expf(x: __m512) -> __m512 {
    let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
    let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
    );
    let res = _mm512_scalef_ps(j, n);
    if big == 0 {
        return res;
    }
    let le0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps());
    let alt = _mm512_mask_blend_ps(le0, _mm512_set1_ps(f32::INFINITY), _mm512_setzero_ps());
    _mm512_mask_blend_ps(big, res, alt)
}

/// The keys query row `row` sees, as absolute positions (inclusive).
fn visible(a: &Attention, row: usize) -> (usize, usize) {
    let n = a.k.len() / a.head_dim;
    let qpos = a.offset + row % a.seq;
    let lo = a
        .window
        .map_or(a.start, |w| a.start.max((qpos + 1).saturating_sub(w)));
    (lo, qpos.min(a.start + n - 1))
}

/// Scores of `Q` query rows from `row` against the keys of positions `lo..=hi`, each
/// `dot_rows(k, q) * scale`, written to `p[r]` at position − `base`.
#[inline(always)]
unsafe fn scores<const Q: usize>(
    a: &Attention,
    row: usize,
    (lo, hi): (usize, usize),
    base: usize,
    p: &mut [&mut [f32]; 2],
) {
    let hd = a.head_dim;
    let q: [*const f32; Q] = std::array::from_fn(|r| a.q.as_ptr().add((row + r) * hd));
    let mut t = lo;
    while t <= hi {
        let keys: [*const f32; BLOCK] =
            std::array::from_fn(|kk| a.k.as_ptr().add(((t + kk).min(hi) - a.start) * hd));
        let mut acc = [_mm512_setzero_ps(); 16];
        for c in (0..hd).step_by(LANES) {
            for r in 0..Q {
                let qv = _mm512_loadu_ps(q[r].add(c));
                for kk in 0..BLOCK {
                    let kv = _mm512_loadu_ps(keys[kk].add(c));
                    acc[r * BLOCK + kk] = _mm512_fmadd_ps(kv, qv, acc[r * BLOCK + kk]);
                }
            }
        }
        let sums = reduce16x16(&acc);
        for r in 0..Q {
            for kk in 0..BLOCK.min(hi + 1 - t) {
                p[r][t + kk - base] = sums[lane_of(r * BLOCK + kk)] * a.scale;
            }
        }
        t += BLOCK;
    }
}

/// ggml's softmax of one row over the 16-aligned chunks `chunks` of `p` (masked
/// positions hold -inf), then the probabilities rounded to f16.
#[inline(always)]
unsafe fn softmax(p: &mut [f32], chunks: Range<usize>) {
    let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
    for c in chunks.clone() {
        max = _mm512_max_ps(max, _mm512_loadu_ps(p.as_ptr().add(c * LANES)));
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    let mut sum = 0f64;
    for c in chunks.clone() {
        let at = p.as_mut_ptr().add(c * LANES);
        let e = v_expf(_mm512_sub_ps(_mm512_loadu_ps(at), max));
        _mm512_storeu_ps(at, e);
        sum += reduce16(e) as f64;
    }
    let inv = _mm512_set1_ps((1.0 / sum) as f32);
    for c in chunks {
        let at = p.as_mut_ptr().add(c * LANES);
        let x = _mm512_mul_ps(_mm512_loadu_ps(at), inv);
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        _mm512_storeu_ps(at, _mm512_cvtph_ps(h));
    }
}

/// `out[r][d] = Σ_t p[r][t]·v[t][d]` for `Q` rows, summed over the chunks `chunks` in
/// sixteen slots as the portable `weighted_values` sums them.
#[inline(always)]
unsafe fn weighted_values<const Q: usize>(
    p: &[&mut [f32]; 2],
    vt: &Transposed,
    chunks: Range<usize>,
    hd: usize,
    out: &mut [f32],
) {
    for d0 in (0..hd).step_by(BLOCK) {
        let mut acc = [_mm512_setzero_ps(); 16];
        for c in chunks.clone() {
            for r in 0..Q {
                let pv = _mm512_loadu_ps(p[r].as_ptr().add(c * LANES));
                for dd in 0..BLOCK {
                    let v = vt.data.as_ptr().add((d0 + dd) * vt.width + c * LANES);
                    acc[r * BLOCK + dd] =
                        _mm512_fmadd_ps(pv, _mm512_loadu_ps(v), acc[r * BLOCK + dd]);
                }
            }
        }
        let sums = reduce16x16(&acc);
        for r in 0..Q {
            for dd in 0..BLOCK {
                out[r * hd + d0 + dd] = sums[lane_of(r * BLOCK + dd)];
            }
        }
    }
}

/// `Q` consecutive query rows of one head (consecutive positions).
#[inline(always)]
unsafe fn tile<const Q: usize>(
    a: &Attention,
    vt: &Transposed,
    row: usize,
    p: &mut [&mut [f32]; 2],
    out: &mut [f32],
) {
    let ranges: [(usize, usize); Q] = std::array::from_fn(|r| visible(a, row + r));
    let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
    let chunks = (lo - vt.base) / LANES..(hi - vt.base) / LANES + 1;
    for pr in p.iter_mut().take(Q) {
        pr[chunks.start * LANES..chunks.end * LANES].fill(f32::NEG_INFINITY);
    }
    scores::<Q>(a, row, (lo, hi), vt.base, p);
    for (r, &(rlo, rhi)) in ranges.iter().enumerate() {
        // The other query of the pair may see a key this one does not.
        for pos in (lo..rlo).chain(rhi + 1..=hi) {
            p[r][pos - vt.base] = f32::NEG_INFINITY;
        }
        softmax(p[r], chunks.clone());
    }
    weighted_values::<Q>(p, vt, chunks, a.head_dim, out);
}

/// Scores of query row `row` against the keys of positions `lo..=hi` as
/// `dot_vec_f16(k, q) * scale` sums them (one new token): four 16-lane accumulators per
/// key over 64-value steps, folded (0 + 2) + (1 + 3); sixteen keys reduced together.
/// Written to `p` at position − `base`.
#[inline(always)]
unsafe fn single_scores(
    a: &Attention,
    row: usize,
    (lo, hi): (usize, usize),
    base: usize,
    p: &mut [f32],
) {
    let hd = a.head_dim;
    let q = a.q.as_ptr().add(row * hd);
    let mut t = lo;
    while t <= hi {
        let mut folded = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let keys: [*const f32; 4] = std::array::from_fn(|kk| {
                a.k.as_ptr().add(((t + 4 * g + kk).min(hi) - a.start) * hd)
            });
            let mut acc = [[_mm512_setzero_ps(); 4]; 4];
            for i in (0..hd).step_by(4 * LANES) {
                for j in 0..4 {
                    let qv = _mm512_loadu_ps(q.add(i + LANES * j));
                    for kk in 0..4 {
                        let kv = _mm512_loadu_ps(keys[kk].add(i + LANES * j));
                        acc[kk][j] = _mm512_fmadd_ps(kv, qv, acc[kk][j]);
                    }
                }
            }
            for kk in 0..4 {
                let [a0, a1, a2, a3] = acc[kk];
                folded[4 * g + kk] = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
            }
        }
        let sums = reduce16x16(&folded);
        for i in 0..LANES.min(hi + 1 - t) {
            p[t + i - base] = sums[lane_of(i)] * a.scale;
        }
        t += LANES;
    }
}

/// `out[d] = Σ_t p[t]·v[t][d]` for one new token as the portable `weighted_values`
/// sums it with 64 slots: position `t` feeds slot `t % 64` in increasing `t`, the four
/// 16-slot registers folded (0 + 2, 1 + 3, 0 + 1), then the slots pairwise.
#[inline(always)]
unsafe fn single_values(
    a: &Attention,
    p: &[f32],
    base: usize,
    (lo, hi): (usize, usize),
    acc: &mut Vec<f32>,
    out: &mut [f32],
) {
    const SLOTS: usize = 64;
    let hd = a.head_dim;
    acc.clear();
    acc.resize(SLOTS * hd, 0.0);
    for pos in lo..=hi {
        let w = p[pos - base];
        if w == 0.0 {
            continue;
        }
        let w = _mm512_set1_ps(w);
        let v = a.v.as_ptr().add((pos - a.start) * hd);
        let slot = acc.as_mut_ptr().add((pos % SLOTS) * hd);
        for d in (0..hd).step_by(LANES) {
            let x = _mm512_fmadd_ps(w, _mm512_loadu_ps(v.add(d)), _mm512_loadu_ps(slot.add(d)));
            _mm512_storeu_ps(slot.add(d), x);
        }
    }
    let add = |acc: &mut Vec<f32>, to: usize, from: usize| {
        for d in (0..hd).step_by(LANES) {
            let (x, y) = (
                acc.as_mut_ptr().add(to * hd + d),
                acc.as_ptr().add(from * hd + d),
            );
            _mm512_storeu_ps(x, _mm512_add_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(y)));
        }
    };
    for l in 0..LANES {
        add(acc, l, 2 * LANES + l);
        add(acc, LANES + l, 3 * LANES + l);
    }
    for l in 0..LANES {
        add(acc, l, LANES + l);
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            add(acc, l, l + width);
        }
    }
    out.copy_from_slice(&acc[..hd]);
}

/// The portable `attention_rows_impl` for one new token (`a.seq == 1`, head_dim a
/// multiple of 64): rows `rows` of `a`'s queries into `out` ((rows, head_dim)).
///
/// # Safety
/// The CPU must have AVX-512 F and F16C.
#[target_feature(enable = "avx512f,fma,f16c")]
pub unsafe fn attention_rows_single(a: &Attention, rows: Range<usize>, out: &mut [f32]) {
    debug_assert!(a.head_dim % (4 * LANES) == 0 && a.seq == 1);
    let hd = a.head_dim;
    let n = a.k.len() / hd;
    let base = a.start - a.start % LANES;
    let width = (a.start + n).div_ceil(LANES) * LANES - base;
    let mut p = vec![0f32; width];
    let mut acc = Vec::new();
    for (row, out) in rows.zip(out.chunks_exact_mut(hd)) {
        let (lo, hi) = visible(a, row);
        let chunks = (lo - base) / LANES..(hi - base) / LANES + 1;
        p[chunks.start * LANES..chunks.end * LANES].fill(f32::NEG_INFINITY);
        single_scores(a, row, (lo, hi), base, &mut p);
        softmax(&mut p, chunks);
        single_values(a, &p, base, (lo, hi), &mut acc, out);
    }
}

/// The portable `attention_rows_impl` for several new tokens (`a.seq > 1`, head_dim a
/// multiple of 16): rows `rows` of `a`'s queries into `out` ((rows, head_dim)).
///
/// # Safety
/// The CPU must have AVX-512 F and F16C; `vt` must be [`Transposed::new`] of `a.v`.
#[target_feature(enable = "avx512f,fma,f16c")]
pub unsafe fn attention_rows(a: &Attention, vt: &Transposed, rows: Range<usize>, out: &mut [f32]) {
    debug_assert!(a.head_dim % LANES == 0 && a.seq > 1);
    let hd = a.head_dim;
    let mut buf = vec![0f32; 2 * vt.width];
    let (p0, p1) = buf.split_at_mut(vt.width);
    let mut p = [p0, p1];
    let mut row = rows.start;
    while row < rows.end {
        let out = &mut out[(row - rows.start) * hd..];
        // Two rows of one head share most of their keys; the next head restarts at 0.
        if row + 1 < rows.end && row % a.seq + 1 < a.seq {
            tile::<2>(a, vt, row, &mut p, out);
            row += 2;
        } else {
            tile::<1>(a, vt, row, &mut p, out);
            row += 1;
        }
    }
}
