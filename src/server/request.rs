//! What every endpoint needs of a request: its body within the size limit, its
//! parameters from a JSON object, a form or the query string (LibreTranslate takes
//! all three), the API key, and errors as LibreTranslate writes them: `{"error": "..."}`.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::article::Lang;
use crate::Error;

/// An error answer: status and a one-line message, as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 503 with `Retry-After`: a model queue is full.
    pub fn busy() -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                503,
                "The server is busy: too many requests are waiting; try again shortly",
            )
        }
    }

    /// The answer for a library error: the caller's fault (400) or the server's (500).
    pub fn from_error(e: Error) -> ApiError {
        match e {
            Error::BadInput { .. } | Error::Unsupported(_) => ApiError::new(400, e.to_string()),
            Error::Io { .. } | Error::Model(_) | Error::Candle(_) => {
                ApiError::new(500, format!("Cannot translate text: {e}"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Most bytes of an oversized body read (and dropped) before answering 413: a client
/// that is still sending when the answer comes sees a broken connection instead of the
/// answer, so a body not far over the limit is drained first.
const DRAIN_MAX: u64 = 64 << 20;

/// The parameters of a request (query string, form or JSON body, the body bounded by
/// `--max-body`), its API key checked.
pub async fn request_params(
    state: &super::AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Params, ApiError> {
    let bytes = read_body(headers, body, state.config.max_body).await?;
    let params = Params::parse(headers, query, &bytes)?;
    state.check_key(params.api_key(headers).as_deref())?;
    Ok(params)
}

/// The body, unless it is larger than `limit` bytes (413) or was cut off (400).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            413,
            format!("Request body too large: the limit is {limit} bytes (svodka serve --max-body)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_MAX) {
        return Err(too_large());
    }
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::new(400, format!("Request body cut off: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen += data.len() as u64;
        if seen > DRAIN_MAX {
            break;
        }
        if seen <= limit as u64 {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    Ok(kept.into())
}

/// A request's parameters: a JSON object, or name/value pairs of a form and the query.
pub enum Params {
    /// `application/json` body.
    Json(Map<String, Value>),
    /// Form body and query string pairs (the body's first).
    Pairs(Vec<(String, String)>),
}

impl Params {
    /// Parameters from the content type: JSON bodies must be objects; anything else is
    /// read as a URL-encoded form, with the query string's pairs after it.
    pub fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Params, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            return match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => Ok(Params::Json(m)),
                Ok(_) => Err(ApiError::new(400, "Invalid JSON format")),
                Err(e) => Err(ApiError::new(400, format!("Invalid JSON format: {e}"))),
            };
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        if content_type.starts_with("application/x-www-form-urlencoded") || content_type.is_empty()
        {
            pairs.extend(
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                    .map_err(|e| ApiError::new(400, format!("Invalid form body: {e}")))?,
            );
        }
        if let Some(q) = query {
            pairs.extend(
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .map_err(|e| ApiError::new(400, format!("Invalid query string: {e}")))?,
            );
        }
        Ok(Params::Pairs(pairs))
    }

    /// Whether the parameters came as JSON.
    pub fn is_json(&self) -> bool {
        matches!(self, Params::Json(_))
    }

    /// A parameter as text (JSON numbers and booleans as written); `None` when absent,
    /// null or empty.
    pub fn text(&self, name: &str) -> Option<String> {
        let v = match self {
            Params::Json(m) => match m.get(name)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            },
            Params::Pairs(p) => p.iter().find(|(k, _)| k == name)?.1.clone(),
        };
        (!v.is_empty()).then_some(v)
    }

    /// `q`: a text, or (JSON only) an array of texts; `None` when absent or empty.
    pub fn texts(&self, name: &str) -> Result<Option<Texts>, ApiError> {
        if let Params::Json(m) = self {
            if let Some(Value::Array(items)) = m.get(name) {
                if items.is_empty() {
                    return Ok(None);
                }
                let texts = items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(ApiError::new(
                            400,
                            format!("Invalid request: {name} must hold only strings"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Some(Texts::Many(texts)));
            }
        }
        Ok(self.text(name).map(Texts::One))
    }

    /// A whole-number parameter in `range`, or `default` when absent.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(t) => match t.trim().parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(ApiError::new(
                    400,
                    format!(
                        "Invalid request: {name} parameter must be a number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        }
    }

    /// A yes/no parameter (`true`/`false`, `1`/`0`), or `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ApiError::new(
                400,
                format!("Invalid request: {name} must be true or false, not {other:?}"),
            )),
        }
    }

    /// The API key: the `api_key` parameter, or an `Authorization: Bearer` header.
    pub fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        self.text("api_key").or_else(|| bearer(headers))
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = v.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// One text or several (a JSON array), as `q` may be.
pub enum Texts {
    /// A string.
    One(String),
    /// An array of strings.
    Many(Vec<String>),
}

/// A language code svodka translates, or LibreTranslate's error for it.
pub fn language(code: &str) -> Result<Lang, ApiError> {
    match code {
        "ru" => Ok(Lang::Ru),
        "en" => Ok(Lang::En),
        other => Err(ApiError::new(400, format!("{other} is not supported"))),
    }
}

/// The other of svodka's two languages.
pub fn other(lang: Lang) -> Lang {
    match lang {
        Lang::Ru => Lang::En,
        Lang::En => Lang::Ru,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        h
    }

    #[test]
    fn json_form_and_query_parameters() {
        let p = Params::parse(
            &headers("application/json"),
            None,
            br#"{"q": ["a", "b"], "source": "auto", "beam": 4, "api_key": ""}"#,
        )
        .unwrap();
        assert!(matches!(p.texts("q").unwrap(), Some(Texts::Many(v)) if v == ["a", "b"]));
        assert_eq!(p.text("source").as_deref(), Some("auto"));
        assert_eq!(p.number("beam", 1..=16, 1).unwrap(), 4);
        assert_eq!(p.text("api_key"), None, "an empty key is no key");

        let p = Params::parse(
            &headers("application/x-www-form-urlencoded"),
            Some("target=ru&q=ignored"),
            b"q=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%D0%BC%D0%B8%D1%80&source=ru",
        )
        .unwrap();
        assert!(matches!(p.texts("q").unwrap(), Some(Texts::One(s)) if s == "Привет мир"));
        assert_eq!(p.text("target").as_deref(), Some("ru"));

        // No content type (as `requests.post(url, params=...)` sends): the query.
        let p = Params::parse(&HeaderMap::new(), Some("q=Hi&source=en&target=ru"), b"").unwrap();
        assert_eq!(p.text("q").as_deref(), Some("Hi"));
    }

    #[test]
    fn bad_bodies_are_400_with_a_reason() {
        for body in [&b"{not json"[..], b"[1, 2]"] {
            let e = Params::parse(&headers("application/json"), None, body)
                .err()
                .unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.message.starts_with("Invalid JSON format"),
                "{}",
                e.message
            );
        }
        let p = Params::parse(&headers("application/json"), None, br#"{"q": [1]}"#).unwrap();
        assert!(p.texts("q").is_err());
        let p = Params::parse(&headers("application/json"), None, br#"{"beam": 99}"#).unwrap();
        assert!(p.number("beam", 1..=16, 1).is_err());
    }
}
