//! LibreTranslate's API, as its clients expect it: `/translate`, `/detect`,
//! `/languages`, `/frontend/settings`, `/translate_file` and `/download_file/...`,
//! with its parameter names, answers, error bodies and status codes.
//!
//! A `text` request is translated line by line (each non-blank line a paragraph), so
//! that line breaks, blank lines and indentation come back where they were; `html` is
//! read as svodka reads pages and written back with its headings, lists, quotes, links
//! and emphasis.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Multipart, Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::request::{language, other, request_params, ApiError, Texts};
use super::workers::{Refused, TranslateJob};
use super::{html, AppState, StoredFile};
use crate::article::lang::{self, Detection};
use crate::article::read::{self, Format, ReadOptions};
use crate::article::{Article, Lang, Paragraph};
use crate::pipeline::translate::{TranslateOptions, TranslationReport};
use crate::{output, util};

type Shared = State<Arc<AppState>>;

/// Translates `items` on the lane for `from` → `to`; LibreTranslate's error when no
/// model serves that pair, 503 when its queue is full.
pub(super) async fn translate_items(
    state: &AppState,
    from: Lang,
    to: Lang,
    items: Vec<(Article, TranslateOptions)>,
) -> Result<Vec<TranslationReport>, ApiError> {
    let lane = state.lane(from, to).ok_or_else(|| {
        ApiError::new(
            400,
            format!(
                "{} ({to}) is not available as a target language from {} ({from})",
                to.english_name(),
                from.english_name()
            ),
        )
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    lane.submit(TranslateJob { items, reply: tx })
        .map_err(|r| match r {
            Refused::Full => ApiError::busy(),
            Refused::Closed => ApiError::new(503, "The server is stopping"),
        })?;
    let reports = rx
        .await
        .map_err(|_| ApiError::new(500, "The translation model stopped"))?;
    reports
        .into_iter()
        .map(|r| r.map_err(ApiError::from_error))
        .collect()
}

/// The options of a request translating `from` (detected per paragraph when `None`)
/// into `to`, on the server's settings.
pub(super) fn options(state: &AppState, from: Option<Lang>, to: Lang) -> TranslateOptions {
    TranslateOptions {
        to,
        from,
        ..state.config.translate.clone()
    }
}

/// A text read line by line: each non-blank line is a paragraph.
fn lines_article(text: &str) -> Article {
    Article {
        paragraphs: text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Paragraph {
                text: l.trim().to_string(),
                ..Paragraph::default()
            })
            .collect(),
        ..Article::default()
    }
}

/// `text` with each non-blank line replaced by its translation, keeping its
/// indentation, trailing space and every line break.
fn lines_translated(text: &str, report: &TranslationReport) -> String {
    let mut translated = report.paragraphs.iter().map(|p| p.translated.text.as_str());
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for piece in text.split_inclusive('\n') {
        let (line, end) = match piece.strip_suffix('\n') {
            Some(l) => (l, "\n"),
            None => (piece, ""),
        };
        if line.trim().is_empty() {
            out.push_str(line);
        } else {
            let lead = &line[..line.len() - line.trim_start().len()];
            let tail = &line[line.trim_end().len()..];
            out.push_str(lead);
            out.push_str(translated.next().unwrap_or(line.trim()));
            out.push_str(tail);
        }
        out.push_str(end);
    }
    out
}

/// LibreTranslate's `detectedLanguage`: confidence in percent; text with no language
/// is reported as English with confidence 0, as LibreTranslate does.
fn detected(d: &Detection) -> Value {
    if d.is_undetermined() {
        return json!({"confidence": 0.0, "language": "en"});
    }
    json!({
        "confidence": (d.confidence * 1000.0).round() / 10.0,
        "language": d.lang,
    })
}

/// `POST /translate`.
pub async fn translate(
    State(state): Shared,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let params = request_params(&state, &headers, query.as_deref(), body).await?;
    let Some(q) = params.texts("q")? else {
        return Err(missing("q"));
    };
    let source = params.text("source").ok_or_else(|| missing("source"))?;
    let target = params.text("target").ok_or_else(|| missing("target"))?;
    let alternatives = params
        .text("alternatives")
        .map(|a| a.trim().parse::<i64>())
        .transpose()
        .map_err(|_| {
            ApiError::new(
                400,
                "Invalid request: alternatives parameter is not a number",
            )
        })?
        .unwrap_or(0)
        .max(0);
    let html_format = match params.text("format").as_deref() {
        None | Some("text") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::new(
                400,
                format!("{other} format is not supported"),
            ));
        }
    };
    let auto = source == "auto";
    let source_lang = if auto { None } else { Some(language(&source)?) };
    let to = language(&target)?;
    let (many, texts) = match q {
        Texts::One(t) => (false, vec![t]),
        Texts::Many(v) => (true, v),
    };
    // Forms carry line breaks as CR LF; LibreTranslate keeps them as LF.
    let texts: Vec<String> = if params.is_json() {
        texts
    } else {
        texts
            .into_iter()
            .map(|t| t.lines().collect::<Vec<_>>().join("\n"))
            .collect()
    };
    let detection = auto.then(|| lang::detect(&texts.join("\n")));
    let from = match (source_lang, &detection) {
        (Some(l), _) => Some(l),
        (None, Some(d)) if d.is_undetermined() => None,
        (None, Some(d)) => Some(
            d.known()
                .ok_or_else(|| ApiError::new(400, format!("{} is not supported", d.lang)))?,
        ),
        (None, None) => None,
    };
    let translated: Vec<String> = match from {
        // Nothing to translate (no letters), or already in the target language.
        None => texts.clone(),
        Some(f) if f == to => texts.clone(),
        Some(f) => {
            let articles: Vec<Article> = texts
                .iter()
                .map(|t| {
                    if html_format {
                        read::parse(t, Format::Html)
                            .map_err(|r| ApiError::new(400, format!("Invalid request: q: {r}")))
                    } else {
                        Ok(lines_article(t))
                    }
                })
                .collect::<Result<_, _>>()?;
            // Empty texts need no model; the rest go in one job.
            let wanted: Vec<usize> = (0..articles.len())
                .filter(|&i| articles[i].title.is_some() || !articles[i].paragraphs.is_empty())
                .collect();
            let opts = options(&state, Some(f), to);
            let items = wanted
                .iter()
                .map(|&i| (articles[i].clone(), opts.clone()))
                .collect();
            let mut reports = translate_items(&state, f, to, items).await?.into_iter();
            let mut out = texts.clone();
            for i in wanted {
                if let Some(r) = reports.next() {
                    out[i] = if html_format {
                        html::translated_article(&r, false).trim_end().to_string()
                    } else {
                        lines_translated(&texts[i], &r)
                    };
                }
            }
            out
        }
    };
    let mut answer = serde_json::Map::new();
    if many {
        answer.insert("translatedText".into(), json!(translated));
        if let Some(d) = &detection {
            answer.insert(
                "detectedLanguage".into(),
                Value::Array(vec![detected(d); translated.len()]),
            );
        }
        if alternatives > 0 {
            answer.insert(
                "alternatives".into(),
                json!(vec![Vec::<String>::new(); translated.len()]),
            );
        }
    } else {
        answer.insert("translatedText".into(), json!(translated[0]));
        if let Some(d) = &detection {
            answer.insert("detectedLanguage".into(), detected(d));
        }
        if alternatives > 0 {
            answer.insert("alternatives".into(), json!([]));
        }
    }
    Ok(Json(Value::Object(answer)))
}

