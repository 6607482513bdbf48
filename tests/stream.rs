//! `svodka batch --jsonl`: the real binary as a stream of records, as an engine such as
//! Spark drives it: bad records among good ones, a reader that goes away, end of input,
//! a process killed and started again on the same input, translation batches.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use serde_json::{json, Value};
use tempfile::TempDir;

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.env_remove("SVODKA_OFFLINE")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("SVODKA_REGISTRY");
    cmd
}

/// The Russian WMT22 articles (the committed fixture copy), sorted.
fn news() -> Vec<PathBuf> {
    let dir = common::fixture("news-wmt22/ru");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

/// One `{"id", "text"}` line per article.
fn records(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| {
            let id = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(p).unwrap();
            format!("{}\n", json!({ "id": id, "text": text }))
        })
        .collect()
}

/// Runs `svodka [args] batch --jsonl - [batch_args]` on `input` to the end.
fn run_stream(batch_args: &[&str], input: &str) -> Output {
    let mut child = svodka()
        .args(["batch", "--jsonl", "-"])
        .args(batch_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CLI JSON without its timing, which differs from run to run.
fn untimed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("elapsed_ms");
        m.remove("stats");
    }
    v
}

const ARTICLE: &str = "Council approves budget\n\nThe city council approved the new budget on \
Monday after a long debate. It raises spending on schools by ten percent. Critics said the \
plan was too costly for the city. The mayor promised to cut other costs. Voting took place \
late in the evening.\n";

