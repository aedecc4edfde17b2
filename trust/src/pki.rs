//! The development PKI: one CATS root CA and every certificate the pilot needs, made with
//! rcgen (ECDSA P-256).
//!
//! [`DevPki::init`] is what `cats certs init` runs. It writes into one directory:
//!
//! | file | what | names |
//! | --- | --- | --- |
//! | `ca.pem`, `ca.key.pem` | CATS root CA | CN `CATS Development Root CA` |
//! | `hub-server.pem` | hub TLS server | CN `hub`, URI `urn:cats:hub`, DNS `localhost`, `hub.cats.internal`, IP `127.0.0.1`, `::1`; EKU serverAuth |
//! | `hub-client.pem` | hub TLS client (to the broker, to nodes' APIs) | CN `hub`, URI `urn:cats:hub`; EKU clientAuth |
//! | `signer-hub.pem` | hub message signing | CN `signer-hub`, URI `urn:cats:signer:hub`; KU digitalSignature; EKU catsMessageSigning |
//! | `node-kz.pem` | KZ node TLS client, and server for its own APIs | CN `node-kz`, URI `urn:cats:node:KZ`, DNS `localhost`, IP `127.0.0.1`, `::1`; EKU clientAuth, serverAuth |
//! | `node-api-kz.pem` | KZ node's national API (HTTPS server) | CN `node-api-kz`, DNS `localhost`, IP `127.0.0.1`, `::1`; EKU serverAuth |
//! | `signer-kz.pem` | KZ message signing | CN `signer-kz`, URI `urn:cats:signer:KZ`; KU digitalSignature; EKU catsMessageSigning |
//! | `rabbitmq-server.pem` | the broker's TLS server | CN `rabbitmq`, DNS `localhost`, IP `127.0.0.1`, `::1`; EKU serverAuth |
//! | `fingerprints.json` | the allow-list | per identity URN, the SHA-256 of its certificates |
//!
//! Each certificate has its key next to it (`<name>.key.pem`, PKCS#8, mode 0600).
//!
//! Running it again keeps the CA and every leaf that already exists (both files present) and
//! issues only what is missing, from the existing CA. With `force` (or when the CA itself is
//! new) everything is made afresh. The allow-list is rewritten each time from the certificates
//! present.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use message_catalog::ids::CountryCode;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

use crate::identity::{AllowList, Fingerprint, PeerIdentity, SignerIdentity, fingerprint};
use crate::pem::{PemError, load_certs};

/// The CATS extended key usage for message-signing certificates, `1.3.6.1.4.1.55555.1.1`
/// ("catsMessageSigning", under a private arc), as OID arcs.
pub const CATS_MESSAGE_SIGNING_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1, 1];

/// The same OID as DER content bytes (no tag and length), as webpki wants it.
pub const CATS_MESSAGE_SIGNING_OID_DER: &[u8] =
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01, 0x01];

/// Common name of the development root CA.
pub const DEV_CA_COMMON_NAME: &str = "CATS Development Root CA";

/// The kinds of end-entity certificate the PKI issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeafProfile {
    /// The hub's TLS server certificate (`hub-server`).
    HubServer,
    /// The hub's TLS client certificate (`hub-client`).
    HubClient,
    /// A node's TLS certificate, client and server (`node-kz`).
    Node(CountryCode),
    /// A node's national API server certificate (`node-api-kz`): HTTPS for the national
    /// systems and officers, not an identity on the CATS links (not on the allow-list).
    NodeApi(CountryCode),
    /// A message-signing certificate (`signer-kz`, `signer-hub`).
    Signer(SignerIdentity),
    /// The RabbitMQ server certificate (`rabbitmq-server`).
    RabbitMqServer,
}

impl LeafProfile {
    /// The file stem: `hub-server`, `node-kz`, `signer-hub`, …
    pub fn file_stem(&self) -> String {
        match self {
            LeafProfile::HubServer => "hub-server".to_owned(),
            LeafProfile::HubClient => "hub-client".to_owned(),
            LeafProfile::Node(country) => PeerIdentity::Node(*country).common_name(),
            LeafProfile::NodeApi(country) => node_api_name(*country),
            LeafProfile::Signer(signer) => signer.common_name(),
            LeafProfile::RabbitMqServer => "rabbitmq-server".to_owned(),
        }
    }

