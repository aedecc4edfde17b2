//! The hub journal: append-only, one entry per message received or emitted, hash-chained.
//!
//! Each [`Entry`] records the message identification, type, sender, recipients, MRN, times
//! (UTC, milliseconds), the SHA-256 of the body, the exact envelope bytes as received or sent
//! (header with signature and signer certificate, then the body), the signer, and the
//! [`Status`]. Its `hash` is SHA-256 over [`canonical_bytes`], which include the previous
//! entry's hash (32 zero bytes for the first entry): changing, removing or reordering any row
//! breaks the chain at that row, and [`verify`] reports the first broken link.
//!
//! # Canonical encoding (version 1)
//!
//! The ASCII tag `CATS-JOURNAL-V1`, then in this order: sequence (i64 big-endian), message
//! identification, message type, sender, recipients (the list joined with `,`), MRN (optional),
//! correlation identification (optional), preparation time (optional i64 ms), recording time
//! (i64 ms), body SHA-256 (32 bytes), SHA-256 of the envelope bytes (32 bytes), signer
//! (optional), status, error code (optional), error reason (optional), previous hash (32
//! bytes). *Text* is a u32 big-endian length and UTF-8 bytes; *optional* is a byte 0 (absent)
//! or 1 followed by the value.
//!
//! # One writer
//!
//! [`append`] reads the head and inserts `head + 1` inside the caller's transaction. On
//! PostgreSQL it first takes a transaction-scoped advisory lock, so appends from several hub
//! processes are serialised; on SQLite the database has one writer. In both, the sequence is
//! the primary key, so two writers that raced would collide on it rather than fork the chain.
//! Rows are never updated: what changes after the fact (whether a message has been forwarded)
//! lives in `hub_dispatch`, outside the chain.

use chrono::{DateTime, Utc};
use ring::digest::{SHA256, digest};
use sqlx::Row;

use crate::store::{HubStore, HubTx, StoreError, on_pool, on_tx};

/// `pg_advisory_xact_lock` key of the journal head (`"CATSJRNL"`).
const PG_JOURNAL_LOCK: i64 = 0x4341_5453_4a52_4e4c;

/// What became of a journalled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Received, passed every check, routed.
    Accepted,
    /// Received and refused.
    Rejected {
        /// Stable error code (`envelope.sender-mismatch`, `xml.pattern`, NCTS code, …).
        code: String,
        /// Why, for people.
        reason: String,
    },
    /// Authored by the hub (a NACK).
    Emitted,
}

impl Status {
    /// `accepted`, `rejected` or `emitted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Rejected { .. } => "rejected",
            Status::Emitted => "emitted",
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The message identification.
    pub message_id: String,
    /// `CD001C`, …; `unknown` when the envelope could not be read.
    pub message_type: String,
    /// The sender (`urn:cats:node:KZ`, `urn:cats:hub`).
    pub sender: String,
    /// The recipients (`node:GE`, `hub`).
    pub recipients: Vec<String>,
    /// The MRN, when there is one.
    pub mrn: Option<String>,
    /// The correlation identification.
    pub correlation_id: Option<String>,
    /// Preparation time from the envelope header.
    pub prepared_at: Option<DateTime<Utc>>,
    /// When the hub recorded it.
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 of the body (of the whole envelope when it could not be read).
    pub body_sha256: [u8; 32],
    /// The exact envelope bytes.
    pub envelope: Vec<u8>,
    /// The signer (`urn:cats:signer:KZ`), when the signature was checked.
    pub signer: Option<String>,
    /// What became of it.
    pub status: Status,
}

/// A journalled entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the journal, from 1, without gaps.
    pub sequence: i64,
    /// The content.
    pub entry: NewEntry,
    /// The previous entry's hash.
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_text(out, s);
        }
    }
}

