//! mux-sim's settings: set by flags at start, changed at run time by `PATCH /_sim/config`.

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

fn duration_arg(text: &str) -> Result<Duration, String> {
    mux::duration::parse(text)
}

/// A rate in bytes per second: `25MB/s`, `20MiB/s`, `500kB/s` or a plain number of bytes; `0`
/// is no limit.
pub fn rate_arg(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let amount = text.strip_suffix("/s").unwrap_or(text).trim();
    let digits = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let number: u64 = amount[..digits]
        .parse()
        .map_err(|_| format!("{text:?} is not a rate like 25MB/s"))?;
    let unit: u64 = match amount[digits..].trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, kB, MB, MiB, GB)"
            ));
        }
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Serialises durations as milliseconds, so `PATCH /_sim/config` takes plain numbers.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Everything about how the emulated Mux behaves.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct Switches {
    // --- The master's lifecycle -----------------------------------------------------
    /// How long a master stays `preparing` once the asset is ready.
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "master_prepare_delay_ms")]
    pub master_prepare_delay: Duration,
    /// How long a new asset (or a recording just ended) stays `preparing`.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "asset_prepare_delay_ms")]
    pub asset_prepare_delay: Duration,
    /// How long a master URL works (24 h at Mux).
    #[arg(long, default_value = "24h", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "url_lifetime_ms")]
    pub url_lifetime: Duration,
    /// Undocumented at Mux: the URL's window counts from `ready` rather than from the
    /// request. Off: it counts from the request.
    #[arg(long)]
    pub window_from_ready: bool,
    /// Undocumented at Mux: a second PUT `temporary` on a ready master gives a new URL and
    /// a new window. Off: the same URL comes back, and only `none` → `temporary` renews.
    #[arg(long)]
    pub renew_on_repeat: bool,
    /// Undocumented at Mux: the expiry of a URL sends `video.asset.master.deleted`.
    #[arg(long)]
    pub expiry_webhook: bool,
    /// Reported in the field: right after `ready` the file still grows. For this long after
    /// `ready` the served file is shorter than its final size.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "growth_ms")]
    pub growth: Duration,
    /// The share of the final size served right at `ready` when `growth` is set.
    #[arg(long, default_value_t = 0.9)]
    pub growth_initial_fraction: f64,
    /// Before it grows, the file holds still at `growth_initial_fraction` for this long after
    /// `ready` (a writer that pauses longer than a copier's settle checks).
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "growth_pause_ms")]
    pub growth_pause: Duration,
    /// This many bytes of the end of every master are never written: a master that stays
    /// truncated (its `moov` cut, or missing).
    #[arg(long, default_value_t = 0)]
    pub master_truncate: u64,
    /// Send `ETag` and `Last-Modified` with the master (both change as it grows) and honour
    /// `If-Range` (a stale validator gets the whole file, 200).
    #[arg(long)]
    pub master_validators: bool,
    /// A CDN's limit on one connection: each master download (one response: on HTTP/1.1, one
    /// connection at a time) is paced to at most this many bytes per second, independently of
    /// the others, so that parallel `Range` requests go faster in aggregate. `0`: unlimited.
    #[arg(long, default_value = "0", value_parser = rate_arg)]
    #[serde(rename = "download_rate_per_connection_bps")]
    pub download_rate_per_connection: u64,
    /// A CDN's time to first byte: every master download (GET or HEAD, ranged or not) waits
    /// this long before its answer starts.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "download_first_byte_ms")]
    pub download_first_byte: Duration,
    /// Ignore `Range` on master downloads: every GET gets the whole file (200), as from a
    /// server without range support.
    #[arg(long)]
    pub master_ignore_range: bool,
    /// The size of the masters of assets created through `POST /video/v1/assets`.
    #[arg(long, default_value_t = 1 << 20)]
    pub default_master_size: u64,

    // --- Rate limits ----------------------------------------------------------------
    /// Sustained POST requests per second to /video/*.
    #[arg(long, default_value_t = 1.0)]
    pub post_rate: f64,
    #[arg(long, default_value_t = 3)]
    pub post_burst: u32,
    /// Sustained requests per second of every other method.
    #[arg(long, default_value_t = 5.0)]
    pub other_rate: f64,
    #[arg(long, default_value_t = 10)]
    pub other_burst: u32,
    /// Time compression for benchmarks: the URL lifetime is divided by this factor and both
    /// sustained rates multiplied by it (bursts, which are counts, stay), so a load keeps the
    /// same share of Mux's budget as the uncompressed load over the uncompressed lifetime.
    #[arg(long, default_value_t = 1.0)]
    pub time_compression: f64,
    /// Undocumented at Mux: send `Retry-After` with a 429.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub retry_after: bool,

    // --- Faults on /video/* ---------------------------------------------------------
    /// The share of API requests answered `fail_status`.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Answer this many of the next API requests with `fail_status`.
    #[arg(long, default_value_t = 0)]
    pub fail_next: u32,
    /// The status of injected API errors: 500, a gateway's 502/503/504, or 403 (as Mux answers
    /// a token whose permissions were withdrawn), with Mux's error envelope.
    #[arg(long, default_value_t = 500)]
    pub fail_status: u16,
    /// Send `Retry-After: <seconds>` with injected errors (0: none).
    #[arg(long, default_value_t = 0)]
    pub fail_retry_after: u64,
    /// Added to every API request.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "latency_ms")]
    pub latency: Duration,
    /// The share of API requests whose connection is dropped before the body.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// The share of API requests answered 200 with a malformed body.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Cut this many of the next master downloads short, after `master_drop_after` bytes.
    #[arg(long, default_value_t = 0)]
    pub master_drops: u32,
    #[arg(long, default_value_t = 1 << 20)]
    pub master_drop_after: u64,
    /// Answer this many of the next master downloads with `master_error_status`.
    #[arg(long, default_value_t = 0)]
    pub master_errors: u32,
    #[arg(long, default_value_t = 503)]
    pub master_error_status: u16,
    /// Stall this many of the next master downloads after `master_stall_after` bytes: the
    /// connection stays open and sends nothing more.
    #[arg(long, default_value_t = 0)]
    pub master_stalls: u32,
    #[arg(long, default_value_t = 1 << 20)]
    pub master_stall_after: u64,

    // --- Webhooks -------------------------------------------------------------------
    /// Where to POST webhook events (repeatable).
    #[arg(long = "webhook-url")]
    pub webhook_urls: Vec<String>,
    /// The signing secret of the webhook endpoints.
    #[arg(long, default_value = "mux-sim-signing-secret")]
    pub webhook_secret: String,
    /// Deliver events at all.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub webhooks_enabled: bool,
    /// Deliver every event twice.
    #[arg(long)]
    pub webhook_duplicate: bool,
    /// Deliver events out of order (each first attempt waits a random delay up to this).
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "webhook_reorder_ms")]
    pub webhook_reorder: Duration,
    /// The first retry delay after a non-2xx answer; it doubles each attempt.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    #[serde(with = "millis", rename = "webhook_retry_base_ms")]
    pub webhook_retry_base: Duration,
    /// Give up on a delivery after this many attempts (Mux retries for 24 hours).
    #[arg(long, default_value_t = 18)]
    pub webhook_max_attempts: u32,
}

