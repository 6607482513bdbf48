//! Tokenizers from tokenizer.json, SentencePiece models or GGUF metadata, all as
//! `tokenizers::Tokenizer`, plus incremental detokenization for streaming.

pub mod gguf;
pub mod sentencepiece;
pub mod stream;
