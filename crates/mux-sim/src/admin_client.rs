//! A small typed client for mux-sim's `/_sim/*` API, for tests, benchmarks and the demo.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use mux::types::{Asset, LiveStream};

pub use crate::stats::LoggedRequest;

#[derive(Clone)]
pub struct SimAdmin {
    http: reqwest::Client,
    base: String,
}

/// One row of `GET /_sim/stats`.
#[derive(Debug, Clone, Deserialize)]
pub struct StatRow {
    pub method: String,
    pub route: String,
    pub id: Option<String>,
    pub status: u16,
    pub count: u64,
}

/// A master ready to download, as [`SimAdmin::ready_master`] seeds it.
#[derive(Debug, Clone)]
pub struct ReadyMaster {
    pub id: String,
    /// The signed URL (a secret: never print it).
    pub url: String,
    /// The content's seed: `content` gives its bytes and SHA-256.
    pub seed: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Data<T> {
    data: T,
}

pub const ASSET_ROUTE: &str = "/video/v1/assets/{id}";
pub const MASTER_ACCESS_ROUTE: &str = "/video/v1/assets/{id}/master-access";
/// The route master downloads are recorded under.
pub const MASTER_ROUTE: &str = "/{id}/mezzanine.mp4";

impl SimAdmin {
    pub fn new(base: impl Into<String>) -> Self {
        mux::tls::install_crypto_provider();
        Self {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_string(),
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, reqwest::Error> {
        request.send().await?.error_for_status()?.json().await
    }

    /// Seeds an asset; see `world::AssetSeed` for the fields (`size`, `status`,
    /// `master_access`, `max_resolution_tier`, `fail_master`, `id`, `seed`).
    pub async fn seed_asset(&self, seed: Value) -> Result<Asset, reqwest::Error> {
        let url = format!("{}/_sim/assets", self.base);
        let data: Data<Asset> = self.send(self.http.post(url).json(&seed)).await?;
        Ok(data.data)
    }

    /// Seeds a ready asset of `size` bytes with master access on, and waits (at most
    /// `timeout`) until its master is ready.
    pub async fn ready_master(&self, size: u64, timeout: Duration) -> Result<ReadyMaster, String> {
        let seed = serde_json::json!({"size": size, "master_access": "temporary"});
        let asset = self.seed_asset(seed).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = self.inspect(&asset.id).await.map_err(|e| e.to_string())?;
            if let (Some(url), Some(seed)) = (
                view["asset"]["master"]["url"].as_str(),
                view["seed"].as_u64(),
            ) {
                return Ok(ReadyMaster {
                    id: asset.id,
                    url: url.to_owned(),
                    seed,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the master of {} was not ready after {timeout:?}",
                    asset.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The asset's state with what only mux-sim knows (`size`, `seed`, `current_length`).
    pub async fn inspect(&self, asset_id: &str) -> Result<Value, reqwest::Error> {
        self.send(
            self.http
                .get(format!("{}/_sim/assets/{asset_id}", self.base)),
        )
        .await
    }

    pub async fn error_asset(&self, asset_id: &str) -> Result<(), reqwest::Error> {
        let url = format!("{}/_sim/assets/{asset_id}/error", self.base);
        self.http.post(url).send().await?.error_for_status()?;
        Ok(())
    }

    pub async fn delete_asset(&self, asset_id: &str) -> Result<(), reqwest::Error> {
        let url = format!("{}/_sim/assets/{asset_id}", self.base);
        self.http.delete(url).send().await?.error_for_status()?;
        Ok(())
    }

    pub async fn seed_live_stream(&self, seed: Value) -> Result<LiveStream, reqwest::Error> {
        let url = format!("{}/_sim/live-streams", self.base);
        let data: Data<LiveStream> = self.send(self.http.post(url).json(&seed)).await?;
        Ok(data.data)
    }

    pub async fn start_live_stream(&self, id: &str) -> Result<LiveStream, reqwest::Error> {
        let url = format!("{}/_sim/live-streams/{id}/start", self.base);
        let data: Data<LiveStream> = self.send(self.http.post(url)).await?;
        Ok(data.data)
    }

    pub async fn end_live_stream(&self, id: &str) -> Result<LiveStream, reqwest::Error> {
        let url = format!("{}/_sim/live-streams/{id}/end", self.base);
        let data: Data<LiveStream> = self.send(self.http.post(url)).await?;
        Ok(data.data)
    }

    /// Changes switches at run time, e.g. `{"fail_next": 2}`.
    pub async fn configure(&self, patch: Value) -> Result<Value, reqwest::Error> {
        self.send(
            self.http
                .patch(format!("{}/_sim/config", self.base))
                .json(&patch),
        )
        .await
    }

    pub async fn stats(&self) -> Result<Vec<StatRow>, reqwest::Error> {
        #[derive(Deserialize)]
        struct Stats {
            requests: Vec<StatRow>,
        }
        let stats: Stats = self
            .send(self.http.get(format!("{}/_sim/stats", self.base)))
            .await?;
        Ok(stats.requests)
    }

    /// How many requests matched: `status` `None` counts every status.
    pub async fn count(
        &self,
        method: &str,
        route: &str,
        id: Option<&str>,
        status: Option<u16>,
    ) -> Result<u64, reqwest::Error> {
        Ok(self
            .stats()
            .await?
            .iter()
            .filter(|r| r.method == method && r.route == route)
            .filter(|r| id.is_none() || r.id.as_deref() == id)
            .filter(|r| status.is_none_or(|s| s == r.status))
            .map(|r| r.count)
            .sum())
    }

    pub async fn requests(&self) -> Result<Vec<LoggedRequest>, reqwest::Error> {
        #[derive(Deserialize)]
        struct Log {
            requests: Vec<LoggedRequest>,
        }
        let log: Log = self
            .send(self.http.get(format!("{}/_sim/requests", self.base)))
            .await?;
        Ok(log.requests)
    }

    pub async fn deliveries(&self) -> Result<Value, reqwest::Error> {
        self.send(self.http.get(format!("{}/_sim/webhooks", self.base)))
            .await
    }
}
