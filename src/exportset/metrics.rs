//! Prometheus gauges of the sets, read at scrape time from what each set's last reconcile
//! counted: `set_assets{namespace, set, state}` (the status's counts) and
//! `set_bytes_archived{namespace, set}`. A set's series go when it is deleted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::resource::SetCounts;

type Key = (String, String);

/// The sets' last counts, shared by the set controller (writer) and `/metrics` (reader).
#[derive(Clone, Debug, Default)]
pub struct SetGauges(Arc<Mutex<BTreeMap<Key, (SetCounts, u64)>>>);

impl SetGauges {
    pub fn record(&self, namespace: &str, set: &str, counts: &SetCounts, bytes_archived: u64) {
        let key = (namespace.to_string(), set.to_string());
        let mut map = self.0.lock().expect("set gauges lock");
        map.insert(key, (counts.clone(), bytes_archived));
    }

    pub fn forget(&self, namespace: &str, set: &str) {
        let key = (namespace.to_string(), set.to_string());
        self.0.lock().expect("set gauges lock").remove(&key);
    }
}

fn states(c: &SetCounts) -> [(&'static str, u32); 8] {
    [
        ("discovered", c.discovered),
        ("total", c.total),
        ("waiting", c.waiting),
        ("in_flight", c.in_flight),
        ("done", c.done),
        ("failed", c.failed),
        ("skipped", c.skipped),
        ("deleted", c.deleted),
    ]
}

impl Collector for SetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.0.lock().expect("set gauges lock");
        let kind = ConstGauge::new(0i64).metric_type();
        let mut family = encoder.encode_descriptor(
            "set_assets",
            "Assets of each MasterExportSet, by state (as its status counts them)",
            None,
            kind,
        )?;
        for ((namespace, set), (counts, _)) in map.iter() {
            for (state, n) in states(counts) {
                let labels = [
                    ("namespace", namespace.as_str()),
                    ("set", set),
                    ("state", state),
                ];
                ConstGauge::new(i64::from(n)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "set_bytes_archived",
            "Bytes of the verified archives of each MasterExportSet's children",
            None,
            kind,
        )?;
        for ((namespace, set), (_, bytes)) in map.iter() {
            let labels = [("namespace", namespace.as_str()), ("set", set.as_str())];
            let bytes = i64::try_from(*bytes).unwrap_or(i64::MAX);
            ConstGauge::new(bytes).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn each_set_has_a_series_per_state_until_it_is_forgotten() {
        let gauges = SetGauges::default();
        let mut registry = Registry::with_prefix("mux_master_operator");
        registry.register_collector(Box::new(gauges.clone()));
        let counts = SetCounts {
            total: 1000,
            done: 812,
            in_flight: 10,
            waiting: 178,
            discovered: 1000,
            ..Default::default()
        };
        gauges.record("media", "env", &counts, 5 << 30);
        let text = || {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
            out
        };
        let shown = text();
        assert!(
            shown.contains(
                r#"mux_master_operator_set_assets{namespace="media",set="env",state="done"} 812"#
            ),
            "{shown}"
        );
        assert!(shown.contains(
            r#"mux_master_operator_set_assets{namespace="media",set="env",state="in_flight"} 10"#
        ));
        assert!(shown.contains(
            r#"mux_master_operator_set_bytes_archived{namespace="media",set="env"} 5368709120"#
        ));
        gauges.forget("media", "env");
        assert!(!text().contains("set=\"env\""));
    }
}
