//! Built-in TLS (rustls with the ring provider), for boxes without a reverse proxy in front. The
//! certificate and key are read from PEM files at start and again on SIGHUP; a reload swaps the
//! certificate that new handshakes get, and open connections keep going undisturbed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The certificate new handshakes are answered with, and the files it comes from.
#[derive(Debug)]
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertificateFiles {
    /// Reads the certificate chain and key; fails with a one-line reason.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertificateFiles>, String> {
        let current = read(cert, key)?;
        Ok(Arc::new(CertificateFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again; on failure the previous certificate stays in use.
    pub fn reload(&self) {
        match read(&self.cert, &self.key) {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                log::info!("TLS certificate reloaded from {}", self.cert.display());
            }
            Err(e) => log::error!("TLS certificate not reloaded, keeping the previous one: {e}"),
        }
    }

    /// The rustls configuration for the server: safe defaults, HTTP/1.1, this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn read(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("the private key {} cannot be used: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("{} does not belong to {}: {e}", key.display(), cert.display()))?;
    Ok(Arc::new(certified))
}

/// Reloads the certificate (if any) on every SIGHUP while the server runs; without TLS the
/// signal is only logged, so `systemctl reload` never stops the server. Call inside the runtime.
pub fn reload_on_sighup(files: Option<Arc<CertificateFiles>>) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangup.recv().await.is_some() {
            match &files {
                Some(files) => files.reload(),
                None => log::info!("SIGHUP: nothing to reload (no TLS certificate configured)"),
            }
        }
    });
    Ok(())
}
