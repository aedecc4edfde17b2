//! rustls configurations for both ends, and the hub's client-certificate check: the chain to
//! the CATS CA and the validity period (webpki), then the allow-list (revocation) and the kind
//! of identity (a node).

use std::sync::{Arc, RwLock};

use cats_trust::identity::{PeerIdentity, TrustStore};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::contract::TransportError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(trust: &TrustStore) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for ca in trust.ca_certs() {
        roots
            .add(ca.clone())
            .map_err(|e| TransportError::Config(format!("CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Checks a client certificate with webpki, then against the (reloadable) allow-list.
#[derive(Debug)]
pub(crate) struct NodeCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust: Arc<RwLock<TrustStore>>,
}

impl ClientCertVerifier for NodeCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let trust = self
            .trust
            .read()
            .map_err(|_| rustls::Error::General("trust store lock poisoned".into()))?;
        match trust.check_peer(end_entity) {
            Ok(PeerIdentity::Node(_)) => Ok(ClientCertVerified::assertion()),
            Ok(PeerIdentity::Hub) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "direct hub: client certificate refused");
                Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The hub's TLS server configuration: client certificates required.
pub(crate) fn server_config(
    trust: Arc<RwLock<TrustStore>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TransportError> {
    let roots = {
        let t = trust
            .read()
            .map_err(|_| TransportError::Config("trust store lock poisoned".into()))?;
        roots(&t)?
    };
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TransportError::Config(format!("client verifier: {e}")))?;
    let verifier = Arc::new(NodeCertVerifier { inner, trust });
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TransportError::Config(format!("hub certificate: {e}")))
}

/// A node's TLS client configuration: the CATS CA as the only root, its client certificate.
pub(crate) fn client_config(
    trust: &TrustStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TransportError> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Config(e.to_string()))?
        .with_root_certificates(roots(trust)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| TransportError::Config(format!("node certificate: {e}")))
}
