//! The `Mux-Signature` header of webhook deliveries.
//!
//! `Mux-Signature: t=<unix seconds>,v1=<hex>` where `v1` is HMAC-SHA256, keyed with the
//! endpoint's signing secret, over `<t>.<raw body>`. Several `v1=` may appear (Mux sends
//! one per active secret while a secret is rotated); any one matching is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "Mux-Signature";

/// The official SDKs refuse a timestamp older than this.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// The header value for `body` signed at `timestamp` with `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Why a delivery was refused; also the label of the "refused" metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Mux-Signature header")]
    Missing,
    #[error("the Mux-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is too old")]
    Stale,
    #[error("the signature's timestamp is in the future")]
    Future,
    #[error("no signature matches a configured signing secret")]
    Mismatch,
}

impl SignatureError {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Stale => "stale",
            SignatureError::Future => "future",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// Verifies a `Mux-Signature` header against any of `secrets`, with `now` in Unix seconds
/// and a tolerance (in seconds) for clock skew in both directions.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[impl AsRef<[u8]>],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => candidates.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            // Other schemes may come later; they are not ours to judge.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // In i128: a timestamp near i64::MIN or MAX is far out of tolerance, not an overflow
    // (which panics in debug builds and wraps into "fresh" in release ones).
    let age = i128::from(now) - i128::from(timestamp);
    if age > i128::from(tolerance_secs) {
        return Err(SignatureError::Stale);
    }
    if -age > i128::from(tolerance_secs) {
        return Err(SignatureError::Future);
    }
    // Check every pair, without stopping early, so timing says nothing of which matched.
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = mac(secret.as_ref(), timestamp, body);
        for candidate in &candidates {
            matched |= expected.as_slice().ct_eq(candidate.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_signed_body_verifies() {
        let header = sign(b"secret", NOW, b"{}");
        assert_eq!(verify(Some(&header), b"{}", &[b"secret"], NOW, 300), Ok(()));
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        let good = sign(b"new", NOW, b"{}");
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify(Some(&header), b"{}", &[b"new"], NOW, 300), Ok(()));
    }

    #[test]
    fn refusals_say_why() {
        let header = sign(b"secret", NOW, b"{}");
        assert_eq!(
            verify(None, b"{}", &[b"secret"], NOW, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("garbage"), b"{}", &[b"secret"], NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&header), b"{ }", &[b"secret"], NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), b"{}", &[b"secret"], NOW + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), b"{}", &[b"secret"], NOW - 301, 300),
            Err(SignatureError::Future)
        );
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_are_refused_not_overflowed() {
        for (timestamp, why) in [
            (i64::MIN, SignatureError::Stale),
            (i64::MAX, SignatureError::Future),
        ] {
            let header = sign(b"secret", timestamp, b"{}");
            assert_eq!(
                verify(Some(&header), b"{}", &[b"secret"], NOW, 300),
                Err(why)
            );
        }
        let header = sign(b"secret", 0, b"{}");
        assert_eq!(
            verify(Some(&header), b"{}", &[b"secret"], i64::MIN, i64::MAX),
            Err(SignatureError::Future)
        );
    }
}
