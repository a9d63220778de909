//! The controller's decisions, as pure functions of what it observed and the clock.
//!
//! No I/O here: the reconciler reads the resource and the asset, asks [`decide`] what to
//! do, does it, and asks again with what Mux answered. Everything a MasterExport can go
//! through is therefore testable without a cluster or a network (cert-manager's renewal
//! policy is the model). The copy's decisions are in `copy_policy`.
//!
//! Timing rules ([`timing`]):
//! - a URL's 24 hours are assumed to run from the request (the earlier of the instants Mux
//!   might count from), so `expiresAt = requestedAt + urlLifetime`;
//! - `refreshAt = expiresAt − refreshBefore − spread`, where `spread` is a stable share of
//!   `refreshBefore / 4` drawn from the resource's UID: resources created together do not
//!   all refresh in the same second, and none refreshes later than asked;
//! - while a master is preparing, polls start at `poll_min` and slow down as it takes
//!   longer, up to `poll_max` (webhooks, when configured, wake the controller sooner).
//!
//! # Phases
//!
//! `status.phase` moves as follows (the Mux call made on the way, if any, in brackets):
//!
//! | from                | when                                                         | to          |
//! |---------------------|--------------------------------------------------------------|-------------|
//! | (new), any          | the live stream is live or has no recording; the asset is still recording | `Pending`   |
//! | (new), `Pending`, `Revoked`, `Failed` | no master at Mux [`PUT temporary`: Request]   | `Preparing` |
//! | `Preparing`         | Mux is still preparing the master                            | `Preparing` |
//! | `Preparing`         | the master is ready with a URL (recorded, published)         | `Ready`     |
//! | `Ready`             | the refresh is due [`PUT temporary`: Renew]                  | `Ready`     |
//! | `Ready`             | the renewal gave the same URL [`PUT none`, then `temporary`: Cycle] | `Preparing` |
//! | `Ready`, `Copying`, `Copied` | the URL expired before it could be refreshed (withdrawn) | `Preparing` |
//! | `Ready`             | a copy Job starts (`spec.destination`)                       | `Copying`   |
//! | `Copying`           | the copy Job failed in a way a new Job may fix               | `Copying`   |
//! | `Copying`           | the copy is verified                                         | `Copied`    |
//! | `Copied`            | `afterCopy.revokeAccess` [`PUT none`: Revoke]                | `Copied`    |
//! | any                 | `access: none` [`PUT none`: Revoke]                          | `Revoked`   |
//! | any                 | a person must act: errored asset or master, credentials, not found, a copy that cannot succeed | `Failed` |
//!
//! A `Failed` resource is looked at again every `stalled_recheck`, and on any spec change;
//! it leaves `Failed` as soon as what Mux shows allows.

mod access;
pub mod deletion;
mod failure;
mod first_request;
pub mod preparation;
mod ready;
mod source;
pub mod timing;
pub mod yielding;

use std::time::Duration;

use jiff::Timestamp;

use super::conditions;
use crate::resource::{
    Access, MasterExportSpec, MasterExportStatus, MasterStage, MasterState, Operation,
    PendingRequest, Phase,
};
use conditions::Summary;
use mux::types::{Asset, AssetStatus, MasterAccess, MasterStatus};

pub use access::{can_skip_mux, copy_done, effective_access, wants_url};
pub use failure::{Failure, drop_expired_url, failed_status, retry_after_failure, url_expired};
pub use first_request::{
    BeforeReading, first_answer, never_observed, read_after_refusal, request_first,
};
pub use ready::same_grant;
pub use source::{LiveSource, SourceLookup, asset_state, resolve_live_stream, source_lookup};
pub use timing::{
    poll_interval, preparing_poll, refresh_at, refresh_before, spread_seed, time, until,
    with_margin,
};

/// The knobs of the policy, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a master URL works (24 h at Mux).
    pub url_lifetime: Duration,
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How often to look again at something only a person can fix.
    pub stalled_recheck: Duration,
    /// Whether `afterCopy.deleteAsset` may delete assets from Mux (`--allow-asset-deletion`).
    pub allow_asset_deletion: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url_lifetime: Duration::from_secs(24 * 3600),
            poll_min: Duration::from_secs(1),
            poll_max: Duration::from_secs(30),
            stalled_recheck: Duration::from_secs(600),
            allow_asset_deletion: false,
        }
    }
}

/// What the reconciler saw, at `now`.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub now: Timestamp,
    pub generation: Option<i64>,
    /// A stable number drawn from the resource's UID, to spread refreshes.
    pub spread_seed: u64,
    pub spec: &'a MasterExportSpec,
    pub status: &'a MasterExportStatus,
    pub asset: &'a Asset,
    /// Set while webhooks flow: the slow pace of fallback polls while waiting on Mux.
    pub slow_poll: Option<Duration>,
    /// The other resources on this asset that need master access now (`namespace/name`):
    /// while there is one, access stays on whatever this one wants.
    pub others_wanting: &'a [String],
    /// The URL grant another resource of this operator recorded for this asset, with the
    /// instant its window counts from: the same URL is then adopted with its window, rather
    /// than renewed (one grant per asset, one refresh, the same URL published to each).
    pub known_grant: Option<&'a Grant>,
    /// When a master preparing for our request is worth its first look (`preparation`).
    pub first_look: Option<Timestamp>,
}

