//! Greedy decoding: each row takes its best token; finished rows leave the batch.

use super::processors::{banned_tokens, log_sum_exp, only_bans, process_row, top_k_slice};
use super::{
    normalized, par_rows, with_host_rows, DecodeInput, DecodeOptions, Hypothesis, StepModel,
};
use crate::Result;

struct Row {
    source: usize,
    history: Vec<u32>,
    logprob: f32,
    max_len: usize,
}

pub(super) fn run<M: StepModel + ?Sized>(
    model: &mut M,
    input: &DecodeInput,
    opts: &DecodeOptions,
) -> Result<Vec<Hypothesis>> {
    let mut done: Vec<Option<Hypothesis>> = vec![None; input.source_lens.len()];
    let mut rows: Vec<Row> = input
        .source_lens
        .iter()
        .enumerate()
        .map(|(source, &len)| Row {
            source,
            history: vec![input.start_token],
            logprob: 0.0,
            max_len: opts.max_length_for(len),
        })
        .collect();
    let mut last: Vec<u32> = vec![input.start_token; rows.len()];
    while !rows.is_empty() {
        let live = rows.len();
        let logits = model.step(&last)?;
        let choices = with_host_rows(&logits, live, |flat, vocab| {
            Ok(par_rows(flat, vocab, |i, raw| {
                let history = &rows[i].history;
                choose(raw, history, history.len() - 1, opts)
            }))
        })?;
        let mut keep: Vec<u32> = Vec::with_capacity(rows.len());
        let mut still: Vec<Row> = Vec::with_capacity(rows.len());
        for (i, (mut row, (token, logprob))) in rows.drain(..).zip(choices).enumerate() {
            row.logprob += logprob;
            row.history.push(token);
            let generated = row.history.len() - 1;
            let ended = opts.is_eos(token);
            if ended || generated >= row.max_len {
                let mut tokens = row.history.split_off(1);
                if ended {
                    tokens.pop();
                }
                done[row.source] = Some(Hypothesis {
                    tokens,
                    ended,
                    score: normalized(row.logprob, generated, opts.length_penalty),
                });
            } else {
                keep.push(i as u32);
                still.push(row);
            }
        }
        if still.is_empty() {
            break;
        }
        // `keep` is ascending, so it is the identity exactly when nobody finished.
        if keep.len() != live {
            model.reorder(&keep)?;
        }
        last = still
            .iter()
            .map(|r| r.history[r.history.len() - 1])
            .collect();
        rows = still;
    }
    Ok(done
        .into_iter()
        .map(|h| {
            h.unwrap_or_else(|| Hypothesis {
                tokens: Vec::new(),
                ended: false,
                score: f32::NEG_INFINITY,
            })
        })
        .collect())
}

/// The token greedy search takes after `history` and its log-probability under the
/// model (before the processors, as transformers scores it).
fn choose(raw: &[f32], history: &[u32], generated: usize, opts: &DecodeOptions) -> (u32, f32) {
    let lse = log_sum_exp(raw);
    if only_bans(opts) && lse.is_finite() {
        // The processors only ban tokens, so the best unbanned raw score is the choice.
        let mut banned = banned_tokens(history, generated, opts);
        banned.sort_unstable();
        banned.dedup();
        let best = top_k_slice(raw, 1 + banned.len())
            .into_iter()
            .find(|&(i, _)| u32::try_from(i).map_or(true, |t| banned.binary_search(&t).is_err()));
        if let Some((token, s)) = best {
            if s > f32::NEG_INFINITY {
                return (token as u32, s - lse);
            }
        }
    }
    let mut scores = raw.to_vec();
    // transformers processes the raw logits in greedy search.
    process_row(&mut scores, history, generated, opts);
    let token = argmax(&scores);
    (token as u32, raw[token] - lse)
}

