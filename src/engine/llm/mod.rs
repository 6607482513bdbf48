//! GGUF chat and base LLMs as text writers: prompts, chat templates, generation.

mod config;
pub mod file;
mod ggml;
pub mod model;
mod proj;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use serde::Deserialize;

pub use config::{Family, LlmConfig};
pub use file::{GgufBytes, GgufFile};
pub use model::LlmModel;

use crate::tokenizer::gguf::{self as gguf_tok, GgufTokenizer, PromptPart};
use crate::tokenizer::stream::TokenStream;
use crate::{Error, Result};

/// The prompt file shipped with svodka.
const PROMPTS: &str = include_str!("../../../models/prompts.toml");

/// Rendered in place of the article text, then split on: the text goes between the
/// pieces, tokenized as text, so that a special-token text in an article (an
/// `<end_of_turn>` in a post about chat models) never becomes a control token. Private-use
/// characters, which neither prompts.toml nor a chat template writes.
const TEXT_SLOT: &str = "\u{e000}svodka-text\u{e001}";

/// A rendered prompt: template pieces with the outside text between consecutive ones.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// What the prompt and chat templates wrote, split where the text goes.
    pieces: Vec<String>,
    /// Stop strings (completion prompts).
    pub stop: Vec<String>,
}

impl Rendered {
    /// The prompt's parts with `text` in its slots.
    pub fn parts<'a>(&'a self, text: &'a str) -> Vec<PromptPart<'a>> {
        let mut parts = Vec::with_capacity(2 * self.pieces.len());
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                parts.push(PromptPart::Text(text));
            }
            parts.push(PromptPart::Template(piece));
        }
        parts
    }

    /// The prompt as one string, with `text` in its slots.
    pub fn text(&self, text: &str) -> String {
        self.pieces.join(text)
    }
}

/// How a model is prompted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// Instruction-tuned: messages rendered through the model's chat template.
    Chat,
    /// Base model: a plain text prompt it continues.
    Completion,
}

#[derive(Debug, Clone, Deserialize)]
struct ChatPrompt {
    system: Option<String>,
    user: String,
}

#[derive(Debug, Clone, Deserialize)]
struct CompletionPrompt {
    prompt: String,
    #[serde(default)]
    stop: Vec<String>,
}

/// All prompt sets, by task name ("summarize", "reduce", "translate").
#[derive(Debug, Clone, Deserialize)]
pub struct Prompts {
    chat: HashMap<String, ChatPrompt>,
    completion: HashMap<String, CompletionPrompt>,
}

impl Prompts {
    /// The prompts built into svodka (`models/prompts.toml`).
    pub fn builtin() -> Result<Prompts> {
        toml::from_str(PROMPTS)
            .map_err(|e| Error::Model(format!("models/prompts.toml: {}", e.message())))
    }
}

/// Sampling settings; temperature 0 means greedy (the default, reproducible).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: Option<f64>,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Random seed.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_p: None,
            top_k: None,
            seed: 299_792_458,
        }
    }
}

impl Sampling {
    fn processor(&self) -> LogitsProcessor {
        let sampling = if self.temperature <= 0.0 {
            CandleSampling::ArgMax
        } else {
            let temperature = self.temperature;
            match (self.top_k, self.top_p) {
                (None, None) => CandleSampling::All { temperature },
                (Some(k), None) => CandleSampling::TopK { k, temperature },
                (None, Some(p)) => CandleSampling::TopP { p, temperature },
                (Some(k), Some(p)) => CandleSampling::TopKThenTopP { k, p, temperature },
            }
        };
        LogitsProcessor::from_sampling(self.seed, sampling)
    }
}

/// Options of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Penalty on tokens seen in the last `repeat_last_n` (1.0 = none).
    pub repetition_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            sampling: Sampling::default(),
            repetition_penalty: 1.0,
            repeat_last_n: 64,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its answer.
    Eos,
    /// A stop string of the prompt appeared.
    StopString,
    /// The token limit was reached.
    Length,
    /// The output started repeating itself and was cut.
    Loop,
}

