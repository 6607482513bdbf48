//! Putting inline markup (links, emphasis, code) back into translated sentences
//! without placeholders, which models mangle.

use std::collections::HashMap;
use std::ops::Range;

use super::work::Unit;
use crate::article::{BlockKind, Paragraph, Span, Style};
use crate::engine::Translation;
use crate::pipeline::checks::Problem;

/// A span of a unit that is not the whole unit: its text is looked up in the translation.
#[derive(Debug, Clone)]
pub(super) struct InnerSpan {
    pub(super) style: Style,
    /// Index of the job translating its text; `None`: the text is kept verbatim.
    pub(super) job: Option<usize>,
    /// The source text of the span.
    pub(super) text: String,
}

/// A span that covers a whole unit.
#[derive(Debug, Clone)]
pub(super) struct WholeSpan {
    pub(super) style: Style,
    /// The source unit ends in punctuation outside the span, which the translation's
    /// final punctuation is then kept out of.
    pub(super) punct_outside: bool,
}

/// Whether `s` holds nothing but whitespace and punctuation.
pub(super) fn is_filler(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_whitespace() || c.is_ascii_punctuation() || "…»«“”„–—".contains(c))
}

/// The spans of a paragraph inside `range`, clipped to it and made relative to it.
pub(super) fn clip_spans(spans: &[Span], range: &Range<usize>) -> Vec<Span> {
    spans
        .iter()
        .filter_map(|s| {
            let start = s.start.max(range.start);
            let end = s.end.min(range.end);
            (start < end).then(|| Span {
                start: start - range.start,
                end: end - range.start,
                style: s.style.clone(),
            })
        })
        .collect()
}

/// The translated unit text with its markup, and the markup problems.
pub(super) fn place_spans(
    translation: &str,
    unit: &Unit,
    results: &HashMap<usize, Translation>,
) -> (String, Vec<Span>, Vec<Problem>) {
    let mut text = translation.to_string();
    let mut spans = Vec::new();
    let mut problems = Vec::new();
    for w in &unit.whole {
        let body = text.trim_end();
        let end = if w.punct_outside {
            body.trim_end_matches(['.', '!', '?', '…', ';', ':', ','])
                .len()
        } else {
            body.len()
        };
        if end > 0 {
            spans.push(Span {
                start: 0,
                end,
                style: w.style.clone(),
            });
        }
    }
    for s in &unit.inner {
        let needle = match s.job.and_then(|j| results.get(&j)) {
            Some(t) => t
                .text
                .trim()
                .trim_end_matches(['.', '!', '?', '…'])
                .to_string(),
            None => s.text.clone(),
        };
        if needle.is_empty() {
            continue;
        }
        if let Some(r) = find_text(&text, &needle) {
            spans.push(Span {
                start: r.start,
                end: r.end,
                style: s.style.clone(),
            });
            continue;
        }
        match &s.style {
            Style::Link { .. } | Style::Code => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push('(');
                let start = text.len();
                text.push_str(&needle);
                spans.push(Span {
                    start,
                    end: text.len(),
                    style: s.style.clone(),
                });
                text.push(')');
                if matches!(s.style, Style::Link { .. }) {
                    problems.push(Problem::LinkMoved { text: needle });
                }
            }
            Style::Strong | Style::Emphasis => {
                problems.push(Problem::MarkupDropped { text: needle })
            }
        }
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    (text, spans, problems)
}

/// Byte range of `needle` in `hay` as whole words: exact first, then ignoring case
/// where lowercasing keeps byte offsets.
pub(super) fn find_text(hay: &str, needle: &str) -> Option<Range<usize>> {
    let whole_words = |h: &str, n: &str| -> Option<Range<usize>> {
        h.match_indices(n).map(|(i, _)| i..i + n.len()).find(|r| {
            let before = h[..r.start].chars().next_back();
            let after = h[r.end..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    };
    if let Some(r) = whole_words(hay, needle) {
        return Some(r);
    }
    let (lh, ln) = (hay.to_lowercase(), needle.to_lowercase());
    if lh.len() != hay.len() || ln.len() != needle.len() {
        return None;
    }
    whole_words(&lh, &ln)
}

/// A paragraph from translated units, joined by spaces, spans shifted.
pub(super) fn join_units<'a>(
    units: impl Iterator<Item = &'a (String, Vec<Span>)>,
    kind: BlockKind,
) -> Paragraph {
    let mut text = String::new();
    let mut spans = Vec::new();
    for (t, ss) in units {
        if t.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        let offset = text.len();
        text.push_str(t);
        spans.extend(ss.iter().map(|s| Span {
            start: s.start + offset,
            end: s.end + offset,
            style: s.style.clone(),
        }));
    }
    Paragraph { text, spans, kind }
}