/// First index of the maximum (torch.argmax's choice among ties).
fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::toy::ToyModel;
    use super::super::*;

    fn opts() -> DecodeOptions {
        DecodeOptions {
            beam_size: 1,
            eos_token_ids: vec![0],
            suppress_tokens: vec![3],
            max_new_tokens: 10,
            ..DecodeOptions::default()
        }
    }

    #[test]
    fn rows_finish_independently_and_leave_the_batch() {
        // vocab: 0 eos, 1, 2, 3 pad/start (suppressed).
        let mut m = ToyModel::new(4, 2, 3, vec![0.1, 0.6, 0.2, 0.1]);
        // Row histories are identical at first, so the sources differ only by length cap.
        m.set(&[3, 1], &[0.1, 0.2, 0.6, 0.1]);
        m.set(&[3, 1, 2], &[0.7, 0.1, 0.1, 0.1]);
        let input = DecodeInput {
            start_token: 3,
            source_lens: vec![5, 5],
        };
        let out = generate(&mut m, &input, &opts()).unwrap();
        assert_eq!(out[0].tokens, vec![1, 2]);
        assert!(out[0].ended);
        let expected = (0.6f32.ln() + 0.6f32.ln() + 0.7f32.ln()) / 3.0;
        assert!((out[0].score - expected).abs() < 1e-5, "{}", out[0].score);
        assert_eq!(out[0], out[1]);
        assert_eq!(m.steps, 3);
    }

    #[test]
    fn length_cap_and_row_dropping() {
        let mut m = ToyModel::new(4, 3, 3, vec![0.1, 0.6, 0.2, 0.1]);
        let input = DecodeInput {
            start_token: 3,
            source_lens: vec![2, 4, 3],
        };
        let o = DecodeOptions {
            max_length_ratio: Some(1.0),
            ..opts()
        };
        let out = generate(&mut m, &input, &o).unwrap();
        let lens: Vec<usize> = out.iter().map(|h| h.tokens.len()).collect();
        assert_eq!(lens, vec![2, 4, 3]);
        assert!(out
            .iter()
            .all(|h| !h.ended && h.tokens.iter().all(|&t| t == 1)));
        assert_eq!(m.row_counts, vec![3, 3, 2, 1]);
    }

    #[test]
    fn suppressed_start_token_and_min_length() {
        // The start/pad token 3 is the most likely but suppressed; eos is next but banned
        // until two tokens exist.
        let mut m = ToyModel::new(4, 1, 3, vec![0.3, 0.05, 0.15, 0.5]);
        let input = DecodeInput {
            start_token: 3,
            source_lens: vec![5],
        };
        let o = DecodeOptions {
            min_length: 2,
            ..opts()
        };
        let out = generate(&mut m, &input, &o).unwrap();
        assert_eq!(out[0].tokens, vec![2, 2]);
        assert!(out[0].ended);
    }

    #[test]
    fn penalties_change_the_choice() {
        let mut m = ToyModel::new(4, 1, 3, vec![0.05, 0.5, 0.44, 0.01]);
        let input = DecodeInput {
            start_token: 3,
            source_lens: vec![5],
        };
        let plain = generate(
            &mut m,
            &input,
            &DecodeOptions {
                max_new_tokens: 4,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(plain[0].tokens, vec![1, 1, 1, 1]);
        let mut m = ToyModel::new(4, 1, 3, vec![0.05, 0.5, 0.44, 0.01]);
        let banned = generate(
            &mut m,
            &input,
            &DecodeOptions {
                max_new_tokens: 4,
                no_repeat_ngram_size: 1,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(banned[0].tokens, vec![1, 2]);
        assert!(banned[0].ended);
        let mut m = ToyModel::new(4, 1, 3, vec![0.05, 0.5, 0.44, 0.01]);
        let penalized = generate(
            &mut m,
            &input,
            &DecodeOptions {
                max_new_tokens: 3,
                repetition_penalty: 1.5,
                ..opts()
            },
        )
        .unwrap();
        // ln .5 = -0.69 → ×1.5 = -1.04 < ln .44 = -0.82: 1 then 2, then both penalized:
        // 1 → -1.04, 2 → -1.23 → 1 (eos: ln .05 = -3.0).
        assert_eq!(penalized[0].tokens, vec![1, 2, 1]);
    }

    #[test]
    fn choice_matches_processing_the_whole_row() {
        use super::super::processors::{log_sum_exp, process_row};
        use super::{argmax, choose};
        for (repetition_penalty, renormalize_logits) in [(1.0, false), (1.3, false), (1.0, true)] {
            let o = DecodeOptions {
                suppress_tokens: vec![2],
                min_length: 2,
                no_repeat_ngram_size: 2,
                repetition_penalty,
                renormalize_logits,
                ..opts()
            };
            let history = [3u32, 1, 5, 1];
            for seed in 1..200u32 {
                let raw: Vec<f32> = (0..40u32)
                    .map(|i| (i.wrapping_mul(seed).wrapping_mul(7919) % 7) as f32 * 0.5 - 1.0)
                    .collect();
                for generated in [0, 3] {
                    let mut s = raw.clone();
                    process_row(&mut s, &history, generated, &o);
                    let t = argmax(&s);
                    let want = (t as u32, raw[t] - log_sum_exp(&raw));
                    assert_eq!(choose(&raw, &history, generated, &o), want, "seed {seed}");
                }
            }
        }
    }
}
