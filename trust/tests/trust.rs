//! The trust crate from the outside: the development PKI on disk, identities read from the
//! certificates it makes, and every way an envelope is refused, each with its own code.

use std::path::Path;
use std::time::Duration;

use cats_trust::pki::{DevPki, LeafProfile, Outcome, Validity};
use cats_trust::{
    AllowList, EnvelopeError, EnvelopeHeaderFields, PeerIdentity, SignerIdentity, TrustStore,
    Verifier, envelope, fingerprint, load_certs, load_private_key,
};
use chrono::{DateTime, TimeDelta, Utc};
use message_catalog::ids::CountryCode;

const KZ: CountryCode = CountryCode::KZ;
const AZ: CountryCode = CountryCode::AZ;
const GE: CountryCode = CountryCode::GE;

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A development PKI for KZ, AZ, GE in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    files: cats_trust::DevPkiFiles,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = DevPki::init(dir.path(), &[KZ, AZ, GE], false).expect("init");
        Fixture { dir, files }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn trust(&self) -> TrustStore {
        TrustStore::load(&self.files.ca.cert, Some(&self.files.allow_list)).expect("trust store")
    }

    fn verifier(&self) -> Verifier {
        Verifier::new(self.trust(), Duration::from_secs(300))
    }

    fn signer(&self, country: CountryCode) -> cats_trust::Signer {
        let files = self.files.signers.get(&country).expect("signer files");
        cats_trust::Signer::load(&files.cert, &files.key).expect("signer")
    }
}

fn fields(sender: PeerIdentity, recipient: PeerIdentity) -> EnvelopeHeaderFields {
    EnvelopeHeaderFields {
        message_id: "0f8a2c6e-1d5b-4c7a-9e3f-5a6b7c8d9e0f".to_owned(),
        message_type: "CD001C".to_owned(),
        sender,
        recipient,
        correlation_id: Some("corr-1".to_owned()),
        mrn: Some("26KZ0001234567890A".to_owned()),
        prepared_at: now(),
    }
}

fn kz_to_az() -> EnvelopeHeaderFields {
    fields(PeerIdentity::Node(KZ), PeerIdentity::Node(AZ))
}

const BODY: &[u8] = b"<CD001C><MRN>26KZ0001234567890A</MRN></CD001C>";

fn code<T>(result: Result<T, EnvelopeError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn signer_from(cert: &cats_trust::IssuedCert) -> cats_trust::Signer {
    cats_trust::Signer::from_der(&cert.cert_der, &cert.key_pkcs8_der).expect("signer")
}

// --- PKI -------------------------------------------------------------------------------------

#[test]
fn init_writes_every_file_with_private_keys_0600() {
    let fx = Fixture::new();
    let mut names: Vec<String> = fx.files.all().iter().map(|f| f.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca",
            "hub-client",
            "hub-server",
            "node-api-az",
            "node-api-ge",
            "node-api-kz",
            "node-az",
            "node-ge",
            "node-kz",
            "rabbitmq-server",
            "signer-az",
            "signer-ge",
            "signer-hub",
            "signer-kz"
        ]
    );
    for files in fx.files.all() {
        assert_eq!(files.outcome, Outcome::Created);
        assert!(files.cert.is_file(), "{}", files.cert.display());
        assert_eq!(
            fingerprint(&load_certs(&files.cert).expect("cert")[0]),
            files.fingerprint
        );
        load_private_key(&files.key).expect("key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", files.key.display());
        }
    }
    assert!(fx.path().join("fingerprints.json").is_file());
    assert!(fx.path().join("node-kz.key.pem").is_file());
}

#[test]
fn init_twice_keeps_the_ca_and_the_leaves() {
    let fx = Fixture::new();
    let again = DevPki::init(fx.path(), &[KZ, AZ, GE], false).expect("second init");
    for (first, second) in fx.files.all().iter().zip(again.all()) {
        assert_eq!(second.outcome, Outcome::Kept, "{}", second.name);
        assert_eq!(first.fingerprint, second.fingerprint);
    }
}

