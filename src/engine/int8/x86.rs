//! The x86-64 int8 kernels: AVX-512 VNNI (`vpdpbusd`) and AVX2 (`vpmaddubsw`).

use super::{Int8Weight, GROUP, PANEL};
use crate::engine::packed::by_rows;
use std::arch::x86_64::*;

/// Rows per VNNI tile: 2 panels × 12 rows = 24 accumulators of the 32 registers.
#[cfg(svodka_avx512)]
pub(super) const VNNI_ROWS: usize = 12;
/// Rows per AVX2 tile: 2 halves × 4 rows = 8 accumulators, with 4 weight registers,
/// a constant and temporaries in the 16.
pub(super) const AVX2_ROWS: usize = 4;

/// The 4 quantized inputs of row `r` in group `g` of a tile of `rows`, as one i32.
#[inline(always)]
unsafe fn group_of(x: *const u8, g: usize, rows: usize, r: usize) -> i32 {
    (x.add((g * rows + r) * GROUP) as *const i32).read_unaligned()
}

#[cfg(svodka_avx512)]
#[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
/// `dst[o0 + l] = (acc[l] − colsum) · (s_x · s_w) + bias` for the panel's valid lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn store_vnni(w: &Int8Weight, acc: __m512i, sx: f32, dst: *mut f32, o0: usize) {
    let lanes = (w.out_dim - o0).min(PANEL);
    let mask: __mmask16 = if lanes == PANEL {
        0xffff
    } else {
        ((1u32 << lanes) - 1) as __mmask16
    };
    let dot = _mm512_sub_epi32(acc, _mm512_loadu_si512(w.col_sums.as_ptr().add(o0).cast()));
    let s = _mm512_mul_ps(
        _mm512_set1_ps(sx),
        _mm512_loadu_ps(w.scales.as_ptr().add(o0)),
    );
    let y = _mm512_add_ps(
        _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s),
        _mm512_loadu_ps(w.bias.as_ptr().add(o0)),
    );
    _mm512_mask_storeu_ps(dst.add(o0), mask, y);
}

#[cfg(svodka_avx512)]
#[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni_pair<const R: usize>(
    w: &Int8Weight,
    x: *const u8,
    sx: *const f32,
    dst: *mut f32,
    p: usize,
) {
    let stride = w.groups * PANEL * GROUP;
    let w0 = w.panels.as_ptr().add(p * stride);
    let w1 = w0.add(stride);
    let mut acc0 = [_mm512_setzero_si512(); R];
    let mut acc1 = [_mm512_setzero_si512(); R];
    for g in 0..w.groups {
        let a = _mm512_loadu_si512(w0.add(g * PANEL * GROUP).cast());
        let b = _mm512_loadu_si512(w1.add(g * PANEL * GROUP).cast());
        for r in 0..R {
            let xv = _mm512_set1_epi32(group_of(x, g, R, r));
            acc0[r] = _mm512_dpbusd_epi32(acc0[r], xv, a);
            acc1[r] = _mm512_dpbusd_epi32(acc1[r], xv, b);
        }
    }
    for r in 0..R {
        let row = dst.add(r * w.out_dim);
        store_vnni(w, acc0[r], *sx.add(r), row, p * PANEL);
        store_vnni(w, acc1[r], *sx.add(r), row, (p + 1) * PANEL);
    }
}

#[cfg(svodka_avx512)]
#[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni_single<const R: usize>(
    w: &Int8Weight,
    x: *const u8,
    sx: *const f32,
    dst: *mut f32,
    p: usize,
) {
    let stride = w.groups * PANEL * GROUP;
    let w0 = w.panels.as_ptr().add(p * stride);
    let mut acc = [_mm512_setzero_si512(); R];
    for g in 0..w.groups {
        let a = _mm512_loadu_si512(w0.add(g * PANEL * GROUP).cast());
        for (r, acc) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_epi32(group_of(x, g, R, r));
            *acc = _mm512_dpbusd_epi32(*acc, xv, a);
        }
    }
    for (r, &acc) in acc.iter().enumerate() {
        store_vnni(w, acc, *sx.add(r), dst.add(r * w.out_dim), p * PANEL);
    }
}

