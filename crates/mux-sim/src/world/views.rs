//! What the world shows: assets and live streams as the API returns them, pages of the list,
//! the admin view, and the webhook events built from them.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Event, Page, Refusal, World};
use crate::config::Switches;
use mux::types::{Asset, AssetStatus, LiveStream, Master, MasterStatus};

impl World {
    /// An instant of the world's clock in Unix milliseconds.
    pub(super) fn unix_ms(&self, instant: Instant) -> i64 {
        let since_start = instant.saturating_duration_since(self.started).as_millis() as i64;
        self.started_unix_ms + since_start
    }

    pub fn view_checked(
        &mut self,
        id: &str,
        now: Instant,
        sw: &Switches,
    ) -> Result<(Asset, Vec<Event>), Refusal> {
        let events = self.advance(now, sw);
        let asset = self
            .view(id)
            .ok_or_else(|| Refusal::NotFound(format!("asset {id} not found")))?;
        Ok((asset, events))
    }

    /// A page of assets, newest first. `cursor` is opaque to clients: here, an offset.
    pub fn list(
        &mut self,
        limit: usize,
        cursor: Option<&str>,
        page: Option<usize>,
        now: Instant,
        sw: &Switches,
    ) -> Result<Page, Refusal> {
        let events = self.advance(now, sw);
        let limit = limit.clamp(1, 100);
        let start = match (cursor, page) {
            (Some(cursor), _) => decode_cursor(cursor)
                .ok_or_else(|| Refusal::Invalid(format!("invalid cursor {cursor:?}")))?,
            (None, Some(page)) => page.saturating_sub(1) * limit,
            (None, None) => 0,
        };
        let ids: Vec<&String> = self.order.iter().rev().skip(start).take(limit).collect();
        let assets = ids.iter().filter_map(|id| self.view(id)).collect();
        let next = (start + limit < self.order.len()).then(|| encode_cursor(start + limit));
        Ok((assets, next, events))
    }

    pub fn live_stream(&self, id: &str) -> Option<LiveStream> {
        self.live_streams.get(id).map(|s| LiveStream {
            id: s.id.clone(),
            status: s.status,
            active_asset_id: s.active_asset_id.clone(),
            recent_asset_ids: s.recent_asset_ids.clone(),
            new_asset_settings: Some(s.new_asset_settings.clone()),
            reconnect_window: Some(60.0),
            created_at: Some(s.created_at),
        })
    }
    /// The asset as the API shows it.
    pub fn view(&self, id: &str) -> Option<Asset> {
        let a = self.assets.get(id)?;
        let master = a.master.as_ref().map(|m| Master {
            status: m.status,
            url: match (m.status, &m.skid) {
                (MasterStatus::Ready, Some(skid)) => Some(self.url_for(&a.id, skid)),
                _ => None,
            },
        });
        Some(Asset {
            id: a.id.clone(),
            created_at: Some(a.created_at),
            status: a.status,
            master_access: a.access,
            master,
            max_resolution_tier: Some(a.tier.clone()),
            resolution_tier: (a.status == AssetStatus::Ready).then(|| a.tier.clone()),
            duration: (a.status == AssetStatus::Ready).then_some(a.size as f64 / 1_000_000.0),
            passthrough: a.passthrough.clone(),
            live_stream_id: a.live_stream_id.clone(),
            is_live: a.live_stream_id.as_ref().map(|_| a.is_live),
            ingest_type: Some(
                if a.live_stream_id.is_some() {
                    "live_rtmp"
                } else {
                    "on_demand_url"
                }
                .into(),
            ),
            errors: a.errors.clone(),
        })
    }

    /// The state a test may want beyond what the API shows.
    pub fn admin_view(&self, id: &str, now: Instant, sw: &Switches) -> Option<Value> {
        let asset = self.assets.get(id)?;
        let master_ready = asset.master.as_ref().and_then(|m| m.ready_at);
        Some(json!({
            "asset": self.view(id),
            "size": asset.size,
            "seed": asset.seed,
            "current_length": self.current_length(asset, now, sw),
            "valid_urls": asset.grants.iter().filter(|g| g.expires_at > now).count(),
            // When the master turned (or turns) ready: on the request log's clock, and in
            // Unix milliseconds, so tests can time what follows.
            "master_ready_at_ms": master_ready.map(|t| t.saturating_duration_since(self.started).as_millis() as u64),
            "master_ready_unix_ms": master_ready.filter(|t| *t <= now).map(|t| self.unix_ms(t)),
        }))
    }

    pub(super) fn asset_event(&self, kind: &'static str, id: &str) -> Event {
        let data = self
            .view(id)
            .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
            .unwrap_or_else(|| json!({"id": id}));
        Event {
            kind,
            object_type: "asset",
            object_id: id.to_string(),
            data,
        }
    }

    pub(super) fn live_stream_event(&self, kind: &'static str, id: &str) -> Event {
        Event {
            kind,
            object_type: "live_stream",
            object_id: id.to_string(),
            data: serde_json::to_value(self.live_stream(id)).unwrap_or(Value::Null),
        }
    }
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(40)), Some(40));
        assert_eq!(decode_cursor("nonsense"), None);
    }
}
