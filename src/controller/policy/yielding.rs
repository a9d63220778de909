//! A refresh that waits its turn: starting one withdraws its URL (access is cycled), finishing
//! one publishes the fresh URL. When thousands fall due together, the controller's queue (first
//! come, first served by due time) runs the overdue starts before the `master.ready` wake-ups
//! that finish the refreshes already started, so those publish late, past the old URL's expiry.
//! A start therefore steps aside, briefly, while such wake-ups wait for a worker, for as long as
//! its own URL has more than half of its slack left: earliest deadline first, roughly.

use std::time::Duration;

use jiff::Timestamp;

use super::timing::until;
use crate::resource::{MasterExportSpec, MasterExportStatus, Phase};

/// The shortest and longest a refresh start steps aside before it looks again. Each resource
/// draws its own wait in between from its spread seed: refreshes that stepped aside together
/// then come back spread over 300 ms, not as one burst against Mux's rate limit.
pub const STEP_ASIDE_MIN: Duration = Duration::from_millis(100);
pub const STEP_ASIDE_MAX: Duration = Duration::from_millis(400);

/// This resource's wait, within [`STEP_ASIDE_MIN`, `STEP_ASIDE_MAX`].
fn wait_for(spread_seed: u64) -> Duration {
    let span = (STEP_ASIDE_MAX - STEP_ASIDE_MIN).as_millis() as u64;
    // The seed's high bits: its low ones already spread the refresh time itself.
    STEP_ASIDE_MIN + Duration::from_millis((spread_seed >> 32) % (span + 1))
}

/// How long this reconcile of a due refresh waits before starting it, while `wakeups_waiting`
/// webhook wake-ups wait for a worker. `None`: start now (nothing waits, it is not a due
/// refresh of a settled resource, or its URL is into the second half of its slack).
pub fn step_aside(
    spec: &MasterExportSpec,
    status: &MasterExportStatus,
    generation: Option<i64>,
    now: Timestamp,
    spread_seed: u64,
    wakeups_waiting: usize,
) -> Option<Duration> {
    if wakeups_waiting == 0 || spec.suspend {
        return None;
    }
    let settled = status.observed_generation.is_some()
        && status.observed_generation == generation
        && status.pending.is_none()
        && matches!(status.phase, Some(Phase::Ready | Phase::Copied));
    let master = status.master.as_ref()?;
    master.url.as_ref()?;
    let refresh_at = master.refresh_at.as_ref()?.0;
    let expires_at = master.expires_at.as_ref()?.0;
    let due = refresh_at <= now;
    // The slack is refreshAt → expiresAt; step aside only in its first half.
    let half_slack_left = until(now, expires_at) > until(refresh_at, expires_at) / 2;
    (settled && due && half_slack_left).then(|| wait_for(spread_seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::MasterState;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    const SEED: u64 = 0x1234_5678_9abc_def0;

    fn spec() -> MasterExportSpec {
        crate::controller::policy::tests::spec()
    }

    /// Ready, refresh due at 100 s, expiring at 160 s.
    fn ready() -> MasterExportStatus {
        MasterExportStatus {
            observed_generation: Some(1),
            phase: Some(Phase::Ready),
            master: Some(MasterState {
                url: Some("https://m/u".into()),
                refresh_at: Some(Time(t(100))),
                expires_at: Some(Time(t(160))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_due_refresh_steps_aside_for_waiting_wakeups_only_in_the_first_half_of_its_slack() {
        let (spec, status) = (spec(), ready());
        assert_eq!(
            step_aside(&spec, &status, Some(1), t(100), SEED, 3),
            Some(wait_for(SEED))
        );
        assert_eq!(
            step_aside(&spec, &status, Some(1), t(129), SEED, 1),
            Some(wait_for(SEED))
        );
        // Past half its slack (30 s of 60 left at most): it starts.
        assert_eq!(step_aside(&spec, &status, Some(1), t(131), SEED, 3), None);
        // Nothing waits: it starts.
        assert_eq!(step_aside(&spec, &status, Some(1), t(100), SEED, 0), None);
        // Not due yet: not a refresh start (the usual paths decide).
        assert_eq!(step_aside(&spec, &status, Some(1), t(99), SEED, 3), None);
        // A changed spec, or a call in flight: never held back.
        assert_eq!(step_aside(&spec, &status, Some(2), t(100), SEED, 3), None);
        let mut pending = ready();
        pending.pending = Some(crate::controller::policy::pending(
            crate::resource::Operation::Cycle,
            t(100),
        ));
        assert_eq!(step_aside(&spec, &pending, Some(1), t(100), SEED, 3), None);
        // No URL published: nothing to protect, nothing to wait for.
        let mut gone = ready();
        gone.master.as_mut().unwrap().url = None;
        assert_eq!(step_aside(&spec, &gone, Some(1), t(100), SEED, 3), None);
    }

    #[test]
    fn resources_step_aside_for_waits_spread_between_the_bounds() {
        let waits: std::collections::BTreeSet<Duration> = (0..1000u64)
            .map(|i| wait_for(crate::controller::policy::spread_seed(&format!("uid-{i}"))))
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| (STEP_ASIDE_MIN..=STEP_ASIDE_MAX).contains(w))
        );
        // Spread, not one instant: a thousand resources draw well over a hundred waits.
        assert!(waits.len() > 100, "{} distinct waits", waits.len());
        assert_eq!(wait_for(0), STEP_ASIDE_MIN);
        assert_eq!(wait_for(300 << 32), STEP_ASIDE_MAX);
    }
}
