//! The web page at `/`: a form that posts to `/ui`, answered with the whole page and the
//! result in it (so it works without JavaScript), or with the result alone for the
//! page's script (`/ui?fragment=1`). The files are embedded in the binary.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::api::{article, source_name, summarize_article, summary_options, translate_article};
use super::html::{self, escape};
use super::request::{read_body, ApiError, Params};
use super::AppState;
use crate::article::read::{self, ReadOptions};
use crate::output;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

type Shared = State<Arc<AppState>>;

/// The form's values, to fill the page again with what was sent.
#[derive(Default)]
struct FormValues {
    translate: bool,
    to_ru: bool,
    sentences: String,
    text: String,
}

/// The page with `values` in its form and `result` under it.
fn page(state: &AppState, values: &FormValues, result: &str) -> String {
    let selected = |on: bool| if on { " selected" } else { "" };
    let key_field = if state.config.api_key.is_some() {
        "<label>API key\n<input id=\"api_key\" name=\"api_key\" type=\"password\" autocomplete=\"current-password\" required>\n</label>"
    } else {
        ""
    };
    let sentences = if values.sentences.is_empty() {
        state.config.summary.sentences.to_string()
    } else {
        values.sentences.clone()
    };
    INDEX
        .replace("{{task_summarize}}", selected(!values.translate))
        .replace("{{task_translate}}", selected(values.translate))
        .replace("{{to_en}}", selected(!values.to_ru))
        .replace("{{to_ru}}", selected(values.to_ru))
        .replace("{{sentences}}", &escape(&sentences))
        .replace("{{key_field}}", key_field)
        .replace("{{text}}", &escape(&values.text))
        .replace("{{result}}", result)
}

/// `GET /`.
pub async fn index(State(state): Shared) -> Html<String> {
    Html(page(&state, &FormValues::default(), ""))
}

/// `GET /static/app.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// `GET /static/style.css`.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `POST /ui`: runs the form's task and answers the page (or, with `?fragment=1`, the
/// result alone).
pub async fn ui(State(state): Shared, RawQuery(query): RawQuery, req: Request) -> Response {
    let fragment = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "fragment=1"));
    let (values, outcome) = match form(&state, req).await {
        Ok((params, file)) => {
            let values = FormValues {
                translate: params.text("task").as_deref() == Some("translate"),
                to_ru: params.text("to").as_deref() == Some("ru"),
                sentences: params.text("sentences").unwrap_or_default(),
                text: params.text("text").unwrap_or_default(),
            };
            let outcome = run(&state, &params, file).await;
            (values, outcome)
        }
        Err(e) => (FormValues::default(), Err(e)),
    };
    let (status, result) = match outcome {
        Ok(html) => (StatusCode::OK, html),
        Err(e) => (
            e.status(),
            format!(
                "<p class=\"error\" role=\"alert\">{}</p>\n",
                escape(e.message())
            ),
        ),
    };
    let body = if fragment {
        result
    } else {
        page(&state, &values, &result)
    };
    (status, Html(body)).into_response()
}

/// The form's fields (multipart or URL-encoded), and the file, when one was chosen.
async fn form(
    state: &Arc<AppState>,
    req: Request,
) -> Result<(Params, Option<(String, Vec<u8>)>), ApiError> {
    let headers: HeaderMap = req.headers().clone();
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        let bytes = read_body(&headers, req.into_body(), state.config.max_body).await?;
        return Ok((Params::parse(&headers, None, &bytes)?, None));
    }
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            e.status().as_u16(),
            format!("Invalid form: {}", e.body_text()),
        )
    };
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::new(400, format!("Invalid form: {}", e.body_text())))?;
    let mut pairs = Vec::new();
    let mut file = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("").to_string();
            let data = field.bytes().await.map_err(bad)?;
            if !filename.is_empty() && !data.is_empty() {
                file = Some((filename, data.to_vec()));
            }
        } else {
            pairs.push((name, field.text().await.map_err(bad)?));
        }
    }
    Ok((Params::Pairs(pairs), file))
}

/// The task of the form, as HTML for `#result`.
async fn run(
    state: &AppState,
    params: &Params,
    file: Option<(String, Vec<u8>)>,
) -> Result<String, ApiError> {
    state.check_key(params.text("api_key").as_deref())?;
    // A chosen file wins over the text box; it is read as `svodka` reads files.
    let (name, article) = match file {
        Some((filename, data)) => {
            let name = filename
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or("file")
                .to_string();
            let opts = ReadOptions {
                max_size: state.config.max_body as u64,
                ..ReadOptions::default()
            };
            let a = read::read_bytes(&data, std::path::Path::new(&name), &opts)
                .map_err(|e| ApiError::new(400, e.to_string()))?;
            (name, a)
        }
        None => {
            let name = source_name(params);
            let a = article(params, &name, state.config.max_body)?;
            (name, a)
        }
    };
    let (table, plain, download) = if params.text("task").as_deref() == Some("translate") {
        let report = translate_article(state, params, article).await?;
        (
            html::translation_side_by_side(&report),
            output::translation(&report, &name, output::Format::Markdown, false),
            "translation.md",
        )
    } else {
        let opts = summary_options(state, params)?;
        let report = summarize_article(state, article.clone(), opts).await?;
        (
            html::summary_side_by_side(&article, &report),
            output::summary(&report, &name, output::Format::Text),
            "summary.txt",
        )
    };
    let href = format!("data:text/plain;charset=utf-8,{}", percent_encode(&plain));
    Ok(format!(
        "<div class=\"actions\"><button class=\"copy\" type=\"button\" hidden>Copy</button> <a id=\"download\" download=\"{download}\" href=\"{}\">Download {download}</a></div>\n<textarea id=\"result-text\" hidden readonly>{}</textarea>\n<div class=\"scroll\">\n{table}</div>\n",
        escape(&href),
        escape(&plain)
    ))
}

/// `s` percent-encoded for a `data:` URL (everything but unreserved ASCII).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b' ') {
            if b == b' ' {
                out.push_str("%20");
            } else {
                out.push(b as char);
            }
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
