//! `svodka translate`.

use clap::{Args, ValueEnum};

use super::{GlobalArgs, InputArgs, LangArg, Outcome};
use crate::Error;

/// Source language choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromLang {
    /// Detect per paragraph.
    Auto,
    Ru,
    En,
}

/// Arguments of `svodka translate`.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Language to translate into.
    #[arg(long, value_enum)]
    pub to: LangArg,
    /// Language to translate from.
    #[arg(long, value_enum, default_value_t = FromLang::Auto)]
    pub from: FromLang,
}

/// Runs `svodka translate`.
pub fn run(_global: &GlobalArgs, _args: TranslateArgs) -> anyhow::Result<Outcome> {
    Err(Error::Unsupported(
        "translation is not built yet: the Marian engine is still to come; nothing was translated"
            .into(),
    )
    .into())
}
