//! Prometheus metrics of the operator, served on `/metrics`.
//!
//! Labels carry names and reasons, never URLs or tokens. The per-resource expiry gauge is
//! computed at scrape time from each URL's `expiresAt`, so it is exact whenever read, and
//! its series disappear with their resources (memory follows the resources, not time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use mux::RequestRecord;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MuxLabels {
    pub endpoint: &'static str,
    /// The HTTP status, or `error` when no response came.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `webhook` (the snapshot an event carried) or `mux` (a GET).
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// `(namespace, name)` → when the published URL expires.
type Expiries = Arc<Mutex<HashMap<(String, String), jiff::Timestamp>>>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ReasonLabels, Counter>,
    pub mux_requests: Family<MuxLabels, Counter>,
    pub refreshes: Counter,
    pub webhook_events: Family<KindLabels, Counter>,
    pub webhook_refused: Family<ReasonLabels, Counter>,
    /// Reads of an asset's state by a reconcile, by where it came from.
    pub asset_reads: Family<SourceLabels, Counter>,
    /// Seconds from a webhook's arrival to the status written in answer.
    pub webhook_to_status_seconds: Histogram,
    /// MasterExportSets' counts (`set_assets`, `set_bytes_archived`).
    pub sets: crate::exportset::metrics::SetGauges,
    expiries: Expiries,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mux_master_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of MasterExports, by result",
            reconciles.clone(),
        );
        let errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by reason",
            errors.clone(),
        );
        let mux_requests = Family::<MuxLabels, Counter>::default();
        registry.register(
            "mux_requests",
            "HTTP requests to the Mux API, by endpoint and status code",
            mux_requests.clone(),
        );
        let refreshes = Counter::default();
        registry.register(
            "url_refreshes",
            "Master URLs replaced by a fresh one",
            refreshes.clone(),
        );
        let webhook_events = Family::<KindLabels, Counter>::default();
        registry.register(
            "webhook_events",
            "Verified Mux webhook events, by type",
            webhook_events.clone(),
        );
        let webhook_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "webhook_refused",
            "Refused webhook deliveries, by reason",
            webhook_refused.clone(),
        );
        let asset_reads = Family::<SourceLabels, Counter>::default();
        registry.register(
            "asset_reads",
            "Reads of an asset's state by a reconcile: a webhook's snapshot or a GET at Mux",
            asset_reads.clone(),
        );
        let webhook_to_status_seconds = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        registry.register(
            "webhook_to_status_seconds",
            "Time from a webhook's arrival to the MasterExport status written in answer",
            webhook_to_status_seconds.clone(),
        );
        let expiries: Expiries = Arc::default();
        registry.register_collector(Box::new(ExpiryCollector(expiries.clone())));
        let sets = crate::exportset::metrics::SetGauges::default();
        registry.register_collector(Box::new(sets.clone()));
        Self {
            registry: Arc::new(registry),
            reconciles,
            errors,
            mux_requests,
            refreshes,
            webhook_events,
            webhook_refused,
            asset_reads,
            webhook_to_status_seconds,
            sets,
            expiries,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding to a String cannot fail");
        out
    }

    /// Counts one request to Mux (the Mux client's observer).
    pub fn observe_mux(&self, record: &RequestRecord) {
        let code = record
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "error".into());
        self.mux_requests
            .get_or_create(&MuxLabels {
                endpoint: record.endpoint,
                code,
            })
            .inc();
    }

    /// Records when a resource's published URL expires (`None`: it has none).
    pub fn set_expiry(&self, namespace: &str, name: &str, expires_at: Option<jiff::Timestamp>) {
        let mut map = self.expiries.lock().expect("expiries lock");
        let key = (namespace.to_string(), name.to_string());
        match expires_at {
            Some(at) => {
                map.insert(key, at);
            }
            None => {
                map.remove(&key);
            }
        }
    }
}

#[derive(Debug)]
struct ExpiryCollector(Expiries);

impl Collector for ExpiryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = jiff::Timestamp::now();
        let map = self.0.lock().expect("expiries lock");
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "url_expires_in_seconds",
            "Seconds until each MasterExport's published master URL expires",
            None,
            gauge.metric_type(),
        )?;
        for ((namespace, name), at) in map.iter() {
            let seconds = at.duration_since(now).as_secs();
            let labels = [("namespace", namespace.as_str()), ("name", name.as_str())];
            ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_series_come_and_go_with_resources() {
        let metrics = Metrics::default();
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        metrics.set_expiry("media", "keynote", Some(at));
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("mux_master_operator_url_expires_in_seconds{"))
            .expect("a series");
        let value: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&value), "{line}");
        metrics.set_expiry("media", "keynote", None);
        assert!(!metrics.render().contains("name=\"keynote\""));
    }

    #[test]
    fn mux_requests_are_counted_by_endpoint_and_code() {
        let metrics = Metrics::default();
        metrics.observe_mux(&RequestRecord {
            endpoint: "get_asset",
            status: Some(429),
            elapsed: Default::default(),
        });
        assert!(metrics.render().contains(
            "mux_master_operator_mux_requests_total{endpoint=\"get_asset\",code=\"429\"} 1"
        ));
    }
}
