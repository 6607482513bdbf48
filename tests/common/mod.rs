//! Helpers shared by the integration test binaries (each uses some of them).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use tempfile::TempDir;

/// A file or folder under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The real Gemma 3 270M GGUF (`$SVODKA_GEMMA_GGUF`, else where scripts/fetch-gemma.sh
/// puts it), or `None` with the reason printed so the calling test can skip.
pub fn gemma_gguf() -> Option<PathBuf> {
    let p = std::env::var_os("SVODKA_GEMMA_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf")
        });
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipping: Gemma GGUF not found at {}; run scripts/fetch-gemma.sh",
            p.display()
        );
        None
    }
}

/// Deterministic pseudo-random values in (-0.5, 0.5).
pub fn noise(rows: usize, cols: usize, salt: f32) -> Tensor {
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| (((i as f32 + salt) * 12.9898).sin() * 43758.547).fract() * 0.5)
        .collect();
    Tensor::from_vec(data, (rows, cols), &Device::Cpu).unwrap()
}

/// A Marian model directory: fixture `kind` ("base" or "tcbig") layers, embeddings as
/// wide as the SentencePiece fixture's vocabulary, its tokenizer files, and the
/// tokenizer's special ids in `config.json`.
pub fn tiny_marian_dir(kind: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    let spm = fixture("spm/marian");
    for f in ["source.spm", "target.spm", "vocab.json"] {
        std::fs::copy(spm.join(f), dir.path().join(f)).unwrap();
    }
    let vocab: HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(spm.join("vocab.json")).unwrap()).unwrap();
    let v = vocab.len();
    let src = fixture(&format!("marian/{kind}"));
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let d = cfg["d_model"].as_u64().unwrap() as usize;
    cfg["vocab_size"] = v.into();
    cfg["decoder_vocab_size"] = v.into();
    cfg["pad_token_id"] = vocab["<pad>"].into();
    cfg["decoder_start_token_id"] = vocab["<pad>"].into();
    cfg["eos_token_id"] = vocab["</s>"].into();
    cfg["max_position_embeddings"] = 128.into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let mut weights =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    for (i, name) in [
        "model.shared.weight",
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "lm_head.weight",
    ]
    .iter()
    .enumerate()
    {
        if weights.contains_key(*name) {
            weights.insert(name.to_string(), noise(v, d, i as f32 * 1e4));
        }
    }
    // Make the end of a sentence somewhat likely, so that outputs end on their own.
    let mut bias = vec![0f32; v];
    bias[vocab["</s>"] as usize] = 1.0;
    weights.insert(
        "final_logits_bias".into(),
        Tensor::from_vec(bias, (1, v), &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&weights, dir.path().join("model.safetensors")).unwrap();
    dir
}
pub mod gguf;
