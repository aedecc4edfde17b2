//! Reconciliation with the nodes (issue 7): resume by sequence and digest comparison, the
//! hub's side of `message_catalog::lifecycle::reconcile`.
//!
//! A node sends a `CATS-RECONCILE-REQUEST` (signed by the node, addressed to the hub) with the
//! last journal sequence it confirmed and the hashes of its MRN buckets. The hub, in
//! [`handle`]:
//!
//! 1. **resumes**: re-delivers every journal entry it forwarded to that node after that
//!    sequence (accepted messages, the hub's NACKs and ledger answers), in journal order;
//! 2. **compares**: folds, per MRN, the message identifications of every entry forwarded to the
//!    node up to the journal head into the same digest the node computes, groups them into the
//!    same buckets, and answers a `CATS-RECONCILE-DIFFERENCES` signed by the hub with its
//!    digests of every movement in the buckets that differ;
//! 3. **repairs**: on the node's `CATS-RECONCILE-REPAIR`, re-delivers every entry of the named
//!    movements for that node. The node's inbox turns the ones it holds into duplicates.
//!
//! A node also sends, each time its link to the hub comes up, a `CATS-RECONCILE-RESUME`: its
//! resume point and the fingerprints of the deliveries it applied since the hub last confirmed
//! one. The hub re-delivers every entry for the node after the resume point that is not among
//! them (what the node lost: a purged queue, a database restored from a copy), then answers
//! with a `CATS-RECONCILE-DIFFERENCES` without buckets whose `through` (the journal head) is
//! the node's new resume point.
//!
//! Control messages are not journalled (they are not transit messages); what each run found
//! and repaired, and the bytes exchanged, are kept per node in `hub_reconciliation` for
//! `GET /api/v1/reconciliation`, `/metrics` and `cats queues`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use cats_transport::contract::{Delivery, Destination, Outbound, Transport};
use cats_trust::{EnvelopeHeaderFields, PeerIdentity};
use chrono::Utc;
use message_catalog::ids::CountryCode;
use message_catalog::lifecycle::reconcile::{
    self as rc, Buckets, DIFFERENCES_TYPE, Differences, REPAIR_TYPE, REQUEST_TYPE, RESUME_TYPE,
    RepairRequest, Request, Resume,
};
use serde::Serialize;

use crate::pipeline::{HubServices, Outcome, PipelineError};
use crate::store::{HubStore, StoreError, now_millis, on_pool, on_tx};

/// One journal entry owed to a node, as re-delivered.
#[derive(Debug, Clone)]
pub struct Owed {
    /// Its journal sequence.
    pub sequence: i64,
    /// The envelope's sender (`urn:cats:node:KZ`, `urn:cats:hub`).
    pub sender: String,
    /// The message identification.
    pub message_id: String,
    /// The MRN, when there is one.
    pub mrn: Option<String>,
    /// The exact envelope bytes, as forwarded.
    pub envelope: Vec<u8>,
}

/// A row of [`Owed`]: sequence, sender, message identification, MRN, envelope.
type OwedRow = (i64, String, String, Option<String>, Vec<u8>);

/// A node's key in the journal's recipient index (`hub_journal_recipients`): `node:XX`.
fn recipient_key(country: CountryCode) -> String {
    crate::routing::Recipient::Node(country).to_string()
}

/// Every journal entry forwarded to `country` with a sequence in `(after, through]`.
async fn owed_after(
    store: &HubStore,
    country: CountryCode,
    after: i64,
    through: i64,
) -> Result<Vec<Owed>, StoreError> {
    let rows: Vec<OwedRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT j.sequence, j.sender, j.message_id, j.mrn, j.envelope \
             FROM hub_journal_recipients r JOIN hub_journal j ON j.sequence = r.sequence \
             WHERE r.recipient = $3 AND r.sequence > $1 AND r.sequence <= $2 \
             AND j.status IN ('accepted', 'emitted') ORDER BY r.sequence",
        )
        .bind(after)
        .bind(through)
        .bind(recipient_key(country))
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(sequence, sender, message_id, mrn, envelope)| Owed {
            sequence,
            sender,
            message_id,
            mrn,
            envelope,
        })
        .collect())
}