#[test]
fn bad_records_get_error_records_and_the_stream_goes_on() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("a.txt");
    std::fs::write(&file, ARTICLE).unwrap();
    let input = [
        json!({"id": "good", "text": ARTICLE}).to_string(),
        "not json at all".into(),
        json!({"text": ARTICLE}).to_string(),
        String::new(),
        json!({"id": "nofile", "path": tmp.path().join("missing.txt")}).to_string(),
        json!({"id": "empty", "text": "  \n "}).to_string(),
        json!({"id": "extra", "text": ARTICLE, "colour": "red"}).to_string(),
        json!({"id": "two", "text": ARTICLE, "path": file}).to_string(),
        json!({"id": 7, "path": file}).to_string(),
        json!({"id": "short", "text": ARTICLE, "sentences": 1}).to_string(),
        json!({"id": "toolong", "text": ARTICLE, "sentences": 1000}).to_string(),
        json!({"id": ["x"], "text": ARTICLE}).to_string(),
        json!({"id": "folder", "path": tmp.path()}).to_string(),
    ]
    .join("\n");
    let out = run_stream(&["-j", "2"], &input);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = lines(&out);
    let summary: Vec<(Value, u64, &str)> = got
        .iter()
        .map(|r| {
            (
                r["id"].clone(),
                r["line"].as_u64().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!("good"), 1, "done"),
            (Value::Null, 2, "failed"),
            (Value::Null, 3, "failed"),
            (json!("nofile"), 5, "failed"),
            (json!("empty"), 6, "failed"),
            (json!("extra"), 7, "failed"),
            (json!("two"), 8, "failed"),
            (json!(7), 9, "done"),
            (json!("short"), 10, "done"),
            (json!("toolong"), 11, "failed"),
            (Value::Null, 12, "failed"),
            (json!("folder"), 13, "failed"),
        ]
    );
    let err = |i: usize| got[i]["error"].as_str().unwrap().to_string();
    assert!(err(1).contains("not valid JSON"), "{}", err(1));
    assert!(err(2).contains("no \"id\""), "{}", err(2));
    assert!(
        err(3).contains("missing.txt") && err(3).contains("cannot be read"),
        "{}",
        err(3)
    );
    assert!(err(4).contains("empty"), "{}", err(4));
    assert!(err(5).contains("unknown field `colour`"), "{}", err(5));
    assert!(err(6).contains("not both"), "{}", err(6));
    assert!(err(9).contains("between 1 and 100"), "{}", err(9));
    assert!(err(10).contains("string or an integer"), "{}", err(10));
    assert!(err(11).contains("not a regular file"), "{}", err(11));
    for r in &got {
        assert_eq!(
            (&r["task"], &r["engine"]),
            (&json!("summarize"), &json!("extractive"))
        );
        assert_eq!(r["key"].is_string(), r["status"] == "done", "{r}");
    }

    // The text and the file holding it give the same content hash and summary; their
    // keys differ by id and reading.
    let (good, by_path, short) = (&got[0], &got[7], &got[8]);
    assert_eq!(good["sha256"], by_path["sha256"]);
    assert_ne!(good["key"], by_path["key"]);
    assert_eq!(good["result"]["summary"], by_path["result"]["summary"]);
    assert_eq!(good["result"]["source"], "good");
    // The same summary `svodka summarize` gives.
    let alone = svodka()
        .args(["--format", "json", "summarize", "--engine", "extractive"])
        .arg(&file)
        .output()
        .unwrap();
    let alone: Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert_eq!(good["result"]["summary"], alone["summary"]);
    // Per-record options change the summary, the fingerprint and the key.
    assert_eq!(
        short["result"]["summary"]["sentences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        good["result"]["summary"]["sentences"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_ne!(short["fingerprint"], good["fingerprint"]);
    assert_ne!(short["key"], good["key"]);
}

/// A running `svodka batch --jsonl -` with its pipes.
struct Live {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
}

fn live(args: &[&str]) -> Live {
    let mut child = svodka()
        .args(["--quiet", "batch", "--jsonl", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Live {
        child,
        stdin,
        lines: rx,
    }
}

impl Live {
    fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a result within a minute");
        serde_json::from_str(&line).unwrap()
    }

    /// Waits up to a minute for the process to end.
    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("svodka did not end within a minute");
    }
}

#[test]
fn each_answer_comes_before_the_next_record_and_eof_flushes_the_rest() {
    let mut s = live(&["-j", "2"]);
    for i in 0..3 {
        s.send(&json!({"id": i, "text": ARTICLE}).to_string())
            .unwrap();
        // Answered while the input is still open: a writer may wait for each answer.
        let r = s.next();
        assert_eq!(
            (r["id"].clone(), r["status"].clone()),
            (json!(i), json!("done"))
        );
    }
    let files = news();
    for chunk in records(&files[..20]).lines() {
        s.send(chunk).unwrap();
    }
    drop(s.stdin.take());
    let rest: Vec<Value> = (0..20).map(|_| s.next()).collect();
    assert!(s.wait().success());
    let ids: Vec<&str> = rest.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let want: Vec<String> = files[..20]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids, want, "results come in input order");
    assert!(s.lines.recv_timeout(Duration::from_secs(1)).is_err());
}

