//! CATS trust: who may talk to whom, and proof of who said what.
//!
//! Every CATS certificate comes from one CATS certificate authority and names its holder in a
//! SAN URI (`urn:cats:node:KZ`, `urn:cats:hub`, `urn:cats:signer:KZ`). TLS certificates
//! authenticate connections (see the `cats-transport` crates); separate message-signing
//! certificates sign every common-domain message, so the hub can route a message but never
//! author one for a country.
//!
//! Modules, in the order data flows through them:
//!
//! - [`pki`]: the development PKI ([`DevPki::init`], behind `cats certs init`) and helpers that
//!   issue extra certificates for tests (expired, from another CA, not on the allow-list).
//! - [`pem`]: reading certificates and keys from PEM files in the types rustls takes.
//! - [`identity`]: [`PeerIdentity`] and [`SignerIdentity`] read from a certificate,
//!   [`Fingerprint`]s, and the [`TrustStore`] (CA + allow-list) that decides who is accepted;
//!   revocation is removal from the allow-list.
//! - [`envelope`]: the signed envelope, header + exact body bytes. [`Signer::seal`] on the
//!   way out; [`Envelope::parse`] and [`Verifier::open`] on the way in, before any body parsing,
//!   each failure with a stable code ([`EnvelopeError::code`]). The wire format is in
//!   `trust/ENVELOPE.md`.

pub mod envelope;
pub mod identity;
pub mod pem;
pub mod pki;

pub use envelope::{
    Envelope, EnvelopeError, EnvelopeHeader, EnvelopeHeaderFields, Opened, ParsedEnvelope,
    SealError, Signer, SignerError, Verifier,
};
pub use identity::{
    AllowList, AllowListed, Fingerprint, IdentityError, PeerIdentity, SignerIdentity, TrustStore,
    TrustStoreError, fingerprint,
};
pub use pem::{PemError, load_certs, load_private_key};
pub use pki::{
    CATS_MESSAGE_SIGNING_OID, CATS_MESSAGE_SIGNING_OID_DER, CertFiles, DevPki, DevPkiFiles,
    IssuedCert, LeafProfile, Outcome, PkiError, Validity,
};
