//! Marian (OPUS-MT) encoder-decoder on candle ops: batched, padded, cached.
//!
//! Matches transformers' `MarianMTModel` (post-norm layers, static sinusoidal positions,
//! `final_logits_bias`). Unlike candle-transformers' Marian it masks padding, computes
//! the cross-attention keys and values once per source batch, and decodes through
//! [`crate::decode`], whose beams and finished rows it follows by reordering its caches.

use crate::decode::processors::exp_nonpositive;
use crate::decode::{self, DecodeInput, DecodeOptions, Hypothesis, StepModel};
use crate::engine::int8::Int8Weight;
use crate::engine::packed::PackedWeight;
use crate::{Error, Result};
use candle_core::{
    CpuStorage, CustomOp1, DType, Device, InplaceOp1, Layout, Module, Shape, Tensor, D,
};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;

/// The fields of a Marian `config.json` the engine uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarianConfig {
    /// Source (and, when shared, target) vocabulary size.
    pub vocab_size: usize,
    /// Target vocabulary size when the embeddings are not shared.
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    /// Hidden size.
    pub d_model: usize,
    /// Number of encoder layers.
    pub encoder_layers: usize,
    /// Number of decoder layers.
    pub decoder_layers: usize,
    /// Attention heads per encoder layer.
    pub encoder_attention_heads: usize,
    /// Attention heads per decoder layer.
    pub decoder_attention_heads: usize,
    /// Feed-forward size in the encoder.
    pub encoder_ffn_dim: usize,
    /// Feed-forward size in the decoder.
    pub decoder_ffn_dim: usize,
    /// Feed-forward activation: `swish`/`silu`, `relu`, `gelu`, `gelu_new`.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Multiply token embeddings by `sqrt(d_model)`.
    #[serde(default)]
    pub scale_embedding: bool,
    /// Number of sinusoidal positions, i.e. the longest source or target.
    pub max_position_embeddings: usize,
    /// Padding token, also the decoder start token in OPUS-MT.
    pub pad_token_id: u32,
    /// End-of-sequence token.
    pub eos_token_id: u32,
    /// First decoder input.
    pub decoder_start_token_id: u32,
    /// Forced at the last step by transformers; the engine never forces it.
    #[serde(default)]
    pub forced_eos_token_id: Option<u32>,
    /// One embedding table for encoder and decoder.
    #[serde(default = "yes")]
    pub share_encoder_decoder_embeddings: bool,
    /// The output projection is the decoder embedding table.
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    /// Pre-norm layers; transformers ignores it and so can we only when it is false.
    #[serde(default)]
    pub normalize_before: bool,
    /// Always sinusoidal in transformers, whatever this says.
    #[serde(default = "yes")]
    pub static_position_embeddings: bool,
}

fn default_activation() -> String {
    "swish".to_string()
}

fn yes() -> bool {
    true
}

impl MarianConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: MarianConfig = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{}: not a Marian config: {e}", path.display())))?;
        super::check::marian_config(path, &cfg)?;
        cfg.validate().map_err(|e| super::check::in_file(path, e))?;
        Ok(cfg)
    }

    /// Rejects configurations this engine would run wrongly.
    pub fn validate(&self) -> Result<()> {
        Activation::parse(&self.activation_function)?;
        if self.normalize_before {
            return Err(Error::Unsupported(
                "Marian with normalize_before (pre-norm layers) is not supported".into(),
            ));
        }
        for (heads, what) in [
            (self.encoder_attention_heads, "encoder"),
            (self.decoder_attention_heads, "decoder"),
        ] {
            if heads == 0 || self.d_model % heads != 0 {
                return Err(Error::Model(format!(
                    "Marian config: d_model {} is not divisible by {heads} {what} heads",
                    self.d_model
                )));
            }
        }
        if self.max_position_embeddings == 0 {
            return Err(Error::Model("Marian config: no positions".into()));
        }
        let target_vocab = self.target_vocab_size();
        for (id, what) in [
            (self.pad_token_id, "pad"),
            (self.eos_token_id, "eos"),
            (self.decoder_start_token_id, "decoder start"),
        ] {
            if id as usize >= target_vocab {
                return Err(Error::Model(format!(
                    "Marian config: {what} token {id} outside the vocabulary of {target_vocab}"
                )));
            }
        }
        Ok(())
    }

    /// Size of the output vocabulary.
    pub fn target_vocab_size(&self) -> usize {
        if self.share_encoder_decoder_embeddings {
            self.vocab_size
        } else {
            self.decoder_vocab_size.unwrap_or(self.vocab_size)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Activation {
    Silu,
    Relu,
    GeluErf,
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "swish" | "silu" => Ok(Activation::Silu),
            "relu" => Ok(Activation::Relu),
            "gelu" => Ok(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            other => Err(Error::Unsupported(format!(
                "Marian activation function {other:?}"
            ))),
        }
    }

    fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Silu if xs.device().is_cpu() && xs.dtype() == DType::F32 => {
                xs.contiguous()?.apply_op1_no_bwd(&FastSilu)
            }
            Activation::Silu => xs.silu(),
            Activation::Relu => xs.relu(),
            Activation::GeluErf => xs.gelu_erf(),
            Activation::GeluTanh => xs.gelu(),
        }
    }
}

/// SiLU for f32 on the CPU: candle's calls `exp` per element, which made the activation
/// cost more than the matmul before it (2 ms vs 1.2 ms for 64 × 2048).
struct FastSilu;

