//! Webhook snapshots of assets: a verified event's `data` is the asset as Mux saw it when the
//! event was created, so a reconcile woken by it can use that instead of a GET.
//!
//! The freshness rule ([`Freshness`]): a snapshot stands in for a GET only when it is newer
//! than everything the controller recorded about the asset since (a GET's sending, a change
//! of access answered, the intent recorded in the status). Older or equal ones change nothing:
//! duplicates and reordered deliveries are harmless and cost no call. Only events whose
//! `data` is the whole asset in a state the event names are trusted ([`trusted`]); any other
//! event wakes the resources as before and they GET.
//!
//! Times compare Mux's clock (`created_at`) with ours; both are assumed NTP-close, which is
//! far below the seconds between the changes that matter (a request, a master turning ready).

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

use crate::resource::MasterExportStatus;
use mux::types::{Asset, AssetStatus, MasterAccess, MasterStatus, WebhookEvent};

/// An asset as a webhook carried it, and when Mux created the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub asset: Asset,
    pub at: Timestamp,
}

/// The asset an event carries, when it can stand in for a GET: an asset event whose `data`
/// is that asset (same ID), with a creation time, in the state the event names. A
/// `master.ready` without its URL, an asset's deletion (the GET's 404 is what the controller
/// acts on), live-stream events (their `data` is the stream) and a recording's completion
/// (its master is prepared only after it) are not trusted.
pub fn trusted(event: &WebhookEvent) -> Option<Snapshot> {
    if event.object.kind != "asset" {
        return None;
    }
    let asset = event.asset()?;
    if asset.id != event.object.id {
        return None;
    }
    let complete = match event.kind.as_str() {
        "video.asset.master.ready" => {
            asset.master_access == MasterAccess::Temporary && asset.master_url().is_some()
        }
        "video.asset.master.errored" => asset.master_status() == Some(MasterStatus::Errored),
        "video.asset.master.deleted" => asset.master.is_none(),
        "video.asset.ready" => asset.status == AssetStatus::Ready,
        "video.asset.errored" => asset.status == AssetStatus::Errored,
        _ => false,
    };
    let at = created_at(&event.created_at)?;
    complete.then_some(Snapshot { asset, at })
}

/// An event's `created_at`: RFC 3339, or Unix seconds (a number or a string of one).
fn created_at(value: &serde_json::Value) -> Option<Timestamp> {
    match value {
        serde_json::Value::String(text) => text
            .parse::<Timestamp>()
            .ok()
            .or_else(|| Timestamp::from_second(text.parse().ok()?).ok()),
        serde_json::Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok(),
        _ => None,
    }
}

/// The freshness rule, over what is known of one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// The latest instant the controller learnt the asset's state at: a GET's sending (its
    /// answer is at least that new), a change of access's answer (Mux applied it by then).
    pub recorded: Option<Timestamp>,
}

impl Freshness {
    /// Whether a snapshot created at `at` is newer than what was recorded, and than the
    /// instants a resource's status records (its pending request, its URL's request): those
    /// survive a restart of the operator, the in-memory record does not.
    pub fn is_newer(&self, at: Timestamp, status: Option<&MasterExportStatus>) -> bool {
        let from_status = status.and_then(|s| {
            let pending = s.pending.as_ref().map(|p| p.at.0);
            let requested = s
                .master
                .as_ref()
                .and_then(|m| m.requested_at.as_ref())
                .map(|t| t.0);
            pending.max(requested)
        });
        self.recorded
            .max(from_status)
            .is_none_or(|floor| at > floor)
    }
}

#[derive(Debug, Default)]
struct Known {
    freshness: Freshness,
    latest: Option<Snapshot>,
}

/// The newest trusted snapshot of each asset, and what the controller recorded since.
#[derive(Debug, Default)]
pub struct Snapshots {
    assets: Mutex<HashMap<String, Known>>,
}

impl Snapshots {
    /// Keeps `snapshot` if it is newer than the one kept and than what was recorded;
    /// returns whether it was kept (if not, it tells nothing new: nobody need be woken).
    pub fn offer(&self, snapshot: Snapshot) -> bool {
        let mut assets = self.assets.lock().expect("snapshots lock");
        let known = assets.entry(snapshot.asset.id.clone()).or_default();
        let newer_than_kept = known.latest.as_ref().is_none_or(|s| snapshot.at > s.at);
        if !newer_than_kept || !known.freshness.is_newer(snapshot.at, None) {
            return false;
        }
        known.latest = Some(snapshot);
        true
    }

    /// The asset as the newest snapshot shows it, if that is newer than anything recorded
    /// about it and than `status`'s own instants. Several resources on one asset all use it.
    pub fn usable(&self, asset_id: &str, status: &MasterExportStatus) -> Option<Asset> {
        let assets = self.assets.lock().expect("snapshots lock");
        let known = assets.get(asset_id)?;
        let latest = known.latest.as_ref()?;
        known
            .freshness
            .is_newer(latest.at, Some(status))
            .then(|| latest.asset.clone())
    }

    /// Records that the controller learnt the asset's state at `at`; a snapshot that is not
    /// newer is dropped (memory follows what is still news).
    pub fn record(&self, asset_id: &str, at: Timestamp) {
        let mut assets = self.assets.lock().expect("snapshots lock");
        let known = assets.entry(asset_id.to_string()).or_default();
        known.freshness.recorded = known.freshness.recorded.max(Some(at));
        if known.latest.as_ref().is_some_and(|s| s.at <= at) {
            known.latest = None;
        }
    }

    /// Forgets an asset no resource names any more.
    pub fn forget(&self, asset_id: &str) {
        self.assets.lock().expect("snapshots lock").remove(asset_id);
    }
}

#[cfg(test)]
#[path = "snapshots/tests.rs"]
mod tests;
