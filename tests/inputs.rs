//! Hostile and huge inputs through the real `svodka` binary: endless devices and pipes,
//! input over the size limit, HTML nested far too deep. Each ends in one line on stderr
//! naming the input, and exit code 2.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn svodka() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    // No test here may reach a model: offline, a model lookup fails fast.
    cmd.env("SVODKA_OFFLINE", "true");
    cmd
}

fn run(args: &[&str], stdin: Stdio) -> Output {
    svodka()
        .args(args)
        .stdin(stdin)
        .output()
        .expect("svodka runs")
}

/// Runs svodka with `input` written to its stdin by another thread; the writer's broken
/// pipe (svodka stops reading at its limit) is expected.
fn run_piped(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = svodka()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("svodka starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("svodka ends");
    writer.join().expect("writer thread");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line on stderr, exit code 2, and the line names `name` and says `what`.
fn assert_refused(o: &Output, name: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("svodka: {name}: ")), "{err}");
    assert!(err.contains(what), "{err}");
    assert!(o.stdout.is_empty());
}

const ZERO: &str = "/dev/zero";

fn dev_zero() -> Stdio {
    Stdio::from(std::fs::File::open(ZERO).expect("/dev/zero"))
}

#[test]
fn endless_device_is_refused_at_the_limit() {
    assert!(Path::new(ZERO).exists(), "{ZERO} is missing");
    let limit = "is over the input limit of 8.0 MiB (raise it with --max-size)";
    for args in [
        &["summarize", "--engine", "extractive", ZERO][..],
        &["segment", ZERO],
        &["translate", "--to", "en", ZERO],
    ] {
        let o = run(args, Stdio::null());
        assert_refused(&o, ZERO, limit);
    }
}

#[test]
fn endless_stdin_is_refused_at_the_limit() {
    for args in [
        &["summarize", "--engine", "extractive"][..],
        &["segment", "-"],
        &["translate", "--to", "ru"],
    ] {
        let o = run(args, dev_zero());
        assert_refused(&o, "<stdin>", "is over the input limit of 8.0 MiB");
    }
}

#[test]
fn max_size_moves_the_limit() {
    let o = run(&["segment", "--max-size", "64K", ZERO], Stdio::null());
    assert_refused(&o, ZERO, "over the input limit of 64.0 KiB");

    // A big text file: its size is known, so it is refused without being read.
    let dir = tempfile::tempdir().expect("temporary folder");
    let big = dir.path().join("big.txt");
    let sentence = "Prices of oil rose again on Monday. ";
    std::fs::write(&big, sentence.repeat((9 << 20) / sentence.len())).expect("write");
    let name = big.to_str().expect("utf-8 path");
    let o = run(&["segment", name], Stdio::null());
    assert_refused(&o, name, "is 9.0 MiB, over the input limit of 8.0 MiB");
    let o = run(&["segment", "--max-size", "10M", name], Stdio::null());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o
        .stdout
        .starts_with(b"Prices of oil rose again on Monday.\n"));

    let o = run(&["segment", "--max-size", "0", name], Stdio::null());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn big_stdin_is_refused_and_a_smaller_one_read() {
    let text = "Prices of oil rose again on Monday. "
        .repeat(300_000)
        .into_bytes();
    let o = run_piped(&["segment"], text.clone());
    assert_refused(&o, "<stdin>", "is over the input limit of 8.0 MiB");
    let o = run_piped(&["segment", "--max-size", "16M"], text);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn html_nested_two_hundred_thousand_deep_is_refused() {
    let dir = tempfile::tempdir().expect("temporary folder");
    for tag in ["div", "blockquote"] {
        let page = format!(
            "<html><body>{}<p>Deep text here.</p>{}</body></html>",
            format!("<{tag}>").repeat(200_000),
            format!("</{tag}>").repeat(200_000)
        );
        let path = dir.path().join(format!("{tag}.html"));
        std::fs::write(&path, page).expect("write");
        let name = path.to_str().expect("utf-8 path");
        let o = run(
            &["summarize", "--engine", "extractive", name],
            Stdio::null(),
        );
        assert_refused(
            &o,
            name,
            "nests HTML elements more than 512 deep, which svodka does not read",
        );
    }
}
