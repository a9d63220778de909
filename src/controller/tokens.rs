//! The Mux tokens read from credentials Secrets, kept for two uses: reused for a few seconds
//! instead of reading the Secret again on every reconcile (at 10,000 exports sharing one
//! Secret that read was as many apiserver requests as the URL Secrets' writes), and the last
//! one kept for a deletion's revoke when the Secret went first (a namespace's deletion).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mux::Credentials;

/// How long a token read from its Secret is used without reading the Secret again: a
/// rotated token is picked up within this, and at once after Mux refuses the old one.
pub const REUSE_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Read {
    token: Credentials,
    /// When it was read; `None` once Mux refused it (read again before the next use).
    at: Option<Instant>,
}

/// Tokens by credentials Secret (namespace, name).
#[derive(Debug, Default)]
pub struct TokenBook {
    read: Mutex<HashMap<(String, String), Read>>,
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

impl TokenBook {
    /// Records the token just read from Secret `namespace/name`.
    pub fn remember(&self, namespace: &str, name: &str, token: &Credentials, now: Instant) {
        let read = Read {
            token: token.clone(),
            at: Some(now),
        };
        self.lock().insert(key(namespace, name), read);
    }

    /// The token read from `namespace/name` less than [`REUSE_FOR`] ago, unless Mux
    /// refused it since.
    pub fn fresh(&self, namespace: &str, name: &str, now: Instant) -> Option<Credentials> {
        self.lock()
            .get(&key(namespace, name))
            .filter(|r| {
                r.at.is_some_and(|at| now.saturating_duration_since(at) < REUSE_FOR)
            })
            .map(|r| r.token.clone())
    }

    /// Mux refused the token of `namespace/name`: the next use reads the Secret again.
    pub fn distrust(&self, namespace: &str, name: &str) {
        if let Some(read) = self.lock().get_mut(&key(namespace, name)) {
            read.at = None;
        }
    }

    /// The token last read from `namespace/name` since the operator started, however old.
    pub fn last(&self, namespace: &str, name: &str) -> Option<Credentials> {
        self.lock()
            .get(&key(namespace, name))
            .map(|r| r.token.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Read>> {
        self.read.lock().expect("tokens lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_reused_for_a_few_seconds_and_not_after_mux_refused_it() {
        let book = TokenBook::default();
        let t0 = Instant::now();
        let token = Credentials::new("id", "secret");
        assert!(book.fresh("media", "mux", t0).is_none(), "never read");
        book.remember("media", "mux", &token, t0);
        assert!(
            book.fresh("media", "mux", t0 + Duration::from_secs(9))
                .is_some()
        );
        assert!(
            book.fresh("media", "mux", t0 + REUSE_FOR).is_none(),
            "read again"
        );
        assert!(book.fresh("other", "mux", t0).is_none(), "per Secret");
        book.remember("media", "mux", &token, t0);
        book.distrust("media", "mux");
        assert!(
            book.fresh("media", "mux", t0).is_none(),
            "refused: read again"
        );
        assert!(
            book.last("media", "mux").is_some(),
            "still there for a deletion's revoke"
        );
    }
}
