//! The `svodka` binary: parse → run → exit code.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use svodka::cli::{self, Cli, Outcome};

fn main() -> ExitCode {
    // Errors are one line for the user even with RUST_BACKTRACE=1: that variable would
    // also make candle capture a backtrace into every error message. Panics keep theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(cli, watch_ctrl_c) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        // A reader that went away (`svodka ... | head -1`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svodka: {e}");
            ExitCode::from(2)
        }
    }
}

/// Installs the Ctrl-C handler of `svodka batch` and returns the flag it sets. Once:
/// the run stops after the documents in hand (and exits 1, saying how to resume).
/// Twice: quit at once, which is safe too, since outputs are renamed into place whole
/// and temporary files are cleared by the next run.
fn watch_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Where Ctrl-C cannot be caught, its default (quit at once) is still safe, so a
    // failure here is not worth failing the run for.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsvodka: stopped at once; run the same command again to resume");
            std::process::exit(130);
        }
        eprintln!("\nsvodka: stopping after the current documents (Ctrl-C again to quit at once)");
    });
    stop
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
