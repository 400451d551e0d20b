//! JSON Web Token verification for the built-in channel authorization endpoint.
//!
//! Each app may accept tokens signed with a shared secret (HS*), a PEM public key (RS*, PS*, ES*,
//! EdDSA) and/or keys from a JWKS file. A token is checked only with a key of the kind its `alg`
//! names, so `alg: none` and algorithm confusion (an HS token "signed" with a public key) fail.

mod grants;
mod keys;

pub use grants::{Claims, channel_granted};
pub use keys::{KeyError, KeyKind};

use crate::config::AppConfig;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keys::JwksFile;
use std::path::Path;
use std::str::FromStr;

/// Why a token was refused. The message says which, never why a signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was sent.
    #[error("missing token")]
    Missing,
    /// Malformed, badly signed, unsupported algorithm, or missing claims.
    #[error("invalid token")]
    Invalid,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not name this app's audience.
    #[error("token has the wrong audience")]
    WrongAudience,
    /// `iss` is not this app's issuer.
    #[error("token has the wrong issuer")]
    WrongIssuer,
}

/// An app's token verifier.
pub struct Verifier {
    hmac: Option<DecodingKey>,
    pem: Option<(KeyKind, DecodingKey)>,
    jwks: Option<JwksFile>,
    allowed: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

impl Verifier {
    /// Builds the verifier of an app, or `None` when it has no JWT keys configured.
    pub fn for_app(app: &AppConfig) -> Result<Option<Verifier>, String> {
        if app.jwt_secret.is_empty() && app.jwt_public_key.is_empty() && app.jwt_jwks_file.is_empty() {
            return Ok(None);
        }
        let hmac = (!app.jwt_secret.is_empty()).then(|| DecodingKey::from_secret(app.jwt_secret.as_bytes()));
        let pem = if app.jwt_public_key.is_empty() {
            None
        } else {
            Some(keys::load_pem(Path::new(&app.jwt_public_key)).map_err(|e| format!("jwt_public_key`: {e}"))?)
        };
        let jwks = if app.jwt_jwks_file.is_empty() {
            None
        } else {
            Some(JwksFile::open(Path::new(&app.jwt_jwks_file)).map_err(|e| format!("jwt_jwks_file`: {e}"))?)
        };
        let allowed = app
            .jwt_algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|_| format!("jwt_algorithms`: unknown algorithm {a}")))
            .collect::<Result<Vec<_>, _>>()?;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Some(Verifier {
            hmac,
            pem,
            jwks,
            allowed,
            issuer: non_empty(&app.jwt_issuer),
            audience: non_empty(&app.jwt_audience),
            leeway: app.jwt_leeway_seconds,
        }))
    }

    /// Reloads the JWKS file if it changed (or always, with `force`).
    pub fn refresh_jwks(&self, force: bool) {
        if let Some(j) = &self.jwks {
            j.refresh(force);
        }
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let alg = header.alg;
        if !self.allowed.is_empty() && !self.allowed.contains(&alg) {
            return Err(TokenError::Invalid);
        }
        let kind = KeyKind::of(alg);
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &self.audience {
            Some(a) => validation.set_audience(&[a]),
            None => validation.validate_aud = false,
        }
        if let Some(i) = &self.issuer {
            validation.set_issuer(&[i]);
        }
        let check = |key: &DecodingKey| jsonwebtoken::decode::<Claims>(token, key, &validation).map(|d| d.claims);
        let result = match kind {
            KeyKind::Hmac => self.hmac.as_ref().map(check),
            _ => match &self.pem {
                Some((k, key)) if *k == kind => Some(check(key)),
                _ => None,
            }
            .or_else(|| {
                let keys = self.jwks.as_ref()?.keys();
                let key = keys.iter().find(|k| {
                    k.kind == kind
                        && k.alg.is_none_or(|a| a == alg)
                        && match (&header.kid, &k.kid) {
                            (Some(want), Some(have)) => want == have,
                            (Some(_), None) => false,
                            (None, _) => true,
                        }
                })?;
                Some(check(&key.key))
            }),
        };
        let claims = result.ok_or(TokenError::Invalid)?.map_err(map_error)?;
        if let Some(iat) = claims.iat {
            let now = jsonwebtoken::get_current_timestamp();
            if iat > now + self.leeway {
                return Err(TokenError::NotYetValid);
            }
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidAudience => TokenError::WrongAudience,
        K::InvalidIssuer => TokenError::WrongIssuer,
        _ => TokenError::Invalid,
    }
}

/// Checks at start-up that an app's JWT keys load; the error names the key.
pub fn check_app(app: &AppConfig) -> Result<(), String> {
    Verifier::for_app(app).map(|_| ())
}