/// Generated text and its accounting.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The text, stop string and repetition excluded.
    pub text: String,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated tokens kept (a loop cut drops the repeats).
    pub new_tokens: usize,
    /// Tokens the model generated, the dropped repeats included: what `gen_secs` covers.
    pub sampled_tokens: usize,
    /// Seconds spent on the prompt.
    pub prompt_secs: f64,
    /// Seconds spent generating.
    pub gen_secs: f64,
    /// Why it ended.
    pub stop: StopReason,
}

/// Settings for opening a GGUF model.
#[derive(Debug, Clone)]
pub struct LlmLoadOptions {
    /// Context length to allocate (prompt + generation).
    pub context: usize,
    /// Prompting style; `None` = chat when the GGUF has a chat template.
    pub style: Option<PromptStyle>,
}

impl Default for LlmLoadOptions {
    fn default() -> Self {
        LlmLoadOptions {
            context: 4096,
            style: None,
        }
    }
}

/// A GGUF model with its tokenizer and prompts, ready to write text.
pub struct LlmEngine {
    model: LlmModel,
    tokenizer: GgufTokenizer,
    style: PromptStyle,
    prompts: Prompts,
    /// Print each rendered prompt and its timings on stderr (`--verbose`).
    verbose: bool,
}

impl LlmEngine {
    /// Prints, for each request, the rendered prompt (one JSON string, so that a
    /// benchmark can give another engine the identical text) and the prompt and
    /// generation times on stderr.
    pub fn set_verbose(&mut self, on: bool) {
        self.verbose = on;
    }

