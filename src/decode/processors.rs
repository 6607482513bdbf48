//! Logits processors: each rewrites one row of next-token scores in place, on the host.
//!
//! They follow transformers' processors of the same purpose, in the same order (see
//! [`process_row`]), so that greedy and beam search pick the same tokens.

use super::DecodeOptions;

/// `ln Σ exp(scores)`, computed stably; `-inf` for an empty or all `-inf` row.
///
/// The result does not depend on the instruction set: the AVX2 build of the same loop
/// only widens the registers, it does not reorder a single operation.
pub fn log_sum_exp(scores: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::features().avx2 {
            // SAFETY: the CPU has AVX2.
            return unsafe { log_sum_exp_avx2(scores) };
        }
    }
    log_sum_exp_portable(scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn log_sum_exp_avx2(scores: &[f32]) -> f32 {
    log_sum_exp_portable(scores)
}

#[inline(always)]
fn log_sum_exp_portable(scores: &[f32]) -> f32 {
    // Eight running maxima, then eight independent sums, so that both loops vectorize;
    // a vocabulary row is ~60k wide and this runs for every row at every step. The
    // maximum is exact whatever the order.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = m.max(x);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let mut acc = [0f32; 8];
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += exp_nonpositive(x - max);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| exp_nonpositive(x - max))
        .sum();
    max + (acc.iter().sum::<f32>() + tail).ln()
}

/// `exp(x)` for `x ≤ 0` (Cephes' single-precision polynomial, about 1 ulp), written
/// without calls or branches so that loops over it vectorize; `-inf` gives ~0.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    // NaN becomes -87 and positives 0, so that the conversions below stay in range
    // (`clamp` would keep the NaN).
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(0.0);
    let v = x * std::f32::consts::LOG2_E + 0.5;
    // SAFETY: v is in [-125, 0.5], where truncation to i32 is exact; the unchecked
    // conversion vectorizes, `as` (which saturates) does not.
    let t = unsafe { v.to_int_unchecked::<i32>() } as f32;
    // floor(v) for v ≤ 0.5: truncation rounds negatives up.
    let fx = if t > v { t - 1.0 } else { t };
    let r = x - fx * 0.693_359_4 + fx * 2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // SAFETY: fx is an integer in [-126, 0].
    y * f32::from_bits(((unsafe { fx.to_int_unchecked::<i32>() } + 127) as u32) << 23)
}

/// `scores ← scores − logsumexp(scores)`; a row of only `-inf` stays as it is.
pub fn log_softmax_in_place(scores: &mut [f32]) {
    let shift = log_sum_exp(scores);
    if !shift.is_finite() {
        return;
    }
    for s in scores.iter_mut() {
        *s -= shift;
    }
}