fn missing(name: &str) -> ApiError {
    ApiError::new(400, format!("Invalid request: missing {name} parameter"))
}

/// `POST /detect`: the language of `q`, as a one-element list.
pub async fn detect(
    State(state): Shared,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let params = request_params(&state, &headers, query.as_deref(), body).await?;
    let q = match params.texts("q")? {
        None => return Err(missing("q")),
        Some(Texts::One(t)) => t,
        Some(Texts::Many(v)) => v.join("\n"),
    };
    Ok(Json(json!([detected(&lang::detect(&q))])))
}

/// `GET /languages`: each source language with the targets served from it.
pub async fn languages(State(state): Shared) -> Json<Value> {
    let pairs = state.pairs();
    let mut sources: Vec<Lang> = pairs.iter().map(|p| p.0).collect();
    sources.dedup();
    Json(Value::Array(
        sources
            .into_iter()
            .map(|s| {
                let targets: Vec<&str> = pairs
                    .iter()
                    .filter(|p| p.0 == s)
                    .map(|p| p.1.code())
                    .collect();
                json!({"code": s.code(), "name": s.english_name(), "targets": targets})
            })
            .collect(),
    ))
}

/// File name extensions `/translate_file` takes.
const FILE_FORMATS: [&str; 5] = [".txt", ".md", ".markdown", ".html", ".htm"];

