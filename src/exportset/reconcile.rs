//! The set's reconciler: the I/O around [`plan::plan`]. Lists the environment (at creation,
//! after a spec change, and every `rescanInterval`), reads the children afresh from the
//! apiserver (a consistent list, so a child created a moment ago always holds its slot),
//! creates what the plan admits, marks children whose asset is gone, and writes the status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use mux::{ErrorKind, MuxClients};
use serde_json::json;

use super::children::{self, ASSET_DELETED_ANNOTATION, SET_UID_LABEL};
use super::copying;
use super::discovery::{self, Scanned};
use super::manifest;
use super::metrics::SetGauges;
use super::pattern::Pattern;
use super::plan::{self, Plan};
use super::rescan::{self, Freshness};
use super::resource::{ManifestStatus, MasterExportSet, MasterExportSetStatus, SetCopying};
use super::summary::{self, Blocked};
use crate::controller::conditions::{self, Summary};
use crate::resource::MasterExport;

pub const FIELD_MANAGER: &str = "mux-master-operator-sets";
/// At most this many failed children are named in the status.
const NAMED_FAILURES: usize = 50;
/// While children work, look again at least this often (their changes wake the set anyway).
const WORKING_RECHECK: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// What the set controller shares between reconciles.
pub struct SetContext {
    pub client: Client,
    pub mux: MuxClients,
    /// The last listing of each set's environment, by set UID: a restart lists again.
    scans: Mutex<HashMap<String, Arc<Scanned>>>,
    /// When a webhook last asked for a new listing.
    rescan_requested: Mutex<Option<Timestamp>>,
    /// Wakes every set of each controller (see `run`).
    wake: Mutex<Vec<futures::channel::mpsc::UnboundedSender<()>>>,
    /// The counts `/metrics` shows.
    gauges: SetGauges,
}

impl SetContext {
    pub fn new(client: Client, mux: MuxClients) -> Self {
        Self {
            client,
            mux,
            scans: Mutex::default(),
            rescan_requested: Mutex::default(),
            wake: Mutex::default(),
            gauges: SetGauges::default(),
        }
    }

    /// The gauges the sets' counts are published in.
    pub fn gauges(&self) -> SetGauges {
        self.gauges.clone()
    }

    /// Publishes each set's counts in these gauges (the operator's `/metrics`).
    pub fn with_gauges(mut self, gauges: SetGauges) -> Self {
        self.gauges = gauges;
        self
    }

    /// A webhook of type `kind` arrived: if an asset appeared or went, every set lists its
    /// environment again soon (see `rescan`). Returns whether it did.
    pub fn on_webhook(&self, kind: &str) -> bool {
        if !rescan::prompts_rescan(kind) {
            return false;
        }
        *self.rescan_requested.lock().expect("rescan lock") = Some(Timestamp::now());
        let mut wake = self.wake.lock().expect("wake lock");
        wake.retain(|sender| sender.unbounded_send(()).is_ok());
        true
    }

    /// A stream that wakes every set of one controller on such webhooks.
    pub fn wakeups(&self) -> futures::channel::mpsc::UnboundedReceiver<()> {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        self.wake.lock().expect("wake lock").push(sender);
        receiver
    }
}

