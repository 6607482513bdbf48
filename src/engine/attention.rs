//! Scaled dot-product attention for f32 tensors on the CPU, one query row at a time.
//!
//! Why not two matmuls: candle's CPU matmul (the `gemm` crate) picks its kernels and
//! its order of additions by the shapes it is given, so a sentence's scores changed in
//! the last bits with the number and the padded length of the other sentences in its
//! batch (seen on AVX2 machines), and a greedy decoder then and again picked another
//! token. Here every output is summed in one fixed order — scores over the head
//! dimension, probabilities and values over the keys in key order — and a padded key
//! adds an exact zero, so a row's result is the same bits whatever shares its batch.
//! That is what lets `batch` and `serve` put the sentences of many documents and many
//! clients into one batch and still answer each as if it came alone.

use candle_core::{CpuStorage, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Attention on `[n, heads, tq, hd]` queries, `[n, heads, tk, hd]` keys and values
/// (f32, CPU); `mask` is additive and broadcast to `[n, heads, tq, tk]` (each of its
/// four dimensions 1 or full). Scores are `(q · k) · scale + mask`, as transformers
/// computes them.
pub fn attend_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> candle_core::Result<Tensor> {
    let (n, heads, tq, hd) = q.dims4()?;
    let (kn, kh, tk, khd) = k.dims4()?;
    if (kn, kh, khd) != (n, heads, hd) || v.dims4()? != (n, heads, tk, hd) {
        candle_core::bail!(
            "attention: queries {:?}, keys {:?}, values {:?}",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let q = q.to_dtype(DType::F32)?.contiguous()?;
    let k = k.to_dtype(DType::F32)?.contiguous()?;
    let v = v.to_dtype(DType::F32)?.contiguous()?;
    let mask = match mask {
        Some(m) => {
            let dims = m.dims();
            let target = [n, heads, tq, tk];
            if dims.len() != 4 || dims.iter().zip(target).any(|(&d, t)| d != 1 && d != t) {
                candle_core::bail!("attention: mask {dims:?} for scores {target:?}");
            }
            Some(m.to_dtype(DType::F32)?.contiguous()?)
        }
        None => None,
    };
    let shape = Shape::from((n, heads, tq, hd));
    let mut out = vec![0f32; n * heads * tq * hd];
    {
        let (qg, ql) = q.storage_and_layout();
        let (kg, kl) = k.storage_and_layout();
        let (vg, vl) = v.storage_and_layout();
        let mg = mask.as_ref().map(|m| m.storage_and_layout());
        let ms = match &mg {
            Some((g, l)) => Some(f32_slice(g, l)?),
            None => None,
        };
        let mask_dims = mask.as_ref().map(|m| m.dims().to_vec()).unwrap_or_default();
        let rows = Rows {
            q: f32_slice(&qg, ql)?,
            k: f32_slice(&kg, kl)?,
            v: f32_slice(&vg, vl)?,
            mask: ms.map(|s| (s, mask_dims.as_slice())),
            heads,
            tq,
            tk,
            hd,
            scale,
        };
        // One (sentence, head) block per task: blocks never share an addition, so the
        // split over threads cannot change a result.
        let block = tq * hd;
        if n * heads * tq * tk * hd < 1 << 16 {
            out.chunks_mut(block.max(1))
                .enumerate()
                .for_each(|(bh, o)| rows.block(bh, o));
        } else {
            out.par_chunks_mut(block.max(1))
                .enumerate()
                .for_each(|(bh, o)| rows.block(bh, o));
        }
    }
    Tensor::from_vec(out, shape, q.device())
}

/// The inputs of one attention call, as slices.
struct Rows<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    /// Values and dims of the additive mask.
    mask: Option<(&'a [f32], &'a [usize])>,
    heads: usize,
    tq: usize,
    tk: usize,
    hd: usize,
    scale: f32,
}

impl Rows<'_> {
    /// Output `[tq, hd]` of block `bh` (= sentence · heads + head).
    fn block(&self, bh: usize, out: &mut [f32]) {
        let (tq, tk, hd) = (self.tq, self.tk, self.hd);
        let (b, h) = (bh / self.heads, bh % self.heads);
        let keys = &self.k[bh * tk * hd..(bh + 1) * tk * hd];
        let values = &self.v[bh * tk * hd..(bh + 1) * tk * hd];
        let mut scores = vec![0f32; tk];
        for i in 0..tq {
            let q = &self.q[(bh * tq + i) * hd..(bh * tq + i + 1) * hd];
            for (j, s) in scores.iter_mut().enumerate() {
                *s = dot(q, &keys[j * hd..(j + 1) * hd]) * self.scale;
            }
            if let Some((m, dims)) = self.mask {
                let at = |d: usize, x: usize| if dims[d] == 1 { 0 } else { x };
                let row = ((at(0, b) * dims[1] + at(1, h)) * dims[2] + at(2, i)) * dims[3];
                if dims[3] == 1 {
                    scores.iter_mut().for_each(|s| *s += m[row]);
                } else {
                    for (s, &a) in scores.iter_mut().zip(&m[row..row + tk]) {
                        *s += a;
                    }
                }
            }
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let o = &mut out[i * hd..(i + 1) * hd];
            o.fill(0.0);
            for (j, &e) in scores.iter().enumerate() {
                let p = e / sum;
                for (acc, &x) in o.iter_mut().zip(&values[j * hd..(j + 1) * hd]) {
                    *acc += p * x;
                }
            }
        }
    }
}

/// `Σ a[d]·b[d]` added in index order (no reassociation, no fused multiply-add, so the
/// same bits on every x86-64 CPU).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |acc, (&x, &y)| acc + x * y)
}