    /// The allow-list key of the identity this certificate carries (`None` for the broker,
    /// which is authenticated by the CA and its host name only).
    pub fn allow_list_key(&self) -> Option<String> {
        match self {
            LeafProfile::HubServer | LeafProfile::HubClient => Some(PeerIdentity::Hub.urn()),
            LeafProfile::Node(country) => Some(PeerIdentity::Node(*country).urn()),
            LeafProfile::Signer(signer) => Some(signer.urn()),
            LeafProfile::RabbitMqServer | LeafProfile::NodeApi(_) => None,
        }
    }

    fn params(&self, validity: &Validity) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.not_before = to_offset(validity.not_before)?;
        params.not_after = to_offset(validity.not_after)?;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let local = [
            SanType::DnsName(ia5("localhost")?),
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
        ];
        let (cn, sans, ekus): (String, Vec<SanType>, Vec<ExtendedKeyUsagePurpose>) = match self {
            LeafProfile::HubServer => {
                let mut sans = local.to_vec();
                sans.push(SanType::DnsName(ia5("hub.cats.internal")?));
                sans.push(SanType::URI(ia5(&PeerIdentity::Hub.urn())?));
                (
                    PeerIdentity::Hub.common_name(),
                    sans,
                    vec![ExtendedKeyUsagePurpose::ServerAuth],
                )
            }
            LeafProfile::HubClient => (
                PeerIdentity::Hub.common_name(),
                vec![SanType::URI(ia5(&PeerIdentity::Hub.urn())?)],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            ),
            LeafProfile::Node(country) => {
                let node = PeerIdentity::Node(*country);
                let mut sans = vec![SanType::URI(ia5(&node.urn())?)];
                sans.extend(local);
                (
                    node.common_name(),
                    sans,
                    vec![
                        ExtendedKeyUsagePurpose::ClientAuth,
                        ExtendedKeyUsagePurpose::ServerAuth,
                    ],
                )
            }
            LeafProfile::NodeApi(country) => (
                node_api_name(*country),
                local.to_vec(),
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
            LeafProfile::Signer(signer) => (
                signer.common_name(),
                vec![SanType::URI(ia5(&signer.urn())?)],
                vec![ExtendedKeyUsagePurpose::Other(
                    CATS_MESSAGE_SIGNING_OID.to_vec(),
                )],
            ),
            LeafProfile::RabbitMqServer => (
                "rabbitmq".to_owned(),
                local.to_vec(),
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
        };
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "CATS");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.extended_key_usages = ekus;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        Ok(params)
    }
}

/// `node-api-kz`: the name of a node's national API certificate.
fn node_api_name(country: CountryCode) -> String {
    format!("node-api-{}", country.as_str().to_ascii_lowercase())
}

/// A validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: DateTime<Utc>,
    /// Not valid after.
    pub not_after: DateTime<Utc>,
}

impl Validity {
    /// From an hour ago (clock skew) for `days` days.
    pub fn days_from_now(days: i64) -> Validity {
        let now = Utc::now();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }

    /// The development default for leaves: 825 days.
    pub fn leaf_default() -> Validity {
        Validity::days_from_now(825)
    }

    /// Expired yesterday (for tests).
    pub fn expired() -> Validity {
        let now = Utc::now();
        Validity {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

/// A freshly issued certificate and its private key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8_der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"[secret key elided]")
            .finish()
    }
}

impl IssuedCert {
    /// The certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.cert_der)
    }

    /// Writes `<stem>.pem` and `<stem>.key.pem` (0600) into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key.pem"));
        write_file(&cert, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&key, self.key_pem.as_bytes(), 0o600)?;
        Ok((cert, key))
    }
}

/// Whether [`DevPki::init`] made a file pair or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Made by this run.
    Created,
    /// Already present, left as it was.
    Kept,
}

