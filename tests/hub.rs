//! The hub layer against a local Hub-like HTTP server: downloads into a cold cache,
//! cache hits without requests, offline mode, corrupt files, HTTP errors, the token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use svodka::hub::{
    cached_status, remove, resolve, var_builder, Architecture, FetchOptions, Registry,
};

const REPO: &str = "acme/tiny-marian";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_secretTOKEN123";

/// One served file: its bytes and whether the Hub would store it with LFS.
#[derive(Clone)]
struct Served {
    data: Vec<u8>,
    lfs: bool,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Served>,
    /// Status codes forced for a file name.
    fail: HashMap<String, u16>,
    /// How many more times a file is served with flipped bytes.
    corrupt: HashMap<String, usize>,
    /// (method, url, range, authorization) of every request.
    log: Vec<(String, String, Option<String>, Option<String>)>,
    /// How a hostile or broken server misbehaves.
    hostile: Hostile,
}

/// Misbehaviours of a hostile or broken server.
#[derive(Default, Clone)]
struct Hostile {
    /// Sent as the ETag (and linked ETag) of every file.
    etag: Option<String>,
    /// Sent as X-Repo-Commit.
    commit: Option<String>,
    /// One more listed (and served) file: its name and bytes.
    extra_file: Option<(String, Vec<u8>)>,
    /// The listing never ends.
    endless_listing: bool,
    /// Downloads go on past the declared size, forever.
    endless_download: bool,
    /// The next this many requests are answered 503.
    flaky: usize,
}

