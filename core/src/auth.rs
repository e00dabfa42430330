//! argon2id password hashes and HS256 JWTs (docs/protocol.md §1).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::UserRef;

pub const ISSUER: &str = "aurora";
pub const AUDIENCE: &str = "aurora";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token")]
    InvalidToken,
    #[error("token expired")]
    Expired,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token signing failed: {0}")]
    Sign(String),
}

/// Hashes with argon2id (default parameters: m=19 MiB, t=2, p=1). CPU-heavy: call off the runtime.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("not-a-real-password").unwrap_or_default());

/// Checks a password; with no stored hash it still spends the same time, so
/// unknown users and wrong passwords look alike.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// The session (refresh token) the access token was issued under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Claims {
    pub fn user(&self) -> UserRef {
        UserRef { id: self.sub.as_str().into(), name: self.name.as_str().into() }
    }
}

/// Signs and verifies tokens with one HS256 key.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A fresh token for `user` under session `sid`, and its expiry (unix seconds).
    pub fn issue(&self, user: &UserRef, sid: Option<&str>) -> Result<(String, u64), AuthError> {
        let iat = unix_now();
        let exp = iat + self.ttl.as_secs().max(1);
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.name.to_string(),
            iat,
            exp,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sid: sid.map(str::to_owned),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// Verifies signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                if data.claims.exp <= unix_now() {
                    return Err(AuthError::Expired);
                }
                Ok(data.claims)
            }
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => Err(AuthError::Expired),
            Err(_) => Err(AuthError::InvalidToken),
        }
    }
}

/// A new random 32-byte key.
pub fn generate_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserRef {
        UserRef { id: "u1".into(), name: "ann".into() }
    }

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong horse", Some(&h)));
        assert!(!verify_password("not-a-real-password", None));
    }

    #[test]
    fn tokens_verify_and_reject() {
        let keys = JwtKeys::new(&[7u8; 32], Duration::from_secs(60));
        let (t, exp) = keys.issue(&user(), Some("s1")).unwrap();
        let c = keys.verify(&t).unwrap();
        assert_eq!(c.sub, "u1");
        assert_eq!(c.exp, exp);
        assert_eq!(c.sid.as_deref(), Some("s1"));
        let other = JwtKeys::new(&[8u8; 32], Duration::from_secs(60));
        assert!(matches!(other.verify(&t), Err(AuthError::InvalidToken)));
        let mut tampered = t.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());
        assert!(keys.verify("garbage").is_err());
    }
}
