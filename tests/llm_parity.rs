//! Parity of the GGUF LLM engine with llama.cpp on the real Gemma 3 270M weights:
//! per-position logits and greedy continuations recorded by
//! `scripts/make_gguf_fixtures.py` (tests/fixtures/gguf/README.md).

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;
use svodka::engine::llm::{model::argmax, LlmModel};

fn model_path() -> Option<PathBuf> {
    common::gemma_gguf()
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[derive(Deserialize)]
struct Logits {
    prompts: Vec<LogitsPrompt>,
}

#[derive(Deserialize)]
struct LogitsPrompt {
    name: String,
    ids: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    top1: u32,
    top: Vec<(u32, f32)>,
}

#[derive(Deserialize)]
struct Greedy {
    prompts: Vec<GreedyPrompt>,
}

#[derive(Deserialize)]
struct GreedyPrompt {
    name: String,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
}

/// Largest difference allowed between our logits and llama.cpp's. On the CPU the
/// engine repeats llama.cpp's arithmetic (src/engine/llm/ggml.rs), so on the machine
/// that recorded the fixtures the logits agree to the fixtures' 4-decimal rounding
/// (max |Δ| 0.00005); the bound leaves room for a C library whose `tanhf`/`expf`
/// rounds a last bit differently.
const MAX_DIFF: f32 = 0.05;

#[test]
fn logits_match_llama_cpp_at_every_position() {
    let Some(path) = model_path() else { return };
    let mut model = LlmModel::load(&path, &Device::Cpu, 512).unwrap();
    let fx: Logits = fixture("logits.json");
    let (mut positions, mut worst) = (0, 0f32);
    for p in &fx.prompts {
        model.reset();
        let logits = model.forward(&p.ids, true).unwrap();
        let rows = logits.to_vec2::<f32>().unwrap();
        assert_eq!(rows.len(), p.positions.len());
        let mut max_diff = 0f32;
        for (i, (row, pos)) in rows.iter().zip(&p.positions).enumerate() {
            let ours = argmax_row(row);
            assert_eq!(
                ours,
                pos.top1,
                "{}: top-1 differs at position {i} (llama.cpp leads by {:.4})",
                p.name,
                pos.top[0].1 - pos.top[1].1
            );
            for &(id, logit) in &pos.top {
                max_diff = max_diff.max((row[id as usize] - logit).abs());
            }
            positions += 1;
        }
        println!(
            "{}: {} positions, top-1 identical, max |Δ logit| over llama.cpp's top-20 = {max_diff:.6}",
            p.name,
            rows.len()
        );
        worst = worst.max(max_diff);
    }
    println!("top-1 identical at {positions}/{positions} positions; max |Δ logit| {worst:.6}");
    assert!(worst <= MAX_DIFF, "max |Δ logit| {worst} > {MAX_DIFF}");
}

fn argmax_row(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold(
            (0usize, f32::MIN),
            |b, (j, &v)| if v > b.1 { (j, v) } else { b },
        )
        .0 as u32
}

/// Greedy continuations of 48 tokens, free-running (each step feeds our own choice),
/// must be llama.cpp's token for token.
#[test]
fn greedy_continuations_match_llama_cpp() {
    let Some(path) = model_path() else { return };
    let mut model = LlmModel::load(&path, &Device::Cpu, 512).unwrap();
    let fx: Greedy = fixture("greedy.json");
    for p in &fx.prompts {
        model.reset();
        let mut logits = model.forward(&p.prompt_ids, false).unwrap();
        let mut ours = Vec::with_capacity(p.ids.len());
        for _ in 0..p.ids.len() {
            let next = argmax(&logits).unwrap();
            ours.push(next);
            logits = model.forward(&[next], false).unwrap();
        }
        assert_eq!(ours, p.ids, "{}: greedy continuation differs", p.name);
        println!(
            "{}: {} greedy tokens identical to llama.cpp's",
            p.name,
            ours.len()
        );
    }
}