#[test]
fn init_again_issues_missing_leaves_from_the_existing_ca() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path().join("node-kz.pem")).expect("remove");
    let again = DevPki::init(
        fx.path(),
        &[KZ, AZ, GE, CountryCode::parse("TM").expect("TM")],
        false,
    )
    .expect("second init");
    assert_eq!(again.ca.outcome, Outcome::Kept);
    assert_eq!(again.ca.fingerprint, fx.files.ca.fingerprint);
    assert_eq!(again.nodes[&KZ].outcome, Outcome::Created);
    assert_eq!(again.nodes[&AZ].outcome, Outcome::Kept);
    let tm = CountryCode::parse("TM").expect("TM");
    assert_eq!(again.nodes[&tm].outcome, Outcome::Created);
    // The new leaves chain to the kept CA and are on the allow-list.
    let trust = TrustStore::load(&again.ca.cert, Some(&again.allow_list)).expect("trust");
    let der = &load_certs(&again.nodes[&KZ].cert).expect("cert")[0];
    assert_eq!(
        trust.check_peer(der).expect("allowed"),
        PeerIdentity::Node(KZ)
    );
}

#[test]
fn force_replaces_the_ca() {
    let fx = Fixture::new();
    let again = DevPki::init(fx.path(), &[KZ], true).expect("forced init");
    assert_eq!(again.ca.outcome, Outcome::Created);
    assert_ne!(again.ca.fingerprint, fx.files.ca.fingerprint);
    assert_eq!(again.nodes[&KZ].outcome, Outcome::Created);
    assert_ne!(
        again.nodes[&KZ].fingerprint,
        fx.files.nodes[&KZ].fingerprint
    );
}

#[test]
fn half_a_ca_is_refused_without_force() {
    let fx = Fixture::new();
    std::fs::remove_file(fx.path().join("ca.key.pem")).expect("remove");
    assert!(matches!(
        DevPki::init(fx.path(), &[KZ], false),
        Err(cats_trust::PkiError::Incomplete { .. })
    ));
}

// --- identities ------------------------------------------------------------------------------

fn cert_of(path: &Path) -> Vec<u8> {
    load_certs(path).expect("cert")[0].to_vec()
}

#[test]
fn identities_from_the_generated_certificates() {
    let fx = Fixture::new();
    let f = &fx.files;
    assert_eq!(
        PeerIdentity::from_cert_der(&cert_of(&f.hub_server.cert)).expect("hub server"),
        PeerIdentity::Hub
    );
    assert_eq!(
        PeerIdentity::from_cert_der(&cert_of(&f.hub_client.cert)).expect("hub client"),
        PeerIdentity::Hub
    );
    for country in [KZ, AZ, GE] {
        assert_eq!(
            PeerIdentity::from_cert_der(&cert_of(&f.nodes[&country].cert)).expect("node"),
            PeerIdentity::Node(country)
        );
        assert_eq!(
            SignerIdentity::from_cert_der(&cert_of(&f.signers[&country].cert)).expect("signer"),
            SignerIdentity::Country(country)
        );
        // Keys are separate: the TLS certificate is no signer, the signer no peer.
        assert!(SignerIdentity::from_cert_der(&cert_of(&f.nodes[&country].cert)).is_err());
        assert!(PeerIdentity::from_cert_der(&cert_of(&f.signers[&country].cert)).is_err());
    }
    assert_eq!(
        SignerIdentity::from_cert_der(&cert_of(&f.hub_signer.cert)).expect("hub signer"),
        SignerIdentity::Hub
    );
    assert!(PeerIdentity::from_cert_der(&cert_of(&f.rabbitmq_server.cert)).is_err());
}

#[test]
fn a_cn_that_disagrees_with_the_urn_names_nobody() {
    let pki = DevPki::generate_ca("test CA").expect("CA");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node-az");
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from("urn:cats:node:KZ").expect("ia5"),
    )];
    let cert = pki.issue_custom(params).expect("cert");
    assert!(matches!(
        PeerIdentity::from_cert_der(&cert.cert_der),
        Err(cats_trust::IdentityError::CommonNameMismatch { .. })
    ));
}

#[test]
fn the_allow_list_lists_every_identity_and_revocation_removes_it() {
    let fx = Fixture::new();
    let trust = fx.trust();
    let node_kz = cert_of(&fx.files.nodes[&KZ].cert);
    assert_eq!(
        trust.check_peer(&node_kz).expect("allowed"),
        PeerIdentity::Node(KZ)
    );
    let mut list = AllowList::load(&fx.files.allow_list).expect("list");
    assert!(list.is_allowed(&PeerIdentity::Hub, &fx.files.hub_server.fingerprint));
    assert!(list.is_allowed(&PeerIdentity::Hub, &fx.files.hub_client.fingerprint));
    assert!(list.is_allowed(&SignerIdentity::Hub, &fx.files.hub_signer.fingerprint));
    assert!(list.revoke(&PeerIdentity::Node(KZ), &fingerprint(&node_kz)));
    list.save(&fx.files.allow_list).expect("save");
    let reloaded = fx.trust();
    assert!(matches!(
        reloaded.check_peer(&node_kz),
        Err(cats_trust::IdentityError::NotAllowed { .. })
    ));
}

