//! The terminal table of a run: one line per case (result, duration, case), and under a failed
//! case its first difference, expected against actual.

use std::fmt::Write as _;

use crate::run::RunResults;

/// Longest expected or actual text in the table; the results (and the report) keep it whole.
const SHOWN: usize = 300;

fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= SHOWN {
        return text.to_owned();
    }
    let head: String = text.chars().take(SHOWN).collect();
    format!(
        "{head}... ({} more characters in the results)",
        count - SHOWN
    )
}

/// The table, then the cases not applicable, then the totals.
pub fn table(results: &RunResults) -> String {
    let width = results
        .cases
        .iter()
        .map(|c| c.id().chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>8}  {:<width$}  first difference",
        "result", "time", "case"
    );
    for c in &results.cases {
        let time = format!("{:.1} s", c.duration_ms as f64 / 1000.0);
        match &c.difference {
            None => {
                let _ = writeln!(out, "{:<6} {time:>8}  {}", c.outcome.label(), c.id());
            }
            Some(d) => {
                let _ = writeln!(
                    out,
                    "{:<6} {time:>8}  {:<width$}  step {} ({}): {}",
                    c.outcome.label(),
                    c.id(),
                    d.step,
                    d.step_text,
                    d.what
                );
                let pad = " ".repeat(6 + 1 + 8 + 2 + width + 2);
                let _ = writeln!(out, "{pad}expected: {}", shorten(&d.expected));
                let _ = writeln!(out, "{pad}actual:   {}", shorten(&d.actual));
            }
        }
    }
    for n in &results.not_applicable {
        let _ = writeln!(
            out,
            "{:<6} {:>8}  {:<width$}  {}",
            "N/A", "-", n.case, n.why
        );
    }
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} not applicable, in {:.1} s",
        results.passed(),
        results.failed(),
        results.not_applicable.len(),
        results.duration_ms as f64 / 1000.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shows_expected_and_actual_under_its_case() {
        let text = table(&crate::junit::tests::sample());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("PASS"), "{text}");
        assert!(lines[2].starts_with("FAIL") && lines[2].contains("departure/rejected"));
        assert!(lines[2].contains("step 1 (send cc015c.xml to KZ): reply message type"));
        assert!(lines[3].trim_start().starts_with("expected: CC928C"));
        assert!(
            lines[4]
                .trim_start()
                .starts_with("actual:   CC056C (HTTP 422)")
        );
        assert!(text.contains("N/A"));
        assert!(text.ends_with("1 passed, 1 failed, 1 not applicable, in 3.0 s\n"));
        let long = "x".repeat(SHOWN + 5);
        assert_eq!(
            shorten(&long),
            format!(
                "{}... (5 more characters in the results)",
                "x".repeat(SHOWN)
            )
        );
    }
}
