//! Reconciliation between a node and the hub, as pure code: the per-movement digest both sides
//! compute, the hash tree over MRN buckets that narrows differences down, and the compact
//! binary bodies of the three control messages they exchange.
//!
//! What is compared, per movement, is the set of hub deliveries the node holds (their message
//! identifications): the hub computes it from its journal (every entry it forwarded to that
//! node for that MRN), the node from what its inbox accepted. The state at the node's offices
//! also depends on officers' actions the hub never sees, so the state itself is checked by the
//! node against its own event log (re-folding [`super::apply`]), not against the hub.
//!
//! The exchange (each body below travels in a signed envelope over the existing link):
//!
//! 1. node → hub, [`Request`]: the node's resume point (the last hub journal sequence it has
//!    confirmed) and the hash of each of its MRN buckets;
//! 2. hub → node: first every journal entry for that node after the resume point
//!    (re-delivered), then [`Differences`]: the sequence the comparison was made at and, for
//!    each bucket that differs, the [`fingerprint`] of each of the hub's movements in it (MRN
//!    and digest hashed to 8 bytes: less than a quarter of sending both);
//! 3. node → hub, [`RepairRequest`]: the fingerprints the node does not hold after the
//!    re-delivery; the hub finds their MRNs and re-delivers every journal entry of those
//!    movements for that node (the node's inbox makes the ones it already holds harmless).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The envelope message type of a [`Request`].
pub const REQUEST_TYPE: &str = "CATS-RECONCILE-REQUEST";
/// The envelope message type of a [`Differences`].
pub const DIFFERENCES_TYPE: &str = "CATS-RECONCILE-DIFFERENCES";
/// The envelope message type of a [`RepairRequest`].
pub const REPAIR_TYPE: &str = "CATS-RECONCILE-REPAIR";

/// The envelope message type of a [`Resume`].
pub const RESUME_TYPE: &str = "CATS-RECONCILE-RESUME";

/// Whether an envelope message type is one of the reconciliation control messages.
pub fn is_control(message_type: &str) -> bool {
    matches!(
        message_type,
        REQUEST_TYPE | DIFFERENCES_TYPE | REPAIR_TYPE | RESUME_TYPE
    )
}

/// The body format version (first byte of every body).
const VERSION: u8 = 1;
/// Length of a movement digest on the wire.
pub const DIGEST_LEN: usize = 16;
/// Length of a bucket hash on the wire (a collision hides a difference with probability
/// 2^-32 per differing bucket).
pub const BUCKET_HASH_LEN: usize = 4;
/// Length of a movement fingerprint on the wire.
pub const FINGERPRINT_LEN: usize = 8;

/// A movement's fingerprint: SHA-256 of its MRN, a zero byte and its digest, truncated.
pub fn fingerprint(mrn: &str, digest: &[u8; DIGEST_LEN]) -> [u8; FINGERPRINT_LEN] {
    let mut h = Sha256::new();
    h.update(mrn.as_bytes());
    h.update([0u8]);
    h.update(digest);
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&full[..FINGERPRINT_LEN]);
    out
}
/// A hub delivery's fingerprint, as a [`Resume`] names what the node applied: SHA-256 of the
/// envelope sender's URN, a zero byte and the message identification, truncated.
pub fn delivery_fingerprint(sender: &str, message_id: &str) -> [u8; FINGERPRINT_LEN] {
    let mut h = Sha256::new();
    h.update(sender.as_bytes());
    h.update([0u8]);
    h.update(message_id.as_bytes());
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&full[..FINGERPRINT_LEN]);
    out
}

/// The largest number of buckets (2^16).
pub const MAX_BUCKETS: u32 = 1 << 16;

/// A movement's digest: SHA-256 over the sorted, distinct message identifications of the hub
/// deliveries held for it (each followed by a newline), truncated to [`DIGEST_LEN`] bytes.
pub fn movement_digest<'a>(message_ids: impl IntoIterator<Item = &'a str>) -> [u8; DIGEST_LEN] {
    let mut ids: Vec<&str> = message_ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let full: [u8; 32] = h.finalize().into();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&full[..DIGEST_LEN]);
    out
}