pub async fn reconcile(set: Arc<MasterExportSet>, ctx: Arc<SetContext>) -> Result<Action, Error> {
    let namespace = set.namespace().unwrap_or_default();
    if set.metadata.deletion_timestamp.is_some() {
        // The garbage collector deletes the children (each revokes its access as it goes).
        ctx.gauges.forget(&namespace, &set.name_any());
        return Ok(Action::await_change());
    }
    let uid = set.uid().unwrap_or_default();
    let sets: Api<MasterExportSet> = Api::namespaced(ctx.client.clone(), &namespace);

    let rescan = match mux::duration::parse(&set.spec.rescan_interval) {
        Ok(d) => d,
        Err(e) => {
            let why = Blocked::InvalidTemplate(format!("rescanInterval: {e}"));
            write_blocked(&sets, &set, &why).await?;
            return Ok(Action::await_change());
        }
    };
    let pattern = match &set.spec.template.destination {
        None => None,
        Some(d) => match Pattern::parse(&d.url) {
            Ok(p) => Some(p),
            Err(e) => {
                let why = Blocked::InvalidTemplate(format!("destination.url: {e}"));
                write_blocked(&sets, &set, &why).await?;
                return Ok(Action::await_change());
            }
        },
    };

    let (scanned, until_rescan) = match current_scan(&ctx, &set, &namespace, &uid, rescan).await {
        Ok(scanned) => scanned,
        Err(why) => {
            tracing::info!(set = %set.name_any(), %namespace, ?why, "cannot list the assets");
            write_blocked(&sets, &set, &why).await?;
            return Ok(Action::requeue(RETRY));
        }
    };

    let children_api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = children_api
        .list(&ListParams::default().labels(&format!("{SET_UID_LABEL}={uid}")))
        .await?;
    let views: Vec<_> = listed.items.iter().filter_map(children::view).collect();
    let plan = plan::plan(
        &scanned.scan(),
        &views,
        set.spec.max_in_flight,
        !set.spec.suspend,
    );

    for asset_id in &plan.create {
        let asset = &scanned.selected[asset_id];
        let child = children::build_child(&set, asset, pattern.as_ref());
        match children_api.create(&PostParams::default(), &child).await {
            Ok(_) => {}
            // Created by an earlier reconcile whose list did not yet show it: it is there.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for name in &plan.gone {
        let marked = listed.items.iter().any(|c| {
            c.name_any() == *name && c.annotations().contains_key(ASSET_DELETED_ANNOTATION)
        });
        if !marked {
            let patch = json!({"metadata": {"annotations": {ASSET_DELETED_ANNOTATION: "true"}}});
            children_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }

    let work_left = plan.counts.in_flight + plan.counts.waiting > 0;
    let kept = manifest::keep(&ctx.client, &set, &listed.items, work_left).await;
    let has_destination = set.spec.template.destination.is_some();
    let summary = summary::summarize(
        &plan,
        has_destination,
        set.spec.suspend,
        kept.pending.as_deref(),
    );
    let progress = Progress {
        plan: &plan,
        scanned_at: scanned.at,
        manifest: kept.status,
        copying: copying::sum(&listed.items),
    };
    write_status(&sets, &set, &summary, Some(progress)).await?;
    ctx.gauges.record(
        &namespace,
        &set.name_any(),
        &plan.counts,
        plan.bytes_archived,
    );

    let mut next = until_rescan;
    if work_left {
        next = next.min(WORKING_RECHECK);
    }
    if kept.pending.is_some() {
        next = next.min(manifest::REWRITE_EVERY);
    }
    Ok(Action::requeue(next.max(Duration::from_secs(1))))
}

pub fn error_policy(set: Arc<MasterExportSet>, error: &Error, _ctx: Arc<SetContext>) -> Action {
    tracing::warn!(set = %set.name_any(), %error, "set reconcile failed");
    Action::requeue(RETRY)
}

/// The last scan if it is fresh and for this selector, a new one otherwise; and how long
/// until the next.
async fn current_scan(
    ctx: &SetContext,
    set: &MasterExportSet,
    namespace: &str,
    uid: &str,
    rescan: Duration,
) -> Result<(Arc<Scanned>, Duration), Blocked> {
    let generation = set.metadata.generation;
    let requested = *ctx.rescan_requested.lock().expect("rescan lock");
    if let Some(scan) = ctx.scans.lock().expect("scans lock").get(uid) {
        let now = Timestamp::now();
        let fresh = rescan::freshness(scan.at, scan.generation, generation, rescan, requested, now);
        if let Freshness::Fresh(left) = fresh {
            return Ok((scan.clone(), left));
        }
    }
    let mux = discovery::client_for(
        &ctx.client,
        &ctx.mux,
        namespace,
        &set.spec.credentials_secret_ref,
    )
    .await
    .map_err(|e| match e {
        discovery::CredentialsError::Kube(e) => Blocked::ScanFailed(e.to_string()),
        other => Blocked::Credentials(other.to_string()),
    })?;
    let scanned = discovery::scan(&mux, &set.spec.selector, generation)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Credentials => Blocked::Credentials(e.to_string()),
            _ => Blocked::ScanFailed(e.to_string()),
        })?;
    tracing::info!(
        set = %set.name_any(), %namespace,
        listed = scanned.present.len(), selected = scanned.selected.len(),
        "listed the environment's assets"
    );
    let scanned = Arc::new(scanned);
    ctx.scans
        .lock()
        .expect("scans lock")
        .insert(uid.to_string(), scanned.clone());
    Ok((scanned, rescan))
}

async fn write_blocked(
    sets: &Api<MasterExportSet>,
    set: &MasterExportSet,
    why: &Blocked,
) -> Result<(), Error> {
    write_status(sets, set, &summary::blocked(why), None).await
}

/// What a reconcile that could plan writes beside the conditions.
struct Progress<'a> {
    plan: &'a Plan,
    scanned_at: Timestamp,
    manifest: Option<ManifestStatus>,
    copying: Option<SetCopying>,
}

/// Server-side apply of the status: fields this manager no longer sets are removed.
async fn write_status(
    sets: &Api<MasterExportSet>,
    set: &MasterExportSet,
    summary: &Summary,
    planned: Option<Progress<'_>>,
) -> Result<(), Error> {
    let previous = set.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let conditions = conditions::merge(
        &previous.conditions,
        &summary.wanted(),
        &[
            conditions::READY,
            conditions::RECONCILING,
            conditions::STALLED,
        ],
        set.metadata.generation,
        &now,
    );
    let status = match planned {
        Some(Progress {
            plan,
            scanned_at,
            manifest,
            copying,
        }) => MasterExportSetStatus {
            observed_generation: set.metadata.generation,
            conditions,
            counts: plan.counts.clone(),
            progress: Some(format!("{}/{}", plan.counts.done, plan.counts.total)),
            bytes_archived: plan.bytes_archived,
            last_scan: Some(Time(scanned_at)),
            manifest,
            failed_children: plan.failed.iter().take(NAMED_FAILURES).cloned().collect(),
            copying,
        },
        // Blocked: the conditions say why; the counts stay as they were.
        None => MasterExportSetStatus {
            observed_generation: set.metadata.generation,
            conditions,
            ..previous.clone()
        },
    };
    if status == previous {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "masterexport.io/v1alpha1",
        "kind": "MasterExportSet",
        "status": status,
    });
    sets.patch_status(
        &set.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