// --- envelopes -------------------------------------------------------------------------------

#[test]
fn a_sealed_envelope_opens() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let verifier = fx.verifier();
    // At the hub, delivered by KZ; at AZ, delivered by the hub. Twice: the second time from
    // the signer cache.
    for transport in [PeerIdentity::Node(KZ), PeerIdentity::Hub, PeerIdentity::Hub] {
        let opened = verifier.open(&wire, &transport, now()).expect("open");
        assert_eq!(opened.body, BODY);
        assert_eq!(opened.signer, SignerIdentity::Country(KZ));
        assert_eq!(opened.header.fields.message_type, "CD001C");
    }
}

#[test]
fn the_hub_signs_for_itself() {
    let fx = Fixture::new();
    let signer = cats_trust::Signer::load(&fx.files.hub_signer.cert, &fx.files.hub_signer.key)
        .expect("hub signer");
    let wire = signer
        .seal(&fields(PeerIdentity::Hub, PeerIdentity::Node(KZ)), BODY)
        .expect("seal");
    let verifier = fx.verifier().with_local_identity(PeerIdentity::Node(KZ));
    assert_eq!(code(verifier.open(&wire, &PeerIdentity::Hub, now())), "ok");
}

#[test]
fn tampered_body_is_body_hash() {
    let fx = Fixture::new();
    let mut wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let last = wire.len() - 1;
    wire[last] ^= 0x01;
    assert_eq!(
        code(fx.verifier().open(&wire, &PeerIdentity::Node(KZ), now())),
        "envelope.body-hash"
    );
}

#[test]
fn tampered_header_field_is_signature() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    // Change one byte of the MRN inside the header.
    let at = wire
        .windows(4)
        .position(|w| w == b"26KZ")
        .expect("MRN in header");
    let mut tampered = wire.clone();
    tampered[at + 2] = b'G';
    tampered[at + 3] = b'E';
    let verifier = fx.verifier();
    assert_eq!(
        code(verifier.open(&tampered, &PeerIdentity::Node(KZ), now())),
        "envelope.signature"
    );
    // Re-addressing to another recipient is also caught.
    let recipient_tag = {
        // sender party (01 'K' 'Z') is followed by the recipient party (01 'A' 'Z').
        wire.windows(6)
            .position(|w| w == [1, b'K', b'Z', 1, b'A', b'Z'])
            .expect("parties")
            + 4
    };
    let mut readdressed = wire.clone();
    readdressed[recipient_tag] = b'G';
    readdressed[recipient_tag + 1] = b'E';
    assert_eq!(
        code(verifier.open(&readdressed, &PeerIdentity::Node(KZ), now())),
        "envelope.signature"
    );
}

#[test]
fn revoked_signer_is_signer_revoked() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let verifier = fx.verifier();
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "ok"
    );
    // Revoke: remove the fingerprint from the allow-list and reload.
    let mut list = AllowList::load(&fx.files.allow_list).expect("list");
    assert!(list.revoke(
        &SignerIdentity::Country(KZ),
        &fx.files.signers[&KZ].fingerprint
    ));
    list.save(&fx.files.allow_list).expect("save");
    verifier.set_trust_store(fx.trust());
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "envelope.signer-revoked"
    );
    // A new certificate from the CATS CA but never put on the allow-list: also revoked.
    let pki = DevPki::load_dir(fx.path()).expect("CA");
    let unlisted = pki.issue_signer(SignerIdentity::Country(KZ)).expect("cert");
    let wire = signer_from(&unlisted)
        .seal(&kz_to_az(), BODY)
        .expect("seal");
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "envelope.signer-revoked"
    );
}

