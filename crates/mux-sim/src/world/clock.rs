//! Time: what changes when a deadline passes (an asset or a master turning ready, a URL
//! expiring), and when the next one is.

use tokio::time::Instant;

use super::{Event, Grant, World, new_id};
use crate::config::Switches;
use mux::types::{AssetStatus, MasterAccess, MasterStatus};

impl World {
    /// Moves every asset whose time has come; returns the events that fired.
    pub fn advance(&mut self, now: Instant, sw: &Switches) -> Vec<Event> {
        let mut fired: Vec<(&'static str, String)> = Vec::new();
        for asset in self.assets.values_mut() {
            if asset.status == AssetStatus::Preparing && asset.ready_at.is_some_and(|t| t <= now) {
                asset.status = AssetStatus::Ready;
                asset.became_ready = asset.ready_at;
                fired.push(("video.asset.ready", asset.id.clone()));
                if asset.live_stream_id.is_some() {
                    fired.push(("video.asset.live_stream_completed", asset.id.clone()));
                }
            }
            let Some(master) = &mut asset.master else {
                asset.grants.retain(|g| g.expires_at > now);
                continue;
            };
            if master.status == MasterStatus::Preparing {
                if let (None, Some(asset_ready)) = (master.ready_at, asset.became_ready) {
                    master.ready_at =
                        Some(master.requested_at.max(asset_ready) + sw.master_prepare_delay);
                }
                if let Some(ready_at) = master.ready_at.filter(|t| *t <= now) {
                    if asset.fail_master {
                        master.status = MasterStatus::Errored;
                        fired.push(("video.asset.master.errored", asset.id.clone()));
                    } else {
                        let window_start = if sw.window_from_ready {
                            ready_at
                        } else {
                            master.requested_at
                        };
                        let skid = new_id(20);
                        let expires_at = window_start + sw.url_window();
                        master.status = MasterStatus::Ready;
                        master.skid = Some(skid.clone());
                        master.expires_at = Some(expires_at);
                        asset.grants.push(Grant { skid, expires_at });
                        fired.push(("video.asset.master.ready", asset.id.clone()));
                    }
                }
            }
            if master.status == MasterStatus::Ready && master.expires_at.is_some_and(|t| t <= now) {
                // The 24 hours are over: access reverts to none and the master disappears.
                asset.master = None;
                asset.access = MasterAccess::None;
                if sw.expiry_webhook {
                    fired.push(("video.asset.master.deleted", asset.id.clone()));
                }
            }
            asset.grants.retain(|g| g.expires_at > now);
        }
        fired
            .into_iter()
            .map(|(kind, id)| self.asset_event(kind, &id))
            .collect()
    }

    /// The soonest instant at which `advance` would change something.
    pub fn next_deadline(&self, sw: &Switches) -> Option<Instant> {
        self.assets
            .values()
            .flat_map(|a| {
                let asset_ready = (a.status == AssetStatus::Preparing)
                    .then_some(a.ready_at)
                    .flatten();
                let master = a.master.as_ref().and_then(|m| match m.status {
                    MasterStatus::Preparing => m.ready_at.or_else(|| {
                        a.became_ready
                            .map(|r| m.requested_at.max(r) + sw.master_prepare_delay)
                    }),
                    MasterStatus::Ready => m.expires_at,
                    _ => None,
                });
                [asset_ready, master]
            })
            .flatten()
            .min()
    }
}
