//! Translating whole articles with any [`Translator`].
//!
//! The article is cut into units the model handles well: sentences (or, for engines
//! that prefer more context, runs of sentences of one paragraph), and a sentence longer
//! than half the model's source limit is split at clause boundaries (`;`, `:`, dashes,
//! commas), then between words — never truncated. Units of one source language are
//! sorted by length, packed into batches by a padded-token budget, translated, and put
//! back in order. Each sentence's translation is checked against its source (numbers
//! both ways, URLs, quotes, self-repetition, length, cut-off: [`super::checks`]); a
//! failing one is decoded again with beam search and `no_repeat_ngram_size = 3`, and
//! what still fails is reported, never hidden.
//!
//! Inline markup is restored without placeholders, which models mangle:
//! - a span covering a whole sentence covers its whole translation;
//! - a span inside a sentence has its text translated as a separate unit (code is kept
//!   verbatim), which is then looked up in the sentence's translation and marked there;
//! - a link whose text is not found is appended after the sentence as
//!   ` ([text](url))`, so that no URL is lost; emphasis that is not found is dropped.
//!   Both are reported as problems of the sentence.
//!
//! Paragraphs already in the target language, or with no recognisable language, pass
//! through unchanged; the headline is translated, metadata is kept as it is.

use serde::Serialize;

use crate::article::{Article, Lang, Metadata, Paragraph};
use crate::decode::DecodeOptions;
use crate::engine::Translator;
use crate::{Error, Result};

mod batches;
mod markup;
mod plan;
mod split;
mod work;

pub use super::checks::{check, Problem};
pub use batches::{pack_batches, translate_all, translate_plans, BatchInfo, Translated};
pub use plan::Plan;
pub use split::split_to_fit;
pub use work::{retry_decode, Job, Work};

/// How to translate an article.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslateOptions {
    /// Language to translate into.
    pub to: Lang,
    /// Source language of every paragraph; `None` detects it per paragraph.
    pub from: Option<Lang>,
    /// Decoding of the first attempt.
    pub decode: DecodeOptions,
    /// Decode sentences that fail a check again with beam search, where the engine can
    /// ([`Translator::can_retry_with_beams`]).
    pub retry: bool,
    /// Most padded source tokens in one batch (rows × longest row).
    pub batch_tokens: usize,
    /// Most segments in one batch.
    pub max_batch: usize,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            to: Lang::En,
            from: None,
            decode: default_decode(1),
            retry: true,
            batch_tokens: 4096,
            max_batch: 32,
        }
    }
}

/// Decode options for translation with `beam` beams: a translation may be at most three
/// times as long as its source plus 10 tokens, which stops runaway loops early.
pub fn default_decode(beam: usize) -> DecodeOptions {
    DecodeOptions {
        beam_size: beam.max(1),
        max_length_ratio: Some(3.0),
        max_length_offset: 10,
        ..DecodeOptions::default()
    }
}

/// One translated unit: a sentence (or a run of sentences) or the headline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Index of the paragraph in the article; `None` for the headline.
    pub paragraph: Option<usize>,
    /// Source language.
    pub from: Lang,
    /// The source text.
    pub source: String,
    /// The translation.
    pub translation: String,
    /// Model score (mean log-probability per token); `None` (`null` in JSON) when the
    /// engine has none.
    pub score: Option<f32>,
    /// Pieces the source was split into to fit the model (1 when it fitted).
    pub parts: usize,
    /// Whether it was decoded a second time after failing a check.
    pub retried: bool,
    /// What the checks found wrong with the final translation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// A paragraph of the translated article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslatedParagraph {
    /// Language of the source paragraph, when known.
    pub from: Option<Lang>,
    /// Kept unchanged: already in the target language, or no language recognised.
    pub passthrough: bool,
    /// The source paragraph.
    pub source: Paragraph,
    /// The translation, with its inline markup.
    pub translated: Paragraph,
}

/// Source and target languages of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Languages {
    /// Languages translated from, in order of first appearance.
    pub from: Vec<Lang>,
    /// Language translated into.
    pub to: Lang,
}

/// Counts of the work done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TranslateStats {
    /// Units sent to the model (sentence pieces and span texts), retries excluded.
    pub units: usize,
    /// Batches run, retries included.
    pub batches: usize,
    /// Segments decoded a second time.
    pub retried: usize,
    /// Wall time in milliseconds.
    pub elapsed_ms: u128,
}

/// One problem with where it is, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportedProblem {
    /// Index into [`TranslationReport::segments`]; absent for a paragraph kept whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<usize>,
    /// Paragraph of the segment (`None`: headline).
    pub paragraph: Option<usize>,
    /// What is wrong.
    #[serde(flatten)]
    pub problem: Problem,
}

/// A translated article with everything known about the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslationReport {
    /// The translated headline.
    pub title: Option<String>,
    /// The headline as it was.
    pub source_title: Option<String>,
    /// Metadata, kept as it was.
    pub metadata: Metadata,
    /// Languages.
    pub languages: Languages,
    /// Engine that translated ("marian", "llm"), or `None` when nothing needed it.
    pub engine: Option<String>,
    /// Number format of the engine's weights ("f32", "int8"), where it has a choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Paragraphs in order.
    pub paragraphs: Vec<TranslatedParagraph>,
    /// Every translated unit, in reading order (headline first).
    pub segments: Vec<Segment>,
    /// Every problem of every segment.
    pub problems: Vec<ReportedProblem>,
    /// Remarks on the run (passthrough paragraphs and the like).
    pub notes: Vec<String>,
    /// Work done.
    pub stats: TranslateStats,
}

impl Plan<'_> {
    /// Translates with `translator`, which may be `None` only when [`Plan::sources`] is
    /// empty (the article is then kept as it is).
    pub fn run(self, translator: Option<&mut dyn Translator>) -> Result<TranslationReport> {
        match translator {
            Some(t) => translate_plans(t, vec![Ok(self)])
                .reports
                .pop()
                .unwrap_or_else(|| Err(Error::Model("no translation came back".into()))),
            None if self.sources().is_empty() => Ok(self.passthrough()),
            None => Err(Error::Model(
                "there is text to translate but no model was given".into(),
            )),
        }
    }
}

/// Translates `article` with `translator` (one article through [`translate_all`]).
pub fn translate(
    article: &Article,
    translator: &mut dyn Translator,
    opts: &TranslateOptions,
) -> Result<TranslationReport> {
    Plan::new(article, opts)?.run(Some(translator))
}

#[cfg(test)]
mod tests;
