//! Integration tests: the real `svodka` binary on real files.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn seed() -> PathBuf {
    fixture("articles/seed-article.txt")
}

/// A Russian WMT22 article (headline, blank line, body).
fn russian_article() -> PathBuf {
    fixture("news-wmt22/ru/aif.49918.txt")
}

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.env_remove("HF_HUB_OFFLINE")
        .env_remove("SVODKA_OFFLINE");
    cmd
}

/// Runs svodka with `args` and an empty stdin.
fn run(args: &[&str]) -> Output {
    svodka()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("svodka runs")
}

/// Runs svodka with `stdin` piped in.
fn run_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = svodka()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("svodka starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code 2 and a single error line mentioning every `needles`.
fn assert_usage_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(o.stdout.is_empty(), "no output on error: {}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
}

#[test]
fn summarize_seed_article_names_the_meeting_and_topics() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        seed().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o).to_lowercase();
    assert!(out.contains("mishustin"), "{out}");
    assert!(out.contains("lukashenko"), "{out}");
    assert!(
        ["border", "travel", "oil", "petroleum"]
            .iter()
            .any(|w| out.contains(w)),
        "{out}"
    );
}

#[test]
fn summarize_json_carries_title_metadata_and_sources() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        "--format",
        "json",
        "--sentences",
        "4",
        seed().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["title"],
        "Travel Ban, Oil Supplies on Russia-Belarus Agenda"
    );
    assert_eq!(v["language"]["lang"], "en");
    assert_eq!(v["metadata"]["date_iso"], "2020-09-04");
    assert_eq!(
        v["metadata"]["source_url"],
        "https://www.themoscowtimes.com/2020/09/04/travel-ban-oil-supplies-on-russia-belarus-agenda-a7134"
    );
    assert_eq!(v["engine"], "extractive");
    let sentences = v["summary"]["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 4);
    let paras: Vec<u64> = sentences
        .iter()
        .map(|s| s["paragraph"].as_u64().unwrap())
        .collect();
    assert!(paras.windows(2).all(|w| w[0] <= w[1]), "article order");
    assert!(v["elapsed_ms"].is_u64());
}

#[test]
fn summarize_markdown_has_headline_and_byline() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        "--format",
        "markdown",
        seed().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("# Travel Ban, Oil Supplies on Russia-Belarus Agenda\n"));
    assert!(out.contains("September 04, 2020"));
}

#[test]
fn summarize_russian_article_in_russian() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        "-n",
        "2",
        russian_article().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.chars().filter(|c| ('а'..='я').contains(c)).count() > 50);
}

#[test]
fn summarize_in_another_language_is_refused_by_extractive() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        "--lang",
        "en",
        russian_article().to_str().unwrap(),
    ]);
    assert_usage_error(&o, &["aif.49918.txt"]);
}

