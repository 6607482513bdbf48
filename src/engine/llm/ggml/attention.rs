//! Attention as llama.cpp computes it on the CPU without flash attention: ggml's
//! `expf` and softmax, scores and weighted values summed in its lane order, and rope.

use half::f16;

use super::dots::{dot_rows, dot_vec_f16, reduce16, LANES};
use super::matmul::OutPtr;

/// ggml's vectorised `expf` (AVX-512 build, "adapted from arm limited optimized
/// routine"), one lane at a time: within 1.5 ulp of `expf` but not equal to it, and
/// softmax probabilities are later rounded to f16, so the difference shows.
#[inline(always)]
pub(super) fn v_expf(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
                                                                  // scalef: exact in f64, one rounding to f32.
    (j as f64 * f64::from_bits(((n as i64 + 1023) as u64) << 52)) as f32
}

/// Softmax of one attention row as ggml computes it, in place. The row holds the keys
/// from absolute position `first` on; ggml's row starts at cache cell 0 with the
/// invisible cells at -inf, and sums the exponentials 16 lanes at a time (lanes
/// reduced in f32, pairwise, then added in f64), so the lanes are aligned to absolute
/// positions here.
#[inline(always)]
pub(super) fn softmax_row_impl(row: &mut [f32], first: usize) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in row.iter_mut() {
        *v = v_expf(*v - max);
    }
    let mut sum = 0f64;
    let mut lanes = [0f32; LANES];
    let mut pos = first;
    let end = first + row.len();
    while pos < end {
        let chunk_end = (pos / LANES + 1) * LANES;
        lanes.fill(0.0);
        for p in pos..chunk_end.min(end) {
            lanes[p % LANES] = row[p - first];
        }
        sum += reduce16(lanes) as f64;
        pos = chunk_end;
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// One attention problem on the host: queries of one kv head group against its keys.
pub struct Attention<'a> {
    /// Queries, (rows, head_dim); row `r * seq + i` is query head `r` of the group at
    /// new position `i`. Already rounded to f16 (and scaled, for Gemma).
    pub q: &'a [f32],
    /// Keys and values of positions `start..total`, (total - start, head_dim), f16-rounded.
    pub k: &'a [f32],
    /// See `k`.
    pub v: &'a [f32],
    /// Size of one head.
    pub head_dim: usize,
    /// New positions (queries per head).
    pub seq: usize,
    /// Absolute position of the first new query.
    pub offset: usize,
    /// Absolute position of the first key held.
    pub start: usize,
    /// Sliding window, if the layer has one.
    pub window: Option<usize>,
    /// Scale applied to the scores before the softmax (1 when the queries carry it).
    pub scale: f32,
}

/// `Σ_t p[t]·v[t][d]` for every `d` at once, in the order ggml sums each: cache cell
/// `t` (an absolute position) feeds accumulator slot `t % slots` by FMA, in increasing
/// `t`. tinyBLAS (several new tokens) has 16 slots, added pairwise; `ggml_vec_dot_f16`
/// (one new token) has 64, four 16-lane registers folded (0+2, 1+3, 0+1) and then
/// added pairwise. Cells whose weight is 0 add nothing and are skipped.
#[inline(always)]
fn weighted_values(
    p: &[f32],
    v: &[f32],
    hd: usize,
    first: usize,
    slots: usize,
    acc: &mut Vec<f32>,
    out: &mut [f32],
) {
    acc.clear();
    acc.resize(slots * hd, 0.0);
    for (t, &w) in p.iter().enumerate() {
        if w == 0.0 {
            continue;
        }
        let slot = (first + t) % slots;
        let row = &v[t * hd..(t + 1) * hd];
        for (a, &x) in acc[slot * hd..(slot + 1) * hd].iter_mut().zip(row) {
            *a = w.mul_add(x, *a);
        }
    }
    if slots == 64 {
        // Fold the four registers: 0 += 2, 1 += 3, 0 += 1.
        for j in 0..2 {
            for l in 0..LANES {
                for d in 0..hd {
                    acc[(16 * j + l) * hd + d] += acc[(16 * (j + 2) + l) * hd + d];
                }
            }
        }
        for l in 0..LANES {
            for d in 0..hd {
                acc[l * hd + d] += acc[(16 + l) * hd + d];
            }
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            for d in 0..hd {
                acc[l * hd + d] += acc[(l + width) * hd + d];
            }
        }
    }
    out.copy_from_slice(&acc[..hd]);
}