#[test]
fn stale_either_way_is_stale() {
    let fx = Fixture::new();
    let signer = fx.signer(KZ);
    let verifier = fx.verifier();
    for offset in [TimeDelta::minutes(-6), TimeDelta::minutes(6)] {
        let mut f = kz_to_az();
        f.prepared_at = now() + offset;
        let wire = signer.seal(&f, BODY).expect("seal");
        assert_eq!(
            code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
            "envelope.stale"
        );
    }
    let mut f = kz_to_az();
    f.prepared_at = now() - TimeDelta::minutes(4);
    let wire = signer.seal(&f, BODY).expect("seal");
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "ok"
    );
}

/// Rebuilds a frame with another signature (empty for unsigned).
fn with_signature(wire: &[u8], signature: &[u8]) -> Vec<u8> {
    let parsed = cats_trust::Envelope::parse(wire).expect("parse");
    let mut out = Vec::new();
    out.extend_from_slice(envelope::MAGIC);
    out.push(envelope::FRAME_VERSION);
    out.extend_from_slice(&(parsed.signed_bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(parsed.signed_bytes);
    out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(&(parsed.body.len() as u32).to_be_bytes());
    out.extend_from_slice(parsed.body);
    out
}

#[test]
fn unsigned_is_unsigned() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let unsigned = with_signature(&wire, b"");
    assert_eq!(
        code(
            fx.verifier()
                .open(&unsigned, &PeerIdentity::Node(KZ), now())
        ),
        "envelope.unsigned"
    );
    // A signature that is not one at all.
    let garbage = with_signature(&wire, &[0x30, 0x02, 0x01, 0x00]);
    assert_eq!(
        code(fx.verifier().open(&garbage, &PeerIdentity::Node(KZ), now())),
        "envelope.signature"
    );
}

#[test]
fn signer_from_another_ca_is_signer_chain() {
    let fx = Fixture::new();
    let rogue = DevPki::generate_ca(cats_trust::pki::DEV_CA_COMMON_NAME).expect("rogue CA");
    let cert = rogue
        .issue_signer(SignerIdentity::Country(KZ))
        .expect("cert");
    let wire = signer_from(&cert).seal(&kz_to_az(), BODY).expect("seal");
    assert_eq!(
        code(fx.verifier().open(&wire, &PeerIdentity::Node(KZ), now())),
        "envelope.signer-chain"
    );
}

#[test]
fn expired_signer_is_signer_chain() {
    let fx = Fixture::new();
    let pki = DevPki::load_dir(fx.path()).expect("CA");
    let expired = pki
        .issue_expired(&LeafProfile::Signer(SignerIdentity::Country(KZ)))
        .expect("cert");
    let mut list = AllowList::load(&fx.files.allow_list).expect("list");
    list.allow(&SignerIdentity::Country(KZ), expired.fingerprint());
    list.save(&fx.files.allow_list).expect("save");
    let wire = signer_from(&expired).seal(&kz_to_az(), BODY).expect("seal");
    let verifier = fx.verifier();
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "envelope.signer-chain"
    );
    // A certificate that was checked while valid expires in the cache too.
    let short = pki
        .issue(
            &LeafProfile::Signer(SignerIdentity::Country(KZ)),
            &Validity {
                not_before: now() - TimeDelta::days(1),
                not_after: now() + TimeDelta::days(1),
            },
        )
        .expect("cert");
    let mut list = AllowList::load(&fx.files.allow_list).expect("list");
    list.allow(&SignerIdentity::Country(KZ), short.fingerprint());
    list.save(&fx.files.allow_list).expect("save");
    verifier.set_trust_store(fx.trust());
    let signer = signer_from(&short);
    let wire = signer.seal(&kz_to_az(), BODY).expect("seal");
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), now())),
        "ok"
    );
    let later = now() + TimeDelta::days(2);
    let mut f = kz_to_az();
    f.prepared_at = later;
    let wire = signer.seal(&f, BODY).expect("seal");
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Node(KZ), later)),
        "envelope.signer-chain"
    );
}

#[test]
fn tls_certificate_as_signer_is_signer_usage() {
    let fx = Fixture::new();
    let pki = DevPki::load_dir(fx.path()).expect("CA");
    // A node TLS certificate, used to sign: its key and certificate are genuine CATS ones.
    let node = pki.issue_node(KZ).expect("cert");
    let signer = cats_trust::Signer::from_der(&node.cert_der, &node.key_pkcs8_der);
    // The signer API refuses it outright (it names no signer)…
    assert!(signer.is_err());
    // …so forge the envelope by hand: put the TLS certificate where the signer's goes.
    let genuine = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let forged = swap_signer_cert(&genuine, &node.cert_der);
    assert_eq!(
        code(fx.verifier().open(&forged, &PeerIdentity::Node(KZ), now())),
        "envelope.signer-usage"
    );
}

