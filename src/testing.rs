//! Helpers shared by the unit tests.

/// A deterministic stream of test values in [-0.5, 0.5) (Knuth's MMIX linear
/// congruential generator), so test data never depends on a random crate's version.
pub(crate) struct Lcg(u64);

impl Lcg {
    /// A stream starting from `seed`.
    pub(crate) fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    /// The next `n` values.
    pub(crate) fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }
}

/// A fake translator for pipeline and batch tests: "translates" by upper-casing,
/// counts one token per word plus one, accepts `max` tokens, and records every batch
/// (its texts and beam count) where clones of it can read them.
#[derive(Clone)]
pub(crate) struct Upper {
    pub(crate) max: usize,
    /// Drops digits from its output on the first (greedy) attempt, so that those
    /// sentences fail the number check and are retried with beams.
    pub(crate) drop_digits_when_greedy: bool,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
}

/// The texts and beam count of one batch a fake translator was given.
type Call = (Vec<String>, usize);

impl Upper {
    /// A fake accepting sources of up to `max` tokens.
    pub(crate) fn new(max: usize) -> Upper {
        Upper {
            max,
            drop_digits_when_greedy: false,
            calls: Default::default(),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The texts of every batch so far.
    pub(crate) fn batches(&self) -> Vec<Vec<String>> {
        self.calls().into_iter().map(|c| c.0).collect()
    }

    /// The beam count of every batch so far.
    pub(crate) fn beams(&self) -> Vec<usize> {
        self.calls().into_iter().map(|c| c.1).collect()
    }
}

impl crate::engine::Translator for Upper {
    fn engine_name(&self) -> &'static str {
        "upper"
    }
    fn count_tokens(&self, text: &str) -> crate::Result<usize> {
        Ok(text.split_whitespace().count() + 1)
    }
    fn max_source_tokens(&self) -> usize {
        self.max
    }
    fn can_retry_with_beams(&self) -> bool {
        true
    }
    fn translate_batch(
        &mut self,
        segments: &[&str],
        _from: crate::article::Lang,
        _to: crate::article::Lang,
        opts: &crate::decode::DecodeOptions,
    ) -> crate::Result<Vec<crate::engine::Translation>> {
        for s in segments {
            assert!(self.count_tokens(s)? <= self.max, "too long: {s}");
        }
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
            segments.iter().map(|s| s.to_string()).collect(),
            opts.beam_size,
        ));
        Ok(segments
            .iter()
            .map(|s| {
                let mut text = s.to_uppercase();
                if self.drop_digits_when_greedy && opts.beam_size == 1 {
                    text.retain(|c| !c.is_ascii_digit());
                }
                crate::engine::Translation {
                    text,
                    score: Some(-0.5),
                    tokens: 3,
                    cut: false,
                }
            })
            .collect())
    }
}
