//! `svodka batch` end to end: the real binary on a copy of the WMT22 news articles with
//! bad files planted among them, killed and resumed, sharded and merged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use serde_json::Value;
use tempfile::TempDir;

/// The committed copy of the WMT22 news documents.
fn news_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/news-wmt22")
}

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.stdin(Stdio::null())
        .env_remove("SVODKA_OFFLINE")
        .env_remove("HF_HUB_OFFLINE");
    cmd
}

fn run(args: &[&str]) -> Output {
    svodka().args(args).output().expect("svodka runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Copies `{ru,en}/*.txt` of the news folder, `copies` times, under `dest`.
fn copy_news(news: &Path, dest: &Path, copies: usize) -> usize {
    let mut n = 0;
    for copy in 0..copies {
        for lang in ["ru", "en"] {
            let to = if copies == 1 {
                dest.join(lang)
            } else {
                dest.join(format!("{lang}{copy}"))
            };
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(news.join(lang)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "txt") {
                    std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
                    n += 1;
                }
            }
        }
    }
    n
}

/// The news copy plus the planted files; returns (input dir, documents that must work,
/// names that must fail).
fn planted_corpus(tmp: &TempDir) -> (PathBuf, usize, Vec<&'static str>) {
    let news = news_dir();
    let input = tmp.path().join("in");
    let good = copy_news(&news, &input, 1);
    let bad = input.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("empty.txt"), b"").unwrap();
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect();
    std::fs::write(bad.join("binary.txt"), binary).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(bad.join("gone.txt"), bad.join("broken.txt")).unwrap();
    // 20 MB of real text: over the default per-document limit, refused before reading.
    let article = std::fs::read_to_string(news.join("en/aif.49918.txt")).unwrap();
    let mut huge = String::with_capacity(21 << 20);
    while huge.len() < 20_000_000 {
        huge.push_str(&article);
        huge.push_str("\n\n");
    }
    std::fs::create_dir_all(input.join("big")).unwrap();
    std::fs::write(input.join("big/huge.txt"), &huge).unwrap();
    // 1 MB: read, but more text than the extractive summarizer ranks in reasonable time.
    std::fs::write(input.join("big/long.txt"), &huge[..1_000_000]).unwrap();
    // A Russian article in Windows-1251: decoded and summarized like the others.
    let ru = std::fs::read_to_string(news.join("ru/aif.49918.txt")).unwrap();
    let (cp1251, _, lossy) = encoding_rs::WINDOWS_1251.encode(&ru);
    assert!(!lossy);
    std::fs::create_dir_all(input.join("cp1251")).unwrap();
    std::fs::write(input.join("cp1251/aif-cp1251.txt"), &cp1251).unwrap();
    let mut failing = vec![
        "bad/binary.txt",
        "bad/empty.txt",
        "big/huge.txt",
        "big/long.txt",
    ];
    if cfg!(unix) {
        failing.insert(0, "bad/broken.txt");
    }
    (input, good + 1, failing)
}

