//! One article's translation as an explicit plan of model work: the units it is cut
//! into, the texts ([`Job`]s) the model must translate for them, and what comes of the
//! results. A [`Work`] never calls the model itself, so that whoever drives it (one
//! article in `translate`, many documents in `batch`, many clients in `serve`) can pack
//! the jobs of many works into shared batches ([`super::batches`]).
//!
//! The sequence: [`Plan::start`] cuts the article → [`Work::jobs`] → [`Work::finish`]
//! with one result per job → [`Work::retry_jobs`] (sentences that failed a check) →
//! [`Work::finish_retry`] → [`Work::report`].

use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use super::markup::{clip_spans, is_filler, join_units, place_spans, InnerSpan, WholeSpan};
use super::plan::Plan;
use super::split::split_to_fit;
use super::{
    Languages, ReportedProblem, Segment, TranslateStats, TranslatedParagraph, TranslationReport,
};
use crate::article::{lang, sentences, Lang, Span, Style};
use crate::decode::DecodeOptions;
use crate::engine::{Translation, Translator};
use crate::pipeline::checks::{check, Problem};
use crate::{Error, Result};

/// One text the model translates: a sentence, a piece of a long one, or the text of
/// a span inside a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The source text.
    pub text: String,
    /// Its language.
    pub from: Lang,
    /// Source tokens, as the model counts them.
    pub tokens: usize,
}

/// A unit being translated: the headline, or a sentence (run) of a paragraph.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub(super) paragraph: Option<usize>,
    pub(super) from: Lang,
    pub(super) source: String,
    /// Jobs of its pieces, in order.
    pub(super) parts: Vec<usize>,
    pub(super) whole: Vec<WholeSpan>,
    pub(super) inner: Vec<InnerSpan>,
}

/// Where a [`Work`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the results of [`Work::jobs`].
    First,
    /// First results in; retries (if any) not yet done.
    Checked,
    /// Everything in: ready for [`Work::report`].
    Done,
}

/// An article's translation in progress (see the module doc for the sequence).
pub struct Work<'a> {
    plan: Plan<'a>,
    engine: &'static str,
    dtype: Option<&'static str>,
    jobs: Vec<Job>,
    units: Vec<Unit>,
    /// Units of each paragraph, in order.
    by_paragraph: HashMap<usize, Vec<usize>>,
    results: HashMap<usize, Translation>,
    segments: Vec<Segment>,
    /// Units whose first translation failed a check, when retries are on.
    failing: Vec<usize>,
    stage: Stage,
    /// Retries asked for and worth it with this engine.
    retry: bool,
    stats: TranslateStats,
    started: Instant,
}

impl<'a> Plan<'a> {
    /// Cuts the article into units and jobs, counting tokens with `model` (which must be
    /// the model that will translate them: its source limit decides where long
    /// sentences are split).
    pub fn start(self, model: &dyn Translator) -> Result<Work<'a>> {
        let started = Instant::now();
        // Leave the decoder room for a translation longer than its source.
        let limit = (model.max_source_tokens() / 2).max(1);
        let mut cut = Cutter {
            model,
            limit,
            join_sentences: model.prefers_context(),
            jobs: Vec::new(),
            units: Vec::new(),
            by_paragraph: HashMap::new(),
        };
        let article = self.article;
        if let (Some(title), Some(from)) = (article.title.as_deref(), self.title_from) {
            cut.add_unit(None, from, title, &[])?;
        }
        for (i, p) in article.paragraphs.iter().enumerate() {
            let Some(from) = self.paragraph_from[i] else {
                continue;
            };
            for r in cut.unit_ranges(&p.text, from)? {
                let spans = clip_spans(&p.spans, &r);
                cut.add_unit(Some(i), from, &p.text[r], &spans)?;
            }
        }
        let retry = self.opts.retry && model.can_retry_with_beams();
        let stats = TranslateStats {
            units: cut.jobs.len(),
            ..TranslateStats::default()
        };
        Ok(Work {
            plan: self,
            engine: model.engine_name(),
            dtype: model.dtype(),
            jobs: cut.jobs,
            units: cut.units,
            by_paragraph: cut.by_paragraph,
            results: HashMap::new(),
            segments: Vec::new(),
            failing: Vec::new(),
            stage: Stage::First,
            retry,
            stats,
            started,
        })
    }
}

/// Builds units and jobs from an article's text.
struct Cutter<'m> {
    model: &'m dyn Translator,
    limit: usize,
    join_sentences: bool,
    jobs: Vec<Job>,
    units: Vec<Unit>,
    by_paragraph: HashMap<usize, Vec<usize>>,
}

