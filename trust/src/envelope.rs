//! The signed envelope: a header, signed by the originating party, and the exact body bytes.
//!
//! The sender calls [`Signer::seal`]; the hub and the final recipient call [`Verifier::open`]
//! before they parse a single byte of the body. [`Envelope::parse`] reads an envelope without
//! verifying it (for journals and diagnostics).
//!
//! # Wire format (frame version 1)
//!
//! All integers are big-endian. Nothing may follow the body.
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | magic `CATS` |
//! | 1 | frame version, `0x01` |
//! | 4 | `H`, header length (u32) |
//! | `H` | header: the canonical signed bytes below |
//! | 2 | `S`, signature length (u16); 0 means unsigned |
//! | `S` | signature: ECDSA P-256 with SHA-256, ASN.1 DER (`ECDSA_P256_SHA256_ASN1`) |
//! | 4 | `B`, body length (u32) |
//! | `B` | body, the exact bytes whose SHA-256 is in the header |
//!
//! # Canonical header encoding (header version 1)
//!
//! The signature is computed over exactly these bytes, which are also the header on the wire,
//! so the verifier checks the bytes it received and never re-encodes. Fields in this fixed
//! order, nothing omitted, nothing after the last field:
//!
//! 1. domain-separation tag: the 16 ASCII bytes `CATS-ENVELOPE-V1` (no length prefix);
//! 2. header version: u16, `1`;
//! 3. message identification: text;
//! 4. message type (`CD001C`, …): text;
//! 5. sender: party;
//! 6. recipient: party;
//! 7. correlation identification: optional text;
//! 8. MRN: optional text;
//! 9. preparation time: i64, milliseconds since 1970-01-01T00:00:00Z (sub-millisecond
//!    precision is dropped when sealing);
//! 10. SHA-256 of the body: 32 bytes;
//! 11. SHA-256 fingerprint of the signer certificate: 32 bytes;
//! 12. signer certificate: bytes (DER).
//!
//! where *text* is a u32 length followed by that many bytes of UTF-8 (1 to
//! [`MAX_TEXT_LEN`] bytes); *bytes* is a u32 length and the bytes (at most
//! [`MAX_CERT_LEN`]); *optional text* is one byte `0x00` (absent) or `0x01` followed by text;
//! *party* is one byte `0x00` (the hub) or `0x01` followed by the two ASCII capitals of the
//! country code. Any other tag byte, an invalid UTF-8 text, an empty text or a length past the
//! end makes the envelope malformed, so each header has exactly one encoding.
//!
//! Why ASN.1 DER signatures rather than fixed `r‖s`: they are what X.509 tooling verifies, so
//! an auditor can check a journalled envelope with `openssl dgst -sha256 -verify`.
//!
//! # Verification ([`Verifier::open`])
//!
//! In this order, each failure with its own [`EnvelopeError::code`]:
//!
//! 1. the frame and header parse (`envelope.malformed`), and the fingerprint field is the
//!    SHA-256 of the certificate carried;
//! 2. there is a signature (`envelope.unsigned`);
//! 3. the signer certificate chains to the CATS CA and is valid now (`envelope.signer-chain`);
//! 4. it is a message-signing certificate: the CATS EKU, digitalSignature, no TLS EKU, a P-256
//!    key, one `urn:cats:signer:` identity (`envelope.signer-usage`);
//! 5. its fingerprint is on the allow-list (`envelope.signer-revoked`);
//! 6. the signature over the header verifies (`envelope.signature`);
//! 7. the signer's party is the header's sender (`envelope.sender-mismatch`);
//! 8. the transport identity that delivered it is the sender, or the hub relaying it
//!    (`envelope.transport-mismatch`);
//! 9. when the verifier knows who it is, the recipient is itself
//!    (`envelope.recipient-mismatch`);
//! 10. the body hashes to the header's SHA-256 (`envelope.body-hash`);
//! 11. the preparation time is within the window of now, either way (`envelope.stale`).
//!
//! [`Verifier::open_redelivered`] is the same for envelopes re-delivered from the hub journal
//! after an outage: no freshness window, and the signer certificate judged at the preparation
//! time.
//!
//! Steps 3 and 4 run once per signer certificate: the result is cached by fingerprint, so a
//! steady stream costs one ECDSA verification and two SHA-256 per message.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use message_catalog::ids::CountryCode;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::identity::{
    Fingerprint, IdentityError, PeerIdentity, SignerIdentity, TrustStore, fingerprint,
};
use crate::pem::{PemError, load_certs, load_private_key};
use crate::pki::CATS_MESSAGE_SIGNING_OID_DER;

