//! Marian engine throughput on a real-length workload: the WMT22 en→ru sources, already
//! tokenized and batched by `scripts/bench_marian.py`, decoded with forced output lengths
//! so that every engine of that script generates exactly the same number of tokens.
//!
//! usage: `marian_wmt [--dtype f32|int8] MODEL_DIR WORKLOAD_JSON BEAM [OUT_JSON]` (the driver runs the built
//! binary; `cargo bench --bench marian_wmt -- ...` works too). `MODEL_DIR` holds
//! `config.json` and `model.safetensors`; the workload is
//! `{"batches": [{"new_tokens": N, "ids": [[...], ...]}, ...]}`, each source ending with
//! `</s>`, and every sentence of a batch gets exactly `N` target tokens
//! (`min_length = max_new_tokens = N`). Prints one JSON line: target tokens per second and
//! where the time went (encoder, decoder steps, cache reorders, host-side search).
//! `OUT_JSON` receives the generated ids, batch by batch, for the driver's parity check.
//! Threads: `RAYON_NUM_THREADS`.

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};
use svodka::decode::{self, DecodeInput, DecodeOptions, Hypothesis, StepModel};
use svodka::engine::marian::{MarianModel, Quantization};

#[derive(Deserialize)]
struct Workload {
    batches: Vec<Batch>,
}

#[derive(Deserialize)]
struct Batch {
    new_tokens: usize,
    ids: Vec<Vec<u32>>,
}

/// Where the time of one run went.
#[derive(Default)]
struct Timing {
    encode: Duration,
    step: Duration,
    reorder: Duration,
    total: Duration,
}

/// A decoder that clocks its own calls, so that the rest of `generate` is host time.
struct Timed<'t, M> {
    inner: M,
    timing: &'t mut Timing,
}

impl<M: StepModel> StepModel for Timed<'_, M> {
    fn step(&mut self, last_tokens: &[u32]) -> svodka::Result<Tensor> {
        let t0 = Instant::now();
        let out = self.inner.step(last_tokens);
        self.timing.step += t0.elapsed();
        out
    }

    fn reorder(&mut self, rows: &[u32]) -> svodka::Result<()> {
        let t0 = Instant::now();
        let out = self.inner.reorder(rows);
        self.timing.reorder += t0.elapsed();
        out
    }
}

/// `MarianModel::translate_ids` with the encoder and decoder calls timed apart.
fn translate(
    model: &MarianModel,
    sources: &[Vec<u32>],
    opts: &DecodeOptions,
    timing: &mut Timing,
) -> anyhow::Result<Vec<Hypothesis>> {
    let cfg = model.config();
    let width = sources.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(sources.len() * width);
    let mut mask = Vec::with_capacity(sources.len() * width);
    for s in sources {
        if s.is_empty() {
            bail!("empty source in the workload");
        }
        let pad = std::iter::repeat(cfg.pad_token_id);
        ids.extend(s.iter().copied().chain(pad).take(width));
        mask.extend((0..width).map(|i| u32::from(i < s.len())));
    }
    let shape = (sources.len(), width);
    let src = Tensor::from_vec(ids, shape, model.device())?;
    let src_mask = Tensor::from_vec(mask, shape, model.device())?;
    let input = DecodeInput {
        start_token: cfg.decoder_start_token_id,
        source_lens: sources.iter().map(Vec::len).collect(),
    };
    let t0 = Instant::now();
    let state = model.start(&src, &src_mask)?;
    timing.encode += t0.elapsed();
    let mut timed = Timed {
        inner: state,
        timing,
    };
    Ok(decode::generate(&mut timed, &input, opts)?)
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quant = match args.iter().position(|a| a == "--dtype") {
        Some(i) if i + 1 < args.len() => {
            let q = match args[i + 1].as_str() {
                "f32" => Quantization::None,
                "int8" => Quantization::Int8,
                other => bail!("--dtype {other}: f32 or int8"),
            };
            args.drain(i..i + 2);
            q
        }
        Some(_) => bail!("--dtype needs a value"),
        None => Quantization::None,
    };
    let [model_dir, workload, beam, rest @ ..] = args.as_slice() else {
        bail!("usage: marian_wmt [--dtype f32|int8] MODEL_DIR WORKLOAD_JSON BEAM [OUT_JSON]");
    };
    let beam: usize = beam.parse().context("BEAM must be a number")?;
    let text = std::fs::read_to_string(workload).with_context(|| workload.clone())?;
    let work: Workload = serde_json::from_str(&text).with_context(|| workload.clone())?;

    let t0 = Instant::now();
    let model = MarianModel::load_quantized(Path::new(model_dir), DType::F32, &Device::Cpu, quant)?;
    let load_s = t0.elapsed().as_secs_f64();
    let base = DecodeOptions {
        beam_size: beam,
        eos_token_ids: vec![model.config().eos_token_id],
        suppress_tokens: vec![model.config().pad_token_id],
        ..DecodeOptions::default()
    };

    let mut timing = Timing::default();
    let mut tokens = 0usize;
    let mut outputs: Vec<Vec<Vec<u32>>> = Vec::with_capacity(work.batches.len());
    let start = Instant::now();
    for batch in &work.batches {
        let opts = DecodeOptions {
            min_length: batch.new_tokens,
            max_new_tokens: batch.new_tokens,
            ..base.clone()
        };
        let hyps = translate(&model, &batch.ids, &opts, &mut timing)?;
        for h in &hyps {
            let n = h.tokens.len() + usize::from(h.ended);
            if n != batch.new_tokens {
                bail!(
                    "forced length failed: {n} tokens, wanted {}",
                    batch.new_tokens
                );
            }
            tokens += n;
        }
        outputs.push(hyps.into_iter().map(|h| h.tokens).collect());
    }
    timing.total = start.elapsed();

    if let Some(out) = rest.first() {
        std::fs::write(out, serde_json::to_string(&outputs)?).with_context(|| out.clone())?;
    }
    let secs = |d: Duration| d.as_secs_f64();
    let decode_s = secs(timing.total);
    let host = timing
        .total
        .saturating_sub(timing.encode + timing.step + timing.reorder);
    let line = serde_json::json!({
        "engine": if quant == Quantization::Int8 { "svodka-int8" } else { "svodka" },
        "beam": beam,
        "sentences": work.batches.iter().map(|b| b.ids.len()).sum::<usize>(),
        "tokens": tokens,
        "load_s": load_s,
        "decode_s": decode_s,
        "tok_per_s": tokens as f64 / decode_s,
        "encode_s": secs(timing.encode),
        "step_s": secs(timing.step),
        "reorder_s": secs(timing.reorder),
        "host_s": secs(host),
    });
    println!("{line}");
    Ok(())
}