impl Cutter<'_> {
    /// Byte ranges of a paragraph's units: sentences, or runs of them.
    fn unit_ranges(&self, text: &str, from: Lang) -> Result<Vec<Range<usize>>> {
        let sentences = sentences::split(text, Some(from));
        if !self.join_sentences {
            return Ok(sentences);
        }
        let mut out: Vec<Range<usize>> = Vec::new();
        for s in sentences {
            if let Some(last) = out.last_mut() {
                let joined = last.start..s.end;
                if self.model.count_tokens(&text[joined.clone()])? <= self.limit {
                    *last = joined;
                    continue;
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    fn add_job(&mut self, text: &str, from: Lang) -> Result<usize> {
        let tokens = self.model.count_tokens(text)?;
        self.jobs.push(Job {
            text: text.to_string(),
            from,
            tokens,
        });
        Ok(self.jobs.len() - 1)
    }

    /// Adds a unit with `spans` relative to `text`.
    fn add_unit(
        &mut self,
        paragraph: Option<usize>,
        from: Lang,
        text: &str,
        spans: &[Span],
    ) -> Result<()> {
        let pieces = split_to_fit(text, self.limit, &|s| self.model.count_tokens(s))?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            parts.push(self.add_job(piece, from)?);
        }
        let mut whole = Vec::new();
        let mut inner = Vec::new();
        for span in spans {
            let covered = &text[span.start..span.end];
            if covered.trim().is_empty() {
                continue;
            }
            let before = &text[..span.start];
            let after = &text[span.end..];
            if is_filler(before) && is_filler(after) {
                whole.push(WholeSpan {
                    style: span.style.clone(),
                    punct_outside: !after.trim().is_empty(),
                });
                continue;
            }
            let verbatim = match &span.style {
                Style::Code => true,
                Style::Link { url } => covered.trim() == url.as_str(),
                _ => false,
            };
            let job = if verbatim {
                None
            } else {
                Some(self.add_job(covered.trim(), from)?)
            };
            inner.push(InnerSpan {
                style: span.style.clone(),
                job,
                text: covered.trim().to_string(),
            });
        }
        if let Some(p) = paragraph {
            self.by_paragraph
                .entry(p)
                .or_default()
                .push(self.units.len());
        }
        self.units.push(Unit {
            paragraph,
            from,
            source: text.to_string(),
            parts,
            whole,
            inner,
        });
        Ok(())
    }
}

/// Decode options of the second attempt after `first`: beam search (4 beams after
/// greedy, at least 5 otherwise) with `no_repeat_ngram_size = 3`.
pub fn retry_decode(first: &DecodeOptions) -> DecodeOptions {
    DecodeOptions {
        beam_size: if first.beam_size <= 1 {
            4
        } else {
            first.beam_size.max(5)
        },
        no_repeat_ngram_size: 3,
        ..first.clone()
    }
}

impl Work<'_> {
    /// The texts of the first attempt; [`Work::finish`] takes one result per job, in
    /// this order.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The language every job is translated into.
    pub fn to(&self) -> Lang {
        self.plan.opts.to
    }

    /// Decoding of the first attempt.
    pub fn decode(&self) -> &DecodeOptions {
        &self.plan.opts.decode
    }

    /// Decoding of the retries.
    pub fn retry_decode(&self) -> DecodeOptions {
        retry_decode(&self.plan.opts.decode)
    }

    /// Most padded source tokens and most rows in one batch, as the options ask.
    pub fn limits(&self) -> (usize, usize) {
        (self.plan.opts.batch_tokens, self.plan.opts.max_batch)
    }

    /// Counts a model batch this article took part in.
    pub fn count_batch(&mut self) {
        self.stats.batches += 1;
    }

    /// Takes the first attempt's results (one per [`Work::jobs`], in order) and checks
    /// every unit's translation.
    pub fn finish(&mut self, results: Vec<Translation>) -> Result<()> {
        if self.stage != Stage::First {
            return Err(Error::Model("translation results given twice".into()));
        }
        if results.len() != self.jobs.len() {
            return Err(Error::Model(format!(
                "the translator returned {} results for {} segments",
                results.len(),
                self.jobs.len()
            )));
        }
        self.results = results.into_iter().enumerate().collect();
        let to = self.to();
        self.segments = self
            .units
            .iter()
            .map(|u| segment_of(u, to, &self.results))
            .collect();
        self.failing = if self.retry {
            (0..self.segments.len())
                .filter(|&i| !self.segments[i].problems.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        self.stage = if self.failing.is_empty() {
            Stage::Done
        } else {
            Stage::Checked
        };
        Ok(())
    }

    /// Jobs (indices into [`Work::jobs`]) to decode again with [`Work::retry_decode`]:
    /// the pieces of every unit that failed a check. Empty once retried, or when
    /// nothing failed or retries are off.
    pub fn retry_jobs(&self) -> Vec<usize> {
        if self.stage != Stage::Checked {
            return Vec::new();
        }
        self.failing
            .iter()
            .flat_map(|&i| self.units[i].parts.iter().copied())
            .collect()
    }

    /// Takes the retries' results (one per [`Work::retry_jobs`], in order); a unit keeps
    /// its second translation unless that has more problems than the first.
    pub fn finish_retry(&mut self, results: Vec<Translation>) -> Result<()> {
        let ids = self.retry_jobs();
        if results.len() != ids.len() {
            return Err(Error::Model(format!(
                "the translator returned {} results for {} segments",
                results.len(),
                ids.len()
            )));
        }
        let second: HashMap<usize, Translation> = ids.into_iter().zip(results).collect();
        let to = self.to();
        for &i in &self.failing {
            let unit = &self.units[i];
            let mut merged: HashMap<usize, Translation> = unit
                .parts
                .iter()
                .filter_map(|j| {
                    second
                        .get(j)
                        .or(self.results.get(j))
                        .map(|t| (*j, t.clone()))
                })
                .collect();
            let again = segment_of(unit, to, &merged);
            if again.problems.len() <= self.segments[i].problems.len() {
                for &j in &unit.parts {
                    if let Some(t) = merged.remove(&j) {
                        self.results.insert(j, t);
                    }
                }
                self.segments[i] = again;
            }
            self.segments[i].retried = true;
            self.stats.retried += 1;
        }
        self.stage = Stage::Done;
        Ok(())
    }

    /// The translated article: translations, markup and passthrough paragraphs put
    /// together. Units still waiting for a retry keep their first translation.
    pub fn report(self) -> Result<TranslationReport> {
        if self.stage == Stage::First {
            return Err(Error::Model(
                "the article's sentences were never translated".into(),
            ));
        }
        let Work {
            plan,
            engine,
            dtype,
            units,
            by_paragraph,
            results,
            mut segments,
            mut stats,
            started,
            ..
        } = self;
        let article = plan.article;
        let mut placed: Vec<(String, Vec<Span>)> = Vec::with_capacity(units.len());
        for (unit, seg) in units.iter().zip(segments.iter_mut()) {
            let (text, spans, problems) = place_spans(&seg.translation, unit, &results);
            seg.problems.extend(problems);
            placed.push((text, spans));
        }
        let mut title = article.title.clone();
        if plan.title_from.is_some() {
            if let Some(i) = units.iter().position(|u| u.paragraph.is_none()) {
                title = Some(placed[i].0.clone());
            }
        }
        let mut paragraphs = Vec::with_capacity(article.paragraphs.len());
        for (i, p) in article.paragraphs.iter().enumerate() {
            let from = plan.paragraph_from[i];
            let mine = by_paragraph.get(&i);
            let translated = match mine {
                Some(mine) if from.is_some() => {
                    join_units(mine.iter().map(|&u| &placed[u]), p.kind)
                }
                _ => p.clone(),
            };
            paragraphs.push(TranslatedParagraph {
                from: from.or_else(|| lang::detect(&p.text).known()),
                passthrough: from.is_none() || mine.is_none(),
                source: p.clone(),
                translated,
            });
        }
        let mut problems: Vec<ReportedProblem> = segments
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.problems.iter().map(move |p| ReportedProblem {
                    segment: Some(i),
                    paragraph: s.paragraph,
                    problem: p.clone(),
                })
            })
            .collect();
        // In reading order: the headline's first, then by paragraph.
        problems.extend(plan.foreign_problems());
        problems.sort_by_key(|p| p.paragraph.map_or(0, |i| i + 1));
        stats.elapsed_ms = started.elapsed().as_millis();
        Ok(TranslationReport {
            title,
            source_title: article.title.clone(),
            metadata: article.metadata.clone(),
            languages: Languages {
                from: plan.sources(),
                to: plan.opts.to,
            },
            engine: Some(engine.to_string()),
            dtype: dtype.map(str::to_string),
            paragraphs,
            segments,
            problems,
            notes: plan.notes.clone(),
            stats,
        })
    }
}

/// The segment of `unit` from the translations of its parts, checked.
fn segment_of(unit: &Unit, to: Lang, results: &HashMap<usize, Translation>) -> Segment {
    let parts: Vec<&Translation> = unit.parts.iter().filter_map(|j| results.get(j)).collect();
    let translation = parts
        .iter()
        .map(|t| t.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let tokens: usize = parts.iter().map(|t| t.tokens.max(1)).sum();
    // Token-weighted mean of the parts' scores; none when a part has none.
    let score = parts
        .iter()
        .map(|t| t.score.map(|s| s * t.tokens.max(1) as f32))
        .sum::<Option<f32>>()
        .map(|sum| sum / tokens.max(1) as f32);
    let mut problems = check(&unit.source, &translation, unit.from, to);
    if parts.iter().any(|t| t.cut) {
        problems.push(Problem::Cut);
    }
    Segment {
        paragraph: unit.paragraph,
        from: unit.from,
        source: unit.source.clone(),
        translation,
        score,
        parts: unit.parts.len(),
        retried: false,
        problems,
    }
}