/// A URL grant of an asset, as the resource that asked for it recorded it: a digest of the
/// URL (one per asset is kept, for every asset: the URL itself, already in each status, was
/// ~200 bytes more per export), and the instant its window counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    digest: u64,
    pub requested_at: Timestamp,
}

impl Grant {
    pub fn new(url: &str, requested_at: Timestamp) -> Self {
        Self {
            digest: ready::grant_digest(url),
            requested_at,
        }
    }

    /// Whether `fresh` is this grant's URL (whatever `download=` a client added).
    pub fn is_of(&self, fresh: &mux::types::MasterUrl) -> bool {
        self.digest == ready::grant_digest(fresh.expose())
    }
}

/// The Ready reason of a resource that wants no access while others on its asset do.
pub const ACCESS_KEPT_FOR_OTHERS: &str = "AccessKeptForOthers";

/// Why master access to `asset` stays on although this resource (deleted, `access: none`,
/// or done after its copy) would turn it off.
pub fn kept_for_others(asset: &str, others: &[String]) -> String {
    format!(
        "master access to asset {asset} stays on: other MasterExports still need it ({}); it is turned off when none does",
        others.join(", ")
    )
}

/// How long to wait before looking again at something Mux is working on.
fn wait_for_mux(obs: &Observation<'_>, since: Option<Timestamp>, settings: &Settings) -> Duration {
    let fast = poll_interval(since, obs.now, settings);
    obs.slow_poll.map_or(fast, |slow| slow.max(fast))
}

/// How long to wait before looking again at a preparing master.
fn wait_for_preparation(
    obs: &Observation<'_>,
    since: Option<Timestamp>,
    settings: &Settings,
) -> Duration {
    let fast = preparing_poll(since, obs.now, obs.first_look, settings);
    obs.slow_poll.map_or(fast, |slow| slow.max(fast))
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// A change of master access to make. The reconciler records `status.pending` first,
    /// makes the call, then decides again with the asset Mux returned.
    pub call: Option<(Operation, MasterAccess)>,
    /// The status to write (conditions not yet merged: see `summary`).
    pub status: MasterExportStatus,
    pub summary: Summary,
    /// When to look again; `None`: only when something changes.
    pub requeue_after: Option<Duration>,
}

/// Where a reconcile ends up once no more calls are needed: the status and summary to
/// publish, and when to look again (`None`: only when something changes).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub status: MasterExportStatus,
    pub summary: Summary,
    pub requeue_after: Option<Duration>,
}

impl From<Decision> for Step {
    fn from(decision: Decision) -> Self {
        Step {
            status: decision.status,
            summary: decision.summary,
            requeue_after: decision.requeue_after,
        }
    }
}

/// A live stream with no recording to export yet: `Pending`, looked at again after `wait`.
pub fn waiting_for_recording(
    mut status: MasterExportStatus,
    generation: Option<i64>,
    message: String,
    wait: Duration,
) -> Step {
    status.observed_generation = generation;
    status.phase = Some(Phase::Pending);
    Step {
        status,
        summary: Summary::progressing("WaitingForRecording", message),
        requeue_after: Some(wait),
    }
}

/// When a reconcile that skipped Mux looks again: at the refresh time, if any.
pub fn skipped_requeue(status: &MasterExportStatus, now: Timestamp) -> Option<Duration> {
    status
        .master
        .as_ref()
        .and_then(|m| m.refresh_at.as_ref())
        .map(|r| until(now, r.0).max(Duration::from_millis(100)))
}

