//! svodka: summarize and translate Russian and English news locally.
//!
//! Layers, top to bottom: `cli` → `pipeline` → `engine` (+ `tokenizer`, `decode`),
//! with `article` (text in) and `hub` (model files in) beside them. See
//! `docs/architecture.md`.

pub mod article;
pub mod batch;
pub mod cli;
pub mod cpu;
pub mod decode;
pub mod engine;
pub mod error;
pub mod hub;
pub mod output;
pub mod pipeline;
pub mod server;
pub mod tokenizer;
pub mod util;

#[cfg(test)]
mod testing;

pub use error::{Error, Result};
