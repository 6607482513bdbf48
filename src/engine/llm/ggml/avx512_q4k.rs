//! The Q4_K matmul with AVX-512 VNNI on weights repacked at load, bit for bit
//! [`super::dots::dot_q4k`]: per 64 values for the activation rows in fours (ggml's
//! gemm order, prompts) and per block for the rest (gemv order, generation).
//!
//! In the file's layout each weight row's 64 values meet an activation in one
//! `vpdpbusd` whose sixteen lanes must then be summed across, and the 6-bit scales and
//! mins are unpacked again for every product. As llama.cpp does at load, svodka repacks
//! Q4_K once: sixteen weight rows interleaved so that a vector holds four quant bytes of
//! each row, a broadcast activation meets all sixteen rows in one `vpdpbusd`, and each
//! i32 lane sums one row with no horizontal sum; the scales and mins are unpacked into
//! bytes beside them. The repacked rows take 148 bytes a block against the file's 144.
//! Integer sums are exact in any grouping, and each lane then gets the scalar kernel's
//! FMAs in the scalar kernel's order.

// Built only by Rust >= 1.89, whose AVX-512 intrinsics are stable (see build.rs).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::blocks::Q8K;
use super::dots::scale_min_k4;
use super::matmul::OutPtr;

/// Bytes of one Q4_K block in the file.
const SIZE: usize = 144;
/// Weight rows interleaved: one per i32 lane.
const GROUP: usize = 16;
/// Blocks ahead the one-row kernel prefetches.
const PREFETCH: usize = 4;

/// Sixteen rows' block `bi`, repacked. Field order keeps the quants 64-byte aligned.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block16 {
    /// `[64-value group j][4-byte step e][row]`: row's bytes `32j + 4e..+4` (low
    /// nibbles: values `64j + 4e..`, high: `64j + 32 + 4e..`).
    qs: [[[u8; 4]; GROUP]; 32],
    /// `[sub-block][row]`: the 6-bit scales.
    scales: [[u8; GROUP]; 8],
    /// `[j][row]`: the mins of sub-blocks 2j and 2j + 1.
    mins: [[[u8; 2]; GROUP]; 4],
    /// The rows' block scales, f16 bits.
    d: [u16; GROUP],
    /// The rows' block min scales, f16 bits.
    dmin: [u16; GROUP],
}

/// A Q4_K weight (`n` rows of `per` blocks) repacked in groups of sixteen rows, the last
/// group padded with zero rows.
pub struct Q4kPacked {
    blocks: Vec<Block16>,
    per: usize,
}

impl Q4kPacked {
    /// Repacks `n` rows of `per` Q4_K blocks (`bytes` in the file's layout), the groups
    /// shared among the pool's threads.
    pub fn new(bytes: &[u8], n: usize, per: usize) -> Q4kPacked {
        debug_assert_eq!(bytes.len(), n * per * SIZE);
        let groups = n.div_ceil(GROUP);
        let zero = Block16 {
            qs: [[[0; 4]; GROUP]; 32],
            scales: [[0; GROUP]; 8],
            mins: [[[0; 2]; GROUP]; 4],
            d: [0; GROUP],
            dmin: [0; GROUP],
        };
        let mut blocks = vec![zero; groups * per];
        let out = OutPtr(blocks.as_mut_ptr());
        let work = |range: Range<usize>| {
            for g in range {
                // SAFETY: g < groups, and each group goes to one worker.
                let group = unsafe { out.slice(g * per, per) };
                for c in 0..GROUP.min(n - g * GROUP) {
                    let row = g * GROUP + c;
                    for (bi, p) in group.iter_mut().enumerate() {
                        let b = &bytes[(row * per + bi) * SIZE..][..SIZE];
                        p.d[c] = u16::from_le_bytes([b[0], b[1]]);
                        p.dmin[c] = u16::from_le_bytes([b[2], b[3]]);
                        for sub in 0..8 {
                            let (s, m) = scale_min_k4(sub, &b[4..16]);
                            p.scales[sub][c] = s as u8;
                            p.mins[sub / 2][c][sub % 2] = m as u8;
                        }
                        for (i, q) in b[16..].chunks_exact(4).enumerate() {
                            p.qs[i][c] = [q[0], q[1], q[2], q[3]];
                        }
                    }
                }
            }
        };
        candle_core::utils::barrier_pool().execute_chunked(groups, work);
        Q4kPacked { blocks, per }
    }
}

