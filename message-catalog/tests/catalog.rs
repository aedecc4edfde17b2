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

    /// The NCTS P5 reference: `$P5_REF` when set (as for `tools/schemagen`), else
    /// `../shared/reference/ncts-p5` beside the repository.
    pub fn p5_dir() -> PathBuf {
        std::env::var_os("P5_REF")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate_dir().join("../../shared/reference/ncts-p5"))
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

mod hostile {
    use super::common::*;
    use message_catalog::{Limits, decode};
    use std::time::{Duration, Instant};

    fn label_of(bytes: &[u8], limits: &Limits) -> (&'static str, Duration) {
        let t = Instant::now();
        let r = decode(bytes, limits).expect_err("a hostile input was accepted");
        (r.label().unwrap_or("?"), t.elapsed())
    }

    #[test]
    fn every_hostile_file_is_rejected_with_its_label_quickly() {
        let expected = [
            ("billion-laughs.xml", "xml.doctype"),
            ("external-entity.xml", "xml.doctype"),
            ("doctype.xml", "xml.doctype"),
            ("internal-dtd-subset.xml", "xml.doctype"),
            ("deep-nesting.xml", "xml.unknown-element"),
            ("invalid-utf8.xml", "xml.utf8"),
            ("truncated.xml", "xml.truncated"),
            ("wrong-namespace.xml", "xml.namespace"),
            ("no-namespace.xml", "xml.namespace"),
            ("two-roots.xml", "xml.multiple-roots"),
            ("root-inside-root.xml", "xml.unknown-element"),
            ("empty-file.xml", "xml.empty"),
            ("not-xml.xml", "xml.syntax"),
        ];
        let dir = data_dir().join("hostile");
        let mut failures = Vec::new();
        for (file, label) in expected {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let (got, took) = label_of(&bytes, &Limits::default());
            if got != label {
                failures.push(format!("{file}: {got}, expected {label}"));
            }
            assert!(took < Duration::from_secs(2), "{file} took {took:?}");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn valid_cc015c() -> Vec<u8> {
        std::fs::read(data_dir().join("cc015c/valid-full.xml")).unwrap()
    }

    #[test]
    fn a_50_mib_document_is_refused_before_parsing() {
        let mut big = valid_cc015c();
        let pad = b"<!-- padding padding padding padding padding padding padding -->\n";
        while big.len() < 50 * 1024 * 1024 {
            big.extend_from_slice(pad);
        }
        let (label, took) = label_of(&big, &Limits::default());
        assert_eq!(label, "xml.too-large");
        assert!(took < Duration::from_millis(50), "{took:?}");
    }

    #[test]
    fn nesting_100000_deep_is_refused_without_recursion() {
        let mut doc = b"<ncts:CC015C xmlns:ncts=\"http://ncts.dgtaxud.ec\">".to_vec();
        for _ in 0..100_000 {
            doc.extend_from_slice(b"<a>");
        }
        let (label, _) = label_of(&doc, &Limits::default());
        assert_eq!(label, "xml.unknown-element");
        // The depth cap applies before anything else is known about a child.
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let (label, _) = label_of(&valid_cc015c(), &limits);
        assert_eq!(label, "xml.depth");
    }

    #[test]
    fn processing_instructions_undefined_entities_and_bad_declarations_are_refused() {
        let base = String::from_utf8(valid_cc015c()).unwrap();
        let pi = base.replacen("<ncts:CC015C", "<?evil x?><ncts:CC015C", 1);
        assert_eq!(label_of(pi.as_bytes(), &Limits::default()).0, "xml.pi");
        let ent = base.replacen("<messageSender>", "<messageSender>&ghost;", 1);
        assert_eq!(label_of(ent.as_bytes(), &Limits::default()).0, "xml.entity");
        let latin1 = base.replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
        assert_eq!(
            label_of(latin1.as_bytes(), &Limits::default()).0,
            "xml.encoding"
        );
        let text = base.replacen("<TransitOperation>", "<TransitOperation>stray", 1);
        assert_eq!(
            label_of(text.as_bytes(), &Limits::default()).0,
            "xml.unexpected-text"
        );
        let attr = base.replacen("<TransitOperation>", "<TransitOperation x=\"1\">", 1);
        assert_eq!(
            label_of(attr.as_bytes(), &Limits::default()).0,
            "xml.unknown-attribute"
        );
        let dflt = base.replacen(
            "<TransitOperation>",
            "<TransitOperation xmlns=\"urn:x\">",
            1,
        );
        assert_eq!(
            label_of(dflt.as_bytes(), &Limits::default()).0,
            "xml.namespace"
        );
    }
}

mod fuzz {
    use super::common::*;
    use message_catalog::{Limits, decode, encode};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn corpus() -> &'static Vec<Vec<u8>> {
        static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        C.get_or_init(|| {
            cases()
                .iter()
                .filter(|c| c.group != "hostile")
                .map(|c| std::fs::read(&c.xml).unwrap())
                .filter(|b| b.len() < 64 * 1024)
                .collect()
        })
    }

    fn valid_corpus() -> &'static Vec<Vec<u8>> {
        static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        C.get_or_init(|| {
            cases()
                .iter()
                .filter(|c| c.valid && c.group != "hostile")
                .map(|c| std::fs::read(&c.xml).unwrap())
                .collect()
        })
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(usize),
        Flip(usize, u8),
        Insert(usize, &'static str),
        Delete(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (
                any::<usize>(),
                prop::sample::select(vec![
                    "<x>",
                    "</x>",
                    "<a/>",
                    "&amp;",
                    "&#0;",
                    "&#xD800;",
                    "&bogus;",
                    "<![CDATA[x]]>",
                    "<!--c-->",
                    "<?pi?>",
                    "<!DOCTYPE a>",
                    "\u{0}",
                    "\u{FEFF}",
                    "é",
                    "xmlns=\"urn:x\"",
                    " a=\"1\"",
                    ">",
                    "<",
                    "]]>",
                    "\r\n",
                ])
            )
                .prop_map(|(i, s)| Mutation::Insert(i, s)),
            (any::<usize>(), 0usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        ]
    }

    fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
        for m in ms {
            let len = b.len().max(1);
            match *m {
                Mutation::Truncate(i) => b.truncate(i % len),
                Mutation::Flip(i, x) => {
                    if let Some(c) = b.get_mut(i % len) {
                        *c ^= x | 1;
                    }
                }
                Mutation::Insert(i, s) => {
                    let at = (i % len).min(b.len());
                    b.splice(at..at, s.bytes());
                }
                Mutation::Delete(i, n) => {
                    let at = (i % len).min(b.len());
                    let end = (at + n).min(b.len());
                    b.drain(at..end);
                }
            }
        }
        b
    }

    /// Byte ranges of the text of every leaf element (`>text</`) of a document.
    fn leaves(doc: &str) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut k = 0;
        while let Some(off) = doc[k..].find("</") {
            let end = k + off;
            if let Some(start) = doc[..end].rfind('>')
                && !doc[..start].ends_with('-')
                && !doc[start + 1..end].contains('<')
                && doc[..=start]
                    .rfind('<')
                    .is_some_and(|o| !doc[o + 1..].starts_with(['/', '?']))
            {
                v.push((start + 1, end));
            }
            k = end + 2;
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Mutated corpus files never panic; whatever is accepted round-trips.
        #[test]
        fn mutated_corpus_never_panics(i in any::<usize>(), ms in prop::collection::vec(mutation(), 1..4)) {
            let c = corpus();
            let bytes = apply(c[i % c.len()].clone(), &ms);
            if let Ok(m) = decode(&bytes, &Limits::default()) {
                let again = encode(&m);
                prop_assert_eq!(decode(&again, &Limits::default()).ok(), Some(m));
            }
        }

        /// Any text put into any leaf of a valid message either is refused or round-trips
        /// exactly (escaping, whitespace normalisation, decimals and dates).
        #[test]
        fn any_leaf_text_round_trips_when_accepted(i in any::<usize>(), leaf in any::<usize>(), text in "[ -~\t\n\r é€𝄞]{0,40}") {
            let c = valid_corpus();
            let doc = String::from_utf8(c[i % c.len()].clone()).unwrap();
            let leaves = leaves(&doc);
            prop_assume!(!leaves.is_empty());
            let (s, e) = leaves[leaf % leaves.len()];
            let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\r', "&#13;");
            let mutated = format!("{}{}{}", &doc[..s], escaped, &doc[e..]);
            if let Ok(m) = decode(mutated.as_bytes(), &Limits::default()) {
                let again = encode(&m);
                prop_assert_eq!(decode(&again, &Limits::default()).ok(), Some(m));
            }
        }
    }
}

mod nack {
    use super::common::*;
    use message_catalog::codec::nack::{Domain, NackContext, OriginalHeader};
    use message_catalog::codec::{ErrorCode, Problem, RejectionKind};
    use message_catalog::{Limits, Message, decode, encode};