#[test]
fn a_closed_output_ends_the_run_cleanly() {
    let mut child = svodka()
        .args(["--quiet", "batch", "--jsonl", "-", "-j", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let record = |i: usize| format!("{}\n", json!({"id": i, "text": ARTICLE}));
    stdin.write_all(record(0).as_bytes()).unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"done\""), "{first}");
    // The reader goes away while the writer keeps its end of the input open.
    drop(stdout);
    let mut status = None;
    for i in 1..500 {
        status = child.try_wait().unwrap();
        if status.is_some() || stdin.write_all(record(i).as_bytes()).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..600 {
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        status = child.try_wait().unwrap();
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("svodka went on after its output closed");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    drop(stdin);
}

#[test]
fn a_killed_process_restarted_on_the_same_input_gives_the_same_keys() {
    let files = news();
    let input = records(&files);
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("records.jsonl");
    std::fs::write(&path, &input).unwrap();

    // Killed after a few results.
    let mut first = svodka()
        .args(["--quiet", "batch", "--jsonl"])
        .arg(&path)
        .args(["-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut partial = Vec::new();
    for line in BufReader::new(first.stdout.take().unwrap()).lines().take(5) {
        partial.push(serde_json::from_str::<Value>(&line.unwrap()).unwrap());
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(partial.len(), 5);

    // The same input again, from a file and through a pipe, in other group sizes.
    let from_file = svodka()
        .args(["--quiet", "batch", "--jsonl"])
        .arg(&path)
        .args(["-j", "1"])
        .output()
        .unwrap();
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    let piped = run_stream(&["-j", "2"], &input);
    assert!(piped.status.success(), "{}", stderr(&piped));
    let (a, b) = (lines(&from_file), lines(&piped));
    assert_eq!(a.len(), files.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x["id"], &x["key"]), (&y["id"], &y["key"]));
        assert_eq!(untimed(&x["result"]), untimed(&y["result"]));
    }
    for p in &partial {
        let again = a.iter().find(|r| r["id"] == p["id"]).unwrap();
        assert_eq!(p["key"], again["key"], "{}", p["id"]);
        assert_eq!(untimed(&p["result"]), untimed(&again["result"]));
    }
    let keys: std::collections::HashSet<&str> =
        a.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), files.len());
}

#[test]
fn translation_records_share_batches_and_match_batch() {
    let model = common::tiny_marian_dir("base");
    let tmp = TempDir::new().unwrap();
    let en: Vec<PathBuf> = news()
        .iter()
        .map(|p| {
            PathBuf::from(
                p.to_string_lossy()
                    .replace("news-wmt22/ru/", "news-wmt22/en/"),
            )
        })
        .take(6)
        .collect();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    for p in &en {
        std::fs::copy(p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let home = tmp.path().join("hf");
    let flags = [
        "--task",
        "both",
        "--to",
        "ru",
        "--model",
        model.path().to_str().unwrap(),
        "--batch-docs",
        "4",
        "-j",
        "2",
    ];
    let mut input = records(&en);
    input.push_str(&json!({"id": "wrong-way", "text": ARTICLE, "to": "en"}).to_string());
    input.push('\n');
    let mut cmd = svodka();
    cmd.env("HF_HOME", &home)
        .args(["--offline", "batch", "--jsonl", "-"])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = lines(&out);
    assert_eq!(got.len(), 2 * (en.len() + 1));
    let tasks: Vec<&str> = got.iter().map(|r| r["task"].as_str().unwrap()).collect();
    assert!(
        tasks.chunks(2).all(|c| c == ["summarize", "translate"]),
        "{tasks:?}"
    );
    let last = &got[got.len() - 2..];
    assert_eq!(
        (&last[0]["status"], &last[1]["status"]),
        (&json!("done"), &json!("failed"))
    );
    assert!(
        last[1]["error"].as_str().unwrap().contains("--to en"),
        "{}",
        last[1]
    );

    // The translations `svodka batch` writes for the same files.
    let out_dir = tmp.path().join("out");
    let batch = svodka()
        .env("HF_HOME", &home)
        .args(["--offline", "--quiet", "--format", "json", "batch"])
        .arg(&dir)
        .arg("--out")
        .arg(&out_dir)
        .args(flags)
        .output()
        .unwrap();
    assert!(batch.status.success(), "{}", stderr(&batch));
    let manifest = std::fs::read_to_string(out_dir.join("manifest.jsonl")).unwrap();
    for r in got
        .iter()
        .filter(|r| r["status"] == "done" && r["id"] != "wrong-way")
    {
        let id = r["id"].as_str().unwrap();
        let stem = Path::new(id).file_stem().unwrap().to_string_lossy();
        let suffix = if r["task"] == "translate" {
            "translation"
        } else {
            "summary"
        };
        let file = out_dir.join(format!("{stem}.{suffix}.json"));
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut ours = untimed(&r["result"]);
        let mut theirs = untimed(&written);
        ours.as_object_mut().unwrap().remove("source");
        theirs.as_object_mut().unwrap().remove("source");
        assert_eq!(ours, theirs, "{id} {suffix}");
        assert!(manifest.contains(r["fingerprint"].as_str().unwrap()));
    }
}
