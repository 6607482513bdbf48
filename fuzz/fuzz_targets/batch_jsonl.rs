//! The batch reader of `.jsonl` and `.json` sources: records streamed out of a file,
//! each record's text field read as an article, as `svodka batch` does.
//!
//! The first input byte picks JSONL or JSON and the size limit; the rest is the file.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use svodka::batch::discover::{Source, SourceKind};
use svodka::batch::source::{self, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&options, bytes)) = data.split_first() else {
        return;
    };
    let (kind, rel) = if options & 1 == 0 {
        (SourceKind::JsonLines, "in.jsonl")
    } else {
        (SourceKind::Json, "in.json")
    };
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(bytes).expect("write the input");
    let src = Source {
        rel: rel.to_string(),
        path: file.path().to_path_buf(),
        kind,
        out_base: "in".to_string(),
        problem: None,
    };
    let opts = LoadOptions {
        // Small limits reach the overlong-line path with small inputs.
        max_size: 16 << (options >> 1 & 0x0f),
        field: "text".to_string(),
    };
    for doc in source::documents(&src, &opts) {
        if let Ok(raw) = doc {
            let _ = raw.parse();
        }
    }
});
