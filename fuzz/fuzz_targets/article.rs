//! The article reader as the CLI drives it: bytes → decoding → txt/Markdown/HTML →
//! `Article`, then segmentation and the extractive summary of what was read.
//!
//! The first input byte picks the options (forced encoding or detection, forced format
//! or the file name's extension); the rest is the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use svodka::article::read::{self, Format, ReadOptions};
use svodka::engine::extractive::Extractive;
use svodka::engine::SummaryOptions;
use svodka::pipeline;

/// Every label `--encoding` accepts, plus detection (`None`).
const ENCODINGS: [Option<&str>; 11] = [
    None,
    Some("utf-8"),
    Some("utf-16le"),
    Some("utf-16be"),
    Some("windows-1251"),
    Some("koi8-r"),
    Some("koi8-u"),
    Some("ibm866"),
    Some("iso-8859-5"),
    Some("x-mac-cyrillic"),
    Some("windows-1252"),
];

/// File names whose extensions pick each format, and stdin (format sniffed).
const NAMES: [&str; 4] = ["a.txt", "a.md", "a.html", "-"];

fuzz_target!(|data: &[u8]| {
    let Some((&options, bytes)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(options & 0x0f) % ENCODINGS.len()]
        .map(|label| read::encoding_from_label(label).expect("accepted label"));
    let format = match (options >> 4) & 0x3 {
        0 => None,
        1 => Some(Format::Text),
        2 => Some(Format::Markdown),
        _ => Some(Format::Html),
    };
    let name = NAMES[usize::from(options >> 6)];
    let opts = ReadOptions {
        encoding,
        format,
        ..ReadOptions::default()
    };
    let Ok(article) = read::read_bytes(bytes, Path::new(name), &opts) else {
        return;
    };
    let _ = pipeline::segment::segment_article(&article);
    let summary_opts = SummaryOptions {
        sentences: 1 + usize::from(options % 5),
        ..SummaryOptions::default()
    };
    let _ = pipeline::summarize::summarize(&article, &mut Extractive, &summary_opts);
});
