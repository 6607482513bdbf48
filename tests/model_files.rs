//! Corrupt and crafted model files, written by the tests: the binary answers each with
//! one line on stderr naming the file, exit code 2, and neither a panic nor an abort.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::gguf::{Gguf, Meta};

fn svodka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svodka"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap()
}

/// Exit 2, one line on stderr that names `file`, no panic.
fn assert_refused(out: &Output, file: &Path, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(err.contains(name.as_ref()), "{what}: {err}");
    err
}

fn article(dir: &Path) -> PathBuf {
    let path = dir.join("article.txt");
    std::fs::write(&path, "Title\n\nOne sentence here. Another one there.\n").unwrap();
    path
}

#[test]
fn a_valid_tiny_gguf_passes_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    Gguf::tiny_llama().write(&path);
    let out = svodka(&["models", "info", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"layers\":1") || text.contains("layers"),
        "{text}"
    );
}

/// Each crafted GGUF, by the change made to a valid one.
fn crafted() -> Vec<(&'static str, Gguf)> {
    let mut cases = Vec::new();
    let mut g = Gguf::tiny_llama();
    g.get("blk.0.attn_q.weight").dims = vec![1 << 40, 1 << 40];
    cases.push(("dims 2^40 x 2^40", g));
    let mut g = Gguf::tiny_llama();
    g.set("llama.attention.head_count", Meta::U32(0));
    cases.push(("head_count 0", g));
    let mut g = Gguf::tiny_llama();
    g.set("llama.attention.head_count_kv", Meta::U32(0));
    cases.push(("head_count_kv 0", g));
    let mut g = Gguf::tiny_llama();
    g.set("llama.block_count", Meta::U32(u32::MAX));
    cases.push(("block_count 2^32-1", g));
    let mut g = Gguf::tiny_llama();
    g.set("llama.block_count", Meta::U32(1 << 20));
    cases.push(("block_count 2^20", g));
    let mut g = Gguf::tiny_llama();
    g.set("general.architecture", Meta::Str("gemma3".into()));
    let meta: Vec<(String, Meta)> = g.meta.clone();
    for (k, v) in meta {
        if let Some(rest) = k.strip_prefix("llama.") {
            g.set(&format!("gemma3.{rest}"), v);
        }
    }
    g.set("gemma3.attention.sliding_window", Meta::U32(4));
    g.set("gemma3.attention.sliding_window_pattern", Meta::U32(0));
    cases.push(("sliding_window_pattern 0", g));
    let mut g = Gguf::tiny_llama();
    g.tensor("rope_freqs.weight", &[1]);
    cases.push(("short rope_freqs.weight", g));
    let mut g = Gguf::tiny_llama();
    let t = g.get("token_embd.weight");
    t.dims = vec![];
    t.data = vec![0.0];
    cases.push(("token_embd.weight with no dimensions", g));
    let mut g = Gguf::tiny_llama();
    g.get("blk.0.ffn_down.weight").offset = Some(u64::MAX - 8);
    cases.push(("tensor offset past the end", g));
    let mut g = Gguf::tiny_llama();
    g.get("blk.0.attn_k.weight").dims = vec![8, 3];
    cases.push(("k projection of the wrong shape", g));
    cases
}

#[test]
fn crafted_ggufs_are_refused_by_models_info() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (what, g)) in crafted().into_iter().enumerate() {
        let path = dir.path().join(format!("crafted-{i}.gguf"));
        g.write(&path);
        let out = svodka(&["models", "info", path.to_str().unwrap()]);
        assert_refused(&out, &path, what);
        assert!(
            out.stdout.is_empty(),
            "{what}: a partial answer was printed"
        );
    }
}

#[test]
fn crafted_ggufs_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let text = article(dir.path());
    for (i, (what, g)) in crafted().into_iter().enumerate() {
        let path = dir.path().join(format!("crafted-{i}.gguf"));
        g.write(&path);
        let out = svodka(&[
            "summarize",
            "--model",
            path.to_str().unwrap(),
            text.to_str().unwrap(),
        ]);
        assert_refused(&out, &path, what);
    }
}