/// One certificate and key on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The file stem (`ca`, `hub-server`, `node-kz`, …).
    pub name: String,
    /// The certificate PEM.
    pub cert: PathBuf,
    /// The private key PEM.
    pub key: PathBuf,
    /// SHA-256 of the certificate.
    pub fingerprint: Fingerprint,
    /// Made now or kept.
    pub outcome: Outcome,
}

/// What [`DevPki::init`] wrote or kept.
#[derive(Debug, Clone)]
pub struct DevPkiFiles {
    /// The directory.
    pub dir: PathBuf,
    /// The root CA.
    pub ca: CertFiles,
    /// The hub's TLS server certificate.
    pub hub_server: CertFiles,
    /// The hub's TLS client certificate.
    pub hub_client: CertFiles,
    /// The hub's message-signing certificate.
    pub hub_signer: CertFiles,
    /// The broker's TLS server certificate.
    pub rabbitmq_server: CertFiles,
    /// Per country, the node's TLS certificate.
    pub nodes: BTreeMap<CountryCode, CertFiles>,
    /// Per country, the message-signing certificate.
    pub signers: BTreeMap<CountryCode, CertFiles>,
    /// Per country, the national API's HTTPS server certificate.
    pub node_apis: BTreeMap<CountryCode, CertFiles>,
    /// The allow-list (`fingerprints.json`).
    pub allow_list: PathBuf,
}

impl DevPkiFiles {
    /// Every certificate, CA first.
    pub fn all(&self) -> Vec<&CertFiles> {
        let mut all = vec![
            &self.ca,
            &self.hub_server,
            &self.hub_client,
            &self.hub_signer,
            &self.rabbitmq_server,
        ];
        for country in self.nodes.keys() {
            all.extend(self.nodes.get(country));
            all.extend(self.signers.get(country));
            all.extend(self.node_apis.get(country));
        }
        all
    }
}

/// A CATS certificate authority that can issue certificates: the development root, or (in
/// tests) another CA nobody trusts.
pub struct DevPki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki")
            .field("ca_fingerprint", &fingerprint(&self.ca_der))
            .finish_non_exhaustive()
    }
}

