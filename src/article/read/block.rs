//! Blocks of text as the Markdown and HTML readers produce them, before the article
//! heuristics decide what is title, metadata and body.

use std::cmp::Reverse;

use crate::article::{BlockKind, Paragraph, Span, Style};

/// One block from a reader: a paragraph plus what the heuristics need to know about it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Block {
    pub para: Paragraph,
    /// Heading level (1-6), 0 when the block is not a heading.
    pub level: u8,
    /// The block was a single line in the source (a headline candidate).
    pub single_line: bool,
}

/// Whitespace that is collapsed; no-break spaces are kept on purpose (Russian typography
/// uses them in numbers and initials).
fn collapses(c: char) -> bool {
    c.is_whitespace() && c != '\u{A0}' && c != '\u{202F}'
}

/// Accumulates a block's text with whitespace collapsed, plus its inline spans.
#[derive(Debug)]
pub(super) struct BlockBuilder {
    text: String,
    pending_space: bool,
    spans: Vec<Span>,
    kind: BlockKind,
    level: u8,
    single_line: bool,
}

impl BlockBuilder {
    pub fn new(kind: BlockKind, level: u8, single_line: bool) -> Self {
        Self {
            text: String::new(),
            pending_space: false,
            spans: Vec::new(),
            kind,
            level,
            single_line,
        }
    }

    /// Appends text; runs of whitespace become one space, none at the start.
    pub fn push_text(&mut self, s: &str) {
        for c in s.chars() {
            if collapses(c) {
                self.pending_space = !self.text.is_empty();
            } else {
                if self.pending_space {
                    self.text.push(' ');
                    self.pending_space = false;
                }
                self.text.push(c);
            }
        }
    }

    /// Where a span opened now starts (fixed up in [`finish`](Self::finish)).
    pub fn mark(&self) -> usize {
        self.text.len()
    }

    /// Closes a span opened at `start`.
    pub fn add_span(&mut self, start: usize, style: Style) {
        let end = self.text.len();
        if end > start {
            self.spans.push(Span { start, end, style });
        }
    }

    /// The finished block, or `None` when it holds no text.
    pub fn finish(self) -> Option<Block> {
        let text = self.text;
        if text.is_empty() {
            return None;
        }
        // A span opened before a collapsed space starts on that space: move it past.
        let mut spans: Vec<Span> = self
            .spans
            .into_iter()
            .map(|mut span| {
                span.end = span.end.min(text.len());
                while span.start < span.end && text[span.start..].starts_with(' ') {
                    span.start += 1;
                }
                while span.end > span.start && text[..span.end].ends_with(' ') {
                    span.end -= 1;
                }
                span
            })
            .filter(|span| span.start < span.end)
            .collect();
        // Outer spans first where two start together, so nesting reads in order.
        spans.sort_by_key(|s| (s.start, Reverse(s.end)));
        Some(Block {
            para: Paragraph {
                text,
                spans,
                kind: self.kind,
            },
            level: self.level,
            single_line: self.single_line,
        })
    }
}

/// Appends `next` to `prev` with one space, shifting `next`'s spans.
pub(super) fn join(prev: &mut Block, next: Block) {
    let shift = prev.para.text.len() + 1;
    prev.para.text.push(' ');
    prev.para.text.push_str(&next.para.text);
    prev.para
        .spans
        .extend(next.para.spans.into_iter().map(|s| Span {
            start: s.start + shift,
            end: s.end + shift,
            style: s.style,
        }));
    prev.single_line = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_whitespace_and_trims_spans() {
        let mut b = BlockBuilder::new(BlockKind::Text, 0, true);
        b.push_text("  news \n\t");
        let start = b.mark();
        b.push_text(" outlets  reported ");
        b.add_span(start, Style::Strong);
        b.push_text("after\u{A0}talks  ");
        let block = b.finish().unwrap();
        assert_eq!(block.para.text, "news outlets reported after\u{A0}talks");
        let s = &block.para.spans[0];
        assert_eq!(&block.para.text[s.start..s.end], "outlets reported");
    }

    #[test]
    fn empty_builder_gives_no_block() {
        let mut b = BlockBuilder::new(BlockKind::Text, 0, true);
        b.push_text(" \n ");
        assert!(b.finish().is_none());
    }

    #[test]
    fn join_shifts_spans() {
        let mut a = BlockBuilder::new(BlockKind::Text, 0, true);
        a.push_text("resolving");
        let mut b = BlockBuilder::new(BlockKind::Text, 0, true);
        b.push_text("pressing ");
        let m = b.mark();
        b.push_text("issues");
        b.add_span(m, Style::Emphasis);
        let mut a = a.finish().unwrap();
        join(&mut a, b.finish().unwrap());
        assert_eq!(a.para.text, "resolving pressing issues");
        let s = &a.para.spans[0];
        assert_eq!(&a.para.text[s.start..s.end], "issues");
    }
}
