//! F16 weights with llama.cpp's CPU arithmetic.
//!
//! ggml does not multiply f16 weights by f32 activations: it rounds the activations to
//! f16 first (the weight type's `vec_dot_type`), then, for two or more rows, hands both
//! to llamafile's tinyBLAS (16-lane FMA accumulators over the shared dimension, one
//! `_mm512_reduce_add_ps` at the end), and for one row to `ggml_vec_dot_f16` (four
//! 16-lane accumulators). Both sum products of f16 values in f32 in a fixed order,
//! which [`super::attention`] reproduces for attention; this module applies the same sums to
//! matmuls. candle's F16 path dequantizes to f32 and keeps the activations unrounded,
//! which moves logits by up to about 1e-2.

use half::f16;
use rayon::prelude::*;

use super::dots::{dot_rows, dot_vec_f16};
use crate::{Error, Result};

/// Lanes of tinyBLAS's AVX-512 accumulators (its `KN`).
const KN: usize = 16;

/// Weight rows one task widens to f32 at a time and runs every activation row past.
const COLUMN_TILE: usize = 16;

/// An F16 weight (`n` rows of `k`) multiplied as ggml multiplies it.
pub struct F16MatMul {
    n: usize,
    k: usize,
    w: Vec<f16>,
}

impl F16MatMul {
    /// Wraps the raw little-endian f16 data of a GGUF weight of shape (n, k).
    pub fn new(bytes: &[u8], n: usize, k: usize) -> Result<F16MatMul> {
        if bytes.len() != n * k * 2 {
            return Err(Error::Model(format!(
                "F16 tensor holds {} bytes, {n} × {k} needs {}",
                bytes.len(),
                n * k * 2
            )));
        }
        let w = bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(F16MatMul { n, k, w })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `i` as f32 (an embedding lookup).
    pub fn row(&self, i: usize) -> Vec<f32> {
        self.w[i * self.k..(i + 1) * self.k]
            .iter()
            .map(|v| v.to_f32())
            .collect()
    }

    /// `x · wᵀ` for `m` rows of `x` (row-major, `m × k`), into `m × n`.
    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        debug_assert_eq!(x.len(), m * k);
        let x: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        // llamafile_sgemm declines one row, a `k` that is not whole lanes, or a weight
        // whose rows are not a multiple of 4; ggml then takes `ggml_vec_dot_f16`.
        let tiny_blas = m >= 2 && k % KN == 0 && n % 4 == 0;
        let tiles: Vec<Vec<f32>> = (0..n.div_ceil(COLUMN_TILE))
            .into_par_iter()
            .map(|t| {
                let cols = t * COLUMN_TILE..((t + 1) * COLUMN_TILE).min(n);
                let w: Vec<f32> = self.w[cols.start * k..cols.end * k]
                    .iter()
                    .map(|v| v.to_f32())
                    .collect();
                tile(&w, &x, k, tiny_blas)
            })
            .collect();
        let mut out = vec![0f32; m * n];
        for (t, tile) in tiles.iter().enumerate() {
            let c0 = t * COLUMN_TILE;
            let width = tile.len() / m;
            for (r, vals) in tile.chunks_exact(width).enumerate() {
                out[r * n + c0..r * n + c0 + width].copy_from_slice(vals);
            }
        }
        out
    }
}

/// Dots of every activation row with the tile's weight rows, as (m, tile width).
fn tile(w: &[f32], x: &[f32], k: usize, tiny_blas: bool) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::features().fma {
        // SAFETY: the CPU has FMA.
        return unsafe { tile_fma(w, x, k, tiny_blas) };
    }
    tile_impl(w, x, k, tiny_blas)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_fma(w: &[f32], x: &[f32], k: usize, tiny_blas: bool) -> Vec<f32> {
    tile_impl(w, x, k, tiny_blas)
}

#[inline(always)]
fn tile_impl(w: &[f32], x: &[f32], k: usize, tiny_blas: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / k * (w.len() / k));
    for xr in x.chunks_exact(k) {
        for wr in w.chunks_exact(k) {
            out.push(if tiny_blas {
                dot_rows(wr, xr)
            } else {
                dot_vec_f16(wr, xr)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
        let vals: Vec<f32> = (0..n * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
            .collect();
        let bytes = vals
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        (bytes, vals)
    }

    #[test]
    fn products_use_f16_activations() {
        let (n, k, m) = (20, 64, 3);
        let (bytes, w) = weights(n, k);
        let mm = F16MatMul::new(&bytes, n, k).unwrap();
        // 1/3 is not an f16 value; ggml multiplies by its f16 rounding.
        let x = vec![1.0f32 / 3.0; m * k];
        let out = mm.forward(&x, m);
        let x16 = f16::from_f32(1.0 / 3.0).to_f32() as f64;
        for r in 0..m {
            for c in 0..n {
                let exact: f64 = w[c * k..(c + 1) * k].iter().map(|&v| v as f64 * x16).sum();
                assert!((out[r * n + c] as f64 - exact).abs() < 1e-4, "{r},{c}");
            }
        }
        assert_eq!(mm.row(1), w[k..2 * k].to_vec());
    }

    #[test]
    fn one_row_and_many_rows_agree_closely() {
        let (n, k) = (8, 128);
        let (bytes, _) = weights(n, k);
        let mm = F16MatMul::new(&bytes, n, k).unwrap();
        let x: Vec<f32> = (0..2 * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let both = mm.forward(&x, 2);
        let first = mm.forward(&x[..k], 1);
        for c in 0..n {
            assert!((both[c] - first[c]).abs() < 1e-4);
        }
        assert!(F16MatMul::new(&bytes[1..], n, k).is_err());
    }
}
