//! Writers for results: plain text, Markdown and JSON.

use serde::Serialize;

use crate::article::Metadata;
use crate::pipeline::segment::Segmented;
use crate::pipeline::summarize::SummaryReport;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
    /// JSON, one object.
    Json,
}

/// A result together with the input it came from, for JSON output.
#[derive(Serialize)]
struct WithSource<'a, T: Serialize> {
    source: &'a str,
    #[serde(flatten)]
    result: &'a T,
}

fn json<T: Serialize>(source: &str, value: &T) -> String {
    // Serializing plain data structs with string keys cannot fail.
    let mut s = serde_json::to_string_pretty(&WithSource {
        source,
        result: value,
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

/// The metadata line under a Markdown headline ("date · source").
fn markdown_byline(meta: &Metadata) -> Option<String> {
    let parts: Vec<String> = [
        meta.date.clone(),
        meta.source_url.as_ref().map(|u| format!("<{u}>")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// Renders a summary.
pub fn summary(report: &SummaryReport, source: &str, format: Format) -> String {
    let body = report
        .summary
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match format {
        Format::Text => format!("{body}\n"),
        Format::Markdown => {
            let mut out = String::new();
            if let Some(t) = &report.title {
                out.push_str(&format!("# {t}\n\n"));
            }
            if let Some(b) = markdown_byline(&report.metadata) {
                out.push_str(&format!("*{b}*\n\n"));
            }
            out.push_str(&body);
            out.push('\n');
            out
        }
        Format::Json => json(source, report),
    }
}

/// Renders an article's sentences: title first, one sentence per line, a blank line
/// between paragraphs.
pub fn segmented(seg: &Segmented, source: &str, format: Format) -> String {
    match format {
        Format::Json => json(source, seg),
        Format::Text | Format::Markdown => {
            let mut blocks: Vec<String> = Vec::new();
            if let Some(t) = &seg.title {
                blocks.push(if format == Format::Markdown {
                    format!("# {t}")
                } else {
                    t.clone()
                });
            }
            blocks.extend(seg.paragraphs.iter().map(|p| p.sentences.join("\n")));
            let mut out = blocks.join("\n\n");
            out.push('\n');
            out
        }
    }
}