/// `GET /frontend/settings`.
pub async fn settings(State(state): Shared) -> Json<Value> {
    let target = state.pairs().first().map_or(Lang::En, |p| p.1);
    let keyed = state.config.api_key.is_some();
    Json(json!({
        "charLimit": -1,
        "frontendTimeout": 500,
        "apiKeys": keyed,
        "keyRequired": keyed,
        "suggestions": false,
        "filesTranslation": true,
        "supportedFilesFormat": FILE_FORMATS,
        "language": {
            "source": {"code": "auto", "name": "Auto Detect"},
            "target": {"code": target.code(), "name": target.english_name()},
        },
    }))
}

/// A file name as stored and offered back: ASCII letters, digits, `.`, `-` and `_`
/// only, at most 100 bytes, the extension kept; a name with nothing left (Cyrillic, say)
/// becomes `translated.EXT`.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect()
    };
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) => (plain(stem), plain(ext).replace('.', "")),
        None => (plain(base), String::new()),
    };
    let mut stem = stem.trim_start_matches('.').to_string();
    if stem.is_empty() {
        stem = "translated".to_string();
    }
    stem.truncate(90);
    if ext.is_empty() {
        stem
    } else {
        let mut ext = ext;
        ext.truncate(9);
        format!("{stem}.{ext}")
    }
}

