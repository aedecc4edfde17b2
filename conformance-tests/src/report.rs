//! The certification report: one self-contained HTML page (no scripts, no external files) made
//! from a run's results, for a customs IT manager: the verdict, a summary per message type and
//! per office role, every case, each failure with its difference and the messages exchanged,
//! and the environment. Everything taken from the results is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::junit::escape;
use crate::run::{CaseOutcome, CaseResult, RunResults};

/// The office roles a summary row is made for, in travel order.
pub const ROLES: [&str; 5] = ["departure", "exit", "transit", "destination", "hub"];

/// Whether `tag` names a message type (`CC015C`, `CD118C`).
pub fn is_message_type(tag: &str) -> bool {
    let b = tag.as_bytes();
    b.len() == 6
        && b[0] == b'C'
        && (b[1] == b'C' || b[1] == b'D')
        && b[2..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'C'
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

fn tally<'a>(cases: impl Iterator<Item = &'a CaseResult>) -> Tally {
    let mut t = Tally::default();
    for c in cases {
        match c.outcome {
            CaseOutcome::Passed => t.passed += 1,
            CaseOutcome::Failed => t.failed += 1,
        }
    }
    t
}

fn summary_rows(out: &mut String, rows: &[(String, Tally)]) {
    for (name, t) in rows {
        let class = if t.failed == 0 { "pass" } else { "fail" };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            t.passed + t.failed,
            t.passed,
            t.failed
        );
    }
}

