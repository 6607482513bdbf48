//! The layers of a Marian model: sinusoidal positions, attention masks, fused
//! self-attention, cross-attention, feed-forward, the encoder and decoder layers, the
//! linear projections they run through (packed, int8 or candle) and token tables.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::decoding::CrossKv;
use super::MarianConfig;
use crate::engine::int8::Int8Weight;
use crate::engine::layers::{padding_bias, Activation};
use crate::engine::packed::PackedWeight;
use crate::{Error, Result};

/// transformers' `MarianSinusoidalPositionalEmbedding`: sines in the first half of each
/// vector, cosines in the second, frequencies `pos / 10000^(2i / dim)`, built in f64.
pub(super) fn sinusoidal_positions(
    n_pos: usize,
    dim: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let sentinel = dim.div_ceil(2);
    let mut data = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut data[pos * dim..(pos + 1) * dim];
        for (j, slot) in row.iter_mut().enumerate() {
            // Column j of the first half holds even feature 2j; of the second, odd 2(j-s)+1.
            let feature = if j < sentinel {
                2 * j
            } else {
                2 * (j - sentinel) + 1
            };
            let angle = pos as f64 / 10000f64.powf((2 * (feature / 2)) as f64 / dim as f64);
            *slot = if j < sentinel {
                angle.sin()
            } else {
                angle.cos()
            } as f32;
        }
    }
    Ok(Tensor::from_vec(data, (n_pos, dim), dev)?.to_dtype(dtype)?)
}

/// The additive value that removes a key from attention (transformers: dtype minimum).
pub(super) fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        _ => f32::MIN as f64,
    }
}

/// `[batch, src]` 0/1 mask → additive `[batch, 1, 1, src]` in `dtype`.
pub(super) fn additive_padding_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    padding_bias(mask, mask_value(dtype), dtype)
}

/// `[t, t]` additive causal mask, broadcastable over batch and heads.
pub(super) fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let neg = mask_value(dtype) as f32;
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { neg } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (1, 1, t, t), dev)?.to_dtype(dtype)?)
}

/// Scaled dot-product attention on `[n, heads, tq, hd]` tensors; `mask` is additive and
/// broadcast to `[n, heads, tq, tk]`.
///
/// The scale is applied to the scores, as transformers does: folding it into the query
/// weights is cheaper but moved the tiny fixture models' logits by 1.5e-4.
///
/// f32 on the CPU goes through [`crate::engine::attention::attend_rows`], whose results
/// do not depend on the rest of the batch.
pub(super) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let hd = q.dim(3)?;
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        let scale = (hd as f64).powf(-0.5) as f32;
        return Ok(crate::engine::attention::attend_rows(q, k, v, mask, scale)?);
    }
    let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(v)?)
}

pub(super) fn linear(vb: &VarBuilder, name: &str, out_dim: usize, in_dim: usize) -> Result<Linear> {
    let w = vb.get((out_dim, in_dim), &format!("{name}.weight"))?;
    let b = vb.get(out_dim, &format!("{name}.bias"))?;
    Ok(Linear::new(w, Some(b)))
}

pub(super) fn layer_norm(vb: &VarBuilder, name: &str, dim: usize) -> Result<LayerNorm> {
    let w = vb.get(dim, &format!("{name}.weight"))?;
    let b = vb.get(dim, &format!("{name}.bias"))?;
    Ok(LayerNorm::new(w, b, 1e-5))
}

/// Self-attention with q, k, v fused into one projection.
#[derive(Debug, Clone)]
pub(super) struct SelfAttention {
    pub(super) qkv: DenseProj,
    pub(super) out: DenseProj,
    pub(super) heads: usize,
    pub(super) head_dim: usize,
}

impl SelfAttention {
    pub(super) fn load(
        vb: &VarBuilder,
        d: usize,
        heads: usize,
        quant: Quantization,
    ) -> Result<Self> {
        let q = linear(vb, "q_proj", d, d)?;
        let k = linear(vb, "k_proj", d, d)?;
        let v = linear(vb, "v_proj", d, d)?;
        let qkv = DenseProj::new(fuse(&[&q, &k, &v])?, quant)?;
        Ok(SelfAttention {
            qkv,
            out: DenseProj::new(linear(vb, "out_proj", d, d)?, quant)?,
            heads,
            head_dim: d / heads,
        })
    }

    /// `[b, t, d]` → q, k, v as `[b, heads, t, hd]` each.
    pub(super) fn project(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = xs.dims3()?;
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        Ok((qkv.get(0)?, qkv.get(1)?, qkv.get(2)?))
    }

    pub(super) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let (q, k, v) = self.project(xs)?;
        let ctx = attend(&q, &k, &v, mask)?;
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, d))?;
        Ok(self.out.forward(&ctx)?)
    }
}

/// How the engine stores the weights of its linear layers (and of a token table tied to
/// the output projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// As loaded: f32 (or f16 on accelerators).
    #[default]
    None,
    /// Int8 per output row, activations quantized per row at run time
    /// ([`Int8Weight`]); CPU and f32 weights only.
    Int8,
}