/// The number of buckets for `movements` movements: a power of two near an eighth of the
/// count, between 16 and [`MAX_BUCKETS`].
pub fn bucket_count(movements: usize) -> u32 {
    let target = (movements / 8).max(16);
    let mut n: u32 = 16;
    while (n as usize) < target && n < MAX_BUCKETS {
        n <<= 1;
    }
    n
}

/// The bucket of an MRN among `buckets` (a power of two): the first bytes of SHA-256(MRN).
pub fn bucket_of(mrn: &str, buckets: u32) -> u32 {
    let h = Sha256::digest(mrn.as_bytes());
    let v = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    v & buckets.saturating_sub(1)
}

/// The hash tree's leaves grouped by bucket: each movement's digest, by MRN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// How many buckets (a power of two).
    pub count: u32,
    /// Per non-empty bucket, the movements in it.
    pub movements: BTreeMap<u32, BTreeMap<String, [u8; DIGEST_LEN]>>,
}

impl Buckets {
    /// Groups `(MRN, digest)` pairs into `count` buckets.
    pub fn new(count: u32, leaves: impl IntoIterator<Item = (String, [u8; DIGEST_LEN])>) -> Self {
        let mut movements: BTreeMap<u32, BTreeMap<String, [u8; DIGEST_LEN]>> = BTreeMap::new();
        for (mrn, digest) in leaves {
            movements
                .entry(bucket_of(&mrn, count))
                .or_default()
                .insert(mrn, digest);
        }
        Buckets { count, movements }
    }

    /// The hash of one bucket: SHA-256 over its (MRN, digest) pairs in MRN order, truncated;
    /// an empty bucket hashes to zeros.
    pub fn hash(&self, bucket: u32) -> [u8; BUCKET_HASH_LEN] {
        let mut out = [0u8; BUCKET_HASH_LEN];
        if let Some(m) = self.movements.get(&bucket) {
            let mut h = Sha256::new();
            for (mrn, digest) in m {
                h.update(mrn.as_bytes());
                h.update([0u8]);
                h.update(digest);
            }
            let full: [u8; 32] = h.finalize().into();
            out.copy_from_slice(&full[..BUCKET_HASH_LEN]);
        }
        out
    }

    /// The fingerprints of the movements in `bucket`.
    pub fn fingerprints(&self, bucket: u32) -> Vec<[u8; FINGERPRINT_LEN]> {
        self.movements
            .get(&bucket)
            .map(|m| m.iter().map(|(k, d)| fingerprint(k, d)).collect())
            .unwrap_or_default()
    }

    /// Every bucket's hash, bucket 0 first.
    pub fn hashes(&self) -> Vec<[u8; BUCKET_HASH_LEN]> {
        (0..self.count).map(|b| self.hash(b)).collect()
    }

    /// The buckets whose hash differs from `theirs` (which must have [`Buckets::count`]
    /// entries).
    pub fn differing(&self, theirs: &[[u8; BUCKET_HASH_LEN]]) -> Vec<u32> {
        (0..self.count)
            .filter(|b| theirs.get(*b as usize) != Some(&self.hash(*b)))
            .collect()
    }

    /// The number of movements.
    pub fn len(&self) -> usize {
        self.movements.values().map(BTreeMap::len).sum()
    }

    /// Whether there is no movement.
    pub fn is_empty(&self) -> bool {
        self.movements.is_empty()
    }
}

/// Node → hub: the resume point and the bucket hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The last hub journal sequence the node has confirmed (0: none).
    pub resume_after: i64,
    /// The hash of each bucket; its length is the bucket count (a power of two).
    pub buckets: Vec<[u8; BUCKET_HASH_LEN]>,
}

/// Hub → node: the differing buckets, with the fingerprint of every hub movement in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Differences {
    /// The journal sequence the comparison was made at: once the node holds everything in
    /// these differences, it holds everything up to here.
    pub through: i64,
    /// The bucket count the comparison used.
    pub bucket_count: u32,
    /// How many entries were re-delivered before this message (resume).
    pub resumed: u32,
    /// Per differing bucket, the fingerprints of the hub's movements in it.
    pub buckets: BTreeMap<u32, Vec<[u8; FINGERPRINT_LEN]>>,
}

