//! `cats validate` and `cats normalize`.
//!
//! Exit codes: 0 every file valid, 1 any file invalid, 2 usage or I/O error (returned as `Err`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use message_catalog::codec::nack::{NackContext, OriginalHeader};
use message_catalog::codec::{Limits, Problem, Rejection};
use message_catalog::rules;

/// How far `cats validate` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    /// Size, DTD, namespace and root, typed decode against the schema.
    Xml,
    /// `xml`, then code lists, rules and conditions.
    Rules,
}

/// How `cats validate` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `OK <file> <type>` / `FAIL <file> <type-or-?>`, then one indented line per error.
    Text,
    /// One JSON object per file, one per line.
    Json,
    /// The NACK message (CC917C/CC906C, CD917C/CD906C) for each invalid file.
    Xml,
}

/// The verdict on one file.
struct Verdict {
    file: PathBuf,
    message_type: Option<String>,
    rejection: Option<Rejection>,
}

/// `cats validate`.
pub fn validate(
    files: &[PathBuf],
    level: Level,
    format: Format,
    max_bytes: usize,
) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_bytes,
        ..Limits::default()
    };
    let level = match level {
        Level::Xml => rules::Level::Xml,
        Level::Rules => rules::Level::Rules,
    };
    // Read every file first: an unreadable file is a usage error (exit 2) before any verdict.
    let mut verdicts = Vec::with_capacity(files.len());
    for file in files {
        let bytes = read_limited(file, max_bytes)?;
        let verdict = match rules::validate(&bytes, &limits, level) {
            Ok(message) => Verdict {
                file: file.clone(),
                message_type: Some(message.message_type().to_owned()),
                rejection: None,
            },
            Err(rejection) => Verdict {
                file: file.clone(),
                message_type: rejection.message_type.clone(),
                rejection: Some(rejection),
            },
        };
        verdicts.push((verdict, bytes));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut any_invalid = false;
    for (verdict, bytes) in &verdicts {
        any_invalid |= verdict.rejection.is_some();
        match format {
            Format::Text => write_text(&mut out, verdict)?,
            Format::Json => write_json(&mut out, verdict)?,
            Format::Xml => write_nack(&mut out, verdict, bytes)?,
        }
    }
    out.flush()?;
    Ok(if any_invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `cats normalize`: decode, then print the canonical re-encoding.
pub fn normalize(file: &Path) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let bytes = read_limited(file, limits.max_bytes)?;
    match message_catalog::codec::decode(&bytes, &limits) {
        Ok(message) => {
            let encoded = message_catalog::codec::encode(&message);
            std::io::stdout().lock().write_all(&encoded)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            let verdict = Verdict {
                file: file.to_owned(),
                message_type: rejection.message_type.clone(),
                rejection: Some(rejection),
            };
            write_text(&mut std::io::stderr().lock(), &verdict)?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Reads a file, refusing (as a rejection later, not an I/O error) nothing: the size limit is
/// the codec's to report, but a file far larger than the limit is not read whole into memory.
fn read_limited(file: &Path, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    // One byte past the limit is enough for the codec to say "too large".
    let cap = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    f.take(cap)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    Ok(bytes)
}

fn write_text(out: &mut impl Write, v: &Verdict) -> std::io::Result<()> {
    let ty = v.message_type.as_deref().unwrap_or("?");
    match &v.rejection {
        None => writeln!(out, "OK {} {ty}", v.file.display()),
        Some(rejection) => {
            writeln!(out, "FAIL {} {ty}", v.file.display())?;
            for p in &rejection.problems {
                writeln!(
                    out,
                    "  {}:{} {} {} {} {}",
                    p.line,
                    p.column,
                    if p.pointer.is_empty() {
                        "/"
                    } else {
                        &p.pointer
                    },
                    code_text(p),
                    p.rule.as_deref().unwrap_or("-"),
                    p.reason
                )?;
            }
            Ok(())
        }
    }
}

/// The error code as printed: CL030 for XML errors, CL180 for functional ones, two digits.
fn code_text(p: &Problem) -> String {
    p.code.to_string()
}

fn write_json(out: &mut impl Write, v: &Verdict) -> anyhow::Result<()> {
    let problems: Vec<serde_json::Value> = v
        .rejection
        .iter()
        .flat_map(|r| r.problems.iter())
        .map(|p| {
            serde_json::json!({
                "line": p.line,
                "column": p.column,
                "pointer": p.pointer,
                "code": p.code.0,
                "label": p.label,
                "rule": p.rule,
                "reason": p.reason,
            })
        })
        .collect();
    let value = serde_json::json!({
        "file": v.file.display().to_string(),
        "messageType": v.message_type,
        "valid": v.rejection.is_none(),
        "kind": v.rejection.as_ref().map(|r| format!("{:?}", r.kind)),
        "errors": problems,
    });
    serde_json::to_writer(&mut *out, &value)?;
    writeln!(out)?;
    Ok(())
}

fn write_nack(out: &mut impl Write, v: &Verdict, original: &[u8]) -> anyhow::Result<()> {
    let Some(rejection) = &v.rejection else {
        return Ok(());
    };
    // preparationDateAndTime has whole seconds (`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`).
    let now = chrono::Utc::now().naive_utc();
    let now =
        now - chrono::Duration::nanoseconds(i64::from(now.and_utc().timestamp_subsec_nanos()));
    let message_identification = format!("CATS-VAL-{}", now.format("%Y%m%d%H%M%S"));
    let ctx = NackContext {
        sender: "CATS",
        message_identification: &message_identification,
        prepared_at: now,
        domain: None,
    };
    match rejection.to_nack(&OriginalHeader::sniff(original), &ctx) {
        Ok(nack) => {
            out.write_all(&message_catalog::codec::encode(&nack))?;
            writeln!(out)?;
        }
        // No NACK can be addressed (the document did not get as far as its sender): say so
        // on stderr and keep the text verdict there, so the file is still reported.
        Err(e) => {
            eprintln!("cats: no NACK for {}: {e}", v.file.display());
            write_text(&mut std::io::stderr().lock(), v)?;
        }
    }
    Ok(())
}