/// The bytes an entry's hash is computed over (see the module documentation).
pub fn canonical_bytes(sequence: i64, e: &NewEntry, prev_hash: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"CATS-JOURNAL-V1");
    out.extend_from_slice(&sequence.to_be_bytes());
    put_text(&mut out, &e.message_id);
    put_text(&mut out, &e.message_type);
    put_text(&mut out, &e.sender);
    put_text(&mut out, &e.recipients.join(","));
    put_opt_text(&mut out, e.mrn.as_deref());
    put_opt_text(&mut out, e.correlation_id.as_deref());
    match e.prepared_at {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.timestamp_millis().to_be_bytes());
        }
    }
    out.extend_from_slice(&e.recorded_at.timestamp_millis().to_be_bytes());
    out.extend_from_slice(&e.body_sha256);
    out.extend_from_slice(digest(&SHA256, &e.envelope).as_ref());
    put_opt_text(&mut out, e.signer.as_deref());
    put_text(&mut out, e.status.as_str());
    let (code, reason) = match &e.status {
        Status::Rejected { code, reason } => (Some(code.as_str()), Some(reason.as_str())),
        _ => (None, None),
    };
    put_opt_text(&mut out, code);
    put_opt_text(&mut out, reason);
    out.extend_from_slice(prev_hash);
    out
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// The hash of an entry.
pub fn entry_hash(sequence: i64, e: &NewEntry, prev_hash: &[u8; 32]) -> [u8; 32] {
    sha256(&canonical_bytes(sequence, e, prev_hash))
}

/// Takes the journal's append lock for the rest of `tx`: on PostgreSQL the transaction-scoped
/// advisory lock that serialises appends across hub processes (taking it again in the same
/// transaction is free); on SQLite the transaction (`BEGIN IMMEDIATE`) already holds the one
/// write lock. What `tx` reads after this, another hub process cannot change before `tx` ends.
pub async fn lock(tx: &mut HubTx<'_>) -> Result<(), StoreError> {
    if let HubTx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_JOURNAL_LOCK)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// Whether a message with this sender and identification is journalled already (any body),
/// read inside `tx`; call it after [`lock`] to decide with no other hub process in between.
pub async fn journalled(
    tx: &mut HubTx<'_>,
    sender: &str,
    message_id: &str,
) -> Result<bool, StoreError> {
    let n: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM hub_seen WHERE sender = $1 AND message_id = $2")
            .bind(sender)
            .bind(message_id)
            .fetch_one(&mut *c)
            .await?
    });
    Ok(n > 0)
}

/// Appends `entry` inside `tx` (see the module documentation for serialisation).
pub async fn append(tx: &mut HubTx<'_>, entry: NewEntry) -> Result<Entry, StoreError> {
    append_all(tx, vec![entry])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("append returned no entry".into()))
}

/// Rows per multi-row `INSERT`: 17 journal columns × 500 stays under SQLite's 32,766 bound
/// parameters.
const ROWS_PER_INSERT: usize = 500;

