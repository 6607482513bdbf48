//! The GGUF reader and LLM construction as `svodka summarize --model file.gguf` runs
//! them: header and metadata, the size checks, the hyper-parameters, the tokenizer
//! rebuilt from metadata, then the model's tensors read and built on the CPU.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use svodka::engine::check;
use svodka::engine::llm::{LlmConfig, LlmModel};
use svodka::tokenizer::gguf as gguf_tok;

fuzz_target!(|data: &[u8]| {
    let mut reader = Cursor::new(data);
    let Ok(content) = Content::read(&mut reader) else {
        return;
    };
    if check::gguf(Path::new("fuzz.gguf"), &content, data.len() as u64).is_err() {
        return;
    }
    let _ = LlmConfig::from_gguf(&content);
    if let Ok(tok) = gguf_tok::from_gguf(&content) {
        let _ = tok.encode("Привет, world <s> 123", true);
    }
    let _ = LlmModel::from_gguf(&content, &mut reader, &Device::Cpu, 16);
});
