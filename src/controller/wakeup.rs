//! Turning webhook events into reconciles: find the resources through the index, mark them
//! "poked" (so the reconcile asks Mux instead of trusting its status), and queue them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;

use super::index::SourceIndex;
use crate::resource::MasterExport;
use mux::types::WebhookEvent;

type Ref = ObjectRef<MasterExport>;

/// A wake-up older than this no longer counts as waiting (see [`Wakeups::waiting`]).
pub const POKE_FRESH: Duration = Duration::from_secs(10);

/// Events after which a reconcile may act differently. `master.preparing`, `asset.created`
/// and `live_stream.active` change nothing the controller would do, so they wake nobody:
/// that keeps the calls to Mux down while a master prepares.
pub fn wakes(kind: &str) -> bool {
    matches!(
        kind,
        "video.asset.master.ready"
            | "video.asset.master.errored"
            | "video.asset.master.deleted"
            | "video.asset.ready"
            | "video.asset.errored"
            | "video.asset.deleted"
            | "video.asset.live_stream_completed"
            | "video.live_stream.idle"
    )
}

/// The Mux IDs an event is about.
pub fn ids_of(event: &WebhookEvent) -> Vec<String> {
    let mut ids = vec![event.object.id.clone()];
    for key in ["id", "live_stream_id"] {
        if let Some(id) = event.data.get(key).and_then(|v| v.as_str()) {
            ids.push(id.to_string());
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

pub struct Wakeups {
    indexes: RwLock<Vec<Arc<RwLock<SourceIndex>>>>,
    /// One queue per controller, with the namespace it watches (`None`: all).
    queues: Mutex<Vec<(Option<String>, mpsc::Sender<Ref>)>>,
    pokes: Mutex<HashMap<Ref, Instant>>,
    enabled: bool,
    /// The last verified event (or the start), for telling whether webhooks still flow.
    last_event: Mutex<Instant>,
    stale_after: Duration,
}

impl Wakeups {
    pub fn new(enabled: bool, stale_after: Duration) -> Self {
        Self {
            indexes: RwLock::default(),
            queues: Mutex::default(),
            pokes: Mutex::default(),
            enabled,
            last_event: Mutex::new(Instant::now()),
            stale_after,
        }
    }

    /// Registers a controller's index and queue.
    pub fn add(
        &self,
        namespace: Option<String>,
        index: Arc<RwLock<SourceIndex>>,
        queue: mpsc::Sender<Ref>,
    ) {
        self.indexes.write().expect("indexes lock").push(index);
        self.queues
            .lock()
            .expect("queues lock")
            .push((namespace, queue));
    }

    /// Webhooks are configured and events arrived recently (or we just started): polling
    /// can slow down.
    pub fn healthy(&self) -> bool {
        self.enabled
            && self.last_event.lock().expect("last event lock").elapsed() < self.stale_after
    }

    /// Wakes the resources an event concerns; returns how many.
    pub fn on_event(&self, event: &WebhookEvent, received: Instant) -> usize {
        *self.last_event.lock().expect("last event lock") = received;
        if !wakes(&event.kind) {
            return 0;
        }
        let mut targets: Vec<Ref> = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            let index = index.read().expect("index lock");
            for id in ids_of(event) {
                targets.extend(index.lookup(&id));
            }
        }
        targets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        targets.dedup();
        self.queue(&targets, received);
        targets.len()
    }

    /// The other resources on `asset_id`, in every watched namespace, that need master
    /// access now: while there is one, the asset's access stays on.
    pub fn others_wanting(&self, asset_id: &str, me: &Ref) -> Vec<Ref> {
        let mut found: Vec<Ref> = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            found.extend(index.read().expect("index lock").wanting(asset_id));
        }
        found.retain(|r| r != me);
        found.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        found.dedup();
        found
    }

    /// The other resources on `asset_id`, in every watched namespace.
    pub fn others_on(&self, asset_id: &str, me: &Ref) -> Vec<Ref> {
        let mut targets: Vec<Ref> = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            targets.extend(index.read().expect("index lock").lookup(asset_id));
        }
        targets.retain(|r| r != me);
        targets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        targets.dedup();
        targets
    }

    /// Whether any resource is on asset (or live stream) `id`.
    pub fn watches(&self, id: &str) -> bool {
        self.indexes
            .read()
            .expect("indexes lock")
            .iter()
            .any(|index| index.read().expect("index lock").refers_to(id))
    }

    /// Wakes the other resources on `asset_id` (poked: they ask Mux), after this one changed
    /// what Mux shows for it (a new URL, access turned off or kept).
    pub fn wake_others(&self, asset_id: &str, me: &Ref) {
        let targets = self.others_on(asset_id, me);
        self.queue(&targets, Instant::now());
    }

    /// The resource that claimed destination object `key` first (created first), if it is
    /// not `me`: then `me` must not write it.
    pub fn destination_taken_by(&self, key: &str, me: &Ref) -> Option<Ref> {
        let mut claims = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            claims.extend(index.read().expect("index lock").claims(key));
        }
        claims.sort_by(|a, b| a.0.cmp(&b.0));
        claims
            .into_iter()
            .map(|(_, r)| r)
            .next()
            .filter(|first| first != me)
    }

    /// Wakes the other resources that name destination object `key` (one went away: the
    /// next one may take it).
    pub fn wake_destination(&self, key: &str, me: &Ref) {
        let mut targets = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            targets.extend(index.read().expect("index lock").claims(key));
        }
        let targets: Vec<Ref> = targets
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r != me)
            .collect();
        self.queue(&targets, Instant::now());
    }

    /// After a resource is gone (and out of the index): wake those it held back.
    pub fn on_deleted(&self, gone: &MasterExport) {
        if let Some(destination) = &gone.spec.destination {
            let namespace = gone.metadata.namespace.clone().unwrap_or_default();
            let key = super::copy_policy::object_key(&namespace, destination);
            self.wake_destination(&key, &ObjectRef::from(gone));
        }
    }

    fn queue(&self, targets: &[Ref], received: Instant) {
        let mut pokes = self.pokes.lock().expect("pokes lock");
        for target in targets {
            pokes.entry(target.clone()).or_insert(received);
        }
        drop(pokes);
        self.send(targets);
    }

    /// Reconciles `target` soon, as a timer would (no poke: its status decides whether Mux
    /// is asked). The expiry sweeper's way to hand a resource back to the controller.
    pub fn wake(&self, target: &Ref) {
        self.send(std::slice::from_ref(target));
    }

    /// Reconciles every resource on asset `id` soon, without a poke (as [`Wakeups::wake`]):
    /// a master's first look came forward.
    pub fn wake_on(&self, id: &str) {
        let mut targets: Vec<Ref> = Vec::new();
        for index in self.indexes.read().expect("indexes lock").iter() {
            targets.extend(index.read().expect("index lock").lookup(id));
        }
        targets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        targets.dedup();
        self.send(&targets);
    }

    fn send(&self, targets: &[Ref]) {
        let mut queues = self.queues.lock().expect("queues lock");
        for target in targets {
            for (namespace, queue) in queues.iter_mut() {
                if namespace.is_none() || namespace == &target.namespace {
                    // A full queue means the controller is already busy with a backlog: the
                    // poke stays, and polling is the fallback. Never block the webhook.
                    let _ = queue.try_send(target.clone());
                }
            }
        }
    }

    /// Takes the poke of a resource: `Some(arrival)` if a webhook woke it.
    pub fn take_poke(&self, target: &Ref) -> Option<Instant> {
        self.pokes.lock().expect("pokes lock").remove(target)
    }

    /// How many wake-ups of the last [`POKE_FRESH`] wait for their reconcile (an older one is
    /// likely for a resource that went, or one whose queue was full).
    pub fn waiting(&self, now: Instant) -> usize {
        self.pokes
            .lock()
            .expect("pokes lock")
            .values()
            .filter(|at| now.saturating_duration_since(**at) < POKE_FRESH)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn event(kind: &str, id: &str) -> WebhookEvent {
        serde_json::from_value(serde_json::json!({
            "type": kind, "object": {"type": "asset", "id": id}, "id": "e1",
            "data": {"id": id, "status": "ready"}
        }))
        .unwrap()
    }

    /// Wakeups with webhooks on, indexing one MasterExport `media/a` on `asset`.
    fn one_export_on(asset: &str) -> (Wakeups, MasterExport, mpsc::Receiver<Ref>) {
        let wakeups = Wakeups::new(true, Duration::from_secs(600));
        let index = Arc::new(RwLock::new(SourceIndex::default()));
        let mut obj = MasterExport::new(
            "a",
            serde_json::from_value(serde_json::json!({
                "source": {"assetId": asset}, "credentialsSecretRef": {"name": "mux"}
            }))
            .unwrap(),
        );
        obj.metadata.namespace = Some("media".into());
        index
            .write()
            .unwrap()
            .apply_event(&kube::runtime::watcher::Event::Apply(obj.clone()));
        let (tx, rx) = mpsc::channel(8);
        wakeups.add(Some("media".into()), index, tx);
        (wakeups, obj, rx)
    }

    #[tokio::test]
    async fn a_ready_event_pokes_and_queues_the_resources_of_its_asset() {
        let (wakeups, obj, mut rx) = one_export_on("asset1");

        assert_eq!(
            wakeups.on_event(
                &event("video.asset.master.preparing", "asset1"),
                Instant::now()
            ),
            0
        );
        assert_eq!(
            wakeups.on_event(&event("video.asset.master.ready", "asset1"), Instant::now()),
            1
        );
        assert_eq!(rx.next().await.unwrap().name, "a");
        assert!(wakeups.take_poke(&ObjectRef::from(&obj)).is_some());
        assert!(
            wakeups.take_poke(&ObjectRef::from(&obj)).is_none(),
            "taken once"
        );
        assert_eq!(
            wakeups.on_event(&event("video.asset.master.ready", "other"), Instant::now()),
            0
        );
    }

    #[tokio::test]
    async fn a_wake_queues_without_a_poke_and_only_watched_assets_count() {
        let (wakeups, obj, mut rx) = one_export_on("asset1");

        assert!(wakeups.watches("asset1"));
        assert!(!wakeups.watches("an-asset-nobody-exports"));
        wakeups.wake(&ObjectRef::from(&obj));
        assert_eq!(rx.next().await.unwrap().name, "a");
        assert!(
            wakeups.take_poke(&ObjectRef::from(&obj)).is_none(),
            "a wake is not a webhook: the status decides whether Mux is asked"
        );
    }

    #[test]
    fn without_webhooks_polling_stays_fast() {
        assert!(!Wakeups::new(false, Duration::from_secs(600)).healthy());
        assert!(Wakeups::new(true, Duration::from_secs(600)).healthy());
        assert!(!Wakeups::new(true, Duration::ZERO).healthy());
    }
}