/// Penalizes every token already in `history` once: negative scores are multiplied by
/// `penalty`, others divided (transformers' `RepetitionPenaltyLogitsProcessor`).
pub fn apply_repetition_penalty(scores: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen: Vec<u32> = history.to_vec();
    seen.sort_unstable();
    seen.dedup();
    for &t in &seen {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// Bans every token that would complete an n-gram already present in `history`
/// (transformers' `NoRepeatNGramLogitsProcessor`; `n == 0` turns it off).
pub fn ban_repeated_ngrams(scores: &mut [f32], history: &[u32], n: usize) {
    if n == 0 || history.len() < n {
        return;
    }
    let prefix = &history[history.len() + 1 - n..];
    for window in history.windows(n) {
        if &window[..n - 1] == prefix {
            if let Some(s) = scores.get_mut(window[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// Sets the scores of `tokens` to `-inf`.
pub fn suppress_tokens(scores: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Forbids end-of-sequence tokens while fewer than `min_length` tokens have been generated.
pub fn ban_eos_before_min_length(
    scores: &mut [f32],
    eos: &[u32],
    generated: usize,
    min_length: usize,
) {
    if generated < min_length {
        suppress_tokens(scores, eos);
    }
}

/// Runs the processors `opts` asks for on one row, in transformers' order: repetition
/// penalty, n-gram ban, suppressed tokens, minimum length, then renormalization.
///
/// `history` is the row's decoder input so far, start token included (transformers
/// counts it for both the penalty and the n-grams); `generated` excludes it. Beam search
/// passes log-probabilities, greedy passes raw logits, as transformers does.
pub fn process_row(scores: &mut [f32], history: &[u32], generated: usize, opts: &DecodeOptions) {
    apply_repetition_penalty(scores, history, opts.repetition_penalty);
    ban_repeated_ngrams(scores, history, opts.no_repeat_ngram_size);
    suppress_tokens(scores, &opts.suppress_tokens);
    ban_eos_before_min_length(scores, &opts.eos_token_ids, generated, opts.min_length);
    if opts.renormalize_logits {
        log_softmax_in_place(scores);
    }
}

/// The `k` best `(index, score)` pairs of `scores`, best first; equal scores keep index
/// order and NaN counts as `-inf`.
pub fn top_k(scores: impl Iterator<Item = f32>, k: usize) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, s) in scores.enumerate() {
        offer(&mut best, k, i, s);
    }
    best
}

/// Whether [`process_row`] only bans tokens (sets them to `-inf`) under `opts`, so that
/// the search can rank a row's raw scores and skip rewriting it.
pub fn only_bans(opts: &DecodeOptions) -> bool {
    opts.repetition_penalty == 1.0 && !opts.renormalize_logits
}

/// The tokens [`process_row`] sets to `-inf` (when [`only_bans`]), repeats allowed.
pub fn banned_tokens(history: &[u32], generated: usize, opts: &DecodeOptions) -> Vec<u32> {
    let mut banned = opts.suppress_tokens.clone();
    if generated < opts.min_length {
        banned.extend_from_slice(&opts.eos_token_ids);
    }
    let n = opts.no_repeat_ngram_size;
    if n > 0 && history.len() >= n {
        let prefix = &history[history.len() + 1 - n..];
        for window in history.windows(n) {
            if &window[..n - 1] == prefix {
                banned.push(window[n - 1]);
            }
        }
    }
    banned
}

/// [`top_k`] over a slice, skipping 16-wide chunks whose maximum cannot enter the list
/// (same result, a fraction of the comparisons on a vocabulary row).
pub fn top_k_slice(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::features().avx2 {
            // SAFETY: the CPU has AVX2.
            return unsafe { top_k_slice_avx2(scores, k) };
        }
    }
    top_k_slice_portable(scores, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn top_k_slice_avx2(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    top_k_slice_portable(scores, k)
}

#[inline(always)]
fn top_k_slice_portable(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    const CHUNK: usize = 16;
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    let mut chunks = scores.chunks_exact(CHUNK);
    let mut base = 0;
    for c in &mut chunks {
        if best.len() == k {
            let mut m = [f32::NEG_INFINITY; 8];
            for (i, slot) in m.iter_mut().enumerate() {
                *slot = c[i].max(c[i + 8]);
            }
            // NaN counts as -inf, which f32::max already ignores.
            let m = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if m <= best[k - 1].1 {
                base += CHUNK;
                continue;
            }
        }
        for (j, &s) in c.iter().enumerate() {
            offer(&mut best, k, base + j, s);
        }
        base += CHUNK;
    }
    for (j, &s) in chunks.remainder().iter().enumerate() {
        offer(&mut best, k, base + j, s);
    }
    best
}

/// One step of [`top_k`]: inserts `(i, s)` if it ranks among the best `k`.
#[inline(always)]
fn offer(best: &mut Vec<(usize, f32)>, k: usize, i: usize, s: f32) {
    let s = if s.is_nan() { f32::NEG_INFINITY } else { s };
    if best.len() == k && s <= best[k - 1].1 {
        return;
    }
    let at = best.partition_point(|&(_, b)| b >= s);
    best.insert(at, (i, s));
    best.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn fast_exp_is_accurate() {
        for i in 0..2000 {
            let x = -(i as f32) * 0.0437;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            assert!(
                (got - want).abs() <= 2e-7 * want + 1e-37,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp_nonpositive(NEG) < 1e-37);
        let row: Vec<f32> = (0..1001)
            .map(|i| ((i * 37) % 101) as f32 * 0.13 - 4.0)
            .collect();
        let want = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&row) as f64 - want).abs() < 1e-5);
    }

    #[test]
    fn log_softmax_normalizes() {
        let mut s = vec![1.0, 2.0, 3.0, NEG];
        log_softmax_in_place(&mut s);
        let total: f32 = s.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((s[2] - s[1] - 1.0).abs() < 1e-6);
        assert_eq!(s[3], NEG);
        let mut all_banned = vec![NEG, NEG];
        log_softmax_in_place(&mut all_banned);
        assert_eq!(all_banned, vec![NEG, NEG]);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_once() {
        let mut s = vec![2.0, -2.0, 4.0, 1.0];
        apply_repetition_penalty(&mut s, &[0, 1, 1, 1, 9], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 4.0, 1.0]);
        let mut same = vec![2.0, -2.0];
        apply_repetition_penalty(&mut same, &[0, 1], 1.0);
        assert_eq!(same, vec![2.0, -2.0]);
    }

    #[test]
    fn ngram_ban_matches_transformers() {
        // history 5 1 2 3 1 2: prefix (1 2) was followed by 3 → ban 3; nothing else.
        let mut s = vec![0.0; 6];
        ban_repeated_ngrams(&mut s, &[5, 1, 2, 3, 1, 2], 3);
        assert_eq!(s, vec![0.0, 0.0, 0.0, NEG, 0.0, 0.0]);
        // Bigrams: last token 2 was followed by 3 → ban 3 (and 2→? the final 2 has no successor).
        let mut s = vec![0.0; 6];
        ban_repeated_ngrams(&mut s, &[2, 3, 4, 2], 2);
        assert_eq!(s, vec![0.0, 0.0, 0.0, NEG, 0.0, 0.0]);
        // Too short for a full n-gram, or turned off.
        let mut s = vec![0.0; 3];
        ban_repeated_ngrams(&mut s, &[1, 1], 3);
        ban_repeated_ngrams(&mut s, &[1, 1, 1, 1], 0);
        assert_eq!(s, vec![0.0; 3]);
        // Unigrams ban every token seen.
        let mut s = vec![0.0; 3];
        ban_repeated_ngrams(&mut s, &[2, 0], 1);
        assert_eq!(s, vec![NEG, 0.0, NEG]);
    }

    #[test]
    fn suppress_and_min_length() {
        let mut s = vec![1.0; 4];
        suppress_tokens(&mut s, &[3, 17]);
        assert_eq!(s, vec![1.0, 1.0, 1.0, NEG]);
        let mut s = vec![1.0; 3];
        ban_eos_before_min_length(&mut s, &[0], 2, 3);
        assert_eq!(s[0], NEG);
        let mut s = vec![1.0; 3];
        ban_eos_before_min_length(&mut s, &[0], 3, 3);
        assert_eq!(s[0], 1.0);
    }

    #[test]
    fn process_row_applies_all_in_order() {
        let opts = DecodeOptions {
            repetition_penalty: 2.0,
            no_repeat_ngram_size: 2,
            suppress_tokens: vec![4],
            eos_token_ids: vec![0],
            min_length: 1,
            renormalize_logits: true,
            ..DecodeOptions::default()
        };
        // history: start 4, then 1 2 1 → ban 2 (bigram 1 2), penalize 1 and 4 and 2.
        let mut s = vec![0.5, 2.0, 3.0, -1.0, 9.0];
        process_row(&mut s, &[4, 1, 2, 1], 0, &opts);
        assert_eq!(s[0], NEG, "eos before min length");
        assert_eq!(s[2], NEG, "repeated bigram");
        assert_eq!(s[4], NEG, "suppressed");
        // Left: token 1 (2.0 / 2 = 1.0) and token 3 (-1.0), renormalized.
        let total: f32 = s.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((s[1] - s[3] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        let s = [0.1, 0.9, 0.5, 0.9, f32::NAN, -1.0];
        assert_eq!(
            top_k(s.iter().copied(), 3),
            vec![(1, 0.9), (3, 0.9), (2, 0.5)]
        );
        assert_eq!(top_k(s.iter().copied(), 0), vec![]);
        let all = top_k(s.iter().copied(), 10);
        assert_eq!(all.len(), 6);
        assert_eq!(all[5], (4, NEG));
    }

    #[test]
    fn top_k_slice_matches_top_k() {
        for len in [0usize, 5, 16, 33, 200, 1000] {
            for seed in 1..20u32 {
                let mut row: Vec<f32> = (0..len as u32)
                    .map(|i| (i.wrapping_mul(seed).wrapping_mul(2654435761) >> 7) as f32 % 97.0)
                    .collect();
                if len > 20 {
                    row[3] = f32::NAN;
                    row[len - 2] = NEG;
                }
                for k in [0, 1, 4, 9, 40] {
                    assert_eq!(
                        top_k_slice(&row, k),
                        top_k(row.iter().copied(), k),
                        "len {len} seed {seed} k {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn banned_tokens_are_what_process_row_bans() {
        let opts = DecodeOptions {
            suppress_tokens: vec![4],
            eos_token_ids: vec![0],
            min_length: 2,
            no_repeat_ngram_size: 2,
            ..DecodeOptions::default()
        };
        for generated in [0, 1, 2, 5] {
            let mut s = vec![1.0; 6];
            process_row(&mut s, &[5, 1, 2, 1, 3, 1], generated, &opts);
            let mut want: Vec<u32> = (0..6u32).filter(|&t| s[t as usize] == NEG).collect();
            let mut got = banned_tokens(&[5, 1, 2, 1, 3, 1], generated, &opts);
            got.sort_unstable();
            got.dedup();
            want.sort_unstable();
            assert_eq!(got, want, "generated {generated}");
        }
    }
}
