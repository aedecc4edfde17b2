//! JUnit XML of a run: one `<testsuite>` per suite, one `<testcase>` per case, a `<failure>`
//! with the first difference; cases not applicable to the target are `<skipped>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::run::{CaseOutcome, CaseResult, RunResults};

/// `s` escaped for XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The JUnit XML document of `results`.
pub fn junit(results: &RunResults) -> String {
    let mut suites: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for c in &results.cases {
        suites.entry(c.suite.as_str()).or_default().push(c);
    }
    let mut skipped: BTreeMap<String, Vec<(&str, &str)>> = BTreeMap::new();
    for n in &results.not_applicable {
        let (suite, case) = n.case.split_once('/').unwrap_or(("cases", n.case.as_str()));
        skipped
            .entry(suite.to_owned())
            .or_default()
            .push((case, n.why.as_str()));
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"cats-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        results.cases.len() + results.not_applicable.len(),
        results.failed(),
        results.not_applicable.len(),
        seconds(results.duration_ms)
    );
    let mut names: Vec<String> = suites.keys().map(|s| (*s).to_owned()).collect();
    for s in skipped.keys() {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    names.sort();
    for name in names {
        let cases = suites.get(name.as_str()).cloned().unwrap_or_default();
        let skips = skipped.get(&name).cloned().unwrap_or_default();
        let failures = cases
            .iter()
            .filter(|c| c.outcome == CaseOutcome::Failed)
            .count();
        let time: u64 = cases.iter().map(|c| c.duration_ms).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
            escape(&name),
            cases.len() + skips.len(),
            skips.len(),
            seconds(time),
            escape(&results.started_at)
        );
        for c in cases {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
                escape(&c.suite),
                escape(&c.name),
                seconds(c.duration_ms)
            );
            match &c.difference {
                None => x.push_str("/>\n"),
                Some(d) => {
                    let _ = write!(
                        x,
                        ">\n      <failure message=\"step {}: {}: expected {}, got {}\" type=\"difference\">step {} ({})\n{}\nexpected: {}\nactual:   {}</failure>\n    </testcase>\n",
                        d.step,
                        escape(&d.what),
                        escape(&d.expected),
                        escape(&d.actual),
                        d.step,
                        escape(&d.step_text),
                        escape(&d.what),
                        escape(&d.expected),
                        escape(&d.actual)
                    );
                }
            }
        }
        for (case, why) in skips {
            let _ = writeln!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0.000\">\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape(&name),
                escape(case),
                escape(why)
            );
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pointer;
    use crate::run::{Difference, NotApplicable};

    pub(crate) fn sample() -> RunResults {
        let case = |name: &str, failed: bool| CaseResult {
            suite: "departure".into(),
            name: name.into(),
            description: "d <&>".into(),
            tags: vec!["CC015C".into(), "departure".into()],
            outcome: if failed {
                CaseOutcome::Failed
            } else {
                CaseOutcome::Passed
            },
            duration_ms: 1500,
            difference: failed.then(|| Difference {
                step: 1,
                step_text: "send cc015c.xml to KZ".into(),
                what: "reply message type".into(),
                expected: "CC928C".into(),
                actual: "CC056C (HTTP 422), code 12, reason <\"bad\"> & 'worse'".into(),
            }),
            exchanges: vec![],
            vars: Default::default(),
        };
        RunResults {
            kit_version: "0.1.0".into(),
            started_at: "2026-03-16T09:30:00Z".into(),
            target: "self".into(),
            environment: vec![("store".into(), "SQLite".into())],
            filter: vec![],
            duration_ms: 3000,
            cases: vec![case("accepted", false), case("rejected", true)],
            not_applicable: vec![NotApplicable {
                case: "journeys/restart".into(),
                why: "restarts a node".into(),
            }],
        }
    }

    #[test]
    fn junit_counts_match_and_the_document_parses() {
        let x = junit(&sample());
        let root = pointer::parse(&x).expect("well-formed");
        assert_eq!(root.name, "testsuites");
        let suites = pointer::select(&root, "/testsuites/testsuite").expect("valid");
        assert_eq!(suites.len(), 2);
        assert!(
            x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("reason &lt;&quot;bad&quot;&gt; &amp; &apos;worse&apos;"));
        let failures =
            pointer::select(&root, "/testsuites/testsuite/testcase/failure").expect("valid");
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("expected: CC928C"));
    }
}