/// `POST /translate_file`: a whole article (txt, Markdown, HTML) translated with its
/// structure, as `svodka translate` does; the answer links to the result.
pub async fn translate_file(
    State(state): Shared,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Json<Value>, ApiError> {
    let multipart_error = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            e.status().as_u16(),
            format!("Invalid request: {}", e.body_text()),
        )
    };
    let (mut file, mut source, mut target, mut key) = (None, None, None, None);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("").to_string();
                let data = field.bytes().await.map_err(multipart_error)?;
                file = Some((filename, data));
            }
            "source" | "target" | "api_key" => {
                let value = field.text().await.map_err(multipart_error)?;
                let slot = match name.as_str() {
                    "source" => &mut source,
                    "target" => &mut target,
                    _ => &mut key,
                };
                *slot = Some(value).filter(|v| !v.is_empty());
            }
            _ => {}
        }
    }
    state.check_key(key.or_else(|| super::request::bearer(&headers)).as_deref())?;
    let (filename, data) = file.ok_or_else(|| missing("file"))?;
    let source = source.ok_or_else(|| missing("source"))?;
    let target = target.ok_or_else(|| missing("target"))?;
    if filename.is_empty() {
        return Err(ApiError::new(400, "Invalid request: empty file"));
    }
    let name = safe_name(&filename);
    let lower = name.to_ascii_lowercase();
    if !FILE_FORMATS.iter().any(|e| lower.ends_with(e)) {
        return Err(ApiError::new(
            400,
            "Invalid request: file format not supported",
        ));
    }
    let from = if source == "auto" {
        None
    } else {
        Some(language(&source)?)
    };
    let to = language(&target)?;
    let read_opts = ReadOptions {
        max_size: state.config.max_body as u64,
        ..ReadOptions::default()
    };
    let article = read::read_bytes(&data, Path::new(&name), &read_opts)
        .map_err(|e| ApiError::new(400, e.to_string()))?;
    let format = Format::from_path(Path::new(&name)).unwrap_or(Format::Text);
    let report = if from == Some(to) {
        None
    } else {
        let opts = options(&state, from, to);
        let source_lang = from.unwrap_or(other(to));
        translate_items(&state, source_lang, to, vec![(article, opts)])
            .await?
            .pop()
    };
    let (body, content_type) = match (&report, format) {
        (None, _) => (data.to_vec(), "application/octet-stream"),
        (Some(r), Format::Html) => (
            html::translated_article(r, true).into_bytes(),
            "text/html; charset=utf-8",
        ),
        (Some(r), Format::Markdown) => (
            output::translation(r, &name, output::Format::Markdown, false).into_bytes(),
            "text/markdown; charset=utf-8",
        ),
        (Some(r), Format::Text) => (
            output::translation(r, &name, output::Format::Text, false).into_bytes(),
            "text/plain; charset=utf-8",
        ),
    };
    let n = state
        .counter
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = util::sha256_hex(format!("{nanos}:{n}:{}:{name}", std::process::id()).as_bytes());
    let stored = format!("{}.{name}", &id[..16]);
    state
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(StoredFile {
            name: stored.clone(),
            content_type,
            body,
        });
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map_or_else(
            || format!("{}:{}", state.config.host, state.config.port),
            str::to_string,
        );
    Ok(Json(json!({
        "translatedFileUrl": format!("http://{host}/download_file/{stored}")
    })))
}

/// `GET /download_file/NAME`: a file `/translate_file` made, as an attachment named as
/// the file sent.
pub async fn download_file(
    State(state): Shared,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let valid = name.len() > 17
        && name.as_bytes()[16] == b'.'
        && name[..16].bytes().all(|b| b.is_ascii_hexdigit())
        && safe_name(&name) == name;
    if !valid {
        return Err(ApiError::new(400, "Invalid filename"));
    }
    let (content_type, body) = state
        .files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "File not found (translated files are kept for a while only)",
            )
        })?;
    let disposition = format!("attachment; filename=\"{}\"", &name[17..]);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_breaks_and_indentation() {
        let text = "  Первая строка.  \n\nВторая\r\nтретья\n";
        let article = lines_article(text);
        let lines: Vec<&str> = article.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(lines, ["Первая строка.", "Вторая", "третья"]);
        let report = TranslationReport {
            title: None,
            source_title: None,
            metadata: Default::default(),
            languages: crate::pipeline::translate::Languages {
                from: vec![Lang::Ru],
                to: Lang::En,
            },
            engine: None,
            dtype: None,
            paragraphs: article
                .paragraphs
                .iter()
                .map(|p| crate::pipeline::translate::TranslatedParagraph {
                    from: Some(Lang::Ru),
                    passthrough: false,
                    source: p.clone(),
                    translated: Paragraph {
                        text: p.text.to_uppercase(),
                        ..p.clone()
                    },
                })
                .collect(),
            segments: vec![],
            problems: vec![],
            notes: vec![],
            stats: Default::default(),
        };
        assert_eq!(
            lines_translated(text, &report),
            "  ПЕРВАЯ СТРОКА.  \n\nВТОРАЯ\r\nТРЕТЬЯ\n"
        );
    }

    #[test]
    fn stored_names_are_plain() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\news\\статья 1.txt"), "1.txt");
        assert_eq!(safe_name("статья.md"), "translated.md");
        assert_eq!(safe_name("..hidden.md"), "hidden.md");
        assert_eq!(safe_name("report (final).html"), "reportfinal.html");
    }
}