/// Every entry of `mrn` forwarded to `country`, in journal order.
async fn owed_of_mrn(
    store: &HubStore,
    country: CountryCode,
    mrn: &str,
) -> Result<Vec<Owed>, StoreError> {
    let rows: Vec<OwedRow> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT j.sequence, j.sender, j.message_id, j.mrn, j.envelope FROM hub_journal j \
             JOIN hub_journal_recipients r ON r.sequence = j.sequence AND r.recipient = $2 \
             WHERE j.mrn = $1 AND j.status IN ('accepted', 'emitted') ORDER BY j.sequence",
        )
        .bind(mrn)
        .bind(recipient_key(country))
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(sequence, sender, message_id, mrn, envelope)| Owed {
            sequence,
            sender,
            message_id,
            mrn,
            envelope,
        })
        .collect())
}

/// What `country` should hold, per MRN: the digest of the message identifications of every
/// entry forwarded to it up to `through`.
pub async fn node_digests(
    store: &HubStore,
    country: CountryCode,
    through: i64,
) -> Result<Vec<(String, [u8; rc::DIGEST_LEN])>, StoreError> {
    let rows: Vec<(String, String)> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT j.mrn, j.message_id \
             FROM hub_journal_recipients r JOIN hub_journal j ON j.sequence = r.sequence \
             WHERE r.recipient = $2 AND r.sequence <= $1 AND j.mrn IS NOT NULL \
             AND j.status IN ('accepted', 'emitted') ORDER BY r.sequence",
        )
        .bind(through)
        .bind(recipient_key(country))
        .fetch_all(p)
        .await?
    });
    let mut per_mrn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (mrn, id) in rows {
        per_mrn.entry(mrn).or_default().push(id);
    }
    Ok(per_mrn
        .into_iter()
        .map(|(mrn, ids)| {
            let d = rc::movement_digest(ids.iter().map(String::as_str));
            (mrn, d)
        })
        .collect())
}

/// The hub's side of a comparison (step 2 of the module documentation): the buckets of
/// `country`'s movements at journal sequence `through` that differ from the node's `buckets`,
/// with the fingerprint of every hub movement in them. `resumed` is reported as is.
pub async fn differences(
    store: &HubStore,
    country: CountryCode,
    buckets: &[[u8; rc::BUCKET_HASH_LEN]],
    through: i64,
    resumed: u32,
) -> Result<Differences, StoreError> {
    let count = buckets.len() as u32;
    let mine = Buckets::new(count, node_digests(store, country, through).await?);
    let differing = mine.differing(buckets);
    Ok(Differences {
        through,
        bucket_count: count,
        resumed,
        buckets: differing
            .iter()
            .map(|b| (*b, mine.fingerprints(*b)))
            .collect(),
    })
}

/// The repair (step 3): the MRNs of `country`'s movements named by `fingerprints` (as of
/// journal sequence `through`), and every journal entry of each forwarded to the node, in
/// journal order per movement. A fingerprint that names no movement any more (its entries
/// changed since the differences) is skipped: the next comparison finds it again.
pub async fn repair_entries(
    store: &HubStore,
    country: CountryCode,
    fingerprints: &[[u8; rc::FINGERPRINT_LEN]],
    through: i64,
) -> Result<Vec<(String, Vec<Owed>)>, StoreError> {
    let wanted: std::collections::BTreeSet<[u8; rc::FINGERPRINT_LEN]> =
        fingerprints.iter().copied().collect();
    let mrns: Vec<String> = node_digests(store, country, through)
        .await?
        .into_iter()
        .filter(|(m, d)| wanted.contains(&rc::fingerprint(m, d)))
        .map(|(m, _)| m)
        .collect();
    let mut out = Vec::with_capacity(mrns.len());
    for mrn in mrns {
        let owed = owed_of_mrn(store, country, &mrn).await?;
        out.push((mrn, owed));
    }
    Ok(out)
}