/// Node → hub: the hub's movements the node does not hold as the hub does (by fingerprint);
/// re-deliver their entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRequest {
    /// The fingerprints, from the hub's [`Differences`].
    pub fingerprints: Vec<[u8; FINGERPRINT_LEN]>,
}

/// Node → hub, on every (re)connection: the resume point and the deliveries the node applied
/// that the hub has not yet confirmed. The hub re-delivers every entry for the node after the
/// resume point that is not among them, then answers with a [`Differences`] without buckets
/// whose `through` is the node's new resume point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The last hub journal sequence the node has confirmed (0: none).
    pub resume_after: i64,
    /// [`delivery_fingerprint`] of each delivery applied since that confirmation.
    pub applied: Vec<[u8; FINGERPRINT_LEN]>,
}

/// A body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not the expected version.
    #[error("reconcile.version: body version {0} is not 1")]
    Version(u8),
    /// Ended before a field did.
    #[error("reconcile.truncated: the body ends inside {0}")]
    Truncated(&'static str),
    /// A field holds a value out of range.
    #[error("reconcile.invalid: {0}")]
    Invalid(String),
    /// Bytes after the last field.
    #[error("reconcile.trailing: {0} bytes after the last field")]
    Trailing(usize),
}

impl BodyError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::Version(_) => "reconcile.version",
            BodyError::Truncated(_) => "reconcile.truncated",
            BodyError::Invalid(_) => "reconcile.invalid",
            BodyError::Trailing(_) => "reconcile.trailing",
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BodyError> {
        if self.bytes.len() < n {
            return Err(BodyError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, BodyError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, BodyError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, BodyError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BodyError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn version(&mut self) -> Result<(), BodyError> {
        match self.u8("the version")? {
            VERSION => Ok(()),
            v => Err(BodyError::Version(v)),
        }
    }
    fn end(self) -> Result<(), BodyError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(BodyError::Trailing(self.bytes.len()))
        }
    }
}

fn check_count(n: u32) -> Result<u32, BodyError> {
    if n.is_power_of_two() && (16..=MAX_BUCKETS).contains(&n) {
        Ok(n)
    } else {
        Err(BodyError::Invalid(format!(
            "bucket count {n} is not a power of two between 16 and {MAX_BUCKETS}"
        )))
    }
}

impl Request {
    /// `01 | i64 resume_after | u32 count | count × 8-byte hash`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.buckets.len() * BUCKET_HASH_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.resume_after.to_be_bytes());
        out.extend_from_slice(&(self.buckets.len() as u32).to_be_bytes());
        for h in &self.buckets {
            out.extend_from_slice(h);
        }
        out
    }

    /// Decodes [`Request::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Request, BodyError> {
        let mut r = Reader { bytes };
        r.version()?;
        let resume_after = r.i64("the resume point")?;
        if resume_after < 0 {
            return Err(BodyError::Invalid("a negative resume point".into()));
        }
        let count = check_count(r.u32("the bucket count")?)?;
        let mut buckets = Vec::with_capacity(count as usize);
        for _ in 0..count {
            buckets.push(r.array::<BUCKET_HASH_LEN>("a bucket hash")?);
        }
        r.end()?;
        Ok(Request {
            resume_after,
            buckets,
        })
    }
}

impl Differences {
    /// `01 | i64 through | u32 bucket_count | u32 resumed | u32 n | n × (u32 bucket | u32 m |
    /// m × 8-byte fingerprint)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.through.to_be_bytes());
        out.extend_from_slice(&self.bucket_count.to_be_bytes());
        out.extend_from_slice(&self.resumed.to_be_bytes());
        out.extend_from_slice(&(self.buckets.len() as u32).to_be_bytes());
        for (bucket, movements) in &self.buckets {
            out.extend_from_slice(&bucket.to_be_bytes());
            out.extend_from_slice(&(movements.len() as u32).to_be_bytes());
            for f in movements {
                out.extend_from_slice(f);
            }
        }
        out
    }

    /// Decodes [`Differences::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Differences, BodyError> {
        let mut r = Reader { bytes };
        r.version()?;
        let through = r.i64("the comparison sequence")?;
        let bucket_count = check_count(r.u32("the bucket count")?)?;
        let resumed = r.u32("the resumed count")?;
        let n = r.u32("the differing bucket count")?;
        if n > bucket_count {
            return Err(BodyError::Invalid(format!(
                "{n} differing buckets out of {bucket_count}"
            )));
        }
        let mut buckets = BTreeMap::new();
        for _ in 0..n {
            let bucket = r.u32("a bucket number")?;
            if bucket >= bucket_count {
                return Err(BodyError::Invalid(format!(
                    "bucket {bucket} out of {bucket_count}"
                )));
            }
            let m = r.u32("a bucket's movement count")?;
            let mut movements = Vec::new();
            if m as usize > r.bytes.len() / FINGERPRINT_LEN {
                return Err(BodyError::Truncated("a bucket's fingerprints"));
            }
            for _ in 0..m {
                movements.push(r.array::<FINGERPRINT_LEN>("a fingerprint")?);
            }
            buckets.insert(bucket, movements);
        }
        r.end()?;
        Ok(Differences {
            through,
            bucket_count,
            resumed,
            buckets,
        })
    }
}

