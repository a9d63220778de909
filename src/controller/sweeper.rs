//! The expiry sweeper: withdraws published URLs the moment they expire, whatever the
//! reconcile workers are doing (under a saturated Mux rate limit they can all be waiting for
//! a token). One task, one timer: the soonest expiry, read from the context's
//! [`ExpiryRecord`](super::expiries::ExpiryRecord).

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use kube::Api;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use super::error::Error;
use super::policy::{self, url_expired, with_margin};
use super::publisher;
use crate::resource::MasterExport;

/// Withdrawals made side by side (each waits on the apiserver, not on Mux).
const WITHDRAWALS_AT_ONCE: usize = 16;

/// The sweeper's loop; runs for the life of the operator.
pub async fn sweep_expired_urls(ctx: Arc<Context>) {
    loop {
        let next = ctx.expiries.next();
        let changed = ctx.expiries.changed();
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
        // Thousands of URLs can expire within seconds of each other (exports created
        // together): withdrawn side by side, each a read and two writes.
        let due = ctx.expiries.take_due(with_margin(Timestamp::now()));
        futures::stream::iter(due)
            .for_each_concurrent(WITHDRAWALS_AT_ONCE, |(namespace, name)| {
                let ctx = &ctx;
                async move {
                    if let Err(error) = withdraw_expired(ctx, &namespace, &name).await {
                        tracing::warn!(%namespace, %name, %error, "could not withdraw an expired URL");
                    }
                    // Its refresh was missed (or is under way): the controller looks again now
                    // rather than at a timer that evidently did not serve.
                    ctx.wakeups
                        .wake(&ObjectRef::new(&name).within(&namespace));
                }
            })
            .await;
    }
}

/// Removes an expired URL from the status (only if the status has not changed since it was
/// read: a reconcile may just have published a fresh one) and from the URL Secret.
async fn withdraw_expired(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let read = obj.status.clone().unwrap_or_default();
    let mut status = publisher::Publisher::new(&obj, ctx, &read)
        .with_stored_url(read)
        .await?;
    if !policy::drop_expired_url(&mut status, with_margin(Timestamp::now())) {
        return Ok(());
    }
    if publisher::withdraw_if_unchanged(&obj, ctx, &status, &url_expired()).await? {
        ctx.expiries.track(namespace, name, None);
        tracing::info!(%namespace, %name, "withdrew an expired URL");
    }
    Ok(())
}