/// The frame magic.
pub const MAGIC: &[u8; 4] = b"CATS";
/// The frame version this code writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// The domain-separation tag that opens the signed header.
pub const DOMAIN_TAG: &[u8; 16] = b"CATS-ENVELOPE-V1";
/// The header version this code writes and reads.
pub const HEADER_VERSION: u16 = 1;
/// Longest text field, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Longest signer certificate, in bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Longest signature, in bytes (an ASN.1 P-256 signature is at most 72).
pub const MAX_SIGNATURE_LEN: usize = 128;

/// The header fields the sender chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeaderFields {
    /// Message identification; retries keep it.
    pub message_id: String,
    /// Message type (`CD001C`, …).
    pub message_type: String,
    /// Who sends: the hub or a country.
    pub sender: PeerIdentity,
    /// Who it is for.
    pub recipient: PeerIdentity,
    /// The message this one answers, if any.
    pub correlation_id: Option<String>,
    /// The movement reference number, when there is one.
    pub mrn: Option<String>,
    /// Preparation time (kept to the millisecond).
    pub prepared_at: DateTime<Utc>,
}

/// A parsed header: the sender's fields and what the signer added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader<'a> {
    /// Header version (1).
    pub version: u16,
    /// The sender's fields.
    pub fields: EnvelopeHeaderFields,
    /// SHA-256 of the body, as claimed by the header.
    pub body_sha256: [u8; 32],
    /// SHA-256 of the signer certificate, as claimed by the header.
    pub signer_fingerprint: Fingerprint,
    /// The signer certificate, DER.
    pub signer_cert: &'a [u8],
    /// The signature (empty when unsigned).
    pub signature: &'a [u8],
}

/// An envelope read from the wire, not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEnvelope<'a> {
    /// The header.
    pub header: EnvelopeHeader<'a>,
    /// The header bytes the signature covers.
    pub signed_bytes: &'a [u8],
    /// The body, exactly as received.
    pub body: &'a [u8],
}

/// A verified envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The header (authentic: its signature verified).
    pub header: EnvelopeHeader<'a>,
    /// Who signed it.
    pub signer: SignerIdentity,
    /// The body, whose hash matched the header.
    pub body: &'a [u8],
}

/// Reading envelopes without verifying them.
#[derive(Debug, Clone, Copy)]
pub struct Envelope;

impl Envelope {
    /// Parses the frame and header. Verifies nothing; borrows the body.
    pub fn parse(wire: &[u8]) -> Result<ParsedEnvelope<'_>, EnvelopeError> {
        let mut frame = Reader::new(wire);
        if frame.take(4)? != MAGIC {
            return Err(malformed("not a CATS envelope (bad magic)"));
        }
        if frame.u8()? != FRAME_VERSION {
            return Err(malformed("unsupported frame version"));
        }
        let header_len = frame.u32()? as usize;
        let signed_bytes = frame.take(header_len)?;
        let signature_len = usize::from(frame.u16()?);
        if signature_len > MAX_SIGNATURE_LEN {
            return Err(malformed("signature too long"));
        }
        let signature = frame.take(signature_len)?;
        let body_len = frame.u32()? as usize;
        let body = frame.take(body_len)?;
        frame.end()?;

