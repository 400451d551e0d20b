//! Certificates for TLS tests: a test CA made with openssl for this run, server pairs it signs for
//! 127.0.0.1, and a client trusting it.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, client::Resumption};

/// A directory holding a test CA (`ca.pem`, `ca.key`) and server pairs (`{name}.pem`,
/// `{name}.key`); removed when dropped.
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// A test CA and three server pairs `a`, `b`, `c` for 127.0.0.1.
    pub fn new() -> Certs {
        Certs::with_pairs(&["a", "b", "c"])
    }

    /// A test CA and a server pair for each of `names`. Ed25519 keys make every key file the same
    /// length.
    pub fn with_pairs(names: &[&str]) -> Certs {
        let dir = std::env::temp_dir().join(format!("sinew-tls-test-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs { dir };
        certs.openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ca.key"]);
        certs.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Sinew Test CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
        ]);
        std::fs::write(certs.path("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        for (i, name) in names.iter().enumerate() {
            let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
            let serial = (1001 + i).to_string();
            certs.openssl(&["genpkey", "-algorithm", "ed25519", "-out", &key]);
            certs.openssl(&["req", "-new", "-key", &key, "-subj", "/CN=127.0.0.1", "-out", &csr]);
            certs.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &pem,
            ]);
        }
        certs
    }

    fn openssl(&self, args: &[&str]) {
        let out =
            std::process::Command::new("openssl").args(args).current_dir(&self.dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    pub fn der(&self, name: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(&self.read(name)).unwrap()
    }

    /// Replaces `target` with the content of `source` in one rename, keeping `target`'s
    /// modification time when `keep_mtime` is set.
    pub fn replace(&self, target: &str, source: &str, keep_mtime: bool) {
        let tmp = self.path(&format!("{target}.tmp"));
        std::fs::write(&tmp, self.read(source)).unwrap();
        if keep_mtime {
            let old = std::fs::metadata(self.path(target)).unwrap().modified().unwrap();
            std::fs::File::options().write(true).open(&tmp).unwrap().set_modified(old).unwrap();
        }
        std::fs::rename(&tmp, self.path(target)).unwrap();
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client configuration trusting the CA in `ca`.
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake is a full one, so the server always presents its current certificate.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// Connects to `addr` and completes a TLS handshake as 127.0.0.1.
pub async fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsStream<TcpStream> {
    tls_over(TcpStream::connect(addr).await.unwrap(), config).await
}

/// A TLS handshake as 127.0.0.1 over a connected `tcp`.
pub async fn tls_over(tcp: TcpStream, config: &Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let name = ServerName::IpAddress(tcp.peer_addr().unwrap().ip().into());
    TlsConnector::from(config.clone()).connect(name, tcp).await.expect("TLS handshake with the test CA")
}
