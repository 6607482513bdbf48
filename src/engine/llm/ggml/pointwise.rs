//! ggml's pointwise CPU functions: GELU looked up in its f16 table and RMS norm with its
//! roundings.

use half::f16;

/// ggml's GELU (tanh form) as its CPU backend computes it by default: the input is
/// rounded to f16 and looked up in a table of f16 results; beyond ±10 it is 0 or x.
pub fn gelu(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f16>> = std::sync::OnceLock::new();
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let v = f16::from_bits(bits).to_f32();
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                const COEF_A: f32 = 0.044_715;
                // GCC contracts `1 + a·x·x` into an FMA when building ggml.
                let inner = (COEF_A * v).mul_add(v, 1.0);
                f16::from_f32(0.5 * v * (1.0 + (SQRT_2_OVER_PI * v * inner).tanh()))
            })
            .collect()
    });
    table[f16::from_f32(x).to_bits() as usize].to_f32()
}

/// ggml's RMS norm followed by its weight: the squares summed in f64, the scale
/// applied, then the weight, each product rounded to f32 as ggml rounds it.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    for (xs, ys) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let sum: f64 = xs.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((y, &v), &w) in ys.iter_mut().zip(xs).zip(weight) {
            *y = (v * scale) * w;
        }
    }
}
