//! TLS for `wss://`: a rustls server config from PEM files (ring provider, TLS 1.2 and
//! 1.3, ALPN `http/1.1`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file has no usable PEM certificate.
    #[error("{path}: no PEM certificate found ({detail})")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The key file has no usable PEM private key.
    #[error("{path}: no PEM private key found ({detail})")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls rejected the pair (e.g. key does not match the certificate).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Builds an acceptor from a PEM certificate chain and a PEM private key.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            path: cert_file.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_file.to_owned(),
            detail: "the file is empty".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: key_file.to_owned(),
        detail: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, body: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("hivecast-tls-{}-{name}", std::process::id()));
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn good_pair_and_each_failure() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = temp("cert.pem", ck.cert.pem().as_bytes());
        let key = temp("key.pem", ck.signing_key.serialize_pem().as_bytes());
        assert!(acceptor(&cert, &key).is_ok());

        let missing = Path::new("/nonexistent/cert.pem");
        assert!(matches!(
            acceptor(missing, &key),
            Err(TlsError::Read { .. })
        ));
        let empty = temp("empty.pem", b"");
        assert!(matches!(acceptor(&empty, &key), Err(TlsError::Cert { .. })));
        assert!(matches!(acceptor(&cert, &empty), Err(TlsError::Key { .. })));
        // A key that does not belong to the certificate.
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        let other_key = temp(
            "other-key.pem",
            other.signing_key.serialize_pem().as_bytes(),
        );
        assert!(matches!(
            acceptor(&cert, &other_key),
            Err(TlsError::Rustls(_))
        ));
        for p in [cert, key, empty, other_key] {
            let _ = std::fs::remove_file(p);
        }
    }
}
