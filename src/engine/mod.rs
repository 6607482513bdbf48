//! Engines: one model family each, behind small traits the pipelines use.

pub mod attention;
pub mod check;
pub mod extractive;
pub mod int8;
mod layers;
pub mod llm;
pub mod load;
pub mod marian;
pub mod packed;
pub mod t5;
pub mod translator;

use crate::article::{Article, Lang};
use serde::Serialize;

/// The shape a summary takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryStyle {
    /// A short paragraph.
    #[default]
    Brief,
    /// Bullet points.
    Bullets,
    /// One headline.
    Headline,
}

impl SummaryStyle {
    /// The name prompts use.
    pub fn name(self) -> &'static str {
        match self {
            SummaryStyle::Brief => "brief",
            SummaryStyle::Bullets => "bullets",
            SummaryStyle::Headline => "headline",
        }
    }
}

/// How long and in what shape a summary should be.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOptions {
    /// Number of sentences wanted.
    pub sentences: usize,
    /// Word budget instead of a sentence count, when given.
    pub words: Option<usize>,
    /// Language of the summary; `None` means the article's own.
    pub lang: Option<Lang>,
    /// Shape of the summary (neural engines).
    pub style: SummaryStyle,
    /// Generation settings (neural engines).
    pub generation: llm::GenerateOptions,
    /// Cap on generated tokens per request; `None` derives it from the length asked.
    pub max_tokens: Option<usize>,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            sentences: 3,
            words: None,
            lang: None,
            style: SummaryStyle::default(),
            generation: llm::GenerateOptions::default(),
            max_tokens: None,
        }
    }
}

/// One sentence of a summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummarySentence {
    /// The sentence text.
    pub text: String,
    /// Index of the article paragraph it came from (extractive summaries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paragraph: Option<usize>,
    /// The ranking score that chose it (extractive summaries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A summary as produced by an engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The summary's sentences, in the order they should be read.
    pub sentences: Vec<SummarySentence>,
    /// Language the summary is written in.
    pub lang: Lang,
}

impl Summary {
    /// The summary as one paragraph of prose.
    pub fn text(&self) -> String {
        self.sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Something that turns a whole article into a summary by itself.
pub trait Summarizer {
    /// Short name of the engine, as given to `--engine`.
    fn name(&self) -> &'static str;
    /// Summarize `article` (whose dominant language is `lang`).
    fn summarize(
        &mut self,
        article: &Article,
        lang: Lang,
        opts: &SummaryOptions,
    ) -> crate::Result<Summary>;
}

/// What a neural writer is asked to do with a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTask {
    /// Summarize an article or a part of one.
    Summarize,
    /// Merge partial summaries of consecutive parts into one.
    Reduce,
    /// Translate.
    Translate,
}

impl WriteTask {
    /// The prompt key of the task.
    pub fn key(self) -> &'static str {
        match self {
            WriteTask::Summarize => "summarize",
            WriteTask::Reduce => "reduce",
            WriteTask::Translate => "translate",
        }
    }
}

/// One request to a neural writer.
#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    /// The job.
    pub task: WriteTask,
    /// The input text.
    pub text: &'a str,
    /// Language to write in.
    pub lang: Lang,
    /// Language of the input.
    pub source_lang: Lang,
    /// Length, style and generation settings.
    pub opts: &'a SummaryOptions,
}

/// What a neural writer wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The text.
    pub text: String,
    /// Tokens read (prompt included).
    pub tokens_in: usize,
    /// Tokens generated.
    pub tokens_out: usize,
    /// The output began to repeat itself and was cut.
    pub looped: bool,
}

/// A model with a bounded context that writes text for a request: map-reduce
/// summarization and LLM translation are built on it.
pub trait TextWriter {
    /// Short name of the engine ("llm", "t5").
    fn engine_name(&self) -> &'static str;
    /// Tokens of `text`.
    fn count_tokens(&self, text: &str) -> crate::Result<usize>;
    /// How many tokens of input text one request for `req` can take.
    fn input_budget(&self, req: &WriteRequest) -> crate::Result<usize>;
    /// Writes for `req`, handing text pieces to `on_text` as they come.
    fn write(
        &mut self,
        req: &WriteRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> crate::Result<Written>;
}

/// One translated segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Translation {
    /// The translation.
    pub text: String,
    /// Model score: mean log-probability per generated token (higher is surer); `None`
    /// for engines that have none (the LLM translator), `null` in JSON.
    pub score: Option<f32>,
    /// Generated tokens.
    pub tokens: usize,
    /// Generation stopped at its length limit instead of ending the sentence.
    pub cut: bool,
}

/// A model that translates batches of short segments (sentences).
pub trait Translator {
    /// Short name of the engine ("marian", "llm").
    fn engine_name(&self) -> &'static str;
    /// Number format of the model's weights ("f32", "int8", ...), where the engine has a
    /// choice of them.
    fn dtype(&self) -> Option<&'static str> {
        None
    }
    /// Tokens `text` takes as a source, special tokens included.
    fn count_tokens(&self, text: &str) -> crate::Result<usize>;
    /// Longest source, in tokens, the model accepts.
    fn max_source_tokens(&self) -> usize;
    /// Whether decoding a sentence again with beam search can give a different, better
    /// translation (a model with a search to widen), so that a sentence failing a check
    /// is worth a second attempt.
    fn can_retry_with_beams(&self) -> bool {
        false
    }
    /// Whether the model translates a run of sentences better than each alone (an LLM,
    /// which uses the context) rather than sentence by sentence (Marian, trained on
    /// sentences).
    fn prefers_context(&self) -> bool {
        false
    }
    /// Translates `segments` from `from` into `to`, one result per segment, in order.
    fn translate_batch(
        &mut self,
        segments: &[&str],
        from: Lang,
        to: Lang,
        opts: &crate::decode::DecodeOptions,
    ) -> crate::Result<Vec<Translation>>;
}