        let mut r = Reader::new(signed_bytes);
        if r.take(DOMAIN_TAG.len())? != DOMAIN_TAG {
            return Err(malformed("header does not start with CATS-ENVELOPE-V1"));
        }
        let version = r.u16()?;
        if version != HEADER_VERSION {
            return Err(malformed("unsupported header version"));
        }
        let message_id = r.text()?;
        let message_type = r.text()?;
        let sender = r.party()?;
        let recipient = r.party()?;
        let correlation_id = r.optional_text()?;
        let mrn = r.optional_text()?;
        let prepared_at = DateTime::from_timestamp_millis(r.i64()?)
            .ok_or_else(|| malformed("preparation time out of range"))?;
        let body_sha256 = r.array32()?;
        let signer_fingerprint = Fingerprint(r.array32()?);
        let cert_len = r.u32()? as usize;
        if cert_len > MAX_CERT_LEN {
            return Err(malformed("signer certificate too long"));
        }
        let signer_cert = r.take(cert_len)?;
        r.end()?;
        Ok(ParsedEnvelope {
            header: EnvelopeHeader {
                version,
                fields: EnvelopeHeaderFields {
                    message_id,
                    message_type,
                    sender,
                    recipient,
                    correlation_id,
                    mrn,
                    prepared_at,
                },
                body_sha256,
                signer_fingerprint,
                signer_cert,
                signature,
            },
            signed_bytes,
            body,
        })
    }
}

/// Signs envelopes with one message-signing key.
pub struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
    identity: SignerIdentity,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("identity", &self.identity)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads a signing certificate (first certificate of the PEM file) and its PKCS#8 key.
    pub fn load(cert_pem: &Path, key_pem: &Path) -> Result<Signer, SignerError> {
        let cert = load_certs(cert_pem)?
            .into_iter()
            .next()
            .ok_or(SignerError::NoCertificate)?;
        let key = match load_private_key(key_pem)? {
            PrivateKeyDer::Pkcs8(key) => key,
            _ => return Err(SignerError::NotPkcs8),
        };
        Signer::from_der(&cert, key.secret_pkcs8_der())
    }

    /// From a DER certificate and a PKCS#8 DER P-256 key.
    pub fn from_der(cert_der: &[u8], key_pkcs8_der: &[u8]) -> Result<Signer, SignerError> {
        let identity = SignerIdentity::from_cert_der(cert_der)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8_der, &rng)
            .map_err(|e| SignerError::KeyRejected(e.to_string()))?;
        let cert_key = public_key_of(cert_der).ok_or(SignerError::KeyDoesNotMatchCertificate)?;
        if cert_key != key.public_key().as_ref() {
            return Err(SignerError::KeyDoesNotMatchCertificate);
        }
        if cert_der.len() > MAX_CERT_LEN {
            return Err(SignerError::CertificateTooLong);
        }
        Ok(Signer {
            key,
            cert_der: cert_der.to_vec(),
            fingerprint: fingerprint(cert_der),
            identity,
            rng,
        })
    }

    /// Who this key signs as.
    pub fn identity(&self) -> SignerIdentity {
        self.identity
    }

    /// The signer certificate's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The signer certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Builds and signs an envelope around `body`. Refuses to sign for a sender that is not
    /// this key's party.
    pub fn seal(&self, fields: &EnvelopeHeaderFields, body: &[u8]) -> Result<Vec<u8>, SealError> {
        if fields.sender != self.identity.party() {
            return Err(SealError::SenderNotSigner {
                sender: fields.sender,
                signer: self.identity,
            });
        }
        let body_len = u32::try_from(body.len()).map_err(|_| SealError::BodyTooLarge)?;
        let header = encode_header(fields, body, &self.fingerprint, &self.cert_der)?;
        let signature = self
            .key
            .sign(&self.rng, &header)
            .map_err(|_| SealError::Signing)?;
        let signature = signature.as_ref();
        let header_len = u32::try_from(header.len()).map_err(|_| SealError::BodyTooLarge)?;
        let signature_len = u16::try_from(signature.len()).map_err(|_| SealError::Signing)?;
        let mut wire =
            Vec::with_capacity(4 + 1 + 4 + header.len() + 2 + signature.len() + 4 + body.len());
        wire.extend_from_slice(MAGIC);
        wire.push(FRAME_VERSION);
        wire.extend_from_slice(&header_len.to_be_bytes());
        wire.extend_from_slice(&header);
        wire.extend_from_slice(&signature_len.to_be_bytes());
        wire.extend_from_slice(signature);
        wire.extend_from_slice(&body_len.to_be_bytes());
        wire.extend_from_slice(body);
        Ok(wire)
    }
}

