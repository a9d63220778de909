//! The controller's decisions, as pure functions of what it observed and the clock.
//!
//! No I/O here: the reconciler reads the resource and the asset, asks [`decide`] what to
//! do, does it, and asks again with what Mux answered. Everything a MasterExport can go
//! through is therefore testable without a cluster or a network (cert-manager's renewal
//! policy is the model).
//!
//! Timing rules:
//! - a URL's 24 hours are assumed to run from the request (the earlier of the instants Mux
//!   might count from), so `expiresAt = requestedAt + urlLifetime`;
//! - `refreshAt = expiresAt − refreshBefore − spread`, where `spread` is a stable share of
//!   `refreshBefore / 4` drawn from the resource's UID: resources created together do not
//!   all refresh in the same second, and none refreshes later than asked;
//! - while a master is preparing, polls start at `poll_min` and slow down as it takes
//!   longer, up to `poll_max` (webhooks, when configured, wake the controller sooner).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::Summary;
use crate::resource::{
    Access, AssetState, MasterExportSpec, MasterExportStatus, MasterState, Operation,
    PendingRequest, Phase,
};
use mux::types::{
    Asset, AssetStatus, LiveStream, LiveStreamStatus, MasterAccess, MasterStatus, MasterUrl,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url_lifetime: Duration::from_secs(24 * 3600),
            poll_min: Duration::from_secs(1),
            poll_max: Duration::from_secs(30),
            stalled_recheck: Duration::from_secs(600),
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
}

/// How long to wait before looking again at something Mux is working on.
fn wait_for_mux(obs: &Observation<'_>, since: Option<Timestamp>, settings: &Settings) -> Duration {
    let fast = poll_interval(since, obs.now, settings);
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

/// A `Time` for the status.
pub fn time(t: Timestamp) -> Time {
    Time(t)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

/// `later − earlier`, zero when `later` is not later.
pub fn until(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The `refreshBefore` of the spec; the CRD guarantees it parses, but be safe.
pub fn refresh_before(spec: &MasterExportSpec) -> Duration {
    mux::duration::parse(&spec.refresh_before).unwrap_or(Duration::from_secs(7200))
}

/// When to refresh a URL requested at `requested_at`.
pub fn refresh_at(
    requested_at: Timestamp,
    settings: &Settings,
    refresh_before: Duration,
    spread_seed: u64,
) -> Timestamp {
    let expires_at = add(requested_at, settings.url_lifetime);
    let window = refresh_before / 4;
    let spread = if window.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_millis(spread_seed % (window.as_millis() as u64).max(1))
    };
    let at = sub(expires_at, refresh_before + spread);
    if at <= requested_at {
        // refreshBefore is longer than the URL lives: refresh halfway instead.
        add(requested_at, settings.url_lifetime / 2)
    } else {
        at
    }
}

/// How long to wait before polling a master that has been preparing since `since`.
pub fn poll_interval(since: Option<Timestamp>, now: Timestamp, settings: &Settings) -> Duration {
    let waited = since.map(|s| until(s, now)).unwrap_or(Duration::ZERO);
    // max then min, not clamp: a misconfiguration must not panic a reconcile.
    (waited / 4).max(settings.poll_min).min(settings.poll_max)
}

/// True when two URLs are the same grant (ignoring the `download=` a client may add).
pub fn same_grant(recorded: &str, fresh: &MasterUrl) -> bool {
    strip_download(recorded) == strip_download(fresh.expose())
}

fn strip_download(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let kept: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| k != "download")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(kept);
            parsed.into()
        }
        Err(_) => url.to_string(),
    }
}

/// The URL to publish: Mux's, with `download=<filename>` when a filename is set.
pub fn published_url(fresh: &MasterUrl, spec: &MasterExportSpec) -> String {
    match spec.url_secret.as_ref().and_then(|s| s.filename.as_deref()) {
        Some(filename) => fresh.with_download(filename).expose().to_string(),
        None => fresh.expose().to_string(),
    }
}

