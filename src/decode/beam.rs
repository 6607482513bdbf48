//! Batched beam search with transformers' semantics (its `_beam_search` since 4.50).
//!
//! Per source and step: the `max(2, 1 + eos count) × beam_size` best continuations of
//! all its beams are ranked by summed log-probability; those ending in end-of-sequence
//! (or reaching the length limit) become finished hypotheses if they rank among the
//! first `beam_size`, scored `sum / generated_len ^ length_penalty`; the best
//! `beam_size` others keep running. A source stops per [`EarlyStopping`] and its rows
//! leave the batch. transformers starts every source with `beam_size` copies of the
//! start row (all but one at -1e9); starting with one row is the same search.

use super::processors::{
    banned_tokens, log_softmax_in_place, log_sum_exp, only_bans, process_row, top_k, top_k_slice,
};
use super::{
    normalized, par_rows, with_host_rows, DecodeInput, DecodeOptions, EarlyStopping, Hypothesis,
    StepModel,
};
use crate::Result;
use std::cmp::Ordering;

struct Beam {
    /// Decoder input so far, start token included.
    history: Vec<u32>,
    logprob: f32,
}

struct Finished {
    history: Vec<u32>,
    score: f32,
    ended: bool,
}

struct Source {
    index: usize,
    max_len: usize,
    beams: Vec<Beam>,
    /// Best first, at most `beam_size`.
    finished: Vec<Finished>,
}

impl Source {
    fn add_finished(&mut self, beam_size: usize, f: Finished) {
        let at = self.finished.partition_point(|x| x.score >= f.score);
        if at < beam_size {
            self.finished.insert(at, f);
            self.finished.truncate(beam_size);
        }
    }

    /// transformers' `_check_early_stop_heuristic` and `early_stopping=True` rule, after
    /// a step that generated `generated` tokens and left `best_running` as top beam.
    fn is_done(&self, opts: &DecodeOptions, generated: usize, best_running: f32) -> bool {
        if self.finished.len() < opts.beam_size {
            return false;
        }
        let lp = opts.length_penalty;
        let hypothetical_len = match opts.early_stopping {
            EarlyStopping::Always => return true,
            EarlyStopping::Never if lp > 0.0 => self.max_len,
            _ => generated,
        };
        let best_possible = normalized(best_running, hypothetical_len, lp);
        let worst = self.finished.last().map_or(f32::NEG_INFINITY, |f| f.score);
        best_possible <= worst
    }

    fn into_hypothesis(mut self, opts: &DecodeOptions) -> Hypothesis {
        let (mut history, score, ended) = if self.finished.is_empty() {
            // Unreachable in practice: the length limit finishes the top beams.
            let beam = self.beams.swap_remove(0);
            let generated = beam.history.len() - 1;
            let score = normalized(beam.logprob, generated.max(1), opts.length_penalty);
            (beam.history, score, false)
        } else {
            let f = self.finished.swap_remove(0);
            (f.history, f.score, f.ended)
        };
        let mut tokens = history.split_off(1);
        if ended {
            tokens.pop();
        }
        Hypothesis {
            tokens,
            ended,
            score,
        }
    }
}

