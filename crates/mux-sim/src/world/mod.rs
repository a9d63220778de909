//! The emulated Mux environment: assets, live streams and the master's lifecycle.
//!
//! A plain state machine with the clock passed in: `advance(now)` moves everything whose
//! time has come and returns the webhook events that Mux would send. The HTTP layer calls
//! it before every read, and a ticker calls it to send events on time.

//!
//! - `seeding`: assets and live streams put there by the admin API, and recordings;
//! - `master`: master access through the API and the file at its signed URL;
//! - `clock`: what changes when a deadline passes;
//! - `views`: what the API, the admin API and webhooks show of it.

mod clock;
mod master;
mod seeding;
mod views;

use std::collections::HashMap;

use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;

use mux::types::{Asset, AssetErrors, AssetStatus, LiveStreamStatus, MasterAccess, MasterStatus};

pub use master::{Served, Validators};
pub use seeding::{AssetSeed, LiveStreamSeed};

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

impl SimAsset {
    /// A new asset, preparing, with no master: the seeds and recordings set the rest.
    fn new(id: String, size: u64, seed: u64) -> SimAsset {
        SimAsset {
            id,
            created_at: unix_now(),
            status: AssetStatus::Preparing,
            ready_at: None,
            became_ready: None,
            access: MasterAccess::None,
            master: None,
            grants: Vec::new(),
            size,
            seed,
            tier: "1080p".into(),
            passthrough: None,
            live_stream_id: None,
            is_live: false,
            fail_master: false,
            errors: None,
        }
    }
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
    /// `started` in Unix milliseconds: instants on the world's clock become wall times.
    started_unix_ms: i64,
}

/// A new random ID in Mux's style (letters and digits).
pub fn new_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn unix_now() -> i64 {
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
            started_unix_ms: unix_ms_now(),
        }
    }

    pub(super) fn insert(&mut self, asset: SimAsset) {
        self.order.push(asset.id.clone());
        self.assets.insert(asset.id.clone(), asset);
    }

    pub(super) fn asset_mut(&mut self, id: &str) -> Result<&mut SimAsset, Refusal> {
        self.assets
            .get_mut(id)
            .ok_or_else(|| Refusal::NotFound(format!("asset {id} not found")))
    }
}
