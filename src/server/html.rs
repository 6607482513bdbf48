//! HTML out of svodka's results: paragraphs with their inline markup, a translated
//! article as a page (for `format=html` and HTML files), and the side-by-side views of
//! the web page. Every text is escaped; only URLs of links with a safe scheme become
//! `href`s.

use crate::article::{BlockKind, Paragraph, Span, Style};
use crate::pipeline::summarize::SummaryReport;
use crate::pipeline::translate::TranslationReport;

/// `s` with `& < > " '` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link target that cannot run script: http(s), mailto, or a relative path.
fn safe_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// The inline HTML of `text` with `spans` (links, strong, emphasis, code); spans that
/// overlap badly or cut a character are left out rather than breaking the nesting.
pub fn inline(text: &str, spans: &[Span]) -> String {
    let order = Span::in_nesting_order(text, spans);
    let mut out = String::with_capacity(text.len() + 32);
    // Open elements: closing tag and end offset.
    let mut open: Vec<(&'static str, usize)> = Vec::new();
    let mut pos = 0;
    let mut next = 0;
    loop {
        while let Some(&(close, end)) = open.last() {
            if end > pos {
                break;
            }
            out.push_str(close);
            open.pop();
        }
        if let Some(span) = order.get(next).filter(|s| s.start <= pos) {
            next += 1;
            let inside = open.last().map_or(usize::MAX, |(_, e)| *e);
            if span.start < pos || span.end > inside {
                continue; // overlaps what is open: dropped, the text stays
            }
            let close = match &span.style {
                Style::Link { url } if safe_url(url) => {
                    out.push_str(&format!("<a href=\"{}\">", escape(url)));
                    "</a>"
                }
                Style::Link { .. } => "",
                Style::Strong => {
                    out.push_str("<strong>");
                    "</strong>"
                }
                Style::Emphasis => {
                    out.push_str("<em>");
                    "</em>"
                }
                Style::Code => {
                    out.push_str("<code>");
                    "</code>"
                }
            };
            open.push((close, span.end));
            continue;
        }
        let stop = [
            open.last().map(|(_, e)| *e),
            order.get(next).map(|s| s.start),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len())
        .min(text.len());
        if stop > pos {
            out.push_str(&escape(&text[pos..stop]));
            pos = stop;
        } else if pos >= text.len() && open.is_empty() {
            break;
        } else if pos >= text.len() {
            // Spans reaching past the text close here.
            while let Some((close, _)) = open.pop() {
                out.push_str(close);
            }
        }
    }
    out
}

/// One paragraph as a block element, by its kind (list items are `<li>`; the caller
/// wraps runs of them).
fn block(p: &Paragraph) -> String {
    let body = inline(&p.text, &p.spans);
    match p.kind {
        BlockKind::Text => format!("<p>{body}</p>"),
        BlockKind::Heading => format!("<h2>{body}</h2>"),
        BlockKind::ListItem => format!("<li>{body}</li>"),
        BlockKind::Quote => format!("<blockquote>{body}</blockquote>"),
    }
}

/// Paragraphs as HTML blocks, consecutive list items in one `<ul>`.
pub fn blocks<'a>(paragraphs: impl IntoIterator<Item = &'a Paragraph>) -> String {
    let mut out = String::new();
    let mut in_list = false;
    for p in paragraphs {
        let item = p.kind == BlockKind::ListItem;
        if item && !in_list {
            out.push_str("<ul>\n");
        } else if !item && in_list {
            out.push_str("</ul>\n");
        }
        in_list = item;
        out.push_str(&block(p));
        out.push('\n');
    }
    if in_list {
        out.push_str("</ul>\n");
    }
    out
}

/// The translated article as HTML: headline, then its blocks (a fragment when
/// `document` is false, a whole page otherwise).
pub fn translated_article(report: &TranslationReport, document: bool) -> String {
    let mut body = String::new();
    if let Some(t) = &report.title {
        body.push_str(&format!("<h1>{}</h1>\n", escape(t)));
    }
    body.push_str(&blocks(report.paragraphs.iter().map(|p| &p.translated)));
    if !document {
        return body;
    }
    let title = report.title.as_deref().map(escape).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n{body}</body>\n</html>\n",
        report.languages.to
    )
}