/// Builds the canonical header bytes (see the module documentation).
fn encode_header(
    fields: &EnvelopeHeaderFields,
    body: &[u8],
    signer_fingerprint: &Fingerprint,
    signer_cert: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(256 + signer_cert.len());
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(&HEADER_VERSION.to_be_bytes());
    put_text(&mut out, "message identification", &fields.message_id)?;
    put_text(&mut out, "message type", &fields.message_type)?;
    put_party(&mut out, &fields.sender);
    put_party(&mut out, &fields.recipient);
    put_optional_text(
        &mut out,
        "correlation identification",
        fields.correlation_id.as_deref(),
    )?;
    put_optional_text(&mut out, "MRN", fields.mrn.as_deref())?;
    out.extend_from_slice(&fields.prepared_at.timestamp_millis().to_be_bytes());
    out.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    out.extend_from_slice(signer_fingerprint.as_bytes());
    let cert_len = u32::try_from(signer_cert.len()).map_err(|_| SealError::BodyTooLarge)?;
    out.extend_from_slice(&cert_len.to_be_bytes());
    out.extend_from_slice(signer_cert);
    Ok(out)
}

fn put_text(out: &mut Vec<u8>, field: &'static str, text: &str) -> Result<(), SealError> {
    if text.is_empty() || text.len() > MAX_TEXT_LEN {
        return Err(SealError::BadField { field });
    }
    // MAX_TEXT_LEN fits in a u32.
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_optional_text(
    out: &mut Vec<u8>,
    field: &'static str,
    text: Option<&str>,
) -> Result<(), SealError> {
    match text {
        None => {
            out.push(0);
            Ok(())
        }
        Some(text) => {
            out.push(1);
            put_text(out, field, text)
        }
    }
}

fn put_party(out: &mut Vec<u8>, party: &PeerIdentity) {
    match party {
        PeerIdentity::Hub => out.push(0),
        PeerIdentity::Node(country) => {
            out.push(1);
            out.extend_from_slice(country.as_str().as_bytes());
        }
    }
}

/// Which time the signer certificate and the preparation time are judged against.
#[derive(Debug, Clone, Copy)]
enum Freshness {
    /// Live traffic: the certificate valid now, the preparation time within the window.
    Now(DateTime<Utc>),
    /// Journal re-delivery: the certificate valid when the envelope was prepared.
    AsPrepared,
}

/// What the verifier remembers about a signer certificate it has checked.
#[derive(Debug, Clone)]
struct CheckedSigner {
    identity: SignerIdentity,
    public_key: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

/// Most signer certificates remembered; the cache starts over when full.
const SIGNER_CACHE_CAPACITY: usize = 4096;

/// Verifies envelopes against a [`TrustStore`]. Share one per process (it is `Sync`): it
/// caches the signer certificates it has checked.
#[derive(Debug)]
pub struct Verifier {
    trust: RwLock<TrustStore>,
    window: TimeDelta,
    local: Option<PeerIdentity>,
    checked: Mutex<HashMap<Fingerprint, CheckedSigner>>,
}

impl Verifier {
    /// A verifier accepting preparation times within `window` of now, either way.
    pub fn new(trust: TrustStore, window: std::time::Duration) -> Verifier {
        Verifier {
            trust: RwLock::new(trust),
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX),
            local: None,
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// Also require that every envelope is addressed to `me` (a node's verifier; the hub,
    /// which routes, leaves this unset).
    pub fn with_local_identity(mut self, me: PeerIdentity) -> Verifier {
        self.local = Some(me);
        self
    }

    /// Replaces the trust store (a reloaded allow-list or CA) and forgets every checked
    /// signer.
    pub fn set_trust_store(&self, trust: TrustStore) {
        match self.trust.write() {
            Ok(mut guard) => *guard = trust,
            Err(poisoned) => *poisoned.into_inner() = trust,
        }
        self.cache().clear();
    }

    /// The current trust store.
    pub fn trust_store(&self) -> TrustStore {
        match self.trust.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Verifies an envelope delivered by `transport` (the TLS or broker identity of the
    /// connection it came on) at `now`. See the module documentation for the checks.
    pub fn open<'a>(
        &self,
        wire: &'a [u8],
        transport: &PeerIdentity,
        now: DateTime<Utc>,
    ) -> Result<Opened<'a>, EnvelopeError> {
        self.open_checked(wire, transport, Freshness::Now(now))
    }

    /// Verifies an envelope re-delivered from the hub journal (a node catching up after an
    /// outage, a reconciliation): every check of [`Verifier::open`] except the freshness
    /// window, and the signer certificate must have been valid at the envelope's preparation
    /// time rather than now. The allow-list is still today's: a revoked signer stays revoked.
    /// Replays are the inbox's business (deduplication by sender and message id).
    pub fn open_redelivered<'a>(
        &self,
        wire: &'a [u8],
        transport: &PeerIdentity,
    ) -> Result<Opened<'a>, EnvelopeError> {
        self.open_checked(wire, transport, Freshness::AsPrepared)
    }

    fn open_checked<'a>(
        &self,
        wire: &'a [u8],
        transport: &PeerIdentity,
        freshness: Freshness,
    ) -> Result<Opened<'a>, EnvelopeError> {
        let ParsedEnvelope {
            header,
            signed_bytes,
            body,
        } = Envelope::parse(wire)?;
        if header.signature.is_empty() {
            return Err(EnvelopeError::Unsigned);
        }
        let cert_fp = fingerprint(header.signer_cert);
        if cert_fp != header.signer_fingerprint {
            return Err(malformed(
                "signer fingerprint is not the SHA-256 of the signer certificate",
            ));
        }
        let trust = self.trust_store();
        let at = match freshness {
            Freshness::Now(now) => now,
            Freshness::AsPrepared => header.fields.prepared_at,
        };
        let signer = self.checked_signer(&trust, header.signer_cert, cert_fp, at)?;
        if !trust.is_allowed(&signer.identity, &cert_fp) {
            return Err(EnvelopeError::SignerRevoked {
                signer: signer.identity,
                fingerprint: cert_fp,
            });
        }
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &signer.public_key)
            .verify(signed_bytes, header.signature)
            .map_err(|_| EnvelopeError::Signature)?;
        let fields = &header.fields;
        if signer.identity.party() != fields.sender {
            return Err(EnvelopeError::SenderMismatch {
                signer: signer.identity,
                sender: fields.sender,
            });
        }
        if *transport != fields.sender && *transport != PeerIdentity::Hub {
            return Err(EnvelopeError::TransportMismatch {
                sender: fields.sender,
                transport: *transport,
            });
        }
        if let Some(me) = self.local
            && fields.recipient != me
        {
            return Err(EnvelopeError::RecipientMismatch {
                recipient: fields.recipient,
                local: me,
            });
        }
        if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != header.body_sha256 {
            return Err(EnvelopeError::BodyHash);
        }
        if let Freshness::Now(now) = freshness
            && (now - fields.prepared_at).abs() > self.window
        {
            return Err(EnvelopeError::Stale {
                prepared_at: fields.prepared_at,
                now,
            });
        }
        Ok(Opened {
            signer: signer.identity,
            header,
            body,
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, CheckedSigner>> {
        match self.checked.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The signer certificate's identity and key, checked once per certificate (chain, usage)
    /// and then from the cache (validity period only).
    fn checked_signer(
        &self,
        trust: &TrustStore,
        cert: &[u8],
        cert_fp: Fingerprint,
        now: DateTime<Utc>,
    ) -> Result<CheckedSigner, EnvelopeError> {
        let cached = self.cache().get(&cert_fp).cloned();
        let signer = match cached {
            Some(signer) => signer,
            None => {
                let signer = check_signer(trust, cert, now)?;
                let mut cache = self.cache();
                if cache.len() >= SIGNER_CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(cert_fp, signer.clone());
                signer
            }
        };
        let t = now.timestamp();
        if t < signer.not_before || t > signer.not_after {
            return Err(EnvelopeError::SignerChain(
                "signer certificate expired or not yet valid".to_owned(),
            ));
        }
        Ok(signer)
    }
}

/// The full check of a signer certificate: chain to the CATS CA at `now`, the signing usage,
/// the key type and the identity.
#[allow(deprecated)] // webpki still returns the old `RequiredEkuNotFound` in places.
fn check_signer(
    trust: &TrustStore,
    cert: &[u8],
    now: DateTime<Utc>,
) -> Result<CheckedSigner, EnvelopeError> {
    let der = CertificateDer::from(cert);
    let end_entity = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| EnvelopeError::SignerChain(format!("unparsable certificate: {e:?}")))?;
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    end_entity
        .verify_for_usage(
            &[
                webpki::ring::ECDSA_P256_SHA256,
                webpki::ring::ECDSA_P256_SHA384,
                webpki::ring::ECDSA_P384_SHA256,
                webpki::ring::ECDSA_P384_SHA384,
            ],
            trust.anchors(),
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
            webpki::KeyUsage::required(CATS_MESSAGE_SIGNING_OID_DER),
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
                EnvelopeError::SignerUsage("no catsMessageSigning extended key usage".to_owned())
            }
            other => EnvelopeError::SignerChain(format!("{other:?}")),
        })?;

    let usage = |why: &str| EnvelopeError::SignerUsage(why.to_owned());
    let (_, x509) = x509_parser::parse_x509_certificate(cert)
        .map_err(|_| usage("certificate extensions unreadable"))?;
    let digital_signature = x509
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|ku| ku.value.digital_signature());
    if !digital_signature {
        return Err(usage("key usage lacks digitalSignature"));
    }
    let tls = x509
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.server_auth || eku.value.client_auth || eku.value.any);
    if tls {
        return Err(usage(
            "a signing certificate must not carry TLS or any usage",
        ));
    }
    let public_key = public_key_of(cert).ok_or_else(|| usage("not an ECDSA P-256 key"))?;
    let identity = SignerIdentity::from_cert_der(cert)
        .map_err(|e| EnvelopeError::SignerUsage(format!("no signer identity: {e}")))?;
    Ok(CheckedSigner {
        identity,
        public_key,
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
    })
}

