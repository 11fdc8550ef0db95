//! Signatures between the NATS bridge and agents behind it: HMAC-SHA256 with a
//! shared secret over a timestamp, the scope (the webhook topic, or the subject
//! to publish on) and the body. A signed message cannot be moved to another
//! topic, and cannot be replayed once it is older than [`TOLERANCE_SECS`].
//!
//! The header is `x-ramanujan-signature: t=<unix seconds>,v1=<64 hex digits>`,
//! the MAC taken over `{t}.{scope}\n{body}`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-ramanujan-signature";

/// How far a signature's time may be from the receiver's clock, either way.
pub const TOLERANCE_SECS: u64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing {SIGNATURE_HEADER} header")]
    Missing,
    /// The header is not `t=<seconds>,v1=<64 hex digits>`.
    #[error("malformed {SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<64 hex digits>)")]
    Malformed,
    /// The signature's time is too far from now (a replay, or clocks apart).
    #[error("signature time {0} is more than {TOLERANCE_SECS} s from this host's clock")]
    Stale(u64),
    /// The signature does not match the body under the shared secret.
    #[error("bad signature")]
    Mismatch,
}

/// Seconds since the Unix epoch (WASI's clock on Spin).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], at: u64, scope: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{at}.{scope}\n").as_bytes());
    mac.update(body);
    mac
}

/// The header value signing `body` for `scope` now.
pub fn sign(secret: &[u8], scope: &str, body: &[u8]) -> String {
    sign_at(secret, scope, body, now())
}

/// The header value signing `body` for `scope` at `at` (Unix seconds).
pub fn sign_at(secret: &[u8], scope: &str, body: &[u8], at: u64) -> String {
    let digest = mac(secret, at, scope, body).finalize().into_bytes();
    format!("t={at},v1={}", hex::encode(digest))
}

/// Checks a header value against `body` for `scope` now, in constant time.
pub fn verify(secret: &[u8], scope: &str, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    verify_at(secret, scope, body, header, now())
}

/// Checks the signature header among `headers` against `body` for `scope` now.
pub fn verify_headers(
    secret: &[u8],
    scope: &str,
    body: &[u8],
    headers: &http::HeaderMap,
) -> Result<(), SignatureError> {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    verify(secret, scope, body, header)
}

/// Checks a header value against `body` for `scope` as of `now` (Unix seconds).
pub fn verify_at(
    secret: &[u8],
    scope: &str,
    body: &[u8],
    header: Option<&str>,
    now: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (at, digest) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .ok_or(SignatureError::Malformed)?;
    let at: u64 = at
        .parse()
        .ok()
        .filter(|_| at.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(SignatureError::Malformed)?;
    let digest = Some(digest)
        .filter(|d| d.len() == 64)
        .and_then(|d| hex::decode(d).ok())
        .ok_or(SignatureError::Malformed)?;
    if at.abs_diff(now) > TOLERANCE_SECS {
        return Err(SignatureError::Stale(at));
    }
    mac(secret, at, scope, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_signature_holds_for_its_scope_body_and_time_only() {
        let header = sign_at(b"secret", "agent.3.sync", b"body", NOW);
        let check =
            |secret: &[u8], scope, body: &[u8], header: Option<&str>, now| verify_at(secret, scope, body, header, now);
        assert_eq!(check(b"secret", "agent.3.sync", b"body", Some(&header), NOW), Ok(()));
        assert_eq!(
            check(b"secret", "agent.3.sync", b"body", Some(&header), NOW + 300),
            Ok(())
        );
        assert_eq!(
            check(b"secret", "agent.4.sync", b"body", Some(&header), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"secret", "agent.3.sync", b"bodY", Some(&header), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"other", "agent.3.sync", b"body", Some(&header), NOW),
            Err(SignatureError::Mismatch)
        );
        // A replay later than the tolerance, or a clock far ahead.
        assert_eq!(
            check(b"secret", "agent.3.sync", b"body", Some(&header), NOW + 301),
            Err(SignatureError::Stale(NOW))
        );
        assert_eq!(
            check(b"secret", "agent.3.sync", b"body", Some(&header), NOW - 301),
            Err(SignatureError::Stale(NOW))
        );
        // The time is part of what is signed.
        let moved = header.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            check(b"secret", "agent.3.sync", b"body", Some(&moved), NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(b"secret", "t", b"", None, NOW), Err(SignatureError::Missing));
        let digest = header.split_once(",v1=").unwrap().1;
        for bad in [
            "",
            "v1=00",
            &format!("v1={digest}"),
            &format!("t=,v1={digest}"),
            &format!("t=+5,v1={digest}"),
            &format!("t={NOW},v1=zz"),
            &format!("t={NOW},v1={digest}0"),
            &format!("t={NOW};v1={digest}"),
        ] {
            assert_eq!(
                check(b"secret", "agent.3.sync", b"body", Some(bad), NOW),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
