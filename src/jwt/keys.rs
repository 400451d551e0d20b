//! Verification keys of one app: an HMAC secret, a PEM public key, and/or a JWKS file that is
//! reloaded when it changes.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// The kind of key an algorithm needs; a token is only ever checked with a key of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// HS256/384/512: the shared secret.
    Hmac,
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256/384.
    Ec,
    /// EdDSA (Ed25519).
    Ed,
}

impl KeyKind {
    /// The kind an algorithm needs.
    pub fn of(alg: Algorithm) -> KeyKind {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyKind::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyKind::Rsa,
            Algorithm::ES256 | Algorithm::ES384 => KeyKind::Ec,
            Algorithm::EdDSA => KeyKind::Ed,
        }
    }

    /// Every algorithm of this kind.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyKind::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            KeyKind::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyKind::Ec => &[Algorithm::ES256, Algorithm::ES384],
            KeyKind::Ed => &[Algorithm::EdDSA],
        }
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable key.
    #[error("{path} is not {what}")]
    Format {
        /// The file.
        path: String,
        /// What was expected.
        what: &'static str,
    },
}

/// A public key from a PEM file: RSA, EC or Ed25519, detected from the file.
pub fn load_pem(path: &Path) -> Result<(KeyKind, DecodingKey), KeyError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: p.clone(), source })?;
    if let Ok(k) = DecodingKey::from_rsa_pem(&bytes) {
        return Ok((KeyKind::Rsa, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(&bytes) {
        return Ok((KeyKind::Ec, k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(&bytes) {
        return Ok((KeyKind::Ed, k));
    }
    Err(KeyError::Format { path: p, what: "an RSA, EC or Ed25519 public key in PEM form" })
}

/// One key of a JWKS file.
pub struct JwksKey {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// What it verifies.
    pub kind: KeyKind,
    /// `alg`, when the key pins one.
    pub alg: Option<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

/// Parses a JWKS file; keys of unsupported types are skipped.
pub fn load_jwks(path: &Path) -> Result<Vec<JwksKey>, KeyError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: p.clone(), source })?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|_| KeyError::Format { path: p.clone(), what: "a JWKS document" })?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyKind::Ec,
            AlgorithmParameters::OctetKeyPair(_) => KeyKind::Ed,
            AlgorithmParameters::OctetKey(_) => continue, // shared secrets do not belong in a public JWKS
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        let alg = jwk.common.key_algorithm.and_then(|a| match a {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::PS384 => Some(Algorithm::PS384),
            KeyAlgorithm::PS512 => Some(Algorithm::PS512),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None,
        });
        keys.push(JwksKey { kid: jwk.common.key_id.clone(), kind, alg, key });
    }
    if keys.is_empty() {
        return Err(KeyError::Format { path: p, what: "a JWKS document with a usable RSA, EC or OKP key" });
    }
    Ok(keys)
}

/// A JWKS file kept in memory and reloaded when its modification time changes (or on demand).
pub struct JwksFile {
    path: PathBuf,
    state: RwLock<(Option<SystemTime>, Arc<Vec<JwksKey>>)>,
}

impl JwksFile {
    /// Loads the file once.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let keys = load_jwks(path)?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(JwksFile { path: path.to_path_buf(), state: RwLock::new((mtime, Arc::new(keys))) })
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<Vec<JwksKey>> {
        self.state.read().map(|s| s.1.clone()).unwrap_or_else(|p| p.into_inner().1.clone())
    }

    /// Reloads when the file changed (or always, with `force`). A broken file keeps the old keys.
    pub fn refresh(&self, force: bool) {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let current = self.state.read().map(|s| s.0).unwrap_or(None);
        if !force && mtime == current {
            return;
        }
        match load_jwks(&self.path) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), keys = keys.len(), "JWKS reloaded");
                let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
                *st = (mtime, Arc::new(keys));
            }
            Err(e) => tracing::error!(error = %e, "JWKS reload failed; keeping the previous keys"),
        }
    }
}