/// Appends `entries` inside `tx`, in order, as consecutive sequences that continue the chain:
/// one [`lock`], one read of the head, and multi-row inserts of the entries and of their
/// recipients into the recipient index (`hub_journal_recipients`, which reconciliation reads).
pub async fn append_all(
    tx: &mut HubTx<'_>,
    entries: Vec<NewEntry>,
) -> Result<Vec<Entry>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    lock(tx).await?;
    let head: Option<(i64, Vec<u8>)> = on_tx!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT sequence, entry_hash FROM hub_journal ORDER BY sequence DESC LIMIT 1",
        )
        .fetch_optional(&mut *c)
        .await?
    });
    let (mut sequence, mut prev_hash) = match head {
        None => (0, [0u8; 32]),
        Some((seq, hash)) => (
            seq,
            hash.try_into()
                .map_err(|_| StoreError::Corrupt(format!("entry {seq}: hash is not 32 bytes")))?,
        ),
    };
    let mut appended = Vec::with_capacity(entries.len());
    for entry in entries {
        sequence += 1;
        let hash = entry_hash(sequence, &entry, &prev_hash);
        appended.push(Entry {
            sequence,
            entry,
            prev_hash,
            hash,
        });
        prev_hash = hash;
    }
    for rows in appended.chunks(ROWS_PER_INSERT) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_journal (sequence, message_id, message_type, sender, recipients, \
                 mrn, correlation_id, prepared_at, recorded_at, body_sha256, envelope, signer, \
                 status, error_code, error_reason, prev_hash, entry_hash) ",
            );
            q.push_values(rows, |mut b, e| {
                let (code, reason) = match &e.entry.status {
                    Status::Rejected { code, reason } => {
                        (Some(code.as_str()), Some(reason.as_str()))
                    }
                    _ => (None, None),
                };
                b.push_bind(e.sequence)
                    .push_bind(e.entry.message_id.as_str())
                    .push_bind(e.entry.message_type.as_str())
                    .push_bind(e.entry.sender.as_str())
                    .push_bind(e.entry.recipients.join(","))
                    .push_bind(e.entry.mrn.as_deref())
                    .push_bind(e.entry.correlation_id.as_deref())
                    .push_bind(e.entry.prepared_at.map(|t| t.timestamp_millis()))
                    .push_bind(e.entry.recorded_at.timestamp_millis())
                    .push_bind(e.entry.body_sha256.as_slice())
                    .push_bind(e.entry.envelope.as_slice())
                    .push_bind(e.entry.signer.as_deref())
                    .push_bind(e.entry.status.as_str())
                    .push_bind(code)
                    .push_bind(reason)
                    .push_bind(e.prev_hash.as_slice())
                    .push_bind(e.hash.as_slice());
            });
            q.build().execute(&mut *c).await?;
        });
    }
    let mut index: Vec<(&str, i64)> = appended
        .iter()
        .flat_map(|e| e.entry.recipients.iter().map(|r| (r.as_str(), e.sequence)))
        .collect();
    index.sort_unstable();
    index.dedup();
    for rows in index.chunks(ROWS_PER_INSERT) {
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO hub_journal_recipients (recipient, sequence) ",
            );
            q.push_values(rows, |mut b, (recipient, sequence)| {
                b.push_bind(*recipient).push_bind(*sequence);
            });
            q.build().execute(&mut *c).await?;
        });
    }
    Ok(appended)
}

/// The senders' message identifications among `keys` (sender, message identification) that
/// are journalled already (any body), read inside `tx`; call it after [`lock`] to decide with
/// no other hub process in between.
pub async fn journalled_any(
    tx: &mut HubTx<'_>,
    keys: &[(&str, &str)],
) -> Result<std::collections::HashSet<(String, String)>, StoreError> {
    let mut found = std::collections::HashSet::new();
    for rows in keys.chunks(ROWS_PER_INSERT) {
        let hits: Vec<(String, String)> = on_tx!(&mut *tx, |c| {
            // A join from the list (not `IN`) so that both databases look each pair up in
            // the primary key instead of scanning the index.
            let mut q = sqlx::QueryBuilder::new("SELECT DISTINCT s.sender, s.message_id FROM (");
            q.push_values(rows, |mut b, (sender, id)| {
                b.push_bind(*sender).push_bind(*id);
            });
            q.push(") k JOIN hub_seen s ON s.sender = k.column1 AND s.message_id = k.column2");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        found.extend(hits);
    }
    Ok(found)
}

const COLUMNS: &str = "sequence, message_id, message_type, sender, recipients, mrn, correlation_id, \
     prepared_at, recorded_at, body_sha256, envelope, signer, status, error_code, error_reason, \
     prev_hash, entry_hash";

fn hash32(seq: i64, what: &str, v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt(format!("entry {seq}: {what} is not 32 bytes")))
}

fn millis(seq: i64, ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq}: time {ms} out of range")))
}

