//! Parity with llama.cpp on the real Gemma 3 270M GGUF.
//!
//! The reference ids come from `scripts/make_gguf_fixtures.py` (llama-cpp-python) and live
//! in `tests/fixtures/gguf/` (format in its README.md). Tests that need the model look for
//! it at `$SVODKA_GEMMA_GGUF` or `.models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf` and skip,
//! saying so, when it is absent; `scripts/fetch-gemma.sh` puts it there.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use svodka::tokenizer::gguf::{from_gguf_file, GgufTokenizer};

const MODEL_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
const END_OF_TURN: u32 = 106;
const START_OF_TURN: u32 = 105;

#[derive(Deserialize)]
struct Meta {
    llama_cpp_python: String,
    model_sha256: String,
    add_bos: bool,
    bos_id: u32,
    eos_id: u32,
    n_vocab: usize,
}

#[derive(Deserialize)]
struct TokenFixture {
    meta: Meta,
    cases: Vec<TokenCase>,
}

#[derive(Deserialize)]
struct TokenCase {
    name: String,
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct DumpFixture {
    cases: Vec<TokenCase>,
}

#[derive(Deserialize)]
struct LogitsFixture {
    meta: Meta,
    prompts: Vec<LogitsPrompt>,
}

#[derive(Deserialize)]
struct LogitsPrompt {
    name: String,
    prompt: String,
    ids: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    top1: u32,
    logsumexp: f32,
    top: Vec<(u32, f32)>,
}

#[derive(Deserialize)]
struct GreedyFixture {
    meta: Meta,
    prompts: Vec<GreedyPrompt>,
}

#[derive(Deserialize)]
struct GreedyPrompt {
    name: String,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    sampler_agrees: bool,
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model_path() -> Option<PathBuf> {
    common::gemma_gguf()
}

/// The Gemma tokenizer, built once for all tests of this binary; None when the model is absent.
fn gemma() -> Option<&'static GgufTokenizer> {
    static TOKENIZER: OnceLock<Option<GgufTokenizer>> = OnceLock::new();
    let tokenizer = TOKENIZER.get_or_init(|| {
        let path = model_path()?;
        Some(from_gguf_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    });
    if tokenizer.is_none() {
        println!("skipping: Gemma GGUF not found; run scripts/fetch-gemma.sh");
    }
    tokenizer.as_ref()
}

#[test]
fn ids_match_llama_cpp_for_article_and_wmt22_sentences() {
    let Some(tokenizer) = gemma() else { return };
    let fixture: TokenFixture = fixture("tokens.json");
    assert!(fixture.meta.add_bos, "Gemma's GGUF asks for BOS");

    let mut mismatches = Vec::new();
    let mut tokens = 0;
    for case in &fixture.cases {
        let ids = tokenizer.encode(&case.text, true).expect("encodes");
        tokens += case.ids.len();
        if ids != case.ids {
            let at = ids
                .iter()
                .zip(&case.ids)
                .take_while(|(a, b)| a == b)
                .count();
            mismatches.push(format!(
                "{}: first difference at {at}: ours {:?} vs llama.cpp {:?}",
                case.name,
                &ids[at..ids.len().min(at + 8)],
                &case.ids[at..case.ids.len().min(at + 8)]
            ));
        }
    }
    let news = fixture
        .cases
        .iter()
        .filter(|c| c.name == "seed_article" || c.name.starts_with("wmt22_"))
        .count();
    assert_eq!(news, 101, "the fixture holds the article and 100 sentences");
    println!(
        "{} of {} texts ({tokens} llama.cpp tokens) identical to llama.cpp {}",
        fixture.cases.len() - mismatches.len(),
        fixture.cases.len(),
        fixture.meta.llama_cpp_python
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Opt-in, larger parity run: `make_gguf_fixtures.py --dump-all FILE` writes llama.cpp ids
/// for every WMT22 line and news document; point `SVODKA_GGUF_PARITY_DUMP` at FILE and run
/// with `-- --ignored`.
#[test]
#[ignore = "needs a dump from make_gguf_fixtures.py --dump-all in SVODKA_GGUF_PARITY_DUMP"]
fn ids_match_llama_cpp_on_a_full_dump() {
    let Some(tokenizer) = gemma() else { return };
    let path = std::env::var_os("SVODKA_GGUF_PARITY_DUMP")
        .expect("SVODKA_GGUF_PARITY_DUMP names the dump file");
    let text = std::fs::read_to_string(&path).expect("dump readable");
    let dump: DumpFixture = serde_json::from_str(&text).expect("dump is JSON");
    let mut tokens = 0;
    let mismatched: Vec<&str> = dump
        .cases
        .iter()
        .filter(|case| {
            tokens += case.ids.len();
            tokenizer.encode(&case.text, true).expect("encodes") != case.ids
        })
        .map(|case| case.name.as_str())
        .collect();
    println!(
        "full dump: {} of {} texts ({tokens} tokens) identical to llama.cpp",
        dump.cases.len() - mismatched.len(),
        dump.cases.len()
    );
    assert!(mismatched.is_empty(), "mismatched: {mismatched:?}");
}

#[test]
fn decoding_round_trips_every_text() {
    let Some(tokenizer) = gemma() else { return };
    let fixture: TokenFixture = fixture("tokens.json");
    for case in &fixture.cases {
        let body = case
            .ids
            .strip_prefix(&[fixture.meta.bos_id])
            .unwrap_or(&case.ids);
        let decoded = tokenizer.decode(body, false).expect("decodes");
        assert_eq!(
            decoded, case.text,
            "{}: decode(encode(text)) != text",
            case.name
        );
        if !case.text.contains('<') {
            let skipped = tokenizer.decode(&case.ids, true).expect("decodes");
            assert_eq!(skipped, case.text, "{}: BOS not skipped", case.name);
        }
    }
}

#[test]
fn special_tokens_and_metadata_match_llama_cpp() {
    let Some(tokenizer) = gemma() else { return };
    let fixture: TokenFixture = fixture("tokens.json");
    assert_eq!(tokenizer.add_bos, fixture.meta.add_bos);
    assert_eq!(tokenizer.bos_id, Some(fixture.meta.bos_id));
    assert_eq!(tokenizer.eos_ids.first(), Some(&fixture.meta.eos_id));
    assert!(
        tokenizer.eos_ids.contains(&END_OF_TURN),
        "{:?}",
        tokenizer.eos_ids
    );
    assert_eq!(tokenizer.vocab_size(), fixture.meta.n_vocab);
    assert_eq!(
        tokenizer.encode("<start_of_turn>", false).expect("encodes"),
        vec![START_OF_TURN]
    );
    // The base model's GGUF carries no chat template.
    assert_eq!(tokenizer.chat_template, None);
}

#[test]
fn generation_prompts_tokenize_as_recorded() {
    let Some(tokenizer) = gemma() else { return };
    let fixture: LogitsFixture = fixture("logits.json");
    for prompt in &fixture.prompts {
        let ids = tokenizer.encode(&prompt.prompt, true).expect("encodes");
        assert_eq!(ids, prompt.ids, "{}", prompt.name);
    }
}

/// The logits and greedy fixtures are used by the GGUF LLM engine's tests; this keeps
/// their shape honest without the model.
#[test]
fn generation_fixtures_are_complete() {
    let logits: LogitsFixture = fixture("logits.json");
    let greedy: GreedyFixture = fixture("greedy.json");
    for meta in [&logits.meta, &greedy.meta] {
        assert_eq!(meta.model_sha256, MODEL_SHA256);
    }
    assert_eq!(logits.prompts.len(), 3);
    for prompt in &logits.prompts {
        assert_eq!(prompt.positions.len(), prompt.ids.len(), "{}", prompt.name);
        for position in &prompt.positions {
            assert_eq!(position.top.len(), 20, "{}", prompt.name);
            assert_eq!(position.top[0].0, position.top1, "{}", prompt.name);
            assert!(position.top.windows(2).all(|w| w[0].1 >= w[1].1));
            assert!(position.logsumexp >= position.top[0].1, "{}", prompt.name);
        }
    }
    assert_eq!(greedy.prompts.len(), logits.prompts.len());
    for (g, l) in greedy.prompts.iter().zip(&logits.prompts) {
        assert_eq!(g.name, l.name);
        assert_eq!(g.prompt_ids, l.ids, "{}", g.name);
        assert_eq!(g.ids.len(), 48, "{}", g.name);
        assert!(
            g.sampler_agrees,
            "{}: argmax and llama.cpp's sampler disagree",
            g.name
        );
        // The first greedy token is the argmax at the prompt's last position.
        let last = l.positions.last().expect("non-empty prompt");
        assert_eq!(g.ids[0], last.top1, "{}", g.name);
    }
}
