//! Signatures between the NATS bridge and agents behind it: HMAC-SHA256 with a
//! shared secret over the scope (the webhook topic, or the subject to publish
//! on) and the body, so a signed message cannot be replayed to another topic.
//!
//! The header is `x-ramanujan-signature: v1=<64 hex digits>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-ramanujan-signature";

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing {SIGNATURE_HEADER} header")]
    Missing,
    /// The header is not `v1=<64 hex digits>`.
    #[error("malformed {SIGNATURE_HEADER} header (expected v1=<64 hex digits>)")]
    Malformed,
    /// The signature does not match the body under the shared secret.
    #[error("bad signature")]
    Mismatch,
}

fn mac(secret: &[u8], scope: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(scope.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// The header value signing `body` for `scope`.
pub fn sign(secret: &[u8], scope: &str, body: &[u8]) -> String {
    format!("v1={}", hex::encode(mac(secret, scope, body).finalize().into_bytes()))
}

/// Checks a header value against `body` for `scope`, in constant time.
pub fn verify(secret: &[u8], scope: &str, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digest = header
        .strip_prefix("v1=")
        .filter(|h| h.len() == 64)
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Malformed)?;
    mac(secret, scope, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_scope_and_body_only() {
        let header = sign(b"secret", "agent.3.sync", b"body");
        assert_eq!(verify(b"secret", "agent.3.sync", b"body", Some(&header)), Ok(()));
        assert_eq!(
            verify(b"secret", "agent.4.sync", b"body", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", "agent.3.sync", b"bodY", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "agent.3.sync", b"body", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"secret", "t", b"", None), Err(SignatureError::Missing));
        for bad in ["", "v1=", "v2=00", "v1=zz", &header[3..], &format!("{header}0")] {
            assert_eq!(
                verify(b"secret", "agent.3.sync", b"body", Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
