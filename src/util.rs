//! Small helpers more than one layer needs (sizes for messages, hex digests), kept in
//! one place so that each is written once.

use sha2::{Digest, Sha256};

/// A size in binary units for messages: `512 B`, `1.5 KiB`, `241.4 MiB`, `2.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Keeps freed memory in the process for the next allocation instead of handing it back
/// to the kernel. A CPU forward pass allocates and frees buffers of a few MB per op
/// (candle tensors); by default glibc maps each anew and unmaps it on free, so every
/// pass pays page faults and the kernel's zeroing of fresh pages again (about a tenth
/// of a Gemma 3 270M prompt, see BENCHMARKS.md). Process-wide and idempotent; glibc only.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters. 32 MiB is glibc's
            // largest mmap threshold; the trim threshold keeps up to 1 GiB of free heap.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(8 << 20), "8.0 MiB");
        assert_eq!(human_size(253_113_024), "241.4 MiB");
    }

    #[test]
    fn hex_digests() {
        assert_eq!(hex(&[0, 0xab, 0x0f]), "00ab0f");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
