//! A Mux access token, which never shows whole.

use std::fmt;

use secrecy::SecretString;
use sha2::Digest;

/// A Mux access token. Neither half ever shows in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    pub(super) token_id: String,
    pub(super) token_secret: SecretString,
}

impl Credentials {
    pub fn new(token_id: impl Into<String>, token_secret: impl Into<String>) -> Self {
        Self {
            token_id: token_id.into(),
            token_secret: SecretString::from(token_secret.into()),
        }
    }

    /// What tells one token's rate limiter from another's: a digest of both halves. Token IDs
    /// are not secret: keyed by the ID alone, anyone could name a victim's ID with a bogus
    /// secret and drain the victim's budget with 401s.
    pub(super) fn limiter_key(&self) -> [u8; 32] {
        use secrecy::ExposeSecret;
        let mut hasher = sha2::Sha256::new();
        // Length-prefixed, so that no two (id, secret) pairs hash the same bytes.
        hasher.update((self.token_id.len() as u64).to_be_bytes());
        hasher.update(self.token_id.as_bytes());
        hasher.update(self.token_secret.expose_secret().as_bytes());
        hasher.finalize().into()
    }

    /// A short, stable, non-reversible tag for the token: lets logs and metrics tell two
    /// environments apart without naming the token.
    pub fn fingerprint(&self) -> String {
        let digest = sha2::Sha256::digest(self.token_id.as_bytes());
        hex::encode(&digest[..4])
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials(fingerprint {})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_shows_neither_half() {
        let creds = Credentials::new("TOKENID123", "TOPSECRET");
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("TOKENID123") && !shown.contains("TOPSECRET"),
            "{shown}"
        );
    }
}
