//! Publishing Kubernetes Events with a memory that stays small at tens of thousands of
//! resources.
//!
//! kube's `Recorder` aggregates an Event repeated within six minutes into a series (as
//! client-go does), and for that keeps every Event it published for six minutes: the whole
//! Event and a key holding its note and object reference again, about 2 KiB each, swept under
//! one lock on every publish. At 10,000 MasterExports, each announcing a few Events per URL
//! lifetime, that cache was the largest part of the operator's memory. This recorder keeps the
//! same series semantics (same type, reason, action, note, object and reporter within
//! [`SERIES_WINDOW`]: the first Event's `series.count` goes up instead of a new Event) but
//! remembers, per series, a 64-bit digest of that identity, the Event's name and its count.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};

/// How long a repeat joins the earlier Event's series (client-go's and kube's six minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The series cache is swept of old entries at most this often (not on every publish).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One Event published recently, as much as a repeat needs: no strings (its namespace and
/// name follow from the object it is about and when it was created; see
/// [`Recorder::event_name`]), about 40 bytes per series.
#[derive(Debug, Clone, Copy)]
struct Series {
    created: Timestamp,
    count: i32,
    last: Timestamp,
}

/// The recent series by the digest of their identity, and when they were last swept.
#[derive(Debug)]
struct Recent {
    by_digest: HashMap<u64, Series>,
    swept_at: Timestamp,
}

impl Recent {
    /// Drops the series a repeat at `now` would no longer join.
    fn sweep(&mut self, now: Timestamp) {
        if crate::controller::policy::until(self.swept_at, now) < SWEEP_EVERY {
            return;
        }
        self.swept_at = now;
        self.by_digest.retain(|_, s| in_window(s.last, now));
    }
}

fn in_window(last: Timestamp, now: Timestamp) -> bool {
    crate::controller::policy::until(last, now) < SERIES_WINDOW
}

/// Publishes Events for one reporter (the operator, by instance).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    hasher: RandomState,
    recent: Mutex<Recent>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            hasher: RandomState::new(),
            recent: Mutex::new(Recent {
                by_digest: HashMap::new(),
                swept_at: Timestamp::now(),
            }),
        }
    }

    /// How many series are remembered (for tests and the memory's accounting).
    pub fn remembered(&self) -> usize {
        self.recent.lock().expect("recorder lock").by_digest.len()
    }

    /// Publishes `event` about `regarding`: a new Event, or the next count of the series it
    /// repeats.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let digest = self.digest(event, regarding);
        let repeat = {
            let mut recent = self.recent.lock().expect("recorder lock");
            recent.sweep(now);
            recent
                .by_digest
                .get(&digest)
                .filter(|s| in_window(s.last, now))
                .cloned()
        };
        let published = match repeat {
            Some(series) => match self.count_again(&series, regarding, now).await {
                Ok(()) => Series {
                    count: series.count + 1,
                    last: now,
                    ..series
                },
                // The Event went (deleted, or its TTL passed early): start a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.create(event, regarding, now).await?
                }
                Err(error) => return Err(error),
            },
            None => self.create(event, regarding, now).await?,
        };
        self.recent
            .lock()
            .expect("recorder lock")
            .by_digest
            .insert(digest, published);
        Ok(())
    }

    async fn create(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<Series, kube::Error> {
        let k8s = self.new_event(event, regarding, now);
        Api::<K8sEvent>::namespaced(self.client.clone(), &event_namespace(regarding))
            .create(&PostParams::default(), &k8s)
            .await?;
        Ok(Series {
            created: now,
            count: 1,
            last: now,
        })
    }

    /// The next count of a series: only `series` changes on the Event.
    async fn count_again(
        &self,
        series: &Series,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "series": EventSeries {
                count: series.count + 1,
                last_observed_time: MicroTime(now),
            }
        });
        let name = self.event_name(regarding, series.created);
        Api::<K8sEvent>::namespaced(self.client.clone(), &event_namespace(regarding))
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// What makes two Events the same series (kube's and client-go's key).
    fn digest(&self, event: &Event, regarding: &ObjectReference) -> u64 {
        let mut h = self.hasher.build_hasher();
        matches!(event.type_, EventType::Warning).hash(&mut h);
        event.reason.hash(&mut h);
        event.action.hash(&mut h);
        event.note.hash(&mut h);
        for part in [
            &regarding.api_version,
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
            &regarding.uid,
        ] {
            part.hash(&mut h);
        }
        event
            .secondary
            .as_ref()
            .map(|s| (&s.kind, &s.namespace, &s.name, &s.uid))
            .hash(&mut h);
        h.finish()
    }

    /// The name of the Event about `regarding` created at `created` (client-go's form).
    fn event_name(&self, regarding: &ObjectReference, created: Timestamp) -> String {
        format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            created.as_nanosecond()
        )
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let instance = self
            .reporter
            .instance
            .clone()
            .unwrap_or_else(|| self.reporter.controller.clone());
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(event_namespace(regarding)),
                name: Some(self.event_name(regarding, now)),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(instance),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..K8sEvent::default()
        }
    }
}

/// The namespace of Events about `regarding`: its own.
fn event_namespace(regarding: &ObjectReference) -> String {
    regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn series(last: Timestamp) -> Series {
        Series {
            created: last,
            count: 1,
            last,
        }
    }

    #[test]
    fn a_sweep_drops_only_series_a_repeat_could_no_longer_join_and_not_on_every_call() {
        let mut recent = Recent {
            by_digest: HashMap::from([(1, series(t(0))), (2, series(t(300)))]),
            swept_at: t(0),
        };
        recent.sweep(t(5)); // too soon after the last sweep: nothing dropped
        assert_eq!(recent.by_digest.len(), 2);
        recent.sweep(t(400)); // 1 is 400 s old (past the window), 2 is 100 s old
        assert_eq!(recent.by_digest.keys().collect::<Vec<_>>(), vec![&2]);
        assert!(in_window(t(300), t(659)));
        assert!(!in_window(t(300), t(660)));
    }
}
