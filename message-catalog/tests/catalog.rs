//! The codec's integration tests (one binary): the corpus verdicts and pointers, round trips,
//! agreement with `xmllint --schema`, the P5 samples against the P5 XSDs, hostile inputs, fuzzing
//! and NACK rendering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    pub fn crate_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    pub fn data_dir() -> PathBuf {
        crate_dir().join("tests/data")
    }

    /// `../../shared/reference/ncts-p5` relative to the repository root.
    pub fn p5_dir() -> PathBuf {
        crate_dir().join("../../shared/reference/ncts-p5")
    }

    #[derive(Debug, Clone)]
    pub struct Case {
        pub xml: PathBuf,
        pub group: String,
        pub valid: bool,
        pub pointer: Option<String>,
    }

    impl Case {
        pub fn name(&self) -> String {
            format!(
                "{}/{}",
                self.group,
                self.xml.file_name().unwrap().to_string_lossy()
            )
        }
    }

    /// Every `tests/data/<group>/<case>.xml` with a `.expect` next to it.
    pub fn cases() -> Vec<Case> {
        let mut out = Vec::new();
        let mut groups: Vec<PathBuf> = std::fs::read_dir(data_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        groups.sort();
        for g in groups {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&g)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect();
            files.sort();
            for xml in files {
                let expect = xml.with_extension("expect");
                let Ok(text) = std::fs::read_to_string(&expect) else {
                    continue;
                };
                let mut lines = text.lines();
                let verdict = lines
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                let pointer = lines
                    .next()
                    .and_then(|l| l.split_whitespace().next())
                    .map(|p| p.strip_prefix("/#document").unwrap_or(p).to_string())
                    .map(|p| if p.is_empty() { "/".to_string() } else { p });
                out.push(Case {
                    xml: xml.clone(),
                    group: g.file_name().unwrap().to_string_lossy().into_owned(),
                    valid: verdict == "valid",
                    pointer,
                });
            }
        }
        out
    }

    /// The CATS schema a corpus group is checked against.
    pub fn schema_for(group: &str, xml: &Path) -> PathBuf {
        let schemas = crate_dir().join("../schemas");
        let stem = if group == "p5-samples" {
            xml.file_name()
                .unwrap()
                .to_string_lossy()
                .split('-')
                .next()
                .unwrap()
                .to_string()
        } else if group == "hostile" {
            "cc015c".to_string()
        } else {
            group.to_string()
        };
        let family = match &stem[..2] {
            "cd" => "cats",
            "ca" => "admin",
            _ => "ncts",
        };
        schemas.join(family).join(format!("{stem}.xsd"))
    }

    /// Fails (never skips) when xmllint is missing.
    pub fn require_xmllint() {
        let ok = Command::new("xmllint")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "xmllint is required by the XSD agreement tests: install it with `apt-get install -y libxml2-utils`"
        );
    }

    /// Validates many files against one schema in one xmllint run; returns file → valid.
    pub fn xmllint_many(schema: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, bool> {
        require_xmllint();
        let mut out = BTreeMap::new();
        for chunk in files.chunks(200) {
            let o = Command::new("xmllint")
                .arg("--noout")
                .arg("--nonet")
                .arg("--schema")
                .arg(schema)
                .args(chunk)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            for f in chunk {
                let ok = stderr
                    .lines()
                    .any(|l| l == format!("{} validates", f.display()));
                out.insert(f.clone(), ok);
            }
        }
        out
    }
}

mod corpus {
    use super::common::*;
    use message_catalog::{Limits, decode, encode};

