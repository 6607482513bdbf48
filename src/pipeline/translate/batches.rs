//! Driving the model for many articles at once: the jobs of every [`Work`] are grouped
//! by what the model is asked (languages, decoding, batch limits), identical texts are
//! translated once, and each group is packed into batches by a padded-token budget
//! ([`pack_batches`]), first attempts and then retries. The CLI's `translate` (one
//! article), `batch` (a group of documents) and `serve` (the requests of many clients)
//! all translate through [`translate_all`].

use std::collections::HashMap;

use super::plan::Plan;
use super::work::Work;
use super::{TranslateOptions, TranslationReport};
use crate::article::{Article, Lang};
use crate::decode::DecodeOptions;
use crate::engine::{Translation, Translator};
use crate::{Error, Result};

/// One model batch of a [`translate_all`] call, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Texts (jobs) in the batch.
    pub rows: usize,
    /// Padded source tokens: rows × the longest row.
    pub padded_tokens: usize,
    /// Distinct articles whose texts the batch holds.
    pub articles: usize,
    /// A second attempt (beam search) of sentences that failed a check.
    pub retry: bool,
}

/// What [`translate_all`] did: one report (or error) per article, in order, and the
/// batches it ran.
#[derive(Debug)]
pub struct Translated {
    /// One per article given, in order.
    pub reports: Vec<Result<TranslationReport>>,
    /// Every model batch, first attempts then retries.
    pub batches: Vec<BatchInfo>,
}

/// Batches of `tokens` (one count per row): the rows sorted longest first (ties in
/// the order given), then cut so that a batch holds at most `max_rows` rows and its
/// padded size (rows × its first, longest row) stays within `token_budget` — a row
/// longer than the budget goes alone. Each batch lists indices into `tokens`.
pub fn pack_batches(tokens: &[usize], token_budget: usize, max_rows: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i]));
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let width = tokens[order[start]].max(1);
        let rows = (token_budget / width).clamp(1, max_rows.max(1));
        let end = (start + rows).min(order.len());
        out.push(order[start..end].to_vec());
        start = end;
    }
    out
}

/// Translates `items` (an article and its options each) with one model; the texts of
/// all of them share the model's batches, retries included. An error belongs to the
/// article it concerns: bad options, or a text the model failed on (a failing batch
/// is run again one text at a time to find whose it is).
pub fn translate_all(
    translator: &mut dyn Translator,
    items: &[(&Article, &TranslateOptions)],
) -> Translated {
    let plans = items.iter().map(|(a, o)| Plan::new(a, o)).collect();
    translate_plans(translator, plans)
}

