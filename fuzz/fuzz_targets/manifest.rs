//! The batch manifest reader: a `manifest.jsonl` left by a run (or cut short by a
//! crash, or edited by hand) read back for resuming and merging.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use svodka::batch::manifest;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join(manifest::MANIFEST);
    let mut file = std::fs::File::create(&path).expect("create the manifest");
    file.write_all(data).expect("write the input");
    drop(file);
    if let Ok((entries, _bad)) = manifest::read(&path) {
        let _ = manifest::latest(entries);
    }
    let _ = manifest::latest_in(dir.path());
});
