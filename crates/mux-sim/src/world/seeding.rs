//! Seeding the world: assets and live streams put there by the admin API (and assets created
//! through the Mux API), and the live streams' recordings.

use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Event, Refusal, SimAsset, SimLiveStream, World, new_id, unix_now};
use crate::config::Switches;
use mux::types::{
    Asset, AssetErrors, AssetStatus, LiveStream, LiveStreamStatus, MasterAccess, MasterStatus,
};

/// What `/_sim/assets` takes to seed an asset.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default)]
pub struct AssetSeed {
    pub id: Option<String>,
    pub size: Option<u64>,
    pub seed: Option<u64>,
    pub max_resolution_tier: Option<String>,
    /// `preparing` or `ready` (the default).
    pub status: Option<AssetStatus>,
    pub master_access: Option<MasterAccess>,
    pub passthrough: Option<String>,
    /// The master will fail to prepare (`video.asset.master.errored`).
    pub fail_master: bool,
}

/// What `/_sim/live-streams` takes.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default)]
pub struct LiveStreamSeed {
    pub id: Option<String>,
    /// Settings of the assets it records, e.g. `{"master_access": "temporary"}`.
    pub new_asset_settings: Option<Value>,
    pub asset_size: Option<u64>,
}

impl World {
    pub fn seed_asset(
        &mut self,
        seed: AssetSeed,
        now: Instant,
        sw: &Switches,
    ) -> Result<(Asset, Vec<Event>), Refusal> {
        let id = seed.id.unwrap_or_else(|| new_id(44));
        if self.assets.contains_key(&id) {
            return Err(Refusal::Invalid(format!("asset {id} already exists")));
        }
        let preparing = seed.status == Some(AssetStatus::Preparing);
        let asset = SimAsset {
            status: if preparing {
                AssetStatus::Preparing
            } else {
                AssetStatus::Ready
            },
            ready_at: preparing.then(|| now + sw.asset_prepare_delay),
            became_ready: (!preparing).then_some(now),
            tier: seed.max_resolution_tier.unwrap_or_else(|| "1080p".into()),
            passthrough: seed.passthrough,
            fail_master: seed.fail_master,
            ..SimAsset::new(
                id.clone(),
                seed.size.unwrap_or(sw.default_master_size),
                seed.seed.unwrap_or_else(|| rand::rng().random()),
            )
        };
        self.insert(asset);
        let mut events = vec![self.asset_event("video.asset.created", &id)];
        if seed.master_access == Some(MasterAccess::Temporary) {
            events.extend(self.request_master(&id, now, sw));
        }
        events.extend(self.advance(now, sw));
        Ok((self.view(&id).expect("just inserted"), events))
    }

    /// `POST /video/v1/assets`: a new asset that becomes ready after the asset delay.
    pub fn create_asset(
        &mut self,
        master_access: Option<MasterAccess>,
        passthrough: Option<String>,
        tier: Option<String>,
        now: Instant,
        sw: &Switches,
    ) -> Result<(Asset, Vec<Event>), Refusal> {
        if passthrough.as_ref().is_some_and(|p| p.len() > 255) {
            return Err(Refusal::Invalid(
                "passthrough must be at most 255 characters".into(),
            ));
        }
        self.seed_asset(
            AssetSeed {
                status: Some(AssetStatus::Preparing),
                master_access,
                passthrough,
                max_resolution_tier: tier,
                ..AssetSeed::default()
            },
            now,
            sw,
        )
    }

    pub fn error_asset(&mut self, id: &str) -> Result<Vec<Event>, Refusal> {
        let asset = self.asset_mut(id)?;
        asset.status = AssetStatus::Errored;
        asset.ready_at = None;
        asset.errors = Some(AssetErrors {
            kind: Some("invalid_input".into()),
            messages: vec!["The input file could not be processed".into()],
        });
        if let Some(master) = &mut asset.master
            && master.status == MasterStatus::Preparing
        {
            master.status = MasterStatus::Errored;
        }
        Ok(vec![self.asset_event("video.asset.errored", id)])
    }

    pub fn delete_asset(&mut self, id: &str) -> Result<Vec<Event>, Refusal> {
        let event = self.asset_event("video.asset.deleted", id);
        self.assets
            .remove(id)
            .ok_or_else(|| Refusal::NotFound(format!("asset {id} not found")))?;
        self.order.retain(|a| a != id);
        Ok(vec![event])
    }

    pub fn seed_live_stream(
        &mut self,
        seed: LiveStreamSeed,
        sw: &Switches,
    ) -> Result<LiveStream, Refusal> {
        let id = seed.id.unwrap_or_else(|| new_id(44));
        if self.live_streams.contains_key(&id) {
            return Err(Refusal::Invalid(format!("live stream {id} already exists")));
        }
        self.live_streams.insert(
            id.clone(),
            SimLiveStream {
                id: id.clone(),
                created_at: unix_now(),
                status: LiveStreamStatus::Idle,
                active_asset_id: None,
                recent_asset_ids: Vec::new(),
                new_asset_settings: seed
                    .new_asset_settings
                    .unwrap_or_else(|| json!({"playback_policy": ["public"]})),
                asset_size: seed.asset_size.unwrap_or(sw.default_master_size),
            },
        );
        Ok(self.live_stream(&id).expect("just inserted"))
    }

    /// An encoder connects: the stream goes active and starts recording a new asset.
    pub fn start_live_stream(
        &mut self,
        id: &str,
        now: Instant,
        sw: &Switches,
    ) -> Result<Vec<Event>, Refusal> {
        let stream = self.live_stream_mut(id)?;
        if stream.status == LiveStreamStatus::Active {
            return Err(Refusal::Invalid(format!(
                "live stream {id} is already active"
            )));
        }
        let access = stream
            .new_asset_settings
            .get("master_access")
            .and_then(|v| serde_json::from_value::<MasterAccess>(v.clone()).ok());
        let asset = SimAsset {
            live_stream_id: Some(id.to_string()),
            is_live: true,
            ..SimAsset::new(new_id(44), stream.asset_size, rand::rng().random())
        };
        let asset_id = asset.id.clone();
        self.insert(asset);
        let stream = self.live_streams.get_mut(id).expect("checked above");
        stream.status = LiveStreamStatus::Active;
        stream.active_asset_id = Some(asset_id.clone());
        let mut events = vec![
            self.asset_event("video.asset.created", &asset_id),
            self.live_stream_event("video.live_stream.active", id),
        ];
        if access == Some(MasterAccess::Temporary) {
            events.extend(self.request_master(&asset_id, now, sw));
        }
        Ok(events)
    }

    fn live_stream_mut(&mut self, id: &str) -> Result<&mut SimLiveStream, Refusal> {
        self.live_streams
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("live stream {id} not found")))
    }

    /// The encoder disconnects for good: the recording completes after the asset delay.
    pub fn end_live_stream(
        &mut self,
        id: &str,
        now: Instant,
        sw: &Switches,
    ) -> Result<Vec<Event>, Refusal> {
        let stream = self.live_stream_mut(id)?;
        let asset_id = stream
            .active_asset_id
            .take()
            .ok_or_else(|| Refusal::Invalid(format!("live stream {id} is not active")))?;
        stream.status = LiveStreamStatus::Idle;
        stream.recent_asset_ids.push(asset_id.clone());
        let asset = self
            .assets
            .get_mut(&asset_id)
            .expect("recorded asset exists");
        asset.is_live = false;
        asset.ready_at = Some(now + sw.asset_prepare_delay);
        Ok(vec![self.live_stream_event("video.live_stream.idle", id)])
    }
}