    /// Opens a `.gguf` file.
    pub fn load(path: &Path, device: &Device, opts: &LlmLoadOptions) -> Result<LlmEngine> {
        let file = GgufFile::open(path)?;
        let in_file = |e| crate::engine::check::in_file(path, e);
        // The tokenizer (a merge table of the whole vocabulary) is built on a second
        // thread while the weights are set up: loading takes the longer of the two.
        let (tokenizer, model) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| gguf_tok::from_gguf(&file.content));
            let model = LlmModel::from_gguf(&file, device, opts.context);
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (tokenizer, model)
        });
        let tokenizer = tokenizer.map_err(in_file)?;
        let model = model.map_err(in_file)?;
        let style = match (opts.style, &tokenizer.chat_template) {
            (Some(s), _) => s,
            (None, Some(_)) => PromptStyle::Chat,
            (None, None) => PromptStyle::Completion,
        };
        if style == PromptStyle::Chat && tokenizer.chat_template.is_none() {
            return Err(Error::Model(format!(
                "{}: chat prompting asked for, but the GGUF has no chat template",
                path.display()
            )));
        }
        Ok(LlmEngine {
            model,
            tokenizer,
            style,
            prompts: Prompts::builtin()?,
            verbose: false,
        })
    }

    /// The underlying model.
    pub fn model(&self) -> &LlmModel {
        &self.model
    }

    /// The underlying model, for callers that drive it token by token.
    pub fn model_mut(&mut self) -> &mut LlmModel {
        &mut self.model
    }

    /// The tokenizer rebuilt from the GGUF.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// How this engine prompts its model.
    pub fn style(&self) -> PromptStyle {
        self.style
    }

    /// Tokens of `text` as article text (special-token texts count as text).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode_text(text)?.len())
    }

    /// Renders the prompt of `task` ("summarize", "reduce", "translate") with `vars`,
    /// whose `article` is left as a slot for [`Rendered::parts`] to fill.
    pub fn render(&self, task: &str, vars: &minijinja::Value) -> Result<Rendered> {
        let env = template_env();
        let vars = minijinja::context! { article => TEXT_SLOT, ..vars.clone() };
        let render = |src: &str| -> Result<String> {
            env.render_str(src, &vars)
                .map_err(|e| Error::Model(format!("prompt {task:?}: {e}")))
        };
        let (prompt, stop) = match self.style {
            PromptStyle::Completion => {
                let p = self.prompts.completion.get(task).ok_or_else(|| {
                    Error::Model(format!("no completion prompt for {task:?} in prompts.toml"))
                })?;
                (render(&p.prompt)?, p.stop.clone())
            }
            PromptStyle::Chat => {
                let p = self.prompts.chat.get(task).ok_or_else(|| {
                    Error::Model(format!("no chat prompt for {task:?} in prompts.toml"))
                })?;
                let mut messages = Vec::new();
                if let Some(s) = &p.system {
                    messages.push(("system", render(s)?));
                }
                messages.push(("user", render(&p.user)?));
                let template = self.tokenizer.chat_template.as_deref().unwrap_or_default();
                (self.render_chat(template, &messages)?, Vec::new())
            }
        };
        let pieces: Vec<String> = prompt.split(TEXT_SLOT).map(str::to_owned).collect();
        if pieces.len() < 2 {
            return Err(Error::Model(format!(
                "prompt {task:?}: the rendered prompt has no place for the text (does the \
                 chat template rewrite message contents?)"
            )));
        }
        Ok(Rendered { pieces, stop })
    }

    /// Renders `messages` with the model's own chat template, as transformers would.
    fn render_chat(&self, template: &str, messages: &[(&str, String)]) -> Result<String> {
        let env = template_env();
        let token = |id: Option<u32>| {
            id.and_then(|i| self.tokenizer.id_to_token(i))
                .unwrap_or_default()
        };
        let msgs: Vec<minijinja::Value> = messages
            .iter()
            .map(|(role, content)| minijinja::context! { role => role, content => content })
            .collect();
        env.render_str(
            template,
            minijinja::context! {
                messages => msgs,
                add_generation_prompt => true,
                // Qwen3: answer directly, no <think> block.
                enable_thinking => false,
                bos_token => token(self.tokenizer.bos_id),
                eos_token => token(self.tokenizer.eos_ids.first().copied()),
            },
        )
        .map_err(|e| Error::Model(format!("chat template: {e}")))
    }

    /// Tokenizes a prompt the caller wrote whole (its special-token texts are control
    /// tokens), adding BOS unless it already starts with it.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        self.encode_parts(&[PromptPart::Template(prompt)])
    }

    /// Tokenizes a rendered prompt ([`Rendered::parts`]), adding BOS unless the template
    /// already wrote it.
    pub fn encode_parts(&self, parts: &[PromptPart]) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode_prompt(parts)?;
        if let (true, Some(bos)) = (self.tokenizer.add_bos, self.tokenizer.bos_id) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// Generates a continuation of `prompt` (already rendered: [`Rendered::parts`]).
    /// `on_text` receives text pieces as they are decoded, for streaming.
    pub fn generate(
        &mut self,
        prompt: &[PromptPart],
        stop: &[String],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generated> {
        let ids = self.encode_parts(prompt)?;
        let room = self.model.max_positions().saturating_sub(ids.len());
        if room == 0 {
            return Err(Error::Model(format!(
                "the prompt has {} tokens, more than the {}-token context",
                ids.len(),
                self.model.max_positions()
            )));
        }
        let max_new = opts.max_new_tokens.min(room);
        self.model.reset();
        let start = Instant::now();
        let mut logits = self.model.forward(&ids, false)?;
        let prompt_secs = start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut processor = opts.sampling.processor();
        let mut stream = TokenStream::new(self.tokenizer.decoder());
        let mut generated: Vec<u32> = Vec::new();
        let mut sampled = 0;
        let mut text = String::new();
        let mut emitted = 0;
        let mut reason = StopReason::Length;
        while generated.len() < max_new {
            let row = logits.squeeze(0)?;
            let row = if opts.repetition_penalty != 1.0 {
                let tail = generated.len().saturating_sub(opts.repeat_last_n);
                candle_transformers::utils::apply_repeat_penalty(
                    &row,
                    opts.repetition_penalty,
                    &generated[tail..],
                )?
            } else {
                row
            };
            let next = processor.sample(&row)?;
            if self.tokenizer.eos_ids.contains(&next) {
                reason = StopReason::Eos;
                break;
            }
            generated.push(next);
            sampled += 1;
            if let Some(piece) = stream.push(next)? {
                text.push_str(&piece);
            }
            if let Some(cut) = stop_position(&text, stop) {
                text.truncate(cut);
                reason = StopReason::StopString;
                break;
            }
            if let Some(keep) = loop_cut(&generated) {
                generated.truncate(keep);
                text = self.tokenizer.decode(&generated, true)?;
                reason = StopReason::Loop;
                break;
            }
            // Hold back what could still become a stop string.
            let safe = safe_prefix_len(&text, stop);
            if safe > emitted {
                on_text(&text[emitted..safe]);
                emitted = safe;
            }
            logits = self.model.forward(&[next], false)?;
        }
        if reason == StopReason::Length || reason == StopReason::Eos {
            if let Some(rest) = stream.finish()? {
                text.push_str(&rest);
            }
        }
        if text.len() > emitted && reason != StopReason::Loop {
            on_text(&text[emitted..]);
        }
        Ok(Generated {
            text: text.trim().to_string(),
            prompt_tokens: ids.len(),
            new_tokens: generated.len(),
            sampled_tokens: sampled,
            prompt_secs,
            gen_secs: start.elapsed().as_secs_f64(),
            stop: reason,
        })
    }

    /// Logits of every position of `ids` from a fresh cache, as (positions, vocab).
    pub fn prompt_logits(&mut self, ids: &[u32]) -> Result<Tensor> {
        self.model.reset();
        self.model.forward(ids, true)
    }
}