/// Manifest lines of every manifest in `out`, in file order.
fn manifest_lines(out: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("manifest") && n.ends_with(".jsonl")
        })
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("whole JSON lines"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Latest status per input (file order; every line here comes from one writer at a time).
fn latest_status(lines: &[Value]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|l| {
            (
                l["input"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every file under `dir`, relative, `/`-separated.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

fn summaries_under(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".summary.txt"))
        .collect()
}

#[test]
fn bad_files_are_reported_the_rest_written_and_a_rerun_skips() {
    let tmp = TempDir::new().unwrap();
    let (input, good, failing) = planted_corpus(&tmp);
    let out = tmp.path().join("out");
    let first = run(&["batch", s(&input), "--out", s(&out), "-j", "2", "--digest"]);
    let err = stderr(&first);
    assert_eq!(code(&first), Some(1), "{err}");
    for name in &failing {
        assert!(
            err.contains(&format!("failed: {name}: ")),
            "{name} not reported:\n{err}"
        );
    }
    assert!(err.contains("big/huge.txt: the file is 19.1 MiB, over the per-document limit of 8.0 MiB (raise it with --max-size)"), "{err}");
    assert!(err.contains("big/long.txt: the article has "), "{err}");
    assert!(
        err.contains("more than the extractive summarizer takes (256.0 KiB)"),
        "{err}"
    );
    let summary_line = format!("{good} done, 0 skipped, {} failed in", failing.len());
    assert!(err.contains(&summary_line), "{err}");

    let written = summaries_under(&out);
    assert_eq!(written.len(), good);
    assert!(written.contains(&"ru/aif.49918.summary.txt".to_string()));
    let cp = std::fs::read_to_string(out.join("cp1251/aif-cp1251.summary.txt")).unwrap();
    let utf8 = std::fs::read_to_string(out.join("ru/aif.49918.summary.txt")).unwrap();
    assert_eq!(
        cp, utf8,
        "the cp1251 copy summarizes like the UTF-8 original"
    );
    assert!(cp.chars().any(|c| ('а'..='я').contains(&c)));

    let lines = manifest_lines(&out);
    assert_eq!(lines.len(), good + failing.len());
    let latest = latest_status(&lines);
    for name in &failing {
        assert_eq!(latest[*name], "failed");
    }
    let done = &lines
        .iter()
        .find(|l| l["input"] == "ru/aif.49918.txt")
        .unwrap();
    assert_eq!(done["output"], "ru/aif.49918.summary.txt");
    assert_eq!(done["engine"], "extractive");
    assert_eq!(done["task"], "summarize");
    assert_eq!(done["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(done["output_sha256"].as_str().unwrap().len(), 64);
    assert!(done["timings"]["run_ms"].is_u64());
    let digest = std::fs::read_to_string(out.join("digest.md")).unwrap();
    assert!(digest.starts_with(&format!("# Digest\n\n{good} summaries")));

    // Nothing changed: every good document is skipped, the bad ones are tried again.
    let before = std::fs::read(out.join("ru/aif.49918.summary.txt")).unwrap();
    let second = run(&["batch", s(&input), "--out", s(&out), "-j", "2"]);
    let err = stderr(&second);
    assert_eq!(code(&second), Some(1), "{err}");
    let summary_line = format!("0 done, {good} skipped, {} failed in", failing.len());
    assert!(err.contains(&summary_line), "{err}");
    assert_eq!(
        std::fs::read(out.join("ru/aif.49918.summary.txt")).unwrap(),
        before
    );

    // New options (more sentences) make new outputs; --force redoes unchanged ones.
    let third = run(&["batch", s(&input), "--out", s(&out), "-n", "4", "--quiet"]);
    assert_eq!(code(&third), Some(1));
    assert!(stderr(&third).contains("failed: bad/empty.txt"));
    assert_ne!(
        std::fs::read(out.join("ru/aif.49918.summary.txt")).unwrap(),
        before
    );
    let forced = run(&["batch", s(&input), "--out", s(&out), "-n", "4", "--force"]);
    let summary_line = format!("{good} done, 0 skipped,");
    assert!(
        stderr(&forced).contains(&summary_line),
        "{}",
        stderr(&forced)
    );
}

#[test]
fn killed_runs_resume_to_exactly_one_output_each() {
    let news = news_dir();
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    let docs = copy_news(&news, &input, 2);

    // How long an undisturbed run takes, so the kills land inside one.
    let probe = tmp.path().join("probe");
    let start = Instant::now();
    let full = run(&["batch", s(&input), "--out", s(&probe), "-j", "2", "-q"]);
    assert_eq!(code(&full), Some(0), "{}", stderr(&full));
    let span = start.elapsed().as_millis().max(50) as u64;

    let out = tmp.path().join("out");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut mid_run = 0;
    for _ in 0..5 {
        // xorshift: a different spread of kill points on every test run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Five kills within one run's length: each lands on work still to do.
        let delay = seed % (span / 5);
        let mut child = svodka()
            .args(["batch", s(&input), "--out", s(&out), "-j", "2", "-q"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        eprintln!("killed after {delay} ms of about {span} ms");
    }
    eprintln!("{mid_run} of 5 kills landed mid-run");
    assert!(mid_run > 0, "no kill landed while svodka was running");

    let last = run(&["batch", s(&input), "--out", s(&out), "-j", "2"]);
    assert_eq!(code(&last), Some(0), "{}", stderr(&last));
    let written = summaries_under(&out);
    assert_eq!(written.len(), docs);
    assert_eq!(written, summaries_under(&probe));
    for f in files_under(&out) {
        assert!(!f.contains(".svodka-tmp-"), "temporary file left: {f}");
    }
    for f in &written {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(text, std::fs::read_to_string(probe.join(f)).unwrap(), "{f}");
    }
    let latest = latest_status(&manifest_lines(&out));
    assert_eq!(latest.len(), docs);
    assert!(
        latest.values().all(|s| s == "done" || s == "skipped"),
        "{latest:?}"
    );
}

#[test]
fn three_shards_cover_every_file_once_and_merge() {
    let news = news_dir();
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    let docs = copy_news(&news, &input, 1);
    // Shards run at the same time: two share one output folder, one has its own.
    let shared = tmp.path().join("shared");
    let own = tmp.path().join("own");
    let children: Vec<_> = [(0, &shared), (1, &shared), (2, &own)]
        .into_iter()
        .map(|(i, out)| {
            svodka()
                .args(["batch", s(&input), "--out", s(out), "-j", "1", "-q"])
                .args(["--shard", &format!("{i}/3")])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for out in [&shared, &own] {
        for l in manifest_lines(out) {
            *seen
                .entry(l["input"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), docs);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let outputs = summaries_under(&shared).len() + summaries_under(&own).len();
    assert_eq!(outputs, docs);
    let shard_files: BTreeSet<String> = files_under(&shared)
        .into_iter()
        .filter(|f| f.starts_with("manifest"))
        .collect();
    let expected: BTreeSet<String> = ["manifest-shard-0-of-3.jsonl", "manifest-shard-1-of-3.jsonl"]
        .map(String::from)
        .into();
    assert_eq!(shard_files, expected);

    // --digest belongs to the merge, not to a shard.
    let refused = run(&[
        "batch",
        s(&input),
        "--out",
        s(&own),
        "--shard",
        "2/3",
        "--digest",
    ]);
    assert_eq!(code(&refused), Some(2));
    assert!(stderr(&refused).contains("--merge-manifests"));

    let merged = tmp.path().join("merged");
    let m = run(&[
        "batch",
        "--merge-manifests",
        s(&shared),
        s(&own),
        "--out",
        s(&merged),
        "--digest",
    ]);
    assert_eq!(code(&m), Some(0), "{}", stderr(&m));
    let lines = manifest_lines(&merged);
    assert_eq!(lines.len(), docs);
    for l in &lines {
        let output = Path::new(l["output"].as_str().unwrap());
        assert!(output.is_absolute() && output.is_file(), "{output:?}");
    }
    let digest = std::fs::read_to_string(merged.join("digest.md")).unwrap();
    assert!(digest.starts_with(&format!("# Digest\n\n{docs} summaries")));
}

#[test]
fn out_inside_input_and_translation_without_to_are_refused_before_any_work() {
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.txt"), "Hello.").unwrap();
    for (out, why) in [
        (input.join("out"), "is inside the input folder"),
        (input.clone(), "is the input folder"),
        (tmp.path().to_path_buf(), "contains the input folder"),
    ] {
        let o = run(&["batch", s(&input), "--out", s(&out)]);
        assert_eq!(code(&o), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
    assert!(!input.join("out").exists());
    let out = tmp.path().join("out");
    for task in ["translate", "both"] {
        let o = run(&["batch", s(&input), "--out", s(&out), "--task", task]);
        assert_eq!(code(&o), Some(2));
        assert!(stderr(&o).contains("needs --to"), "{}", stderr(&o));
        assert!(!out.exists());
    }
}

/// `--task both` checks the translation model against the language pair before any
/// model is loaded: a wrong pair is named, not the summary model that was never opened.
#[test]
fn a_wrong_translation_pair_fails_before_the_summarizer_loads() {
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.txt"), "Привет.").unwrap();
    let out = tmp.path().join("out");
    let missing = tmp.path().join("nonexistent.gguf");
    let o = svodka()
        .env("HF_HOME", tmp.path().join("hf"))
        .env_remove("SVODKA_REGISTRY")
        .args([
            "--offline",
            "batch",
            s(&input),
            "--out",
            s(&out),
            "--task",
            "both",
            "--to",
            "en",
            "-m",
            "opus-mt-en-ru",
            "--engine",
            "llm",
            "--summary-model",
            s(&missing),
        ])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), Some(2), "{err}");
    assert!(
        err.contains("model opus-mt-en-ru translates en-ru, not ru-en"),
        "{err}"
    );
    assert!(!err.contains("nonexistent"), "{err}");
    assert!(!out.exists());
}

/// A tiny random Marian model with the SentencePiece fixture pair (tests/common).
fn marian_dir() -> TempDir {
    common::tiny_marian_dir("base")
}

/// `count` articles of each language of the news folder under `dest/{ru,en}`.
fn copy_some_news(news: &Path, dest: &Path, count: usize) -> usize {
    let mut n = 0;
    for lang in ["ru", "en"] {
        std::fs::create_dir_all(dest.join(lang)).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(news.join(lang))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for p in files.into_iter().take(count) {
            std::fs::copy(&p, dest.join(lang).join(p.file_name().unwrap())).unwrap();
            n += 1;
        }
    }
    n
}

#[test]
fn translation_batches_pass_through_skip_and_resume() {
    let news = news_dir();
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    let docs = copy_some_news(&news, &input, 10);
    let model = marian_dir();
    let home = tmp.path().join("hf");
    let translate = |out: &Path| {
        let mut cmd = svodka();
        cmd.env("HF_HOME", &home)
            .env_remove("SVODKA_REGISTRY")
            .args([
                "--offline",
                "--format",
                "json",
                "batch",
                s(&input),
                "--out",
                s(out),
                "--task",
                "translate",
                "--to",
                "ru",
                "--model",
                s(model.path()),
                "-j",
                "2",
                "--batch-docs",
                "4",
            ]);
        cmd
    };
    let out = tmp.path().join("out");
    let start = Instant::now();
    let first = translate(&out).output().unwrap();
    let span = start.elapsed().as_millis().max(50) as u64;
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains(&format!("{docs} done, 0 skipped, 0 failed")),
        "{}",
        stderr(&first)
    );
    let written: Vec<String> = files_under(&out)
        .into_iter()
        .filter(|f| f.ends_with(".translation.json"))
        .collect();
    assert_eq!(written.len(), docs, "{written:?}");
    for f in &written {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(f)).unwrap()).unwrap();
        let paragraphs = v["paragraphs"].as_array().unwrap();
        let kept = paragraphs
            .iter()
            .filter(|p| p["passthrough"] == true)
            .count();
        if f.starts_with("ru/") {
            // Already in the target language: written unchanged, with a note.
            assert_eq!(kept, paragraphs.len(), "{f}");
            assert!(
                v["notes"].to_string().contains("nothing to translate"),
                "{f}"
            );
            let source = v["paragraphs"][0]["source"]["text"].clone();
            assert_eq!(v["paragraphs"][0]["translated"]["text"], source, "{f}");
        } else {
            assert!(kept < paragraphs.len(), "{f}: nothing translated");
            assert_eq!(v["languages"]["from"], serde_json::json!(["en"]), "{f}");
            assert!(!v["segments"].as_array().unwrap().is_empty(), "{f}");
        }
    }
    let lines = manifest_lines(&out);
    assert!(lines.iter().all(|l| l["task"] == "translate"
        && l["engine"] == "marian"
        && l["model"] == s(model.path())));

    let second = translate(&out).output().unwrap();
    assert_eq!(code(&second), Some(0), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("0 done, {docs} skipped, 0 failed")),
        "{}",
        stderr(&second)
    );

    // Killed (SIGKILL) three times within one run's length, then resumed.
    let resumed = tmp.path().join("resumed");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut mid_run = 0;
    for _ in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = translate(&resumed).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(seed % (span / 3).max(1)));
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(mid_run > 0, "no kill landed while svodka was running");
    let last = translate(&resumed).output().unwrap();
    assert_eq!(code(&last), Some(0), "{}", stderr(&last));
    let files = files_under(&resumed);
    assert!(
        files.iter().all(|f| !f.contains(".svodka-tmp-")),
        "{files:?}"
    );
    let again: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".translation.json"))
        .collect();
    assert_eq!(again.len(), docs, "{again:?}");
    for f in again {
        let text = std::fs::read_to_string(resumed.join(f)).unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{f} is torn");
    }
    let latest = latest_status(&manifest_lines(&resumed));
    assert_eq!(latest.len(), docs);
    assert!(
        latest.values().all(|s| s == "done" || s == "skipped"),
        "{latest:?}"
    );
}

#[test]
fn a_neural_summarizer_is_loaded_once_and_reruns_skip() {
    let Some(gguf) = common::gemma_gguf() else {
        return;
    };
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("a.txt"),
        "Council approves budget\n\nThe city council approved the new budget on Monday. \
         It adds money for schools and roads. The mayor said the plan was fair.\n",
    )
    .unwrap();
    std::fs::write(
        input.join("b.txt"),
        "Storm hits coast\n\nA strong storm hit the coast on Sunday. Thousands lost power. \
         Repairs will take a week.\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let args = [
        "--offline",
        "batch",
        s(&input),
        "--out",
        s(&out),
        "--engine",
        "llm",
        "--summary-model",
        s(&gguf),
        "-n",
        "1",
        "-j",
        "2",
    ];
    let first = run(&args);
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    assert!(stderr(&first).contains("2 done, 0 skipped, 0 failed"));
    for f in ["a.summary.txt", "b.summary.txt"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!text.trim().is_empty(), "{f} is empty");
    }
    let lines = manifest_lines(&out);
    assert!(lines
        .iter()
        .all(|l| l["engine"] == "llm" && l["model"] == s(&gguf)));
    let again = run(&args);
    assert!(
        stderr(&again).contains("0 done, 2 skipped, 0 failed"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn json_lines_records_are_documents() {
    let news = news_dir();
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let text = |f: &str| std::fs::read_to_string(news.join(f)).unwrap();
    let lines = [
        serde_json::json!({ "body": text("en/aif.49918.txt"), "id": 1 }).to_string(),
        String::new(),
        serde_json::json!({ "id": 3 }).to_string(),
        serde_json::json!({ "body": text("ru/aif.49918.txt") }).to_string(),
    ];
    std::fs::write(input.join("feed.jsonl"), lines.join("\n")).unwrap();
    let out = tmp.path().join("out");
    let o = run(&[
        "batch",
        s(&input),
        "--out",
        s(&out),
        "--field",
        "body",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("failed: feed.jsonl#3: record has no string field \"body\""));
    assert_eq!(
        files_under(&out)
            .into_iter()
            .filter(|f| f.ends_with(".summary.json"))
            .collect::<Vec<_>>(),
        ["feed#1.summary.json", "feed#4.summary.json"]
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("feed#4.summary.json")).unwrap())
            .unwrap();
    assert_eq!(v["source"], "feed.jsonl#4");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_after_the_current_document_and_says_how_to_resume() {
    let news = news_dir();
    let tmp = TempDir::new().unwrap();
    let input = tmp.path().join("in");
    let docs = copy_news(&news, &input, 4);
    let out = tmp.path().join("out");
    let child = svodka()
        .args(["batch", s(&input), "--out", s(&out), "-j", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished document, then interrupt.
    let manifest = out.join("manifest.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&manifest).map_or(0, |m| m.len()) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("the kill command sends SIGINT");
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    let recorded = manifest_lines(&out).len();
    // 640 documents cannot all be done in the moment between the first and the signal.
    assert!(
        recorded < docs,
        "the run finished before the signal arrived"
    );
    assert_eq!(code(&o), Some(1), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    assert_eq!(summaries_under(&out).len(), recorded);
    let resumed = run(&["batch", s(&input), "--out", s(&out), "-q"]);
    assert_eq!(code(&resumed), Some(0));
    assert_eq!(summaries_under(&out).len(), docs);
}