/// A Hub-like server on 127.0.0.1 serving one repository at one commit.
struct FakeHub {
    url: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    fn start(files: &[(&str, Vec<u8>, bool)]) -> FakeHub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let mut state = State::default();
        for (name, data, lfs) in files {
            state.files.insert(
                name.to_string(),
                Served {
                    data: data.clone(),
                    lfs: *lfs,
                },
            );
        }
        let state = Arc::new(Mutex::new(state));
        let (s, st) = (server.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let response = handle(&st, &request);
                let _ = request.respond(response);
            }
        });
        FakeHub {
            url,
            state,
            server,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    fn log(&self) -> Vec<(String, String, Option<String>, Option<String>)> {
        self.state.lock().unwrap().log.clone()
    }

    fn fail(&self, file: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .fail
            .insert(file.to_string(), status);
    }

    fn misbehave(&self, hostile: Hostile) {
        self.state.lock().unwrap().hostile = hostile;
    }

    fn corrupt_next(&self, file: &str, times: usize) {
        self.state
            .lock()
            .unwrap()
            .corrupt
            .insert(file.to_string(), times);
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn handle(state: &Mutex<State>, request: &tiny_http::Request) -> tiny_http::ResponseBox {
    let get = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let (range, auth) = (get("Range"), get("Authorization"));
    let url = request.url().to_string();
    let mut st = state.lock().unwrap();
    st.log.push((
        request.method().to_string(),
        url.clone(),
        range.clone(),
        auth,
    ));

    if st.hostile.flaky > 0 {
        st.hostile.flaky -= 1;
        return tiny_http::Response::from_string("busy")
            .with_status_code(503)
            .boxed();
    }
    let hostile = st.hostile.clone();
    if let Some((name, data)) = &hostile.extra_file {
        st.files.insert(
            name.clone(),
            Served {
                data: data.clone(),
                lfs: true,
            },
        );
    }
    let listing_prefix = format!("/api/models/{REPO}/revision/");
    if url.starts_with(&listing_prefix) && hostile.endless_listing {
        let endless = std::io::Read::chain(&b"{\"siblings\": ["[..], std::io::repeat(b' '));
        return tiny_http::Response::new(200.into(), vec![], endless, None, None).boxed();
    }
    if url.starts_with(&listing_prefix) {
        let siblings: Vec<serde_json::Value> = st
            .files
            .iter()
            .map(|(name, f)| {
                let mut v = serde_json::json!({ "rfilename": name, "size": f.data.len() });
                if f.lfs {
                    v["lfs"] =
                        serde_json::json!({ "sha256": sha256_hex(&f.data), "size": f.data.len() });
                }
                v
            })
            .collect();
        let body =
            serde_json::json!({ "id": REPO, "sha": COMMIT, "siblings": siblings }).to_string();
        return tiny_http::Response::from_string(body)
            .with_header(header("Content-Type", "application/json"))
            .boxed();
    }
    let prefix = format!("/{REPO}/resolve/");
    let Some(rest) = url.strip_prefix(&prefix) else {
        return tiny_http::Response::from_string("no such repo")
            .with_status_code(404)
            .boxed();
    };
    let Some((_revision, file)) = rest.split_once('/') else {
        return tiny_http::Response::from_string("bad path")
            .with_status_code(400)
            .boxed();
    };
    if let Some(&code) = st.fail.get(file) {
        return tiny_http::Response::from_string("forced")
            .with_status_code(code)
            .boxed();
    }
    // A hostile listed name may have been normalised on the way (`a/../b` → `b`).
    let extra = hostile
        .extra_file
        .as_ref()
        .filter(|(name, _)| name.ends_with(url.rsplit('/').next().unwrap_or_default()));
    let served = match extra {
        Some((name, _)) => st.files.get(name).cloned(),
        None => st.files.get(file).cloned(),
    };
    let Some(served) = served else {
        return tiny_http::Response::from_string("Entry not found")
            .with_status_code(404)
            .with_header(header("X-Error-Code", "EntryNotFound"))
            .boxed();
    };
    let mut data = served.data.clone();
    // Only whole-body downloads get corrupted, not the one-byte metadata probe.
    if range.as_deref() != Some("bytes=0-0") {
        if let Some(n) = st.corrupt.get_mut(file).filter(|n| **n > 0) {
            *n -= 1;
            for b in data.iter_mut() {
                *b ^= 0xff;
            }
        }
    }
    let sha = sha256_hex(&served.data);
    let total = data.len();
    let (status, body, content_range) =
        match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(spec) => {
                let (a, b) = spec.split_once('-').unwrap();
                let start: usize = a.parse().unwrap();
                let end: usize = if b.is_empty() {
                    total - 1
                } else {
                    b.parse::<usize>().unwrap().min(total - 1)
                };
                if start >= total {
                    return tiny_http::Response::from_string("")
                        .with_status_code(416)
                        .with_header(header("Content-Range", &format!("bytes */{total}")))
                        .boxed();
                }
                (
                    206,
                    data[start..=end].to_vec(),
                    Some(format!("bytes {start}-{end}/{total}")),
                )
            }
            None => (200, data, None),
        };
    let whole_body = range.as_deref() != Some("bytes=0-0");
    let mut response = if hostile.endless_download && whole_body {
        let endless = std::io::Read::chain(std::io::Cursor::new(body), std::io::repeat(0));
        tiny_http::Response::new(
            status.into(),
            vec![],
            Box::new(endless) as Box<dyn std::io::Read + Send>,
            None,
            None,
        )
    } else {
        let len = body.len();
        tiny_http::Response::new(
            status.into(),
            vec![],
            Box::new(std::io::Cursor::new(body)) as Box<dyn std::io::Read + Send>,
            Some(len),
            None,
        )
    }
    .with_header(header(
        "X-Repo-Commit",
        hostile.commit.as_deref().unwrap_or(COMMIT),
    ))
    .with_header(header("Accept-Ranges", "bytes"));
    if let Some(etag) = &hostile.etag {
        response = response
            .with_header(header("X-Linked-Etag", etag))
            .with_header(header("ETag", etag));
    } else if served.lfs {
        response = response
            .with_header(header("X-Linked-Etag", &format!("\"{sha}\"")))
            .with_header(header("ETag", "\"cdn-etag\""));
    } else {
        response = response.with_header(header("ETag", &format!("\"{}\"", &sha[..40])));
    }
    if let Some(cr) = content_range {
        response = response.with_header(header("Content-Range", &cr));
    }
    response.boxed()
}

/// The tiny model's files: (name, bytes, stored with LFS).
fn tiny_model_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let weights =
        candle_core::Tensor::from_slice(&[1f32, 2., 3., 4.], (2, 2), &candle_core::Device::Cpu)
            .unwrap();
    let path = dir.path().join("model.safetensors");
    candle_core::safetensors::save(
        &HashMap::from([("proj.weight".to_string(), weights)]),
        &path,
    )
    .unwrap();
    vec![
        (
            "config.json",
            br#"{"model_type":"marian","d_model":2}"#.to_vec(),
            false,
        ),
        ("model.safetensors", std::fs::read(&path).unwrap(), true),
        (
            "tokenizer.json",
            br#"{"version":"1.0","model":{"type":"WordLevel"}}"#.to_vec(),
            false,
        ),
        ("README.md", b"# tiny".to_vec(), false),
    ]
}

