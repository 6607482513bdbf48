//! A safetensors file (header and tensors) read as the weights loader reads it, then
//! a small Marian and a small T5 built from whatever tensors it holds.
#![no_main]

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use libfuzzer_sys::fuzz_target;
use svodka::engine::marian::{MarianConfig, MarianModel};
use svodka::engine::t5::T5Model;

const MARIAN: &str = r#"{"vocab_size": 8, "d_model": 4, "encoder_layers": 1, "decoder_layers": 1,
  "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 8,
  "decoder_ffn_dim": 8, "max_position_embeddings": 16, "pad_token_id": 0,
  "eos_token_id": 1, "decoder_start_token_id": 0}"#;

const T5: &str = r#"{"vocab_size": 8, "d_model": 4, "d_kv": 2, "d_ff": 8, "num_layers": 1,
  "num_heads": 2, "relative_attention_num_buckets": 4, "relative_attention_max_distance": 8,
  "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "pad_token_id": 0,
  "eos_token_id": 1, "decoder_start_token_id": 0, "dropout_rate": 0.1,
  "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "is_encoder_decoder": true}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(tensors) = candle_core::safetensors::load_buffer(data, &Device::Cpu) else {
        return;
    };
    let marian: MarianConfig = serde_json::from_str(MARIAN).expect("config");
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
    let _ = MarianModel::new(&marian, vb);
    let t5 = serde_json::from_str(T5).expect("config");
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let _ = T5Model::new(&t5, vb);
});
