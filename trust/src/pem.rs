//! Reading certificates and private keys from PEM files, in the types rustls takes.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file, in file order (leaf first for a chain file).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| PemError::new(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::new(path, e))?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_owned(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or
/// PKCS#1 `RSA PRIVATE KEY`).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::Empty {
            path: path.to_owned(),
            what: "PRIVATE KEY",
        },
        other => PemError::new(path, other),
    })
}

/// Reading a PEM file failed.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file could not be read or is not valid PEM.
    #[error("cannot read PEM file {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The file holds no section of the wanted kind.
    #[error("PEM file {path} holds no {what}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// The PEM section kind looked for.
        what: &'static str,
    },
}

impl PemError {
    fn new(path: &Path, error: rustls_pki_types::pem::Error) -> PemError {
        PemError::Read {
            path: path.to_owned(),
            detail: format!("{error:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_an_error_not_a_panic() {
        let path = Path::new("/nonexistent/cats/ca.pem");
        assert!(matches!(load_certs(path), Err(PemError::Read { .. })));
        assert!(matches!(load_private_key(path), Err(PemError::Read { .. })));
    }

    #[test]
    fn file_without_certificates_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here\n").expect("write");
        assert!(matches!(load_certs(&path), Err(PemError::Empty { .. })));
        assert!(matches!(
            load_private_key(&path),
            Err(PemError::Empty { .. })
        ));
    }
}
