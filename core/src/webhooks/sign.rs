//! Signatures: `v1=` + hex HMAC-SHA256 over `"<timestamp>.<body>"`, one per secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `v1` signature of `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this never returns early.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The signature header: `v1=<hex>` for each secret (two during a rotation).
pub fn signature_header(secrets: &[String], timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| format!("v1={}", sign(s.as_bytes(), timestamp, body))).collect::<Vec<_>>().join(",")
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the timestamp header is not a number")]
    BadTimestamp,
    #[error("the timestamp is {0} s away from now, outside the replay window")]
    OutsideWindow(i64),
    #[error("no v1 signature matches")]
    NoMatch,
}

/// What a receiver checks: one of the header's `v1` signatures matches `secret`, and the
/// timestamp is within `window_s` of `now_s` (a captured request cannot be replayed later).
pub fn verify(
    secret: &[u8],
    header: &str,
    timestamp: &str,
    body: &[u8],
    now_s: i64,
    window_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now_s - ts).abs() > window_s {
        return Err(VerifyError::OutsideWindow(now_s - ts));
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return Err(VerifyError::NoMatch) };
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .any(|hex_sig| hex::decode(hex_sig).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()));
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_only_inside_the_window() {
        let body = br#"{"id":"m1"}"#;
        let header = signature_header(&["new-secret".into(), "old-secret".into()], 1_700_000_000, body);
        assert_eq!(header.matches("v1=").count(), 2);
        for secret in ["new-secret", "old-secret"] {
            assert_eq!(verify(secret.as_bytes(), &header, "1700000000", body, 1_700_000_100, 300), Ok(()));
        }
        assert_eq!(verify(b"other", &header, "1700000000", body, 1_700_000_000, 300), Err(VerifyError::NoMatch));
        assert_eq!(
            verify(b"new-secret", &header, "1700000000", b"{}", 1_700_000_000, 300),
            Err(VerifyError::NoMatch),
            "another body"
        );
        assert_eq!(
            verify(b"new-secret", &header, "1700000000", body, 1_700_000_301, 300),
            Err(VerifyError::OutsideWindow(301))
        );
        assert_eq!(verify(b"new-secret", &header, "soon", body, 0, 300), Err(VerifyError::BadTimestamp));
    }
}
