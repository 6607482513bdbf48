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
