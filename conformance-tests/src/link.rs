//! The hub's direct mTLS link, played by the kit: for each country it has the identity of
//! (`node-<cc>.pem` TLS certificate and `signer-<cc>.pem` signing key in a certificates
//! directory), one [`DirectNode`] connection to the hub, as that country's node would keep.
//!
//! - [`HubLink::send`] seals a body in a signed envelope with a country's signing key (or
//!   spoils it on purpose, [`Tamper`]) and sends it over a country's connection; it returns
//!   once the hub has acknowledged it, that is once the hub has journalled and routed it, or
//!   refused it and queued its NACK.
//! - Every envelope the hub delivers to a connection is checked as the node would check it
//!   ([`Verifier::open`] with the node's identity: chain, signer, allow-list, signature,
//!   recipient, body hash), acknowledged, and kept in that country's inbox, where
//!   [`HubLink::wait`] finds it by type, identification or correlation.
//!
//! A connection with a country's identity replaces any other connection with that identity at
//! the hub (one per country): point the kit at a hub whose nodes of those countries are not
//! connected (`--target self` starts its own hub for that reason).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cats_transport::contract::{CountryCode, Destination, Outbound, PeerIdentity, Transport};
use cats_transport::direct::{DirectNode, LinkConfig, NodeTls};
use cats_trust::{Envelope, EnvelopeHeaderFields, Signer, TrustStore, Verifier};
use chrono::Utc;
use tokio::sync::Notify;

use crate::case::Tamper;
use crate::run::{Delivered, DriverError, HubFilter, HubSendRequest};

/// Where the hub's link is and which identities to play.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// `HOST:PORT` of the hub's direct link.
    pub addr: String,
    /// The name the hub's TLS certificate must carry.
    pub server_name: String,
    /// The certificates directory: `ca.pem`, `fingerprints.json` (optional), and per country
    /// `node-<cc>.pem` / `node-<cc>.key.pem` and `signer-<cc>.pem` / `signer-<cc>.key.pem`.
    pub certs: PathBuf,
}

/// An envelope the hub delivered, kept in a country's inbox.
#[derive(Debug, Default)]
struct Inbox {
    items: Mutex<Vec<Delivered>>,
    arrived: Notify,
}

impl Inbox {
    fn find(&self, filter: &HubFilter, skip: usize) -> Option<Delivered> {
        self.items.lock().ok().and_then(|items| {
            items
                .iter()
                .filter(|d| filter.matches(d))
                .nth(skip)
                .cloned()
        })
    }

