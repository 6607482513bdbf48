//! The hyper-parameters of a GGUF language model, read from its metadata: the family
//! and the switches by which the four families differ.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;

use crate::engine::layers::Activation;
use crate::{Error, Result};

/// The model families svodka runs, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Google Gemma 3 (text).
    Gemma3,
    /// Qwen2 and Qwen2.5.
    Qwen2,
    /// Qwen3 (dense).
    Qwen3,
    /// Llama 2/3 and relatives.
    Llama,
}

impl Family {
    fn from_arch(arch: &str) -> Option<Family> {
        match arch {
            "gemma3" => Some(Family::Gemma3),
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            "llama" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Model family.
    pub family: Family,
    /// The GGUF architecture string (metadata key prefix).
    pub arch: String,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Size of one attention head.
    pub head_dim: usize,
    /// RMS norm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency of global layers.
    pub rope_base: f32,
    /// RoPE base frequency of sliding-window layers.
    pub rope_base_swa: f32,
    /// RoPE position scale of global layers (1 / linear scaling factor).
    pub rope_scale: f32,
    /// Sliding window size and the period of global layers (Gemma 3: every 6th).
    pub sliding_window: Option<(usize, usize)>,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    pub(super) activation: Activation,
    pub(super) attn_scale: f64,
    pub(super) scale_queries: bool,
    pub(super) embed_scale: Option<f64>,
    pub(super) rope_interleaved: bool,
}

fn md<'a>(
    meta: &'a HashMap<String, gguf_file::Value>,
    arch: &str,
    key: &str,
) -> Option<&'a gguf_file::Value> {
    meta.get(&format!("{arch}.{key}"))
}

fn md_usize(meta: &HashMap<String, gguf_file::Value>, arch: &str, key: &str) -> Result<usize> {
    let v = md(meta, arch, key)
        .ok_or_else(|| Error::Model(format!("GGUF metadata lacks {arch}.{key}")))?;
    Ok(v.to_u32().map_err(Error::from)? as usize)
}

fn md_f32(meta: &HashMap<String, gguf_file::Value>, arch: &str, key: &str) -> Option<f32> {
    md(meta, arch, key).and_then(|v| v.to_f32().ok())
}

impl LlmConfig {
    /// Reads and checks the hyper-parameters of a GGUF model.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<LlmConfig> {
        let meta = &content.metadata;
        let arch = meta
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| Error::Model("GGUF metadata lacks general.architecture".into()))?;
        let family = Family::from_arch(&arch).ok_or_else(|| {
            Error::Unsupported(format!(
                "GGUF architecture {arch:?} is not supported (supported: gemma3, qwen2, qwen3, llama)"
            ))
        })?;
        let n_layer = md_usize(meta, &arch, "block_count")?;
        let n_embd = md_usize(meta, &arch, "embedding_length")?;
        let n_head = md_usize(meta, &arch, "attention.head_count")?;
        let n_kv_head = md_usize(meta, &arch, "attention.head_count_kv").unwrap_or(n_head);
        let head_dim = md_usize(meta, &arch, "attention.key_length").unwrap_or(n_embd / n_head);
        let rot = md_usize(meta, &arch, "rope.dimension_count").unwrap_or(head_dim);
        if rot != head_dim || n_head % n_kv_head != 0 {
            return Err(Error::Unsupported(format!(
                "GGUF model with partial rotary embeddings ({rot} of {head_dim}) or {n_head} heads over {n_kv_head} kv heads is not supported"
            )));
        }
        let rms_eps =
            md_f32(meta, &arch, "attention.layer_norm_rms_epsilon").unwrap_or(1e-6) as f64;
        let rope_base = md_f32(meta, &arch, "rope.freq_base").unwrap_or(10_000.0);
        let linear_scaling = md(meta, &arch, "rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            .is_some_and(|t| t == "linear");
        let rope_scale = match md_f32(meta, &arch, "rope.scaling.factor") {
            Some(f) if linear_scaling && f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let context_length = md_usize(meta, &arch, "context_length").unwrap_or(4096);
        let vocab_size = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| Error::Model("GGUF file has no token_embd.weight".into()))?;
        let gemma = family == Family::Gemma3;
        let sliding_window = if gemma {
            let window = md_usize(meta, &arch, "attention.sliding_window")?;
            let period = md_usize(meta, &arch, "attention.sliding_window_pattern").unwrap_or(6);
            Some((window, period))
        } else {
            None
        };
        // llama.cpp: Gemma 3 27B scales queries by 1/sqrt(n_embd / n_head), the others by
        // 1/sqrt(head_dim); it recognises the 27B by its 62 layers.
        let attn_scale = if gemma && n_layer == 62 {
            1.0 / ((n_embd / n_head) as f64).sqrt()
        } else {
            1.0 / (head_dim as f64).sqrt()
        };
        Ok(LlmConfig {
            family,
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            rms_eps,
            rope_base,
            rope_base_swa: if gemma {
                // llama.cpp's key for the windowed layers' base; 10,000 when absent.
                md_f32(meta, &arch, "rope.freq_base_swa").unwrap_or(10_000.0)
            } else {
                rope_base
            },
            rope_scale,
            sliding_window,
            context_length,
            vocab_size,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            attn_scale,
            scale_queries: gemma,
            embed_scale: gemma.then(|| (n_embd as f64).sqrt()),
            rope_interleaved: family == Family::Llama,
            arch,
        })
    }

    /// Whether layer `il` attends only within the sliding window.
    pub(super) fn window_of(&self, il: usize) -> Option<usize> {
        self.sliding_window
            .and_then(|(w, period)| ((il + 1) % period != 0).then_some(w))
    }
}
