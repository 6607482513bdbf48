//! `svodka segment`.

use clap::Args;

use super::{GlobalArgs, Input, InputArgs, Outcome};
use crate::{output, pipeline};

/// Arguments of `svodka segment`.
#[derive(Debug, Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

/// Runs `svodka segment`.
pub fn run(global: &GlobalArgs, args: SegmentArgs) -> anyhow::Result<Outcome> {
    let input = Input::from_args(&args.input)?;
    let article = input.read()?;
    let seg = pipeline::segment::segment_article(&article);
    super::print(&output::segmented(
        &seg,
        &input.display(),
        global.format.into(),
    ))?;
    Ok(Outcome::Ok)
}
