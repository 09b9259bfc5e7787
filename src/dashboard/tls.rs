//! Serving the dashboard over TLS (`dashboard.tls`): rustls, TLS 1.2 and 1.3 only, HTTP/1.1.
//! The certificate chain and key are read from PEM files at start, and again on SIGHUP
//! ([`Certificate::reload`]), so a renewed certificate (certbot, acme.sh) is served to new
//! connections without a restart; open connections, live streams included, keep theirs. A
//! file that cannot be read at a reload is reported and the old certificate kept.

use std::sync::{Arc, RwLock};

use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why a certificate could not be loaded; each names the file and the config key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("dashboard.tls.cert: cannot read a PEM certificate chain from {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("dashboard.tls.key: cannot read a PEM private key from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("dashboard.tls: {0}")]
    Config(String),
}

/// Read the chain and key that `files` name, and check that they belong together.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert_path, reason: "no CERTIFICATE block in the file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: key_path.clone(), reason: e.to_string() })?;
    let signing = any_supported_type(&key).map_err(|e| TlsError::Key { path: key_path, reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Config(format!("the key does not match the certificate: {e}")))?;
    Ok(certified)
}

/// The certificate being served, replaceable while connections are open.
#[derive(Debug)]
pub struct Certificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    pub fn new(files: TlsFiles) -> Result<Arc<Certificate>, TlsError> {
        let current = load(&files)?;
        Ok(Arc::new(Certificate { files, current: RwLock::new(Arc::new(current)) }))
    }

    /// Read the files again; on success new connections get the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load(&self.files)?);
        *self.current.write().expect("the certificate's lock is never held across a panic") = fresh;
        Ok(())
    }

    /// The acceptor for the connection loop: TLS 1.2 and 1.3, HTTP/1.1 only.
    pub fn acceptor(self: &Arc<Certificate>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("the certificate's lock is never held across a panic").clone())
    }
}