impl Switches {
    /// The time compression, never below 1 (nor NaN).
    fn compression(&self) -> f64 {
        if self.time_compression >= 1.0 {
            self.time_compression
        } else {
            1.0
        }
    }

    /// How long a URL works, time compression applied.
    pub fn url_window(&self) -> Duration {
        self.url_lifetime.div_f64(self.compression())
    }

    /// Sustained POSTs per second, time compression applied.
    pub fn post_limit(&self) -> f64 {
        self.post_rate * self.compression()
    }

    /// Sustained requests per second of other methods, time compression applied.
    pub fn other_limit(&self) -> f64 {
        self.other_rate * self.compression()
    }

    /// The switches with `patch` (a JSON object of some fields) applied.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Switches, String> {
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let (Some(target), Some(patch)) = (merged.as_object_mut(), patch.as_object()) else {
            return Err("the patch must be a JSON object".into());
        };
        for (key, value) in patch {
            if !target.contains_key(key) {
                return Err(format!("unknown setting {key:?}"));
            }
            target.insert(key.clone(), value.clone());
        }
        serde_json::from_value(merged).map_err(|e| e.to_string())
    }
}

impl Default for Switches {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            switches: Switches,
        }
        <Defaults as clap::Parser>::parse_from(["mux-sim"]).switches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_mux() {
        let s = Switches::default();
        assert_eq!(s.url_lifetime, Duration::from_secs(86_400));
        assert_eq!((s.post_rate, s.other_rate), (1.0, 5.0));
        assert!(s.retry_after && s.webhooks_enabled && !s.renew_on_repeat);
    }

    #[test]
    fn rates_parse_with_their_units() {
        assert_eq!(rate_arg("25MB/s"), Ok(25_000_000));
        assert_eq!(rate_arg("20MiB/s"), Ok(20 << 20));
        assert_eq!(rate_arg("500kB/s"), Ok(500_000));
        assert_eq!(rate_arg("1000"), Ok(1000));
        assert_eq!(rate_arg("0"), Ok(0));
        assert!(rate_arg("fast").is_err());
        assert!(rate_arg("25 parsecs/s").is_err());
        let s = Switches::default();
        assert_eq!(
            (s.download_rate_per_connection, s.download_first_byte),
            (0, Duration::ZERO)
        );
    }

    #[test]
    fn time_compression_shortens_the_window_and_raises_the_rates_by_one_factor() {
        let mut s = Switches::default();
        assert_eq!(s.url_window(), Duration::from_secs(86_400));
        assert_eq!((s.post_limit(), s.other_limit()), (1.0, 5.0));
        s.time_compression = 240.0;
        assert_eq!(s.url_window(), Duration::from_secs(360));
        assert_eq!((s.post_limit(), s.other_limit()), (240.0, 1200.0));
        assert_eq!(s.other_burst, 10, "bursts are counts: unchanged");
        // Same share of the budget: requests per URL lifetime allowed stay the same.
        let allowed = |s: &Switches| s.other_limit() * s.url_window().as_secs_f64();
        assert_eq!(allowed(&s), allowed(&Switches::default()));
        s.time_compression = 0.0;
        assert_eq!(s.url_window(), Duration::from_secs(86_400), "below 1: none");
    }

    #[test]
    fn a_patch_changes_only_what_it_names_and_refuses_typos() {
        let s = Switches::default();
        let p = s
            .patched(&serde_json::json!({"url_lifetime_ms": 5000, "renew_on_repeat": true}))
            .unwrap();
        assert_eq!(p.url_lifetime, Duration::from_secs(5));
        assert!(p.renew_on_repeat);
        assert_eq!(p.post_rate, s.post_rate);
        assert!(
            s.patched(&serde_json::json!({"url_lifetme_ms": 1}))
                .is_err()
        );
    }
}