/// The sixteen rows' block scales and min scales as f32.
#[inline(always)]
unsafe fn block_scales(b: &Block16) -> (__m512, __m512) {
    let f32s = |h: &[u16; GROUP]| _mm512_cvtph_ps(_mm256_loadu_si256(h.as_ptr() as *const __m256i));
    (f32s(&b.d), f32s(&b.dmin))
}

/// The low and high nibbles of line `8j + e` of the quants: values `64j + 4e..+4` and
/// `64j + 32 + 4e..+4` of each row.
#[inline(always)]
unsafe fn nibbles(b: &Block16, j: usize, e: usize) -> (__m512i, __m512i) {
    let m4 = _mm512_set1_epi8(0x0F);
    let q = _mm512_loadu_si512(b.qs[8 * j + e].as_ptr() as *const __m512i);
    (
        _mm512_and_si512(q, m4),
        _mm512_and_si512(_mm512_srli_epi16::<4>(q), m4),
    )
}

/// The scales of sub-block `sub`, one i32 lane per row.
#[inline(always)]
unsafe fn scales(b: &Block16, sub: usize) -> __m512i {
    _mm512_cvtepu8_epi32(_mm_loadu_si128(b.scales[sub].as_ptr() as *const __m128i))
}

/// The mins of sub-blocks 2j and 2j + 1 as an i16 pair per row.
#[inline(always)]
unsafe fn mins(b: &Block16, j: usize) -> __m512i {
    _mm512_cvtepu8_epi16(_mm256_loadu_si256(b.mins[j].as_ptr() as *const __m256i))
}

/// The activation sums of sub-blocks 2j and 2j + 1 as an i16 pair on every lane.
#[inline(always)]
unsafe fn bsum_pair(y: &Q8K, j: usize) -> __m512i {
    let bs = &y.bsums[4 * j..4 * j + 4];
    let pair = (bs[0] + bs[1]) as u16 as u32 | ((bs[2] + bs[3]) as u16 as u32) << 16;
    _mm512_set1_epi32(pair as i32)
}

/// Four activation bytes from `at`, on every lane.
#[inline(always)]
unsafe fn bcast(at: *const i8) -> __m512i {
    _mm512_set1_epi32((at as *const i32).read_unaligned())
}

/// Activation rows `row..row + 4` against group `g`: lane c of result r is
/// `dot_q4k(weight row 16g + c, activation row row + r)` with `per_64`.
#[inline(always)]
unsafe fn four_rows(w: &Q4kPacked, a: &[Q8K], g: usize, row: usize) -> [__m512; 4] {
    let per = w.per;
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut acc_min = [_mm512_setzero_ps(); 4];
    for bi in 0..per {
        let b = w.blocks.get_unchecked(g * per + bi);
        let y: [&Q8K; 4] = std::array::from_fn(|r| a.get_unchecked((row + r) * per + bi));
        let (d, dmin) = block_scales(b);
        // `d * y.d` and `dmin * y.d` as the scalar kernel rounds them.
        let dd: [__m512; 4] = std::array::from_fn(|r| _mm512_mul_ps(d, _mm512_set1_ps(y[r].d)));
        let dm: [__m512; 4] = std::array::from_fn(|r| _mm512_mul_ps(dmin, _mm512_set1_ps(y[r].d)));
        for j in 0..4 {
            let mut lo = [_mm512_setzero_si512(); 4];
            let mut hi = [_mm512_setzero_si512(); 4];
            for e in 0..8 {
                let (ql, qh) = nibbles(b, j, e);
                for r in 0..4 {
                    let at = y[r].qs.as_ptr().add(64 * j + 4 * e);
                    lo[r] = _mm512_dpbusd_epi32(lo[r], ql, bcast(at));
                    hi[r] = _mm512_dpbusd_epi32(hi[r], qh, bcast(at.add(32)));
                }
            }
            let (s0, s1) = (scales(b, 2 * j), scales(b, 2 * j + 1));
            let m = mins(b, j);
            for r in 0..4 {
                let isum =
                    _mm512_add_epi32(_mm512_mullo_epi32(lo[r], s0), _mm512_mullo_epi32(hi[r], s1));
                let imin = _mm512_madd_epi16(m, bsum_pair(y[r], j));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dd[r], acc[r]);
                acc_min[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dm[r], acc_min[r]);
            }
        }
    }
    std::array::from_fn(|r| _mm512_sub_ps(acc[r], acc_min[r]))
}