/// A dense linear layer from safetensors (f32 or f16 weights and a bias, unlike the
/// LLM's block-quantized `GgufProj`): quantized to int8 when asked, else repacked for
/// the CPU kernels of [`PackedWeight`] when its weights are f32 on the CPU, candle's
/// matmul otherwise.
#[derive(Debug, Clone)]
pub(super) enum DenseProj {
    Candle(Linear),
    Packed(PackedWeight),
    Int8(Int8Weight),
}

impl DenseProj {
    pub(super) fn new(l: Linear, quant: Quantization) -> Result<Self> {
        let w = l.weight();
        let cpu_f32 = w.device().is_cpu() && w.dtype() == DType::F32;
        Ok(match quant {
            Quantization::Int8 if cpu_f32 => DenseProj::Int8(Int8Weight::new(w, l.bias())?),
            Quantization::Int8 => {
                return Err(Error::Unsupported(
                    "int8 Marian weights need f32 weights on the CPU".into(),
                ))
            }
            Quantization::None if cpu_f32 => DenseProj::Packed(PackedWeight::new(w, l.bias())?),
            Quantization::None => DenseProj::Candle(l),
        })
    }

    pub(super) fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            DenseProj::Candle(l) => l.forward(xs),
            DenseProj::Packed(p) => p.forward(xs),
            DenseProj::Int8(q) => q.forward(xs),
        }
    }
}

/// Concatenates linear layers along their outputs, so that one product computes all.
pub(super) fn fuse(parts: &[&Linear]) -> Result<Linear> {
    let ws: Vec<Tensor> = parts.iter().map(|l| l.weight().clone()).collect();
    let b = match parts
        .iter()
        .map(|l| l.bias().cloned())
        .collect::<Option<Vec<_>>>()
    {
        Some(bs) => Some(Tensor::cat(&bs, 0)?),
        None => None,
    };
    Ok(Linear::new(Tensor::cat(&ws, 0)?, b))
}

#[derive(Debug, Clone)]
pub(super) struct FeedForward {
    pub(super) fc1: DenseProj,
    pub(super) fc2: DenseProj,
    pub(super) act: Activation,
}

impl FeedForward {
    pub(super) fn load(
        vb: &VarBuilder,
        d: usize,
        ffn: usize,
        act: Activation,
        quant: Quantization,
    ) -> Result<Self> {
        Ok(FeedForward {
            fc1: DenseProj::new(linear(vb, "fc1", ffn, d)?, quant)?,
            fc2: DenseProj::new(linear(vb, "fc2", d, ffn)?, quant)?,
            act,
        })
    }

    pub(super) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.act.apply(&self.fc1.forward(xs)?)?;
        Ok(self.fc2.forward(&h)?)
    }
}

#[derive(Debug, Clone)]
pub(super) struct EncoderLayer {
    pub(super) attn: SelfAttention,
    pub(super) attn_norm: LayerNorm,
    pub(super) ffn: FeedForward,
    pub(super) ffn_norm: LayerNorm,
}

impl EncoderLayer {
    pub(super) fn load(
        vb: &VarBuilder,
        cfg: &MarianConfig,
        act: Activation,
        q: Quantization,
    ) -> Result<Self> {
        let d = cfg.d_model;
        Ok(EncoderLayer {
            attn: SelfAttention::load(&vb.pp("self_attn"), d, cfg.encoder_attention_heads, q)?,
            attn_norm: layer_norm(vb, "self_attn_layer_norm", d)?,
            ffn: FeedForward::load(vb, d, cfg.encoder_ffn_dim, act, q)?,
            ffn_norm: layer_norm(vb, "final_layer_norm", d)?,
        })
    }

    pub(super) fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = (xs + self.attn.forward(xs, Some(mask))?)?;
        let h = self.attn_norm.forward(&h)?;
        let out = (&h + self.ffn.forward(&h)?)?;
        Ok(self.ffn_norm.forward(&out)?)
    }
}

/// Cross-attention: queries from the decoder, keys and values from the encoder output.
#[derive(Debug, Clone)]
pub(super) struct CrossAttention {
    pub(super) q: DenseProj,
    pub(super) kv: DenseProj,
    pub(super) out: DenseProj,
    pub(super) heads: usize,
    pub(super) head_dim: usize,
}

impl CrossAttention {
    pub(super) fn load(
        vb: &VarBuilder,
        d: usize,
        heads: usize,
        quant: Quantization,
    ) -> Result<Self> {
        let head_dim = d / heads;
        let q = linear(vb, "q_proj", d, d)?;
        let k = linear(vb, "k_proj", d, d)?;
        let v = linear(vb, "v_proj", d, d)?;
        Ok(CrossAttention {
            q: DenseProj::new(q, quant)?,
            kv: DenseProj::new(fuse(&[&k, &v])?, quant)?,
            out: DenseProj::new(linear(vb, "out_proj", d, d)?, quant)?,
            heads,
            head_dim,
        })
    }

