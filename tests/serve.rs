//! `svodka serve` end to end: the real binary on a free port with a tiny random Marian
//! model (its translations are gibberish, so the tests check the protocol, the
//! batching and the errors, and compare with the CLI where the answer must match).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// A running server, stopped (SIGTERM, then kill) when dropped.
struct Server {
    child: Child,
    url: String,
    _home: TempDir,
    log: Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `svodka --offline serve --port 0 -m MODEL ARGS` and waits for its startup
    /// line.
    fn start(model: &Path, args: &[&str]) -> Server {
        let home = TempDir::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_svodka"))
            .env("HF_HOME", home.path())
            .env_remove("SVODKA_REGISTRY")
            .env_remove("SVODKA_API_KEY")
            .args(["--offline", "serve", "--port", "0", "-m"])
            .arg(model)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("svodka: serving on ") {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no startup line; log:\n{}", log.lock().unwrap()));
        Server {
            child,
            url,
            _home: home,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

/// Status, `Retry-After` and body of an answer, whatever its status.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, String) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let retry = resp.header("Retry-After").map(str::to_string);
    (status, retry, resp.into_string().unwrap())
}

fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let (s, _, text) = answer(
        agent()
            .post(url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    );
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get(url: &str) -> (u16, String) {
    let (s, _, text) = answer(agent().get(url).call());
    (s, text)
}

fn model() -> TempDir {
    common::tiny_marian_dir("base")
}

fn article(name: &str) -> String {
    std::fs::read_to_string(common::fixture(&format!("articles/{name}"))).unwrap()
}

const RU: &str = "Президент Белоруссии Александр Лукашенко провёл совещание в Минске.";

#[test]
fn libretranslate_endpoints_answer_as_libretranslate_does() {
    let m = model();
    let s = Server::start(m.path(), &[]);

    let (st, body) = get(&s.url("/languages"));
    assert_eq!(st, 200);
    let langs: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        langs,
        json!([
            {"code": "en", "name": "English", "targets": ["ru"]},
            {"code": "ru", "name": "Russian", "targets": ["en"]}
        ])
    );
    let (st, body) = get(&s.url("/frontend/settings"));
    assert_eq!(st, 200);
    let settings: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(settings["apiKeys"], json!(false));
    assert_eq!(settings["language"]["source"]["code"], json!("auto"));

    // One text, JSON, with detection.
    let (st, v) = post_json(
        &s.url("/translate"),
        &json!({"q": RU, "source": "auto", "target": "en"}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["translatedText"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(v["detectedLanguage"]["language"], json!("ru"));
    assert!(v["detectedLanguage"]["confidence"].as_f64().unwrap() > 50.0);

    // An array: one answer per text, in order; explicit source: no detectedLanguage.
    let texts = [
        RU,
        "Второе предложение.",
        "Третье, самое длинное предложение из всех трёх.",
    ];
    let (st, v) = post_json(
        &s.url("/translate"),
        &json!({"q": texts, "source": "ru", "target": "en"}),
    );
    assert_eq!(st, 200, "{v}");
    let out = v["translatedText"].as_array().unwrap();
    assert_eq!(out.len(), 3);
    assert!(v.get("detectedLanguage").is_none());
    // Each text translates as it does alone (batch-invariant decoding).
    for (t, o) in texts.iter().zip(out) {
        let (_, alone) = post_json(
            &s.url("/translate"),
            &json!({"q": t, "source": "ru", "target": "en"}),
        );
        assert_eq!(&alone["translatedText"], o);
    }

    // Line breaks and blank lines come back where they were.
    let (_, v) = post_json(
        &s.url("/translate"),
        &json!({"q": "Первая строка.\nВторая строка.\n\nТретья.", "source": "ru", "target": "en"}),
    );
    let t = v["translatedText"].as_str().unwrap();
    let shape: Vec<bool> = t.split('\n').map(|l| l.trim().is_empty()).collect();
    assert_eq!(shape, [false, false, true, false], "{t:?}");

    // A form body, and parameters in the query string (deep-translator's way).
    let (st, _, text) = answer(agent().post(&s.url("/translate")).send_form(&[
        ("q", RU),
        ("source", "ru"),
        ("target", "en"),
    ]));
    assert_eq!(st, 200, "{text}");
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/translate"))
            .query("q", "The minister met the press.")
            .query("source", "en")
            .query("target", "ru")
            .call(),
    );
    assert_eq!(st, 200, "{text}");
    assert!(serde_json::from_str::<Value>(&text).unwrap()["translatedText"].is_string());

    // Already in the target language: returned as it is.
    let (_, v) = post_json(
        &s.url("/translate"),
        &json!({"q": "The minister met the press today.", "source": "auto", "target": "en"}),
    );
    assert_eq!(
        v["translatedText"],
        json!("The minister met the press today.")
    );

    // HTML keeps its markup.
    let (st, v) = post_json(
        &s.url("/translate"),
        &json!({"q": "<p>Министр <b>встретился</b> с <a href=\"https://ex.com/\">прессой</a>.</p>", "source": "ru", "target": "en", "format": "html"}),
    );
    assert_eq!(st, 200, "{v}");
    let html = v["translatedText"].as_str().unwrap();
    assert!(html.starts_with("<p>") && html.ends_with("</p>"), "{html}");

    // Detection.
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/detect"))
            .send_form(&[("q", "Это предложение написано на русском языке.")]),
    );
    assert_eq!(st, 200);
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d[0]["language"], json!("ru"));
}

#[test]
fn bad_requests_get_libretranslate_errors() {
    let m = model();
    let s = Server::start(m.path(), &["--max-body", "64K"]);
    let cases: Vec<(&str, u16, &str)> = vec![
        (
            r#"{"q": "Привет", "source": "ru""#,
            400,
            "Invalid JSON format",
        ),
        (r#"["q"]"#, 400, "Invalid JSON format"),
        (
            r#"{"source": "ru", "target": "en"}"#,
            400,
            "Invalid request: missing q parameter",
        ),
        (
            r#"{"q": "Hi", "target": "en"}"#,
            400,
            "Invalid request: missing source parameter",
        ),
        (
            r#"{"q": "Hi", "source": "en"}"#,
            400,
            "Invalid request: missing target parameter",
        ),
        (
            r#"{"q": "Hi", "source": "de", "target": "en"}"#,
            400,
            "de is not supported",
        ),
        (
            r#"{"q": "Hi", "source": "en", "target": "xx"}"#,
            400,
            "xx is not supported",
        ),
        (
            r#"{"q": "Hi", "source": "en", "target": "ru", "format": "pdf"}"#,
            400,
            "pdf format is not supported",
        ),
        (
            r#"{"q": [1, 2], "source": "en", "target": "ru"}"#,
            400,
            "Invalid request",
        ),
    ];
    for (body, status, message) in cases {
        let (st, _, text) = answer(
            agent()
                .post(&s.url("/translate"))
                .set("Content-Type", "application/json")
                .send_string(body),
        );
        assert_eq!(st, status, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["error"].as_str().unwrap().starts_with(message),
            "{body}: {text}"
        );
    }
    // Over the body limit: 413, before the body is read into memory.
    let big = json!({"q": "слово ".repeat(20_000), "source": "ru", "target": "en"}).to_string();
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/translate"))
            .set("Content-Type", "application/json")
            .send_string(&big),
    );
    assert_eq!(st, 413, "{text}");
    assert!(text.contains("\"error\""));
    // Unknown paths are JSON 404s; the server is still fine after all that.
    assert_eq!(get(&s.url("/nope")).0, 404);
    assert_eq!(get(&s.url("/health")).0, 200);
}

#[test]
fn an_api_key_is_required_when_set() {
    let m = model();
    let s = Server::start(m.path(), &["--api-key", "s3cret"]);
    let url = s.url("/translate");
    let body = |key: Option<&str>| {
        let mut v = json!({"q": RU, "source": "ru", "target": "en"});
        if let Some(k) = key {
            v["api_key"] = json!(k);
        }
        v
    };
    let (st, v) = post_json(&url, &body(None));
    assert_eq!(st, 403);
    assert!(v["error"].is_string());
    let (st, v) = post_json(&url, &body(Some("wrong")));
    assert_eq!((st, v["error"].as_str()), (403, Some("Invalid API key")));
    assert_eq!(post_json(&url, &body(Some("s3cret"))).0, 200);
    // A bearer token works for svodka's own API; metrics need the key too.
    let (st, _, _) = answer(
        agent()
            .post(&s.url("/v1/translate"))
            .set("Authorization", "Bearer s3cret")
            .set("Content-Type", "application/json")
            .send_string(&json!({"text": RU, "to": "en"}).to_string()),
    );
    assert_eq!(st, 200);
    assert_eq!(get(&s.url("/metrics")).0, 403);
    assert_eq!(get(&s.url("/metrics?api_key=s3cret")).0, 200);
    assert_eq!(get(&s.url("/health")).0, 200);
    let (_, settings) = get(&s.url("/frontend/settings"));
    assert!(settings.contains("\"keyRequired\":true"));
}

/// `svodka ARGS` with the same model and a fresh HF_HOME; stdout as JSON.
fn cli_json(args: &[&str], model: &Path, input: &Path) -> Value {
    let home = TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svodka"))
        .env("HF_HOME", home.path())
        .env_remove("SVODKA_REGISTRY")
        .args(["--offline", "--format", "json"])
        .args(args)
        .arg("-m")
        .arg(model)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `v` without what differs between two runs of the same work (timings).
fn without_timings(mut v: Value) -> Value {
    if let Some(s) = v.get_mut("stats").and_then(Value::as_object_mut) {
        s.remove("elapsed_ms");
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("elapsed_ms");
    }
    v
}

#[test]
fn own_api_answers_what_the_cli_prints() {
    let m = model();
    let s = Server::start(m.path(), &[]);
    let dir = TempDir::new().unwrap();
    let text = article("wmt22-ru-lenta.ru.89832.txt");
    let input: PathBuf = dir.path().join("article.txt");
    std::fs::write(&input, &text).unwrap();

    let (st, served) = post_json(
        &s.url("/v1/translate"),
        &json!({"text": text, "to": "en", "name": "article.txt", "input_format": "text"}),
    );
    assert_eq!(st, 200, "{served}");
    let cli = cli_json(&["translate", "--to", "en"], m.path(), &input);
    let mut cli = without_timings(cli);
    cli["source"] = json!("article.txt");
    assert_eq!(without_timings(served), cli);

    let seed = article("seed-article.txt");
    let input = dir.path().join("seed.txt");
    std::fs::write(&input, &seed).unwrap();
    let (st, served) = post_json(
        &s.url("/v1/summarize"),
        &json!({"text": seed, "sentences": 2, "name": "seed.txt"}),
    );
    assert_eq!(st, 200, "{served}");
    // The summary is extractive: the CLI's, with the same model flag ignored.
    let home = TempDir::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svodka"))
        .env("HF_HOME", home.path())
        .args([
            "--offline",
            "--format",
            "json",
            "summarize",
            "--engine",
            "extractive",
            "-n",
            "2",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut cli = without_timings(cli);
    cli["source"] = json!("seed.txt");
    assert_eq!(without_timings(served), cli);

    // The options are checked as the CLI checks its flags.
    let (st, v) = post_json(&s.url("/v1/translate"), &json!({"text": text, "to": "de"}));
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("de is not supported"))
    );
    let (st, _) = post_json(
        &s.url("/v1/summarize"),
        &json!({"text": seed, "sentences": 0}),
    );
    assert_eq!(st, 400);
    let (st, v) = post_json(&s.url("/v1/summarize"), &json!({"text": "   "}));
    assert_eq!(st, 400, "{v}");
}

/// A multipart body with `fields` and one file.
fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "svodka-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        file.0
    )
    .unwrap();
    body.extend_from_slice(file.1);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn files_are_translated_with_their_structure() {
    let m = model();
    let s = Server::start(m.path(), &[]);
    let md = "# Заголовок статьи\n\nПервый абзац с [ссылкой](https://example.com/a) внутри.\n\n- Первый пункт списка.\n- Второй пункт списка.\n\n> Цитата из источника.\n";
    let (ct, body) = multipart(
        &[("source", "auto"), ("target", "en")],
        ("статья.md", md.as_bytes()),
    );
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/translate_file"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(st, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let link = v["translatedFileUrl"].as_str().unwrap();
    assert!(link.starts_with(&s.url("/download_file/")), "{link}");
    let resp = agent().get(link).call().unwrap();
    assert!(resp
        .header("Content-Disposition")
        .unwrap()
        .contains("filename=\"translated.md\""));
    let out = resp.into_string().unwrap();
    // The Markdown structure survives: headline, link URL, two list items, a quote.
    assert!(out.starts_with("# "), "{out}");
    assert!(out.contains("(https://example.com/a)"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("- ")).count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("> ")).count(),
        1,
        "{out}"
    );

    // Unsupported formats, a missing target, and names that try to leave the store.
    let (ct, body) = multipart(&[("source", "ru"), ("target", "en")], ("a.pdf", b"%PDF"));
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/translate_file"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("file format not supported"));
    let (ct, body) = multipart(&[("source", "ru")], ("a.txt", "Текст.".as_bytes()));
    let (st, _, text) = answer(
        agent()
            .post(&s.url("/translate_file"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(st, 400);
    assert!(text.contains("missing target parameter"));
    assert_eq!(get(&s.url("/download_file/..%2F..%2Fetc%2Fpasswd")).0, 400);
    assert_eq!(
        get(&s.url("/download_file/0123456789abcdef.gone.txt")).0,
        404
    );
}

#[test]
fn concurrent_requests_share_rounds_and_get_their_own_answers() {
    let m = model();
    // A long gathering window makes the sharing certain rather than likely.
    let s = Server::start(m.path(), &["--gather-ms", "300"]);
    let sentences: Vec<String> = (0..12)
        .map(|i| format!("Это предложение номер {i} о погоде в Москве."))
        .collect();
    let barrier = Arc::new(Barrier::new(sentences.len()));
    let url = s.url("/translate");
    let handles: Vec<_> = sentences
        .iter()
        .cloned()
        .map(|q| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post_json(&url, &json!({"q": q, "source": "ru", "target": "en"}))
            })
        })
        .collect();
    let together: Vec<Value> = handles
        .into_iter()
        .map(|h| {
            let (st, v) = h.join().unwrap();
            assert_eq!(st, 200, "{v}");
            v["translatedText"].clone()
        })
        .collect();
    let (_, metrics) = get(&s.url("/metrics"));
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(counter("svodka_round_requests_total"), 12.0);
    assert!(counter("svodka_rounds_total") < 12.0, "{metrics}");
    assert!(counter("svodka_batch_rows_total") / counter("svodka_batches_total") > 1.0);
    assert!(metrics.contains("svodka_requests_total{route=\"/translate\",status=\"200\"} 12"));
    // Sharing a batch changed nothing: each equals its translation alone.
    for (q, t) in sentences.iter().zip(&together) {
        let (_, alone) = post_json(&url, &json!({"q": q, "source": "ru", "target": "en"}));
        assert_eq!(&alone["translatedText"], t);
    }
}

#[test]
fn a_full_queue_answers_503_at_once_and_a_vanished_client_costs_nothing() {
    let m = model();
    let s = Server::start(
        m.path(),
        &[
            "--queue",
            "1",
            "--batch-requests",
            "1",
            "--debug-round-delay-ms",
            "1500",
        ],
    );
    let url = s.url("/translate");
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let (st, retry, _) = answer(
                    agent()
                        .post(&url)
                        .set("Content-Type", "application/json")
                        .send_string(
                        &json!({"q": format!("Предложение {i}."), "source": "ru", "target": "en"})
                            .to_string(),
                    ),
                );
                (st, retry, start.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(!busy.is_empty(), "{results:?}");
    for r in &busy {
        assert_eq!(r.1.as_deref(), Some("1"));
        assert!(
            r.2 < Duration::from_millis(1000),
            "503 was not at once: {r:?}"
        );
    }
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 503),
        "{results:?}"
    );
    assert!(results.iter().any(|r| r.0 == 200), "{results:?}");

    // A client that sends a request and goes away: the others are served.
    {
        let addr = s.url.trim_start_matches("http://").to_string();
        let mut tcp = TcpStream::connect(&addr).unwrap();
        let body = json!({"q": "Брошенный запрос.", "source": "ru", "target": "en"}).to_string();
        write!(
            tcp,
            "POST /translate HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let (st, v) = post_json(&url, &json!({"q": RU, "source": "ru", "target": "en"}));
    assert!(st == 200 || st == 503, "{st} {v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, _) = post_json(&url, &json!({"q": RU, "source": "ru", "target": "en"}));
        if st == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigterm_finishes_the_requests_in_flight() {
    let m = model();
    let mut s = Server::start(m.path(), &["--debug-round-delay-ms", "1500"]);
    let url = s.url("/v1/translate");
    let inflight = std::thread::spawn(move || post_json(&url, &json!({"text": RU, "to": "en"})));
    std::thread::sleep(Duration::from_millis(400));
    let status = s.terminate();
    let (st, v) = inflight.join().unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["segments"].as_array().map(Vec::len), Some(1));
    assert!(status.success(), "{status:?}");
    let log = s.log.lock().unwrap().clone();
    assert!(log.contains("svodka: stopping"), "{log}");
}

#[test]
fn the_page_works_without_javascript() {
    let m = model();
    let s = Server::start(m.path(), &[]);
    let (st, page) = get(&s.url("/"));
    assert_eq!(st, 200);
    assert!(page.contains("<meta name=\"viewport\""));
    assert!(page.contains("<form id=\"form\" method=\"post\" action=\"/ui\""));
    let (st, js) = get(&s.url("/static/app.js"));
    assert_eq!(st, 200);
    assert!(js.contains("fetch(\"/ui?fragment=1\""));

    // A plain form post, as a browser without JavaScript sends it.
    let seed = article("seed-article.txt");
    let (st, _, html) = answer(agent().post(&s.url("/ui")).send_form(&[
        ("task", "summarize"),
        ("sentences", "2"),
        ("text", &seed),
    ]));
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("<table class=\"side-by-side\">"));
    assert!(html.contains("id=\"download\""));
    let (st, _, html) = answer(agent().post(&s.url("/ui?fragment=1")).send_form(&[
        ("task", "translate"),
        ("to", "en"),
        ("text", RU),
    ]));
    assert_eq!(st, 200, "{html}");
    assert!(!html.contains("<form"), "a fragment is the result alone");
    assert!(html.contains("Президент Белоруссии"));
    // Errors show on the page with the request's status; text is escaped.
    let (st, _, html) = answer(agent().post(&s.url("/ui")).send_form(&[
        ("task", "translate"),
        ("to", "de"),
        ("text", "<script>alert(1)</script> Привет"),
    ]));
    assert_eq!(st, 400);
    assert!(html.contains("class=\"error\""));
    assert!(!html.contains("<script>alert(1)"));
}

#[test]
fn startup_refuses_bad_settings_before_loading() {
    let home = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_svodka"))
            .env("HF_HOME", home.path())
            .args(["--offline", "serve", "--port", "0"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--summary-engine", "extractive", "--summary-model", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--summary-model has no meaning"));
    let out = run(&["--engine", "llm", "-m", "a.gguf", "-m", "b.gguf"]);
    assert_eq!(out.status.code(), Some(2));
    // Two models for one direction, and a model for no direction svodka serves.
    let out = run(&["-m", "opus-mt-en-ru", "-m", "opus-mt-tc-big-en-zle"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("both translate en-ru"), "{err}");
    let out = run(&["-m", "qwen2.5-1.5b-instruct"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a Marian translation model"), "{err}");
    // A port already taken is one clear line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let m = model();
    let out = Command::new(env!("CARGO_BIN_EXE_svodka"))
        .env("HF_HOME", home.path())
        .args(["--offline", "serve", "--port", &port, "-m"])
        .arg(m.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}