impl DevPki {
    /// Creates (or completes) the development PKI in `dir`: see the module documentation.
    /// Prints nothing; returns what it created and kept.
    pub fn init(
        dir: &Path,
        countries: &[CountryCode],
        force: bool,
    ) -> Result<DevPkiFiles, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let ca_cert = dir.join("ca.pem");
        let ca_key = dir.join("ca.key.pem");
        let (pki, ca_outcome) = match (force, ca_cert.exists(), ca_key.exists()) {
            (false, true, true) => (DevPki::load(&ca_cert, &ca_key)?, Outcome::Kept),
            (false, true, false) | (false, false, true) => {
                return Err(PkiError::Incomplete {
                    present: if ca_cert.exists() {
                        ca_cert
                    } else {
                        ca_key.clone()
                    },
                    missing: if ca_key.exists() {
                        dir.join("ca.pem")
                    } else {
                        ca_key
                    },
                });
            }
            _ => {
                let pki = DevPki::generate_ca(DEV_CA_COMMON_NAME)?;
                write_file(&ca_cert, pki.ca_pem.as_bytes(), 0o644)?;
                write_file(&ca_key, pki.ca_key_pem.as_bytes(), 0o600)?;
                (pki, Outcome::Created)
            }
        };
        let ca = CertFiles {
            name: "ca".to_owned(),
            cert: ca_cert,
            key: ca_key,
            fingerprint: fingerprint(&pki.ca_der),
            outcome: ca_outcome,
        };
        let reissue_all = force || ca_outcome == Outcome::Created;
        let mut allow = AllowList::new();
        let mut leaf = |profile: LeafProfile| -> Result<CertFiles, PkiError> {
            let files = pki.ensure_leaf(dir, &profile, reissue_all)?;
            if let Some(key) = profile.allow_list_key() {
                allow
                    .identities
                    .entry(key)
                    .or_default()
                    .insert(files.fingerprint);
            }
            Ok(files)
        };
        let hub_server = leaf(LeafProfile::HubServer)?;
        let hub_client = leaf(LeafProfile::HubClient)?;
        let hub_signer = leaf(LeafProfile::Signer(SignerIdentity::Hub))?;
        let rabbitmq_server = leaf(LeafProfile::RabbitMqServer)?;
        let mut nodes = BTreeMap::new();
        let mut signers = BTreeMap::new();
        let mut node_apis = BTreeMap::new();
        for country in countries {
            node_apis.insert(*country, leaf(LeafProfile::NodeApi(*country))?);
            nodes.insert(*country, leaf(LeafProfile::Node(*country))?);
            signers.insert(
                *country,
                leaf(LeafProfile::Signer(SignerIdentity::Country(*country)))?,
            );
        }
        let allow_list = dir.join("fingerprints.json");
        let text = serde_json::to_string_pretty(&allow).map_err(|e| PkiError::Io {
            path: allow_list.clone(),
            source: std::io::Error::other(e),
        })?;
        write_file(&allow_list, format!("{text}\n").as_bytes(), 0o644)?;
        Ok(DevPkiFiles {
            dir: dir.to_owned(),
            ca,
            hub_server,
            hub_client,
            hub_signer,
            rabbitmq_server,
            nodes,
            signers,
            node_apis,
            allow_list,
        })
    }

    /// A new self-signed root CA (ten years), in memory.
    pub fn generate_ca(common_name: &str) -> Result<DevPki, PkiError> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        let validity = Validity::days_from_now(3650);
        params.not_before = to_offset(validity.not_before)?;
        params.not_after = to_offset(validity.not_after)?;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "CATS");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let cert = params.self_signed(&key)?;
        let ca_key_pem = key.serialize_pem();
        Ok(DevPki {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            ca_key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA (certificate and PKCS#8 key PEM files).
    pub fn load(ca_cert: &Path, ca_key: &Path) -> Result<DevPki, PkiError> {
        let ca_der = load_certs(ca_cert)?.into_iter().next().ok_or_else(|| {
            PkiError::BadCa(format!("{} holds no certificate", ca_cert.display()))
        })?;
        let ca_key_pem = std::fs::read_to_string(ca_key).map_err(|source| PkiError::Io {
            path: ca_key.to_owned(),
            source,
        })?;
        let key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)?;
        let ca_pem = std::fs::read_to_string(ca_cert).map_err(|source| PkiError::Io {
            path: ca_cert.to_owned(),
            source,
        })?;
        Ok(DevPki {
            ca_der,
            ca_pem,
            ca_key_pem,
            issuer,
        })
    }

    /// Loads the CA from a directory made by [`DevPki::init`].
    pub fn load_dir(dir: &Path) -> Result<DevPki, PkiError> {
        DevPki::load(&dir.join("ca.pem"), &dir.join("ca.key.pem"))
    }

    /// The CA certificate, DER.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a certificate of the given profile with a fresh P-256 key.
    pub fn issue(
        &self,
        profile: &LeafProfile,
        validity: &Validity,
    ) -> Result<IssuedCert, PkiError> {
        let key = new_key()?;
        let params = profile.params(validity)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pkcs8_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A message-signing certificate for `signer`, valid now.
    pub fn issue_signer(&self, signer: SignerIdentity) -> Result<IssuedCert, PkiError> {
        self.issue(&LeafProfile::Signer(signer), &Validity::leaf_default())
    }

    /// A node TLS certificate for `country`, valid now.
    pub fn issue_node(&self, country: CountryCode) -> Result<IssuedCert, PkiError> {
        self.issue(&LeafProfile::Node(country), &Validity::leaf_default())
    }

    /// A certificate of the given profile that expired yesterday.
    pub fn issue_expired(&self, profile: &LeafProfile) -> Result<IssuedCert, PkiError> {
        self.issue(profile, &Validity::expired())
    }

    /// Issues a certificate from hand-made rcgen parameters (for tests that need a
    /// certificate no profile makes: wrong CN, two URNs, …). The serial number is set here.
    pub fn issue_custom(&self, mut params: CertificateParams) -> Result<IssuedCert, PkiError> {
        let key = new_key()?;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pkcs8_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    fn ensure_leaf(
        &self,
        dir: &Path,
        profile: &LeafProfile,
        reissue: bool,
    ) -> Result<CertFiles, PkiError> {
        let name = profile.file_stem();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key.pem"));
        if !reissue && cert.exists() && key.exists() {
            let der = load_certs(&cert)?
                .into_iter()
                .next()
                .ok_or_else(|| PkiError::BadCa(format!("{} is empty", cert.display())))?;
            return Ok(CertFiles {
                name,
                cert,
                key,
                fingerprint: fingerprint(&der),
                outcome: Outcome::Kept,
            });
        }
        let issued = self.issue(profile, &Validity::leaf_default())?;
        let (cert, key) = issued.write(dir, &name)?;
        Ok(CertFiles {
            name,
            cert,
            key,
            fingerprint: issued.fingerprint(),
            outcome: Outcome::Created,
        })
    }
}

/// Making or loading the PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// rcgen refused (bad parameters, key generation).
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM file could not be read.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// Half a CA: one of the two files is missing. Refuse rather than overwrite.
    #[error(
        "{present} exists but {missing} does not: restore it, or run with --force to make a new CA"
    )]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// The CA files are unusable.
    #[error("unusable CA: {0}")]
    BadCa(String),
    /// A date rcgen cannot represent.
    #[error("date out of range: {0}")]
    Date(DateTime<Utc>),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    // Positive and without a leading zero byte, so DER keeps all 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn to_offset(at: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp()).map_err(|_| PkiError::Date(at))
}

