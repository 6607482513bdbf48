//! Checks of model files and configurations against each other and against the file's
//! length, run at load before anything is allocated from them, so a corrupt or crafted
//! model is one error naming the file instead of an abort, a panic or a machine out of
//! memory. The engines keep their own, semantic checks; these are about sizes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_transformers::models::t5::Config as T5Config;

use super::marian::MarianConfig;
use crate::{Error, Result};

/// Largest size of any one dimension in a config: vocabularies, hidden and feed-forward
/// sizes, positions (today's largest models stay below 2^18 in each).
const MAX_DIM: usize = 1 << 24;
/// Largest number of layers.
const MAX_LAYERS: usize = 1 << 12;
/// Largest table (in elements) an engine builds from a config alone, such as Marian's
/// sinusoidal positions: 1 GiB of f32.
const MAX_TABLE: usize = 1 << 28;

/// A config value that must lie in `1..=max`.
fn bounded(path: &Path, what: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(Error::bad_input(
            path,
            format!("{what} is {value}, outside 1..={max}"),
        ));
    }
    Ok(())
}

/// Sizes of a Marian `config.json` at `path`.
pub fn marian_config(path: &Path, cfg: &MarianConfig) -> Result<()> {
    for (what, value) in [
        ("vocab_size", cfg.vocab_size),
        ("decoder_vocab_size", cfg.decoder_vocab_size.unwrap_or(1)),
        ("d_model", cfg.d_model),
        ("encoder_ffn_dim", cfg.encoder_ffn_dim),
        ("decoder_ffn_dim", cfg.decoder_ffn_dim),
        ("max_position_embeddings", cfg.max_position_embeddings),
    ] {
        bounded(path, what, value, MAX_DIM)?;
    }
    for (what, value) in [
        ("encoder_layers", cfg.encoder_layers),
        ("decoder_layers", cfg.decoder_layers),
    ] {
        bounded(path, what, value, MAX_LAYERS)?;
    }
    for (what, value) in [
        ("encoder_attention_heads", cfg.encoder_attention_heads),
        ("decoder_attention_heads", cfg.decoder_attention_heads),
    ] {
        bounded(path, what, value, cfg.d_model)?;
    }
    if cfg.max_position_embeddings * cfg.d_model > MAX_TABLE {
        return Err(Error::bad_input(
            path,
            format!(
                "max_position_embeddings {} × d_model {} is a larger position table than {MAX_TABLE} values",
                cfg.max_position_embeddings, cfg.d_model
            ),
        ));
    }
    Ok(())
}

/// Sizes of a T5 `config.json` at `path`.
pub fn t5_config(path: &Path, cfg: &T5Config) -> Result<()> {
    for (what, value) in [
        ("vocab_size", cfg.vocab_size),
        ("d_model", cfg.d_model),
        ("d_kv", cfg.d_kv),
        ("d_ff", cfg.d_ff),
        ("num_heads", cfg.num_heads),
        (
            "relative_attention_num_buckets",
            cfg.relative_attention_num_buckets,
        ),
        (
            "relative_attention_max_distance",
            cfg.relative_attention_max_distance,
        ),
    ] {
        bounded(path, what, value, MAX_DIM)?;
    }
    bounded(path, "num_layers", cfg.num_layers, MAX_LAYERS)?;
    if let Some(n) = cfg.num_decoder_layers {
        bounded(path, "num_decoder_layers", n, MAX_LAYERS)?;
    }
    for (what, id) in [
        ("pad_token_id", Some(cfg.pad_token_id)),
        ("eos_token_id", Some(cfg.eos_token_id)),
        ("decoder_start_token_id", cfg.decoder_start_token_id),
    ] {
        if let Some(id) = id.filter(|&id| id >= cfg.vocab_size) {
            return Err(Error::bad_input(
                path,
                format!(
                    "{what} {id} is outside the vocabulary of {}",
                    cfg.vocab_size
                ),
            ));
        }
    }
    Ok(())
}