pub(super) fn run<M: StepModel + ?Sized>(
    model: &mut M,
    input: &DecodeInput,
    opts: &DecodeOptions,
) -> Result<Vec<Hypothesis>> {
    let k = opts.beam_size;
    let candidates = 2.max(1 + opts.eos_token_ids.len()) * k;
    let mut done: Vec<Option<Hypothesis>> = (0..input.source_lens.len()).map(|_| None).collect();
    let mut open: Vec<Source> = input
        .source_lens
        .iter()
        .enumerate()
        .map(|(index, &len)| Source {
            index,
            max_len: opts.max_length_for(len),
            beams: vec![Beam {
                history: vec![input.start_token],
                logprob: 0.0,
            }],
            finished: Vec::new(),
        })
        .collect();
    let mut last = vec![input.start_token; open.len()];
    let mut generated = 0usize;
    loop {
        let rows = last.len();
        let logits = model.step(&last)?;
        generated += 1;
        let beams: Vec<&Beam> = open.iter().flat_map(|s| &s.beams).collect();
        // Each row's best continuations; a source's best are among its rows' best.
        let (row_best, vocab) = with_host_rows(&logits, rows, |flat, vocab| {
            let best = par_rows(flat, vocab, |r, raw| {
                let beam = beams[r];
                row_candidates(
                    raw,
                    &beam.history,
                    generated - 1,
                    beam.logprob,
                    candidates,
                    opts,
                )
            });
            Ok((best, vocab))
        })?;
        drop(beams);
        let mut next_rows: Vec<u32> = Vec::with_capacity(rows);
        let mut next_last: Vec<u32> = Vec::with_capacity(rows);
        let mut still_open: Vec<Source> = Vec::with_capacity(open.len());
        let mut row0 = 0usize;
        for mut src in open.drain(..) {
            let n = src.beams.len();
            let mut ranked: Vec<(usize, f32)> = row_best[row0..row0 + n]
                .iter()
                .enumerate()
                .flat_map(|(b, best)| best.iter().map(move |&(v, s)| (b * vocab + v, s)))
                .collect();
            // Best first, lower flat index first among equals, as a top-k over all rows.
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(candidates);
            let beams = &src.beams;
            let at_max = generated >= src.max_len;
            let mut running: Vec<(usize, u32, f32)> = Vec::with_capacity(k);
            let mut new_finished: Vec<Finished> = Vec::new();
            for (rank, &(i, total)) in ranked.iter().enumerate() {
                let (b, token) = (i / vocab, (i % vocab) as u32);
                let ended = opts.is_eos(token);
                if ended || at_max {
                    if rank < k {
                        let mut history = beams[b].history.clone();
                        history.push(token);
                        new_finished.push(Finished {
                            history,
                            score: normalized(total, generated, opts.length_penalty),
                            ended,
                        });
                    }
                } else if running.len() < k {
                    running.push((b, token, total));
                }
            }
            for f in new_finished {
                src.add_finished(k, f);
            }
            let finished_now =
                at_max || running.is_empty() || src.is_done(opts, generated, running[0].2);
            if finished_now {
                let index = src.index;
                done[index] = Some(src.into_hypothesis(opts));
            } else {
                let mut beams = Vec::with_capacity(running.len());
                for &(b, token, total) in &running {
                    let mut history = src.beams[b].history.clone();
                    history.push(token);
                    beams.push(Beam {
                        history,
                        logprob: total,
                    });
                    next_rows.push((row0 + b) as u32);
                    next_last.push(token);
                }
                src.beams = beams;
                still_open.push(src);
            }
            row0 += n;
        }
        if still_open.is_empty() {
            break;
        }
        let identity =
            next_rows.len() == rows && next_rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        if !identity {
            model.reorder(&next_rows)?;
        }
        open = still_open;
        last = next_last;
    }
    Ok(done
        .into_iter()
        .map(|h| {
            h.unwrap_or(Hypothesis {
                tokens: Vec::new(),
                ended: false,
                score: f32::NEG_INFINITY,
            })
        })
        .collect())
}

/// The `n` best `(token, beam log-prob + token log-prob)` of one row of raw logits, as
/// transformers ranks them: log-softmax, processors, then a top-k with ties in token
/// order.
fn row_candidates(
    raw: &[f32],
    history: &[u32],
    generated: usize,
    base: f32,
    n: usize,
    opts: &DecodeOptions,
) -> Vec<(usize, f32)> {
    if only_bans(opts) {
        if let Some(best) = shifted_candidates(raw, history, generated, base, n, opts) {
            return best;
        }
    }
    let mut scores = raw.to_vec();
    // transformers processes log-probabilities in beam search.
    log_softmax_in_place(&mut scores);
    process_row(&mut scores, history, generated, opts);
    top_k(scores.iter().map(|&s| base + s), n)
}