/// Whether this reconcile can skip Mux entirely: the URL is fresh, nothing is in flight and
/// the spec has not changed. This keeps a restart of the operator from costing one API call
/// per resource.
pub fn can_skip_mux(
    spec: &MasterExportSpec,
    status: &MasterExportStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let settled = status.observed_generation.is_some()
        && status.observed_generation == generation
        && status.pending.is_none();
    let copy_settled = spec.destination.is_none() || copy_done(spec, status);
    let fresh = effective_access(spec, status) == Access::Temporary
        && matches!(status.phase, Some(Phase::Ready | Phase::Copied))
        && status
            .master
            .as_ref()
            .and_then(|m| m.refresh_at.as_ref())
            .is_some_and(|r| r.0 > now);
    let revoked = effective_access(spec, status) == Access::None
        && matches!(status.phase, Some(Phase::Revoked | Phase::Copied))
        && status.master.as_ref().is_none_or(|m| m.url.is_none());
    settled && copy_settled && !spec.suspend && (fresh || revoked)
}

/// A verified copy of the master is at the spec's current destination.
pub fn copy_done(spec: &MasterExportSpec, status: &MasterExportStatus) -> bool {
    match (&spec.destination, &status.copy) {
        (Some(destination), Some(copy)) => {
            copy.destination == destination.url && copy.phase == "Succeeded"
        }
        _ => false,
    }
}

/// The access wanted now: `none` once a verified copy exists and `afterCopy.revokeAccess`
/// asks for it (and never before), else the spec's.
pub fn effective_access(spec: &MasterExportSpec, status: &MasterExportStatus) -> Access {
    let revoke_after_copy = spec.after_copy.as_ref().is_some_and(|a| a.revoke_access);
    if revoke_after_copy && copy_done(spec, status) {
        Access::None
    } else {
        spec.access
    }
}

/// The asset part of the status.
pub fn asset_state(asset: &Asset) -> AssetState {
    AssetState {
        id: asset.id.clone(),
        status: Some(
            match asset.status {
                AssetStatus::Preparing => "preparing",
                AssetStatus::Ready => "ready",
                AssetStatus::Errored => "errored",
                AssetStatus::Unknown => "unknown",
            }
            .to_string(),
        ),
        max_resolution_tier: asset.max_resolution_tier.clone(),
    }
}

/// What a live-stream source means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSource {
    /// Export this recording.
    Asset(String),
    /// Nothing to export yet; the message says why.
    Waiting(String),
}

