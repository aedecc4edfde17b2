//! The rules stage: one failing case per implemented rule and valid cases under
//! `tests/data/rules/<message>/<case>.xml`, each with `<case>.expect`:
//!
//! ```text
//! invalid                      valid
//! /CC015C/Guarantee[1]/...     (nothing more)
//! 13 C0086
//! ```
//!
//! Every case is schema-valid (the XSD agreement is checked by `xmllint` in
//! `every_rules_case_is_schema_valid`), so it fails at the rules stage only.

use std::path::{Path, PathBuf};

use message_catalog::codec::{Limits, RejectionKind};
use message_catalog::codelists::CodeLists;
use message_catalog::rules::{self, IMPLEMENTED, Level};
use proptest::prelude::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules")
}

/// Every `(message dir, case name, xml path)` of the rules corpus.
fn cases() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data_dir()) else {
        return out;
    };
    for dir in dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path())
        .filter(|p| p.is_dir())
    {
        let msg = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let files = std::fs::read_dir(&dir).expect("readable case directory");
        for f in files.filter_map(|f| f.ok()).map(|f| f.path()) {
            if f.extension().is_some_and(|e| e == "xml") {
                let case = f
                    .file_stem()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                out.push((msg.clone(), case, f));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn rules_corpus_gives_the_expected_verdicts() {
    let all = cases();
    assert!(
        !all.is_empty(),
        "no rules cases under {}",
        data_dir().display()
    );
    let mut failures = Vec::new();
    for (msg, case, path) in &all {
        let bytes = std::fs::read(path).expect("readable case");
        let expect = std::fs::read_to_string(path.with_extension("expect"))
            .expect("every case has a .expect");
        let mut lines = expect.lines();
        let verdict = lines.next().unwrap_or_default().trim();
        let result = rules::validate(&bytes, &Limits::default(), Level::Rules);
        match (verdict, result) {
            ("valid", Ok(_)) => {}
            ("valid", Err(r)) => failures.push(format!(
                "{msg}/{case}: expected valid, got {:?}",
                r.problems
            )),
            ("invalid", Ok(_)) => {
                failures.push(format!("{msg}/{case}: expected invalid, got valid"))
            }
            ("invalid", Err(r)) => {
                let pointer = lines.next().unwrap_or_default().trim();
                let code_rule = lines.next().unwrap_or_default().trim();
                if r.kind != RejectionKind::Functional {
                    failures.push(format!(
                        "{msg}/{case}: rejected before the rules stage: {r}"
                    ));
                    continue;
                }
                let found = r.problems.iter().any(|p| {
                    p.pointer == pointer
                        && format!("{} {}", p.code.0, p.rule.as_deref().unwrap_or("-")) == code_rule
                });
                if !found {
                    failures.push(format!(
                        "{msg}/{case}: expected {pointer} {code_rule}, got {:?}",
                        r.problems
                    ));
                }
                if r.problems.iter().any(|p| p.line == 0) {
                    failures.push(format!(
                        "{msg}/{case}: a problem without a line: {:?}",
                        r.problems
                    ));
                }
            }
            (other, _) => failures.push(format!("{msg}/{case}: bad verdict line {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn every_implemented_rule_has_a_failing_case() {
    let mut covered = std::collections::BTreeSet::new();
    for (_, _, path) in cases() {
        let expect = std::fs::read_to_string(path.with_extension("expect")).unwrap_or_default();
        if let Some(rule) = expect
            .lines()
            .nth(2)
            .and_then(|l| l.split_whitespace().nth(1))
        {
            covered.insert(if rule.starts_with("CL") {
                "CL".to_owned()
            } else {
                rule.to_owned()
            });
        }
    }
    let missing: Vec<&str> = IMPLEMENTED
        .iter()
        .map(|r| r.id)
        .filter(|id| !covered.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "implemented rules without a failing case: {missing:?}"
    );
}

#[test]
fn every_rules_case_is_schema_valid() {
    let xmllint = std::process::Command::new("xmllint")
        .arg("--version")
        .output();
    assert!(
        xmllint.is_ok(),
        "xmllint is needed (apt-get install -y libxml2-utils)"
    );
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/ncts");
    let mut failures = Vec::new();
    for (msg, case, path) in cases() {
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(schemas.join(format!("{msg}.xsd")))
            .arg(&path)
            .output()
            .expect("xmllint runs");
        if !out.status.success() {
            failures.push(format!(
                "{msg}/{case}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bytes = std::fs::read(&path).expect("readable case");
        if let Err(r) = rules::validate(&bytes, &Limits::default(), Level::Xml) {
            failures.push(format!("{msg}/{case}: the codec rejects it: {r}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every schema-valid file of the codec's corpus (and the P5 samples) run through the rules:
/// a crash would fail the test; the problems found are printed for review.
#[test]
fn rules_never_panic_on_the_codec_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut stack = vec![root];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for p in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "xml") {
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                if bytes.len() > 2 * 1024 * 1024 {
                    continue;
                }
                if let Ok(m) = message_catalog::codec::decode(&bytes, &Limits::default()) {
                    let problems = rules::check(&m, CodeLists::embedded());
                    for pr in &problems {
                        println!(
                            "{}: {} {} {:?} {}",
                            p.display(),
                            pr.pointer,
                            pr.code.0,
                            pr.rule,
                            pr.reason
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0);
}

/// RULES.md is the written account of what is implemented: it must not drift from the table.
#[test]
fn rules_md_lists_every_implemented_rule() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("RULES.md"))
        .expect("RULES.md exists");
    let section = doc
        .split("## Implemented in the catalogue")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("RULES.md has an 'Implemented in the catalogue' section");
    let listed: std::collections::BTreeSet<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|id| id.len() == 5)
        .collect();
    let implemented: std::collections::BTreeSet<&str> = IMPLEMENTED
        .iter()
        .map(|r| r.id)
        .filter(|id| *id != "CL")
        .collect();
    assert_eq!(
        listed, implemented,
        "RULES.md and rules::IMPLEMENTED differ"
    );
}

/// The valid CC015C of the corpus with the text of one element replaced by arbitrary text:
/// decoding and the rules never panic, whatever the value.
fn mutated_declaration(index: usize, text: &str) -> Vec<u8> {
    let path = data_dir().join("cc015c/valid.xml");
    let base = std::fs::read_to_string(path).expect("the valid CC015C case exists");
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;");
    let mut out = String::new();
    let mut seen = 0;
    let mut rest = base.as_str();
    // Leaf elements are the lines `<name>value</name>`.
    while let Some(line_end) = rest.find('\n') {
        let (line, tail) = rest.split_at(line_end + 1);
        let trimmed = line.trim();
        let is_leaf =
            trimmed.starts_with('<') && !trimmed.starts_with("</") && trimmed.contains("</");
        if is_leaf && seen == index {
            let open_end = line.find('>').map_or(0, |i| i + 1);
            let close_start = line.rfind("</").unwrap_or(line.len());
            out.push_str(line.get(..open_end).unwrap_or_default());
            out.push_str(&escaped);
            out.push_str(line.get(close_start..).unwrap_or_default());
        } else {
            out.push_str(line);
        }
        if is_leaf {
            seen += 1;
        }
        rest = tail;
    }
    out.push_str(rest);
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rules_never_panic_on_mutated_declarations(index in 0usize..120, text in "\\PC{0,20}|[0-9]{1,20}|[A-Z0-9]{1,20}") {
        let bytes = mutated_declaration(index, &text);
        let _ = rules::validate(&bytes, &Limits::default(), Level::Rules);
    }
}