#[cfg(svodka_avx512)]
#[allow(clippy::incompatible_msrv)] // only built by Rust >= 1.89, see build.rs
/// Panels `[p0, p1)`, two at a time, for every tile of the tile-packed rows `xp`
/// (inputs offset by +128).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn panels_vnni(
    w: &Int8Weight,
    xp: &[u8],
    sx: &[f32],
    tiles: &[(usize, usize)],
    dst: *mut f32,
    p0: usize,
    p1: usize,
) {
    let kp = w.groups * GROUP;
    let mut p = p0;
    while p < p1 {
        let pair = p + 1 < p1;
        for &(r0, n) in tiles {
            let xr = xp.as_ptr().add(r0 * kp);
            let sr = sx.as_ptr().add(r0);
            let dr = dst.add(r0 * w.out_dim);
            if pair {
                by_rows!(VNNI_ROWS, n, tile_vnni_pair, w, xr, sr, dr, p);
            } else {
                by_rows!(VNNI_ROWS, n, tile_vnni_single, w, xr, sr, dr, p);
            }
        }
        p += if pair { 2 } else { 1 };
    }
}

#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const R: usize>(
    w: &Int8Weight,
    x: *const u8,
    sx: *const f32,
    dst: *mut f32,
    p: usize,
) {
    let stride = w.groups * PANEL * GROUP;
    let w0 = w.panels.as_ptr().add(p * stride);
    let ones = _mm256_set1_epi16(1);
    let mut lo = [_mm256_setzero_si256(); R];
    let mut hi = [_mm256_setzero_si256(); R];
    for g in 0..w.groups {
        let b_lo = _mm256_loadu_si256(w0.add(g * PANEL * GROUP).cast());
        let b_hi = _mm256_loadu_si256(w0.add(g * PANEL * GROUP + 32).cast());
        let a_lo = _mm256_sign_epi8(b_lo, b_lo);
        let a_hi = _mm256_sign_epi8(b_hi, b_hi);
        for r in 0..R {
            let xv = _mm256_set1_epi32(group_of(x, g, R, r));
            let s_lo = _mm256_sign_epi8(xv, b_lo);
            let s_hi = _mm256_sign_epi8(xv, b_hi);
            let d_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(a_lo, s_lo), ones);
            let d_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(a_hi, s_hi), ones);
            lo[r] = _mm256_add_epi32(lo[r], d_lo);
            hi[r] = _mm256_add_epi32(hi[r], d_hi);
        }
    }
    let o0 = p * PANEL;
    let lanes = (w.out_dim - o0).min(PANEL);
    for r in 0..R {
        let s = _mm256_set1_ps(*sx.add(r));
        let mut buf = [0f32; PANEL];
        for (h, acc) in [lo[r], hi[r]].into_iter().enumerate() {
            let o = o0 + 8 * h;
            let scale = _mm256_mul_ps(s, _mm256_loadu_ps(w.scales.as_ptr().add(o)));
            let y = _mm256_add_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale),
                _mm256_loadu_ps(w.bias.as_ptr().add(o)),
            );
            _mm256_storeu_ps(buf.as_mut_ptr().add(8 * h), y);
        }
        let row = dst.add(r * w.out_dim + o0);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), row, lanes);
    }
}

/// Panels `[p0, p1)`, one at a time, for every tile of the tile-packed rows `xp`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn panels_avx2(
    w: &Int8Weight,
    xp: &[u8],
    sx: &[f32],
    tiles: &[(usize, usize)],
    dst: *mut f32,
    p0: usize,
    p1: usize,
) {
    let kp = w.groups * GROUP;
    for p in p0..p1 {
        for &(r0, n) in tiles {
            let xr = xp.as_ptr().add(r0 * kp);
            let sr = sx.as_ptr().add(r0);
            let dr = dst.add(r0 * w.out_dim);
            by_rows!(AVX2_ROWS, n, tile_avx2, w, xr, sr, dr, p);
        }
    }
}