    #[test]
    fn every_case_gets_its_expected_verdict_and_pointer() {
        let mut failures = Vec::new();
        let cases = cases();
        assert!(cases.len() > 100, "the corpus is missing");
        for c in &cases {
            let bytes = std::fs::read(&c.xml).unwrap();
            match (decode(&bytes, &Limits::default()), c.valid) {
                (Ok(_), true) => {}
                (Ok(_), false) => {
                    failures.push(format!("{}: accepted, expected invalid", c.name()))
                }
                (Err(r), true) => failures.push(format!("{}: rejected: {r}", c.name())),
                (Err(r), false) => {
                    let got = r
                        .problems
                        .first()
                        .map(|p| p.pointer.clone())
                        .unwrap_or_default();
                    if c.group != "hostile" && c.pointer.as_deref().is_some_and(|p| p != got) {
                        failures.push(format!(
                            "{}: pointer {got}, expected {:?} ({r})",
                            c.name(),
                            c.pointer
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases disagree:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn every_valid_case_round_trips() {
        let mut failures = Vec::new();
        for c in cases().iter().filter(|c| c.valid) {
            let bytes = std::fs::read(&c.xml).unwrap();
            let Ok(m) = decode(&bytes, &Limits::default()) else {
                continue;
            };
            let again = encode(&m);
            match decode(&again, &Limits::default()) {
                Ok(m2) if m2 == m => {
                    if encode(&m2) != again {
                        failures.push(format!("{}: encoding is not stable", c.name()));
                    }
                }
                Ok(_) => failures.push(format!("{}: decode(encode(m)) != m", c.name())),
                Err(r) => failures.push(format!("{}: re-encoding rejected: {r}", c.name())),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

mod agreement {
    use super::common::*;
    use message_catalog::{Limits, decode, encode};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// Deliberate departures from libxml2 (documented in the codec): the codec refuses every
    /// DOCTYPE and processing instruction, and caps the nesting depth, where libxml2 may accept
    /// a harmless internal subset. Hostile inputs are compared by their own test instead.
    fn departure(group: &str) -> bool {
        group == "hostile"
    }

    #[test]
    fn codec_and_xmllint_agree_on_every_corpus_file() {
        let cases = cases();
        let mut by_schema: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for c in &cases {
            by_schema
                .entry(schema_for(&c.group, &c.xml))
                .or_default()
                .push(c.xml.clone());
        }
        let mut verdicts = BTreeMap::new();
        for (schema, files) in &by_schema {
            assert!(schema.exists(), "no schema {}", schema.display());
            verdicts.extend(xmllint_many(schema, files));
        }
        let mut failures = Vec::new();
        for c in &cases {
            if departure(&c.group) {
                continue;
            }
            let bytes = std::fs::read(&c.xml).unwrap();
            let codec = decode(&bytes, &Limits::default());
            let lint = verdicts[&c.xml];
            if codec.is_ok() != lint {
                failures.push(format!(
                    "{}: codec {}, xmllint {}",
                    c.name(),
                    codec
                        .as_ref()
                        .map_or_else(|r| format!("rejects ({r})"), |_| "accepts".into()),
                    if lint { "accepts" } else { "rejects" }
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} disagreements:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn every_re_encoding_validates_with_xmllint() {
        let dir = std::env::temp_dir().join(format!("cats-reencode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut by_schema: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for (i, c) in cases().iter().filter(|c| c.valid).enumerate() {
            let bytes = std::fs::read(&c.xml).unwrap();
            let Ok(m) = decode(&bytes, &Limits::default()) else {
                continue;
            };
            let out = dir.join(format!(
                "{i}-{}",
                c.xml.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&out, encode(&m)).unwrap();
            by_schema
                .entry(schema_for(&c.group, &c.xml))
                .or_default()
                .push(out);
        }
        let mut failures = Vec::new();
        for (schema, files) in &by_schema {
            for (f, ok) in xmllint_many(schema, files) {
                if !ok {
                    failures.push(f.display().to_string());
                }
            }
        }
        if failures.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert!(
            failures.is_empty(),
            "re-encodings that xmllint rejects:\n{}",
            failures.join("\n")
        );
    }
}

mod p5 {
    use super::common::*;
    use message_catalog::{Limits, decode, encode};
    use std::path::PathBuf;

    fn samples() -> Vec<PathBuf> {
        let dir = p5_dir().join("samples");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        v.sort();
        v
    }

    fn p5_schema(sample: &std::path::Path) -> PathBuf {
        let stem = sample
            .file_name()
            .unwrap()
            .to_string_lossy()
            .split('-')
            .next()
            .unwrap()
            .to_string();
        p5_dir().join("xsd").join(format!("{stem}.xsd"))
    }

    #[test]
    fn every_p5_sample_gets_the_p5_xsd_verdict_and_round_trips() {
        let samples = samples();
        assert!(samples.len() >= 30, "P5 samples missing");
        let mut failures = Vec::new();
        let dir = std::env::temp_dir().join(format!("cats-p5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for s in &samples {
            let schema = p5_schema(s);
            let lint = xmllint_many(&schema, std::slice::from_ref(s))[s];
            let bytes = std::fs::read(s).unwrap();
            let codec = decode(&bytes, &Limits::default());
            if codec.is_ok() != lint {
                failures.push(format!(
                    "{}: codec {:?}, P5 XSD valid={lint}",
                    s.display(),
                    codec.err().map(|r| r.to_string())
                ));
                continue;
            }
            if let Ok(m) = codec {
                let out = dir.join(s.file_name().unwrap());
                let again = encode(&m);
                std::fs::write(&out, &again).unwrap();
                if !xmllint_many(&schema, std::slice::from_ref(&out))[&out] {
                    failures.push(format!(
                        "{}: re-encoding fails the P5 XSD ({})",
                        s.display(),
                        out.display()
                    ));
                }
                if decode(&again, &Limits::default()).ok() != Some(m) {
                    failures.push(format!("{}: does not round-trip", s.display()));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