/// A registry with `tiny` (listed files, weights sha256 known) on top of the built-in one.
fn registry_with_tiny(extra_file: Option<&str>) -> Registry {
    let files = tiny_model_files();
    let sha = sha256_hex(&files[1].1);
    let extra = extra_file
        .map(|f| format!(", {{ name = \"{f}\", role = \"other\" }}"))
        .unwrap_or_default();
    let text = format!(
        "[models.tiny]\nrepo = \"{REPO}\"\nrevision = \"main\"\narchitecture = \"marian\"\n\
         files = [{{ name = \"config.json\", role = \"config\" }}, \
         {{ name = \"model.safetensors\", role = \"weights\", sha256 = \"{sha}\" }}, \
         {{ name = \"tokenizer.json\", role = \"tokenizer\" }}{extra}]\n"
    );
    let mut r = Registry::builtin().unwrap();
    r.merge_str(&text, Path::new("test-registry.toml")).unwrap();
    r
}

fn opts(hub: &FakeHub, cache: &Path) -> FetchOptions {
    FetchOptions {
        cache_dir: Some(cache.to_path_buf()),
        offline: false,
        quiet: true,
        endpoint: Some(hub.url.clone()),
        // Failures are final here; retries have their own test.
        retries: Some(0),
        ..Default::default()
    }
}

fn blob_of(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap()
}

#[test]
fn cold_download_then_cache_hit_without_requests() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    let reg = registry_with_tiny(None);

    let files = resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    let cold = hub.requests();
    assert!(
        cold >= 3,
        "expected at least one request per file, got {cold}"
    );
    assert_eq!(files.architecture, Some(Architecture::Marian));
    assert_eq!(files.revision.as_deref(), Some("main"));
    assert!(
        files.root.ends_with(format!("snapshots/{COMMIT}")),
        "{}",
        files.root.display()
    );
    let snapshot_weights = files.get("model.safetensors").unwrap();
    assert!(snapshot_weights.starts_with(cache.path().join("models--acme--tiny-marian")));
    assert_eq!(
        std::fs::read(snapshot_weights).unwrap(),
        tiny_model_files()[1].1
    );
    assert_eq!(
        std::fs::read_to_string(cache.path().join("models--acme--tiny-marian/refs/main")).unwrap(),
        COMMIT
    );
    assert!(!files.files.contains_key("README.md"));

    // The weights load straight from the cache.
    let vb = var_builder(&files, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    assert_eq!(
        vb.get((2, 2), "proj.weight")
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        vec![vec![1., 2.], vec![3., 4.]]
    );

    let again = resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    assert_eq!(again, files);
    assert_eq!(
        hub.requests(),
        cold,
        "a warm cache must not touch the network"
    );

    let status = cached_status(reg.get("tiny").unwrap(), &opts(&hub, cache.path())).unwrap();
    assert!(status.complete);
    assert_eq!(status.commit.as_deref(), Some(COMMIT));
    assert_eq!(status.total_size, files.total_size());
    assert_eq!(status.files.len(), 3);

    let freed = remove(reg.get("tiny").unwrap(), &opts(&hub, cache.path())).unwrap();
    assert!(freed >= status.total_size);
    let status = cached_status(reg.get("tiny").unwrap(), &opts(&hub, cache.path())).unwrap();
    assert!(!status.complete && status.total_size == 0 && status.repo_dir.is_none());
}

#[test]
fn hub_id_discovers_files_from_the_listing() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    let spec = format!("{REPO}@{COMMIT}");
    let files = resolve(&spec, &Registry::default(), &opts(&hub, cache.path())).unwrap();
    let names: Vec<&str> = files.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert_eq!(
        files.architecture,
        Some(Architecture::Marian),
        "read from config.json"
    );
    assert!(hub
        .log()
        .iter()
        .any(|(_, url, _, _)| url.starts_with(&format!("/api/models/{REPO}/revision/{COMMIT}"))));

    // Pinned to a commit: found again from the snapshot alone, offline.
    let before = hub.requests();
    let offline = FetchOptions {
        offline: true,
        ..opts(&hub, cache.path())
    };
    assert_eq!(
        resolve(&spec, &Registry::default(), &offline).unwrap(),
        files
    );
    assert_eq!(hub.requests(), before);
}

