//! A small GGUF (v3) writer for tests that need valid or deliberately broken model
//! files: metadata and tensor infos are written as given, so a test can declare shapes,
//! offsets and values no real converter would.

use std::path::Path;

/// A metadata value.
#[derive(Debug, Clone)]
pub enum Meta {
    U32(u32),
    U64(u64),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// One tensor: dimensions in ggml order (the row length first), f32 data.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub data: Vec<f32>,
    /// Offset written into the tensor info instead of the real one.
    pub offset: Option<u64>,
}

/// A GGUF file being put together.
#[derive(Debug, Clone, Default)]
pub struct Gguf {
    pub meta: Vec<(String, Meta)>,
    pub tensors: Vec<Tensor>,
}

const ALIGNMENT: u64 = 32;

impl Gguf {
    /// A complete, loadable llama-family model: 1 block, hidden 8, 2 heads over 1 KV
    /// head, feed-forward 16, and a 5-token SentencePiece-style vocabulary.
    pub fn tiny_llama() -> Gguf {
        let mut g = Gguf::default();
        let arch = "llama";
        g.set("general.architecture", Meta::Str(arch.into()));
        for (k, v) in [
            ("block_count", 1),
            ("embedding_length", 8),
            ("feed_forward_length", 16),
            ("attention.head_count", 2),
            ("attention.head_count_kv", 1),
            ("context_length", 64),
        ] {
            g.set(&format!("{arch}.{k}"), Meta::U32(v));
        }
        g.set(
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            Meta::F32(1e-5),
        );
        let tokens = ["<unk>", "<s>", "</s>", "\u{2581}a", "a"];
        g.set("tokenizer.ggml.model", Meta::Str("llama".into()));
        g.set(
            "tokenizer.ggml.tokens",
            Meta::Strs(tokens.iter().map(|t| t.to_string()).collect()),
        );
        g.set(
            "tokenizer.ggml.scores",
            Meta::F32s(vec![0.0, 0.0, 0.0, -1.0, -2.0]),
        );
        g.set("tokenizer.ggml.token_type", Meta::I32s(vec![2, 3, 3, 1, 1]));
        g.set("tokenizer.ggml.bos_token_id", Meta::U32(1));
        g.set("tokenizer.ggml.eos_token_id", Meta::U32(2));
        g.set("tokenizer.ggml.unknown_token_id", Meta::U32(0));
        g.tensor("token_embd.weight", &[8, 5]);
        g.tensor("output_norm.weight", &[8]);
        g.tensor("blk.0.attn_norm.weight", &[8]);
        g.tensor("blk.0.attn_q.weight", &[8, 8]);
        g.tensor("blk.0.attn_k.weight", &[8, 4]);
        g.tensor("blk.0.attn_v.weight", &[8, 4]);
        g.tensor("blk.0.attn_output.weight", &[8, 8]);
        g.tensor("blk.0.ffn_norm.weight", &[8]);
        g.tensor("blk.0.ffn_gate.weight", &[8, 16]);
        g.tensor("blk.0.ffn_up.weight", &[8, 16]);
        g.tensor("blk.0.ffn_down.weight", &[16, 8]);
        g
    }

    /// Sets (or replaces) a metadata key.
    pub fn set(&mut self, key: &str, value: Meta) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.to_string(), value));
        self
    }

    /// Adds (or replaces) a tensor of small deterministic values.
    pub fn tensor(&mut self, name: &str, dims: &[u64]) -> &mut Tensor {
        let n: u64 = dims.iter().product();
        let data = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.05).collect();
        self.tensors.retain(|t| t.name != name);
        self.tensors.push(Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data,
            offset: None,
        });
        self.tensors.last_mut().unwrap()
    }

    /// The tensor called `name`.
    pub fn get(&mut self, name: &str) -> &mut Tensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap()
    }

    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.meta.len() as u64).to_le_bytes());
        for (key, value) in &self.meta {
            string(&mut out, key);
            value.write(&mut out);
        }
        let mut offset = 0u64;
        let mut blobs = Vec::new();
        for t in &self.tensors {
            string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&0u32.to_le_bytes()); // F32
            out.extend_from_slice(&t.offset.unwrap_or(offset).to_le_bytes());
            let mut blob: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            while blob.len() as u64 % ALIGNMENT != 0 {
                blob.push(0);
            }
            offset += blob.len() as u64;
            blobs.push(blob);
        }
        while out.len() as u64 % ALIGNMENT != 0 {
            out.push(0);
        }
        for b in blobs {
            out.extend_from_slice(&b);
        }
        out
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Meta {
    fn write(&self, out: &mut Vec<u8>) {
        let ty = |out: &mut Vec<u8>, t: u32| out.extend_from_slice(&t.to_le_bytes());
        match self {
            Meta::U32(v) => {
                ty(out, 4);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::U64(v) => {
                ty(out, 10);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::F32(v) => {
                ty(out, 6);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::Bool(v) => {
                ty(out, 7);
                out.push(*v as u8);
            }
            Meta::Str(s) => {
                ty(out, 8);
                string(out, s);
            }
            Meta::Strs(v) => {
                ty(out, 9);
                ty(out, 8);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for s in v {
                    string(out, s);
                }
            }
            Meta::F32s(v) => {
                ty(out, 9);
                ty(out, 6);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            Meta::I32s(v) => {
                ty(out, 9);
                ty(out, 5);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
}
