//! Who a certificate says its holder is, and whether we still accept that certificate.
//!
//! A CATS certificate names its holder twice: a SAN URI (`urn:cats:node:KZ`, `urn:cats:hub`,
//! `urn:cats:signer:KZ`, `urn:cats:signer:hub`) and the subject CN (`node-kz`, `hub`,
//! `signer-kz`, `signer-hub`). Both must agree or the certificate names nobody. A certificate
//! carries exactly one `urn:cats:` URI, so a TLS certificate can never pass for a signing
//! certificate or the other way round.
//!
//! The [`TrustStore`] holds the CATS CA certificate(s) (the trust anchors) and the allow-list of
//! certificate fingerprints per identity. Revoking a certificate means removing its fingerprint
//! from the allow-list and reloading: see `certs/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use message_catalog::ids::CountryCode;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use crate::pem::{PemError, load_certs};

/// The URN prefix every CATS identity starts with.
const URN_PREFIX: &str = "urn:cats:";

/// Who is at the other end of a TLS connection, or who a message is from or to: the hub or a
/// country's node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PeerIdentity {
    /// The CATS hub.
    Hub,
    /// The node of one country.
    Node(CountryCode),
}

impl PeerIdentity {
    /// Reads the identity from a TLS certificate: SAN URI `urn:cats:hub` with CN `hub`, or
    /// `urn:cats:node:KZ` with CN `node-kz`. Does not check the chain: that is the TLS
    /// verifier's job (or [`crate::Verifier`]'s for signers).
    pub fn from_cert_der(der: &[u8]) -> Result<PeerIdentity, IdentityError> {
        let named = CertNames::read(der)?;
        let identity = match named.urn_kind()? {
            UrnKind::Hub => PeerIdentity::Hub,
            UrnKind::Node(country) => PeerIdentity::Node(country),
            UrnKind::Signer(_) => {
                return Err(IdentityError::WrongKind {
                    urn: named.urn,
                    expected: "urn:cats:hub or urn:cats:node:XX",
                });
            }
        };
        named.check_cn(&identity.common_name())?;
        Ok(identity)
    }

    /// The URN in the certificate's SAN: `urn:cats:hub`, `urn:cats:node:KZ`.
    pub fn urn(&self) -> String {
        match self {
            PeerIdentity::Hub => "urn:cats:hub".to_owned(),
            PeerIdentity::Node(country) => format!("urn:cats:node:{country}"),
        }
    }

    /// The subject common name: `hub`, `node-kz`.
    pub fn common_name(&self) -> String {
        match self {
            PeerIdentity::Hub => "hub".to_owned(),
            PeerIdentity::Node(country) => format!("node-{}", country.as_str().to_lowercase()),
        }
    }

    /// The country, if this is a node.
    pub fn country(&self) -> Option<CountryCode> {
        match self {
            PeerIdentity::Hub => None,
            PeerIdentity::Node(country) => Some(*country),
        }
    }
}

/// `hub` or the country code (`KZ`): the short form used in logs, configuration and the
/// envelope.
impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Hub => f.write_str("hub"),
            PeerIdentity::Node(country) => f.write_str(country.as_str()),
        }
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Hub => f.write_str("Hub"),
            PeerIdentity::Node(country) => write!(f, "Node({country})"),
        }
    }
}

/// Parses `hub` or a two-letter country code.
impl FromStr for PeerIdentity {
    type Err = IdentityError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "hub" {
            return Ok(PeerIdentity::Hub);
        }
        CountryCode::parse(text)
            .map(PeerIdentity::Node)
            .map_err(|_| IdentityError::BadParty(text.to_owned()))
    }
}

impl From<PeerIdentity> for String {
    fn from(identity: PeerIdentity) -> String {
        identity.to_string()
    }
}

impl TryFrom<String> for PeerIdentity {
    type Error = IdentityError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Who signed a message: the hub's signing key or a country's signing key. Read from a
/// message-signing certificate (`urn:cats:signer:KZ`, CN `signer-kz`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignerIdentity {
    /// The hub's signing key (`urn:cats:signer:hub`).
    Hub,
    /// A country's signing key (`urn:cats:signer:KZ`).
    Country(CountryCode),
}

impl SignerIdentity {
    /// Reads the identity from a message-signing certificate. Does not check the chain or the
    /// key usage: [`crate::Verifier`] does.
    pub fn from_cert_der(der: &[u8]) -> Result<SignerIdentity, IdentityError> {
        let named = CertNames::read(der)?;
        let identity = match named.urn_kind()? {
            UrnKind::Signer(identity) => identity,
            UrnKind::Hub | UrnKind::Node(_) => {
                return Err(IdentityError::WrongKind {
                    urn: named.urn,
                    expected: "urn:cats:signer:XX or urn:cats:signer:hub",
                });
            }
        };
        named.check_cn(&identity.common_name())?;
        Ok(identity)
    }