#[test]
fn discover_entries_report_cache_status_and_missing_repos() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    let mut reg = Registry::builtin().unwrap();
    let text = format!(
        "[models.found]\nrepo = \"{REPO}\"\narchitecture = \"marian\"\ndiscover = true\n\
         [models.gone]\nrepo = \"acme/gone\"\narchitecture = \"marian\"\ndiscover = true\n"
    );
    reg.merge_str(&text, Path::new("t.toml")).unwrap();
    let entry = reg.get("found").unwrap();
    let status = cached_status(entry, &opts(&hub, cache.path())).unwrap();
    assert!(!status.complete && status.files.is_empty());

    let files = resolve("found", &reg, &opts(&hub, cache.path())).unwrap();
    assert_eq!(files.files.len(), 3);
    let status = cached_status(entry, &opts(&hub, cache.path())).unwrap();
    assert!(status.complete, "{status:?}");
    let names: Vec<&str> = status.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert_eq!(status.total_size, files.total_size());

    let err = resolve("gone", &reg, &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "model gone: repository acme/gone (revision main) not found on {}",
            hub.url
        )
    );
}

#[test]
fn offline_reads_the_cache_and_names_what_is_missing() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    let reg = registry_with_tiny(None);
    let offline = FetchOptions {
        offline: true,
        ..opts(&hub, cache.path())
    };

    let err = resolve("tiny", &reg, &offline).unwrap_err().to_string();
    assert!(
        err.contains("model tiny") && err.contains("config.json"),
        "{err}"
    );
    assert!(err.contains("svodka models pull tiny"), "{err}");
    assert_eq!(hub.requests(), 0);

    resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    let before = hub.requests();
    let files = resolve("tiny", &reg, &offline).unwrap();
    assert_eq!(files.files.len(), 3);
    assert_eq!(hub.requests(), before);

    // One file gone from the cache: offline names exactly that one.
    std::fs::remove_file(files.get("tokenizer.json").unwrap()).unwrap();
    let err = resolve("tiny", &reg, &offline).unwrap_err().to_string();
    assert!(
        err.contains("model tiny: tokenizer.json is not in the cache"),
        "{err}"
    );
    assert_eq!(hub.requests(), before);
}

#[test]
fn corrupt_cached_file_is_detected_and_fetched_again() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    let reg = registry_with_tiny(None);
    let files = resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    let weights = files.get("model.safetensors").unwrap().to_path_buf();
    let good = std::fs::read(&weights).unwrap();

    let mut bad = good.clone();
    bad[10] ^= 0x55;
    std::fs::write(blob_of(&weights), &bad).unwrap();

    let offline = FetchOptions {
        offline: true,
        ..opts(&hub, cache.path())
    };
    let err = resolve("tiny", &reg, &offline).unwrap_err().to_string();
    assert!(
        err.contains("corrupt") && err.contains("model.safetensors"),
        "{err}"
    );

    let before = hub.requests();
    let files = resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    assert!(
        hub.requests() > before,
        "the corrupt file must be fetched again"
    );
    assert_eq!(
        std::fs::read(files.get("model.safetensors").unwrap()).unwrap(),
        good
    );

    // A server that keeps sending bad bytes: one retry, then a clear error, no bad copy left.
    std::fs::write(blob_of(files.get("model.safetensors").unwrap()), &bad).unwrap();
    hub.corrupt_next("model.safetensors", 2);
    let err = resolve("tiny", &reg, &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed its check twice") && err.contains("sha256"),
        "{err}"
    );
    let blobs = cache.path().join("models--acme--tiny-marian/blobs");
    let sha = sha256_hex(&good);
    assert!(
        !blobs.join(&sha).exists(),
        "the corrupt download must be deleted"
    );
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let model = tiny_model_files();
    let hub = FakeHub::start(&model);
    let cache = tempfile::tempdir().unwrap();
    let reg = registry_with_tiny(None);
    let weights = &model[1].1;
    let blobs = cache.path().join("models--acme--tiny-marian/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let half = weights.len() / 2;
    std::fs::write(
        blobs.join(format!("{}.part", sha256_hex(weights))),
        &weights[..half],
    )
    .unwrap();

    let files = resolve("tiny", &reg, &opts(&hub, cache.path())).unwrap();
    assert_eq!(
        &std::fs::read(files.get("model.safetensors").unwrap()).unwrap(),
        weights
    );
    let resumed = format!("bytes={half}-");
    assert!(
        hub.log()
            .iter()
            .any(|(_, _, r, _)| r.as_deref() == Some(resumed.as_str())),
        "{:?}",
        hub.log()
    );
}

