//! Seal and open a 5 KB envelope: the per-message cost of signing on the node and verifying
//! at the hub (signer certificate already in the verifier's cache, as in a steady stream).
//!
//! `cargo bench -p cats-trust --bench envelope`; throughput is reported in messages per second.

use std::time::Duration;

use cats_trust::pki::DevPki;
use cats_trust::{EnvelopeHeaderFields, PeerIdentity, Signer, TrustStore, Verifier};
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use message_catalog::ids::CountryCode;

fn envelope(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = DevPki::init(dir.path(), &[CountryCode::KZ, CountryCode::AZ], false).expect("PKI");
    let signer_files = &files.signers[&CountryCode::KZ];
    let signer = Signer::load(&signer_files.cert, &signer_files.key).expect("signer");
    let trust = TrustStore::load(&files.ca.cert, Some(&files.allow_list)).expect("trust");
    let verifier = Verifier::new(trust, Duration::from_secs(300));
    let body: Vec<u8> = (0..5 * 1024).map(|i| b"<CD001C>"[i % 8]).collect();
    let fields = EnvelopeHeaderFields {
        message_id: "0f8a2c6e-1d5b-4c7a-9e3f-5a6b7c8d9e0f".to_owned(),
        message_type: "CD001C".to_owned(),
        sender: PeerIdentity::Node(CountryCode::KZ),
        recipient: PeerIdentity::Node(CountryCode::AZ),
        correlation_id: None,
        mrn: Some("26KZ0001234567890A".to_owned()),
        prepared_at: Utc::now(),
    };
    let transport = PeerIdentity::Node(CountryCode::KZ);
    let wire = signer.seal(&fields, &body).expect("seal");
    let now = Utc::now();

    let mut group = c.benchmark_group("envelope-5KB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal", |b| {
        b.iter(|| signer.seal(&fields, &body).expect("seal"))
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            verifier
                .open(&wire, &transport, now)
                .expect("open")
                .body
                .len()
        })
    });
    group.bench_function("seal+open", |b| {
        b.iter(|| {
            let wire = signer.seal(&fields, &body).expect("seal");
            verifier
                .open(&wire, &transport, now)
                .expect("open")
                .body
                .len()
        })
    });
    // References: the bare ring operations the envelope cannot avoid, on the same machine in
    // the same run, so the figures above can be read against them.
    let rng = ring::rand::SystemRandom::new();
    let rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8) =
        cats_trust::load_private_key(&signer_files.key).expect("key")
    else {
        panic!("rcgen writes PKCS#8 keys");
    };
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &rng,
    )
    .expect("key");
    use ring::signature::KeyPair as _;
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let parsed = cats_trust::Envelope::parse(&wire).expect("parse");
    group.bench_function("ring-sign-only", |b| {
        b.iter(|| key.sign(&rng, parsed.signed_bytes).expect("sign"))
    });
    group.bench_function("ring-verify-only", |b| {
        b.iter(|| {
            public
                .verify(parsed.signed_bytes, parsed.header.signature)
                .expect("verify")
        })
    });
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