/// Replaces the signer certificate (and its fingerprint) in a sealed envelope, keeping the
/// old signature: what an attacker holding only a TLS key could produce at best.
fn swap_signer_cert(wire: &[u8], cert: &[u8]) -> Vec<u8> {
    let parsed = cats_trust::Envelope::parse(wire).expect("parse");
    let header = parsed.signed_bytes;
    let old_cert = parsed.header.signer_cert;
    let old_fp = parsed.header.signer_fingerprint;
    let cert_at = header.len() - old_cert.len();
    let fp_at = cert_at - 4 - 32;
    assert_eq!(&header[fp_at..fp_at + 32], old_fp.as_bytes());
    let mut new_header = header[..fp_at].to_vec();
    new_header.extend_from_slice(fingerprint(cert).as_bytes());
    new_header.extend_from_slice(&(cert.len() as u32).to_be_bytes());
    new_header.extend_from_slice(cert);
    let mut out = Vec::new();
    out.extend_from_slice(envelope::MAGIC);
    out.push(envelope::FRAME_VERSION);
    out.extend_from_slice(&(new_header.len() as u32).to_be_bytes());
    out.extend_from_slice(&new_header);
    out.extend_from_slice(&(parsed.header.signature.len() as u16).to_be_bytes());
    out.extend_from_slice(parsed.header.signature);
    out.extend_from_slice(&(parsed.body.len() as u32).to_be_bytes());
    out.extend_from_slice(parsed.body);
    out
}

#[test]
fn signer_certificate_swapped_for_another_signer_is_signature() {
    let fx = Fixture::new();
    let genuine = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let az = cert_of(&fx.files.signers[&AZ].cert);
    let forged = swap_signer_cert(&genuine, &az);
    assert_eq!(
        code(fx.verifier().open(&forged, &PeerIdentity::Node(KZ), now())),
        "envelope.signature"
    );
}

#[test]
fn sender_other_than_signer_country_is_sender_mismatch() {
    let fx = Fixture::new();
    // Seal refuses to sign for another sender, so sign a GE-sender header with the AZ key
    // through a raw signer: re-sign the header bytes by hand.
    let az = &fx.files.signers[&AZ];
    let key = load_private_key(&az.key).expect("key");
    let rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8) = key else {
        panic!("rcgen writes PKCS#8");
    };
    let genuine = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let az_cert = cert_of(&az.cert);
    let unsigned = swap_signer_cert(&genuine, &az_cert);
    // Now the header says sender KZ, signer AZ; sign it properly with AZ's key.
    let parsed = cats_trust::Envelope::parse(&unsigned).expect("parse");
    let rng = ring::rand::SystemRandom::new();
    let key_pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &rng,
    )
    .expect("key");
    let signature = key_pair.sign(&rng, parsed.signed_bytes).expect("sign");
    let forged = with_signature(&unsigned, signature.as_ref());
    assert_eq!(
        code(fx.verifier().open(&forged, &PeerIdentity::Node(AZ), now())),
        "envelope.sender-mismatch"
    );
}

#[test]
fn transport_other_than_sender_is_transport_mismatch() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    // An AZ connection delivering a message signed by and sent from KZ.
    assert_eq!(
        code(fx.verifier().open(&wire, &PeerIdentity::Node(AZ), now())),
        "envelope.transport-mismatch"
    );
}

#[test]
fn recipient_other_than_self_is_recipient_mismatch() {
    let fx = Fixture::new();
    let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
    let at_ge = fx.verifier().with_local_identity(PeerIdentity::Node(GE));
    assert_eq!(
        code(at_ge.open(&wire, &PeerIdentity::Hub, now())),
        "envelope.recipient-mismatch"
    );
}

