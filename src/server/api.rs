//! svodka's own endpoints: `POST /v1/translate` and `POST /v1/summarize` take an
//! article (text, Markdown or HTML) with the CLI's options and answer exactly what
//! `svodka translate|summarize --format json` prints; `GET /health`; `GET /metrics`.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::libre::{options, translate_items};
use super::request::{language, other, request_params, ApiError, Params};
use super::workers::{Refused, SummaryJob};
use super::AppState;
use crate::article::read::{self, Format, ReadOptions};
use crate::article::Article;
use crate::engine::{SummaryOptions, SummaryStyle};
use crate::output;
use crate::pipeline::summarize::SummaryReport;
use crate::pipeline::translate::{default_decode, TranslationReport};

type Shared = State<Arc<AppState>>;

/// The name results carry as their `source`: the request's `name`, else "request".
pub(super) fn source_name(params: &Params) -> String {
    params
        .text("name")
        .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
        .unwrap_or_else(|| "request".to_string())
}

/// The article in `text`, read as `input_format` (auto, text, markdown, html) says.
pub(super) fn article(params: &Params, name: &str, limit: usize) -> Result<Article, ApiError> {
    let text = params
        .text("text")
        .ok_or_else(|| ApiError::new(400, "Invalid request: missing text parameter"))?;
    let format = match params.text("input_format").as_deref() {
        None | Some("auto") => None,
        Some("text") => Some(Format::Text),
        Some("markdown") => Some(Format::Markdown),
        Some("html") => Some(Format::Html),
        Some(other) => {
            return Err(ApiError::new(
                400,
                format!(
                    "Invalid request: input_format {other:?} is not auto, text, markdown or html"
                ),
            ))
        }
    };
    let opts = ReadOptions {
        encoding: Some(encoding_rs::UTF_8),
        format,
        max_size: limit as u64,
    };
    read::read_bytes(text.as_bytes(), Path::new(name), &opts)
        .map_err(|e| ApiError::new(400, e.to_string()))
}

/// Translates the article of `params` (`to`, `from`, `beam`, `retry`).
pub(super) async fn translate_article(
    state: &AppState,
    params: &Params,
    article: Article,
) -> Result<TranslationReport, ApiError> {
    let to = language(
        &params
            .text("to")
            .ok_or_else(|| ApiError::new(400, "Invalid request: missing to parameter"))?,
    )?;
    let from = match params.text("from").as_deref() {
        None | Some("auto") => None,
        Some(code) => Some(language(code)?),
    };
    if from == Some(to) {
        return Err(ApiError::new(
            400,
            format!("from and to are both {to}: nothing to translate"),
        ));
    }
    let mut opts = options(state, from, to);
    opts.decode =
        default_decode(params.number("beam", 1..=16, opts.decode.beam_size as u64)? as usize);
    opts.retry = params.flag("retry", opts.retry)?;
    let source = from.unwrap_or(other(to));
    translate_items(state, source, to, vec![(article, opts)])
        .await?
        .pop()
        .ok_or_else(|| ApiError::new(500, "no translation came back"))
}

/// The summary options of `params` (`sentences`, `words`, `style`, `lang`) on the
/// server's settings.
pub(super) fn summary_options(
    state: &AppState,
    params: &Params,
) -> Result<SummaryOptions, ApiError> {
    let base = &state.config.summary;
    let style = match params.text("style").as_deref() {
        None => base.style,
        Some("brief") => SummaryStyle::Brief,
        Some("bullets") => SummaryStyle::Bullets,
        Some("headline") => SummaryStyle::Headline,
        Some(other) => {
            return Err(ApiError::new(
                400,
                format!("Invalid request: style {other:?} is not brief, bullets or headline"),
            ))
        }
    };
    let words = match params.text("words") {
        None => base.words,
        Some(_) => Some(params.number("words", 1..=100_000, 0)? as usize),
    };
    Ok(SummaryOptions {
        sentences: params.number("sentences", 1..=100, base.sentences as u64)? as usize,
        words,
        lang: params
            .text("lang")
            .map(|l| language(&l))
            .transpose()?
            .or(base.lang),
        style,
        ..base.clone()
    })
}

/// Summarizes `article` on the summarizer's thread.
pub(super) async fn summarize_article(
    state: &AppState,
    article: Article,
    opts: SummaryOptions,
) -> Result<SummaryReport, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .summary
        .submit(SummaryJob {
            article,
            opts,
            reply: tx,
        })
        .map_err(|r| match r {
            Refused::Full => ApiError::busy(),
            Refused::Closed => ApiError::new(503, "The server is stopping"),
        })?;
    rx.await
        .map_err(|_| ApiError::new(500, "The summarizer stopped"))?
        .map_err(|e| match e {
            crate::Error::BadInput { .. } | crate::Error::Unsupported(_) => {
                ApiError::new(400, e.to_string())
            }
            other => ApiError::new(500, format!("Cannot summarize: {other}")),
        })
}

/// A JSON body already rendered as text.
fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `POST /v1/translate`.
pub async fn translate(
    State(state): Shared,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let params = request_params(&state, &headers, query.as_deref(), body).await?;
    let name = source_name(&params);
    let article = article(&params, &name, state.config.max_body)?;
    let report = translate_article(&state, &params, article).await?;
    Ok(json_text(output::translation(
        &report,
        &name,
        output::Format::Json,
        false,
    )))
}

/// `POST /v1/summarize`.
pub async fn summarize(
    State(state): Shared,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let params = request_params(&state, &headers, query.as_deref(), body).await?;
    let name = source_name(&params);
    let article = article(&params, &name, state.config.max_body)?;
    let opts = summary_options(&state, &params)?;
    let report = summarize_article(&state, article, opts).await?;
    Ok(json_text(output::summary(
        &report,
        &name,
        output::Format::Json,
    )))
}

/// `GET /health`: ok, with what is served.
pub async fn health(State(state): Shared) -> Json<Value> {
    let translation: Vec<Value> = state
        .lanes
        .iter()
        .map(|l| {
            json!({
                "model": l.model,
                "pairs": l.pairs.iter().map(|(f, t)| format!("{f}-{t}")).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "status": "ok",
        "translation": translation,
        "summary": {"engine": state.summary.engine, "model": state.summary.model},
        "device": state.config.device,
    }))
}

/// `GET /metrics`: Prometheus text; needs the API key when the server has one.
pub async fn metrics(
    State(state): Shared,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(&HeaderMap::new(), query.as_deref(), b"")?;
    state.check_key(params.api_key(&headers).as_deref())?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
}
