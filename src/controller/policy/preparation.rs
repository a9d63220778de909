//! How long masters take to prepare, as this operator has seen them, and when a preparing
//! master is worth a look: kept in memory apart from the I/O (as linkerd2's policy
//! controller keeps its indexes), fed by the reconciler with what each call showed, read
//! through pure functions of its contents and the clock.
//!
//! Without webhooks every look at a preparing master is a GET. Polls start at `poll_min` and
//! slow down as it takes longer, so a master that prepares in 3 s costs three GETs. When the
//! operator has seen masters prepare, the first look is put at the expected preparation time
//! instead, within the existing bounds: never sooner than the usual schedule, and only within
//! the first `poll_max` of a preparation (after that the usual schedule alone applies).
//!
//! - A sample is a preparation timed precisely enough to be worth learning from: seen ready
//!   by a webhook (at once), or by a look that came after one still found it preparing, no
//!   longer before than half its age or `poll_min` (the usual schedule's finest step). A
//!   master found ready at its first look only tells that the wait was long enough; it is not
//!   a sample (else the estimate would feed on itself). The expectation is the median of the
//!   samples of the last [`SAMPLE_LIFETIME`] (at most [`SAMPLES`]); older ones are dropped.
//! - Samples come from masters slower than expected, so the estimate leans to the slow ones:
//!   one master in [`EXPLORE_EVERY`] keeps the usual schedule and is timed whatever its
//!   speed (webhooks, when they flow, time every master).
//! - With no sample yet (a fresh start, a batch created together), one master leads: it keeps
//!   the usual schedule and is timed; the masters requested while it is looked at follow it,
//!   their first look held (at most `poll_max`) until the leader's preparation ends. Then the
//!   followers are woken ([`Preparations::observe`] names them; while webhooks flow, their own
//!   events wake them instead, a wake-up would only bring a GET forward): with the sample they
//!   look when it says; without one (errored, revoked, forgotten) the oldest follower leads.
//!   A leader no look has seen for twice `poll_max` (its resource stuck or gone) leads nobody,
//!   so nothing waits on a master nobody looks at. (An earlier hold put each master behind
//!   every older one still preparing, by their age: a pipeline of masters held one another,
//!   none was looked at, and a MasterExportSet's 1,000 children took over 10 minutes.)

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::timing::{add, until};
use super::{Settings, effective_access};
use crate::resource::{Access, MasterExportSpec, MasterExportStatus, MasterStage, Phase};
use mux::types::{Asset, MasterStatus};

/// Samples kept at most.
pub const SAMPLES: usize = 32;
/// How long a sample counts.
pub const SAMPLE_LIFETIME: Duration = Duration::from_secs(600);
/// A watch never resolved (its asset deleted while preparing, the resource pointed elsewhere)
/// is dropped after this long.
pub const WATCH_LIFETIME: Duration = Duration::from_secs(3600);
/// One master in this many keeps the usual schedule once something is learnt.
pub const EXPLORE_EVERY: u64 = 16;

/// What a call showed of an asset's master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Our request (`temporary`) was answered with the master preparing: it starts now.
    Requested,
    /// Still preparing.
    Preparing,
    /// Ready; `at_once`: seen as it happened (a webhook's snapshot), not by a poll.
    Ready { at_once: bool },
    /// No master, an errored one, or access off: nothing to time.
    Other,
}