/// What one exchange did, added to the node's totals.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    run: bool,
    through: Option<i64>,
    differing_buckets: Option<i64>,
    differences: i64,
    repaired: i64,
    resent: i64,
    bytes_in: i64,
    bytes_out: i64,
}

async fn record(store: &HubStore, country: CountryCode, t: Tally) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    let now = now_millis();
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "INSERT INTO hub_reconciliation (country, runs, last_at, last_through, \
             last_differences, differences_found, movements_repaired, entries_resent, bytes_in, \
             bytes_out) VALUES ($1, 0, $2, 0, 0, 0, 0, 0, 0, 0) ON CONFLICT (country) DO NOTHING",
        )
        .bind(country.as_str())
        .bind(now)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "UPDATE hub_reconciliation SET runs = runs + $2, last_at = $3, \
             last_through = COALESCE($4, last_through), \
             last_differences = CASE WHEN $5 IS NULL THEN last_differences + $6 ELSE $6 END, \
             differences_found = differences_found + $6, \
             movements_repaired = movements_repaired + $7, entries_resent = entries_resent + $8, \
             bytes_in = bytes_in + $9, bytes_out = bytes_out + $10 WHERE country = $1",
        )
        .bind(country.as_str())
        .bind(i64::from(t.run))
        .bind(now)
        .bind(t.through)
        .bind(t.differing_buckets)
        .bind(t.differences)
        .bind(t.repaired)
        .bind(t.resent)
        .bind(t.bytes_in)
        .bind(t.bytes_out)
        .execute(&mut *c)
        .await?;
    });
    tx.commit().await
}

fn control_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 10];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!("HUB-R-{}", hex::encode(b))
}

/// Re-delivers `owed` to `country`; returns the bytes sent.
async fn resend<T: Transport>(
    transport: &T,
    services: &HubServices,
    country: CountryCode,
    owed: &[Owed],
) -> Result<i64, PipelineError> {
    let mut bytes = 0i64;
    for e in owed {
        transport
            .send(Outbound {
                message_id: e.message_id.clone(),
                destination: Destination::Node(country),
                partition_key: e.mrn.clone(),
                bytes: Bytes::from(e.envelope.clone()),
            })
            .await?;
        services
            .metrics
            .message_out("redelivered", country.as_str());
        bytes += e.envelope.len() as i64;
        tracing::debug!(sequence = e.sequence, id = %e.message_id, "re-delivered");
    }
    Ok(bytes)
}

/// Signs and sends `diff` to `country` as the answer to `request`; returns the bytes sent.
async fn answer<T: Transport>(
    transport: &T,
    services: &HubServices,
    country: CountryCode,
    request: &str,
    diff: &Differences,
) -> Result<i64, PipelineError> {
    let fields = EnvelopeHeaderFields {
        message_id: control_id(),
        message_type: DIFFERENCES_TYPE.to_owned(),
        sender: PeerIdentity::Hub,
        recipient: PeerIdentity::Node(country),
        correlation_id: Some(request.to_owned()),
        mrn: None,
        prepared_at: Utc::now(),
    };
    let sealed = services
        .signer
        .seal(&fields, &diff.encode())
        .map_err(|e| PipelineError::Nack(e.to_string()))?;
    let len = sealed.len() as i64;
    transport
        .send(Outbound {
            message_id: fields.message_id,
            destination: Destination::Node(country),
            partition_key: None,
            bytes: Bytes::from(sealed),
        })
        .await?;
    Ok(len)
}

