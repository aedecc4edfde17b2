//! `cats dead-letters [--hub URL] [--token T] list|show ID|replay ID|discard ID`: the hub's
//! dead-letter register over its API. Every replay and discard is recorded by the hub with the
//! holder of the token (an operator or administrator: `--token` or `CATS_HUB_TOKEN`), the time
//! and the reason.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use cats_hub::client::{HubClient, Settlement};
use cats_hub::dead_letters::{DeadLetterDetail, DeadLetterSummary};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// List the letters in a state.
    List {
        /// `dead`, `replayed`, `discarded` or `all`.
        state: String,
    },
    /// Show one letter.
    Show {
        /// Its id.
        id: i64,
    },
    /// Replay one letter.
    Replay {
        /// Its id.
        id: i64,
        /// Why.
        reason: Option<String>,
    },
    /// Discard one letter.
    Discard {
        /// Its id.
        id: i64,
        /// Why (required).
        reason: Option<String>,
    },
}

/// Runs `action` against the hub at `hub` with the credential `token`.
pub fn run(hub: &str, token: Option<&str>, action: Action) -> anyhow::Result<ExitCode> {
    let mut client = HubClient::new(hub).context("--hub")?;
    if let Some(t) = token {
        client = client.with_token(t);
    }
    // Check the arguments before asking anything.
    let settlement = match &action {
        Action::Replay { reason, .. } => Some(Settlement {
            reason: reason.clone().unwrap_or_default(),
        }),
        Action::Discard { reason, .. } => {
            let reason = reason
                .clone()
                .filter(|r| !r.trim().is_empty())
                .context("discard needs --reason (it goes into the audit entry)")?;
            Some(Settlement { reason })
        }
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let text = runtime
        .block_on(async move {
            anyhow::Ok(match (action, settlement) {
                (Action::List { state }, _) => list(&client.dead_letters(&state).await?),
                (Action::Show { id }, _) => show(&client.dead_letter(id).await?),
                (Action::Replay { id, .. }, Some(s)) => {
                    let done = client.replay(id, &s).await?;
                    format!(
                        "dead letter {}: {} → {} ({})\n",
                        done.id, done.action, done.state, done.outcome
                    )
                }
                (Action::Discard { id, .. }, Some(s)) => {
                    let done = client.discard(id, &s).await?;
                    format!("dead letter {}: {}\n", done.id, done.state)
                }
                (_, None) => anyhow::bail!("replay and discard need a settlement"),
            })
        })
        .map_err(|e| super::hub::explain_refusal(e, hub, token))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The list as a table.
pub fn list(letters: &[DeadLetterSummary]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<14}  {:<18}  {:<24}  {:<9}  {:<20}  REASON",
        "ID", "QUEUE", "SENDER", "MESSAGE ID", "STATE", "DEAD AT"
    );
    for l in letters {
        let _ = writeln!(
            out,
            "{:>5}  {:<14}  {:<18}  {:<24}  {:<9}  {:<20}  {}",
            l.id,
            l.queue,
            l.sender,
            l.message_id,
            l.state,
            l.dead_at.format("%Y-%m-%d %H:%M:%SZ"),
            l.reason
        );
    }
    out
}

/// One letter: its fields, its envelope and body, its audit trail.
pub fn show(d: &DeadLetterDetail) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let _ = writeln!(out, "dead letter {}", s.id);
    let _ = writeln!(out, "  queue          {}", s.queue);
    let _ = writeln!(out, "  sender         {}", s.sender);
    let _ = writeln!(out, "  message id     {}", s.message_id);
    let _ = writeln!(
        out,
        "  partition key  {}",
        s.partition_key.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "  state          {}", s.state);
    let _ = writeln!(
        out,
        "  dead at        {}",
        s.dead_at.format("%Y-%m-%d %H:%M:%SZ")
    );
    let _ = writeln!(out, "  reason         {}", s.reason);
    let _ = writeln!(out, "  size           {} bytes", s.size);
    match (&d.envelope, &d.envelope_error) {
        (Some(e), _) => {
            let _ = writeln!(
                out,
                "  envelope       {} from {} to {}, MRN {}",
                e.message_type,
                e.sender,
                e.recipient,
                e.mrn.as_deref().unwrap_or("-")
            );
            let _ = writeln!(out, "\n{}", e.body.trim_end());
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "  envelope       unreadable: {why}");
            let _ = writeln!(out, "  bytes (base64) {}", d.body_base64);
        }
        (None, None) => {
            let _ = writeln!(out, "  bytes (base64) {}", d.body_base64);
        }
    }
    if !d.audit.is_empty() {
        let _ = writeln!(out, "\naudit:");
        for a in &d.audit {
            let _ = writeln!(
                out,
                "  {}  {}  by {}  why: {}  → {}",
                a.at.format("%Y-%m-%d %H:%M:%SZ"),
                a.action,
                a.operator,
                a.reason,
                a.outcome
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_shows() {
        let at = chrono::DateTime::from_timestamp(1_795_000_000, 0).expect("time");
        let summary = DeadLetterSummary {
            id: 7,
            queue: "cats.hub.in".into(),
            sender: "urn:cats:node:KZ".into(),
            message_id: "KZ-1".into(),
            partition_key: None,
            reason: "envelope.malformed: short".into(),
            dead_at: at,
            state: "dead".into(),
            settled_at: None,
            size: 4,
        };
        let text = list(std::slice::from_ref(&summary));
        assert!(text.contains("    7  cats.hub.in"), "{text}");
        assert!(text.ends_with("envelope.malformed: short\n"), "{text}");
        assert_eq!(list(&[]), "no dead letters\n");
        let detail = DeadLetterDetail {
            summary,
            envelope: None,
            envelope_error: Some("envelope.malformed: short".into()),
            body_base64: "AAAA".into(),
            audit: vec![cats_hub::dead_letters::AuditEntry {
                at,
                action: "discard".into(),
                operator: "alice".into(),
                reason: "junk".into(),
                outcome: "discarded".into(),
            }],
        };
        let text = show(&detail);
        assert!(text.contains("  bytes (base64) AAAA"), "{text}");
        assert!(text.contains("discard  by alice  why: junk"), "{text}");
    }

    #[test]
    fn discard_needs_a_reason_before_asking() {
        let e = run(
            "http://127.0.0.1:9",
            Some("token"),
            Action::Discard {
                id: 1,
                reason: None,
            },
        )
        .expect_err("refused");
        assert!(e.to_string().contains("--reason"), "{e}");
    }
}