impl RepairRequest {
    /// `01 | u32 n | n × 8-byte fingerprint`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&(self.fingerprints.len() as u32).to_be_bytes());
        for f in &self.fingerprints {
            out.extend_from_slice(f);
        }
        out
    }

    /// Decodes [`RepairRequest::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<RepairRequest, BodyError> {
        let mut r = Reader { bytes };
        r.version()?;
        let n = r.u32("the fingerprint count")?;
        if n as usize > r.bytes.len() / FINGERPRINT_LEN {
            return Err(BodyError::Truncated("the fingerprints"));
        }
        let mut fingerprints = Vec::new();
        for _ in 0..n {
            fingerprints.push(r.array::<FINGERPRINT_LEN>("a fingerprint")?);
        }
        r.end()?;
        Ok(RepairRequest { fingerprints })
    }
}

impl Resume {
    /// `01 | i64 resume_after | u32 n | n × 8-byte delivery fingerprint`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.applied.len() * FINGERPRINT_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.resume_after.to_be_bytes());
        out.extend_from_slice(&(self.applied.len() as u32).to_be_bytes());
        for f in &self.applied {
            out.extend_from_slice(f);
        }
        out
    }

    /// Decodes [`Resume::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Resume, BodyError> {
        let mut r = Reader { bytes };
        r.version()?;
        let resume_after = r.i64("the resume point")?;
        if resume_after < 0 {
            return Err(BodyError::Invalid("a negative resume point".into()));
        }
        let n = r.u32("the applied count")?;
        if n as usize > r.bytes.len() / FINGERPRINT_LEN {
            return Err(BodyError::Truncated("the applied fingerprints"));
        }
        let mut applied = Vec::with_capacity(n as usize);
        for _ in 0..n {
            applied.push(r.array::<FINGERPRINT_LEN>("a delivery fingerprint")?);
        }
        r.end()?;
        Ok(Resume {
            resume_after,
            applied,
        })
    }
}

