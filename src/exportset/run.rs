//! The set controller's wiring: one controller per watched namespace (the RBAC may grant
//! nothing cluster-wide), woken by spec changes of a set and by any change of its children.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use mux::MuxClients;

use super::children::SET_UID_LABEL;
use super::reconcile::{SetContext, error_policy, reconcile};
use super::resource::MasterExportSet;
use crate::resource::MasterExport;

/// Children changing at once (1,000 becoming Ready) wake a set once per this.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Runs the set controllers of `scopes` (`None`: every namespace) until SIGTERM.
pub async fn run(client: Client, mux: MuxClients, scopes: Vec<Option<String>>) {
    let ctx = Arc::new(SetContext::new(client.clone(), mux));
    run_with(ctx, scopes).await
}

/// As [`run`], with a context the caller keeps (to pass it webhooks: `on_webhook`).
pub async fn run_with(ctx: Arc<SetContext>, scopes: Vec<Option<String>>) {
    let client = ctx.client.clone();
    let mut controllers = Vec::new();
    for scope in scopes {
        let sets: Api<MasterExportSet> = match &scope {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        };
        // The children by metadata only: their owner reference is all the mapping reads, and
        // a set of 10,000 exports would otherwise decode each whole object on every change.
        let children: Api<PartialObjectMeta<MasterExport>> = match &scope {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        };
        let (reader, writer) = reflector::store();
        // Our own status writes must not wake us: spec changes (generation) do, and children.
        let gauges = ctx.gauges();
        let objects = watcher(sets, watcher::Config::default().any_semantic())
            .default_backoff()
            .map_ok(move |event| {
                // A deleted set is never reconciled again: its series go here.
                if let watcher::Event::Delete(set) = &event {
                    gauges.forget(&set.namespace().unwrap_or_default(), &set.name_any());
                }
                event
            })
            .reflect(writer)
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
        let child_events = watcher(children, watcher::Config::default().labels(SET_UID_LABEL))
            .default_backoff()
            .touched_objects();
        let controller = Controller::for_stream(objects, reader)
            .owns_stream(child_events)
            .reconcile_all_on(ctx.wakeups())
            .with_config(
                ControllerConfig::default()
                    .debounce(DEBOUNCE)
                    .concurrency(4),
            )
            .shutdown_on_signal();
        let ctx = ctx.clone();
        controllers.push(
            controller
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "set controller event");
                    }
                })
                .boxed(),
        );
    }
    futures::future::join_all(controllers).await;
}
