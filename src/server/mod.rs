//! `svodka serve`: a local HTTP server with LibreTranslate's API, svodka's own JSON API
//! and a web page, on axum and tokio.
//!
//! Models never run on the async threads: each is owned by a thread of its own
//! ([`workers`]) fed by a bounded queue, and handlers await the answer. The translation
//! thread takes the requests that are waiting together, so the sentences of many clients
//! share model batches through the same [`translate_all`](crate::pipeline::translate::translate_all)
//! as `svodka translate` and `svodka batch`.

mod api;
pub mod html;
mod libre;
pub mod metrics;
mod page;
mod request;
pub mod workers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::article::Lang;
use crate::engine::SummaryOptions;
use crate::pipeline::translate::TranslateOptions;
use crate::{Error, Result};
use metrics::Metrics;
use request::ApiError;
use workers::{Gathering, SummaryEngine, SummaryLane, TranslateLane};

/// How the server runs (from `svodka serve`'s flags).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub host: String,
    /// Port (0 picks a free one; the startup line names it).
    pub port: u16,
    /// Key every API request must carry, when set.
    pub api_key: Option<String>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body: usize,
    /// Jobs each model queue holds before answering 503.
    pub queue: usize,
    /// How translation rounds gather requests.
    pub gathering: Gathering,
    /// Translation settings every request starts from (batch budget, decoding, retry).
    pub translate: TranslateOptions,
    /// Summary settings every request starts from (generation, style).
    pub summary: SummaryOptions,
    /// Where the models run, for the startup line.
    pub device: String,
}

/// A translation model to serve and the pairs it serves.
pub struct TranslationModel {
    /// The engine.
    pub engine: Box<dyn crate::engine::Translator + Send>,
    /// Name (and revision) for the startup line.
    pub name: String,
    /// Pairs (from, to) it translates.
    pub pairs: Vec<(Lang, Lang)>,
}

/// Translated files kept for `GET /download_file/...`: the newest, within bounds.
#[derive(Default)]
struct FileStore {
    files: std::collections::VecDeque<StoredFile>,
    bytes: usize,
}

struct StoredFile {
    name: String,
    content_type: &'static str,
    body: Vec<u8>,
}

/// Most translated files kept, and their total size.
const STORED_FILES: usize = 64;
const STORED_BYTES: usize = 64 << 20;

impl FileStore {
    fn put(&mut self, file: StoredFile) {
        self.bytes += file.body.len();
        self.files.push_back(file);
        while self.files.len() > STORED_FILES || self.bytes > STORED_BYTES {
            match self.files.pop_front() {
                Some(f) => self.bytes -= f.body.len(),
                None => break,
            }
        }
    }

    fn get(&self, name: &str) -> Option<(&'static str, Vec<u8>)> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.content_type, f.body.clone()))
    }
}

/// What every handler shares.
struct AppState {
    config: ServeConfig,
    lanes: Vec<TranslateLane>,
    summary: SummaryLane,
    metrics: Arc<Metrics>,
    files: Mutex<FileStore>,
    /// Distinguishes stored file names made in the same instant.
    counter: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// The lane translating `from` → `to`.
    fn lane(&self, from: Lang, to: Lang) -> Option<&TranslateLane> {
        self.lanes.iter().find(|l| l.pairs.contains(&(from, to)))
    }

    /// Every pair served, in a stable order.
    fn pairs(&self) -> Vec<(Lang, Lang)> {
        let mut pairs: Vec<(Lang, Lang)> =
            self.lanes.iter().flat_map(|l| l.pairs.clone()).collect();
        pairs.sort_by_key(|(f, t)| (f.code(), t.code()));
        pairs.dedup();
        pairs
    }

    /// Refuses a request without the server's key (when it has one), comparing in time
    /// that does not depend on where the keys differ.
    fn check_key(&self, given: Option<&str>) -> std::result::Result<(), ApiError> {
        let Some(key) = &self.config.api_key else {
            return Ok(());
        };
        match given {
            Some(g) if same_secret(g, key) => Ok(()),
            Some(_) => Err(ApiError::new(403, "Invalid API key")),
            None => Err(ApiError::new(
                403,
                "Please contact the server operator to get an API key",
            )),
        }
    }
}

/// Constant-time equality of two secrets: both are hashed first, so neither the
/// position of the first difference nor the key's length shows in the timing.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Starts the model threads, listens, and serves until SIGTERM or Ctrl-C, then finishes
/// the requests in flight and returns.
pub fn serve(
    config: ServeConfig,
    translation: Vec<TranslationModel>,
    summary: SummaryEngine,
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let lanes: Vec<TranslateLane> = translation
        .into_iter()
        .map(|m| {
            TranslateLane::start(
                m.engine,
                m.name,
                m.pairs,
                config.queue,
                config.gathering,
                metrics.clone(),
            )
        })
        .collect();
    let summary = SummaryLane::start(summary, config.queue, metrics.clone());
    let state = Arc::new(AppState {
        config,
        lanes,
        summary,
        metrics,
        files: Mutex::new(FileStore::default()),
        counter: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Unsupported(format!("cannot start the server runtime: {e}")))?;
    let result = runtime.block_on(run(state.clone()));
    drop(runtime);
    // The last reference: dropping it closes the queues and joins the model threads.
    drop(state);
    result
}

async fn run(state: Arc<AppState>) -> Result<()> {
    let addr = format!("{}:{}", state.config.host, state.config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::Unsupported(format!("cannot listen on {addr}: {e}")))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::Unsupported(format!("cannot listen on {addr}: {e}")))?;
    eprintln!("svodka: serving on http://{local} ({})", describe(&state));
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await
        .map_err(|e| Error::Unsupported(format!("server failed: {e}")))?;
    eprintln!("svodka: stopped; requests in flight were answered");
    Ok(())
}

/// The startup line's account of models and device.
fn describe(state: &AppState) -> String {
    let mut parts: Vec<String> = state
        .lanes
        .iter()
        .map(|l| {
            let pairs: Vec<String> = l.pairs.iter().map(|(f, t)| format!("{f}→{t}")).collect();
            format!("translation {} {}", l.model, pairs.join(" "))
        })
        .collect();
    parts.push(match &state.summary.model {
        Some(m) => format!("summaries {} {m}", state.summary.engine),
        None => format!("summaries {}", state.summary.engine),
    });
    parts.push(format!("device {}", state.config.device));
    if state.config.api_key.is_some() {
        parts.push("API key required".into());
    }
    parts.join("; ")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("svodka: stopping: answering the requests in flight");
}

fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.max_body;
    Router::new()
        .route("/", get(page::index))
        .route("/static/app.js", get(page::script))
        .route("/static/style.css", get(page::style))
        .route("/ui", post(page::ui))
        .route("/translate", post(libre::translate))
        .route("/detect", post(libre::detect))
        .route("/languages", get(libre::languages))
        .route("/frontend/settings", get(libre::settings))
        .route("/translate_file", post(libre::translate_file))
        .route("/download_file/{name}", get(libre::download_file))
        .route("/v1/translate", post(api::translate))
        .route("/v1/summarize", post(api::summarize))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .fallback(|| async { ApiError::new(404, "Not found") })
        // Bodies are read with their own limit (413 with a JSON error); this one is the
        // multipart reader's.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every answer by route and status, and the requests in flight.
async fn count(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    state.metrics.in_flight(1);
    let response = next.run(req).await;
    state.metrics.in_flight(-1);
    state.metrics.answered(&route, response.status().as_u16());
    response
}