fn from_row<R: Row>(row: &R) -> Result<Entry, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let sequence: i64 = row.try_get("sequence")?;
    let recipients: String = row.try_get("recipients")?;
    let status = match row.try_get::<String, _>("status")?.as_str() {
        "accepted" => Status::Accepted,
        "emitted" => Status::Emitted,
        "rejected" => Status::Rejected {
            code: row
                .try_get::<Option<String>, _>("error_code")?
                .unwrap_or_default(),
            reason: row
                .try_get::<Option<String>, _>("error_reason")?
                .unwrap_or_default(),
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "entry {sequence}: unknown status {other:?}"
            )));
        }
    };
    let prepared_at = match row.try_get::<Option<i64>, _>("prepared_at")? {
        Some(ms) => Some(millis(sequence, ms)?),
        None => None,
    };
    Ok(Entry {
        sequence,
        entry: NewEntry {
            message_id: row.try_get("message_id")?,
            message_type: row.try_get("message_type")?,
            sender: row.try_get("sender")?,
            recipients: recipients
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            mrn: row.try_get("mrn")?,
            correlation_id: row.try_get("correlation_id")?,
            prepared_at,
            recorded_at: millis(sequence, row.try_get("recorded_at")?)?,
            body_sha256: hash32(sequence, "body hash", row.try_get("body_sha256")?)?,
            envelope: row.try_get("envelope")?,
            signer: row.try_get("signer")?,
            status,
        },
        prev_hash: hash32(sequence, "previous hash", row.try_get("prev_hash")?)?,
        hash: hash32(sequence, "hash", row.try_get("entry_hash")?)?,
    })
}

/// Up to `limit` entries with a sequence greater than `after`, in order.
pub async fn entries_after(
    store: &HubStore,
    after: i64,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM hub_journal WHERE sequence > $1 ORDER BY sequence LIMIT $2");
    on_pool!(store, |p| {
        sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?
            .iter()
            .map(from_row)
            .collect()
    })
}

/// One entry.
pub async fn entry(store: &HubStore, sequence: i64) -> Result<Option<Entry>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hub_journal WHERE sequence = $1");
    on_pool!(store, |p| {
        match sqlx::query(&sql).bind(sequence).fetch_optional(p).await? {
            Some(row) => from_row(&row).map(Some),
            None => Ok(None),
        }
    })
}

/// The entries of one movement, in order.
pub async fn entries_of_mrn(store: &HubStore, mrn: &str) -> Result<Vec<Entry>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM hub_journal WHERE mrn = $1 ORDER BY sequence");
    on_pool!(store, |p| {
        sqlx::query(&sql)
            .bind(mrn)
            .fetch_all(p)
            .await?
            .iter()
            .map(from_row)
            .collect()
    })
}

/// The number of entries (the head's sequence).
pub async fn size(store: &HubStore) -> Result<i64, StoreError> {
    let head: Option<i64> = on_pool!(store, |p| {
        sqlx::query_scalar("SELECT MAX(sequence) FROM hub_journal")
            .fetch_one(p)
            .await?
    });
    Ok(head.unwrap_or(0))
}

/// A journal whose every link holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// How many entries.
    pub entries: i64,
    /// The last entry's hash (all zeros for an empty journal).
    pub head: [u8; 32],
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal broken at sequence {sequence}: {why}")]
pub struct BrokenLink {
    /// The first entry that does not verify.
    pub sequence: i64,
    /// What is wrong with it.
    pub why: String,
}

/// Why [`verify`] could not give a verdict, or the verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken.
    #[error(transparent)]
    Broken(#[from] BrokenLink),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Broken(_) => "journal.broken",
            VerifyError::Store(e) => e.code(),
        }
    }
}