/// Every tensor of a GGUF file lies inside the file, and the hyper-parameters of a
/// decoder-only LLM agree with the shapes of its tensors.
pub fn gguf(path: &Path, content: &Content, file_len: u64) -> Result<()> {
    let bad = |reason: String| Error::bad_input(path, reason);
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        let elems = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| bad(format!("tensor {name}: dimensions {dims:?} overflow")))?;
        let block = info.ggml_dtype.block_size() as u64;
        if elems % block != 0 {
            return Err(bad(format!(
                "tensor {name}: {elems} values are not whole blocks of {block}"
            )));
        }
        let end = (elems / block)
            .checked_mul(info.ggml_dtype.type_size() as u64)
            .and_then(|bytes| bytes.checked_add(info.offset))
            .and_then(|end| end.checked_add(content.tensor_data_offset));
        if end.is_none_or(|end| end > file_len) {
            return Err(bad(format!(
                "tensor {name} ({dims:?}) runs past the end of the file ({file_len} bytes)"
            )));
        }
    }
    llm_shapes(content).map_err(bad)
}

/// The shapes an LLM's tensors must have, given its metadata.
fn llm_shapes(content: &Content) -> std::result::Result<(), String> {
    let meta = &content.metadata;
    let Some(arch) = meta
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
    else {
        // Not a model file the LLM engine reads; its own loader says so.
        return Ok(());
    };
    let Some(n_layer) = optional(meta, arch, "block_count")? else {
        // Not a decoder-only LLM; its loader says what it lacks.
        return Ok(());
    };
    if n_layer == 0 {
        return Err(format!("{arch}.block_count is 0"));
    }
    let n_embd = positive(meta, arch, "embedding_length")?;
    let n_head = positive(meta, arch, "attention.head_count")?;
    let n_kv = match optional(meta, arch, "attention.head_count_kv")? {
        Some(0) => return Err(format!("{arch}.attention.head_count_kv is 0")),
        Some(n) => n,
        None => n_head,
    };
    if n_head % n_kv != 0 {
        return Err(format!(
            "{n_head} attention heads cannot be grouped over {n_kv} key/value heads"
        ));
    }
    let head_dim = match optional(meta, arch, "attention.key_length")? {
        Some(0) => return Err(format!("{arch}.attention.key_length is 0")),
        Some(n) => n,
        None if n_embd >= n_head => n_embd / n_head,
        None => return Err(format!("{n_head} heads for an embedding of {n_embd}")),
    };
    if optional(meta, arch, "attention.sliding_window_pattern")? == Some(0) {
        return Err(format!("{arch}.attention.sliding_window_pattern is 0"));
    }
    let shapes = Shapes(content);
    let vocab = match shapes.dims("token_embd.weight") {
        Some([vocab, e]) if *vocab > 0 && *e == n_embd => *vocab,
        Some(dims) => {
            return Err(format!(
                "token_embd.weight has shape {dims:?}, expected [vocabulary, {n_embd}]"
            ))
        }
        None => return Err("no token_embd.weight".into()),
    };
    let q = n_head.checked_mul(head_dim).ok_or("head sizes overflow")?;
    let kv = n_kv.checked_mul(head_dim).ok_or("head sizes overflow")?;
    shapes.opt("output.weight", &[vocab, n_embd])?;
    shapes.opt("output_norm.weight", &[n_embd])?;
    if let Some(dims) = shapes.dims("rope_freqs.weight") {
        if dims.iter().product::<usize>() < head_dim / 2 {
            return Err(format!(
                "rope_freqs.weight has {dims:?} values, fewer than half the head size {head_dim}"
            ));
        }
    }
    // Every block is checked before any is built: a block_count beyond the blocks in
    // the file fails at the first one missing. Tensors a family may lack (fused or
    // absent projections) are checked where present; the loader names what is missing.
    for il in 0..n_layer {
        let t = |name: &str| format!("blk.{il}.{name}");
        shapes
            .need(&t("attn_norm.weight"), &[n_embd])
            .map_err(|e| format!("{e} (block_count is {n_layer})"))?;
        let ff = match shapes.dims(&t("ffn_up.weight")) {
            Some([ff, e]) if *e == n_embd && *ff > 0 => Some(*ff),
            Some(dims) => {
                return Err(format!(
                    "{} has shape {dims:?}, expected [feed-forward size, {n_embd}]",
                    t("ffn_up.weight")
                ))
            }
            None => None,
        };
        for (name, dims) in [
            ("attn_q.weight", vec![q, n_embd]),
            ("attn_k.weight", vec![kv, n_embd]),
            ("attn_v.weight", vec![kv, n_embd]),
            ("attn_output.weight", vec![n_embd, q]),
            ("attn_q.bias", vec![q]),
            ("attn_k.bias", vec![kv]),
            ("attn_v.bias", vec![kv]),
            ("attn_q_norm.weight", vec![head_dim]),
            ("attn_k_norm.weight", vec![head_dim]),
            ("post_attention_norm.weight", vec![n_embd]),
            ("ffn_norm.weight", vec![n_embd]),
            ("post_ffw_norm.weight", vec![n_embd]),
        ] {
            shapes.opt(&t(name), &dims)?;
        }
        if let Some(ff) = ff {
            shapes.opt(&t("ffn_gate.weight"), &[ff, n_embd])?;
            shapes.opt(&t("ffn_down.weight"), &[n_embd, ff])?;
        }
    }
    Ok(())
}