    /// The URN in the certificate's SAN: `urn:cats:signer:KZ`, `urn:cats:signer:hub`.
    pub fn urn(&self) -> String {
        match self {
            SignerIdentity::Hub => "urn:cats:signer:hub".to_owned(),
            SignerIdentity::Country(country) => format!("urn:cats:signer:{country}"),
        }
    }

    /// The subject common name: `signer-kz`, `signer-hub`.
    pub fn common_name(&self) -> String {
        match self {
            SignerIdentity::Hub => "signer-hub".to_owned(),
            SignerIdentity::Country(country) => {
                format!("signer-{}", country.as_str().to_lowercase())
            }
        }
    }

    /// The party this key may sign for: the hub signer for the hub, a country's signer for
    /// that country's node.
    pub fn party(&self) -> PeerIdentity {
        match self {
            SignerIdentity::Hub => PeerIdentity::Hub,
            SignerIdentity::Country(country) => PeerIdentity::Node(*country),
        }
    }
}

impl fmt::Display for SignerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerIdentity::Hub => f.write_str("signer-hub"),
            SignerIdentity::Country(country) => write!(f, "signer-{country}"),
        }
    }
}

impl fmt::Debug for SignerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignerIdentity::Hub => f.write_str("SignerHub"),
            SignerIdentity::Country(country) => write!(f, "Signer({country})"),
        }
    }
}

/// Anything the allow-list has an entry for: peers and signers, keyed by their URN.
pub trait AllowListed {
    /// The allow-list key: the identity's URN.
    fn allow_list_key(&self) -> String;
}

impl AllowListed for PeerIdentity {
    fn allow_list_key(&self) -> String {
        self.urn()
    }
}

impl AllowListed for SignerIdentity {
    fn allow_list_key(&self) -> String {
        self.urn()
    }
}

/// The SHA-256 of a certificate's DER bytes. Shown and stored as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    Fingerprint(bytes)
}

impl Fingerprint {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Parses 64 hex digits, upper or lower case, optionally separated by colons (the form
/// `openssl x509 -fingerprint -sha256` prints).
impl FromStr for Fingerprint {
    type Err = IdentityError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits: String = text.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes)
            .map_err(|_| IdentityError::BadFingerprint(text.to_owned()))?;
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The allow-list: per identity URN, the fingerprints of the certificates currently accepted.
///
/// File format (`fingerprints.json`):
///
/// ```json
/// {
///   "version": 1,
///   "identities": {
///     "urn:cats:hub": ["3f1c…"],
///     "urn:cats:node:KZ": ["a9d0…"],
///     "urn:cats:signer:KZ": ["77e2…", "0b4a…"]
///   }
/// }
/// ```
///
/// During a rollover an identity lists the old and the new certificate; revoking one is
/// removing its fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    /// Format version, 1.
    pub version: u32,
    /// Identity URN → accepted certificate fingerprints.
    pub identities: BTreeMap<String, BTreeSet<Fingerprint>>,
}

impl AllowList {
    /// An empty allow-list (accepts nobody).
    pub fn new() -> AllowList {
        AllowList {
            version: 1,
            identities: BTreeMap::new(),
        }
    }

    /// Reads a `fingerprints.json`.
    pub fn load(path: &Path) -> Result<AllowList, TrustStoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustStoreError::Io {
            path: path.to_owned(),
            source,
        })?;
        let list: AllowList =
            serde_json::from_str(&text).map_err(|source| TrustStoreError::AllowList {
                path: path.to_owned(),
                source,
            })?;
        if list.version != 1 {
            return Err(TrustStoreError::AllowListVersion(list.version));
        }
        Ok(list)
    }

    /// Writes the list as pretty JSON.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// Accepts `fingerprint` for `identity` (in addition to what is already accepted).
    pub fn allow(&mut self, identity: &impl AllowListed, fingerprint: Fingerprint) {
        self.identities
            .entry(identity.allow_list_key())
            .or_default()
            .insert(fingerprint);
    }

    /// Stops accepting `fingerprint` for `identity`. Returns whether it was there.
    pub fn revoke(&mut self, identity: &impl AllowListed, fingerprint: &Fingerprint) -> bool {
        self.identities
            .get_mut(&identity.allow_list_key())
            .is_some_and(|set| set.remove(fingerprint))
    }

    /// Whether `fingerprint` is accepted for `identity`.
    pub fn is_allowed(&self, identity: &impl AllowListed, fingerprint: &Fingerprint) -> bool {
        self.identities
            .get(&identity.allow_list_key())
            .is_some_and(|set| set.contains(fingerprint))
    }
}

