//! The emulated Mux environment: assets, live streams and the master's lifecycle.
//!
//! A plain state machine with the clock passed in: `advance(now)` moves everything whose
//! time has come and returns the webhook events that Mux would send. The HTTP layer calls
//! it before every read, and a ticker calls it to send events on time.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::time::Instant;

use super::config::Switches;
use mux::types::{
    Asset, AssetErrors, AssetStatus, LiveStream, LiveStreamStatus, Master, MasterAccess,
    MasterStatus, MasterUrl,
};

/// An event for the webhook deliverer: what Mux would POST.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub object_type: &'static str,
    pub object_id: String,
    pub data: Value,
}

/// Why the API refused a request: becomes Mux's error envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NotFound(String),
    Invalid(String),
}

/// One signed URL Mux handed out: valid until it expires or access is turned off.
#[derive(Debug, Clone)]
struct Grant {
    skid: String,
    expires_at: Instant,
}

#[derive(Debug, Clone)]
struct SimMaster {
    status: MasterStatus,
    requested_at: Instant,
    /// When the master becomes (or became) ready; known once the asset is ready.
    ready_at: Option<Instant>,
    /// The current grant's key, once ready.
    skid: Option<String>,
    expires_at: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct SimAsset {
    pub id: String,
    created_at: i64,
    status: AssetStatus,
    /// When a preparing asset becomes ready (`None` while a live stream records it).
    ready_at: Option<Instant>,
    became_ready: Option<Instant>,
    access: MasterAccess,
    master: Option<SimMaster>,
    grants: Vec<Grant>,
    pub size: u64,
    pub seed: u64,
    tier: String,
    passthrough: Option<String>,
    live_stream_id: Option<String>,
    is_live: bool,
    fail_master: bool,
    errors: Option<AssetErrors>,
}

#[derive(Debug, Clone)]
struct SimLiveStream {
    id: String,
    created_at: i64,
    status: LiveStreamStatus,
    active_asset_id: Option<String>,
    recent_asset_ids: Vec<String>,
    new_asset_settings: Value,
    asset_size: u64,
}

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

/// A page of assets, the cursor of the next page, and the events that fired meanwhile.
pub type Page = (Vec<Asset>, Option<String>, Vec<Event>);

pub struct World {
    assets: HashMap<String, SimAsset>,
    /// Asset IDs in creation order (lists are newest first).
    order: Vec<String>,
    live_streams: HashMap<String, SimLiveStream>,
    signing_key: [u8; 32],
    /// Where master URLs point (this server, in place of mezzanine.mux.com).
    pub master_base: String,
    /// The origin of the `*_ms` times the admin API shows (the request log's too).
    started: Instant,
}

/// A new random ID in Mux's style (letters and digits).
pub fn new_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl World {
    pub fn new(master_base: String) -> Self {
        let mut signing_key = [0u8; 32];
        rand::rng().fill(&mut signing_key);
        Self {
            assets: HashMap::new(),
            order: Vec::new(),
            live_streams: HashMap::new(),
            signing_key,
            master_base,
            started: Instant::now(),
        }
    }

    // --- Seeding (the admin API) --------------------------------------------------------

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
            id: id.clone(),
            created_at: unix_now(),
            status: if preparing {
                AssetStatus::Preparing
            } else {
                AssetStatus::Ready
            },
            ready_at: preparing.then(|| now + sw.asset_prepare_delay),
            became_ready: (!preparing).then_some(now),
            access: MasterAccess::None,
            master: None,
            grants: Vec::new(),
            size: seed.size.unwrap_or(sw.default_master_size),
            seed: seed.seed.unwrap_or_else(|| rand::rng().random()),
            tier: seed.max_resolution_tier.unwrap_or_else(|| "1080p".into()),
            passthrough: seed.passthrough,
            live_stream_id: None,
            is_live: false,
            fail_master: seed.fail_master,
            errors: None,
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

    fn insert(&mut self, asset: SimAsset) {
        self.order.push(asset.id.clone());
        self.assets.insert(asset.id.clone(), asset);
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
        let stream = self
            .live_streams
            .get(id)
            .ok_or_else(|| Refusal::NotFound(format!("live stream {id} not found")))?;
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
            id: new_id(44),
            created_at: unix_now(),
            status: AssetStatus::Preparing,
            ready_at: None,
            became_ready: None,
            access: MasterAccess::None,
            master: None,
            grants: Vec::new(),
            size: stream.asset_size,
            seed: rand::rng().random(),
            tier: "1080p".into(),
            passthrough: None,
            live_stream_id: Some(id.to_string()),
            is_live: true,
            fail_master: false,
            errors: None,
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

    /// The encoder disconnects for good: the recording completes after the asset delay.
    pub fn end_live_stream(
        &mut self,
        id: &str,
        now: Instant,
        sw: &Switches,
    ) -> Result<Vec<Event>, Refusal> {
        let stream = self
            .live_streams
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("live stream {id} not found")))?;
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

    // --- The API --------------------------------------------------------------------

    /// `PUT /video/v1/assets/{id}/master-access`.
    pub fn put_master_access(
        &mut self,
        id: &str,
        access: MasterAccess,
        now: Instant,
        sw: &Switches,
    ) -> Result<(Asset, Vec<Event>), Refusal> {
        let mut events = self.advance(now, sw);
        let asset = self.asset_mut(id)?;
        if asset.status == AssetStatus::Errored {
            return Err(Refusal::Invalid(format!(
                "asset {id} is errored; master access cannot be changed"
            )));
        }
        match access {
            MasterAccess::Temporary => events.extend(self.request_master(id, now, sw)),
            MasterAccess::None => {
                let had_master = asset.master.take().is_some();
                asset.access = MasterAccess::None;
                asset.grants.clear();
                if had_master {
                    events.push(self.asset_event("video.asset.master.deleted", id));
                }
            }
            MasterAccess::Unknown => {
                return Err(Refusal::Invalid(
                    "master_access must be one of: temporary, none".into(),
                ));
            }
        }
        Ok((self.view(id).expect("exists"), events))
    }

    /// Turns master access on, or (per the switches) renews a ready master.
    fn request_master(&mut self, id: &str, now: Instant, sw: &Switches) -> Vec<Event> {
        let Some(asset) = self.assets.get_mut(id) else {
            return Vec::new();
        };
        asset.access = MasterAccess::Temporary;
        let fresh = SimMaster {
            status: MasterStatus::Preparing,
            requested_at: now,
            ready_at: None,
            skid: None,
            expires_at: None,
        };
        match &mut asset.master {
            None => {
                asset.master = Some(fresh);
                vec![self.asset_event("video.asset.master.preparing", id)]
            }
            Some(m) if m.status == MasterStatus::Errored => {
                *m = fresh;
                vec![self.asset_event("video.asset.master.preparing", id)]
            }
            Some(m) if m.status == MasterStatus::Ready && sw.renew_on_repeat => {
                m.requested_at = now;
                let skid = new_id(20);
                let expires_at = now + sw.url_lifetime;
                m.skid = Some(skid.clone());
                m.expires_at = Some(expires_at);
                asset.grants.push(Grant { skid, expires_at });
                vec![self.asset_event("video.asset.master.ready", id)]
            }
            // Preparing, or ready without renewal: nothing changes.
            Some(_) => Vec::new(),
        }
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

    // --- The master file --------------------------------------------------------------

    /// Checks a download URL's key and signature: `Some((seed, length now))` if it works.
    pub fn authorize_download(
        &mut self,
        id: &str,
        skid: &str,
        signature: &str,
        now: Instant,
        sw: &Switches,
    ) -> Option<(u64, u64)> {
        self.advance(now, sw);
        let expected = self.sign(id, skid);
        let asset = self.assets.get(id)?;
        let valid = asset
            .grants
            .iter()
            .any(|g| g.skid == skid && g.expires_at > now);
        if !valid
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                signature.as_bytes(),
            ))
        {
            return None;
        }
        Some((asset.seed, self.current_length(asset, now, sw)))
    }