impl CustomOp1 for FastSilu {
    fn name(&self) -> &'static str {
        "marian-fast-silu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or(candle_core::Error::RequiresContiguous { op: "fast-silu" })?;
        let xs = &storage.as_slice::<f32>()?[start..end];
        let out = xs.iter().map(|&x| silu(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let sigmoid = if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    x * sigmoid
}

/// transformers' `MarianSinusoidalPositionalEmbedding`: sines in the first half of each
/// vector, cosines in the second, frequencies `pos / 10000^(2i / dim)`, built in f64.
fn sinusoidal_positions(n_pos: usize, dim: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
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
fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        _ => f32::MIN as f64,
    }
}

/// `[batch, src]` 0/1 mask → additive `[batch, 1, 1, src]` in `dtype`.
fn additive_padding_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let keep = mask.to_dtype(DType::F32)?;
    let add = ((keep - 1.0)? * (-mask_value(dtype)))?;
    Ok(add.to_dtype(dtype)?.reshape((b, 1, 1, s))?)
}

/// `[t, t]` additive causal mask, broadcastable over batch and heads.
fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
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
/// f32 on the CPU goes through [`super::attention::attend_rows`], whose results do not
/// depend on the rest of the batch.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let hd = q.dim(3)?;
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        let scale = (hd as f64).powf(-0.5) as f32;
        return Ok(super::attention::attend_rows(q, k, v, mask, scale)?);
    }
    let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(v)?)
}

fn linear(vb: &VarBuilder, name: &str, out_dim: usize, in_dim: usize) -> Result<Linear> {
    let w = vb.get((out_dim, in_dim), &format!("{name}.weight"))?;
    let b = vb.get(out_dim, &format!("{name}.bias"))?;
    Ok(Linear::new(w, Some(b)))
}

fn layer_norm(vb: &VarBuilder, name: &str, dim: usize) -> Result<LayerNorm> {
    let w = vb.get(dim, &format!("{name}.weight"))?;
    let b = vb.get(dim, &format!("{name}.bias"))?;
    Ok(LayerNorm::new(w, b, 1e-5))
}