/// Walks the whole journal in sequence order and checks every link: sequences without gaps
/// from 1, each entry's previous hash is the hash of the entry before, and each hash is the
/// SHA-256 of the entry's canonical bytes. A row that cannot even be read (a hash of the wrong
/// length, an unknown status) is a broken link at that row.
pub async fn verify(store: &HubStore) -> Result<VerifiedChain, VerifyError> {
    const PAGE: i64 = 1000;
    let mut expected_seq = 1i64;
    let mut prev = [0u8; 32];
    loop {
        let page = match entries_after(store, expected_seq - 1, PAGE).await {
            Ok(page) => page,
            Err(StoreError::Corrupt(why)) => {
                return Err(BrokenLink {
                    sequence: expected_seq,
                    why,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        let n = page.len();
        for e in page {
            if e.sequence != expected_seq {
                return Err(BrokenLink {
                    sequence: expected_seq,
                    why: format!("entry {expected_seq} is missing (next is {})", e.sequence),
                }
                .into());
            }
            if e.prev_hash != prev {
                return Err(BrokenLink {
                    sequence: e.sequence,
                    why: "its previous hash is not the hash of the entry before".into(),
                }
                .into());
            }
            if entry_hash(e.sequence, &e.entry, &e.prev_hash) != e.hash {
                return Err(BrokenLink {
                    sequence: e.sequence,
                    why: "its content does not hash to its recorded hash (altered)".into(),
                }
                .into());
            }
            prev = e.hash;
            expected_seq += 1;
        }
        if i64::try_from(n).unwrap_or(0) < PAGE {
            break;
        }
    }
    Ok(VerifiedChain {
        entries: expected_seq - 1,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> NewEntry {
        NewEntry {
            message_id: id.into(),
            message_type: "CD001C".into(),
            sender: "urn:cats:node:KZ".into(),
            recipients: vec!["node:GE".into()],
            mrn: Some("26KZ000101000001J0".into()),
            correlation_id: None,
            prepared_at: DateTime::from_timestamp_millis(1_700_000_000_000),
            recorded_at: DateTime::from_timestamp_millis(1_700_000_000_500).unwrap_or_default(),
            body_sha256: sha256(b"body"),
            envelope: b"envelope".to_vec(),
            signer: Some("urn:cats:signer:KZ".into()),
            status: Status::Accepted,
        }
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = sample("A");
        let h = entry_hash(1, &base, &[0; 32]);
        let mut variants = Vec::new();
        let mut e = base.clone();
        e.message_id = "B".into();
        variants.push(e);
        let mut e = base.clone();
        e.envelope.push(0);
        variants.push(e);
        let mut e = base.clone();
        e.recipients.push("node:AZ".into());
        variants.push(e);
        let mut e = base.clone();
        e.status = Status::Rejected {
            code: "26".into(),
            reason: "x".into(),
        };
        variants.push(e);
        let mut e = base.clone();
        e.mrn = None;
        variants.push(e);
        for v in variants {
            assert_ne!(entry_hash(1, &v, &[0; 32]), h, "{v:?}");
        }
        assert_ne!(entry_hash(2, &base, &[0; 32]), h);
        assert_ne!(entry_hash(1, &base, &[1; 32]), h);
    }

    #[tokio::test]
    async fn appends_chain_and_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("j.db").display());
        let store = HubStore::connect(&url).await.expect("store");
        let mut tx = store.begin().await.expect("tx");
        let a = append(&mut tx, sample("A")).await.expect("append");
        let b = append(&mut tx, sample("B")).await.expect("append");
        tx.commit().await.expect("commit");
        assert_eq!((a.sequence, b.sequence), (1, 2));
        assert_eq!(b.prev_hash, a.hash);
        let chain = verify(&store).await.expect("verifies");
        assert_eq!(
            chain,
            VerifiedChain {
                entries: 2,
                head: b.hash
            }
        );
        assert_eq!(entry(&store, 2).await.expect("read"), Some(b));
        on_pool!(&store, |p| {
            sqlx::query("UPDATE hub_journal SET message_type = 'CD050C' WHERE sequence = 1")
                .execute(p)
                .await
                .expect("tamper");
        });
        match verify(&store).await {
            Err(VerifyError::Broken(b)) => assert_eq!(b.sequence, 1),
            other => panic!("tampering not detected: {other:?}"),
        }
    }
}