#[test]
fn error_codes_are_stable() {
    // Pinned: these strings cross the wire (NACK reasons, dead-letter headers).
    let fp = fingerprint(b"x");
    let cases = [
        (
            EnvelopeError::Malformed(String::new()),
            "envelope.malformed",
        ),
        (EnvelopeError::Unsigned, "envelope.unsigned"),
        (
            EnvelopeError::SignerChain(String::new()),
            "envelope.signer-chain",
        ),
        (
            EnvelopeError::SignerUsage(String::new()),
            "envelope.signer-usage",
        ),
        (
            EnvelopeError::SignerRevoked {
                signer: SignerIdentity::Hub,
                fingerprint: fp,
            },
            "envelope.signer-revoked",
        ),
        (
            EnvelopeError::SenderMismatch {
                signer: SignerIdentity::Hub,
                sender: PeerIdentity::Hub,
            },
            "envelope.sender-mismatch",
        ),
        (
            EnvelopeError::TransportMismatch {
                sender: PeerIdentity::Hub,
                transport: PeerIdentity::Hub,
            },
            "envelope.transport-mismatch",
        ),
        (
            EnvelopeError::RecipientMismatch {
                recipient: PeerIdentity::Hub,
                local: PeerIdentity::Hub,
            },
            "envelope.recipient-mismatch",
        ),
        (EnvelopeError::BodyHash, "envelope.body-hash"),
        (EnvelopeError::Signature, "envelope.signature"),
        (
            EnvelopeError::Stale {
                prepared_at: now(),
                now: now(),
            },
            "envelope.stale",
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error.code(), expected);
    }
}

// --- hostile bytes ---------------------------------------------------------------------------

mod hostile {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    struct Shared {
        _fx: Fixture,
        verifier: Verifier,
        wire: Vec<u8>,
    }

    fn shared() -> &'static Shared {
        static SHARED: OnceLock<Shared> = OnceLock::new();
        SHARED.get_or_init(|| {
            let fx = Fixture::new();
            let wire = fx.signer(KZ).seal(&kz_to_az(), BODY).expect("seal");
            let verifier = fx.verifier();
            Shared {
                _fx: fx,
                verifier,
                wire,
            }
        })
    }

    proptest! {
        #[test]
        fn no_byte_string_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = cats_trust::Envelope::parse(&bytes);
            let _ = shared().verifier.open(&bytes, &PeerIdentity::Node(KZ), now());
        }

        #[test]
        fn no_prefix_of_an_envelope_panics_or_opens(cut in 0usize..4096) {
            let wire = &shared().wire;
            let cut = cut.min(wire.len().saturating_sub(1));
            let truncated = &wire[..cut];
            prop_assert_eq!(
                code(shared().verifier.open(truncated, &PeerIdentity::Node(KZ), now())),
                "envelope.malformed"
            );
        }

        #[test]
        fn every_single_byte_change_is_refused(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
            let mut wire = shared().wire.clone();
            let i = at.index(wire.len());
            wire[i] ^= xor;
            prop_assert!(shared().verifier.open(&wire, &PeerIdentity::Node(KZ), now()).is_err());
        }
    }
}

#[test]
fn envelope_md_lists_every_error_code() {
    // The format document is where operators look up a code: it must not drift.
    let doc = include_str!("../ENVELOPE.md");
    for code in [
        "envelope.malformed",
        "envelope.unsigned",
        "envelope.signer-chain",
        "envelope.signer-usage",
        "envelope.signer-revoked",
        "envelope.sender-mismatch",
        "envelope.transport-mismatch",
        "envelope.recipient-mismatch",
        "envelope.body-hash",
        "envelope.signature",
        "envelope.stale",
    ] {
        assert!(
            doc.contains(&format!("`{code}`")),
            "{code} missing from ENVELOPE.md"
        );
    }
    assert!(doc.contains("CATS-ENVELOPE-V1"));
}

// --- the certificates in a real rustls handshake ----------------------------------------------

