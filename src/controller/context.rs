//! What every reconcile shares (clients, metrics, wake-ups, the record of expiries), and the
//! options it is built from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::recorder::Recorder;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::copy_policy::CopySettings;
use super::expiries::ExpiryRecord;
use super::policy::preparation::{Preparations, Seen};
use super::policy::{Grant, Settings};
use super::snapshots::Snapshots;
use super::wakeup::Wakeups;
use crate::metrics::Metrics;
use crate::resource::{MasterExport, MasterExportStatus};
use mux::MuxClients;

use super::tokens::TokenBook;

pub const FIELD_MANAGER: &str = "mux-master-operator";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mux-master-operator");
/// Keys of the credentials Secret.
pub const TOKEN_ID_KEY: &str = "tokenId";
pub const TOKEN_SECRET_KEY: &str = "tokenSecret";

/// The owner reference of everything a resource makes (its URL Secret, its copy Jobs): the
/// resource is their controller, and the garbage collector deletes them after it.
pub fn owned_by(obj: &MasterExport) -> Option<Vec<OwnerReference>> {
    let mut owner = obj.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(vec![owner])
}

/// How the controller behaves, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    /// How long a deletion waits for Mux before giving up on revoking access.
    pub deletion_timeout: Duration,
    /// The fallback poll while webhooks flow.
    pub webhook_poll: Duration,
    /// Whether the URL is published in the status too, or in the URL Secret only.
    pub url_in_status: bool,
    /// How copy Jobs are made.
    pub copy: CopySettings,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub mux: MuxClients,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Webhook wake-ups, and whether webhooks flow (polls slow down when they do).
    pub wakeups: Arc<Wakeups>,
    pub settings: Settings,
    pub deletion_timeout: Duration,
    pub webhook_poll: Duration,
    pub url_in_status: bool,
    pub copy: CopySettings,
    /// When each published URL expires: the sweeper's timers and the expiry gauge.
    pub expiries: ExpiryRecord,
    /// The assets verified webhooks carried, used instead of a GET while they are news.
    pub snapshots: Arc<Snapshots>,
    /// The masters preparing for our requests and recent preparation times: when a
    /// preparing master is worth a look (`policy::preparation`).
    preparations: Mutex<Preparations>,
    /// Consecutive failures per resource, for backoff; forgotten on success.
    failures: Mutex<HashMap<ObjectRef<MasterExport>, u32>>,
    /// The latest URL grant recorded per asset (any resource on it), with its window: what
    /// another resource on the asset adopts instead of renewing.
    grants: Mutex<HashMap<String, Grant>>,
    /// The Mux tokens read from credentials Secrets: reused for a few seconds, and the last
    /// one kept for a deletion's revoke when the Secret went first.
    pub tokens: TokenBook,
}

impl Context {
    pub fn new(
        client: Client,
        mux: MuxClients,
        recorder: Recorder,
        metrics: Metrics,
        wakeups: Arc<Wakeups>,
        options: Options,
    ) -> Self {
        Self::with_snapshots(
            client,
            mux,
            recorder,
            metrics,
            wakeups,
            options,
            Arc::default(),
        )
    }

    /// As [`Context::new`], sharing `snapshots` with the webhook endpoint that fills it.
    pub fn with_snapshots(
        client: Client,
        mux: MuxClients,
        recorder: Recorder,
        metrics: Metrics,
        wakeups: Arc<Wakeups>,
        options: Options,
        snapshots: Arc<Snapshots>,
    ) -> Self {
        Self {
            snapshots,
            client,
            mux,
            recorder,
            expiries: ExpiryRecord::new(metrics.clone()),
            metrics,
            wakeups,
            settings: options.settings,
            deletion_timeout: options.deletion_timeout,
            webhook_poll: options.webhook_poll,
            url_in_status: options.url_in_status,
            copy: options.copy,
            failures: Mutex::default(),
            preparations: Mutex::default(),
            grants: Mutex::default(),
            tokens: TokenBook::default(),
        }
    }

    /// Remembers the grant a status publishes, when its window is known.
    pub(crate) fn record_grant(&self, status: &MasterExportStatus) {
        let Some(asset) = status.asset.as_ref() else {
            return;
        };
        let Some(master) = status.master.as_ref() else {
            return;
        };
        if let (Some(url), Some(at)) = (&master.url, &master.requested_at) {
            let grant = Grant::new(url, at.0);
            self.grants
                .lock()
                .expect("grants lock")
                .insert(asset.id.clone(), grant);
        }
    }

    /// The grant last recorded for `asset`.
    pub(crate) fn grant_for(&self, asset: &str) -> Option<Grant> {
        self.grants.lock().expect("grants lock").get(asset).cloned()
    }

    /// Records what a call made at `at` showed of `asset`'s master.
    /// Wakes the resources of masters whose first look this brought forward.
    pub(crate) fn saw_master(&self, asset: &str, seen: Seen, at: jiff::Timestamp) {
        let woken = self
            .preparations
            .lock()
            .expect("preparations lock")
            .observe(asset, seen, at, &self.settings);
        self.wake_for_first_looks(woken);
    }

    /// Wakes the resources on `assets`, whose first look came forward, when they poll: while
    /// webhooks flow, their events say when to look (a wake-up would bring a GET forward).
    fn wake_for_first_looks(&self, assets: Vec<String>) {
        if self.slow_poll().is_some() {
            return;
        }
        for asset in assets {
            self.wakeups.wake_on(&asset);
        }
    }

    /// When `asset`'s master, preparing for our request, is worth its first look.
    pub(crate) fn first_look(&self, asset: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.preparations
            .lock()
            .expect("preparations lock")
            .first_look(asset, now, &self.settings)
    }

    /// The other resources on `asset` that need access now, as `namespace/name`.
    pub(crate) fn others_wanting(&self, asset: &str, obj: &MasterExport) -> Vec<String> {
        self.wakeups
            .others_wanting(asset, &ObjectRef::from(obj))
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect()
    }

    /// The slow pace of polls while webhooks flow; `None` when they do not.
    pub(crate) fn slow_poll(&self) -> Option<Duration> {
        self.wakeups.healthy().then_some(self.webhook_poll)
    }

    /// The next backoff for `obj` after one more failure: 5 s doubling to 5 min, jittered.
    pub(crate) fn backoff(&self, obj: &MasterExport) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(ObjectRef::from(obj)).or_default();
        *n = n.saturating_add(1);
        let base = Duration::from_secs(5).saturating_mul(2u32.saturating_pow((*n - 1).min(10)));
        let capped = base.min(Duration::from_secs(300));
        capped.mul_f64(0.8 + 0.4 * rand::random::<f64>())
    }

    /// Drops what is kept about a resource that is going away, so memory follows the
    /// resources that exist.
    pub(crate) fn forget(&self, obj: &MasterExport) {
        self.expiries
            .track(&obj.namespace().unwrap_or_default(), &obj.name_any(), None);
        let asset = obj.status.as_ref().and_then(|s| s.asset.as_ref());
        if let Some(asset) = asset
            && self
                .wakeups
                .others_on(&asset.id, &ObjectRef::from(obj))
                .is_empty()
        {
            self.snapshots.forget(&asset.id);
            let woken = self
                .preparations
                .lock()
                .expect("preparations lock")
                .forget(&asset.id, jiff::Timestamp::now());
            self.wake_for_first_looks(woken);
        }
        self.succeeded(obj);
        self.wakeups.take_poke(&ObjectRef::from(obj));
    }

    pub(crate) fn succeeded(&self, obj: &MasterExport) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from(obj));
    }
}
