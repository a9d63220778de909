//! A ready master: record a new URL, or keep the current one fresh.

use std::time::Duration;

use mux::types::{MasterAccess, MasterUrl};

use super::conditions::Summary;
use super::timing::{add, refresh_at, refresh_before, time, until, with_margin};
use super::{Decision, Observation, Settings};
use crate::resource::{
    MasterExportSpec, MasterExportStatus, MasterStage, MasterState, Operation, Phase,
};
use jiff::Timestamp;

/// True when two URLs are the same grant (ignoring the `download=` a client may add).
pub fn same_grant(recorded: &str, fresh: &MasterUrl) -> bool {
    strip_download(recorded) == strip_download(fresh.expose())
}

/// A digest of the grant a URL is (the same for two URLs exactly when [`same_grant`] says so,
/// but for a 64-bit collision).
pub(super) fn grant_digest(url: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    strip_download(url).hash(&mut hasher);
    hasher.finish()
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
pub fn url_to_publish(fresh: &MasterUrl, spec: &MasterExportSpec) -> String {
    match spec.url_secret.as_ref().and_then(|s| s.filename.as_deref()) {
        Some(filename) => fresh.with_download(filename).expose().to_string(),
        None => fresh.expose().to_string(),
    }
}

/// The master is ready: record a new URL, or keep the current one fresh.
pub(super) fn ready(
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
        master.status = MasterStage::Ready;
        master.url = Some(url_to_publish(fresh, obs.spec));
        let expired = master.expires_at.as_ref().is_some_and(|e| e.0 <= obs.now);
        status.master = Some(master.clone());
        if pending.is_some_and(|(op, _)| op == Operation::Renew) {
            // Mux gave the same URL on renewal: the only way to a new window is none → temporary.
            status.master = Some(MasterState {
                url: None,
                status: MasterStage::None,
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
        // A window we know (we asked for this URL, or adopted it with its window): a second
        // `temporary` is assumed to keep that window (Mux does not document it), so renewing
        // would only add a PUT before the cycle that must follow; only none → temporary
        // renews. A URL recorded long after its window began (one adopted late) likewise.
        let window_known = master.requested_at.is_some();
        let window_old_when_seen = match (&master.requested_at, &master.ready_at) {
            (Some(requested), Some(seen)) => until(requested.0, seen.0) > settings.url_lifetime / 2,
            _ => false,
        };
        if (due || expired) && (window_known || window_old_when_seen) {
            status.master = Some(MasterState {
                url: None,
                status: MasterStage::None,
                ..master
            });
            status.phase = Some(Phase::Preparing);
            return Decision {
                call: Some((Operation::Cycle, MasterAccess::None)),
                status,
                summary: Summary::progressing(
                    "RenewingAccess",
                    "the URL's window may not have been renewed; cycling master access for a fresh one",
                ),
                requeue_after: None,
            };
        }
        if due || expired {
            // An unknown window: one renewal, whose answer's window is then known.
            status.phase = Some(Phase::Ready);
            return Decision {
                call: Some((Operation::Renew, MasterAccess::Temporary)),
                status,
                summary: Summary::progressing(
                    "RenewingAccess",
                    "the URL's window is unknown; renewing it once",
                ),
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
        Some((Operation::Request | Operation::Cycle, at)) => Some(at),
        // Whether a second `temporary` gives a new window is undocumented: a new URL from a
        // renewal is assumed to keep the earlier window, so it is never published past its
        // real expiry (the next refresh then cycles).
        Some((Operation::Renew, at)) => {
            Some(prev.requested_at.as_ref().map_or(at, |t| t.0.min(at)))
        }
        _ => prev
            .requested_at
            .as_ref()
            .map(|t| t.0)
            .filter(|_| prev.url.is_none())
            // Another resource on the asset asked for this URL: its window is known.
            .or(obs
                .known_grant
                .filter(|g| g.is_of(fresh))
                .map(|g| g.requested_at)),
    };
    // A window already over when the URL is first seen (the operator was down past it, and
    // Mux may count from `ready`): the URL's real expiry is unknown, not past; renew once.
    let requested_at =
        requested_at.filter(|at| with_margin(obs.now) < add(*at, settings.url_lifetime));
    let (expires_at, refresh) = match requested_at {
        Some(at) => (
            Some(add(at, settings.url_lifetime)),
            refresh_at(at, settings, refresh_before, obs.spread_seed),
        ),
        // Unknown window: refresh at once to get one we know.
        None => (None, obs.now),
    };
    let master = MasterState {
        status: MasterStage::Ready,
        url: Some(url_to_publish(fresh, obs.spec)),
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
