//! Tokenizer parity with the Python reference implementations.
//!
//! SentencePiece part (`spm_*`): models and expected ids in tests/fixtures/spm, made by
//! scripts/make_spm_fixtures.py with the `sentencepiece` package (unigram, BPE) and
//! transformers' `MarianTokenizer` (the Marian pair). Every id must match.

use std::path::{Path, PathBuf};

use sentencepiece_model::SentencePieceModel;
use serde_json::Value;
use svodka::tokenizer::sentencepiece::{from_spm_file, MarianTokenizer, SpmEncoder};

fn spm_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spm")
        .join(name)
}

fn read_json(name: &str) -> Value {
    let path = spm_fixture(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text groups of texts.json, concatenated in the order the fixture maker used.
fn texts(groups: &[&str]) -> Vec<String> {
    let all = read_json("texts.json");
    groups
        .iter()
        .flat_map(|g| all[g].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Counts equal pairs, printing the first few differences; returns (matched, total).
fn compare<T: PartialEq + std::fmt::Debug>(
    label: &str,
    texts: &[String],
    got: &[T],
    want: &[T],
) -> (usize, usize) {
    assert_eq!(got.len(), want.len(), "{label}: case count");
    let mut matched = 0;
    let mut shown = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g == w {
            matched += 1;
        } else if shown < 5 {
            shown += 1;
            let text = texts.get(i).map(String::as_str).unwrap_or("");
            eprintln!("{label} #{i} {text:?}\n  rust:   {g:?}\n  python: {w:?}");
        }
    }
    println!("{label}: {matched}/{} identical", got.len());
    (matched, got.len())
}

/// Fixture ids and decodes of one model over ru + en + edge.
struct SpmCase {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    decoded: Vec<String>,
    path: PathBuf,
}

fn spm_case(model: &str) -> SpmCase {
    let texts = texts(&["ru", "en", "edge"]);
    let expected = &read_json("expected.json")[model];
    let ids = expected["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let decoded = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            expected["decoded"][i.to_string()]
                .as_str()
                .unwrap_or(t)
                .to_owned()
        })
        .collect();
    let path = spm_fixture(&format!("{model}.model"));
    SpmCase {
        texts,
        ids,
        decoded,
        path,
    }
}

/// `SpmEncoder` ids must all match, and so must the tokenizer's decode of them.
fn check_spm_encoder(model: &str) {
    let case = spm_case(model);
    let encoder = SpmEncoder::from_file(&case.path).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<Vec<u32>> = case
        .texts
        .iter()
        .map(|t| encoder.encode(t).unwrap())
        .collect();
    let (matched, total) = compare(
        &format!("{model} SpmEncoder ids"),
        &case.texts,
        &got,
        &case.ids,
    );
    let decoded: Vec<String> = case
        .ids
        .iter()
        .map(|ids| encoder.tokenizer().decode(ids, true).unwrap())
        .collect();
    let (round_trips, _) = compare(
        &format!("{model} decode"),
        &case.texts,
        &decoded,
        &case.decoded,
    );
    assert_eq!(
        (matched, round_trips),
        (total, total),
        "{model}: not all identical"
    );
}

/// The plain `tokenizers::Tokenizer` may differ only where two segmentations of the
/// same text have the same total score (tokenizers sums in f64, SentencePiece in f32).
fn check_spm_tokenizer(model: &str) {
    let case = spm_case(model);
    let tokenizer = from_spm_file(&case.path).unwrap_or_else(|e| panic!("{e}"));
    let proto = SentencePieceModel::from_file(&case.path).unwrap();
    let pieces = proto.pieces();
    let total_score = |ids: &[u32]| -> f64 {
        ids.iter()
            .map(|&i| f64::from(pieces[i as usize].score()))
            .sum()
    };
    let surface =
        |ids: &[u32]| -> String { ids.iter().map(|&i| pieces[i as usize].piece()).collect() };
    let got: Vec<Vec<u32>> = case
        .texts
        .iter()
        .map(|t| {
            tokenizer
                .encode(t.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec()
        })
        .collect();
    compare(
        &format!("{model} Tokenizer ids"),
        &case.texts,
        &got,
        &case.ids,
    );
    for (i, (g, w)) in got.iter().zip(&case.ids).enumerate() {
        if g != w {
            assert_eq!(surface(g), surface(w), "{model} #{i}: different text");
            let (a, b) = (total_score(g), total_score(w));
            assert!((a - b).abs() < 1e-3, "{model} #{i}: not a tie ({a} vs {b})");
        }
    }
}

#[test]
fn spm_unigram_encoder_ids_match_sentencepiece() {
    check_spm_encoder("unigram");
}

#[test]
fn spm_bpe_encoder_ids_match_sentencepiece() {
    check_spm_encoder("bpe");
}

#[test]
fn spm_unigram_tokenizer_differs_only_on_ties() {
    check_spm_tokenizer("unigram");
}

#[test]
fn spm_bpe_tokenizer_differs_only_on_ties() {
    check_spm_tokenizer("bpe");
}

fn marian() -> (MarianTokenizer, Value) {
    let tokenizer =
        MarianTokenizer::from_dir(&spm_fixture("marian")).unwrap_or_else(|e| panic!("{e}"));
    (tokenizer, read_json("expected.json")["marian"].clone())
}

#[test]
fn spm_marian_source_ids_match_transformers() {
    let (tokenizer, expected) = marian();
    let texts = texts(&["en", "edge", "marian_source_extra"]);
    let want: Vec<Vec<u32>> = expected["source_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let got: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer.encode_source(t).unwrap())
        .collect();
    let (matched, total) = compare("marian source ids", &texts, &got, &want);
    assert_eq!(matched, total);
    assert_eq!(
        tokenizer.vocab_size() as u64,
        expected["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(tokenizer.pad_id()),
        expected["pad_id"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(tokenizer.eos_id()),
        expected["eos_id"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(tokenizer.unk_id()),
        expected["unk_id"].as_u64().unwrap()
    );
}

#[test]
fn spm_marian_target_ids_match_transformers() {
    let (tokenizer, expected) = marian();
    let texts = texts(&["ru", "edge"]);
    let want: Vec<Vec<u32>> = expected["target_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let got: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer.encode_target(t).unwrap())
        .collect();
    let (matched, total) = compare("marian target ids", &texts, &got, &want);
    assert_eq!(matched, total);
}

#[test]
fn spm_marian_decode_matches_transformers() {
    let (tokenizer, expected) = marian();
    let texts = texts(&["ru", "edge"]);
    let targets = expected["target_ids"].as_array().unwrap();
    let cases = expected["decode"].as_array().unwrap();
    let mut got = Vec::new();
    let mut want = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let input = case.get("ids").map_or_else(|| ids(&targets[i]), ids);
        let text = case["text"].as_str().unwrap().to_owned();
        let skipped = case
            .get("text_skip")
            .and_then(Value::as_str)
            .unwrap_or(&text)
            .to_owned();
        got.push((
            tokenizer.decode_target(&input, false).unwrap(),
            tokenizer.decode_target(&input, true).unwrap(),
        ));
        want.push((text, skipped));
    }
    let (matched, total) = compare("marian decode", &texts, &got, &want);
    assert_eq!(matched, total);
}