    /// Encoder output `[b, s, d]` → keys and values `[b, heads, s, hd]`.
    pub(super) fn keys_values(&self, enc: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, s, _) = enc.dims3()?;
        let kv = self
            .kv
            .forward(enc)?
            .reshape((b, s, 2, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        Ok((kv.get(0)?, kv.get(1)?))
    }

    /// `xs` `[n·g, t, d]` where each group of `g` consecutive rows reads the same source
    /// (beams of one sentence): the queries of a group are stacked so that one
    /// `[n, heads, g·t, s]` product serves them and the keys are never copied per beam.
    pub(super) fn forward(
        &self,
        xs: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (rows, t, d) = xs.dims3()?;
        let n = k.dim(0)?;
        let g = rows / n;
        let q = self
            .q
            .forward(xs)?
            .reshape((n, g * t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?;
        let ctx = attend(&q, k, v, Some(mask))?;
        let ctx = ctx.transpose(1, 2)?.reshape((rows, t, d))?;
        Ok(self.out.forward(&ctx)?)
    }
}

#[derive(Debug, Clone)]
pub(super) struct DecoderLayer {
    pub(super) self_attn: SelfAttention,
    pub(super) self_norm: LayerNorm,
    pub(super) cross: CrossAttention,
    pub(super) cross_norm: LayerNorm,
    pub(super) ffn: FeedForward,
    pub(super) ffn_norm: LayerNorm,
}

impl DecoderLayer {
    pub(super) fn load(
        vb: &VarBuilder,
        cfg: &MarianConfig,
        act: Activation,
        q: Quantization,
    ) -> Result<Self> {
        let d = cfg.d_model;
        let heads = cfg.decoder_attention_heads;
        Ok(DecoderLayer {
            self_attn: SelfAttention::load(&vb.pp("self_attn"), d, heads, q)?,
            self_norm: layer_norm(vb, "self_attn_layer_norm", d)?,
            cross: CrossAttention::load(&vb.pp("encoder_attn"), d, heads, q)?,
            cross_norm: layer_norm(vb, "encoder_attn_layer_norm", d)?,
            ffn: FeedForward::load(vb, d, cfg.decoder_ffn_dim, act, q)?,
            ffn_norm: layer_norm(vb, "final_layer_norm", d)?,
        })
    }

    /// Everything after self-attention: residual + norm, cross-attention, feed-forward.
    pub(super) fn finish(
        &self,
        xs: &Tensor,
        attn: &Tensor,
        cross: &CrossKv,
        layer: usize,
    ) -> Result<Tensor> {
        let h = self.self_norm.forward(&(xs + attn)?)?;
        let c = self
            .cross
            .forward(&h, &cross.k[layer], &cross.v[layer], &cross.mask)?;
        let h = self.cross_norm.forward(&(&h + c)?)?;
        let out = (&h + self.ffn.forward(&h)?)?;
        Ok(self.ffn_norm.forward(&out)?)
    }
}

/// A token embedding table: its own tensor, or the packed or int8 output projection it
/// is tied to (rows read with a stride; int8 rows as quantized, `q · s`).
#[derive(Debug, Clone)]
pub(super) enum Table {
    Tensor(Embedding),
    Packed(PackedWeight),
    Int8(Int8Weight),
}

impl Table {
    /// `ids [b, t]` → `[b, t, d]`.
    pub(super) fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Table::Tensor(e) => Ok(e.forward(ids)?),
            Table::Packed(p) => rows_of(ids, p.in_dim(), p.out_dim(), |o, r| p.row_into(o, r)),
            Table::Int8(q) => rows_of(ids, q.in_dim(), q.out_dim(), |o, r| q.row_into(o, r)),
        }
    }
}

/// `ids [b, t]` → `[b, t, d]` from a table of `n` rows read by `row_into`.
pub(super) fn rows_of(
    ids: &Tensor,
    d: usize,
    n: usize,
    row_into: impl Fn(usize, &mut [f32]),
) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let ids: Vec<u32> = ids.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; ids.len() * d];
    for (&id, row) in ids.iter().zip(out.chunks_exact_mut(d)) {
        if id as usize >= n {
            return Err(Error::Model(format!(
                "token {id} outside the vocabulary of {n}"
            )));
        }
        row_into(id as usize, row);
    }
    Ok(Tensor::from_vec(out, (b, t, d), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_match_transformers_layout() {
        let p = sinusoidal_positions(3, 6, DType::F32, &Device::Cpu).unwrap();
        let p: Vec<Vec<f32>> = p.to_vec2().unwrap();
        assert_eq!(p[0], vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        // Position 2: sin(2 / 10000^(0/6)), sin(2 / 10000^(2/6)), sin(2 / 10000^(4/6)), then cos.
        let f = [1.0f64, 10000f64.powf(2.0 / 6.0), 10000f64.powf(4.0 / 6.0)];
        for (j, div) in f.iter().enumerate() {
            assert!((p[2][j] as f64 - (2.0 / div).sin()).abs() < 1e-6);
            assert!((p[2][j + 3] as f64 - (2.0 / div).cos()).abs() < 1e-6);
        }
    }
}