    fn ctx() -> NackContext<'static> {
        NackContext {
            sender: "NTA.KZ",
            message_identification: "NACK-0001",
            prepared_at: chrono::NaiveDate::from_ymd_opt(2026, 3, 16)
                .unwrap()
                .and_hms_opt(9, 30, 0)
                .unwrap(),
            domain: None,
        }
    }

    #[test]
    fn an_xml_rejection_becomes_a_cc917c_that_points_at_the_error() {
        let bytes = std::fs::read(data_dir().join("cc015c/lrn-too-long.xml")).unwrap();
        let r = decode(&bytes, &Limits::default()).unwrap_err();
        let nack = r.to_nack(&OriginalHeader::sniff(&bytes), &ctx()).unwrap();
        let Message::CC917C(n) = &nack else {
            panic!("{nack:?}")
        };
        let p = &r.problems[0];
        assert_eq!(
            n.xml_error[0].error_pointer.as_deref(),
            Some(p.pointer.as_str())
        );
        assert_eq!(n.xml_error[0].error_line_number, i64::from(p.line));
        assert_eq!(
            n.correlation_identifier.as_deref(),
            Some("CC015C-MESS-0001")
        );
        assert_eq!(decode(&encode(&nack), &Limits::default()).unwrap(), nack);
        let (line, column) = message_catalog::codec::locate(&bytes, &p.pointer).unwrap();
        assert_eq!((line, column), (p.line, p.column));
    }

