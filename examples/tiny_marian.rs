//! Writes a tiny random-weight Marian model folder (the one the integration tests
//! build from the committed fixtures) to the folder given, for scripts that need a
//! model on disk: `cargo run --example tiny_marian -- DIR`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: tiny_marian DIR");
        std::process::exit(2);
    };
    let out = std::path::PathBuf::from(out);
    let model = common::tiny_marian_dir("base");
    if let Err(e) = copy_dir(model.path(), &out) {
        eprintln!("tiny_marian: {}: {e}", out.display());
        std::process::exit(2);
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}