/// The translation beside its source, one row per paragraph (headline first).
pub fn translation_side_by_side(report: &TranslationReport) -> String {
    let from = report
        .languages
        .from
        .first()
        .map_or("source".to_string(), |l| l.english_name().to_string());
    let mut out = format!(
        "<table class=\"side-by-side\">\n<thead><tr><th>Source ({})</th><th>Translation ({})</th></tr></thead>\n<tbody>\n",
        escape(&from),
        report.languages.to.english_name()
    );
    if let (Some(s), Some(t)) = (&report.source_title, &report.title) {
        out.push_str(&format!(
            "<tr class=\"headline\"><td><h1>{}</h1></td><td><h1>{}</h1></td></tr>\n",
            escape(s),
            escape(t)
        ));
    }
    for p in &report.paragraphs {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            blocks([&p.source]).trim_end(),
            blocks([&p.translated]).trim_end()
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    if !report.problems.is_empty() {
        out.push_str("<h3>What the checks found</h3>\n<ul class=\"problems\">\n");
        for p in &report.problems {
            let place = p
                .paragraph
                .map_or("headline".to_string(), |i| format!("paragraph {}", i + 1));
            out.push_str(&format!(
                "<li>{}: {}</li>\n",
                escape(&place),
                escape(&p.problem.to_string())
            ));
        }
        out.push_str("</ul>\n");
    }
    out
}

/// The summary beside the article it summarizes.
pub fn summary_side_by_side(article: &crate::article::Article, report: &SummaryReport) -> String {
    let mut source = String::new();
    if let Some(t) = &article.title {
        source.push_str(&format!("<h1>{}</h1>\n", escape(t)));
    }
    source.push_str(&blocks(&article.paragraphs));
    let summary = escape(&report.summary.text()).replace('\n', "<br>\n");
    format!(
        "<table class=\"side-by-side\">\n<thead><tr><th>Article ({})</th><th>Summary ({}, {})</th></tr></thead>\n<tbody>\n<tr><td>{}</td><td class=\"summary\"><p>{}</p></td></tr>\n</tbody>\n</table>\n",
        escape(&report.language.lang),
        escape(&report.engine),
        escape(report.model.as_deref().unwrap_or("no model")),
        source.trim_end(),
        summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize, style: Style) -> Span {
        Span { start, end, style }
    }

    #[test]
    fn escapes_text_and_renders_nested_spans() {
        let text = "See <this> & the report";
        let spans = vec![
            span(4, 10, Style::Strong),
            span(
                13,
                23,
                Style::Link {
                    url: "https://ex.com/?a=1&b=\"2\"".into(),
                },
            ),
            span(17, 23, Style::Emphasis),
        ];
        assert_eq!(
            inline(text, &spans),
            "See <strong>&lt;this&gt;</strong> &amp; <a href=\"https://ex.com/?a=1&amp;b=&quot;2&quot;\">the <em>report</em></a>"
        );
    }

    #[test]
    fn script_urls_lose_their_link_but_keep_their_text() {
        let spans = vec![span(
            0,
            5,
            Style::Link {
                url: " JavaScript:alert(1)".into(),
            },
        )];
        assert_eq!(inline("click", &spans), "click");
        let ok = vec![span(
            0,
            5,
            Style::Link {
                url: "/relative/path".into(),
            },
        )];
        assert_eq!(inline("click", &ok), "<a href=\"/relative/path\">click</a>");
    }

    #[test]
    fn overlapping_and_broken_spans_are_dropped_not_misnested() {
        // 2..6 overlaps 0..4 without nesting; 1..2 cuts the two-byte "й".
        let spans = vec![
            span(0, 4, Style::Strong),
            span(2, 6, Style::Emphasis),
            span(1, 2, Style::Code),
        ];
        let html = inline("йabcd", &spans);
        assert_eq!(html, "<strong>йab</strong>cd");
    }

    #[test]
    fn list_items_share_one_list() {
        let p = |text: &str, kind| Paragraph {
            text: text.into(),
            spans: vec![],
            kind,
        };
        let html = blocks(&[
            p("Intro", BlockKind::Text),
            p("one", BlockKind::ListItem),
            p("two", BlockKind::ListItem),
            p("Quote", BlockKind::Quote),
        ]);
        assert_eq!(
            html,
            "<p>Intro</p>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<blockquote>Quote</blockquote>\n"
        );
    }
}