/// Self-attention with q, k, v fused into one projection.
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv: Proj,
    out: Proj,
    heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn load(vb: &VarBuilder, d: usize, heads: usize, quant: Quantization) -> Result<Self> {
        let q = linear(vb, "q_proj", d, d)?;
        let k = linear(vb, "k_proj", d, d)?;
        let v = linear(vb, "v_proj", d, d)?;
        let qkv = Proj::new(fuse(&[&q, &k, &v])?, quant)?;
        Ok(SelfAttention {
            qkv,
            out: Proj::new(linear(vb, "out_proj", d, d)?, quant)?,
            heads,
            head_dim: d / heads,
        })
    }

    /// `[b, t, d]` → q, k, v as `[b, heads, t, hd]` each.
    fn project(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = xs.dims3()?;
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        Ok((qkv.get(0)?, qkv.get(1)?, qkv.get(2)?))
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
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

/// A linear layer: quantized to int8 when asked, else repacked for the CPU kernels of
/// [`PackedWeight`] when its weights are f32 on the CPU, candle's matmul otherwise.
#[derive(Debug, Clone)]
enum Proj {
    Candle(Linear),
    Packed(PackedWeight),
    Int8(Int8Weight),
}

impl Proj {
    fn new(l: Linear, quant: Quantization) -> Result<Self> {
        let w = l.weight();
        let cpu_f32 = w.device().is_cpu() && w.dtype() == DType::F32;
        Ok(match quant {
            Quantization::Int8 if cpu_f32 => Proj::Int8(Int8Weight::new(w, l.bias())?),
            Quantization::Int8 => {
                return Err(Error::Unsupported(
                    "int8 Marian weights need f32 weights on the CPU".into(),
                ))
            }
            Quantization::None if cpu_f32 => Proj::Packed(PackedWeight::new(w, l.bias())?),
            Quantization::None => Proj::Candle(l),
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::Candle(l) => l.forward(xs),
            Proj::Packed(p) => p.forward(xs),
            Proj::Int8(q) => q.forward(xs),
        }
    }
}

/// Concatenates linear layers along their outputs, so that one product computes all.
fn fuse(parts: &[&Linear]) -> Result<Linear> {
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
struct FeedForward {
    fc1: Proj,
    fc2: Proj,
    act: Activation,
}

impl FeedForward {
    fn load(
        vb: &VarBuilder,
        d: usize,
        ffn: usize,
        act: Activation,
        quant: Quantization,
    ) -> Result<Self> {
        Ok(FeedForward {
            fc1: Proj::new(linear(vb, "fc1", ffn, d)?, quant)?,
            fc2: Proj::new(linear(vb, "fc2", d, ffn)?, quant)?,
            act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.act.apply(&self.fc1.forward(xs)?)?;
        Ok(self.fc2.forward(&h)?)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: SelfAttention,
    attn_norm: LayerNorm,
    ffn: FeedForward,
    ffn_norm: LayerNorm,
}

impl EncoderLayer {
    fn load(vb: &VarBuilder, cfg: &MarianConfig, act: Activation, q: Quantization) -> Result<Self> {
        let d = cfg.d_model;
        Ok(EncoderLayer {
            attn: SelfAttention::load(&vb.pp("self_attn"), d, cfg.encoder_attention_heads, q)?,
            attn_norm: layer_norm(vb, "self_attn_layer_norm", d)?,
            ffn: FeedForward::load(vb, d, cfg.encoder_ffn_dim, act, q)?,
            ffn_norm: layer_norm(vb, "final_layer_norm", d)?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = (xs + self.attn.forward(xs, Some(mask))?)?;
        let h = self.attn_norm.forward(&h)?;
        let out = (&h + self.ffn.forward(&h)?)?;
        Ok(self.ffn_norm.forward(&out)?)
    }
}

/// Cross-attention: queries from the decoder, keys and values from the encoder output.
#[derive(Debug, Clone)]
struct CrossAttention {
    q: Proj,
    kv: Proj,
    out: Proj,
    heads: usize,
    head_dim: usize,
}

impl CrossAttention {
    fn load(vb: &VarBuilder, d: usize, heads: usize, quant: Quantization) -> Result<Self> {
        let head_dim = d / heads;
        let q = linear(vb, "q_proj", d, d)?;
        let k = linear(vb, "k_proj", d, d)?;
        let v = linear(vb, "v_proj", d, d)?;
        Ok(CrossAttention {
            q: Proj::new(q, quant)?,
            kv: Proj::new(fuse(&[&k, &v])?, quant)?,
            out: Proj::new(linear(vb, "out_proj", d, d)?, quant)?,
            heads,
            head_dim,
        })
    }

    /// Encoder output `[b, s, d]` → keys and values `[b, heads, s, hd]`.
    fn keys_values(&self, enc: &Tensor) -> Result<(Tensor, Tensor)> {
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
    fn forward(&self, xs: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
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
struct DecoderLayer {
    self_attn: SelfAttention,
    self_norm: LayerNorm,
    cross: CrossAttention,
    cross_norm: LayerNorm,
    ffn: FeedForward,
    ffn_norm: LayerNorm,
}

impl DecoderLayer {
    fn load(vb: &VarBuilder, cfg: &MarianConfig, act: Activation, q: Quantization) -> Result<Self> {
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
    fn finish(&self, xs: &Tensor, attn: &Tensor, cross: &CrossKv, layer: usize) -> Result<Tensor> {
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
enum Table {
    Tensor(Embedding),
    Packed(PackedWeight),
    Int8(Int8Weight),
}

impl Table {
    /// `ids [b, t]` → `[b, t, d]`.
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Table::Tensor(e) => Ok(e.forward(ids)?),
            Table::Packed(p) => rows_of(ids, p.in_dim(), p.out_dim(), |o, r| p.row_into(o, r)),
            Table::Int8(q) => rows_of(ids, q.in_dim(), q.out_dim(), |o, r| q.row_into(o, r)),
        }
    }
}

/// `ids [b, t]` → `[b, t, d]` from a table of `n` rows read by `row_into`.
fn rows_of(
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

/// Cross-attention keys, values and padding mask for a batch of sources.
#[derive(Debug, Clone)]
struct CrossKv {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    mask: Tensor,
}

impl CrossKv {
    fn select(&self, idx: &Tensor) -> Result<CrossKv> {
        let pick = |ts: &[Tensor]| -> Result<Vec<Tensor>> {
            ts.iter().map(|t| Ok(t.index_select(idx, 0)?)).collect()
        };
        Ok(CrossKv {
            k: pick(&self.k)?,
            v: pick(&self.v)?,
            mask: self.mask.index_select(idx, 0)?,
        })
    }
}

/// A Marian translation model (`MarianMTModel`), ready to encode and decode batches.
#[derive(Debug, Clone)]
pub struct MarianModel {
    cfg: MarianConfig,
    enc_embed: Table,
    dec_embed: Table,
    positions: Tensor,
    embed_scale: f64,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    /// Output projection with `final_logits_bias`.
    lm_head: Proj,
    device: Device,
    dtype: DType,
    quant: Quantization,
}

impl MarianModel {
    /// Builds the model from weights named as transformers saves them.
    pub fn new(cfg: &MarianConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_quantized(cfg, vb, Quantization::None)
    }

    /// [`MarianModel::new`] with the linear layers stored as `quant` says.
    pub fn new_quantized(cfg: &MarianConfig, vb: VarBuilder, quant: Quantization) -> Result<Self> {
        cfg.validate()?;
        let act = Activation::parse(&cfg.activation_function)?;
        let d = cfg.d_model;
        let target_vocab = cfg.target_vocab_size();
        let m = vb.pp("model");
        let table = |names: &[&str], rows: usize| -> Result<Tensor> {
            for name in names {
                if m.contains_tensor(name) {
                    return Ok(m.get((rows, d), name)?);
                }
            }
            Err(Error::Model(format!(
                "Marian weights: none of {names:?} found under model."
            )))
        };
        let (enc_table, dec_table) = if cfg.share_encoder_decoder_embeddings {
            let shared = table(
                &[
                    "shared.weight",
                    "encoder.embed_tokens.weight",
                    "decoder.embed_tokens.weight",
                ],
                cfg.vocab_size,
            )?;
            (shared.clone(), shared)
        } else {
            (
                table(
                    &["encoder.embed_tokens.weight", "shared.weight"],
                    cfg.vocab_size,
                )?,
                table(&["decoder.embed_tokens.weight"], target_vocab)?,
            )
        };
        let lm_head = if cfg.tie_word_embeddings {
            dec_table.clone()
        } else {
            vb.get((target_vocab, d), "lm_head.weight")?
        };
        let logits_bias = if vb.contains_tensor("final_logits_bias") {
            vb.get((1, target_vocab), "final_logits_bias")?
        } else {
            Tensor::zeros((1, target_vocab), vb.dtype(), vb.device())?
        };
        let lm_head = Proj::new(
            Linear::new(lm_head, Some(logits_bias.flatten_all()?)),
            quant,
        )?;
        // A table tied to a packed output projection is read from the packed copy, so
        // that the model holds it once.
        let (enc_embed, dec_embed) = {
            // Owned here, so that tables the packed copy replaces are freed before the
            // layers load.
            let (enc_table, dec_table) = (enc_table, dec_table);
            let tied = match &lm_head {
                Proj::Packed(p) if cfg.tie_word_embeddings => Some(Table::Packed(p.clone())),
                Proj::Int8(q) if cfg.tie_word_embeddings => Some(Table::Int8(q.clone())),
                _ => None,
            };
            match tied {
                Some(table) => {
                    let enc = if cfg.share_encoder_decoder_embeddings {
                        table.clone()
                    } else {
                        Table::Tensor(Embedding::new(enc_table, d))
                    };
                    (enc, table)
                }
                _ => (
                    Table::Tensor(Embedding::new(enc_table, d)),
                    Table::Tensor(Embedding::new(dec_table, d)),
                ),
            }
        };
        let encoder = (0..cfg.encoder_layers)
            .map(|i| EncoderLayer::load(&m.pp(format!("encoder.layers.{i}")), cfg, act, quant))
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..cfg.decoder_layers)
            .map(|i| DecoderLayer::load(&m.pp(format!("decoder.layers.{i}")), cfg, act, quant))
            .collect::<Result<Vec<_>>>()?;
        let positions =
            sinusoidal_positions(cfg.max_position_embeddings, d, vb.dtype(), vb.device())?;
        Ok(MarianModel {
            cfg: cfg.clone(),
            enc_embed,
            dec_embed,
            positions,
            embed_scale: if cfg.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            encoder,
            decoder,
            lm_head,
            device: vb.device().clone(),
            dtype: vb.dtype(),
            quant,
        })
    }

    /// Loads `config.json` and `model.safetensors` from a model directory (memory-mapped).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load_quantized(dir, dtype, device, Quantization::None)
    }

    /// [`MarianModel::load`] with the linear layers stored as `quant` says; int8 reads
    /// the file tensor by tensor rather than mapping it (see [`weights_builder`]).
    pub fn load_quantized(
        dir: &Path,
        dtype: DType,
        device: &Device,
        quant: Quantization,
    ) -> Result<Self> {
        let cfg = MarianConfig::from_file(&dir.join("config.json"))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::Model(format!(
                "{}: no model.safetensors",
                dir.display()
            )));
        }
        let vb = weights_builder(std::slice::from_ref(&weights), dtype, device, quant)
            .map_err(|e| super::check::in_file(&weights, e))?;
        Self::new_quantized(&cfg, vb, quant).map_err(|e| super::check::in_file(&weights, e))
    }

    /// The floating-point type of the weights as loaded (and of the activations).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// How the linear layers' weights are stored.
    pub fn quantization(&self) -> Quantization {
        self.quant
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &MarianConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn embed(&self, table: &Table, ids: &Tensor, start: usize) -> Result<Tensor> {
        let t = ids.dim(1)?;
        if start + t > self.cfg.max_position_embeddings {
            return Err(Error::Unsupported(format!(
                "sequence of {} tokens exceeds the model's {} positions",
                start + t,
                self.cfg.max_position_embeddings
            )));
        }
        let x = (table.lookup(ids)? * self.embed_scale)?;
        let pos = self.positions.narrow(0, start, t)?.unsqueeze(0)?;
        Ok(x.broadcast_add(&pos)?)
    }

    /// Encoder output `[batch, src, d_model]` for `src` ids `[batch, src]` and a 0/1
    /// padding `mask` of the same shape (1 = token).
    pub fn encode(&self, src: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let add_mask = additive_padding_mask(mask, self.dtype)?;
        let mut xs = self.embed(&self.enc_embed, src, 0)?;
        for layer in &self.encoder {
            xs = layer.forward(&xs, &add_mask)?;
        }
        Ok(xs)
    }

    fn cross_kv(&self, enc: &Tensor, mask: &Tensor) -> Result<CrossKv> {
        let mut k = Vec::with_capacity(self.decoder.len());
        let mut v = Vec::with_capacity(self.decoder.len());
        for layer in &self.decoder {
            let (lk, lv) = layer.cross.keys_values(enc)?;
            k.push(lk);
            v.push(lv);
        }
        Ok(CrossKv {
            k,
            v,
            mask: additive_padding_mask(mask, self.dtype)?,
        })
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }

    /// Teacher-forced logits `[batch, tgt, vocab]` for decoder inputs `tgt` (start token
    /// first), as transformers' `MarianMTModel.forward` returns them.
    pub fn forward(&self, src: &Tensor, src_mask: &Tensor, tgt: &Tensor) -> Result<Tensor> {
        let enc = self.encode(src, src_mask)?;
        let cross = self.cross_kv(&enc, src_mask)?;
        let t = tgt.dim(1)?;
        let causal = causal_mask(t, self.dtype, &self.device)?;
        let mut xs = self.embed(&self.dec_embed, tgt, 0)?;
        for (i, layer) in self.decoder.iter().enumerate() {
            let attn = layer.self_attn.forward(&xs, Some(&causal))?;
            xs = layer.finish(&xs, &attn, &cross, i)?;
        }
        self.logits(&xs)
    }

    /// Encodes a padded batch and returns a decoder state positioned before the first
    /// target token, one row per source.
    pub fn start(&self, src: &Tensor, src_mask: &Tensor) -> Result<MarianDecoding<'_>> {
        let cross = on_pool(&self.device, || {
            let enc = self.encode(src, src_mask)?;
            self.cross_kv(&enc, src_mask)
        })?;
        let n = src.dim(0)?;
        Ok(MarianDecoding {
            model: self,
            all_sources: cross.clone(),
            cross,
            sources: (0..n as u32).collect(),
            row_source: (0..n as u32).collect(),
            cache: vec![None; self.decoder.len()],
            pos: 0,
        })
    }

    /// Translates token-id sequences (each ending with `</s>`, as the tokenizer gives
    /// them): pads them into one batch and decodes with `opts`, filling in this model's
    /// end-of-sequence token when none is given and always suppressing padding.
    pub fn translate_ids(
        &self,
        sources: &[Vec<u32>],
        opts: &DecodeOptions,
    ) -> Result<Vec<Hypothesis>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        if sources.iter().any(Vec::is_empty) {
            return Err(Error::Unsupported(
                "cannot translate an empty token sequence".into(),
            ));
        }
        let pad = self.cfg.pad_token_id;
        let width = sources.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(sources.len() * width);
        let mut mask = Vec::with_capacity(sources.len() * width);
        for s in sources {
            ids.extend(s.iter().copied().chain(std::iter::repeat(pad)).take(width));
            mask.extend((0..width).map(|i| u32::from(i < s.len())));
        }
        let shape = (sources.len(), width);
        let src = Tensor::from_vec(ids, shape, &self.device)?;
        let src_mask = Tensor::from_vec(mask, shape, &self.device)?;
        let mut opts = opts.clone();
        if opts.eos_token_ids.is_empty() {
            opts.eos_token_ids.push(self.cfg.eos_token_id);
        }
        if !opts.suppress_tokens.contains(&pad) {
            opts.suppress_tokens.push(pad);
        }
        // The decoder cannot see past its last position.
        opts.max_new_tokens = opts.max_new_tokens.min(self.cfg.max_position_embeddings);
        let input = DecodeInput {
            start_token: self.cfg.decoder_start_token_id,
            source_lens: sources.iter().map(Vec::len).collect(),
        };
        let mut state = self.start(&src, &src_mask)?;
        decode::generate(&mut state, &input, &opts)
    }
}

/// Self-attention keys and values of one decoder layer, `[rows, heads, capacity, hd]`,
/// of which the first `pos` positions are filled; capacity doubles as needed.
#[derive(Debug, Clone)]
struct KvCache {
    k: Tensor,
    v: Tensor,
}

/// A batch being decoded by a [`MarianModel`]: the encoder's keys and values per source
/// and the decoder's self-attention cache per row.
#[derive(Debug)]
pub struct MarianDecoding<'m> {
    model: &'m MarianModel,
    /// Cross-attention state for every source of the batch, as encoded.
    all_sources: CrossKv,
    /// Cross-attention state for `sources`, one entry per group of rows.
    cross: CrossKv,
    /// Source index of each cross entry.
    sources: Vec<u32>,
    /// Source index of each row.
    row_source: Vec<u32>,
    cache: Vec<Option<KvCache>>,
    pos: usize,
}

impl MarianDecoding<'_> {
    /// Writes this step's keys and values `[rows, heads, 1, hd]` of `layer` at the current
    /// position and returns views of all positions so far.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let pos = self.pos;
        let rows = k.dim(0)?;
        let cache = match self.cache[layer].take() {
            Some(c) if pos < c.k.dim(2)? => c,
            old => {
                // Doubling keeps the copies (and what a reorder moves) within 2× the
                // filled part.
                let (_, heads, _, hd) = k.dims4()?;
                let cap = match &old {
                    Some(c) => c.k.dim(2)? * 2,
                    None => 16,
                };
                let zeros = || Tensor::zeros((rows, heads, cap, hd), k.dtype(), k.device());
                let grown = KvCache {
                    k: zeros()?,
                    v: zeros()?,
                };
                if let Some(c) = old {
                    grown.k.slice_set(&c.k.narrow(0, 0, rows)?, 2, 0)?;
                    grown.v.slice_set(&c.v.narrow(0, 0, rows)?, 2, 0)?;
                }
                grown
            }
        };
        // The buffers may hold more rows than are live (rows that left the batch).
        let (kb, vb) = (cache.k.narrow(0, 0, rows)?, cache.v.narrow(0, 0, rows)?);
        kb.slice_set(&k.contiguous()?, 2, pos)?;
        vb.slice_set(&v.contiguous()?, 2, pos)?;
        let out = (kb.narrow(2, 0, pos + 1)?, vb.narrow(2, 0, pos + 1)?);
        self.cache[layer] = Some(cache);
        Ok(out)
    }
}

/// Rearranges the rows of a self-attention cache `[buffer rows, heads, capacity, hd]` in
/// place: row `i` becomes old row `rows[i]`, for the first `filled` positions only, and
/// rows that keep their place are not touched (beams mostly do).
struct ReorderRows<'a> {
    rows: &'a [u32],
    filled: usize,
}

impl InplaceOp1 for ReorderRows<'_> {
    fn name(&self) -> &'static str {
        "marian-reorder-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or(candle_core::Error::RequiresContiguous { op: "reorder-rows" })?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("reorder-rows: f32 only");
        };
        let data = &mut data[start..end];
        let (buffer_rows, heads, cap, hd) = layout.shape().dims4()?;
        if self.rows.len() > buffer_rows
            || self.filled > cap
            || self.rows.iter().any(|&r| r as usize >= buffer_rows)
        {
            candle_core::bail!("reorder-rows: {:?} of {buffer_rows} rows", self.rows);
        }
        let (row_len, head_len, seg) = (heads * cap * hd, cap * hd, self.filled * hd);
        let moved: Vec<(usize, usize)> = self
            .rows
            .iter()
            .enumerate()
            .filter(|&(i, &r)| r as usize != i)
            .map(|(i, &r)| (i, r as usize))
            .collect();
        // Sources first, then destinations: a destination may be another's source.
        let mut held = Vec::with_capacity(moved.len() * heads * seg);
        for &(_, from) in &moved {
            for h in 0..heads {
                let at = from * row_len + h * head_len;
                held.extend_from_slice(&data[at..at + seg]);
            }
        }
        for (chunk, &(to, _)) in held.chunks_exact(heads * seg.max(1)).zip(&moved) {
            for (h, part) in chunk.chunks_exact(seg.max(1)).enumerate() {
                let at = to * row_len + h * head_len;
                data[at..at + part.len()].copy_from_slice(part);
            }
        }
        Ok(())
    }
}

/// A `VarBuilder` over safetensors files for a model stored as `quant` says: memory-mapped
/// for float weights, read tensor by tensor for int8, whose f32 originals must not stay
/// resident once quantized.
pub fn weights_builder(
    paths: &[std::path::PathBuf],
    dtype: DType,
    device: &Device,
    quant: Quantization,
) -> Result<VarBuilder<'static>> {
    Ok(match quant {
        Quantization::Int8 => crate::engine::int8::reader::SafetensorsReader::open(paths)?
            .into_var_builder(dtype, device),
        // SAFETY: the files are memory-mapped read-only; svodka never writes model files
        // while a model is loaded.
        Quantization::None => unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device)? },
    })
}