#[test]
fn segment_prints_title_then_sentences_and_paragraph_breaks() {
    let o = run(&["segment", seed().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let blocks: Vec<&str> = out.trim_end().split("\n\n").collect();
    assert_eq!(
        blocks[0],
        "Travel Ban, Oil Supplies on Russia-Belarus Agenda"
    );
    assert!(blocks[1].starts_with("Russia and Belarus are preparing"));
    // "Aug. 9" must not end a sentence.
    assert!(!out.contains("Aug.\n"));
    assert!(!out.lines().any(|l| l.trim() == "4"), "stray 4 dropped");
}

#[test]
fn segment_json_has_languages() {
    let o = run(&[
        "segment",
        "--format",
        "json",
        russian_article().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let paras = v["paragraphs"].as_array().unwrap();
    assert!(!paras.is_empty());
    for p in paras {
        assert_eq!(p["language"]["lang"], "ru");
        assert!(p["language"]["confidence"].as_f64().unwrap() > 0.5);
    }
}

/// Encodes `text` (Cyrillic + ASCII only) into a single-byte legacy encoding.
fn encode_legacy(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "text fits {}", encoding.name());
    bytes.into_owned()
}

#[test]
fn legacy_russian_encodings_read_like_utf8() {
    let text = std::fs::read_to_string(russian_article()).unwrap();
    let dir = TempDir::new().unwrap();
    let reference = stdout(&run(&["segment", russian_article().to_str().unwrap()]));
    for (name, enc) in [
        ("cp1251.txt", encoding_rs::WINDOWS_1251),
        ("koi8.txt", encoding_rs::KOI8_R),
    ] {
        let path = dir.path().join(name);
        let crlf = text.replace('\n', "\r\n");
        std::fs::write(&path, encode_legacy(&crlf, enc)).unwrap();
        let o = run(&["segment", path.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(stdout(&o), reference, "{name}");
    }
}

#[test]
fn forced_wrong_encoding_is_an_error_naming_the_file() {
    let text = std::fs::read_to_string(russian_article()).unwrap();
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cp1251.txt");
    std::fs::write(&path, encode_legacy(&text, encoding_rs::WINDOWS_1251)).unwrap();
    let o = run(&["segment", "--encoding", "utf-8", path.to_str().unwrap()]);
    assert_usage_error(&o, &["cp1251.txt"]);
}

#[test]
fn html_page_reduced_to_headline_and_paragraphs() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("page.html");
    std::fs::write(
        &path,
        r#"<!DOCTYPE html><html><head><title>Site | News</title>
<script>var tracker = "do not print me";</script><style>p { color: red }</style></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>Oil talks resume in Minsk</h1>
<p>Russian Prime Minister Mikhail Mishustin met Alexander Lukashenko in Minsk on Thursday.</p>
<p>The sides discussed <a href="https://example.com/oil">oil supplies</a> and reopening the border.</p>
</article><footer>Copyright 2020</footer></body></html>"#,
    )
    .unwrap();
    let o = run(&["segment", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("Oil talks resume in Minsk\n\n"), "{out}");
    assert!(out.contains("met Alexander Lukashenko in Minsk on Thursday."));
    assert!(out.contains("discussed oil supplies and reopening"));
    for junk in ["tracker", "color", "Home", "Copyright"] {
        assert!(!out.contains(junk), "{junk} in {out}");
    }
}

#[test]
fn stdin_is_read_when_no_file_is_given() {
    let o = run_stdin(&["segment"], "Привет, мир. Как дела?".as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Привет, мир.\nКак дела?\n");
    let o = run_stdin(&["segment", "-"], b"One. Two.");
    assert_eq!(stdout(&o), "One.\nTwo.\n");
}

#[test]
fn bad_inputs_are_one_line_errors_with_exit_2() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing.txt");
    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            missing.to_str().unwrap(),
        ]),
        &["missing.txt"],
    );

    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            dir.path().to_str().unwrap(),
        ]),
        &[dir.path().to_str().unwrap(), "directory"],
    );

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            empty.to_str().unwrap(),
        ]),
        &["empty.txt", "empty"],
    );

    let blank = dir.path().join("blank.txt");
    std::fs::write(&blank, " \n\t\r\n  \n").unwrap();
    assert_usage_error(
        &run(&["segment", blank.to_str().unwrap()]),
        &["blank.txt", "empty"],
    );

    let binary = dir.path().join("photo.txt");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend((0..=255u8).cycle().take(4096));
    std::fs::write(&binary, png).unwrap();
    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            binary.to_str().unwrap(),
        ]),
        &["photo.txt", "binary"],
    );

    let ukrainian = dir.path().join("uk.txt");
    std::fs::write(
        &ukrainian,
        "Уряд України ухвалив нове рішення щодо енергетики.\n\nМіністр заявив, що ціни на електроенергію для населення не зміняться до кінця року. Він також повідомив, що країна отримає додаткову допомогу від європейських партнерів.\n",
    )
    .unwrap();
    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            ukrainian.to_str().unwrap(),
        ]),
        &["uk.txt", "uk"],
    );

    assert_usage_error(
        &run(&[
            "summarize",
            "--engine",
            "extractive",
            "--encoding",
            "latin-9000",
            seed().to_str().unwrap(),
        ]),
        &["latin-9000"],
    );
}

#[test]
fn missing_models_offline_are_named_with_the_way_to_get_them() {
    let dir = TempDir::new().unwrap();
    let s = seed();
    for (engine, model) in [("t5", "mt5-xlsum"), ("llm", "qwen2.5-1.5b-instruct")] {
        let o = run(&[
            "--offline",
            "--cache-dir",
            dir.path().to_str().unwrap(),
            "summarize",
            "--engine",
            engine,
            s.to_str().unwrap(),
        ]);
        assert_usage_error(&o, &[model, "models pull"]);
    }
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let o = run(&[
        "summarize",
        "--engine",
        "extractive",
        "--sentences",
        "0",
        seed().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["translate", seed().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "--to is required");
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for cmd in [
        "summarize",
        "translate",
        "segment",
        "batch",
        "models",
        "completions",
    ] {
        assert!(help.contains(cmd), "{cmd} in --help");
    }
}

#[test]
fn cuda_device_on_a_cpu_build_is_refused() {
    if cfg!(feature = "cuda") {
        return;
    }
    let o = run(&["--device", "cuda", "summarize", seed().to_str().unwrap()]);
    assert_usage_error(&o, &["cuda"]);
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success());
        assert!(stdout(&o).contains("svodka"), "{shell}");
    }
}