/// The CATS trust anchors and the allow-list: what a hub, a node or a verifier trusts.
///
/// Cheap to clone (shared inside). Without an allow-list every certificate that chains to the
/// CA is accepted; with one, only the listed fingerprints are.
#[derive(Clone)]
pub struct TrustStore {
    inner: Arc<TrustStoreInner>,
}

struct TrustStoreInner {
    ca_certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    allow_list: Option<AllowList>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field(
                "ca_fingerprints",
                &self
                    .inner
                    .ca_certs
                    .iter()
                    .map(|c| fingerprint(c))
                    .collect::<Vec<_>>(),
            )
            .field("allow_list", &self.inner.allow_list)
            .finish()
    }
}

impl TrustStore {
    /// Loads the CA certificate(s) from a PEM file (several during a CA rollover) and, when
    /// given, the allow-list (`fingerprints.json`).
    pub fn load(ca_pem: &Path, allow_list: Option<&Path>) -> Result<TrustStore, TrustStoreError> {
        let ca_certs = load_certs(ca_pem)?;
        let allow_list = allow_list.map(AllowList::load).transpose()?;
        TrustStore::from_parts(ca_certs, allow_list)
    }

    /// Builds a store from CA certificates already in memory.
    pub fn from_parts(
        ca_certs: Vec<CertificateDer<'static>>,
        allow_list: Option<AllowList>,
    ) -> Result<TrustStore, TrustStoreError> {
        if ca_certs.is_empty() {
            return Err(TrustStoreError::NoCa);
        }
        let anchors = ca_certs
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|e| TrustStoreError::BadCa(format!("{e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustStore {
            inner: Arc::new(TrustStoreInner {
                ca_certs,
                anchors,
                allow_list,
            }),
        })
    }

    /// The CA certificates, for a rustls `RootCertStore` or client-certificate verifier.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.inner.ca_certs
    }

    /// The CA certificates as webpki trust anchors.
    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.inner.anchors
    }

    /// The allow-list, if one was loaded.
    pub fn allow_list(&self) -> Option<&AllowList> {
        self.inner.allow_list.as_ref()
    }

    /// Whether `fingerprint` is accepted for `identity`: listed in the allow-list, or any
    /// certificate when there is no allow-list.
    pub fn is_allowed(&self, identity: &impl AllowListed, fingerprint: &Fingerprint) -> bool {
        match &self.inner.allow_list {
            None => true,
            Some(list) => list.is_allowed(identity, fingerprint),
        }
    }

    /// For a TLS peer whose chain the TLS layer has already verified against
    /// [`TrustStore::ca_certs`]: reads its identity and checks the allow-list.
    pub fn check_peer(&self, end_entity_der: &[u8]) -> Result<PeerIdentity, IdentityError> {
        let identity = PeerIdentity::from_cert_der(end_entity_der)?;
        let fp = fingerprint(end_entity_der);
        if !self.is_allowed(&identity, &fp) {
            return Err(IdentityError::NotAllowed {
                identity: identity.urn(),
                fingerprint: fp,
            });
        }
        Ok(identity)
    }
}