/// [`row_candidates`] when the processors only ban tokens: log-softmax is a shift of the
/// row, so the best raw scores are the best log-probabilities and only they are shifted,
/// with the same arithmetic. `None` when the shift could merge the `n`-th and the next
/// candidate into a tie (which token order would then break), or the row is degenerate.
fn shifted_candidates(
    raw: &[f32],
    history: &[u32],
    generated: usize,
    base: f32,
    n: usize,
    opts: &DecodeOptions,
) -> Option<Vec<(usize, f32)>> {
    if n == 0 {
        return None;
    }
    let lse = log_sum_exp(raw);
    if !lse.is_finite() {
        return None;
    }
    let mut banned = banned_tokens(history, generated, opts);
    banned.sort_unstable();
    banned.dedup();
    let mut best: Vec<(usize, f32)> = top_k_slice(raw, n + 1 + banned.len())
        .into_iter()
        .filter(|&(i, _)| u32::try_from(i).map_or(true, |t| banned.binary_search(&t).is_err()))
        .take(n + 1)
        .map(|(i, s)| (i, base + (s - lse)))
        .collect();
    if best.len() <= n || best[n].1 >= best[n - 1].1 {
        return None;
    }
    best.truncate(n);
    best.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::super::toy::{ln_probs, ToyModel};
    use super::super::*;

    // vocab: 0 eos, 1, 2, 3, 4 = start (suppressed)
    fn model(sources: usize) -> ToyModel {
        let mut m = ToyModel::new(5, sources, 4, vec![0.0; 5]);
        m.set(&[4], &[0.5, 0.3, 0.15, 0.04, 0.01]);
        m.set(&[4, 1], &[0.1, 0.0, 0.0, 0.9, 0.0]);
        m.set(&[4, 2], &[0.9, 0.0, 0.0, 0.1, 0.0]);
        m.set(&[4, 1, 3], &[0.99, 0.0, 0.0, 0.01, 0.0]);
        m.default = ln_probs(&[0.9, 0.025, 0.025, 0.05, 0.0]);
        m
    }

    fn opts(early_stopping: EarlyStopping) -> DecodeOptions {
        DecodeOptions {
            beam_size: 2,
            early_stopping,
            eos_token_ids: vec![0],
            suppress_tokens: vec![4],
            max_new_tokens: 10,
            ..DecodeOptions::default()
        }
    }

    fn input(lens: Vec<usize>) -> DecodeInput {
        DecodeInput {
            start_token: 4,
            source_lens: lens,
        }
    }

    #[test]
    fn early_stopping_modes() {
        // After step 2 two hypotheses have finished: "" (-0.693) and "2" (-1.001).
        // Always stops there; the heuristic sees the running "1 3" at -1.309 / 2 and goes
        // on to find "1 3" (-1.319 / 3); never also scores the running beam at length 10.
        let expect = [
            (EarlyStopping::Always, vec![], 0.5f32.ln(), 2),
            (
                EarlyStopping::Heuristic,
                vec![1, 3],
                (0.3f32.ln() + 0.9f32.ln() + 0.99f32.ln()) / 3.0,
                3,
            ),
            (
                EarlyStopping::Never,
                vec![1, 3],
                (0.3f32.ln() + 0.9f32.ln() + 0.99f32.ln()) / 3.0,
                4,
            ),
        ];
        for (mode, tokens, score, steps) in expect {
            let mut m = model(1);
            let out = generate(&mut m, &input(vec![5]), &opts(mode)).unwrap();
            assert_eq!(out[0].tokens, tokens, "{mode:?}");
            assert!(out[0].ended);
            assert!(
                (out[0].score - score).abs() < 1e-5,
                "{mode:?} {}",
                out[0].score
            );
            assert_eq!(m.steps, steps, "{mode:?}");
            assert_eq!(m.row_counts[0], 1, "one row per source at the first step");
        }
    }

    #[test]
    fn length_penalty_zero_prefers_short() {
        let mut m = model(1);
        let o = DecodeOptions {
            length_penalty: 0.0,
            ..opts(EarlyStopping::Heuristic)
        };
        let out = generate(&mut m, &input(vec![5]), &o).unwrap();
        assert_eq!(out[0].tokens, Vec::<u32>::new());
        assert!((out[0].score - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn sources_finish_separately_and_leave_the_batch() {
        let mut m = model(2);
        let o = DecodeOptions {
            max_length_ratio: Some(1.0),
            ..opts(EarlyStopping::Heuristic)
        };
        // Source 0 may generate one token: the top two candidates "" and "1" finish.
        let out = generate(&mut m, &input(vec![1, 5]), &o).unwrap();
        assert_eq!(out[0].tokens, Vec::<u32>::new());
        assert!(out[0].ended);
        assert_eq!(out[1].tokens, vec![1, 3]);
        assert_eq!(m.row_counts, vec![2, 2, 2]);
    }

    #[test]
    fn length_limit_finishes_without_eos() {
        let mut m = ToyModel::new(3, 1, 2, vec![0.01, 0.98, 0.01]);
        let o = DecodeOptions {
            beam_size: 2,
            eos_token_ids: vec![0],
            suppress_tokens: vec![2],
            max_new_tokens: 3,
            ..DecodeOptions::default()
        };
        let out = generate(&mut m, &input(vec![5]), &o).unwrap();
        assert_eq!(out[0].tokens, vec![1, 1, 1]);
        assert!(!out[0].ended);
        assert!((out[0].score - 0.98f32.ln()).abs() < 1e-5);
    }

    #[test]
    fn no_repeat_ngram_applies_per_beam() {
        let mut m = ToyModel::new(3, 1, 2, vec![0.01, 0.98, 0.01]);
        let o = DecodeOptions {
            beam_size: 2,
            eos_token_ids: vec![0],
            suppress_tokens: vec![2],
            max_new_tokens: 3,
            no_repeat_ngram_size: 1,
            ..DecodeOptions::default()
        };
        let out = generate(&mut m, &input(vec![5]), &o).unwrap();
        assert_eq!(out[0].tokens, vec![1]);
        assert!(out[0].ended);
    }

    #[test]
    fn shifted_candidates_match_the_full_log_softmax() {
        use super::super::processors::{log_softmax_in_place, process_row, top_k};
        use super::{row_candidates, shifted_candidates};
        let opts = DecodeOptions {
            beam_size: 3,
            suppress_tokens: vec![2],
            eos_token_ids: vec![0],
            min_length: 2,
            no_repeat_ngram_size: 2,
            ..DecodeOptions::default()
        };
        let history = [4u32, 1, 5, 1];
        let mut fast = 0;
        for seed in 1..300u32 {
            // Few distinct values, so that ties (also after the shift) are common.
            let raw: Vec<f32> = (0..70u32)
                .map(|i| (i.wrapping_mul(seed).wrapping_mul(7919) % 13) as f32 * 0.37 - 3.0)
                .collect();
            for generated in [0, 3] {
                for base in [0.0, -1.25, -7.3] {
                    let mut s = raw.clone();
                    log_softmax_in_place(&mut s);
                    process_row(&mut s, &history, generated, &opts);
                    let want = top_k(s.iter().map(|&x| base + x), 6);
                    let got = row_candidates(&raw, &history, generated, base, 6, &opts);
                    assert_eq!(got, want, "seed {seed} generated {generated} base {base}");
                    fast += usize::from(
                        shifted_candidates(&raw, &history, generated, base, 6, &opts).is_some(),
                    );
                }
            }
        }
        assert!(fast > 100, "the shortcut ran {fast} times");
    }
}