#[test]
fn closed_stdout_pipe_exits_quietly() {
    // Far more output than a pipe buffer holds, so svodka writes into a closed pipe.
    let body = std::fs::read_to_string(seed()).unwrap();
    let big = body.repeat(60);
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big.txt");
    std::fs::write(&path, big).unwrap();
    let mut child = svodka()
        .args(["segment", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

fn gemma() -> Option<PathBuf> {
    common::gemma_gguf()
}

/// One model run at a time: two 2-thread model processes on a 2-core machine spin on
/// each other's cores and take many times as long.
static MODEL_RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn llm_summary_json(model: &Path, article: &Path, extra: &[&str]) -> serde_json::Value {
    let _one_at_a_time = MODEL_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = vec![
        "--threads",
        "2",
        "summarize",
        "--engine",
        "llm",
        "--model",
        model.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    args.push(article.to_str().unwrap());
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn llm_summarizes_the_seed_article_with_real_weights() {
    let Some(model) = gemma() else { return };
    let v = llm_summary_json(&model, &seed(), &[]);
    let text: Vec<&str> = v["summary"]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    println!("seed summary: {}", text.join(" "));
    assert!(!text.join(" ").trim().is_empty());
    assert_eq!(v["engine"], "llm");
    assert!(v["model"].as_str().unwrap().ends_with(".gguf"));
    let stats = &v["stats"];
    assert_eq!(stats["chunks"], 1);
    assert_eq!(stats["passes"], 1);
    assert!(stats["tokens_in"].as_u64().unwrap() > 500);
    assert!(stats["tokens_out"].as_u64().unwrap() > 0);
}

#[test]
fn llm_summarizes_a_russian_article_with_real_weights() {
    let Some(model) = gemma() else { return };
    let v = llm_summary_json(&model, &russian_article(), &["--max-tokens", "48"]);
    let text = v["summary"]["sentences"][0]["text"]
        .as_str()
        .unwrap_or_default();
    println!("russian summary: {text}");
    assert!(!text.trim().is_empty());
    assert_eq!(v["language"]["lang"], "ru");
}

#[test]
fn long_article_is_map_reduced_within_the_context() {
    let Some(model) = gemma() else { return };
    // About 6,000 words of English news, built from the WMT22 translations.
    let dir = fixture("news-wmt22/en");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut body = String::from("A long digest of the day's news\n\n");
    let mut words = 0;
    for p in names {
        let text = std::fs::read_to_string(p).unwrap();
        for para in text.split("\n\n").skip(1) {
            if words >= 6000 {
                break;
            }
            words += para.split_whitespace().count();
            body.push_str(para.trim());
            body.push_str("\n\n");
        }
    }
    assert!(words >= 6000);
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("long.txt");
    std::fs::write(&path, &body).unwrap();
    let v = llm_summary_json(&model, &path, &["--context", "2048", "--max-tokens", "64"]);
    let stats = &v["stats"];
    let chunks = stats["chunks"].as_u64().unwrap();
    let chunk_tokens: Vec<u64> = stats["chunk_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    println!(
        "6,000 words: {chunks} chunks {chunk_tokens:?}, {} passes, {} requests",
        stats["passes"], stats["requests"]
    );
    assert!(chunks >= 4, "{stats}");
    assert_eq!(chunk_tokens.len() as u64, chunks);
    assert!(chunk_tokens.iter().all(|&t| t <= 2048));
    // Every chunk was summarized, then the partial summaries were merged.
    assert!(stats["passes"].as_u64().unwrap() >= 2);
    assert!(stats["requests"].as_u64().unwrap() > chunks);
    assert!(!v["summary"]["sentences"].as_array().unwrap().is_empty());
}

#[test]
fn models_list_info_and_errors() {
    let dir = TempDir::new().unwrap();
    let cache = dir.path().to_str().unwrap();
    let o = run(&["--cache-dir", cache, "--format", "json", "models", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for n in [
        "opus-mt-en-ru",
        "opus-mt-ru-en",
        "opus-mt-tc-big-en-zle",
        "opus-mt-tc-big-zle-en",
        "qwen2.5-1.5b-instruct",
        "qwen3-1.7b",
        "gemma-3-270m",
        "mt5-xlsum",
    ] {
        assert!(names.contains(&n), "{n} listed");
    }
    let o = run(&["--cache-dir", cache, "models", "info", "opus-mt-en-ru"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Helsinki-NLP/opus-mt-en-ru"));
    assert_usage_error(
        &run(&["--cache-dir", cache, "models", "rm", "no-such-model"]),
        &["no-such-model"],
    );
    // Offline with an empty cache: says which model and file are missing and how to get them.
    let o = run(&[
        "--cache-dir",
        cache,
        "--offline",
        "models",
        "pull",
        "opus-mt-en-ru",
    ]);
    assert_usage_error(&o, &["opus-mt-en-ru", "models pull"]);
}