/// A template environment with Python-style string methods, as HF chat templates use.
fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env
}

/// Where the first stop string starts in `text`, ignoring leading whitespace (a base
/// model often opens its answer with the very newline that later ends it).
fn stop_position(text: &str, stop: &[String]) -> Option<usize> {
    let lead = text.len() - text.trim_start().len();
    stop.iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text[lead..].find(s.as_str()).map(|i| i + lead))
        .min()
}

/// Length of `text` that cannot be the start of a stop string.
fn safe_prefix_len(text: &str, stop: &[String]) -> usize {
    let mut safe = text.len();
    for s in stop.iter().filter(|s| !s.is_empty()) {
        for (i, _) in text.char_indices().rev().take(s.chars().count()) {
            if s.starts_with(&text[i..]) {
                safe = safe.min(i);
            }
        }
    }
    safe
}

/// When the tail of `ids` is one block repeated three times (at least 12 tokens each
/// time in all), the length to keep: everything up to the end of the first copy.
fn loop_cut(ids: &[u32]) -> Option<usize> {
    let n = ids.len();
    (1..=n / 3).find_map(|p| {
        if 3 * p < 12 {
            return None;
        }
        let a = &ids[n - 3 * p..n - 2 * p];
        let b = &ids[n - 2 * p..n - p];
        let c = &ids[n - p..];
        (a == b && b == c).then_some(n - 2 * p)
    })
}

impl LlmEngine {
    /// Template variables of a request (the article is a slot, filled at encoding).
    fn vars(req: &super::WriteRequest) -> minijinja::Value {
        let o = req.opts;
        minijinja::context! {
            language => req.lang.english_name(),
            source_language => req.source_lang.english_name(),
            sentences => o.sentences,
            words => o.words.unwrap_or(0),
            style => o.style.name(),
        }
    }

    /// Token limit of the answer to `req`.
    fn answer_tokens(&self, req: &super::WriteRequest) -> Result<usize> {
        if let Some(m) = req.opts.max_tokens {
            return Ok(m);
        }
        let o = req.opts;
        Ok(match req.task {
            // Russian and English run at about two tokens a word in these vocabularies.
            super::WriteTask::Translate => 2 * self.count_tokens(req.text)? + 32,
            _ => match (o.style, o.words) {
                (super::SummaryStyle::Headline, _) => 40,
                (_, Some(w)) => 2 * w + 32,
                _ => 48 * o.sentences + 32,
            },
        })
    }
}

