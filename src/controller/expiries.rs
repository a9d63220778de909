//! When each published URL expires, soonest first: what the expiry sweeper works from, so an
//! expired URL is withdrawn on time even when every reconcile worker is busy waiting on Mux.
//!
//! [`ExpiryRecord`] is the one record of when each published URL expires: reconciles write
//! it, the sweeper's timer reads it, and the `url_expires_in_seconds` gauge is fed from it
//! only, so the two cannot disagree.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;

use crate::metrics::Metrics;

/// A resource, as (namespace, name).
pub type Key = (String, String);

#[derive(Debug, Default)]
pub struct Expiries {
    by_time: BTreeSet<(Timestamp, Key)>,
    by_key: HashMap<Key, Timestamp>,
}

impl Expiries {
    /// Records when `key`'s published URL expires (`None`: it publishes none).
    pub fn set(&mut self, key: Key, expires_at: Option<Timestamp>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key.clone()));
        }
        if let Some(at) = expires_at {
            self.by_time.insert((at, key.clone()));
            self.by_key.insert(key, at);
        }
    }

    /// The soonest expiry.
    pub fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns what has expired by `now`.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<Key> {
        let mut due = Vec::new();
        while let Some((at, key)) = self.by_time.first().cloned() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// When each published URL expires, for the sweeper and the gauge.
pub struct ExpiryRecord {
    index: Mutex<Expiries>,
    changed: tokio::sync::Notify,
    metrics: Metrics,
}

impl ExpiryRecord {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            index: Mutex::default(),
            changed: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// Records when `namespace/name`'s published URL expires (`None`: it publishes none).
    pub fn track(&self, namespace: &str, name: &str, expires_at: Option<Timestamp>) {
        let key: Key = (namespace.to_string(), name.to_string());
        self.metrics.set_expiry(namespace, name, expires_at);
        self.index
            .lock()
            .expect("expiries lock")
            .set(key, expires_at);
        self.changed.notify_one();
    }

    pub(super) fn next(&self) -> Option<Timestamp> {
        self.index.lock().expect("expiries lock").next()
    }

    /// Resolves when an expiry is recorded after this call (the sweeper's timer re-arms).
    pub(super) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The resources whose URL has expired by `now`; their timers are disarmed (the gauge
    /// keeps them until the withdrawal is recorded).
    pub(super) fn take_due(&self, now: Timestamp) -> Vec<Key> {
        self.index.lock().expect("expiries lock").take_due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn key(name: &str) -> Key {
        ("media".into(), name.into())
    }

    #[test]
    fn due_expiries_come_out_soonest_first_and_updates_replace() {
        let mut e = Expiries::default();
        e.set(key("a"), Some(t(30)));
        e.set(key("b"), Some(t(10)));
        e.set(key("c"), Some(t(20)));
        e.set(key("c"), Some(t(40))); // refreshed: a new expiry replaces the old
        e.set(key("a"), None); // withdrawn
        assert_eq!(e.next(), Some(t(10)));
        assert_eq!(e.take_due(t(35)), vec![key("b")]);
        assert_eq!(e.take_due(t(40)), vec![key("c")]);
        assert!(e.is_empty());
    }
}