/// [`translate_all`] of articles already planned (or whose plan failed).
pub fn translate_plans(
    translator: &mut dyn Translator,
    plans: Vec<Result<Plan<'_>>>,
) -> Translated {
    let mut reports: Vec<Option<Result<TranslationReport>>> = Vec::with_capacity(plans.len());
    let mut works: Vec<Option<Work<'_>>> = Vec::with_capacity(plans.len());
    for plan in plans {
        let started = plan.and_then(|plan| {
            if plan.sources().is_empty() {
                Ok(Err(plan.passthrough()))
            } else {
                plan.start(&*translator).map(Ok)
            }
        });
        match started {
            Ok(Ok(work)) => {
                works.push(Some(work));
                reports.push(None);
            }
            Ok(Err(kept)) => {
                works.push(None);
                reports.push(Some(Ok(kept)));
            }
            Err(e) => {
                works.push(None);
                reports.push(Some(Err(e)));
            }
        }
    }
    let mut batches = Vec::new();

    // First attempts.
    let wanted: Vec<Wanted> = works
        .iter()
        .enumerate()
        .filter_map(|(w, work)| Some((w, work.as_ref()?)))
        .flat_map(|(w, work)| {
            work.jobs().iter().enumerate().map(move |(j, job)| Wanted {
                work: w,
                job: j,
                key: GroupKey::of(work, job.from, work.decode().clone()),
                text: job.text.clone(),
                tokens: job.tokens,
            })
        })
        .collect();
    let (mut results, failed) = run_groups(translator, &wanted, false, &mut batches, &mut works);
    for (w, work) in works.iter_mut().enumerate() {
        let Some(work) = work else { continue };
        let outcome = match failed.get(&w) {
            Some(e) => Err(e.replicate()),
            None => {
                let mine = (0..work.jobs().len())
                    .map(|j| results.remove(&(w, j)))
                    .collect::<Option<Vec<Translation>>>()
                    .ok_or_else(|| Error::Model("the translator returned too few results".into()));
                mine.and_then(|r| work.finish(r))
            }
        };
        if let Err(e) = outcome {
            reports[w] = Some(Err(e));
        }
    }
    drop_failed(&mut works, &reports);

    // Retries of the sentences that failed a check.
    let wanted: Vec<Wanted> = works
        .iter()
        .enumerate()
        .filter_map(|(w, work)| Some((w, work.as_ref()?)))
        .flat_map(|(w, work)| {
            let decode = work.retry_decode();
            work.retry_jobs().into_iter().map(move |j| {
                let job = &work.jobs()[j];
                Wanted {
                    work: w,
                    job: j,
                    key: GroupKey::of(work, job.from, decode.clone()),
                    text: job.text.clone(),
                    tokens: job.tokens,
                }
            })
        })
        .collect();
    if !wanted.is_empty() {
        let (mut results, failed) = run_groups(translator, &wanted, true, &mut batches, &mut works);
        for (w, work) in works.iter_mut().enumerate() {
            let Some(work) = work else { continue };
            let ids = work.retry_jobs();
            if ids.is_empty() {
                continue;
            }
            let outcome = match failed.get(&w) {
                Some(e) => Err(e.replicate()),
                None => ids
                    .iter()
                    .map(|&j| results.remove(&(w, j)))
                    .collect::<Option<Vec<Translation>>>()
                    .ok_or_else(|| Error::Model("the translator returned too few results".into()))
                    .and_then(|r| work.finish_retry(r)),
            };
            if let Err(e) = outcome {
                reports[w] = Some(Err(e));
            }
        }
        drop_failed(&mut works, &reports);
    }

    let reports = works
        .into_iter()
        .zip(reports)
        .map(|(work, report)| match (work, report) {
            (_, Some(r)) => r,
            (Some(work), None) => work.report(),
            (None, None) => Err(Error::Model("an article was lost on the way".into())),
        })
        .collect();
    Translated { reports, batches }
}