impl super::TextWriter for LlmEngine {
    fn engine_name(&self) -> &'static str {
        "llm"
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        LlmEngine::count_tokens(self, text)
    }

    fn input_budget(&self, req: &super::WriteRequest) -> Result<usize> {
        let prompt = self.render(req.task.key(), &Self::vars(req))?;
        let fixed = self.encode_parts(&prompt.parts(""))?.len();
        let answer = match req.task {
            // The answer grows with the input: split the room between them.
            super::WriteTask::Translate => {
                return Ok(self.model.max_positions().saturating_sub(fixed + 32) / 3)
            }
            _ => self.answer_tokens(req)?,
        };
        Ok(self
            .model
            .max_positions()
            .saturating_sub(fixed + answer + 8))
    }

    fn write(
        &mut self,
        req: &super::WriteRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<super::Written> {
        let prompt = self.render(req.task.key(), &Self::vars(req))?;
        let opts = GenerateOptions {
            max_new_tokens: self.answer_tokens(req)?,
            ..req.opts.generation.clone()
        };
        if self.verbose {
            let json = serde_json::to_string(&prompt.text(req.text))
                .map_err(|e| Error::Model(e.to_string()))?;
            eprintln!("svodka: rendered prompt: {json}");
        }
        let g = self.generate(&prompt.parts(req.text), &prompt.stop, &opts, on_text)?;
        if self.verbose {
            let kept = if g.new_tokens < g.sampled_tokens {
                format!(" ({} kept: the rest repeated a loop)", g.new_tokens)
            } else {
                String::new()
            };
            eprintln!(
                "svodka: prompt {} tokens in {:.3} s, {} tokens generated in {:.3} s{kept}",
                g.prompt_tokens, g.prompt_secs, g.sampled_tokens, g.gen_secs
            );
        }
        Ok(super::Written {
            text: g.text,
            tokens_in: g.prompt_tokens,
            tokens_out: g.new_tokens,
            looped: g.stop == StopReason::Loop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_parse_and_render() {
        let p = Prompts::builtin().unwrap();
        for task in ["summarize", "reduce", "translate"] {
            assert!(p.chat.contains_key(task), "{task}");
            assert!(p.completion.contains_key(task), "{task}");
        }
        let env = template_env();
        let out = env
            .render_str(
                &p.chat["summarize"].user,
                minijinja::context! { article => "TEXT", language => "English", sentences => 3, words => 0, style => "brief" },
            )
            .unwrap();
        assert!(out.contains("in English") && out.contains("3 sentences") && out.ends_with("TEXT"));
    }

    #[test]
    fn stop_strings_are_found_after_leading_space() {
        let stop = vec!["\n".to_string()];
        assert_eq!(stop_position("\n The end.\nMore", &stop), Some(10));
        assert_eq!(stop_position("no stop", &stop), None);
        assert_eq!(safe_prefix_len("abc\n", &stop), 3);
        let stop = vec!["END".to_string()];
        assert_eq!(safe_prefix_len("text EN", &stop), 5);
    }

    #[test]
    fn loops_are_cut_to_one_copy() {
        let mut ids: Vec<u32> = vec![1, 2, 3];
        for _ in 0..3 {
            ids.extend([7, 8, 9, 10, 11, 12]);
        }
        assert_eq!(loop_cut(&ids), Some(3 + 6));
        assert_eq!(loop_cut(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]), None);
        // Short stutters ("- - -") are left to the repetition penalty.
        assert_eq!(loop_cut(&[5, 5, 5]), None);
    }

    #[test]
    fn chat_template_renders_with_python_methods() {
        let env = template_env();
        let t = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content.strip() }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let out = env
            .render_str(
                t,
                minijinja::context! { messages => vec![minijinja::context!{ role => "user", content => " hi " }], add_generation_prompt => true },
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
