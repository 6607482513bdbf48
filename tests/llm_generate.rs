//! What the GGUF engine reports of a generation. A tiny random-weight model that falls
//! into a loop is cut: the tokens it kept and the tokens it generated (what the
//! generation time covers, and what `--verbose` prints and the end-to-end benchmark
//! asks llama.cpp for) are reported apart; one that ends its answer reports them equal.

use std::path::Path;

use candle_core::Device;
use svodka::engine::llm::{
    GenerateOptions, Generated, LlmEngine, LlmLoadOptions, PromptStyle, StopReason,
};
use svodka::tokenizer::gguf::PromptPart;

/// 200 greedy tokens at most after a short completion prompt.
fn generate(fixture: &str) -> Generated {
    let path = Path::new("tests/fixtures/gguf-families").join(fixture);
    let mut engine = LlmEngine::load(
        &path,
        &Device::Cpu,
        &LlmLoadOptions {
            context: 512,
            style: Some(PromptStyle::Completion),
        },
    )
    .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 200,
        ..GenerateOptions::default()
    };
    let prompt = [PromptPart::Text("The news of the day:")];
    engine.generate(&prompt, &[], &opts, &mut |_| {}).unwrap()
}

#[test]
fn a_loop_cut_reports_the_tokens_generated_and_the_tokens_kept() {
    // Greedy on these fixed weights (the kernels give the same bits on every CPU): 30
    // tokens, the last twelve a 4-token period three times, of which one period and
    // what came before it are kept.
    let g = generate("gemma3-Q4_K_M.gguf");
    assert_eq!(g.stop, StopReason::Loop);
    assert_eq!((g.new_tokens, g.sampled_tokens), (22, 30));
    let g = generate("llama-Q4_K_M.gguf");
    assert_eq!(g.stop, StopReason::Eos);
    assert_eq!(g.new_tokens, g.sampled_tokens);
}
