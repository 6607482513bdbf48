//! The GGUF reader and LLM construction as `svodka summarize --model file.gguf` runs
//! them: header and metadata, the size checks, the hyper-parameters, the tokenizer
//! rebuilt from metadata, then the model's tensors read and built on the CPU.
#![no_main]

use std::path::Path;

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use svodka::engine::llm::{GgufFile, LlmConfig, LlmModel};
use svodka::tokenizer::gguf as gguf_tok;

fuzz_target!(|data: &[u8]| {
    // Header, metadata and the size checks, as `GgufFile::open` runs them on the map.
    let Ok(file) = GgufFile::from_bytes(Path::new("fuzz.gguf"), data.to_vec().into()) else {
        return;
    };
    let _ = LlmConfig::from_gguf(&file.content);
    if let Ok(tok) = gguf_tok::from_gguf(&file.content) {
        let _ = tok.encode("Привет, world <s> 123", true);
    }
    let _ = LlmModel::from_gguf(&file, &Device::Cpu, 16);
});