/// The core: what to do about one MasterExport, given its asset as Mux shows it now.
pub fn decide(obs: &Observation<'_>, settings: &Settings) -> Decision {
    let mut status = obs.status.clone();
    status.observed_generation = obs.generation;
    status.asset = Some(asset_state(obs.asset));
    let asset = obs.asset;
    let pending = obs.status.pending.as_ref().map(|p| (p.operation, p.at.0));
    let prev = obs.status.master.clone().unwrap_or_default();
    let secret_ref = prev.url_secret_ref.clone();

    let call = |status: MasterExportStatus,
                op: Operation,
                access: MasterAccess,
                summary: Summary| Decision {
        call: Some((op, access)),
        status,
        summary,
        requeue_after: None,
    };

    if obs.spec.access == Access::None {
        let master_on = asset.master_access == MasterAccess::Temporary || asset.master.is_some();
        status.master = Some(MasterState {
            status: MasterStage::None,
            url_secret_ref: secret_ref,
            refreshes: prev.refreshes,
            ..Default::default()
        });
        if master_on && !obs.others_wanting.is_empty() {
            status.phase = Some(Phase::Revoked);
            status.pending = None;
            return Decision {
                call: None,
                status,
                summary: Summary::ready(
                    ACCESS_KEPT_FOR_OTHERS,
                    format!(
                        "this MasterExport publishes no URL; {}",
                        kept_for_others(&asset.id, obs.others_wanting)
                    ),
                ),
                requeue_after: None,
            };
        }
        if master_on {
            return call(
                status,
                Operation::Revoke,
                MasterAccess::None,
                Summary::progressing("Revoking", "turning master access off"),
            );
        }
        status.phase = Some(Phase::Revoked);
        status.pending = None;
        return Decision {
            call: None,
            status,
            summary: Summary::ready("AccessRevoked", "master access is off, as spec.access asks"),
            requeue_after: None,
        };
    }

    if asset.status == AssetStatus::Errored {
        let why = asset
            .errors
            .as_ref()
            .map(|e| e.messages.join("; "))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "no detail given".into());
        status.phase = Some(Phase::Failed);
        status.pending = None;
        status.master = Some(MasterState {
            status: MasterStage::None,
            url_secret_ref: secret_ref,
            refreshes: prev.refreshes,
            ..Default::default()
        });
        return Decision {
            call: None,
            status,
            summary: Summary::stalled(
                "AssetErrored",
                format!(
                    "Mux asset {} is errored ({why}); its master cannot be exported",
                    asset.id
                ),
            ),
            requeue_after: Some(settings.stalled_recheck),
        };
    }

    if asset.is_live == Some(true) {
        status.phase = Some(Phase::Pending);
        return Decision {
            call: None,
            status,
            summary: Summary::progressing(
                "WaitingForRecording",
                format!("asset {} is still recording a live stream", asset.id),
            ),
            requeue_after: Some(wait_for_mux(obs, None, settings).max(settings.poll_max)),
        };
    }

    match asset.master.as_ref().map(|m| m.status) {
        // No master: access is off, was revoked by someone else, or the URL expired.
        None => {
            status.phase = Some(Phase::Preparing);
            status.master = Some(MasterState {
                status: MasterStage::None,
                url_secret_ref: secret_ref,
                refreshes: prev.refreshes,
                ..Default::default()
            });
            call(
                status,
                // The second half of a cycle keeps its name, so its URL counts as a refresh.
                match pending {
                    Some((Operation::Cycle, _)) => Operation::Cycle,
                    _ => Operation::Request,
                },
                MasterAccess::Temporary,
                Summary::progressing("RequestingAccess", "asking Mux for master access"),
            )
        }
        Some(MasterStatus::Preparing) | Some(MasterStatus::Unknown) => {
            let requested_at = pending
                .filter(|(op, _)| {
                    matches!(op, Operation::Request | Operation::Cycle | Operation::Renew)
                })
                .map(|(_, at)| at)
                .or(prev.requested_at.as_ref().map(|t| t.0));
            status.phase = Some(Phase::Preparing);
            status.master = Some(MasterState {
                status: MasterStage::Preparing,
                url: None,
                url_secret_ref: secret_ref,
                requested_at: requested_at.map(time),
                refreshes: prev.refreshes,
                ..Default::default()
            });
            let preparing = if asset.status == AssetStatus::Preparing {
                format!("Mux is preparing asset {}; its master follows", asset.id)
            } else {
                format!("Mux is preparing the master of asset {}", asset.id)
            };
            Decision {
                call: None,
                status,
                summary: Summary::progressing("MasterPreparing", preparing),
                requeue_after: Some(wait_for_preparation(obs, requested_at, settings)),
            }
        }
        Some(MasterStatus::Errored) => {
            status.phase = Some(Phase::Failed);
            status.pending = None;
            status.master = Some(MasterState {
                status: MasterStage::Errored,
                url_secret_ref: secret_ref,
                refreshes: prev.refreshes,
                ..Default::default()
            });
            Decision {
                call: None,
                status,
                summary: Summary::stalled(
                    "MasterErrored",
                    format!(
                        "Mux could not prepare the master of asset {}; set spec.access to none and back to temporary to try again",
                        asset.id
                    ),
                ),
                requeue_after: Some(settings.stalled_recheck),
            }
        }
        Some(MasterStatus::Ready) => ready::ready(obs, settings, status, prev, pending),
    }
}

/// Whether a call's intent is recorded before it is made. Every call's is, but the second
/// half of a cycle whose first half this reconcile recorded: that intent already says a
/// cycle is in flight, and since when (the fresh URL's window is then counted from the first
/// half, never later than Mux counts it). One status write less per refresh.
pub fn records_intent(operation: Operation, access: MasterAccess, cycle_recorded: bool) -> bool {
    !(operation == Operation::Cycle && access == MasterAccess::Temporary && cycle_recorded)
}

/// The intent to record before a call.
pub fn pending(op: Operation, now: Timestamp) -> PendingRequest {
    PendingRequest {
        operation: op,
        at: time(now),
    }
}

#[cfg(test)]
mod tests;