/// The report page.
pub fn html(results: &RunResults) -> String {
    let verdict = if results.all_passed() {
        ("pass", "CONFORMANT: every case passed")
    } else if results.cases.is_empty() {
        ("fail", "NOT CERTIFIED: no case was run")
    } else {
        ("fail", "NOT CONFORMANT: some cases failed")
    };
    let mut by_type: BTreeMap<String, Vec<&CaseResult>> = BTreeMap::new();
    let mut by_role: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for c in &results.cases {
        for t in &c.tags {
            if is_message_type(t) {
                by_type.entry(t.clone()).or_default().push(c);
            }
            if let Some(r) = ROLES.iter().find(|r| t.eq_ignore_ascii_case(r)) {
                by_role.entry(r).or_default().push(c);
            }
        }
    }
    let type_rows: Vec<(String, Tally)> = by_type
        .into_iter()
        .map(|(k, v)| (k, tally(v.into_iter())))
        .collect();
    let role_rows: Vec<(String, Tally)> = ROLES
        .iter()
        .filter_map(|r| {
            by_role
                .remove(r)
                .map(|v| ((*r).to_owned(), tally(v.into_iter())))
        })
        .collect();

    let mut x = String::with_capacity(64 * 1024);
    x.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    x.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        x,
        "<title>CATS conformance report: {}</title>",
        escape(&results.target)
    );
    x.push_str(
        "<style>\n\
         body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1b1f24;max-width:70rem}\n\
         h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccd}\n\
         table{border-collapse:collapse;margin:.5rem 0} th,td{border:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}\n\
         th{background:#eef1f5} tr.pass td:first-child{border-left:4px solid #2e7d32} tr.fail td:first-child{border-left:4px solid #c62828}\n\
         .verdict{font-size:1.3rem;font-weight:bold;padding:.6rem 1rem;display:inline-block;border-radius:4px}\n\
         .verdict.pass{background:#e8f5e9;color:#1b5e20} .verdict.fail{background:#ffebee;color:#b71c1c}\n\
         .PASS{color:#1b5e20;font-weight:bold} .FAIL{color:#b71c1c;font-weight:bold}\n\
         pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.8rem;max-height:30rem}\n\
         .diff td:first-child{font-weight:bold;width:8rem} .muted{color:#57606a}\n\
         </style>\n</head>\n<body>\n",
    );
    let _ = writeln!(x, "<h1>CATS conformance report</h1>");
    let _ = writeln!(
        x,
        "<p class=\"muted\">Target <b>{}</b>, run {} ({:.1} s), kit {}</p>",
        escape(&results.target),
        escape(&results.started_at),
        results.duration_ms as f64 / 1000.0,
        escape(&results.kit_version)
    );
    let _ = writeln!(
        x,
        "<p id=\"verdict\" class=\"verdict {}\">{}</p>",
        verdict.0, verdict.1
    );

    x.push_str("<h2>Summary</h2>\n<table id=\"summary\">\n<thead><tr><th>cases</th><th>passed</th><th>failed</th><th>not applicable</th></tr></thead>\n");
    let _ = writeln!(
        x,
        "<tbody><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></tbody>\n</table>",
        results.cases.len(),
        results.passed(),
        results.failed(),
        results.not_applicable.len()
    );
    x.push_str("<h2>By message type</h2>\n<table id=\"by-message-type\">\n<thead><tr><th>message type</th><th>cases</th><th>passed</th><th>failed</th></tr></thead>\n<tbody>\n");
    summary_rows(&mut x, &type_rows);
    x.push_str("</tbody>\n</table>\n");
    x.push_str("<h2>By office role</h2>\n<table id=\"by-role\">\n<thead><tr><th>role</th><th>cases</th><th>passed</th><th>failed</th></tr></thead>\n<tbody>\n");
    summary_rows(&mut x, &role_rows);
    x.push_str("</tbody>\n</table>\n");

    x.push_str("<h2>Cases</h2>\n<table id=\"cases\">\n<thead><tr><th>case</th><th>result</th><th>time</th><th>what it shows</th></tr></thead>\n<tbody>\n");
    for c in &results.cases {
        let label = c.outcome.label();
        let _ = writeln!(
            x,
            "<tr class=\"{}\"><td>{}</td><td class=\"{label}\">{label}</td><td>{:.1} s</td><td>{}</td></tr>",
            if c.outcome == CaseOutcome::Passed {
                "pass"
            } else {
                "fail"
            },
            escape(&c.id()),
            c.duration_ms as f64 / 1000.0,
            escape(&c.description)
        );
    }
    for n in &results.not_applicable {
        let _ = writeln!(
            x,
            "<tr><td>{}</td><td>N/A</td><td>-</td><td>{}</td></tr>",
            escape(&n.case),
            escape(&n.why)
        );
    }
    x.push_str("</tbody>\n</table>\n");

    let failed: Vec<&CaseResult> = results
        .cases
        .iter()
        .filter(|c| c.outcome == CaseOutcome::Failed)
        .collect();
    x.push_str("<h2>Failures</h2>\n");
    if failed.is_empty() {
        x.push_str("<p>None.</p>\n");
    }
    for c in failed {
        let _ = writeln!(
            x,
            "<section class=\"failure\">\n<h3>{}</h3>",
            escape(&c.id())
        );
        if let Some(d) = &c.difference {
            let _ = writeln!(
                x,
                "<table class=\"diff\"><tbody>\n<tr><td>step</td><td>{} ({})</td></tr>\n<tr><td>checked</td><td>{}</td></tr>\n<tr><td>expected</td><td>{}</td></tr>\n<tr><td>actual</td><td>{}</td></tr>\n</tbody></table>",
                d.step,
                escape(&d.step_text),
                escape(&d.what),
                escape(&d.expected),
                escape(&d.actual)
            );
        }
        if !c.vars.is_empty() {
            let vars: Vec<String> = c
                .vars
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect();
            let _ = writeln!(x, "<p class=\"muted\">{}</p>", vars.join(", "));
        }
        for e in &c.exchanges {
            let _ = writeln!(
                x,
                "<details><summary>step {}: {} {} {}{}</summary><pre>{}</pre></details>",
                e.step,
                escape(&e.direction),
                escape(&e.country),
                escape(e.message_type.as_deref().unwrap_or("")),
                e.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
                escape(&e.body)
            );
        }
        x.push_str("</section>\n");
    }

    x.push_str("<h2>Environment</h2>\n<table id=\"environment\">\n<tbody>\n");
    let mut env = results.environment.clone();
    env.push(("target".into(), results.target.clone()));
    if !results.filter.is_empty() {
        env.push(("filter".into(), results.filter.join(", ")));
    }
    for (k, v) in env {
        let _ = writeln!(x, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    x.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Exchange;

    #[test]
    fn message_types_are_recognised() {
        assert!(is_message_type("CC015C") && is_message_type("CD118C"));
        assert!(
            !is_message_type("departure")
                && !is_message_type("CC15C")
                && !is_message_type("CX015C")
        );
    }

    #[test]
    fn the_page_summarises_by_type_and_role_and_escapes_everything() {
        let mut results = crate::junit::tests::sample();
        results.target = "<script>alert(1)</script>".into();
        if let Some(c) = results.cases.get_mut(1) {
            c.exchanges.push(Exchange {
                step: 1,
                direction: "reply".into(),
                country: "KZ".into(),
                message_type: Some("CC056C".into()),
                status: Some(422),
                body: "<ncts:CC056C>&</ncts:CC056C>".into(),
            });
        }
        let page = html(&results);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;ncts:CC056C&gt;&amp;&lt;/ncts:CC056C&gt;"));
        assert!(
            page.contains("<tr class=\"fail\"><td>CC015C</td><td>2</td><td>1</td><td>1</td></tr>")
        );
        assert!(
            page.contains(
                "<tr class=\"fail\"><td>departure</td><td>2</td><td>1</td><td>1</td></tr>"
            )
        );
        assert!(page.contains("NOT CONFORMANT"));
    }
}