/// Reading an identity from a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not an X.509 certificate.
    #[error("not a parsable X.509 certificate: {0}")]
    BadCertificate(String),
    /// No `urn:cats:` URI in the subject alternative names.
    #[error("the certificate has no urn:cats: SAN URI")]
    NoUrn,
    /// More than one `urn:cats:` URI.
    #[error("the certificate has several urn:cats: SAN URIs: {0:?}")]
    SeveralUrns(Vec<String>),
    /// A `urn:cats:` URI that names nothing we know.
    #[error("unknown CATS URN {0:?}")]
    UnknownUrn(String),
    /// A URN of the wrong kind (a signer where a peer was expected, or the reverse).
    #[error("certificate names {urn:?}, expected {expected}")]
    WrongKind {
        /// The URN found.
        urn: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The CN disagrees with the URN.
    #[error("certificate CN {found:?} does not agree with its URN (expected CN {expected:?})")]
    CommonNameMismatch {
        /// The CN found (empty when there is none).
        found: String,
        /// The CN the URN requires.
        expected: String,
    },
    /// The certificate is not (or no longer) on the allow-list.
    #[error("certificate {fingerprint} of {identity} is not on the allow-list")]
    NotAllowed {
        /// The identity URN.
        identity: String,
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// Not `hub` nor a country code.
    #[error("{0:?} is neither `hub` nor a country code")]
    BadParty(String),
    /// Not 64 hex digits.
    #[error("{0:?} is not a SHA-256 fingerprint (64 hex digits)")]
    BadFingerprint(String),
}

/// Loading the trust store failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// Reading a PEM file failed.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// Reading the allow-list failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The allow-list is not valid JSON of the expected shape.
    #[error("allow-list {path} is malformed: {source}")]
    AllowList {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// An allow-list format version we do not know.
    #[error("allow-list version {0} is not supported (expected 1)")]
    AllowListVersion(u32),
    /// The CA file holds no certificate.
    #[error("no CA certificate given")]
    NoCa,
    /// A CA certificate webpki cannot use as a trust anchor.
    #[error("CA certificate unusable as a trust anchor: {0}")]
    BadCa(String),
}

enum UrnKind {
    Hub,
    Node(CountryCode),
    Signer(SignerIdentity),
}

/// The names read from a certificate: its one CATS URN and its CN.
struct CertNames {
    urn: String,
    common_name: Option<String>,
}

impl CertNames {
    fn read(der: &[u8]) -> Result<CertNames, IdentityError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(IdentityError::BadCertificate(
                "trailing bytes after the certificate".to_owned(),
            ));
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let mut urns: Vec<String> = san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::URI(uri) if uri.starts_with(URN_PREFIX) => {
                            Some((*uri).to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let urn = match urns.len() {
            0 => return Err(IdentityError::NoUrn),
            1 => urns.pop().unwrap_or_default(),
            _ => return Err(IdentityError::SeveralUrns(urns)),
        };
        let mut cns = cert.subject().iter_common_name();
        let common_name = match (cns.next(), cns.next()) {
            (Some(cn), None) => cn.as_str().ok().map(str::to_owned),
            _ => None,
        };
        Ok(CertNames { urn, common_name })
    }

    fn urn_kind(&self) -> Result<UrnKind, IdentityError> {
        let unknown = || IdentityError::UnknownUrn(self.urn.clone());
        let rest = self.urn.strip_prefix(URN_PREFIX).ok_or_else(unknown)?;
        if rest == "hub" {
            return Ok(UrnKind::Hub);
        }
        if let Some(code) = rest.strip_prefix("node:") {
            return CountryCode::parse(code)
                .map(UrnKind::Node)
                .map_err(|_| unknown());
        }
        if let Some(code) = rest.strip_prefix("signer:") {
            if code == "hub" {
                return Ok(UrnKind::Signer(SignerIdentity::Hub));
            }
            return CountryCode::parse(code)
                .map(|c| UrnKind::Signer(SignerIdentity::Country(c)))
                .map_err(|_| unknown());
        }
        Err(unknown())
    }

    fn check_cn(&self, expected: &str) -> Result<(), IdentityError> {
        if self.common_name.as_deref() == Some(expected) {
            Ok(())
        } else {
            Err(IdentityError::CommonNameMismatch {
                found: self.common_name.clone().unwrap_or_default(),
                expected: expected.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_identity_text_round_trips() {
        for text in ["hub", "KZ", "GE"] {
            let parsed: PeerIdentity = text.parse().expect("valid party");
            assert_eq!(parsed.to_string(), text);
        }
        assert!("kz".parse::<PeerIdentity>().is_err());
        assert!("HUB".parse::<PeerIdentity>().is_err());
    }

    #[test]
    fn names_follow_the_convention() {
        let kz = PeerIdentity::Node(CountryCode::KZ);
        assert_eq!(kz.urn(), "urn:cats:node:KZ");
        assert_eq!(kz.common_name(), "node-kz");
        let signer = SignerIdentity::Country(CountryCode::AZ);
        assert_eq!(signer.urn(), "urn:cats:signer:AZ");
        assert_eq!(signer.common_name(), "signer-az");
        assert_eq!(SignerIdentity::Hub.urn(), "urn:cats:signer:hub");
        assert_eq!(signer.party(), PeerIdentity::Node(CountryCode::AZ));
    }

    #[test]
    fn fingerprint_parses_hex_with_or_without_colons() {
        let fp = fingerprint(b"anything");
        let hex = fp.to_hex();
        assert_eq!(hex.parse::<Fingerprint>().ok(), Some(fp));
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().ok(), Some(fp));
        assert!("abc".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn allow_list_allows_and_revokes() {
        let mut list = AllowList::new();
        let kz = PeerIdentity::Node(CountryCode::KZ);
        let fp = fingerprint(b"cert");
        assert!(!list.is_allowed(&kz, &fp));
        list.allow(&kz, fp);
        assert!(list.is_allowed(&kz, &fp));
        assert!(!list.is_allowed(&PeerIdentity::Node(CountryCode::AZ), &fp));
        assert!(list.revoke(&kz, &fp));
        assert!(!list.is_allowed(&kz, &fp));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            PeerIdentity::from_cert_der(b"not a cert"),
            Err(IdentityError::BadCertificate(_))
        ));
    }
}
