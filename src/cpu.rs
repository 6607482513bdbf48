//! The CPU's SIMD features, detected once for the whole crate.
//!
//! The kernels (packed Marian matmuls, int8 matmuls, ggml's block dots, attention and
//! the decoding processors) each pick an instruction set at run time. Reading the
//! features here, once, keeps the same choice everywhere and puts every test of a
//! feature in one place. Off x86-64 every feature reads false and the portable code runs.

use std::sync::OnceLock;

/// The x86-64 features the kernels use (all false elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// AVX2 (256-bit integer and float vectors).
    pub avx2: bool,
    /// Fused multiply-add.
    pub fma: bool,
    /// f16 ↔ f32 conversions.
    pub f16c: bool,
    /// AVX-512 foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// AVX-512 VNNI (u8 × i8 dot products).
    pub avx512vnni: bool,
}

impl Features {
    /// The features of this CPU, read directly (prefer [`features`]).
    fn detect() -> Features {
        #[cfg(target_arch = "x86_64")]
        {
            Features {
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                fma: std::arch::is_x86_feature_detected!("fma"),
                f16c: std::arch::is_x86_feature_detected!("f16c"),
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx512bw: std::arch::is_x86_feature_detected!("avx512bw"),
                avx512vnni: std::arch::is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Features::default()
    }

    /// AVX2 and FMA, what most 256-bit kernels need.
    pub fn avx2_fma(self) -> bool {
        self.avx2 && self.fma
    }

    /// AVX2, FMA and F16C, for kernels that also convert f16 scales.
    pub fn avx2_fma_f16c(self) -> bool {
        self.avx2 && self.fma && self.f16c
    }

    /// AVX-512 F, BW and VNNI, for the int8 kernels.
    pub fn avx512_vnni(self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vnni
    }

    /// AVX-512 F, BW and VNNI with FMA and F16C, for the GGUF engine's AVX-512 matmuls.
    pub fn avx512_vnni_f16c(self) -> bool {
        self.avx512_vnni() && self.fma && self.f16c
    }

    /// AVX-512 F with FMA and F16C, for the GGUF engine's AVX-512 attention.
    pub fn avx512_f16c(self) -> bool {
        self.avx512f && self.fma && self.f16c
    }
}

/// This CPU's features, detected on first use.
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(Features::detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_read_once_and_agree_with_std() {
        let f = features();
        assert_eq!(f, features());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(f.avx2, std::arch::is_x86_feature_detected!("avx2"));
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(f, Features::default());
    }
}