#[test]
fn http_errors_are_one_clear_line() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();

    let reg = registry_with_tiny(Some("merges.txt"));
    let err = resolve("tiny", &reg, &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "model tiny: file merges.txt not found at revision main on {}",
            hub.url
        )
    );

    let reg = registry_with_tiny(None);
    hub.fail("tokenizer.json", 503);
    let cache = tempfile::tempdir().unwrap();
    let err = resolve("tiny", &reg, &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("server error 503") && err.contains("tokenizer.json"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    hub.fail("tokenizer.json", 500);
    let err = resolve("tiny", &reg, &opts(&hub, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server error 500"), "{err}");

    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = FetchOptions {
        endpoint: Some(closed.clone()),
        ..opts(&hub, cache.path())
    };
    let err = resolve("acme/other", &Registry::default(), &unreachable)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("cannot reach {closed} (")),
        "{err}"
    );
    assert!(err.contains("acme/other") && !err.contains('\n'), "{err}");
    eprintln!("{err}");
}

/// The environment path (HF_ENDPOINT, HF_HOME, HF_TOKEN) runs in a child process so no
/// other test sees these variables.
#[test]
fn environment_endpoint_home_and_token() {
    let hub = FakeHub::start(&tiny_model_files());
    let home = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "env_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SVODKA_HUB_ENV_CHILD", "1")
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home.path())
        .env("HF_TOKEN", TOKEN)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run:\n{text}"
    );
    assert!(!text.contains(TOKEN), "token printed:\n{text}");
    assert!(home
        .path()
        .join("hub/models--acme--tiny-marian/snapshots")
        .join(COMMIT)
        .join("config.json")
        .exists());
    let log = hub.log();
    assert!(!log.is_empty());
    let expected = format!("Bearer {TOKEN}");
    assert!(
        log.iter()
            .all(|(_, _, _, auth)| auth.as_deref() == Some(expected.as_str())),
        "{log:?}"
    );
}

#[test]
#[ignore = "run by environment_endpoint_home_and_token in a child process"]
fn env_child() {
    if std::env::var_os("SVODKA_HUB_ENV_CHILD").is_none() {
        return;
    }
    let reg = registry_with_tiny(Some("missing.bin"));
    let quiet = FetchOptions {
        quiet: true,
        ..Default::default()
    };
    let err = resolve("tiny", &reg, &quiet).unwrap_err();
    let (text, debug) = (err.to_string(), format!("{err:?}"));
    assert!(text.contains("missing.bin not found"), "{text}");
    assert!(!text.contains(TOKEN) && !debug.contains(TOKEN), "{debug}");
    let files = resolve("tiny", &registry_with_tiny(None), &quiet).unwrap();
    assert_eq!(files.files.len(), 3);
}

/// The real Gemma GGUF that scripts/fetch-gemma.sh assembles, found through the registry's
/// `local` path without any network, checked against its sha256 and opened.
#[test]
fn gemma_local_copy_resolves_offline() {
    let reg = Registry::builtin().unwrap();
    let entry = reg.get("gemma-3-270m").unwrap();
    let Some(path) = entry.local_paths().into_iter().find(|p| p.is_file()) else {
        eprintln!("skipped: no local Gemma GGUF (run scripts/fetch-gemma.sh)");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let offline = FetchOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        offline: true,
        quiet: true,
        endpoint: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    };
    let files = resolve("gemma-3-270m", &reg, &offline).unwrap();
    assert_eq!(files.gguf(), Some(path.as_path()));
    assert_eq!(files.architecture, Some(Architecture::GgufLlm));
    let gguf = svodka::engine::llm::GgufFile::open(&path).unwrap();
    let arch = gguf
        .content
        .metadata
        .get("general.architecture")
        .unwrap()
        .to_string()
        .unwrap()
        .clone();
    assert_eq!(arch, "gemma3");
}