/// The f32 values of a contiguous CPU tensor's storage.
fn f32_slice<'a>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(s)), Some((a, b))) => Ok(&s[a..b]),
        _ => candle_core::bail!("attention: expected a contiguous f32 CPU tensor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Lcg;
    use candle_core::Device;

    fn tensor(seed: u64, dims: (usize, usize, usize, usize)) -> Tensor {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        Tensor::from_vec(Lcg::new(seed).values(n), dims, &Device::Cpu).unwrap()
    }

    /// candle's two-matmul attention, the reference.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        let scores = scores.broadcast_add(mask).unwrap();
        candle_nn::ops::softmax_last_dim(&scores)
            .unwrap()
            .matmul(v)
            .unwrap()
    }

    #[test]
    fn agrees_with_two_matmuls_and_ignores_padding_bit_for_bit() {
        let (n, h, tq, tk, hd) = (3, 2, 4, 7, 8);
        let q = tensor(1, (n, h, tq, hd));
        let k = tensor(2, (n, h, tk, hd));
        let v = tensor(3, (n, h, tk, hd));
        // Sentence 1 has 4 real keys of 7; the others all 7.
        let keep: Vec<f32> = (0..n * tk)
            .map(|i| {
                if i / tk == 1 && i % tk >= 4 {
                    f32::MIN
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(keep, (n, 1, 1, tk), &Device::Cpu).unwrap();
        let scale = (hd as f64).powf(-0.5);
        let ours = attend_rows(&q, &k, &v, Some(&mask), scale as f32).unwrap();
        let theirs = reference(&q, &k, &v, &mask, scale);
        let diff = (ours.clone() - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        // Sentence 1 alone, unpadded: the same bits.
        let cut = |t: &Tensor, len: usize| t.narrow(0, 1, 1).unwrap().narrow(2, 0, len).unwrap();
        let alone = attend_rows(
            &q.narrow(0, 1, 1).unwrap(),
            &cut(&k, 4),
            &cut(&v, 4),
            None,
            scale as f32,
        )
        .unwrap();
        let in_batch = ours.narrow(0, 1, 1).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect()
        };
        assert_eq!(bits(&alone), bits(&in_batch));
    }

    #[test]
    fn rejects_shapes_that_do_not_fit() {
        let q = tensor(1, (1, 2, 3, 4));
        let k = tensor(2, (1, 2, 5, 4));
        assert!(attend_rows(&q, &k, &tensor(3, (1, 2, 5, 3)), None, 1.0).is_err());
        let bad_mask = tensor(4, (1, 1, 2, 5));
        assert!(attend_rows(&q, &k, &k, Some(&bad_mask), 1.0).is_err());
    }
}
