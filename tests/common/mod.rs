//! Helpers shared by the integration test binaries.

use std::path::{Path, PathBuf};

/// The real Gemma 3 270M GGUF (`$SVODKA_GEMMA_GGUF`, else where scripts/fetch-gemma.sh
/// puts it), or `None` with the reason printed so the calling test can skip.
pub fn gemma_gguf() -> Option<PathBuf> {
    let p = std::env::var_os("SVODKA_GEMMA_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".models/gemma-3-270m/gemma-3-270m-Q4_K_M.gguf")
        });
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipping: Gemma GGUF not found at {}; run scripts/fetch-gemma.sh",
            p.display()
        );
        None
    }
}