/// Picks the recording to export: the one already chosen (sticky), else the newest
/// recording once the stream is no longer live.
pub fn resolve_live_stream(stream: &LiveStream, chosen: Option<&str>) -> LiveSource {
    if let Some(chosen) = chosen {
        return LiveSource::Asset(chosen.to_string());
    }
    match stream.status {
        LiveStreamStatus::Active => LiveSource::Waiting(format!(
            "live stream {} is live; its recording is exported once the stream ends",
            stream.id
        )),
        _ => match stream.recent_asset_ids.last() {
            Some(latest) => LiveSource::Asset(latest.clone()),
            None => LiveSource::Waiting(format!("live stream {} has no recording yet", stream.id)),
        },
    }
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
            status: "none".into(),
            url_secret_ref: secret_ref,
            refreshes: prev.refreshes,
            ..Default::default()
        });
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
            status: "none".into(),
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
                status: "none".into(),
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
                status: "preparing".into(),
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
                requeue_after: Some(wait_for_mux(obs, requested_at, settings)),
            }
        }
        Some(MasterStatus::Errored) => {
            status.phase = Some(Phase::Failed);
            status.pending = None;
            status.master = Some(MasterState {
                status: "errored".into(),
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
        Some(MasterStatus::Ready) => ready(obs, settings, status, prev, pending),
    }
}

/// The master is ready: record a new URL, or keep the current one fresh.
fn ready(
    obs: &Observation<'_>,
    settings: &Settings,
    mut status: MasterExportStatus,
    prev: MasterState,
    pending: Option<(Operation, Timestamp)>,
) -> Decision {
    let Some(fresh) = obs.asset.master_url() else {
        // Ready without a URL: Mux's answer is incomplete; look again shortly.
        status.phase = Some(Phase::Preparing);
        return Decision {
            call: None,
            status,
            summary: Summary::progressing(
                "MasterPreparing",
                "Mux reports the master ready but gave no URL yet",
            ),
            requeue_after: Some(settings.poll_min),
        };
    };
    let refresh_before = refresh_before(obs.spec);
    let same = prev
        .url
        .as_deref()
        .is_some_and(|recorded| same_grant(recorded, fresh));
    if same {
        let mut master = prev.clone();
        master.status = "ready".into();
        master.url = Some(published_url(fresh, obs.spec));
        let expired = master.expires_at.as_ref().is_some_and(|e| e.0 <= obs.now);
        status.master = Some(master.clone());
        if pending.is_some_and(|(op, _)| op == Operation::Renew) {
            // Mux gave the same URL on renewal: the only way to a new window is none → temporary.
            status.master = Some(MasterState {
                url: None,
                status: "none".into(),
                ..master
            });
            status.phase = Some(Phase::Preparing);
            return Decision {
                call: Some((Operation::Cycle, MasterAccess::None)),
                status,
                summary: Summary::progressing(
                    "RenewingAccess",
                    "Mux kept the same URL; cycling master access to get a fresh one",
                ),
                requeue_after: None,
            };
        }
        let due = master.refresh_at.as_ref().is_none_or(|r| r.0 <= obs.now);
        if due || expired {
            status.phase = Some(Phase::Ready);
            return Decision {
                call: Some((Operation::Renew, MasterAccess::Temporary)),
                status,
                summary: Summary::progressing("RenewingAccess", "the URL is due for a refresh"),
                requeue_after: None,
            };
        }
        status.phase = Some(Phase::Ready);
        status.pending = None;
        let refresh = master.refresh_at.as_ref().map(|r| r.0).unwrap_or(obs.now);
        return Decision {
            call: None,
            status,
            summary: ready_summary(&master),
            requeue_after: Some(until(obs.now, refresh).max(Duration::from_millis(100))),
        };
    }

    // A URL we have not recorded: the answer to our request, renewal or cycle, or (with no
    // request of ours on record) one someone else asked for, whose window we cannot know.
    let requested_at = match pending {
        Some((Operation::Request | Operation::Renew | Operation::Cycle, at)) => Some(at),
        _ => prev
            .requested_at
            .as_ref()
            .map(|t| t.0)
            .filter(|_| prev.url.is_none()),
    };
    let (expires_at, refresh) = match requested_at {
        Some(at) => (
            Some(add(at, settings.url_lifetime)),
            refresh_at(at, settings, refresh_before, obs.spread_seed),
        ),
        // Unknown window: refresh at once to get one we know.
        None => (None, obs.now),
    };
    let master = MasterState {
        status: "ready".into(),
        url: Some(published_url(fresh, obs.spec)),
        url_secret_ref: prev.url_secret_ref.clone(),
        requested_at: requested_at.map(time),
        ready_at: Some(time(obs.now)),
        expires_at: expires_at.map(time),
        refresh_at: Some(time(refresh)),
        refreshes: prev.refreshes
            + u32::from(
                prev.url.is_some() || pending.is_some_and(|(op, _)| op != Operation::Request),
            ),
    };
    status.phase = Some(Phase::Ready);
    status.pending = None;
    status.master = Some(master.clone());
    Decision {
        call: None,
        status,
        summary: ready_summary(&master),
        requeue_after: Some(until(obs.now, refresh).max(Duration::from_millis(100))),
    }
}

fn ready_summary(master: &MasterState) -> Summary {
    let expires = master
        .expires_at
        .as_ref()
        .map(|e| format!("; it expires at {}", e.0))
        .unwrap_or_default();
    Summary::ready(
        "UrlReady",
        format!(
            "the master URL is in the status and in Secret {}{expires}",
            master
                .url_secret_ref
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or("-")
        ),
    )
}

/// A recorded URL past its expiry must not be published: what the status becomes when it
/// could not be refreshed in time (Mux down, operator stopped).
pub fn drop_expired_url(status: &mut MasterExportStatus, now: Timestamp) -> bool {
    let Some(master) = status.master.as_mut() else {
        return false;
    };
    let expired = master.url.is_some() && master.expires_at.as_ref().is_some_and(|e| e.0 <= now);
    if expired {
        master.url = None;
        master.status = "expired".into();
        status.phase = Some(Phase::Preparing);
    }
    expired
}

/// The intent to record before a call.
pub fn pending(op: Operation, now: Timestamp) -> PendingRequest {
    PendingRequest {
        operation: op,
        at: time(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{LocalObjectRef, Source, UrlSecret};
    use mux::types::{AssetErrors, Master};

    const URL_A: &str = "https://mezzanine.mux.com/a1/mezzanine.mp4?skid=A&signature=sa";
    const URL_B: &str = "https://mezzanine.mux.com/a1/mezzanine.mp4?skid=B&signature=sb";

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn spec() -> MasterExportSpec {
        MasterExportSpec {
            source: Source {
                asset_id: Some("a1".into()),
                live_stream_id: None,
            },
            access: Access::Temporary,
            credentials_secret_ref: LocalObjectRef { name: "mux".into() },
            refresh_before: "2h".into(),
            url_secret: None,
            deletion_policy: Default::default(),
            suspend: false,
            destination: None,
            after_copy: None,
        }
    }

    fn asset(master: Option<(MasterStatus, Option<&str>)>) -> Asset {
        Asset {
            id: "a1".into(),
            created_at: Some(1),
            status: AssetStatus::Ready,
            master_access: if master.is_some() {
                MasterAccess::Temporary
            } else {
                MasterAccess::None
            },
            master: master.map(|(status, url)| Master {
                status,
                url: url.map(MasterUrl::new),
            }),
            max_resolution_tier: Some("2160p".into()),
            resolution_tier: None,
            duration: None,
            passthrough: None,
            live_stream_id: None,
            is_live: None,
            ingest_type: None,
            errors: None,
        }
    }

    fn decide_at(
        now: Timestamp,
        spec: &MasterExportSpec,
        status: &MasterExportStatus,
        asset: &Asset,
    ) -> Decision {
        let obs = Observation {
            now,
            generation: Some(1),
            spread_seed: 0,
            spec,
            status,
            asset,
            slow_poll: None,
        };
        decide(&obs, &Settings::default())
    }

    /// The status once URL_A, requested at t(0), was recorded at t(5).
    fn recorded_ready() -> MasterExportStatus {
        decide_at(
            t(5),
            &spec(),
            &with_pending(Operation::Request, t(0)),
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        )
        .status
    }

    fn with_pending(op: Operation, at: Timestamp) -> MasterExportStatus {
        MasterExportStatus {
            pending: Some(pending(op, at)),
            ..Default::default()
        }
    }

    #[test]
    fn no_master_means_request_access() {
        let d = decide_at(t(0), &spec(), &MasterExportStatus::default(), &asset(None));
        assert_eq!(d.call, Some((Operation::Request, MasterAccess::Temporary)));
        assert_eq!(d.status.phase, Some(Phase::Preparing));
        assert_eq!(d.status.observed_generation, Some(1));
    }

    #[test]
    fn preparing_polls_sooner_at_first_then_slower() {
        let status = with_pending(Operation::Request, t(0));
        let early = decide_at(
            t(1),
            &spec(),
            &status,
            &asset(Some((MasterStatus::Preparing, None))),
        );
        assert_eq!(early.call, None);
        assert_eq!(early.status.phase, Some(Phase::Preparing));
        assert_eq!(early.requeue_after, Some(Duration::from_secs(1)));
        assert_eq!(
            early.status.master.unwrap().requested_at,
            Some(time(t(0))),
            "the request time is kept"
        );
        let late = decide_at(
            t(600),
            &spec(),
            &status,
            &asset(Some((MasterStatus::Preparing, None))),
        );
        assert_eq!(late.requeue_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn with_webhooks_flowing_polls_slow_down() {
        let status = with_pending(Operation::Request, t(0));
        let spec = spec();
        let asset = asset(Some((MasterStatus::Preparing, None)));
        let obs = Observation {
            now: t(1),
            generation: Some(1),
            spread_seed: 0,
            spec: &spec,
            status: &status,
            asset: &asset,
            slow_poll: Some(Duration::from_secs(120)),
        };
        let d = decide(&obs, &Settings::default());
        assert_eq!(d.requeue_after, Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_ready_master_is_recorded_with_its_window_counted_from_the_request() {
        let status = with_pending(Operation::Request, t(0));
        let d = decide_at(
            t(5),
            &spec(),
            &status,
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        let master = d.status.master.clone().unwrap();
        assert_eq!(d.status.phase, Some(Phase::Ready));
        assert_eq!(d.status.pending, None, "the request is settled");
        assert_eq!(master.url.as_deref(), Some(URL_A));
        assert_eq!(master.expires_at, Some(time(t(24 * 3600))));
        assert_eq!(master.refresh_at, Some(time(t(22 * 3600))));
        assert_eq!(master.refreshes, 0);
        assert!(d.summary.ready);
        // Requeue for exactly the refresh time, not a fixed poll.
        assert_eq!(d.requeue_after, Some(Duration::from_secs(22 * 3600 - 5)));
    }

    #[test]
    fn refresh_is_spread_but_never_later_than_asked() {
        let settings = Settings::default();
        let before = Duration::from_secs(7200);
        let latest = sub(add(t(0), settings.url_lifetime), before);
        let times: std::collections::HashSet<_> = (0..50u64)
            .map(|seed| {
                refresh_at(
                    t(0),
                    &settings,
                    before,
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            })
            .collect();
        assert!(times.len() > 40, "spread over many instants");
        assert!(
            times
                .iter()
                .all(|r| *r <= latest && *r >= sub(latest, before / 4))
        );
    }

    #[test]
    fn refresh_before_longer_than_the_lifetime_refreshes_halfway() {
        let settings = Settings {
            url_lifetime: Duration::from_secs(10),
            ..Settings::default()
        };
        assert_eq!(
            refresh_at(t(0), &settings, Duration::from_secs(3600), 0),
            t(5)
        );
    }

    #[test]
    fn at_refresh_time_access_is_renewed() {
        let recorded = recorded_ready();
        let quiet = decide_at(
            t(3600),
            &spec(),
            &recorded,
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        assert_eq!(quiet.call, None);
        let due = decide_at(
            t(22 * 3600),
            &spec(),
            &recorded,
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        assert_eq!(due.call, Some((Operation::Renew, MasterAccess::Temporary)));
        assert_eq!(
            due.status.master.unwrap().url.as_deref(),
            Some(URL_A),
            "the URL stays published meanwhile"
        );
    }

    #[test]
    fn a_renewal_with_a_new_url_starts_a_new_window() {
        let recorded = recorded_ready();
        let mut renewing = recorded.clone();
        renewing.pending = Some(pending(Operation::Renew, t(22 * 3600)));
        let d = decide_at(
            t(22 * 3600 + 1),
            &spec(),
            &renewing,
            &asset(Some((MasterStatus::Ready, Some(URL_B)))),
        );
        let master = d.status.master.unwrap();
        assert_eq!(master.url.as_deref(), Some(URL_B));
        assert_eq!(master.requested_at, Some(time(t(22 * 3600))));
        assert_eq!(master.refreshes, 1);
    }

    #[test]
    fn the_same_url_after_renewal_cycles_access() {
        let recorded = recorded_ready();
        let mut renewing = recorded.clone();
        renewing.pending = Some(pending(Operation::Renew, t(22 * 3600)));
        let d = decide_at(
            t(22 * 3600 + 1),
            &spec(),
            &renewing,
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        assert_eq!(d.call, Some((Operation::Cycle, MasterAccess::None)));
        assert_eq!(
            d.status.master.as_ref().unwrap().url,
            None,
            "a URL about to be revoked is not published"
        );
        // After `none`, the master is gone: access is requested again...
        let mut cycling = d.status.clone();
        cycling.pending = Some(pending(Operation::Cycle, t(22 * 3600 + 1)));
        let next = decide_at(t(22 * 3600 + 2), &spec(), &cycling, &asset(None));
        assert_eq!(next.call, Some((Operation::Cycle, MasterAccess::Temporary)));
        // ...and the new URL counts as a refresh.
        let mut requested = next.status.clone();
        requested.pending = Some(pending(Operation::Cycle, t(22 * 3600 + 2)));
        let done = decide_at(
            t(22 * 3600 + 9),
            &spec(),
            &requested,
            &asset(Some((MasterStatus::Ready, Some(URL_B)))),
        );
        let master = done.status.master.unwrap();
        assert_eq!(master.url.as_deref(), Some(URL_B));
        assert_eq!(master.refreshes, 1, "a cycle counts as a refresh");
        assert_eq!(master.requested_at, Some(time(t(22 * 3600 + 2))));
    }

    #[test]
    fn an_unknown_url_is_refreshed_at_once() {
        let d = decide_at(
            t(0),
            &spec(),
            &MasterExportStatus::default(),
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        let master = d.status.master.unwrap();
        assert_eq!(master.expires_at, None);
        assert_eq!(master.refresh_at, Some(time(t(0))));
    }

    #[test]
    fn a_restart_after_the_put_landed_makes_no_second_request() {
        // The intent was recorded, the PUT went through, the operator died before the status.
        let status = with_pending(Operation::Request, t(0));
        let d = decide_at(
            t(3),
            &spec(),
            &status,
            &asset(Some((MasterStatus::Preparing, None))),
        );
        assert_eq!(d.call, None);
    }

    #[test]
    fn the_filename_goes_into_the_url_without_changing_the_grant() {
        let mut spec = spec();
        spec.url_secret = Some(UrlSecret {
            name: None,
            filename: Some("keynote.mp4".into()),
        });
        let d = decide_at(
            t(5),
            &spec,
            &with_pending(Operation::Request, t(0)),
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        let url = d.status.master.as_ref().unwrap().url.clone().unwrap();
        assert!(url.ends_with("&download=keynote.mp4"), "{url}");
        let again = decide_at(
            t(6),
            &spec,
            &d.status,
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        assert_eq!(
            again.call, None,
            "same grant despite the download parameter"
        );
    }

    #[test]
    fn access_none_revokes_then_reports_revoked() {
        let mut spec = spec();
        spec.access = Access::None;
        let d = decide_at(
            t(0),
            &spec,
            &MasterExportStatus::default(),
            &asset(Some((MasterStatus::Ready, Some(URL_A)))),
        );
        assert_eq!(d.call, Some((Operation::Revoke, MasterAccess::None)));
        let done = decide_at(t(1), &spec, &d.status, &asset(None));
        assert_eq!((done.call, done.status.phase), (None, Some(Phase::Revoked)));
        assert!(done.summary.ready);
    }

    #[test]
    fn errored_assets_and_masters_stall_with_a_reason() {
        let mut errored = asset(None);
        errored.status = AssetStatus::Errored;
        errored.errors = Some(AssetErrors {
            kind: Some("invalid_input".into()),
            messages: vec!["bad file".into()],
        });
        let d = decide_at(t(0), &spec(), &MasterExportStatus::default(), &errored);
        assert_eq!(
            (d.call, d.status.phase, d.summary.reason.as_str()),
            (None, Some(Phase::Failed), "AssetErrored")
        );
        assert!(d.summary.stalled && d.summary.message.contains("bad file"));

        let d = decide_at(
            t(0),
            &spec(),
            &MasterExportStatus::default(),
            &asset(Some((MasterStatus::Errored, None))),
        );
        assert_eq!(d.summary.reason, "MasterErrored");
        assert!(d.summary.stalled);
    }

    #[test]
    fn a_recording_still_live_waits() {
        let mut live = asset(None);
        live.is_live = Some(true);
        let d = decide_at(t(0), &spec(), &MasterExportStatus::default(), &live);
        assert_eq!((d.call, d.status.phase), (None, Some(Phase::Pending)));
    }

    #[test]
    fn live_streams_resolve_to_their_latest_recording_once_idle() {
        let mut stream = LiveStream {
            id: "ls".into(),
            status: LiveStreamStatus::Active,
            active_asset_id: Some("rec2".into()),
            recent_asset_ids: vec!["rec1".into()],
            new_asset_settings: None,
            reconnect_window: None,
            created_at: None,
        };
        assert!(matches!(
            resolve_live_stream(&stream, None),
            LiveSource::Waiting(_)
        ));
        stream.status = LiveStreamStatus::Idle;
        stream.recent_asset_ids.push("rec2".into());
        assert_eq!(
            resolve_live_stream(&stream, None),
            LiveSource::Asset("rec2".into())
        );
        assert_eq!(
            resolve_live_stream(&stream, Some("rec1")),
            LiveSource::Asset("rec1".into()),
            "sticky"
        );
    }

    #[test]
    fn an_expired_url_is_withdrawn() {
        let mut status = recorded_ready();
        assert!(!drop_expired_url(&mut status, t(3600)));
        assert!(drop_expired_url(&mut status, t(24 * 3600)));
        assert_eq!(status.master.unwrap().url, None);
    }

    #[test]
    fn access_is_revoked_after_copy_only_once_verified() {
        use crate::resource::{AfterCopy, CopyStatus, Destination};
        let mut spec = spec();
        spec.destination = Some(Destination {
            url: "s3://b/k".into(),
            ..Default::default()
        });
        spec.after_copy = Some(AfterCopy {
            revoke_access: true,
        });
        let mut status = MasterExportStatus::default();
        assert_eq!(effective_access(&spec, &status), Access::Temporary);
        status.copy = Some(CopyStatus {
            phase: "Running".into(),
            destination: "s3://b/k".into(),
            ..Default::default()
        });
        assert_eq!(effective_access(&spec, &status), Access::Temporary);
        status.copy.as_mut().unwrap().phase = "Succeeded".into();
        assert_eq!(effective_access(&spec, &status), Access::None);
        spec.destination.as_mut().unwrap().url = "s3://b/other".into();
        assert_eq!(
            effective_access(&spec, &status),
            Access::Temporary,
            "a new destination is not copied yet"
        );
    }

    #[test]
    fn a_fresh_ready_export_skips_mux() {
        let status = recorded_ready();
        assert!(can_skip_mux(&spec(), &status, Some(1), t(100)));
        assert!(
            !can_skip_mux(&spec(), &status, Some(2), t(100)),
            "a new generation is looked at"
        );
        assert!(
            !can_skip_mux(&spec(), &status, Some(1), t(22 * 3600)),
            "a due refresh is not skipped"
        );
    }
}
