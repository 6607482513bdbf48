//! Marian engine throughput on an opus-mt-en-ru-shaped model with random weights.
//!
//! Same workload as the anchors in BENCHMARKS.md (CTranslate2, transformers): 64
//! sentences of 30 random source ids + `</s>`, batches of 16, exactly 40 target tokens
//! each; reports target tokens per second (median of the repetitions) for greedy and
//! beam 4, and batch-1 greedy latency per token.
//!
//! Run: `cargo bench --bench marian` (needs `[[bench]] name = "marian" harness = false`);
//! `MARIAN_BENCH_REPS` sets the repetitions (default 3).
#![cfg_attr(test, allow(dead_code))]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::time::Instant;
use svodka::decode::DecodeOptions;
use svodka::engine::marian::{MarianConfig, MarianModel};

const CONFIG: &str = r#"{
  "vocab_size": 62518, "d_model": 512, "encoder_layers": 6, "decoder_layers": 6,
  "encoder_attention_heads": 8, "decoder_attention_heads": 8,
  "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "activation_function": "swish",
  "scale_embedding": true, "max_position_embeddings": 512,
  "pad_token_id": 62517, "eos_token_id": 0, "decoder_start_token_id": 62517
}"#;

fn random_weights(
    cfg: &MarianConfig,
    dev: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let d = cfg.d_model;
    let mut w = HashMap::new();
    let mut put = |name: String, shape: &[usize]| -> candle_core::Result<()> {
        let t = if name.contains("layer_norm.weight") {
            Tensor::ones(shape, DType::F32, dev)?
        } else {
            Tensor::randn(0f32, 0.05, shape, dev)?
        };
        w.insert(name, t);
        Ok(())
    };
    put("model.shared.weight".into(), &[cfg.vocab_size, d])?;
    put("final_logits_bias".into(), &[1, cfg.vocab_size])?;
    let attn = |put: &mut dyn FnMut(String, &[usize]) -> candle_core::Result<()>, p: &str| {
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            put(format!("{p}.{n}.weight"), &[d, d])?;
            put(format!("{p}.{n}.bias"), &[d])?;
        }
        Ok::<(), candle_core::Error>(())
    };
    let rest = |put: &mut dyn FnMut(String, &[usize]) -> candle_core::Result<()>,
                p: &str,
                ffn: usize,
                norms: &[&str]| {
        put(format!("{p}.fc1.weight"), &[ffn, d])?;
        put(format!("{p}.fc1.bias"), &[ffn])?;
        put(format!("{p}.fc2.weight"), &[d, ffn])?;
        put(format!("{p}.fc2.bias"), &[d])?;
        for n in norms {
            put(format!("{p}.{n}.weight"), &[d])?;
            put(format!("{p}.{n}.bias"), &[d])?;
        }
        Ok::<(), candle_core::Error>(())
    };
    for i in 0..cfg.encoder_layers {
        let p = format!("model.encoder.layers.{i}");
        attn(&mut put, &format!("{p}.self_attn"))?;
        rest(
            &mut put,
            &p,
            cfg.encoder_ffn_dim,
            &["self_attn_layer_norm", "final_layer_norm"],
        )?;
    }
    for i in 0..cfg.decoder_layers {
        let p = format!("model.decoder.layers.{i}");
        attn(&mut put, &format!("{p}.self_attn"))?;
        attn(&mut put, &format!("{p}.encoder_attn"))?;
        rest(
            &mut put,
            &p,
            cfg.decoder_ffn_dim,
            &[
                "self_attn_layer_norm",
                "encoder_attn_layer_norm",
                "final_layer_norm",
            ],
        )?;
    }
    Ok(w)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::var("MARIAN_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dev = Device::Cpu;
    let cfg: MarianConfig = serde_json::from_str(CONFIG)?;
    let vb = VarBuilder::from_tensors(random_weights(&cfg, &dev)?, DType::F32, &dev);
    let model = MarianModel::new(&cfg, vb)?;

    // 64 sentences of 30 ids in [1, 62000) + </s>, from a fixed LCG.
    let mut seed = 42u64;
    let sentences: Vec<Vec<u32>> = (0..64)
        .map(|_| {
            let mut s: Vec<u32> = (0..30)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    1 + ((seed >> 33) % 61999) as u32
                })
                .collect();
            s.push(0);
            s
        })
        .collect();
    let fixed = |beam_size| DecodeOptions {
        beam_size,
        min_length: 40,
        max_new_tokens: 40,
        ..DecodeOptions::default()
    };
    for (label, beam) in [("greedy", 1usize), ("beam 4", 4)] {
        let opts = fixed(beam);
        let mut rates = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            let mut tokens = 0usize;
            for batch in sentences.chunks(16) {
                let out = model.translate_ids(batch, &opts)?;
                tokens += out
                    .iter()
                    .map(|h| h.tokens.len() + usize::from(h.ended))
                    .sum::<usize>();
            }
            rates.push(tokens as f64 / t0.elapsed().as_secs_f64());
        }
        println!(
            "{label}: {:.0} target tokens/s (median of {reps}, batch 16)",
            median(rates)
        );
    }
    let opts = fixed(1);
    let mut per_token = Vec::new();
    for s in sentences.iter().take(reps.max(3)) {
        let t0 = Instant::now();
        let out = model.translate_ids(std::slice::from_ref(s), &opts)?;
        per_token.push(t0.elapsed().as_secs_f64() * 1000.0 / out[0].tokens.len().max(1) as f64);
    }
    println!(
        "batch-1 greedy latency: {:.1} ms/token (median)",
        median(per_token)
    );
    Ok(())
}