/// What `asset` shows of its master; `requested`: it is the answer to our `temporary`.
pub fn seen(asset: &Asset, requested: bool, from_webhook: bool) -> Seen {
    match asset.master_status() {
        Some(MasterStatus::Preparing) if requested => Seen::Requested,
        Some(MasterStatus::Preparing) => Seen::Preparing,
        Some(MasterStatus::Ready) if asset.master_url().is_some() => Seen::Ready {
            at_once: from_webhook,
        },
        _ => Seen::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watch {
    /// When our request was answered with the master preparing.
    started: Timestamp,
    /// The last time it was seen still preparing.
    preparing_at: Timestamp,
    /// Polled on the usual schedule, to be timed whatever its speed.
    explore: bool,
    /// Requested while nothing was learnt and a leader was looked at: held behind it.
    follows: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    took: Duration,
    at: Timestamp,
}

/// The masters being prepared for our requests, and recent preparation times.
#[derive(Debug, Default)]
pub struct Preparations {
    watches: HashMap<String, Watch>,
    samples: VecDeque<Sample>,
    /// Watches started so far (which one explores).
    started: u64,
}

impl Preparations {
    /// Records what a call made at `at` showed of `asset`'s master. Returns the assets whose
    /// first look this brought forward (a leader's preparation ended): wake their resources.
    pub fn observe(
        &mut self,
        asset: &str,
        seen: Seen,
        at: Timestamp,
        settings: &Settings,
    ) -> Vec<String> {
        match seen {
            Seen::Requested => {
                // A request while one is preparing does not restart it.
                if !self.watches.contains_key(asset) {
                    self.started += 1;
                    if self.started.is_multiple_of(64) {
                        self.watches
                            .retain(|_, w| until(w.started, at) <= WATCH_LIFETIME);
                    }
                    let follows =
                        self.expected(at).is_none() && self.leader_looked_at(at, settings);
                    let watch = Watch {
                        started: at,
                        preparing_at: at,
                        explore: self.started.is_multiple_of(EXPLORE_EVERY),
                        follows,
                    };
                    self.watches.insert(asset.to_string(), watch);
                }
                Vec::new()
            }
            Seen::Preparing => {
                if let Some(watch) = self.watches.get_mut(asset) {
                    watch.preparing_at = watch.preparing_at.max(at);
                }
                Vec::new()
            }
            Seen::Ready { at_once } => {
                let Some(watch) = self.watches.remove(asset) else {
                    return Vec::new();
                };
                let took = until(watch.started, at);
                let bracket = until(watch.preparing_at, at);
                // poll_min and a quarter: the usual first poll, give or take its scheduling.
                if at_once || bracket <= (took / 2).max(settings.poll_min * 5 / 4) {
                    self.samples.push_back(Sample { took, at });
                    while self.samples.len() > SAMPLES {
                        self.samples.pop_front();
                    }
                }
                self.ended(watch, at)
            }
            Seen::Other => match self.watches.remove(asset) {
                Some(watch) => self.ended(watch, at),
                None => Vec::new(),
            },
        }
    }

    /// Forgets an asset no resource names any more. Returns the assets to wake, as `observe`.
    pub fn forget(&mut self, asset: &str, now: Timestamp) -> Vec<String> {
        match self.watches.remove(asset) {
            Some(watch) => self.ended(watch, now),
            None => Vec::new(),
        }
    }

    /// Whether a master that leads (not held) was requested or seen preparing within twice
    /// `poll_max` of `now`: its next look is due within `poll_max` on the usual schedule.
    fn leader_looked_at(&self, now: Timestamp, settings: &Settings) -> bool {
        self.watches
            .values()
            .any(|w| !w.follows && until(w.preparing_at, now) <= settings.poll_max * 2)
    }

    /// After `watch`'s preparation ended: when it led, the followers it held. With something
    /// learnt they all look when it says; without, the oldest follower leads now.
    fn ended(&mut self, watch: Watch, now: Timestamp) -> Vec<String> {
        if watch.follows {
            return Vec::new();
        }
        let followers = self.watches.iter_mut().filter(|(_, w)| w.follows);
        if self
            .samples
            .iter()
            .any(|s| until(s.at, now) <= SAMPLE_LIFETIME)
        {
            // Released: what was learnt times their first look from now on.
            return followers
                .map(|(id, w)| {
                    w.follows = false;
                    id.clone()
                })
                .collect();
        }
        match followers.min_by_key(|(id, w)| (w.started, id.as_str())) {
            Some((id, w)) => {
                w.follows = false;
                vec![id.clone()]
            }
            None => Vec::new(),
        }
    }

    /// The expected preparation time: the median of the samples still counting at `now`.
    pub fn expected(&self, now: Timestamp) -> Option<Duration> {
        let mut recent: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| until(s.at, now) <= SAMPLE_LIFETIME)
            .map(|s| s.took)
            .collect();
        if recent.is_empty() {
            return None;
        }
        recent.sort();
        Some(recent[(recent.len() - 1) / 2])
    }

    /// When `asset`'s master, prepared for our request, is worth a first look: at its start
    /// plus the expected preparation, never beyond `poll_max` of its age. `None`: the usual
    /// schedule (not ours, exploring, or nothing learnt yet).
    pub fn first_look(
        &self,
        asset: &str,
        now: Timestamp,
        settings: &Settings,
    ) -> Option<Timestamp> {
        let watch = self.watches.get(asset)?;
        let wait = match self.expected(now) {
            Some(_) if watch.explore => return None,
            Some(took) => took,
            // Nothing learnt: a follower waits for its leader (woken when it ends), a leader
            // keeps the usual schedule, and so does a follower whose leader nobody looks at.
            None if watch.follows && self.leader_looked_at(now, settings) => settings.poll_max,
            None => return None,
        };
        Some(add(watch.started, wait.min(settings.poll_max)))
    }
}

/// A reconcile of a master still preparing for our request makes no call before its first
/// look is due (woken early: by the usual schedule planned before anything was learnt, or by
/// an owned object): how long to wait instead. `None`: look now (something changed, the
/// look is due, or this is not a settled preparation). The request stays pending in the
/// status while the master prepares; it was answered: `first_look` is only known once our
/// request's answer showed the master preparing, in this process.
pub fn wait_before_looking(
    spec: &MasterExportSpec,
    status: &MasterExportStatus,
    generation: Option<i64>,
    now: Timestamp,
    first_look: Option<Timestamp>,
) -> Option<Duration> {
    let settled = status.observed_generation.is_some()
        && status.observed_generation == generation
        && status.copy.is_none();
    let preparing = effective_access(spec, status) == Access::Temporary
        && status.phase == Some(Phase::Preparing)
        && status
            .master
            .as_ref()
            .is_some_and(|m| m.status == MasterStage::Preparing && m.url.is_none());
    let wait = until(now, first_look?);
    (settled && preparing && !spec.suspend && wait >= LOOK_FLOOR).then_some(wait)
}

/// A first look due sooner than this is made now.
pub const LOOK_FLOOR: Duration = Duration::from_millis(100);

#[cfg(test)]
#[path = "tests/preparation.rs"]
mod tests;
