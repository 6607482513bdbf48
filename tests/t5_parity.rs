//! Parity of the T5/mT5 engine with transformers, and a map-reduce smoke run.
//!
//! tests/fixtures/t5/ holds tiny random-weight models (mT5: gated-gelu, untied lm_head;
//! T5 v1.0: relu, tied embeddings rescaled by d_model^-0.5), a SentencePiece model, and
//! what transformers 5.24 computed for them (scripts/make_t5_fixtures.py).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use svodka::article::{Article, BlockKind, Paragraph};
use svodka::decode::{DecodeOptions, EarlyStopping};
use svodka::engine::t5::{self, T5Options, T5Summarizer};
use svodka::engine::{SummaryOptions, TextWriter, WriteRequest, WriteTask, Written};
use svodka::hub::download::ModelFiles;
use svodka::pipeline::summarize::{summarize_with, AbstractiveRun};

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct TokCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Reference {
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
    decoder_input_ids: Vec<Vec<u32>>,
    logit_positions: Vec<u32>,
    greedy: Vec<Vec<u32>>,
    beam: Vec<Vec<u32>>,
    tokenizer: Vec<TokCase>,
    vocab_size: usize,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/t5")
}

fn files(kind: &str) -> ModelFiles {
    let root = dir().join(kind);
    let files = BTreeMap::from([
        ("config.json".to_string(), root.join("config.json")),
        (
            "model.safetensors".to_string(),
            root.join("model.safetensors"),
        ),
        ("spiece.model".to_string(), dir().join("spiece.model")),
    ]);
    ModelFiles {
        name: format!("tiny-{kind}"),
        repo: None,
        revision: None,
        root,
        files,
        architecture: None,
    }
}

fn reference(kind: &str) -> (Reference, HashMap<String, Tensor>) {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let mut all: HashMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let r: Reference = serde_json::from_value(all.remove(kind).unwrap()).unwrap();
    let path = dir().join(format!("{kind}-reference.safetensors"));
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    (r, tensors)
}

fn tensor(rows: &[Vec<u32>]) -> Tensor {
    let shape = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), shape, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Generated ids up to the first end-of-sequence, as `Hypothesis::tokens` holds them.
fn until_eos(ids: &[u32]) -> Vec<u32> {
    ids.iter().copied().take_while(|&t| t != 1).collect()
}

fn parity(kind: &str) {
    let summarizer = t5::load(&files(kind), &Device::Cpu).unwrap();
    let model = summarizer.model();
    let (r, tensors) = reference(kind);
    assert_eq!(model.config().vocab_size, r.vocab_size);

    for case in &r.tokenizer {
        let ids = summarizer.encode_input(&case.text).unwrap();
        assert_eq!(ids, case.ids, "{kind} tokenizer: {:?}", case.text);
    }
    println!(
        "{kind}: tokenizer ids identical on {} texts",
        r.tokenizer.len()
    );

    let (ids, mask) = (tensor(&r.input_ids), tensor(&r.attention_mask));
    let enc = model.encode(&ids, &mask).unwrap();
    let enc_diff = max_abs_diff(&enc, &tensors["encoder"]);
    let logits = model
        .forward(&ids, &mask, &tensor(&r.decoder_input_ids))
        .unwrap();
    let at = Tensor::new(r.logit_positions.as_slice(), &Device::Cpu).unwrap();
    let logits = logits.index_select(&at, 1).unwrap();
    let logit_diff = max_abs_diff(&logits, &tensors["logits"]);
    println!("{kind}: encoder max |diff| {enc_diff:.2e}, teacher-forced logits {logit_diff:.2e}");
    assert!(enc_diff < TOLERANCE, "{kind} encoder {enc_diff}");
    assert!(logit_diff < TOLERANCE, "{kind} logits {logit_diff}");

    let sources: Vec<Vec<u32>> = r
        .input_ids
        .iter()
        .zip(&r.attention_mask)
        .map(|(ids, m)| {
            ids.iter()
                .zip(m)
                .filter(|(_, &k)| k == 1)
                .map(|(&i, _)| i)
                .collect()
        })
        .collect();
    let greedy = DecodeOptions {
        beam_size: 1,
        max_new_tokens: 24,
        ..DecodeOptions::default()
    };
    let beam = DecodeOptions {
        beam_size: 4,
        no_repeat_ngram_size: 3,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::Heuristic,
        max_new_tokens: 24,
        ..DecodeOptions::default()
    };
    for (name, opts, expected) in [("greedy", greedy, &r.greedy), ("beam-4", beam, &r.beam)] {
        let got: Vec<Vec<u32>> = model
            .generate(&sources, &opts)
            .unwrap()
            .into_iter()
            .map(|h| h.tokens)
            .collect();
        let want: Vec<Vec<u32>> = expected.iter().map(|e| until_eos(e)).collect();
        assert_eq!(got, want, "{kind} {name}");
        println!("{kind}: {name} ids identical for {} sources", want.len());
    }
}