/// Handles one reconciliation control message from `country` (already verified by the
/// pipeline: signature, signer, sender = transport identity), then acknowledges it. A body that
/// does not decode is dead-lettered with its code.
pub async fn handle<T: Transport>(
    transport: &T,
    services: &HubServices,
    delivery: Delivery,
    country: CountryCode,
    message_id: &str,
    message_type: &str,
    body: &[u8],
) -> Result<Outcome, PipelineError> {
    let store = &services.store;
    let tally = match message_type {
        REQUEST_TYPE => {
            let req = match Request::decode(body) {
                Ok(r) => r,
                Err(e) => return refuse(delivery, country, message_type, e).await,
            };
            let through = crate::journal::size(store).await?;
            let owed = owed_after(store, country, req.resume_after, through).await?;
            let mut bytes_out = resend(transport, services, country, &owed).await?;
            let count = req.buckets.len() as u32;
            let diff =
                differences(store, country, &req.buckets, through, owed.len() as u32).await?;
            let differing = diff.buckets.len();
            bytes_out += answer(transport, services, country, message_id, &diff).await?;
            tracing::info!(
                %country,
                resume_after = req.resume_after,
                through,
                resumed = owed.len(),
                buckets = count,
                differing,
                "reconciliation: differences sent"
            );
            Tally {
                run: true,
                through: Some(through),
                differing_buckets: Some(differing as i64),
                resent: owed.len() as i64,
                bytes_in: delivery.bytes.len() as i64,
                bytes_out,
                ..Tally::default()
            }
        }
        RESUME_TYPE => {
            let req = match Resume::decode(body) {
                Ok(r) => r,
                Err(e) => return refuse(delivery, country, message_type, e).await,
            };
            let through = crate::journal::size(store).await?;
            let held: std::collections::BTreeSet<[u8; rc::FINGERPRINT_LEN]> =
                req.applied.iter().copied().collect();
            let missing: Vec<Owed> = owed_after(store, country, req.resume_after, through)
                .await?
                .into_iter()
                .filter(|e| !held.contains(&rc::delivery_fingerprint(&e.sender, &e.message_id)))
                .collect();
            // The node holds every entry up to the first one it misses.
            let contiguous = missing.first().map_or(through, |e| e.sequence - 1);
            let mut bytes_out = resend(transport, services, country, &missing).await?;
            let diff = Differences {
                through,
                bucket_count: rc::bucket_count(0),
                resumed: missing.len() as u32,
                buckets: BTreeMap::new(),
            };
            bytes_out += answer(transport, services, country, message_id, &diff).await?;
            tracing::info!(
                %country,
                resume_after = req.resume_after,
                applied = req.applied.len(),
                contiguous,
                through,
                resent = missing.len(),
                "reconciliation: resumed"
            );
            Tally {
                through: Some(through),
                resent: missing.len() as i64,
                bytes_in: delivery.bytes.len() as i64,
                bytes_out,
                ..Tally::default()
            }
        }
        REPAIR_TYPE => {
            let req = match RepairRequest::decode(body) {
                Ok(r) => r,
                Err(e) => return refuse(delivery, country, message_type, e).await,
            };
            let mut tally = Tally {
                differences: req.fingerprints.len() as i64,
                bytes_in: delivery.bytes.len() as i64,
                ..Tally::default()
            };
            // The fingerprints name the hub's movements as the differences described them;
            // one whose entries changed since is found again by the next comparison.
            let through = crate::journal::size(store).await?;
            let repairs = repair_entries(store, country, &req.fingerprints, through).await?;
            let mut mrns = Vec::with_capacity(repairs.len());
            for (mrn, owed) in repairs {
                if !owed.is_empty() {
                    tally.repaired += 1;
                }
                tally.resent += owed.len() as i64;
                tally.bytes_out += resend(transport, services, country, &owed).await?;
                mrns.push(mrn);
            }
            tracing::warn!(
                %country,
                movements = req.fingerprints.len(),
                entries = tally.resent,
                ?mrns,
                "reconciliation: movements differed, their entries re-delivered"
            );
            tally
        }
        other => {
            let e = rc::BodyError::Invalid(format!("{other} is not sent to the hub"));
            return refuse(delivery, country, message_type, e).await;
        }
    };
    record(store, country, tally).await?;
    delivery.ack().await?;
    Ok(Outcome::Reconciliation {
        message_type: message_type.to_owned(),
    })
}

