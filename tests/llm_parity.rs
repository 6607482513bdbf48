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

/// llama.cpp's lead of its best token over the second below which a different top-1
/// counts as a near-tie. Our forward pass equals an independent f32 NumPy
/// implementation of the Gemma 3 graph on the dequantized weights, while llama.cpp's
/// logits differ from both by up to ~2.7 on values of 15-35 (8-bit activation
/// quantization inside its quantized matmuls, and its f16 KV cache): where its two
/// best tokens are closer than this, either engine may break the tie either way.
const TOLERANCE: f32 = 0.75;

#[test]
fn logits_match_llama_cpp_at_every_position() {
    let Some(path) = model_path() else { return };
    let mut model = LlmModel::load(&path, &Device::Cpu, 512).unwrap();
    let fx: Logits = fixture("logits.json");
    let (mut positions, mut same_top1, mut near_ties) = (0, 0, 0);
    let mut worst = 0f32;
    for p in &fx.prompts {
        model.reset();
        let logits = model.forward(&p.ids, true).unwrap();
        let rows = logits.to_vec2::<f32>().unwrap();
        assert_eq!(rows.len(), p.positions.len());
        let mut max_diff = 0f32;
        for (i, (row, pos)) in rows.iter().zip(&p.positions).enumerate() {
            let ours =
                row.iter().enumerate().fold(
                    (0usize, f32::MIN),
                    |b, (j, &v)| if v > b.1 { (j, v) } else { b },
                );
            let mut here = 0f32;
            for &(id, logit) in &pos.top {
                here = here.max((row[id as usize] - logit).abs());
            }
            max_diff = max_diff.max(here);
            let margin = pos.top[0].1 - pos.top[1].1;
            positions += 1;
            if ours.0 as u32 == pos.top1 {
                same_top1 += 1;
            } else if margin < TOLERANCE {
                near_ties += 1;
            } else {
                panic!(
                    "{}: top-1 differs at position {i} although llama.cpp leads by {margin:.3}",
                    p.name
                );
            }
        }
        println!(
            "{}: {} positions, max |Δ logit| over top-20 = {max_diff:.4}",
            p.name,
            rows.len()
        );
        worst = worst.max(max_diff);
    }
    println!(
        "top-1 identical at {same_top1}/{positions} positions; the {near_ties} others are near-ties (llama.cpp margin < {TOLERANCE}); max |Δ| {worst:.4}"
    );
    assert!(
        same_top1 * 10 >= positions * 9,
        "top-1 agrees at only {same_top1}/{positions} positions"
    );
    assert!(worst < 3.5, "max |Δ logit| {worst}");
}

/// Follows llama.cpp's greedy continuation token by token (teacher forcing) and checks
/// that at every step our greedy choice is the same, or llama.cpp's choice is within
/// [`TOLERANCE`] of our best logit (a near-tie); reports where the free-running
/// continuations part.
#[test]
fn greedy_continuations_match_llama_cpp() {
    let Some(path) = model_path() else { return };
    let mut model = LlmModel::load(&path, &Device::Cpu, 512).unwrap();
    let fx: Greedy = fixture("greedy.json");
    let (mut steps, mut same) = (0, 0);
    for p in &fx.prompts {
        model.reset();
        let mut logits = model.forward(&p.prompt_ids, false).unwrap();
        let mut first_difference = None;
        for (i, &theirs) in p.ids.iter().enumerate() {
            let ours = argmax(&logits).unwrap();
            steps += 1;
            if ours == theirs {
                same += 1;
            } else {
                let row = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let gap = row[ours as usize] - row[theirs as usize];
                assert!(
                    gap < TOLERANCE,
                    "{}: step {i}: we choose {ours}, llama.cpp {theirs}, {gap:.3} apart",
                    p.name
                );
                first_difference.get_or_insert(i);
            }
            logits = model.forward(&[theirs], false).unwrap();
        }
        println!(
            "{}: greedy choice identical to llama.cpp's up to token {}",
            p.name,
            first_difference.map_or("48 (all)".to_string(), |i| i.to_string())
        );
    }
    println!("greedy choices identical at {same}/{steps} steps, the others near-ties");
    assert!(
        same * 10 >= steps * 9,
        "only {same}/{steps} greedy choices agree"
    );
}