/// The uncompressed P-256 public key of a certificate, or `None` if it has another key type.
fn public_key_of(cert: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    let spki = &x509.tbs_certificate.subject_pki;
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return None;
    }
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    if curve != OID_EC_P256 {
        return None;
    }
    let key = spki.subject_public_key.data.to_vec();
    (key.len() == 65 && key.first() == Some(&4)).then_some(key)
}

/// An envelope was refused. Every variant has a stable [`code`](EnvelopeError::code) that
/// crosses the wire (NACK reasons, dead-letter headers); the messages are for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes are not a well-formed envelope.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// No signature.
    #[error("the envelope is not signed")]
    Unsigned,
    /// The signer certificate does not chain to the CATS CA, or is expired or not yet valid.
    #[error("signer certificate not trusted: {0}")]
    SignerChain(String),
    /// The signer certificate is not a message-signing certificate.
    #[error("signer certificate is not for message signing: {0}")]
    SignerUsage(String),
    /// The signer certificate is not (or no longer) on the allow-list.
    #[error("signer certificate {fingerprint} of {signer} is revoked (not on the allow-list)")]
    SignerRevoked {
        /// Who it names.
        signer: SignerIdentity,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The signer signs for another party than the header's sender.
    #[error("signed by {signer} but the sender is {sender}")]
    SenderMismatch {
        /// The signer.
        signer: SignerIdentity,
        /// The header's sender.
        sender: PeerIdentity,
    },
    /// The connection it came on belongs to someone else than the sender.
    #[error("sender {sender} but delivered by {transport}")]
    TransportMismatch {
        /// The header's sender.
        sender: PeerIdentity,
        /// Who delivered it.
        transport: PeerIdentity,
    },
    /// Addressed to someone else.
    #[error("addressed to {recipient}, this is {local}")]
    RecipientMismatch {
        /// The header's recipient.
        recipient: PeerIdentity,
        /// Who is verifying.
        local: PeerIdentity,
    },
    /// The body does not hash to the header's SHA-256.
    #[error("the body does not match the SHA-256 in the header")]
    BodyHash,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// The preparation time is outside the accepted window.
    #[error("prepared at {prepared_at}, too far from now ({now})")]
    Stale {
        /// The header's preparation time.
        prepared_at: DateTime<Utc>,
        /// The verifier's now.
        now: DateTime<Utc>,
    },
}

