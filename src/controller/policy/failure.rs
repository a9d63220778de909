//! What the status says when a reconcile fails or comes too late: the error branch's status,
//! summary and next attempt, and the withdrawal of a URL past its expiry.

use std::time::Duration;

use jiff::Timestamp;

use super::conditions::Summary;
use super::timing::until;
use crate::resource::{MasterExportStatus, MasterStage, Phase};

/// A failed reconcile, as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure<'a> {
    /// The condition reason ([`crate::controller::error::Error::reason`]).
    pub reason: &'a str,
    /// A person must act.
    pub stalled: bool,
    pub message: String,
}

/// The status and summary after `failure`, from the status last recorded: the generation
/// is observed, the phase is `Failed` when a person must act, and a URL past its expiry (at
/// `now`, margin included) is withdrawn.
pub fn failed_status(
    recorded: &MasterExportStatus,
    generation: Option<i64>,
    failure: &Failure<'_>,
    now: Timestamp,
) -> (MasterExportStatus, Summary) {
    let mut status = recorded.clone();
    status.observed_generation = generation;
    if failure.stalled {
        status.phase = Some(Phase::Failed);
    }
    drop_expired_url(&mut status, now);
    let summary = if failure.stalled {
        Summary::stalled(failure.reason, failure.message.clone())
    } else {
        Summary::progressing(failure.reason, format!("{}; retrying", failure.message))
    };
    (status, summary)
}

/// When to try again after a failure: the backoff, but in time to withdraw a published URL
/// that could not be refreshed, and never sooner than Mux asked (`retry_after`).
pub fn retry_after_failure(
    backoff: Duration,
    published_expiry: Option<Timestamp>,
    retry_after: Option<Duration>,
    now: Timestamp,
) -> Duration {
    let mut wait = backoff;
    if let Some(expiry) = published_expiry {
        wait = wait.min(until(now, expiry).max(Duration::from_millis(100)));
    }
    if let Some(after) = retry_after {
        wait = wait.max(after);
    }
    wait
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
        master.status = MasterStage::Expired;
        status.phase = Some(Phase::Preparing);
    }
    expired
}

/// What the status says once an expired URL is withdrawn.
pub fn url_expired() -> Summary {
    Summary::progressing(
        "UrlExpired",
        "the URL expired before it could be refreshed; fetching a fresh one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::MasterState;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn published(expires: i64) -> MasterExportStatus {
        MasterExportStatus {
            observed_generation: Some(1),
            phase: Some(Phase::Ready),
            master: Some(MasterState {
                status: MasterStage::Ready,
                url: Some("https://m/x".into()),
                expires_at: Some(Time(t(expires))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_error_branch_status_by_failure_and_clock() {
        // (recorded URL expires at, now, stalled) → (phase, URL kept, summary reason flags)
        let cases = [
            (100, 10, false, Some(Phase::Ready), true),
            (100, 10, true, Some(Phase::Failed), true),
            (100, 200, false, Some(Phase::Preparing), false),
            // Withdrawing the expired URL comes last, and says Preparing (as it always has).
            (100, 200, true, Some(Phase::Preparing), false),
        ];
        for (expires, now, stalled, phase, kept) in cases {
            let failure = Failure {
                reason: "MuxUnavailable",
                stalled,
                message: "Mux answered 503".into(),
            };
            let (status, summary) = failed_status(&published(expires), Some(2), &failure, t(now));
            assert_eq!(status.observed_generation, Some(2));
            assert_eq!(status.phase, phase, "{expires} {now} {stalled}");
            assert_eq!(
                status.master.unwrap().url.is_some(),
                kept,
                "{expires} {now}"
            );
            assert_eq!(summary.reason, "MuxUnavailable");
            assert_eq!((summary.stalled, summary.reconciling), (stalled, !stalled));
            let tail = if stalled { "" } else { "; retrying" };
            assert_eq!(summary.message, format!("Mux answered 503{tail}"));
        }
    }

    #[test]
    fn the_retry_after_a_failure_by_backoff_expiry_and_mux_hint() {
        let s = Duration::from_secs;
        let cases = [
            (s(5), None, None, s(5)),
            (s(60), Some(t(20)), None, s(20)),
            (s(60), Some(t(0)), None, Duration::from_millis(100)),
            (s(5), None, Some(s(30)), s(30)),
            (s(60), Some(t(20)), Some(s(30)), s(30)),
        ];
        for (backoff, expiry, hint, want) in cases {
            assert_eq!(
                retry_after_failure(backoff, expiry, hint, t(0)),
                want,
                "{backoff:?} {expiry:?} {hint:?}"
            );
        }
    }

    #[test]
    fn an_expired_url_is_withdrawn() {
        let mut status = published(24 * 3600);
        assert!(!drop_expired_url(&mut status, t(3600)));
        assert!(drop_expired_url(&mut status, t(24 * 3600)));
        let master = status.master.unwrap();
        assert_eq!((master.url, master.status), (None, MasterStage::Expired));
        assert_eq!(status.phase, Some(Phase::Preparing));
    }
}
