//! Parity of the Marian engine and the shared decoding with transformers.
//!
//! The fixtures under tests/fixtures/marian/ are tiny random-weight MarianMT models and
//! the outputs transformers produced for them (scripts/make_marian_fixtures.py): encoder
//! output, teacher-forced logits and generate() results for greedy and beam search.

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::path::PathBuf;
use svodka::decode::{DecodeOptions, EarlyStopping};
use svodka::engine::marian::{max_abs_diff, MarianModel};

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    src_ids: Vec<Vec<u32>>,
    src_mask: Vec<Vec<u32>>,
    tgt_ids: Vec<Vec<u32>>,
    encoder_shape: Vec<usize>,
    encoder_out: Vec<f32>,
    logits_shape: Vec<usize>,
    logits: Vec<f32>,
    generate: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    options: CaseOptions,
    sequences: Vec<Vec<u32>>,
    scores: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct CaseOptions {
    num_beams: usize,
    length_penalty: f32,
    early_stopping: serde_json::Value,
    no_repeat_ngram_size: usize,
    repetition_penalty: f32,
    min_new_tokens: usize,
    max_new_tokens: usize,
    renormalize_logits: bool,
}

impl CaseOptions {
    /// The model's generation_config.json, overridden by what the case passed to generate().
    fn to_decode(&self, defaults: &DecodeOptions) -> DecodeOptions {
        let early_stopping = match &self.early_stopping {
            serde_json::Value::Bool(true) => EarlyStopping::Always,
            serde_json::Value::String(s) if s == "never" => EarlyStopping::Never,
            _ => EarlyStopping::Heuristic,
        };
        DecodeOptions {
            beam_size: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping,
            max_length_ratio: None,
            max_length_offset: 0,
            max_new_tokens: self.max_new_tokens,
            min_length: self.min_new_tokens,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            repetition_penalty: self.repetition_penalty,
            ..defaults.clone()
        }
    }
}

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/marian")
        .join(name)
}

fn load(name: &str) -> (MarianModel, Reference) {
    let dir = fixture_dir(name);
    let model = MarianModel::load(&dir, DType::F32, &Device::Cpu).expect("fixture model loads");
    let text = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
    let reference: Reference = serde_json::from_str(&text).expect("reference.json parses");
    (model, reference)
}

fn ids(rows: &[Vec<u32>]) -> Tensor {
    let width = rows[0].len();
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), width), &Device::Cpu).unwrap()
}

fn check_numerics(name: &str) {
    let (model, r) = load(name);
    let src = ids(&r.src_ids);
    let mask = ids(&r.src_mask);
    let enc = model.encode(&src, &mask).unwrap();
    let want = Tensor::from_vec(
        r.encoder_out.clone(),
        r.encoder_shape.as_slice(),
        &Device::Cpu,
    )
    .unwrap();
    let enc_diff = max_abs_diff(&enc, &want).unwrap();
    let logits = model.forward(&src, &mask, &ids(&r.tgt_ids)).unwrap();
    let want = Tensor::from_vec(r.logits.clone(), r.logits_shape.as_slice(), &Device::Cpu).unwrap();
    let logits_diff = max_abs_diff(&logits, &want).unwrap();
    println!("{name}: encoder max |diff| {enc_diff:.3e}, teacher-forced logits max |diff| {logits_diff:.3e}");
    assert!(
        enc_diff <= TOLERANCE,
        "{name}: encoder differs by {enc_diff}"
    );
    assert!(
        logits_diff <= TOLERANCE,
        "{name}: logits differ by {logits_diff}"
    );
}

fn check_generation(name: &str) {
    let (model, r) = load(name);
    let eos = model.config().eos_token_id;
    let sources: Vec<Vec<u32>> = r
        .src_ids
        .iter()
        .zip(&r.src_mask)
        .map(|(ids, mask)| {
            ids.iter()
                .zip(mask)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect();
    let defaults =
        DecodeOptions::from_generation_config(&fixture_dir(name).join("generation_config.json"))
            .expect("generation_config.json reads");
    for case in &r.generate {
        assert_eq!(defaults.renormalize_logits, case.options.renormalize_logits);
        let opts = case.options.to_decode(&defaults);
        let out = model.translate_ids(&sources, &opts).unwrap();
        for (row, (hyp, want)) in out.iter().zip(&case.sequences).enumerate() {
            let mut got = hyp.tokens.clone();
            if hyp.ended {
                got.push(eos);
            }
            assert_eq!(&got, want, "{name} {} row {row}", case.name);
        }
        if let Some(scores) = &case.scores {
            let worst = out
                .iter()
                .zip(scores)
                .map(|(h, &s)| (h.score - s).abs())
                .fold(0f32, f32::max);
            println!(
                "{name} {}: ids identical, score max |diff| {worst:.3e}",
                case.name
            );
            assert!(
                worst <= TOLERANCE,
                "{name} {}: scores differ by {worst}",
                case.name
            );
        } else {
            println!("{name} {}: ids identical", case.name);
        }
    }
}

#[test]
fn base_encoder_and_logits_match_transformers() {
    check_numerics("base");
}

#[test]
fn tcbig_encoder_and_logits_match_transformers() {
    check_numerics("tcbig");
}

#[test]
fn base_generation_matches_transformers() {
    check_generation("base");
}

#[test]
fn tcbig_generation_matches_transformers() {
    check_generation("tcbig");
}

/// The cached, batched decoder must give each sentence the translation it gets alone.
#[test]
fn batching_does_not_change_results() {
    let (model, r) = load("base");
    let sources: Vec<Vec<u32>> = r
        .src_ids
        .iter()
        .zip(&r.src_mask)
        .map(|(ids, mask)| {
            ids.iter()
                .zip(mask)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t)
                .collect()
        })
        .collect();
    let opts = DecodeOptions {
        max_new_tokens: 20,
        ..DecodeOptions::default()
    };
    let batched = model.translate_ids(&sources, &opts).unwrap();
    for (s, b) in sources.iter().zip(&batched) {
        let alone = model.translate_ids(std::slice::from_ref(s), &opts).unwrap();
        assert_eq!(alone[0].tokens, b.tokens);
        assert!((alone[0].score - b.score).abs() < 1e-5);
    }
}
