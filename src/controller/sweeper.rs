//! The expiry sweeper: withdraws published URLs the moment they expire, whatever the
//! reconcile workers are doing (under a saturated Mux rate limit they can all be waiting for
//! a token). One task, one timer: the soonest expiry.
//!
//! [`ExpiryRecord`] is the one record of when each published URL expires: reconciles write
//! it, the sweeper's timer reads it, and the `url_expires_in_seconds` gauge is fed from it
//! only, so the two cannot disagree.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use kube::Api;

use super::context::Context;
use super::error::Error;
use super::expiries::{Expiries, Key};
use super::policy::{self, url_expired, with_margin};
use super::publisher;
use crate::metrics::Metrics;
use crate::resource::MasterExport;

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

    fn next(&self) -> Option<Timestamp> {
        self.index.lock().expect("expiries lock").next()
    }

    /// The resources whose URL has expired by `now`; their timers are disarmed (the gauge
    /// keeps them until the withdrawal is recorded).
    fn take_due(&self, now: Timestamp) -> Vec<Key> {
        self.index.lock().expect("expiries lock").take_due(now)
    }
}

/// The sweeper's loop; runs for the life of the operator.
pub async fn sweep_expired_urls(ctx: Arc<Context>) {
    loop {
        let next = ctx.expiries.next();
        let changed = ctx.expiries.changed.notified();
        match next {
            Some(at) => {
                let wait = policy::until(with_margin(Timestamp::now()), at);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = changed => continue,
                }
            }
            None => {
                changed.await;
                continue;
            }
        }
        for (namespace, name) in ctx.expiries.take_due(with_margin(Timestamp::now())) {
            if let Err(error) = withdraw_expired(&ctx, &namespace, &name).await {
                tracing::warn!(%namespace, %name, %error, "could not withdraw an expired URL");
            }
        }
    }
}

/// Removes an expired URL from the status (only if the status has not changed since it was
/// read: a reconcile may just have published a fresh one) and from the URL Secret.
async fn withdraw_expired(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = obj.status.clone().unwrap_or_default();
    if !policy::drop_expired_url(&mut status, with_margin(Timestamp::now())) {
        return Ok(());
    }
    if publisher::withdraw_if_unchanged(&obj, ctx, &status, &url_expired()).await? {
        ctx.expiries.track(namespace, name, None);
        tracing::info!(%namespace, %name, "withdrew an expired URL");
    }
    Ok(())
}
