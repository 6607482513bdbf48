//! Articles as text: decoding bytes, reading txt/Markdown/HTML, sentences, languages.
//!
//! This layer knows text, not models.

pub mod lang;
pub mod read;
pub mod sentences;

use serde::Serialize;

/// A news article: headline, metadata found in the text, and body paragraphs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Article {
    /// The headline, when the text has one.
    pub title: Option<String>,
    /// Facts about the article that are not body text (date, credit, source URL...).
    pub metadata: Metadata,
    /// Body paragraphs in reading order.
    pub paragraphs: Vec<Paragraph>,
}

/// Metadata lines recognised in the text and taken out of the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata {
    /// The dateline as written ("September 04, 2020").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The same date as ISO 8601 (YYYY-MM-DD) when it could be parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_iso: Option<String>,
    /// Author or byline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Photo caption, without the credit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Photo credit ("Natalia Fedosenko / TASS").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
    /// Where the article was published ("Original url:" footer, canonical link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Other labelled lines ("Related article: ...") as (label, value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<(String, String)>,
}

/// One body paragraph: plain text plus the inline markup that was on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Paragraph {
    /// The text with markup removed (what models see).
    pub text: String,
    /// Inline markup as byte ranges of `text`, sorted by start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
    /// What kind of block this paragraph is.
    pub kind: BlockKind,
}

/// The kind of a block of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Ordinary body text.
    #[default]
    Text,
    /// A sub-heading inside the body.
    Heading,
    /// An item of a list.
    ListItem,
    /// A block quote.
    Quote,
}

/// Inline markup over a byte range of a paragraph's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Start byte offset in the paragraph text (inclusive).
    pub start: usize,
    /// End byte offset in the paragraph text (exclusive).
    pub end: usize,
    /// What the markup is.
    pub style: Style,
}

impl Span {
    /// The spans of `text` that cover whole characters inside it, in opening order
    /// (outer before inner at the same start): the order a writer of nested markup
    /// opens them in.
    pub fn in_nesting_order<'a>(text: &str, spans: &'a [Span]) -> Vec<&'a Span> {
        let mut order: Vec<&Span> = spans
            .iter()
            .filter(|s| {
                s.start < s.end
                    && s.end <= text.len()
                    && text.is_char_boundary(s.start)
                    && text.is_char_boundary(s.end)
            })
            .collect();
        order.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        order
    }
}

/// Inline markup kinds kept through processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Style {
    /// A hyperlink; the URL is never translated.
    Link { url: String },
    /// `**strong**` text.
    Strong,
    /// `*emphasis*` text.
    Emphasis,
    /// `` `code` `` text, never translated.
    Code,
}

/// A language svodka knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Russian.
    Ru,
    /// English.
    En,
}

impl Lang {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    /// The English name ("Russian", "English"), as prompts and messages use it.
    pub fn english_name(self) -> &'static str {
        match self {
            Lang::Ru => "Russian",
            Lang::En => "English",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}