/// Activation row `row` against group `g`: lane c is `dot_q4k(weight row 16g + c,
/// activation row)` in gemv order (one FMA per block).
#[inline(always)]
unsafe fn one_row(w: &Q4kPacked, a: &[Q8K], g: usize, row: usize) -> __m512 {
    let per = w.per;
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm512_setzero_ps();
    for bi in 0..per {
        let b = w.blocks.get_unchecked(g * per + bi);
        let y = a.get_unchecked(row * per + bi);
        // The weights stream from memory once per token; ask for them ahead.
        let ahead = (b as *const Block16).wrapping_add(PREFETCH) as *const i8;
        for line in (0..std::mem::size_of::<Block16>()).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
        }
        let (d, dmin) = block_scales(b);
        let mut isum = _mm512_setzero_si512();
        let mut imin = _mm512_setzero_si512();
        for j in 0..4 {
            // Two chains per half: a chain of eight dependent `vpdpbusd` would wait on
            // each one's latency.
            let mut lo = [_mm512_setzero_si512(); 2];
            let mut hi = [_mm512_setzero_si512(); 2];
            for e in 0..8 {
                let (ql, qh) = nibbles(b, j, e);
                let at = y.qs.as_ptr().add(64 * j + 4 * e);
                lo[e % 2] = _mm512_dpbusd_epi32(lo[e % 2], ql, bcast(at));
                hi[e % 2] = _mm512_dpbusd_epi32(hi[e % 2], qh, bcast(at.add(32)));
            }
            let lo = _mm512_add_epi32(lo[0], lo[1]);
            let hi = _mm512_add_epi32(hi[0], hi[1]);
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(lo, scales(b, 2 * j)));
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(hi, scales(b, 2 * j + 1)));
            imin = _mm512_add_epi32(imin, _mm512_madd_epi16(mins(b, j), bsum_pair(y, j)));
        }
        let yd = _mm512_set1_ps(y.d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, yd), acc);
        acc_min = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(dmin, yd), acc_min);
    }
    _mm512_sub_ps(acc, acc_min)
}

/// Stores lanes `..width` of `v` at `out[row * n + col..]`.
#[inline(always)]
unsafe fn store(v: __m512, out: OutPtr, at: usize, width: usize) {
    let mut lanes = [0f32; GROUP];
    _mm512_storeu_ps(lanes.as_mut_ptr(), v);
    for (c, &x) in lanes[..width].iter().enumerate() {
        *out.at(at + c) = x;
    }
}

/// `out[row][col]` for every activation row of `a` (`m` rows) and the columns `cols`
/// (whole groups of sixteen but for the last column): rows below `m - m % 4` in fours
/// per 64 values, the rest one by one per block, each as [`super::dots::dot_q4k`].
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI and F16C; `w` holds `n` rows and `a` `m`
/// rows of `w`'s blocks per row; `out` is an `m × n` buffer whose columns `cols` are the
/// caller's alone; `cols.start` is a multiple of sixteen.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub unsafe fn matmul(
    w: &Q4kPacked,
    a: &[Q8K],
    m: usize,
    n: usize,
    cols: Range<usize>,
    out: OutPtr,
) {
    debug_assert!(cols.start % GROUP == 0 && cols.end <= n && a.len() >= m * w.per);
    let gemm_rows = m - m % 4;
    let mut col = cols.start;
    while col < cols.end {
        let (g, width) = (col / GROUP, (cols.end - col).min(GROUP));
        for row in (0..gemm_rows).step_by(4) {
            let res = four_rows(w, a, g, row);
            for (r, v) in res.into_iter().enumerate() {
                store(v, out, (row + r) * n + col, width);
            }
        }
        for row in gemm_rows..m {
            store(one_row(w, a, g, row), out, row * n + col, width);
        }
        col += width;
    }
}