#[test]
fn mt5_matches_transformers() {
    parity("mt5");
}

#[test]
fn t5_matches_transformers() {
    parity("t5");
}

/// Delegates to the T5 summarizer and records the first-pass requests.
struct Recording {
    inner: T5Summarizer,
    seen: Vec<String>,
}

impl TextWriter for Recording {
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
    fn count_tokens(&self, text: &str) -> svodka::Result<usize> {
        self.inner.count_tokens(text)
    }
    fn input_budget(&self, req: &WriteRequest) -> svodka::Result<usize> {
        self.inner.input_budget(req)
    }
    fn write(
        &mut self,
        req: &WriteRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> svodka::Result<Written> {
        if req.task == WriteTask::Summarize {
            self.seen.push(req.text.to_string());
        }
        self.inner.write(req, on_text)
    }
}

#[test]
fn map_reduce_covers_every_chunk_of_a_long_article() {
    let f = files("mt5");
    let model = t5::T5Model::load(&f, candle_core::DType::F32, &Device::Cpu).unwrap();
    let tokenizer =
        svodka::tokenizer::sentencepiece::SpmEncoder::from_file(&dir().join("spiece.model"))
            .unwrap();
    let mut opts = T5Options {
        max_input_tokens: 96,
        ..T5Options::default()
    };
    opts.decode.max_new_tokens = 8;
    let inner = T5Summarizer::new(model, tokenizer, opts).unwrap();
    let article = Article {
        title: Some("Погода в Москве".into()),
        paragraphs: (0..24)
            .map(|i| Paragraph {
                text: format!(
                    "Абзац {i}: в Москве и области сегодня ожидается облачная погода, \
                     синоптики обещают небольшой дождь и сильный ветер."
                ),
                spans: vec![],
                kind: BlockKind::Text,
            })
            .collect(),
        ..Article::default()
    };
    let mut writer = Recording {
        inner,
        seen: Vec::new(),
    };
    let report = summarize_with(
        &article,
        &mut writer,
        &SummaryOptions::default(),
        AbstractiveRun::default(),
    )
    .unwrap();
    let stats = report.stats.unwrap();
    println!("map-reduce: {stats:?}");
    assert!(stats.chunks > 3, "{stats:?}");
    assert!(stats.passes >= 2, "{stats:?}");
    assert!(stats.chunk_tokens.iter().all(|&t| t <= 95), "{stats:?}");
    assert_eq!(writer.seen.len(), stats.chunks);
    for p in &article.paragraphs {
        let holders = writer.seen.iter().filter(|c| c.contains(&p.text)).count();
        assert_eq!(holders, 1, "{:?}", p.text);
    }
    assert_eq!(report.engine, "t5");
    assert!(!report.summary.sentences.is_empty());
}

/// The real mT5_multilingual_XLSum on a fixture article: `SVODKA_T5_MODEL` (a folder, or
/// a registry alias in the cache), else `mt5-xlsum` from the Hub cache, offline. A
/// 2.3 GB model CI does not fetch, so it runs only when asked for (`-- --ignored`), and
/// then fails without the model instead of passing without a check.
#[test]
#[ignore = "needs mt5-xlsum (2.3 GB) in the Hub cache: svodka models pull mt5-xlsum"]
fn real_xlsum_summarizes() {
    use svodka::hub::{download, Registry};
    let spec = std::env::var("SVODKA_T5_MODEL").unwrap_or_else(|_| "mt5-xlsum".into());
    let fetch = download::FetchOptions {
        cache_dir: None,
        offline: true,
        quiet: true,
        endpoint: None,
        ..Default::default()
    };
    let files = Registry::load(None)
        .and_then(|r| download::resolve(&spec, &r, &fetch))
        .unwrap_or_else(|e| panic!("model {spec} is not available offline: {e}"));
    let started = std::time::Instant::now();
    let mut summarizer = t5::load(&files, &Device::Cpu).unwrap();
    println!("loaded {spec} in {:.1?}", started.elapsed());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/articles/wmt22-ru-lenta.ru.89832.txt");
    let article =
        svodka::article::read::read_file(&path, &svodka::article::read::ReadOptions::default())
            .unwrap();
    let started = std::time::Instant::now();
    let report = summarize_with(
        &article,
        &mut summarizer,
        &SummaryOptions::default(),
        AbstractiveRun::default(),
    )
    .unwrap();
    let text: Vec<&str> = report
        .summary
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    println!("{:.1?}: {}", started.elapsed(), text.join(" "));
    println!("{:?}", report.stats);
    assert!(!text.is_empty());
}