async fn refuse(
    delivery: Delivery,
    country: CountryCode,
    message_type: &str,
    e: rc::BodyError,
) -> Result<Outcome, PipelineError> {
    tracing::warn!(%country, message_type, code = e.code(), error = %e, "reconciliation message refused");
    delivery.reject(&format!("{}: {e}", e.code())).await?;
    Ok(Outcome::Reconciliation {
        message_type: message_type.to_owned(),
    })
}

/// One node's reconciliation totals, as `GET /api/v1/reconciliation` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeReconciliation {
    /// The country.
    pub country: String,
    /// Requests answered.
    pub runs: i64,
    /// The last exchange (RFC 3339, UTC).
    pub last_at: String,
    /// The journal sequence of the last comparison.
    pub last_through: i64,
    /// Movements found different in the last run.
    pub last_differences: i64,
    /// Movements found different, in total.
    pub differences_found: i64,
    /// Movements whose entries were re-delivered.
    pub movements_repaired: i64,
    /// Journal entries re-delivered (resume and repair).
    pub entries_resent: i64,
    /// Bytes received in control messages.
    pub bytes_in: i64,
    /// Bytes sent: control messages and re-delivered envelopes.
    pub bytes_out: i64,
}

/// Every node's totals, by country.
pub async fn report(store: &HubStore) -> Result<Vec<NodeReconciliation>, StoreError> {
    type Row = (String, i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = on_pool!(store, |p| {
        sqlx::query_as(
            "SELECT country, runs, last_at, last_through, last_differences, differences_found, \
             movements_repaired, entries_resent, bytes_in, bytes_out FROM hub_reconciliation \
             ORDER BY country",
        )
        .fetch_all(p)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| NodeReconciliation {
            country: r.0,
            runs: r.1,
            last_at: chrono::DateTime::from_timestamp_millis(r.2)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            last_through: r.3,
            last_differences: r.4,
            differences_found: r.5,
            movements_repaired: r.6,
            entries_resent: r.7,
            bytes_in: r.8,
            bytes_out: r.9,
        })
        .collect())
}

/// The totals as Prometheus text, for the hub's `/metrics`.
pub fn render(nodes: &[NodeReconciliation]) -> String {
    let mut out = String::new();
    type Series = (
        &'static str,
        &'static str,
        &'static str,
        fn(&NodeReconciliation) -> i64,
    );
    let series: [Series; 7] = [
        (
            "cats_hub_reconciliation_runs_total",
            "counter",
            "Reconciliation requests answered, per node.",
            |n| n.runs,
        ),
        (
            "cats_hub_reconciliation_last_timestamp_seconds",
            "gauge",
            "When the node last reconciled (Unix seconds).",
            |n| {
                chrono::DateTime::parse_from_rfc3339(&n.last_at)
                    .map(|t| t.timestamp())
                    .unwrap_or(0)
            },
        ),
        (
            "cats_hub_reconciliation_differences_total",
            "counter",
            "Movements found different from the journal.",
            |n| n.differences_found,
        ),
        (
            "cats_hub_reconciliation_repaired_total",
            "counter",
            "Movements whose journal entries were re-delivered.",
            |n| n.movements_repaired,
        ),
        (
            "cats_hub_reconciliation_entries_resent_total",
            "counter",
            "Journal entries re-delivered by resume and repair.",
            |n| n.entries_resent,
        ),
        (
            "cats_hub_reconciliation_bytes_in_total",
            "counter",
            "Bytes of reconciliation messages received.",
            |n| n.bytes_in,
        ),
        (
            "cats_hub_reconciliation_bytes_out_total",
            "counter",
            "Bytes sent for reconciliation (answers and re-delivered envelopes).",
            |n| n.bytes_out,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for n in nodes {
            let _ = writeln!(out, "{name}{{country=\"{}\"}} {}", n.country, value(n));
        }
    }
    out
}