    #[test]
    fn functional_and_common_domain_nacks() {
        let r = message_catalog::Rejection {
            kind: RejectionKind::Functional,
            problems: vec![Problem {
                line: 3,
                column: 5,
                pointer: "/CD050C/TransitOperation/MRN".into(),
                code: ErrorCode::RULE,
                label: "rule.example",
                rule: Some("R0123".into()),
                reason: "example".into(),
            }],
            message_type: Some("CD050C".into()),
        };
        let original = OriginalHeader {
            message_sender: Some("NTA.AZ".into()),
            message_identification: Some("M1".into()),
            lrn: None,
            mrn: Some("26KZ000101ABCDEFJ0".into()),
        };
        let m = r.to_nack(&original, &ctx());
        match m {
            Ok(Message::CD906C(n)) => {
                assert_eq!(n.functional_error[0].error_reason.as_deref(), Some("R0123"))
            }
            Ok(other) => panic!("{other:?}"),
            // The MRN above may not satisfy the schema's MRN pattern; that is reported, not sent.
            Err(e) => assert!(e.to_string().starts_with("nack.invalid"), "{e}"),
        }
        let ext = NackContext {
            domain: Some(Domain::External),
            ..ctx()
        };
        let m = r.to_nack(&original, &ext).unwrap();
        assert_eq!(m.message_type(), "CC906C");
        let xml = message_catalog::Rejection {
            kind: RejectionKind::Xml,
            ..r.clone()
        };
        assert_eq!(
            xml.to_nack(&original, &ctx()).unwrap().message_type(),
            "CD917C"
        );
    }

    #[test]
    fn rules_and_code_lists_are_reachable_from_pointers() {
        let bytes = std::fs::read(data_dir().join("cc015c/valid-full.xml")).unwrap();
        let m = decode(&bytes, &Limits::default()).unwrap();
        let mut seen = Vec::new();
        m.visit_code_lists(&mut |p, cl, v| seen.push((p.to_string(), cl, v.to_string())));
        assert!(!seen.is_empty());
        for (p, cl, _) in &seen {
            let el = message_catalog::codec::element_at(p).unwrap_or_else(|| panic!("{p}"));
            assert_eq!(el.code_list, Some(*cl));
            assert!(message_catalog::codec::locate(&bytes, p).is_some(), "{p}");
        }
        assert_eq!(m.message_identification(), Some("CC015C-MESS-0001"));
        assert!(m.preparation_date_and_time().is_some());
        let with_rules = message_catalog::codec::element_at(
            "/CC015C/HolderOfTheTransitProcedure/identificationNumber",
        )
        .unwrap();
        assert!(!with_rules.rules.is_empty());
        assert_eq!(
            message_catalog::codec::rules_of(
                "HolderOfTheTransitProcedureType02",
                "identificationNumber"
            ),
            with_rules.rules
        );
    }
}

mod patterns {
    use message_catalog::generated::FAMILIES;

    /// Every pattern's direct check agrees with its regex translation on a spread of values.
    #[test]
    fn fast_paths_agree_with_the_regexes() {
        let samples = [
            "",
            "0",
            "00",
            "1",
            "9",
            "10",
            "1999",
            "2000",
            "1.5",
            "0.25",
            "01",
            ".5",
            "1.",
            "-1.5",
            "+1.50",
            "A",
            "AB",
            "ab",
            "ABC",
            "GB000001",
            "KZ000101",
            "26KZ000101ABCDEFJ0",
            "26KZ00010100000017",
            " a",
            "a ",
            "a b",
            "x@y.z",
            "NCTS5.1",
            "12345678901234567890",
            "é",
            "A\tB",
            "A\nB",
            "ZZ-12",
            "90.000000",
            "45.123456",
            "180.0000000",
            "XA25123456",
            "a/b",
            "T1",
            "2026-03-16T09:30:00",
        ];
        let mut seen = 0;
        let mut failures = Vec::new();
        for (_, _, _, types) in FAMILIES {
            for t in *types {
                for e in t.elements {
                    let Some(st) = e.simple else { continue };
                    for l in st.levels {
                        for p in l.patterns {
                            let Some(fast) = &p.fast else { continue };
                            seen += 1;
                            let rx = regex::Regex::new(p.regex).unwrap();
                            for s in samples {
                                let _ = fast;
                                if p.matches(s) != rx.is_match(s) {
                                    failures.push(format!("{:?} on {s:?}", p.xsd));
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(seen > 50);
        failures.sort();
        failures.dedup();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
