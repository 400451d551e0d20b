//! TLS for the main port (`wss://` and `https://`) with rustls: certificate and key from PEM files.
//!
//! Each handshake runs in its connection's own task (bounded by a timeout), so a slow client never
//! holds up the accept loop.
//!
//! The certificate is reloaded when either file changes (checked every few seconds) and on SIGHUP.
//! Only new handshakes see the new certificate; open connections are not touched. A pair that does
//! not load is logged and the current one kept.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate and key files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{key}: {reason}")]
    Pem {
        /// The config key (`tls_cert` or `tls_key`).
        key: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("tls_cert/tls_key: {0}")]
    Config(String),
}

/// Reads a certificate chain and its private key from PEM files; fails when the key does not
/// belong to the certificate.
fn load_pair(cert: &str, key: &str, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem { key: "tls_cert", reason: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem { key: "tls_cert", reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { key: "tls_cert", reason: format!("no certificate in {cert}") });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem { key: "tls_key", reason: e.to_string() })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::Config(e.to_string()))
}

/// The certificate presented to new handshakes, with the files it came from.
#[derive(Debug)]
pub struct CertStore {
    cert_path: String,
    key_path: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the pair; an error here stops start-up.
    pub fn load(cert: &str, key: &str) -> Result<Arc<CertStore>, TlsError> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let pair = load_pair(cert, key, &provider)?;
        Ok(Arc::new(CertStore {
            cert_path: cert.into(),
            key_path: key.into(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again and, when the pair is usable, presents it from the next handshake on.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(load_pair(&self.cert_path, &self.key_path, &self.provider)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Modification time and length of both files (`None` while one is missing).
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let one = |path: &str| std::fs::metadata(path).and_then(|m| Ok((m.modified()?, m.len()))).ok();
        Some([one(&self.cert_path)?, one(&self.key_path)?])
    }

    /// Reloads when the files change and on SIGHUP; runs until aborted.
    pub async fn watch(self: Arc<Self>) {
        let mut hup = crate::signals::Hangup::new();
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.stamp();
        loop {
            let why = tokio::select! {
                _ = tick.tick() => {
                    let now = self.stamp();
                    if now == seen || now.is_none() {
                        seen = now;
                        continue;
                    }
                    seen = now;
                    "files changed"
                }
                () = hup.recv() => {
                    seen = self.stamp();
                    "SIGHUP"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(cert = %self.cert_path, trigger = why, "TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    cert = %self.cert_path,
                    key = %self.key_path,
                    trigger = why,
                    "TLS certificate reload failed; new connections keep the current certificate"
                ),
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The rustls server configuration presenting whatever `certs` holds.
pub fn server_config(certs: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(certs.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection on the main port, past its handshake.
pub type TlsConnection = TlsStream<TcpStream>;

/// The main port's TLS side: takes accepted TCP connections through their handshake.
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<CertStore>,
}

impl Tls {
    /// TLS with the certificate in `certs`.
    pub fn new(certs: Arc<CertStore>) -> io::Result<Self> {
        let acceptor = TlsAcceptor::from(server_config(certs.clone()).map_err(io::Error::other)?);
        Ok(Tls { acceptor, certs })
    }

    /// The certificate presented.
    pub fn certificates(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// Runs the handshake of an accepted connection; `None` (logged) when it fails or takes longer
    /// than [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, tcp: TcpStream) -> Option<TlsConnection> {
        let peer = tcp.peer_addr().ok();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(?peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(?peer, "TLS handshake timed out");
                None
            }
        }
    }
}