/// Forgets the works whose article already has its (error) report.
fn drop_failed(works: &mut [Option<Work<'_>>], reports: &[Option<Result<TranslationReport>>]) {
    for (work, report) in works.iter_mut().zip(reports) {
        if report.is_some() {
            *work = None;
        }
    }
}

/// What texts may share a batch: one source and target language, one decoding, one
/// set of batch limits.
#[derive(Debug, Clone, PartialEq)]
struct GroupKey {
    from: Lang,
    to: Lang,
    decode: DecodeOptions,
    batch_tokens: usize,
    max_batch: usize,
}

impl GroupKey {
    fn of(work: &Work<'_>, from: Lang, decode: DecodeOptions) -> GroupKey {
        let (batch_tokens, max_batch) = work.limits();
        GroupKey {
            from,
            to: work.to(),
            decode,
            batch_tokens,
            max_batch,
        }
    }
}

/// A job of one work, with what decides its batch.
struct Wanted {
    work: usize,
    job: usize,
    key: GroupKey,
    text: String,
    tokens: usize,
}

/// A text to translate once for every job that asks for it.
struct Distinct {
    text: String,
    tokens: usize,
    /// `(work, job)` of every job with this text.
    askers: Vec<(usize, usize)>,
}

/// Translates `wanted` in groups (in order of first appearance) and batches; returns
/// the results by `(work, job)` and the error of each work a text failed for.
fn run_groups(
    translator: &mut dyn Translator,
    wanted: &[Wanted],
    retry: bool,
    batches: &mut Vec<BatchInfo>,
    works: &mut [Option<Work<'_>>],
) -> (HashMap<(usize, usize), Translation>, HashMap<usize, Error>) {
    let mut groups: Vec<(GroupKey, Vec<Distinct>, HashMap<String, usize>)> = Vec::new();
    for w in wanted {
        let g = match groups.iter().position(|(k, _, _)| *k == w.key) {
            Some(g) => g,
            None => {
                groups.push((w.key.clone(), Vec::new(), HashMap::new()));
                groups.len() - 1
            }
        };
        let (_, texts, index) = &mut groups[g];
        match index.get(&w.text) {
            Some(&t) => texts[t].askers.push((w.work, w.job)),
            None => {
                index.insert(w.text.clone(), texts.len());
                texts.push(Distinct {
                    text: w.text.clone(),
                    tokens: w.tokens,
                    askers: vec![(w.work, w.job)],
                });
            }
        }
    }
    let mut results = HashMap::with_capacity(wanted.len());
    let mut failed: HashMap<usize, Error> = HashMap::new();
    for (key, texts, _) in &groups {
        let tokens: Vec<usize> = texts.iter().map(|t| t.tokens).collect();
        for batch in pack_batches(&tokens, key.batch_tokens, key.max_batch) {
            let mut articles: Vec<usize> = batch
                .iter()
                .flat_map(|&t| texts[t].askers.iter().map(|a| a.0))
                .collect();
            articles.sort_unstable();
            articles.dedup();
            for &w in &articles {
                if let Some(work) = works[w].as_mut() {
                    work.count_batch();
                }
            }
            batches.push(BatchInfo {
                rows: batch.len(),
                padded_tokens: batch.len() * tokens[batch[0]].max(1),
                articles: articles.len(),
                retry,
            });
            let sources: Vec<&str> = batch.iter().map(|&t| texts[t].text.as_str()).collect();
            let outcomes: Vec<Result<Translation>> = match translate(translator, &sources, key) {
                Ok(done) => done.into_iter().map(Ok).collect(),
                // Alone, each text's error lands on the articles that asked for it.
                Err(_) if batch.len() > 1 => sources
                    .iter()
                    .map(|s| {
                        translate(translator, &[s], key).and_then(|mut one| {
                            one.pop().ok_or_else(|| {
                                Error::Model("the translator returned no result".into())
                            })
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            for (&t, outcome) in batch.iter().zip(outcomes) {
                for &(w, j) in &texts[t].askers {
                    match &outcome {
                        Ok(tr) => {
                            results.insert((w, j), tr.clone());
                        }
                        Err(e) => {
                            failed.entry(w).or_insert_with(|| e.replicate());
                        }
                    }
                }
            }
        }
    }
    (results, failed)
}

/// One model call, its result count checked.
fn translate(
    translator: &mut dyn Translator,
    sources: &[&str],
    key: &GroupKey,
) -> Result<Vec<Translation>> {
    let out = translator.translate_batch(sources, key.from, key.to, &key.decode)?;
    if out.len() != sources.len() {
        return Err(Error::Model(format!(
            "the translator returned {} results for {} segments",
            out.len(),
            sources.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_longest_first_and_within_both_limits() {
        let tokens = [3, 10, 7, 10, 1, 30];
        let b = pack_batches(&tokens, 25, 2);
        // 30 alone (budget), then 10, 10 (2 rows × 10 = 20), then 7, 3 and 1.
        assert_eq!(b, vec![vec![5], vec![1, 3], vec![2, 0], vec![4]]);
        for batch in &b {
            let width = tokens[batch[0]];
            assert!(batch.len() == 1 || batch.len() * width <= 25);
            assert!(batch.iter().all(|&i| tokens[i] <= width));
        }
        assert!(pack_batches(&[], 100, 4).is_empty());
        assert_eq!(pack_batches(&[0, 0, 0], 100, 8), vec![vec![0, 1, 2]]);
    }
}