impl EnvelopeError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Malformed(_) => "envelope.malformed",
            EnvelopeError::Unsigned => "envelope.unsigned",
            EnvelopeError::SignerChain(_) => "envelope.signer-chain",
            EnvelopeError::SignerUsage(_) => "envelope.signer-usage",
            EnvelopeError::SignerRevoked { .. } => "envelope.signer-revoked",
            EnvelopeError::SenderMismatch { .. } => "envelope.sender-mismatch",
            EnvelopeError::TransportMismatch { .. } => "envelope.transport-mismatch",
            EnvelopeError::RecipientMismatch { .. } => "envelope.recipient-mismatch",
            EnvelopeError::BodyHash => "envelope.body-hash",
            EnvelopeError::Signature => "envelope.signature",
            EnvelopeError::Stale { .. } => "envelope.stale",
        }
    }
}

/// Loading a [`Signer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// A PEM file could not be read.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The certificate file holds no certificate.
    #[error("no signer certificate")]
    NoCertificate,
    /// The key is not PKCS#8.
    #[error("the signing key must be PKCS#8 (`BEGIN PRIVATE KEY`)")]
    NotPkcs8,
    /// ring refused the key (not P-256, corrupt).
    #[error("signing key rejected: {0}")]
    KeyRejected(String),
    /// The key is not the certificate's.
    #[error("the signing key does not belong to the certificate")]
    KeyDoesNotMatchCertificate,
    /// The certificate names no signer.
    #[error("not a signing certificate: {0}")]
    Identity(#[from] IdentityError),
    /// The certificate is longer than an envelope can carry.
    #[error("signer certificate longer than {MAX_CERT_LEN} bytes")]
    CertificateTooLong,
}