    fn all(&self) -> Vec<Delivered> {
        self.items.lock().map(|i| i.clone()).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Identity {
    link: Arc<DirectNode>,
    inbox: Arc<Inbox>,
    reader: tokio::task::JoinHandle<()>,
}

/// The kit's connections to the hub, one per country identity.
pub struct HubLink {
    identities: BTreeMap<String, Identity>,
    signers: BTreeMap<String, Signer>,
    addr: String,
}

impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink")
            .field("addr", &self.addr)
            .field("countries", &self.identities.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The countries with a node TLS certificate and a signing certificate (both with their keys)
/// in `certs`.
pub fn identities_in(certs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(certs) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(cc) = name
            .strip_prefix("node-")
            .and_then(|r| r.strip_suffix(".pem"))
            .filter(|cc| cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_lowercase()))
        else {
            continue;
        };
        let complete = [
            format!("node-{cc}.key.pem"),
            format!("signer-{cc}.pem"),
            format!("signer-{cc}.key.pem"),
        ]
        .iter()
        .all(|f| certs.join(f).is_file());
        if complete {
            out.push(cc.to_ascii_uppercase());
        }
    }
    out.sort();
    out
}

fn failed(what: impl std::fmt::Display) -> DriverError {
    DriverError(what.to_string())
}

impl HubLink {
    /// Connects one link per identity found in the certificates directory, and waits until
    /// each is up (at most `timeout`).
    pub async fn connect(options: &LinkOptions, timeout: Duration) -> Result<HubLink, DriverError> {
        let certs = &options.certs;
        let countries = identities_in(certs);
        if countries.is_empty() {
            return Err(failed(format!(
                "{}: no node identity (node-<cc>.pem, node-<cc>.key.pem, signer-<cc>.pem, \
                 signer-<cc>.key.pem)",
                certs.display()
            )));
        }
        let ca = certs.join("ca.pem");
        let allow = certs.join("fingerprints.json");
        let allow = allow.is_file().then_some(allow);
        let trust = TrustStore::load(&ca, allow.as_deref())
            .map_err(|e| failed(format!("{}: {e}", ca.display())))?;
        let mut identities = BTreeMap::new();
        let mut signers = BTreeMap::new();
        for cc in &countries {
            let lower = cc.to_ascii_lowercase();
            let country = CountryCode::parse(cc).map_err(|e| failed(format!("{cc}: {e}")))?;
            let signer = Signer::load(
                &certs.join(format!("signer-{lower}.pem")),
                &certs.join(format!("signer-{lower}.key.pem")),
            )
            .map_err(|e| failed(format!("the {cc} signing key: {e}")))?;
            let mut tls = NodeTls::from_files(
                &ca,
                &certs.join(format!("node-{lower}.pem")),
                &certs.join(format!("node-{lower}.key.pem")),
            )
            .map_err(|e| failed(format!("the {cc} node certificate: {e}")))?;
            tls.server_name = options.server_name.clone();
            let link = DirectNode::connect(
                options.addr.clone(),
                tls,
                LinkConfig {
                    send_timeout: Duration::from_secs(30),
                    max_backoff: Duration::from_millis(500),
                    ..LinkConfig::default()
                },
            )
            .map_err(|e| failed(format!("the {cc} link: {e}")))?;
            link.wait_connected(timeout).await.map_err(|e| {
                failed(format!(
                    "connecting to the hub at {} as {cc}: {e}",
                    options.addr
                ))
            })?;
            let link = Arc::new(link);
            let inbox = Arc::new(Inbox::default());
            let verifier = Verifier::new(trust.clone(), Duration::from_secs(300))
                .with_local_identity(PeerIdentity::Node(country));
            let reader = tokio::spawn(read(link.clone(), inbox.clone(), verifier));
            identities.insert(
                cc.clone(),
                Identity {
                    link,
                    inbox,
                    reader,
                },
            );
            signers.insert(cc.clone(), signer);
        }
        tracing::info!(addr = %options.addr, ?countries, "conformance kit linked to the hub");
        Ok(HubLink {
            identities,
            signers,
            addr: options.addr.clone(),
        })
    }

    /// The countries it plays.
    pub fn countries(&self) -> Vec<String> {
        self.identities.keys().cloned().collect()
    }

    /// The hub's link address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Seals and sends (see the module documentation); the envelope as sent.
    pub async fn send(&self, request: HubSendRequest) -> Result<Vec<u8>, DriverError> {
        let identity = self
            .identities
            .get(&request.sender)
            .ok_or_else(|| failed(format!("no {} identity on the link", request.sender)))?;
        let signer = self
            .signers
            .get(&request.signer)
            .ok_or_else(|| failed(format!("no {} signing key", request.signer)))?;
        let party = |p: &str| -> Result<PeerIdentity, DriverError> {
            if p == "hub" {
                return Ok(PeerIdentity::Hub);
            }
            CountryCode::parse(p)
                .map(PeerIdentity::Node)
                .map_err(|e| failed(format!("{p}: {e}")))
        };
        let fields = EnvelopeHeaderFields {
            message_id: request.message_id.clone(),
            message_type: request.message_type.clone(),
            sender: party(&request.signer)?,
            recipient: party(&request.to)?,
            correlation_id: None,
            mrn: request.mrn.clone(),
            prepared_at: Utc::now(),
        };
        let mut wire = signer
            .seal(&fields, request.xml.as_bytes())
            .map_err(|e| failed(format!("sealing: {e}")))?;
        if let Some(t) = request.tamper {
            tamper(&mut wire, t)?;
        }
        identity
            .link
            .send(Outbound {
                message_id: request.message_id,
                destination: Destination::Hub,
                partition_key: request.mrn,
                bytes: Bytes::from(wire.clone()),
            })
            .await
            .map_err(|e| failed(format!("the hub did not take it: {e}")))?;
        Ok(wire)
    }

