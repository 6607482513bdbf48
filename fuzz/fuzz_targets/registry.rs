//! A user registry file, parsed and checked, then every entry it adds looked up in an
//! empty cache offline, as `svodka models list` and `--model NAME` do.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use svodka::hub::{cached_status, resolve, FetchOptions, Registry};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut registry = Registry::default();
    if registry.merge_str(text, Path::new("fuzz.toml")).is_err() {
        return;
    }
    let cache = tempfile::tempdir().expect("temporary folder");
    let opts = FetchOptions {
        cache_dir: Some(cache.path().join("hub")),
        offline: true,
        quiet: true,
        ..Default::default()
    };
    for (name, entry) in registry.iter() {
        let _ = cached_status(entry, &opts);
        // Local paths are the user's own files; only cache lookups are exercised.
        if entry.local.is_empty() {
            let _ = resolve(name, &registry, &opts);
        }
    }
    // Nothing may have been written outside the cache folder.
    for entry in std::fs::read_dir(cache.path()).expect("cache").flatten() {
        assert_eq!(entry.file_name(), "hub", "wrote {:?}", entry.path());
    }
});