mod tls {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::sync::Arc;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(fx: &Fixture) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for ca in load_certs(&fx.files.ca.cert).expect("CA") {
            roots.add(ca).expect("root");
        }
        Arc::new(roots)
    }

    fn hub_server(fx: &Fixture) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(fx), provider())
            .build()
            .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                load_certs(&fx.files.hub_server.cert).expect("cert"),
                load_private_key(&fx.files.hub_server.key).expect("key"),
            )
            .expect("server config");
        Arc::new(config)
    }

    fn client(fx: &Fixture, identity: Option<(Vec<u8>, Vec<u8>)>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots(fx));
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(cert)],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
                )
                .expect("client config"),
        };
        Arc::new(config)
    }

    fn files_identity(files: &cats_trust::CertFiles) -> (Vec<u8>, Vec<u8>) {
        let key = match load_private_key(&files.key).expect("key") {
            rustls_pki_types::PrivateKeyDer::Pkcs8(key) => key.secret_pkcs8_der().to_vec(),
            _ => panic!("rcgen writes PKCS#8"),
        };
        (cert_of(&files.cert), key)
    }

    /// Runs a handshake in memory; the server's view of the client certificate, or why it
    /// failed.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<Vec<CertificateDer<'static>>, String> {
        let name = ServerName::try_from("localhost").expect("name");
        let mut c = ClientConnection::new(client, name).map_err(|e| e.to_string())?;
        let mut s = ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            if !s.is_handshaking() && !c.is_handshaking() {
                return Ok(s
                    .peer_certificates()
                    .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default());
            }
        }
        Err("handshake did not finish".to_owned())
    }

    /// The hub server, not the client or the test's plumbing, ended the handshake.
    fn refused_by_server(result: Result<Vec<CertificateDer<'static>>, String>) {
        match result {
            Ok(_) => panic!("handshake succeeded"),
            Err(why) => assert!(why.starts_with("server: "), "{why}"),
        }
    }

    #[test]
    fn node_certificate_authenticates_to_the_hub_server() {
        let fx = Fixture::new();
        let peer = handshake(
            client(&fx, Some(files_identity(&fx.files.nodes[&KZ]))),
            hub_server(&fx),
        )
        .expect("handshake");
        let first = peer.first().expect("client certificate");
        assert_eq!(
            fx.trust().check_peer(first).expect("allowed"),
            PeerIdentity::Node(KZ)
        );
    }

    #[test]
    fn no_client_certificate_is_refused_at_the_handshake() {
        let fx = Fixture::new();
        refused_by_server(handshake(client(&fx, None), hub_server(&fx)));
    }

    #[test]
    fn client_from_another_ca_is_refused_at_the_handshake() {
        let fx = Fixture::new();
        let rogue = DevPki::generate_ca(cats_trust::pki::DEV_CA_COMMON_NAME).expect("CA");
        let cert = rogue.issue_node(KZ).expect("cert");
        let identity = (cert.cert_der.to_vec(), cert.key_pkcs8_der.clone());
        refused_by_server(handshake(client(&fx, Some(identity)), hub_server(&fx)));
    }

    #[test]
    fn expired_client_is_refused_at_the_handshake() {
        let fx = Fixture::new();
        let pki = DevPki::load_dir(fx.path()).expect("CA");
        let cert = pki.issue_expired(&LeafProfile::Node(KZ)).expect("cert");
        let identity = (cert.cert_der.to_vec(), cert.key_pkcs8_der.clone());
        refused_by_server(handshake(client(&fx, Some(identity)), hub_server(&fx)));
    }

    #[test]
    fn a_signing_certificate_cannot_be_a_tls_client() {
        let fx = Fixture::new();
        let identity = files_identity(&fx.files.signers[&KZ]);
        refused_by_server(handshake(client(&fx, Some(identity)), hub_server(&fx)));
    }
}

#[test]
fn a_redelivered_envelope_opens_long_after_its_window() {
    let fx = Fixture::new();
    let mut f = kz_to_az();
    // Half an hour ago: well outside the five-minute window, but inside the validity of the
    // signer certificate (issued an hour back).
    f.prepared_at = now() - TimeDelta::minutes(30);
    let wire = fx.signer(KZ).seal(&f, BODY).expect("seal");
    let verifier = fx.verifier();
    assert_eq!(
        code(verifier.open(&wire, &PeerIdentity::Hub, now())),
        "envelope.stale"
    );
    assert_eq!(
        code(verifier.open_redelivered(&wire, &PeerIdentity::Hub)),
        "ok"
    );
    // Everything else is still checked.
    let mut tampered = wire.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        code(verifier.open_redelivered(&tampered, &PeerIdentity::Hub)),
        "envelope.body-hash"
    );
    assert_eq!(
        code(verifier.open_redelivered(&wire, &PeerIdentity::Node(GE))),
        "envelope.transport-mismatch"
    );
    // Prepared before the signer certificate existed: not vouched for.
    let mut f = kz_to_az();
    f.prepared_at = now() - TimeDelta::days(3);
    let early = fx.signer(KZ).seal(&f, BODY).expect("seal");
    assert_eq!(
        code(verifier.open_redelivered(&early, &PeerIdentity::Hub)),
        "envelope.signer-chain"
    );
}