    /// The `skip + 1`-th envelope in `country`'s inbox that `filter` matches, waiting at most
    /// `within`.
    pub async fn wait(
        &self,
        country: &str,
        filter: &HubFilter,
        skip: usize,
        within: Duration,
    ) -> Result<Option<Delivered>, DriverError> {
        let inbox = &self
            .identities
            .get(country)
            .ok_or_else(|| failed(format!("no {country} identity on the link")))?
            .inbox;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = inbox.arrived.notified();
            if let Some(d) = inbox.find(filter, skip) {
                return Ok(Some(d));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(inbox.find(filter, skip));
            }
        }
    }

    /// Everything delivered to `country` so far.
    pub fn delivered(&self, country: &str) -> Vec<Delivered> {
        self.identities
            .get(country)
            .map(|i| i.inbox.all())
            .unwrap_or_default()
    }

    /// Closes every connection.
    pub async fn close(self) {
        for (_, i) in self.identities {
            i.link.shutdown().await;
            i.reader.abort();
        }
    }
}

/// Spoils a sealed envelope (see `trust/ENVELOPE.md` for the frame).
fn tamper(wire: &mut [u8], how: Tamper) -> Result<(), DriverError> {
    let (signature_end, body_len) = {
        let parsed = Envelope::parse(wire).map_err(|e| failed(format!("own envelope: {e}")))?;
        // "CATS" 01 | u32 H | header | u16 S | signature | u32 B | body
        let end = 4 + 1 + 4 + parsed.signed_bytes.len() + 2 + parsed.header.signature.len();
        (end, parsed.body.len())
    };
    match how {
        Tamper::Body => {
            // The last byte of the body: trailing white space, so the XML stays the same
            // document and only the hash tells.
            let last = wire
                .len()
                .checked_sub(1)
                .filter(|_| body_len > 0)
                .ok_or_else(|| failed("an empty body cannot be changed"))?;
            wire[last] = if wire[last] == b' ' { b'\n' } else { b' ' };
        }
        Tamper::Signature => {
            let last = signature_end
                .checked_sub(1)
                .ok_or_else(|| failed("an unsigned envelope"))?;
            wire[last] ^= 0x01;
        }
    }
    Ok(())
}

/// Receives what the hub delivers to one identity: checks, acknowledges and keeps each.
async fn read(link: Arc<DirectNode>, inbox: Arc<Inbox>, verifier: Verifier) {
    loop {
        let delivery = match link.receive().await {
            Ok(d) => d,
            Err(cats_transport::contract::TransportError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "conformance link: receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let wire = delivery.bytes.to_vec();
        let item = match Envelope::parse(&wire) {
            Ok(parsed) => {
                let h = &parsed.header.fields;
                let refused = verifier
                    .open(&wire, &delivery.from, Utc::now())
                    .err()
                    .map(|e| format!("{}: {e}", e.code()));
                Delivered {
                    message_id: h.message_id.clone(),
                    message_type: h.message_type.clone(),
                    correlation_id: h.correlation_id.clone(),
                    mrn: h.mrn.clone(),
                    sender: match h.sender {
                        PeerIdentity::Hub => "hub".to_owned(),
                        PeerIdentity::Node(c) => c.to_string(),
                    },
                    body: String::from_utf8_lossy(parsed.body).into_owned(),
                    refused,
                    wire: wire.clone(),
                }
            }
            Err(e) => Delivered {
                message_id: delivery.message_id.clone(),
                message_type: "unreadable".into(),
                refused: Some(format!("{}: {e}", e.code())),
                wire: wire.clone(),
                ..Delivered::default()
            },
        };
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "conformance link: ack failed");
        }
        if let Ok(mut items) = inbox.items.lock() {
            items.push(item);
        }
        inbox.arrived.notify_waiters();
    }
}
