//! A SentencePiece model (protobuf) as the Marian and T5 tokenizers read it, then used
//! to encode and decode a mixed Russian and English sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svodka::tokenizer::sentencepiece::{from_spm_bytes, SpmEncoder};

fuzz_target!(|data: &[u8]| {
    let text = "Привет, мир! Hello, world: 3.14 «quotes» — done.";
    if let Ok(enc) = SpmEncoder::from_bytes(data, "fuzz.spm") {
        let _ = enc.encode(text);
        let _ = enc.pieces(text);
    }
    if let Ok(tok) = from_spm_bytes(data, "fuzz.spm") {
        if let Ok(ids) = tok.encode(text, true) {
            let _ = tok.decode(ids.get_ids(), false);
        }
    }
});