/// Runs `f` on a thread of rayon's pool when the model computes on the CPU, so that the
/// parallel operations inside it (candle's and the packed products, dozens per decoder
/// step) start from a pool thread rather than each handing its work over to the pool
/// and putting the caller to sleep until it is done.
fn on_pool<T: Send>(device: &Device, f: impl FnOnce() -> T + Send) -> T {
    if device.is_cpu() && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

impl StepModel for MarianDecoding<'_> {
    fn step(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
        on_pool(&self.model.device, || self.step_here(last_tokens))
    }

    fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        self.reorder_here(rows)
    }
}

impl MarianDecoding<'_> {
    fn step_here(&mut self, last_tokens: &[u32]) -> Result<Tensor> {
        let model = self.model;
        let rows = last_tokens.len();
        if rows != self.row_source.len() {
            return Err(Error::Model(format!(
                "decoder step got {rows} tokens for {} rows",
                self.row_source.len()
            )));
        }
        let ids = Tensor::from_vec(last_tokens.to_vec(), (rows, 1), &model.device)?;
        let mut xs = model.embed(&model.dec_embed, &ids, self.pos)?;
        let d = model.cfg.d_model;
        for (i, layer) in model.decoder.iter().enumerate() {
            let (q, k, v) = layer.self_attn.project(&xs)?;
            let (kc, vc) = self.append(i, &k, &v)?;
            // One query position: [rows, heads, 1, hd] is already [rows, 1, d] in memory.
            let ctx = attend(&q, &kc, &vc, None)?.reshape((rows, 1, d))?;
            let attn = layer.self_attn.out.forward(&ctx)?;
            xs = layer.finish(&xs, &attn, &self.cross, i)?;
        }
        self.pos += 1;
        Ok(model.logits(&xs)?.squeeze(1)?)
    }

    fn reorder_here(&mut self, rows: &[u32]) -> Result<()> {
        let row_source = rows
            .iter()
            .map(|&r| {
                self.row_source.get(r as usize).copied().ok_or_else(|| {
                    Error::Model(format!("reorder: row {r} of {}", self.row_source.len()))
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        let dev = &self.model.device;
        let idx = Tensor::from_vec(rows.to_vec(), rows.len(), dev)?;
        let live = self.row_source.len();
        for entry in self.cache.iter_mut().flatten() {
            let in_place = entry.k.device().is_cpu()
                && entry.k.dtype() == DType::F32
                && rows.len() <= entry.k.dim(0)?;
            if in_place {
                let op = ReorderRows {
                    rows,
                    filled: self.pos,
                };
                entry.k.inplace_op1(&op)?;
                entry.v.inplace_op1(&op)?;
            } else {
                entry.k = entry.k.narrow(0, 0, live)?.index_select(&idx, 0)?;
                entry.v = entry.v.narrow(0, 0, live)?.index_select(&idx, 0)?;
            }
        }
        let sources = group_sources(&row_source);
        if sources != self.sources {
            let idx = Tensor::from_vec(sources.clone(), sources.len(), dev)?;
            self.cross = self.all_sources.select(&idx)?;
            self.sources = sources;
        }
        self.row_source = row_source;
        Ok(())
    }
}

/// The cross-attention entries rows need: one per run of equal sources when every run
/// has the same length (beams of a sentence sit together), else one per row.
fn group_sources(row_source: &[u32]) -> Vec<u32> {
    let mut runs: Vec<(u32, usize)> = Vec::new();
    for &s in row_source {
        match runs.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    let uniform = runs.windows(2).all(|w| w[0].1 == w[1].1);
    let mut distinct: Vec<u32> = runs.iter().map(|r| r.0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if uniform && distinct.len() == runs.len() {
        runs.into_iter().map(|r| r.0).collect()
    } else {
        row_source.to_vec()
    }
}

/// Largest absolute difference between two tensors of the same shape (for tests and
/// parity reports).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let diff = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(diff.flatten_all()?.max(D::Minus1)?.to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tiny_config() -> MarianConfig {
        serde_json::from_str(
            r#"{"vocab_size": 10, "d_model": 8, "encoder_layers": 1, "decoder_layers": 1,
                "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                "encoder_ffn_dim": 16, "decoder_ffn_dim": 16, "activation_function": "relu",
                "scale_embedding": true, "max_position_embeddings": 12,
                "pad_token_id": 9, "eos_token_id": 0, "decoder_start_token_id": 9}"#,
        )
        .unwrap()
    }

    fn tiny_model() -> MarianModel {
        tiny_model_in(DType::F32)
    }

    fn tiny_model_in(dtype: DType) -> MarianModel {
        let cfg = tiny_config();
        let dev = Device::Cpu;
        let mut ws: HashMap<String, Tensor> = HashMap::new();
        let mut lcg = crate::testing::Lcg::new(1);
        let mut rand = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            Tensor::from_vec(lcg.values(n), shape, &dev).unwrap()
        };
        ws.insert("model.shared.weight".into(), rand(&[10, 8]));
        ws.insert("final_logits_bias".into(), rand(&[1, 10]));
        let attn = |p: &str,
                    ws: &mut HashMap<String, Tensor>,
                    rand: &mut dyn FnMut(&[usize]) -> Tensor| {
            for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                ws.insert(format!("{p}.{n}.weight"), rand(&[8, 8]));
                ws.insert(format!("{p}.{n}.bias"), rand(&[8]));
            }
        };
        let common = |p: &str,
                      ws: &mut HashMap<String, Tensor>,
                      rand: &mut dyn FnMut(&[usize]) -> Tensor,
                      norms: &[&str]| {
            ws.insert(format!("{p}.fc1.weight"), rand(&[16, 8]));
            ws.insert(format!("{p}.fc1.bias"), rand(&[16]));
            ws.insert(format!("{p}.fc2.weight"), rand(&[8, 16]));
            ws.insert(format!("{p}.fc2.bias"), rand(&[8]));
            for n in norms {
                ws.insert(format!("{p}.{n}.weight"), (rand(&[8]) + 1.0).unwrap());
                ws.insert(format!("{p}.{n}.bias"), rand(&[8]));
            }
        };
        attn("model.encoder.layers.0.self_attn", &mut ws, &mut rand);
        common(
            "model.encoder.layers.0",
            &mut ws,
            &mut rand,
            &["self_attn_layer_norm", "final_layer_norm"],
        );
        attn("model.decoder.layers.0.self_attn", &mut ws, &mut rand);
        attn("model.decoder.layers.0.encoder_attn", &mut ws, &mut rand);
        common(
            "model.decoder.layers.0",
            &mut ws,
            &mut rand,
            &[
                "self_attn_layer_norm",
                "encoder_attn_layer_norm",
                "final_layer_norm",
            ],
        );
        let vb = VarBuilder::from_tensors(ws, dtype, &dev);
        MarianModel::new(&cfg, vb).unwrap()
    }

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

    #[test]
    fn fast_silu_matches_candle() {
        let xs: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.02).collect();
        let t = Tensor::from_vec(xs, 4001, &Device::Cpu).unwrap();
        let fast = Activation::Silu.apply(&t).unwrap();
        let reference = t.silu().unwrap();
        assert!(max_abs_diff(&fast, &reference).unwrap() < 1e-6);
        let big = Tensor::new(&[-1e4f32, 1e4, f32::NEG_INFINITY], &Device::Cpu).unwrap();
        let v: Vec<f32> = Activation::Silu.apply(&big).unwrap().to_vec1().unwrap();
        assert_eq!(v[1], 1e4);
        assert!(v[0].abs() < 1e-30);
    }

    #[test]
    fn config_rejects_what_the_engine_cannot_run() {
        let mut cfg = tiny_config();
        assert!(cfg.validate().is_ok());
        cfg.activation_function = "tanh".into();
        assert!(cfg.validate().is_err());
        let mut cfg = tiny_config();
        cfg.normalize_before = true;
        assert!(cfg.validate().is_err());
        let mut cfg = tiny_config();
        cfg.decoder_attention_heads = 3;
        assert!(cfg.validate().is_err());
        let mut cfg = tiny_config();
        cfg.eos_token_id = 10;
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn reorder_rows_in_place_moves_only_filled_positions() {
        // 3 rows × 2 heads × capacity 3 × hd 2; value = 100·row + 10·head + position.
        let data: Vec<f32> = (0..3 * 2 * 3 * 2)
            .map(|i| {
                let (row, head, pos) = (i / 12, (i / 6) % 2, (i / 2) % 3);
                (100 * row + 10 * head + pos) as f32
            })
            .collect();
        let t = Tensor::from_vec(data, (3, 2, 3, 2), &Device::Cpu).unwrap();
        t.inplace_op1(&ReorderRows {
            rows: &[2, 2, 0],
            filled: 2,
        })
        .unwrap();
        let got: Vec<Vec<Vec<Vec<f32>>>> = (0..3)
            .map(|r| t.get(r).unwrap().to_vec3::<f32>().unwrap())
            .collect();
        for (row, from) in [(0usize, 2usize), (1, 2), (2, 0)] {
            for (head, positions) in got[row].iter().enumerate() {
                for (pos, values) in positions.iter().enumerate() {
                    // Unfilled positions keep what they had.
                    let src = if pos < 2 { from } else { row };
                    let want = (100 * src + 10 * head + pos) as f32;
                    assert_eq!(values, &vec![want; 2], "{row} {head} {pos}");
                }
            }
        }
    }

    #[test]
    fn group_sources_finds_uniform_runs() {
        assert_eq!(group_sources(&[0, 0, 2, 2]), vec![0, 2]);
        assert_eq!(group_sources(&[1, 0]), vec![1, 0]);
        assert_eq!(group_sources(&[0, 0, 1]), vec![0, 0, 1]);
        assert_eq!(group_sources(&[0, 1, 0, 1]), vec![0, 1, 0, 1]);
    }

    /// Incremental decoding with caches, beams and dropped rows must give the logits of a
    /// teacher-forced pass over the same prefixes.
    #[test]
    fn cached_steps_match_teacher_forcing() {
        let model = tiny_model();
        let dev = Device::Cpu;
        let src = Tensor::new(&[[3u32, 4, 5, 0], [6, 0, 9, 9]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 0, 0]], &dev).unwrap();
        let mut st = model.start(&src, &mask).unwrap();
        // Step 1: both sources from the start token.
        let l1 = st.step(&[9, 9]).unwrap();
        // Expand to two beams each, then keep only source 1's beams with tokens 2 and 5.
        st.reorder(&[0, 0, 1, 1]).unwrap();
        let l2 = st.step(&[1, 2, 3, 4]).unwrap();
        st.reorder(&[2, 3]).unwrap();
        let l3 = st.step(&[7, 8]).unwrap();
        let full = |s: usize, tgt: &[u32]| {
            let n = tgt.len();
            let ids = Tensor::from_vec(tgt.to_vec(), (1, n), &dev).unwrap();
            let logits = model
                .forward(
                    &src.get(s).unwrap().unsqueeze(0).unwrap(),
                    &mask.get(s).unwrap().unsqueeze(0).unwrap(),
                    &ids,
                )
                .unwrap();
            logits.get(0).unwrap().get(n - 1).unwrap()
        };
        let close = |a: &Tensor, b: &Tensor| assert!(max_abs_diff(a, b).unwrap() < 1e-5);
        close(&l1.get(0).unwrap(), &full(0, &[9]));
        close(&l1.get(1).unwrap(), &full(1, &[9]));
        close(&l2.get(1).unwrap(), &full(0, &[9, 2]));
        close(&l2.get(3).unwrap(), &full(1, &[9, 4]));
        close(&l3.get(0).unwrap(), &full(1, &[9, 3, 7]));
        close(&l3.get(1).unwrap(), &full(1, &[9, 4, 8]));
    }

    /// Half precision runs through the same code (CPU matmul has f16 but not bf16).
    #[test]
    fn f16_matches_f32_loosely() {
        let dev = Device::Cpu;
        let src = Tensor::new(&[[3u32, 4, 5, 0], [6, 0, 9, 9]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 0, 0]], &dev).unwrap();
        let tgt = Tensor::new(&[[9u32, 1, 2], [9, 3, 4]], &dev).unwrap();
        let full = tiny_model().forward(&src, &mask, &tgt).unwrap();
        let half_model = tiny_model_in(DType::F16);
        let half = half_model.forward(&src, &mask, &tgt).unwrap();
        assert_eq!(half.dtype(), DType::F16);
        let diff = max_abs_diff(&full, &half).unwrap();
        assert!(diff < 0.05, "f16 differs by {diff}");
        let opts = DecodeOptions {
            beam_size: 2,
            max_new_tokens: 4,
            ..DecodeOptions::default()
        };
        assert_eq!(
            half_model
                .translate_ids(&[vec![3, 4, 0]], &opts)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn translate_ids_decodes_every_source() {
        let model = tiny_model();
        for beam_size in [1, 3] {
            let opts = DecodeOptions {
                beam_size,
                max_new_tokens: 6,
                ..DecodeOptions::default()
            };
            let out = model
                .translate_ids(
                    &[vec![3, 4, 5, 0], vec![6, 0], vec![1, 2, 3, 4, 5, 0]],
                    &opts,
                )
                .unwrap();
            assert_eq!(out.len(), 3);
            for h in &out {
                assert!(h.tokens.len() <= 6);
                assert!(!h.tokens.contains(&9), "padding is never generated");
            }
            // Batching must not change a sentence's translation.
            let alone = model.translate_ids(&[vec![6, 0]], &opts).unwrap();
            assert_eq!(alone[0].tokens, out[1].tokens);
        }
        assert!(model
            .translate_ids(&[], &DecodeOptions::default())
            .unwrap()
            .is_empty());
        let too_long = vec![1u32; 13];
        assert!(model
            .translate_ids(&[too_long], &DecodeOptions::default())
            .is_err());
    }
}
