//! An article whose paragraphs are in Russian, English and Ukrainian (mostly Ukrainian):
//! svodka does what it can with the Russian and English, keeps the rest, and says so —
//! on stderr and in the JSON — with exit code 0. Only an article with no Russian or
//! English at all is refused.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

const RU: &str = "Правительство России объявило о новых мерах поддержки малого бизнеса в \
    понедельник. Министр экономики сказал, что программа начнётся в марте.";
const EN: &str = "The government announced new support measures for small businesses on \
    Monday. The economy minister said the programme would start in March.";
const UK: [&str; 2] = [
    "Уряд України оголосив про нові заходи підтримки малого бізнесу в понеділок. Міністр \
     економіки заявив, що програма розпочнеться в березні і триватиме до кінця року.",
    "Її вартість оцінюють у кілька мільярдів гривень, а кошти надійдуть з державного \
     бюджету. Підприємці зможуть подати заявки через електронний кабінет платника податків.",
];

fn svodka(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svodka"));
    cmd.env("HF_HOME", home)
        .env_remove("SVODKA_REGISTRY")
        .arg("--offline")
        .stdin(Stdio::null());
    cmd
}

fn article(dir: &Path) -> String {
    let text = format!(
        "Нові заходи підтримки бізнесу\n\n{}\n\n{RU}\n\n{EN}\n\n{}\n",
        UK[0], UK[1]
    );
    let path = dir.join("mixed.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn translation_keeps_and_reports_what_it_cannot_translate() {
    let tmp = TempDir::new().unwrap();
    let file = article(tmp.path());
    let model = common::tiny_marian_dir("base");
    let m = model.path().to_str().unwrap();
    let o = svodka(tmp.path())
        .args([
            "--format",
            "json",
            "translate",
            &file,
            "--to",
            "ru",
            "--model",
            m,
        ])
        .output()
        .unwrap();
    let v = json(&o);
    let paragraphs = v["paragraphs"].as_array().unwrap();
    assert_eq!(paragraphs.len(), 4);
    for (i, text) in [(0, UK[0]), (1, RU), (3, UK[1])] {
        assert_eq!(paragraphs[i]["passthrough"], true, "{i}");
        assert_eq!(paragraphs[i]["translated"]["text"], text, "{i}");
    }
    assert_eq!(paragraphs[2]["passthrough"], false);
    let untranslated: Vec<(Value, Value)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "untranslated")
        .map(|p| (p["paragraph"].clone(), p["lang"].clone()))
        .collect();
    // The Ukrainian headline and both Ukrainian paragraphs.
    assert_eq!(
        untranslated,
        vec![
            (Value::Null, "uk".into()),
            (0.into(), "uk".into()),
            (3.into(), "uk".into())
        ]
    );
    let err = stderr(&o);
    assert!(
        err.contains("paragraph 1") && err.contains("in uk"),
        "{err}"
    );
    assert!(err.contains("paragraph 4"), "{err}");
    assert!(err.contains("headline"), "{err}");
}

#[test]
fn a_summary_is_made_of_the_paragraphs_svodka_reads() {
    let tmp = TempDir::new().unwrap();
    let file = article(tmp.path());
    let o = svodka(tmp.path())
        .args([
            "--format",
            "json",
            "summarize",
            "--engine",
            "extractive",
            "-n",
            "2",
            &file,
        ])
        .output()
        .unwrap();
    let v = json(&o);
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains("1, 4") && w.contains("uk"), "{w}");
    assert!(stderr(&o).contains("warning: paragraph(s) 1, 4 in uk"));
    let sentences = v["summary"]["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 2);
    for s in sentences {
        let text = s["text"].as_str().unwrap();
        assert!(RU.contains(text) || EN.contains(text), "{text}");
        // Paragraph numbers point into the whole article.
        let p = s["paragraph"].as_u64().unwrap();
        assert!(p == 1 || p == 2, "{p}");
    }
}

#[test]
fn an_article_with_no_russian_or_english_is_refused() {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join("uk.txt");
    std::fs::write(&path, format!("{}\n\n{}\n", UK[0], UK[1])).unwrap();
    let f = path.to_str().unwrap();
    let o = svodka(tmp.path())
        .args(["translate", f, "--to", "en", "--model", "/no/such/model"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("uk.txt") && err.contains("language is uk"),
        "{err}"
    );
    let o = svodka(tmp.path())
        .args(["summarize", "--engine", "extractive", f])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("language is uk"), "{}", stderr(&o));
}
