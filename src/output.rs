//! Writers for results: plain text, Markdown and JSON.

use serde::Serialize;

use crate::article::Metadata;
use crate::pipeline::segment::Segmented;
use crate::pipeline::summarize::SummaryReport;
use crate::pipeline::translate::TranslationReport;

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
    let body = report.summary.text();
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

/// Markdown of a paragraph: its spans rendered, its block kind as a prefix.
fn markdown_paragraph(p: &crate::article::Paragraph) -> String {
    use crate::article::BlockKind;
    let body = crate::article::read::render_markdown(&p.text, &p.spans);
    match p.kind {
        BlockKind::Text => body,
        BlockKind::Heading => format!("## {body}"),
        BlockKind::ListItem => format!("- {body}"),
        BlockKind::Quote => format!("> {body}"),
    }
}

/// A Markdown table cell: pipes escaped, line breaks as `<br>`.
fn table_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// Renders a translated article. `side_by_side` pairs each source paragraph with its
/// translation: two lines tagged with their languages in text, a two-column table in
/// Markdown. JSON always holds both.
pub fn translation(
    report: &TranslationReport,
    source: &str,
    format: Format,
    side_by_side: bool,
) -> String {
    if format == Format::Json {
        return json(source, report);
    }
    let to = report.languages.to;
    let from_of =
        |p: &crate::pipeline::translate::TranslatedParagraph| p.from.map_or("??", |l| l.code());
    let title_from = report
        .languages
        .from
        .first()
        .map_or(to.code(), |l| l.code());
    let mut blocks: Vec<String> = Vec::new();
    match (format, side_by_side) {
        (Format::Markdown, false) => {
            if let Some(t) = &report.title {
                blocks.push(format!("# {t}"));
            }
            if let Some(b) = markdown_byline(&report.metadata) {
                blocks.push(format!("*{b}*"));
            }
            blocks.extend(
                report
                    .paragraphs
                    .iter()
                    .map(|p| markdown_paragraph(&p.translated)),
            );
        }
        (Format::Markdown, true) => {
            let mut table = format!("| {title_from} | {to} |\n| --- | --- |\n");
            if let (Some(s), Some(t)) = (&report.source_title, &report.title) {
                table.push_str(&format!(
                    "| **{}** | **{}** |\n",
                    table_cell(s),
                    table_cell(t)
                ));
            }
            for p in &report.paragraphs {
                table.push_str(&format!(
                    "| {} | {} |\n",
                    table_cell(&markdown_paragraph(&p.source)),
                    table_cell(&markdown_paragraph(&p.translated))
                ));
            }
            blocks.push(table.trim_end().to_string());
            if let Some(b) = markdown_byline(&report.metadata) {
                blocks.push(format!("*{b}*"));
            }
        }
        (_, false) => {
            blocks.extend(report.title.clone());
            blocks.extend(report.paragraphs.iter().map(|p| p.translated.text.clone()));
        }
        (_, true) => {
            if let (Some(s), Some(t)) = (&report.source_title, &report.title) {
                blocks.push(format!("[{title_from}] {s}\n[{to}] {t}"));
            }
            blocks.extend(report.paragraphs.iter().map(|p| {
                format!(
                    "[{}] {}\n[{to}] {}",
                    from_of(p),
                    p.source.text,
                    p.translated.text
                )
            }));
        }
    }
    let mut out = blocks.join("\n\n");
    out.push('\n');
    out
}
