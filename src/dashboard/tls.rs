//! Serving the dashboard over TLS (`dashboard.tls`): rustls, TLS 1.2 and 1.3 only, HTTP/1.1.
//! The certificate chain and key are read from PEM files at start, and again at every config
//! reload (SIGHUP, `POST /api/reload`, `rosey reload`, `!admin reload-config`; and a plugin's
//! reload, which reads the config file for its entry: [`Certificate::reread`]), so a renewed certificate (certbot, acme.sh) is served to new
//! connections without a restart; open connections, live streams included, keep theirs. A
//! file that cannot be read refuses the reload, like any other invalid config, and the old
//! certificate is kept: a renewal caught half-written never leaves the dashboard without one.

use std::sync::{Arc, RwLock};

use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, ConfigProblem, TlsFiles, ValueSource};

/// Why a certificate could not be loaded: the config key, and what is wrong with its file.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct TlsError {
    key: &'static str,
    problem: String,
}

impl TlsError {
    fn cert(files: &TlsFiles, reason: impl std::fmt::Display) -> TlsError {
        let problem = format!("cannot read a PEM certificate chain from {}: {reason}", files.cert.display());
        TlsError { key: "dashboard.tls.cert", problem }
    }

    fn key(files: &TlsFiles, reason: impl std::fmt::Display) -> TlsError {
        let problem = format!("cannot read a PEM private key from {}: {reason}", files.key.display());
        TlsError { key: "dashboard.tls.key", problem }
    }

    fn pair(problem: String) -> TlsError {
        TlsError { key: "dashboard.tls", problem }
    }

    /// The refusal of a config reload (whose settings came from `source`), in the words of
    /// every other invalid config.
    pub fn refusing_reload(self, source: ValueSource) -> ConfigError {
        let message = format!("{}; the certificate read before is still served", self.problem);
        ConfigError::Invalid { problems: vec![ConfigProblem { key: Some(self.key.to_owned()), source, message }] }
    }
}

/// Read the chain and key that `files` name, and check that they belong together.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::cert(files, e))?;
    if chain.is_empty() {
        return Err(TlsError::cert(files, "no CERTIFICATE block in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::key(files, e))?;
    let signing = any_supported_type(&key).map_err(|e| TlsError::key(files, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::pair(format!("the key does not match the certificate: {e}")))?;
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

    /// At a config reload, before anything else changes: read the files that the new config
    /// names (`wanted`). When they are the ones being served, new connections get what was
    /// read; other files, which only a restart puts in service, are checked. An error leaves
    /// the served certificate as it was.
    pub fn reread(&self, wanted: Option<&TlsFiles>) -> Result<(), TlsError> {
        match wanted {
            Some(files) if *files == self.files => {
                let fresh = Arc::new(load(files)?);
                *self.current.write().expect("the certificate's lock is never held across a panic") = fresh;
                Ok(())
            }
            Some(files) => load(files).map(drop),
            None => Ok(()),
        }
    }

    /// The acceptor for the connection loop: TLS 1.2 and 1.3, HTTP/1.1 only.
    pub fn acceptor(self: &Arc<Certificate>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::pair(e.to_string()))?
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