/// Sealing an envelope failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A text field is empty or longer than [`MAX_TEXT_LEN`].
    #[error("{field} must be 1 to {MAX_TEXT_LEN} bytes")]
    BadField {
        /// The field.
        field: &'static str,
    },
    /// This key may not sign for that sender.
    #[error("{signer} cannot sign for sender {sender}")]
    SenderNotSigner {
        /// The header's sender.
        sender: PeerIdentity,
        /// This key.
        signer: SignerIdentity,
    },
    /// The body is 4 GiB or more.
    #[error("body too large for an envelope")]
    BodyTooLarge,
    /// ring failed to sign.
    #[error("signing failed")]
    Signing,
}

fn malformed(why: &str) -> EnvelopeError {
    EnvelopeError::Malformed(why.to_owned())
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if n > self.rest.len() {
            return Err(malformed("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, EnvelopeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn array32(&mut self) -> Result<[u8; 32], EnvelopeError> {
        self.array()
    }

    fn text(&mut self) -> Result<String, EnvelopeError> {
        let len = self.u32()? as usize;
        if len == 0 || len > MAX_TEXT_LEN {
            return Err(malformed("text field empty or too long"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| malformed("text field is not UTF-8"))
    }

    fn optional_text(&mut self) -> Result<Option<String>, EnvelopeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.text().map(Some),
            _ => Err(malformed("bad optional-field tag")),
        }
    }

    fn party(&mut self) -> Result<PeerIdentity, EnvelopeError> {
        match self.u8()? {
            0 => Ok(PeerIdentity::Hub),
            1 => {
                let code = self.take(2)?;
                std::str::from_utf8(code)
                    .ok()
                    .and_then(|code| CountryCode::parse(code).ok())
                    .map(PeerIdentity::Node)
                    .ok_or_else(|| malformed("bad country code"))
            }
            _ => Err(malformed("bad party tag")),
        }
    }

    fn end(&self) -> Result<(), EnvelopeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevPki;

    fn fields(sender: PeerIdentity, recipient: PeerIdentity) -> EnvelopeHeaderFields {
        EnvelopeHeaderFields {
            message_id: "KZ-0001".to_owned(),
            message_type: "CD001C".to_owned(),
            sender,
            recipient,
            correlation_id: None,
            mrn: Some("26KZ0001234567890A".to_owned()),
            prepared_at: DateTime::from_timestamp_millis(1_790_000_000_123).unwrap_or_default(),
        }
    }

    #[test]
    fn seal_then_parse_round_trips_the_header() {
        let pki = DevPki::generate_ca("test CA").expect("CA");
        let cert = pki
            .issue_signer(SignerIdentity::Country(CountryCode::KZ))
            .expect("signer");
        let signer = Signer::from_der(&cert.cert_der, &cert.key_pkcs8_der).expect("signer");
        let f = fields(
            PeerIdentity::Node(CountryCode::KZ),
            PeerIdentity::Node(CountryCode::AZ),
        );
        let wire = signer.seal(&f, b"<CD001C/>").expect("seal");
        let parsed = Envelope::parse(&wire).expect("parse");
        assert_eq!(parsed.header.fields, f);
        assert_eq!(parsed.body, b"<CD001C/>");
        assert_eq!(parsed.header.signer_cert, cert.cert_der.as_ref());
        assert_eq!(parsed.header.signer_fingerprint, cert.fingerprint());
        assert!(parsed.signed_bytes.starts_with(DOMAIN_TAG));
    }

    #[test]
    fn a_signer_cannot_seal_for_another_party() {
        let pki = DevPki::generate_ca("test CA").expect("CA");
        let cert = pki
            .issue_signer(SignerIdentity::Country(CountryCode::KZ))
            .expect("signer");
        let signer = Signer::from_der(&cert.cert_der, &cert.key_pkcs8_der).expect("signer");
        let f = fields(PeerIdentity::Node(CountryCode::GE), PeerIdentity::Hub);
        assert!(matches!(
            signer.seal(&f, b"x"),
            Err(SealError::SenderNotSigner { .. })
        ));
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let pki = DevPki::generate_ca("test CA").expect("CA");
        let a = pki
            .issue_signer(SignerIdentity::Country(CountryCode::KZ))
            .expect("signer");
        let b = pki
            .issue_signer(SignerIdentity::Country(CountryCode::KZ))
            .expect("signer");
        assert!(matches!(
            Signer::from_der(&a.cert_der, &b.key_pkcs8_der),
            Err(SignerError::KeyDoesNotMatchCertificate)
        ));
    }

    #[test]
    fn signer_and_verifier_can_be_shared_across_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Signer>();
        shared::<Verifier>();
        shared::<crate::TrustStore>();
    }

    #[test]
    fn empty_and_short_inputs_are_malformed() {
        for wire in [&b""[..], b"CATS", b"CATS\x01", b"XXXX\x01\0\0\0\0"] {
            assert_eq!(
                Envelope::parse(wire).map(|_| ()).map_err(|e| e.code()),
                Err("envelope.malformed")
            );
        }
    }
}
