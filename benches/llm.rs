//! Prompt and generation throughput of the GGUF LLM engine.
//!
//! `cargo bench --bench llm -- MODEL.gguf [PROMPT_FILE] [GEN_TOKENS] [REPEATS]` prints one
//! JSON line per repetition: prompt tokens/s and generated tokens/s (greedy, EOS
//! ignored so every run generates exactly GEN_TOKENS) and the generated token ids; load
//! time (model and tokenizer) once. `scripts/bench-llm.sh` runs it
//! beside llama.cpp on the same GGUF, prompt and token counts.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use svodka::engine::llm::{model::argmax, LlmEngine, LlmLoadOptions};

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(model) = args.first() else {
        eprintln!(
            "usage: cargo bench --bench llm -- MODEL.gguf [PROMPT_FILE] [GEN_TOKENS] [REPEATS]"
        );
        return Ok(());
    };
    let prompt = match args.get(1) {
        Some(p) => std::fs::read_to_string(p)?,
        None => "The quick brown fox jumps over the lazy dog. ".repeat(60),
    };
    let gen: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let start = Instant::now();
    let mut engine = LlmEngine::load(
        &PathBuf::from(model),
        &Device::Cpu,
        &LlmLoadOptions {
            context: 4096,
            style: None,
        },
    )?;
    let load_s = start.elapsed().as_secs_f64();
    let ids = engine.encode_prompt(&prompt)?;
    for r in 0..repeats {
        let t = Instant::now();
        let model = engine.model_mut();
        model.reset();
        let t0 = Instant::now();
        let mut logits = model.forward(&ids, false)?;
        let prompt_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut tokens = Vec::with_capacity(gen);
        for _ in 0..gen {
            let next = argmax(&logits)?;
            tokens.push(next.to_string());
            logits = model.forward(&[next], false)?;
        }
        let gen_s = t1.elapsed().as_secs_f64();
        println!(
            "{{\"engine\":\"svodka\",\"repeat\":{r},\"prompt_tokens\":{},\"prompt_tok_s\":{:.1},\"gen_tokens\":{gen},\"gen_tok_s\":{:.1},\"load_s\":{load_s:.2},\"wall_s\":{:.2},\"tokens\":[{}]}}",
            ids.len(),
            ids.len() as f64 / prompt_s,
            gen as f64 / gen_s,
            t.elapsed().as_secs_f64(),
            tokens.join(",")
        );
    }
    Ok(())
}
