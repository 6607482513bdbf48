//! What the user sees on stderr while a batch runs: a bar (only on a terminal and when
//! not quiet) and one line per failure (always).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Progress display for a batch run; cheap to share between workers.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A display for `total` documents; the bar shows only when `show` and stderr is a
    /// terminal.
    pub fn new(total: u64, show: bool) -> Progress {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} docs  {rate}  ETA {eta}  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} docs/s", state.per_sec());
                },
            );
            bar.set_style(style.progress_chars("=> "));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { bar }
    }

    /// A source turned out to hold `n` documents instead of the one counted for it.
    pub fn more_documents(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    /// One document finished (done, skipped or failed).
    pub fn advance(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Prints a line above the bar (or plainly when there is none).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Shows a short note beside the bar.
    pub fn note(&self, text: &str) {
        if let Some(b) = &self.bar {
            b.set_message(text.to_string());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