    /// The master's length now: short of the final size while it still grows.
    fn current_length(&self, asset: &SimAsset, now: Instant, sw: &Switches) -> u64 {
        let ready_at = asset.master.as_ref().and_then(|m| m.ready_at);
        match ready_at {
            Some(ready_at) if !sw.growth.is_zero() && now < ready_at + sw.growth => {
                let progress = (now - ready_at).as_secs_f64() / sw.growth.as_secs_f64();
                let share =
                    sw.growth_initial_fraction + (1.0 - sw.growth_initial_fraction) * progress;
                ((asset.size as f64) * share.clamp(0.0, 1.0)) as u64
            }
            _ => asset.size,
        }
    }

    fn sign(&self, id: &str, skid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(id.as_bytes());
        mac.update(b":");
        mac.update(skid.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn url_for(&self, id: &str, skid: &str) -> MasterUrl {
        MasterUrl::new(format!(
            "{}/{id}/mezzanine.mp4?skid={skid}&signature={}",
            self.master_base,
            self.sign(id, skid)
        ))
    }

    // --- Time -------------------------------------------------------------------------

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
                        let expires_at = window_start + sw.url_lifetime;
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

    // --- Views --------------------------------------------------------------------------

    fn asset_mut(&mut self, id: &str) -> Result<&mut SimAsset, Refusal> {
        self.assets
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("asset {id} not found")))
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
            "master_ready_unix_ms": master_ready.filter(|t| *t <= now).map(|t| unix_ms_now() - (now - t).as_millis() as i64),
        }))
    }

    fn asset_event(&self, kind: &'static str, id: &str) -> Event {
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

    fn live_stream_event(&self, kind: &'static str, id: &str) -> Event {
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
    use std::time::Duration;

    fn switches() -> Switches {
        Switches {
            master_prepare_delay: Duration::from_secs(2),
            url_lifetime: Duration::from_secs(60),
            ..Switches::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn master_goes_preparing_ready_expired() {
        let sw = switches();
        let mut world = World::new("http://sim".into());
        let t0 = Instant::now();
        let (asset, _) = world.seed_asset(AssetSeed::default(), t0, &sw).unwrap();
        let (asset, events) = world
            .put_master_access(&asset.id, MasterAccess::Temporary, t0, &sw)
            .unwrap();
        assert_eq!(asset.master_status(), Some(MasterStatus::Preparing));
        assert_eq!(events.last().unwrap().kind, "video.asset.master.preparing");

        let events = world.advance(t0 + Duration::from_secs(2), &sw);
        assert_eq!(events[0].kind, "video.asset.master.ready");
        let ready = world.view(&asset.id).unwrap();
        assert!(ready.master_url().is_some());

        // The window counts from the request: at 60 s the URL is gone.
        world.advance(t0 + Duration::from_secs(60), &sw);
        let expired = world.view(&asset.id).unwrap();
        assert_eq!(
            (expired.master_access, expired.master),
            (MasterAccess::None, None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_put_renews_only_when_switched_on() {
        let mut sw = switches();
        let mut world = World::new("http://sim".into());
        let t0 = Instant::now();
        let (asset, _) = world
            .seed_asset(
                AssetSeed {
                    master_access: Some(MasterAccess::Temporary),
                    ..Default::default()
                },
                t0,
                &sw,
            )
            .unwrap();
        world.advance(t0 + Duration::from_secs(3), &sw);
        let first = world
            .view(&asset.id)
            .unwrap()
            .master_url()
            .cloned()
            .unwrap();
        let (again, _) = world
            .put_master_access(
                &asset.id,
                MasterAccess::Temporary,
                t0 + Duration::from_secs(4),
                &sw,
            )
            .unwrap();
        assert_eq!(again.master_url(), Some(&first));
        sw.renew_on_repeat = true;
        let (renewed, _) = world
            .put_master_access(
                &asset.id,
                MasterAccess::Temporary,
                t0 + Duration::from_secs(5),
                &sw,
            )
            .unwrap();
        assert_ne!(renewed.master_url(), Some(&first));
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(40)), Some(40));
        assert_eq!(decode_cursor("nonsense"), None);
    }
}