#[inline(always)]
pub(super) fn attention_rows_impl(a: &Attention, rows: std::ops::Range<usize>, out: &mut [f32]) {
    let hd = a.head_dim;
    let n = a.k.len() / hd;
    let mut p = vec![0f32; n];
    let mut acc = Vec::new();
    // One new token: ggml's plain f16 dot products (llamafile takes two or more).
    let single = a.seq == 1;
    for (row, out) in rows.zip(out.chunks_exact_mut(hd)) {
        let qpos = a.offset + row % a.seq;
        let q = &a.q[row * hd..(row + 1) * hd];
        for (t, s) in p.iter_mut().enumerate() {
            let kpos = a.start + t;
            let visible = kpos <= qpos && a.window.is_none_or(|w| qpos - kpos < w);
            *s = if visible {
                let k = &a.k[t * hd..(t + 1) * hd];
                (if single {
                    dot_vec_f16(k, q)
                } else {
                    dot_rows(k, q)
                }) * a.scale
            } else {
                f32::NEG_INFINITY
            };
        }
        softmax_row_impl(&mut p, a.start);
        for x in p.iter_mut() {
            *x = f16::from_f32(*x).to_f32();
        }
        let slots = if single { 64 } else { LANES };
        weighted_values(&p, a.v, hd, a.start, slots, &mut acc, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_rows_fma(a: &Attention, rows: std::ops::Range<usize>, out: &mut [f32]) {
    attention_rows_impl(a, rows, out)
}

/// Attention of one kv head group as llama.cpp computes it without flash attention:
/// scores of f16 operands summed as tinyBLAS sums them, ggml's softmax, probabilities
/// rounded to f16, and their product with the f16 values summed the same way.
/// Returns (rows, head_dim).
pub fn attention(a: &Attention) -> Vec<f32> {
    let hd = a.head_dim;
    let rows = a.q.len() / hd;
    let mut out = vec![0f32; rows * hd];
    let ptr = OutPtr(out.as_mut_ptr());
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    let avx512 = crate::cpu::features().avx512_f16c();
    // Prompts on AVX-512: the values transposed once for all rows.
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    let transposed = (avx512 && a.seq > 1 && hd % 16 == 0)
        .then(|| super::avx512_attention::Transposed::new(a.v, hd, a.start));
    #[cfg(all(target_arch = "x86_64", svodka_avx512))]
    let single_avx512 = avx512 && a.seq == 1 && hd % 64 == 0;
    let work = |range: std::ops::Range<usize>| {
        // SAFETY: each range of rows owns its slice of `out`.
        let out = unsafe { ptr.slice(range.start * hd, range.len() * hd) };
        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
        if let Some(vt) = &transposed {
            // SAFETY: the CPU has AVX-512 F, FMA and F16C (checked), `vt` is of `a.v`.
            unsafe { super::avx512_attention::attention_rows(a, vt, range, out) };
            return;
        }
        #[cfg(all(target_arch = "x86_64", svodka_avx512))]
        if single_avx512 {
            // SAFETY: the CPU has AVX-512 F, FMA and F16C (checked).
            unsafe { super::avx512_attention::attention_rows_single(a, range, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::features().avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { attention_rows_fma(a, range, out) };
            return;
        }
        attention_rows_impl(a, range, out);
    };
    if rows * a.k.len() < 1 << 15 {
        work(0..rows);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(rows, work);
    }
    out
}

/// One layer's keys and values on the host as llama.cpp's f16 cache holds them
/// (rounded to f16, kept as f32): one run of positions per kv head, which attention
/// reads in place.
#[derive(Debug, Clone)]
pub struct HostKv {
    head_dim: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl HostKv {
    /// An empty cache for `heads` kv heads of `head_dim`.
    pub fn new(heads: usize, head_dim: usize) -> HostKv {
        HostKv {
            head_dim,
            k: vec![Vec::new(); heads],
            v: vec![Vec::new(); heads],
        }
    }

    /// Appends new positions' keys and values, each laid out (positions, heads,
    /// head_dim).
    pub fn append(&mut self, k: &[f32], v: &[f32]) {
        let hd = self.head_dim;
        let heads = self.k.len();
        for (new, cache) in [(k, &mut self.k), (v, &mut self.v)] {
            for pos in new.chunks_exact(heads * hd) {
                for (head, row) in cache.iter_mut().zip(pos.chunks_exact(hd)) {
                    head.extend(row.iter().map(|&x| f16::from_f32(x).to_f32()));
                }
            }
        }
    }

    /// Keys of kv head `head` from position `from` on, (positions, head_dim).
    pub fn keys(&self, head: usize, from: usize) -> &[f32] {
        &self.k[head][from * self.head_dim..]
    }

    /// Values of kv head `head` from position `from` on, (positions, head_dim).
    pub fn values(&self, head: usize, from: usize) -> &[f32] {
        &self.v[head][from * self.head_dim..]
    }

    /// Forgets every position.
    pub fn clear(&mut self) {
        self.k.iter_mut().chain(&mut self.v).for_each(Vec::clear);
    }
}

/// Rotary embedding in place, as ggml's CPU rope rotates: `x` is (positions, heads,
/// head_dim) for positions from `offset`; `cos`/`sin` are (positions, head_dim / 2)
/// tables built the way ggml builds its cache. Pairs are (j, j + head_dim/2), or
/// (2j, 2j + 1) when `interleaved`. GCC contracts ggml's `x0*c - x1*s` into an FMA on
/// the first product, and Rust does not contract, so the FMA is spelled out.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    x: &mut [f32],
    heads: usize,
    head_dim: usize,
    offset: usize,
    cos: &[f32],
    sin: &[f32],
    interleaved: bool,
) {
    let half = head_dim / 2;
    for (i, pos_rows) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let c = &cos[(offset + i) * half..(offset + i + 1) * half];
        let s = &sin[(offset + i) * half..(offset + i + 1) * half];
        for head in pos_rows.chunks_exact_mut(head_dim) {
            for j in 0..half {
                let (a, b) = if interleaved {
                    (2 * j, 2 * j + 1)
                } else {
                    (j, j + half)
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(c[j], -(x1 * s[j]));
                head[b] = x0.mul_add(s[j], x1 * c[j]);
            }
        }
    }
}