fn ia5(text: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    Ok(rcgen::string::Ia5String::try_from(text)?)
}

/// Writes through a temporary file and a rename, with `mode` set before any byte is written.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options.open(&tmp).map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        file.write_all(contents).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(contents).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eku_oid_der_matches_the_arcs() {
        // Encode the arcs the X.690 way and compare with the constant webpki uses.
        let arcs = CATS_MESSAGE_SIGNING_OID;
        let mut der = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push(((rest & 0x7f) as u8) | 0x80);
                rest >>= 7;
            }
            der.extend(groups.iter().rev());
        }
        assert_eq!(der, CATS_MESSAGE_SIGNING_OID_DER);
    }

    #[test]
    fn file_stems_follow_the_names() {
        assert_eq!(LeafProfile::Node(CountryCode::KZ).file_stem(), "node-kz");
        assert_eq!(
            LeafProfile::NodeApi(CountryCode::AZ).file_stem(),
            "node-api-az"
        );
        assert_eq!(LeafProfile::NodeApi(CountryCode::AZ).allow_list_key(), None);
        assert_eq!(
            LeafProfile::Signer(SignerIdentity::Country(CountryCode::GE)).file_stem(),
            "signer-ge"
        );
        assert_eq!(
            LeafProfile::Signer(SignerIdentity::Hub).file_stem(),
            "signer-hub"
        );
    }

    #[test]
    fn issued_certificates_carry_their_identity() {
        let pki = DevPki::generate_ca("test CA").expect("CA");
        let node = pki.issue_node(CountryCode::KZ).expect("node cert");
        assert_eq!(
            PeerIdentity::from_cert_der(&node.cert_der).ok(),
            Some(PeerIdentity::Node(CountryCode::KZ))
        );
        let signer = pki
            .issue_signer(SignerIdentity::Country(CountryCode::KZ))
            .expect("signer cert");
        assert_eq!(
            SignerIdentity::from_cert_der(&signer.cert_der).ok(),
            Some(SignerIdentity::Country(CountryCode::KZ))
        );
        // A TLS certificate names no signer, a signing certificate names no peer.
        assert!(SignerIdentity::from_cert_der(&node.cert_der).is_err());
        assert!(PeerIdentity::from_cert_der(&signer.cert_der).is_err());
    }
}