/// The node's side of step 3: the fingerprints of the hub's movements, in the differing
/// buckets, that the node does not hold with the same digest (including the ones it does not
/// hold at all). Movements the node holds and the hub does not are left out: the hub cannot
/// re-deliver them (and the node's own unsent messages go out through its outbox).
pub fn to_repair(mine: &Buckets, theirs: &Differences) -> Vec<[u8; FINGERPRINT_LEN]> {
    let mut out = Vec::new();
    for (bucket, fingerprints) in &theirs.buckets {
        let held: std::collections::BTreeSet<[u8; FINGERPRINT_LEN]> =
            mine.fingerprints(*bucket).into_iter().collect();
        out.extend(fingerprints.iter().filter(|f| !held.contains(*f)).copied());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_round_trips_and_bad_bodies_are_refused() {
        let r = Resume {
            resume_after: 42,
            applied: vec![
                delivery_fingerprint("urn:cats:node:KZ", "KZ1"),
                delivery_fingerprint("urn:cats:hub", "KZ1"),
            ],
        };
        assert_ne!(
            r.applied[0], r.applied[1],
            "the sender is part of the fingerprint"
        );
        let bytes = r.encode();
        assert_eq!(bytes.len(), 13 + 2 * FINGERPRINT_LEN);
        assert_eq!(Resume::decode(&bytes), Ok(r));
        assert_eq!(
            Resume::decode(&bytes[..bytes.len() - 1]).map_err(|e| e.code()),
            Err("reconcile.truncated")
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Resume::decode(&longer).map_err(|e| e.code()),
            Err("reconcile.trailing")
        );
        let mut negative = bytes.clone();
        negative[1] = 0x80;
        assert_eq!(
            Resume::decode(&negative).map_err(|e| e.code()),
            Err("reconcile.invalid")
        );
        assert!(is_control(RESUME_TYPE));
    }

    fn leaves(n: usize) -> Vec<(String, [u8; DIGEST_LEN])> {
        (0..n)
            .map(|i| {
                let mrn = format!("26KZ000101{i:07}X");
                let id = format!("M{i}");
                (mrn, movement_digest([id.as_str()]))
            })
            .collect()
    }

    #[test]
    fn digest_ignores_order_and_repetition() {
        assert_eq!(
            movement_digest(["b", "a", "a"]),
            movement_digest(["a", "b"])
        );
        assert_ne!(movement_digest(["a"]), movement_digest(["a", "b"]));
    }

    #[test]
    fn bucket_counts_are_powers_of_two_in_range() {
        assert_eq!(bucket_count(0), 16);
        assert_eq!(bucket_count(100_000), 16_384);
        assert_eq!(bucket_count(10_000_000), MAX_BUCKETS);
    }

    #[test]
    fn one_changed_movement_is_narrowed_to_its_bucket() {
        let hub = leaves(1000);
        let mut node = hub.clone();
        node[17].1 = movement_digest(["other"]);
        node.remove(500);
        let count = bucket_count(hub.len());
        let hub_b = Buckets::new(count, hub.clone());
        let node_b = Buckets::new(count, node);
        let differing = hub_b.differing(&node_b.hashes());
        let expected: std::collections::BTreeSet<u32> = [17usize, 500]
            .iter()
            .map(|i| bucket_of(&hub[*i].0, count))
            .collect();
        assert_eq!(
            differing
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            expected
        );
        let diff = Differences {
            through: 9,
            bucket_count: count,
            resumed: 0,
            buckets: differing
                .iter()
                .map(|b| (*b, hub_b.fingerprints(*b)))
                .collect(),
        };
        let mut repair = to_repair(&node_b, &diff);
        repair.sort();
        let mut want = vec![
            fingerprint(&hub[17].0, &hub[17].1),
            fingerprint(&hub[500].0, &hub[500].1),
        ];
        want.sort();
        assert_eq!(repair, want);
    }

    #[test]
    fn bodies_round_trip() {
        let req = Request {
            resume_after: 42,
            buckets: vec![[7u8; BUCKET_HASH_LEN]; 16],
        };
        assert_eq!(Request::decode(&req.encode()), Ok(req));
        let diff = Differences {
            through: 5,
            bucket_count: 32,
            resumed: 3,
            buckets: BTreeMap::from([(3, vec![[1; FINGERPRINT_LEN]])]),
        };
        assert_eq!(Differences::decode(&diff.encode()), Ok(diff));
        let rep = RepairRequest {
            fingerprints: vec![[2; FINGERPRINT_LEN]],
        };
        assert_eq!(RepairRequest::decode(&rep.encode()), Ok(rep));
    }

    #[test]
    fn bad_bodies_are_refused_with_their_code() {
        assert_eq!(
            Request::decode(&[]).expect_err("refused").code(),
            "reconcile.truncated"
        );
        assert_eq!(
            Request::decode(&[2]).expect_err("refused").code(),
            "reconcile.version"
        );
        let mut req = Request {
            resume_after: 0,
            buckets: vec![[0; BUCKET_HASH_LEN]; 17],
        }
        .encode();
        assert_eq!(
            Request::decode(&req).expect_err("refused").code(),
            "reconcile.invalid"
        );
        req = Request {
            resume_after: 0,
            buckets: vec![[0; BUCKET_HASH_LEN]; 16],
        }
        .encode();
        req.push(0);
        assert_eq!(
            Request::decode(&req).expect_err("refused").code(),
            "reconcile.trailing"
        );
        let short = [1, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            RepairRequest::decode(&short).expect_err("refused").code(),
            "reconcile.truncated"
        );
    }
}
