//! Marian (OPUS-MT) encoder-decoder on candle ops: batched, padded, cached.
//!
//! Matches transformers' `MarianMTModel` (post-norm layers, static sinusoidal positions,
//! `final_logits_bias`). Unlike candle-transformers' Marian it masks padding, computes
//! the cross-attention keys and values once per source batch, and decodes through
//! [`crate::decode`], whose beams and finished rows it follows by reordering its caches.
//!
//! [`layers`] holds the layers, [`decoding`] the decoding state; this file the config,
//! the model and loading.

mod decoding;
mod layers;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;

pub use decoding::MarianDecoding;
pub use layers::Quantization;

use self::decoding::{on_pool, CrossKv};
use self::layers::{
    additive_padding_mask, causal_mask, sinusoidal_positions, DecoderLayer, DenseProj,
    EncoderLayer, Table,
};
use crate::decode::{self, DecodeInput, DecodeOptions, Hypothesis};
use crate::engine::layers::Activation;
use crate::{Error, Result};

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
    lm_head: DenseProj,
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
        let lm_head = DenseProj::new(
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
                DenseProj::Packed(p) if cfg.tie_word_embeddings => Some(Table::Packed(p.clone())),
                DenseProj::Int8(q) if cfg.tie_word_embeddings => Some(Table::Int8(q.clone())),
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

/// Largest absolute difference between two tensors of the same shape (for tests and
/// parity reports).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let diff = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(diff.flatten_all()?.max(D::Minus1)?.to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::StepModel;
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