/// Tensor shapes of a GGUF file, in candle's order (rows first).
struct Shapes<'a>(&'a Content);

impl Shapes<'_> {
    fn dims(&self, name: &str) -> Option<&[usize]> {
        self.0.tensor_infos.get(name).map(|t| t.shape.dims())
    }

    fn opt(&self, name: &str, want: &[usize]) -> std::result::Result<(), String> {
        match self.dims(name) {
            Some(dims) if dims != want => {
                Err(format!("{name} has shape {dims:?}, expected {want:?}"))
            }
            _ => Ok(()),
        }
    }

    fn need(&self, name: &str, want: &[usize]) -> std::result::Result<(), String> {
        match self.dims(name) {
            None => Err(format!("{name} is missing")),
            Some(_) => self.opt(name, want),
        }
    }
}

fn optional(
    meta: &HashMap<String, Value>,
    arch: &str,
    key: &str,
) -> std::result::Result<Option<usize>, String> {
    let Some(v) = meta.get(&format!("{arch}.{key}")) else {
        return Ok(None);
    };
    let n = v
        .to_u32()
        .map(u64::from)
        .or_else(|_| v.to_u64())
        .map_err(|_| format!("{arch}.{key} is not an unsigned integer"))?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_DIM)
        .ok_or_else(|| format!("{arch}.{key} is {n}, larger than {MAX_DIM}"))?;
    Ok(Some(n))
}

fn positive(
    meta: &HashMap<String, Value>,
    arch: &str,
    key: &str,
) -> std::result::Result<usize, String> {
    match optional(meta, arch, key)? {
        None => Err(format!("metadata lacks {arch}.{key}")),
        Some(0) => Err(format!("{arch}.{key} is 0")),
        Some(n) => Ok(n),
    }
}

/// `err` with `path` in front, unless it names the file already.
pub fn in_file(path: &Path, err: Error) -> Error {
    let shown = path.display().to_string();
    let text = err.to_string();
    if text.contains(&shown) {
        err
    } else {
        Error::Model(format!("{shown}: {text}"))
    }
}

/// The length of an open file, for [`gguf`].
pub fn file_len(path: &Path, file: &std::fs::File) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io(path, e))
}

/// The first weights file of a model, to name in its loading errors.
pub fn weights_of(files: &crate::hub::ModelFiles) -> Option<std::path::PathBuf> {
    match crate::hub::weights_format(files).ok()? {
        crate::hub::WeightsFormat::Safetensors(p) | crate::hub::WeightsFormat::Pth(p) => {
            p.into_iter().next()
        }
        crate::hub::WeightsFormat::Gguf(p) => Some(p),
    }
}