#[test]
fn user_errors_stay_one_line_with_rust_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.gguf");
    let bytes = Gguf::tiny_llama().bytes();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let text = article(dir.path());
    for args in [
        vec!["models", "info", path.to_str().unwrap()],
        vec![
            "summarize",
            "--model",
            path.to_str().unwrap(),
            text.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_svodka"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .unwrap();
        assert_refused(&out, &path, "truncated GGUF with RUST_BACKTRACE=1");
    }
}

/// A Marian model folder whose `config.json` is edited by `change`.
fn marian_with(change: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = common::tiny_marian_dir("base");
    let path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir
}

/// A crafted config: what it breaks, and the edit that breaks it.
type ConfigCase = (&'static str, Box<dyn FnOnce(&mut serde_json::Value)>);

#[test]
fn crafted_marian_configs_are_refused() {
    let cases: Vec<ConfigCase> = vec![
        (
            "max_position_embeddings 2^40",
            Box::new(|c| c["max_position_embeddings"] = (1u64 << 40).into()),
        ),
        (
            "max_position_embeddings × d_model overflows",
            Box::new(|c| c["max_position_embeddings"] = (1u64 << 62).into()),
        ),
        (
            "encoder_layers 2^40",
            Box::new(|c| c["encoder_layers"] = (1u64 << 40).into()),
        ),
        ("d_model 0", Box::new(|c| c["d_model"] = 0.into())),
    ];
    let work = tempfile::tempdir().unwrap();
    let text = article(work.path());
    for (what, change) in cases {
        let dir = marian_with(change);
        let config = dir.path().join("config.json");
        let model = dir.path().to_str().unwrap().to_string();
        let out = svodka(&["models", "info", &model]);
        assert_refused(&out, &config, what);
        let out = svodka(&[
            "translate",
            "--to",
            "ru",
            "--from",
            "en",
            "--model",
            &model,
            text.to_str().unwrap(),
        ]);
        assert_refused(&out, &config, what);
    }
}

#[test]
fn marian_loading_errors_name_the_weights() {
    let dir = common::tiny_marian_dir("base");
    let weights = dir.path().join("model.safetensors");
    // A valid safetensors file that lacks the model's tensors.
    candle_core::safetensors::save(
        &std::collections::HashMap::from([(
            "unrelated".to_string(),
            candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        )]),
        &weights,
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let text = article(work.path());
    let out = svodka(&[
        "translate",
        "--to",
        "ru",
        "--from",
        "en",
        "--model",
        dir.path().to_str().unwrap(),
        text.to_str().unwrap(),
    ]);
    assert_refused(&out, &weights, "safetensors without the model's tensors");

    // A header that claims more than the file holds.
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&weights, bytes).unwrap();
    let out = svodka(&[
        "translate",
        "--to",
        "ru",
        "--from",
        "en",
        "--model",
        dir.path().to_str().unwrap(),
        text.to_str().unwrap(),
    ]);
    assert_refused(&out, &weights, "safetensors header larger than the file");
}

/// A T5 folder: config.json from the fixture, edited by `change`, and no weights needed
/// for `models info`.
#[test]
fn crafted_t5_configs_are_refused() {
    let src = common::fixture("t5/t5/config.json");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    for (what, key, value) in [
        ("num_layers 2^40", "num_layers", 1u64 << 40),
        ("num_heads 0", "num_heads", 0),
        ("vocab_size 2^60", "vocab_size", 1 << 60),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = base.clone();
        cfg[key] = value.into();
        let config = dir.path().join("config.json");
        std::fs::write(&config, cfg.to_string()).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        let out = svodka(&["models", "info", dir.path().to_str().unwrap()]);
        assert_refused(&out, &config, what);
    }
}