// ---------------------------------------------------------------- a hostile Hub

/// Runs `f` on a thread and fails the test when it does not finish within `secs`
/// seconds: a hang is a failure, not a stuck test run.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("still running after {secs} s"))
}

/// Every file under `root` that is not under `root/cache`.
fn escaped(root: &Path) -> Vec<PathBuf> {
    walkdir(root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("cache")))
        .collect()
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A cache three folders deep in a temp dir, so `../` sequences that climb out of the
/// repository's cache folder still land inside the temp dir, where `escaped` sees them.
fn deep_cache() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache/a/b/c");
    std::fs::create_dir_all(&cache).unwrap();
    (root, cache)
}

fn resolve_within(
    secs: u64,
    spec: &str,
    reg: &Registry,
    opts: FetchOptions,
) -> Result<svodka::hub::ModelFiles, String> {
    let (spec, reg) = (spec.to_string(), reg.clone());
    within(secs, move || {
        resolve(&spec, &reg, &opts).map_err(|e| e.to_string())
    })
}

#[test]
fn hostile_etag_never_becomes_a_path() {
    let hub = FakeHub::start(&tiny_model_files());
    let (root, cache) = deep_cache();
    for etag in [
        "\"../../../../../../etag-escaped\"",
        "\"/tmp/x\"",
        "\"cdn-etag\"",
    ] {
        hub.misbehave(Hostile {
            etag: Some(etag.into()),
            ..Default::default()
        });
        let err =
            resolve_within(60, "tiny", &registry_with_tiny(None), opts(&hub, &cache)).unwrap_err();
        assert!(
            err.contains("is not a usable Hub endpoint") && err.contains("ETag"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
    assert_eq!(escaped(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn hostile_commit_never_becomes_a_path() {
    let hub = FakeHub::start(&tiny_model_files());
    let (root, cache) = deep_cache();
    hub.misbehave(Hostile {
        commit: Some("../../../../../../commit-escaped".into()),
        ..Default::default()
    });
    let err =
        resolve_within(60, "tiny", &registry_with_tiny(None), opts(&hub, &cache)).unwrap_err();
    assert!(err.contains("X-Repo-Commit"), "{err}");
    assert_eq!(escaped(root.path()), Vec::<PathBuf>::new());
    assert!(!cache.join("models--acme--tiny-marian/refs").exists());
}

#[test]
fn hostile_file_names_in_a_listing_are_refused() {
    let (root, cache) = deep_cache();
    for name in [
        "../../../../../../listing-escaped-Q4_K_M.gguf",
        "/tmp/abs-Q4_K_M.gguf",
        "sub\\..\\..\\x-Q4_K_M.gguf",
        "a//b-Q4_K_M.gguf",
    ] {
        let hub = FakeHub::start(&tiny_model_files());
        hub.misbehave(Hostile {
            extra_file: Some((name.into(), b"GGUF".to_vec())),
            ..Default::default()
        });
        let err = resolve_within(60, REPO, &Registry::default(), opts(&hub, &cache)).unwrap_err();
        assert!(
            err.contains("file listing") && err.contains(&format!("{name:?}")),
            "{err}"
        );
    }
    assert_eq!(escaped(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn revisions_with_dot_dot_are_refused_online_and_offline() {
    let hub = FakeHub::start(&tiny_model_files());
    let (root, cache) = deep_cache();
    // Offline, a ref file outside the cache must not be read as the commit.
    std::fs::write(root.path().join("cache/planted"), COMMIT).unwrap();
    for spec in [
        format!("{REPO}@../../../../../../rev-escaped"),
        format!("{REPO}@../../../planted"),
        format!("{REPO}@refs/../../x"),
        format!("{REPO}@main/"),
    ] {
        for offline in [false, true] {
            let o = FetchOptions {
                offline,
                ..opts(&hub, &cache)
            };
            let err = resolve_within(60, &spec, &Registry::default(), o).unwrap_err();
            assert!(err.contains("is not a branch, tag or commit"), "{err}");
        }
    }
    assert_eq!(hub.requests(), 0);
    let outside: Vec<PathBuf> = escaped(root.path());
    assert_eq!(outside, Vec::<PathBuf>::new());

    let mut reg = Registry::default();
    let err = reg
        .merge_str(
            &format!("[models.x]\nrepo = \"{REPO}\"\nrevision = \"../x\"\narchitecture = \"marian\"\ndiscover = true\n"),
            Path::new("r.toml"),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("r.toml") && err.contains("not a branch, tag or commit"),
        "{err}"
    );
}

/// A server that accepts connections and never answers.
fn silent_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    });
    (url, thread)
}

#[test]
fn a_server_that_never_answers_times_out() {
    let (url, _thread) = silent_server();
    let cache = tempfile::tempdir().unwrap();
    let o = FetchOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        quiet: true,
        endpoint: Some(url.clone()),
        timeout: Some(std::time::Duration::from_millis(500)),
        retries: Some(1),
        ..Default::default()
    };
    let err = resolve_within(30, "acme/silent", &Registry::default(), o.clone()).unwrap_err();
    assert!(
        err.contains(&format!("no answer from {url} within 0.5 s")) && err.contains("1 retries"),
        "{err}"
    );
    let err = resolve_within(30, "tiny", &registry_with_tiny(None), o).unwrap_err();
    assert!(
        err.contains("no answer") && err.contains("config.json"),
        "{err}"
    );
}

/// The binary itself, with the timeout and retries from the environment: `models pull`
/// and `summarize --model` end with one line and exit 2.
#[test]
fn the_binary_gives_up_on_a_silent_hub() {
    let (url, _thread) = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let article = dir.path().join("a.txt");
    std::fs::write(
        &article,
        "Заголовок\n\nПервое предложение. Второе предложение.\n",
    )
    .unwrap();
    let article = article.display().to_string();
    for args in [
        vec!["models", "pull", "acme/silent"],
        vec!["summarize", "--model", "acme/silent@main", article.as_str()],
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_svodka"));
        cmd.args(&args)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .env("HF_ENDPOINT", &url)
            .env("SVODKA_HUB_TIMEOUT_SECS", "0.5")
            .env("SVODKA_HUB_RETRIES", "0")
            .env_remove("HF_HUB_OFFLINE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = within(60, move || cmd.output().unwrap());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("no answer from"), "{args:?}: {err}");
    }
}

#[test]
fn an_endless_listing_is_cut_off() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    hub.misbehave(Hostile {
        endless_listing: true,
        ..Default::default()
    });
    let err =
        resolve_within(120, REPO, &Registry::default(), opts(&hub, cache.path())).unwrap_err();
    assert!(err.contains("file listing is larger than 32 MiB"), "{err}");
}

#[test]
fn a_download_longer_than_declared_is_cut_off() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    hub.misbehave(Hostile {
        endless_download: true,
        ..Default::default()
    });
    let err = resolve_within(
        60,
        "tiny",
        &registry_with_tiny(None),
        opts(&hub, cache.path()),
    )
    .unwrap_err();
    assert!(err.contains("sent more than the"), "{err}");
    // Nothing larger than the declared file stays behind.
    let largest = walkdir(cache.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .max()
        .unwrap_or(0);
    assert!(largest <= 1024, "{largest}");
}

#[test]
fn transient_server_errors_are_retried() {
    let hub = FakeHub::start(&tiny_model_files());
    let cache = tempfile::tempdir().unwrap();
    hub.misbehave(Hostile {
        flaky: 2,
        ..Default::default()
    });
    let o = FetchOptions {
        retries: Some(2),
        ..opts(&hub, cache.path())
    };
    let files = resolve_within(60, "tiny", &registry_with_tiny(None), o).unwrap();
    assert_eq!(files.files.len(), 3);

    hub.misbehave(Hostile {
        flaky: 2,
        ..Default::default()
    });
    let cold = tempfile::tempdir().unwrap();
    let o = FetchOptions {
        retries: Some(1),
        ..opts(&hub, cold.path())
    };
    let err = resolve_within(60, "tiny", &registry_with_tiny(None), o).unwrap_err();
    assert!(err.contains("server error 503"), "{err}");
}
