//! The preparation estimator and the first look, without I/O.

use super::*;
use crate::controller::policy::preparing_poll;
use crate::controller::policy::timing::time;
use crate::resource::{MasterState, Operation, PendingRequest};
use mux::types::{Master, MasterAccess, MasterUrl};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

const S: Settings = Settings {
    url_lifetime: Duration::from_secs(24 * 3600),
    poll_min: Duration::from_secs(1),
    poll_max: Duration::from_secs(30),
    stalled_recheck: Duration::from_secs(600),
    allow_asset_deletion: false,
};

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A master requested at `start`, seen preparing at each of `looks`, then ready at `ready`.
fn timed(p: &mut Preparations, asset: &str, start: i64, looks: &[i64], ready: i64) {
    p.observe(asset, Seen::Requested, t(start), &S);
    for at in looks {
        p.observe(asset, Seen::Preparing, t(*at), &S);
    }
    p.observe(asset, Seen::Ready { at_once: false }, t(ready), &S);
}

#[test]
fn what_a_call_shows_of_the_master() {
    let mut asset = Asset {
        id: "a1".into(),
        created_at: None,
        status: mux::types::AssetStatus::Ready,
        master_access: MasterAccess::Temporary,
        master: Some(Master {
            status: MasterStatus::Preparing,
            url: None,
        }),
        max_resolution_tier: None,
        resolution_tier: None,
        duration: None,
        passthrough: None,
        live_stream_id: None,
        is_live: None,
        ingest_type: None,
        errors: None,
    };
    assert_eq!(seen(&asset, true, false), Seen::Requested);
    assert_eq!(seen(&asset, false, false), Seen::Preparing);
    asset.master = Some(Master {
        status: MasterStatus::Ready,
        url: Some(MasterUrl::new("https://m/a1?skid=k")),
    });
    assert_eq!(seen(&asset, false, true), Seen::Ready { at_once: true });
    assert_eq!(seen(&asset, true, false), Seen::Ready { at_once: false });
    asset.master.as_mut().unwrap().url = None;
    assert_eq!(seen(&asset, false, false), Seen::Other, "ready without URL");
    asset.master = None;
    assert_eq!(seen(&asset, true, false), Seen::Other);
}

#[test]
fn a_preparation_bracketed_by_polls_is_learnt_and_sets_the_next_first_look() {
    let mut p = Preparations::default();
    // Polls at 1 s and 2 s saw it preparing, the one at 3.05 s ready.
    timed(&mut p, "a1", 0, &[1000, 2000], 3050);
    assert_eq!(p.expected(t(3050)), Some(ms(3050)));
    p.observe("a2", Seen::Requested, t(10_000), &S);
    assert_eq!(p.first_look("a2", t(10_000), &S), Some(t(13_050)));
    assert_eq!(p.first_look("unknown", t(10_000), &S), None);
}

#[test]
fn a_master_found_ready_at_its_first_look_is_not_a_sample() {
    // It says only that the wait was long enough: learning from it would feed the estimate
    // its own value back.
    let mut p = Preparations::default();
    timed(&mut p, "a1", 0, &[], 3050);
    assert_eq!(p.expected(t(3050)), None);
    // A look early in the preparation does not bracket it either.
    timed(&mut p, "a2", 0, &[500], 3050);
    assert_eq!(p.expected(t(3050)), None);
    // A webhook's ready is seen as it happens: a sample without any poll.
    p.observe("a3", Seen::Requested, t(0), &S);
    p.observe("a3", Seen::Ready { at_once: true }, t(2900), &S);
    assert_eq!(p.expected(t(2900)), Some(ms(2900)));
}

#[test]
fn the_expected_time_is_the_median_of_recent_samples() {
    let mut p = Preparations::default();
    for (i, took) in [3000, 9000, 4000, 3500, 60_000].iter().enumerate() {
        let asset = format!("a{i}");
        p.observe(&asset, Seen::Requested, t(0), &S);
        p.observe(&asset, Seen::Ready { at_once: true }, t(*took), &S);
    }
    assert_eq!(
        p.expected(t(60_000)),
        Some(ms(4000)),
        "an outlier moves nothing"
    );
    // Old samples stop counting: a preparation that got faster is learnt again.
    let later = t(60_000 + SAMPLE_LIFETIME.as_millis() as i64 + 1);
    assert_eq!(p.expected(later), None);
    // At most SAMPLES are kept, the newest.
    for i in 0..(SAMPLES as i64 + 5) {
        let asset = format!("b{i}");
        p.observe(&asset, Seen::Requested, t(100_000 + i), &S);
        p.observe(&asset, Seen::Ready { at_once: true }, t(101_000 + i), &S);
    }
    assert_eq!(p.samples.len(), SAMPLES);
    assert_eq!(p.expected(t(200_000)), Some(ms(1000)));
}

#[test]
fn with_nothing_learnt_the_first_master_leads_and_the_others_wait_for_its_sample() {
    let mut p = Preparations::default();
    p.observe("old", Seen::Requested, t(0), &S);
    p.observe("young", Seen::Requested, t(500), &S);
    p.observe("younger", Seen::Requested, t(600), &S);
    // The leader keeps the usual schedule; the others hold their first look (poll_max at most).
    assert_eq!(p.first_look("old", t(600), &S), None);
    assert_eq!(p.first_look("young", t(600), &S), Some(t(500) + S.poll_max));
    p.observe("old", Seen::Preparing, t(1000), &S);
    p.observe("old", Seen::Preparing, t(2000), &S);
    assert_eq!(
        p.first_look("young", t(2000), &S),
        Some(t(500) + S.poll_max)
    );
    // The leader is timed: its followers are named (to be woken) and look when it says.
    let mut woken = p.observe("old", Seen::Ready { at_once: false }, t(3050), &S);
    woken.sort();
    assert_eq!(woken, ["young", "younger"]);
    assert_eq!(p.first_look("young", t(3100), &S), Some(t(3550)));
    assert_eq!(p.first_look("younger", t(3100), &S), Some(t(3650)));
    // A follower's end wakes nobody.
    assert!(
        p.observe("young", Seen::Ready { at_once: false }, t(3600), &S)
            .is_empty()
    );
    // A master under poll_min, found ready by the first usual poll, is timed well enough.
    let mut quick = Preparations::default();
    timed(&mut quick, "q", 0, &[], 1100);
    assert_eq!(quick.expected(t(1100)), Some(ms(1100)));
}

#[test]
fn a_leader_that_ends_untimed_hands_the_lead_to_the_oldest_follower() {
    let mut p = Preparations::default();
    p.observe("lead", Seen::Requested, t(0), &S);
    p.observe("b", Seen::Requested, t(200), &S);
    p.observe("c", Seen::Requested, t(300), &S);
    // Errored (or revoked): nothing learnt; the oldest follower leads, the other still waits.
    assert_eq!(p.observe("lead", Seen::Other, t(1000), &S), ["b"]);
    assert_eq!(p.first_look("b", t(1000), &S), None);
    assert_eq!(p.first_look("c", t(1000), &S), Some(t(300) + S.poll_max));
    // A leader forgotten (no resource names its asset any more) hands it on too.
    assert_eq!(p.forget("b", t(1100)), ["c"]);
    assert_eq!(p.first_look("c", t(1100), &S), None);
    assert!(p.forget("c", t(1200)).is_empty());
}

#[test]
fn a_leader_nobody_looks_at_holds_nobody() {
    let mut p = Preparations::default();
    p.observe("stuck", Seen::Requested, t(0), &S);
    p.observe("b", Seen::Requested, t(1000), &S);
    assert_eq!(p.first_look("b", t(1000), &S), Some(t(1000) + S.poll_max));
    // No look at the leader for twice poll_max: its follower keeps the usual schedule...
    let late = t(S.poll_max.as_millis() as i64 * 2 + 1);
    assert_eq!(p.first_look("b", late, &S), None);
    // ...and a master requested now leads, followed by nobody.
    p.observe("fresh", Seen::Requested, late, &S);
    assert_eq!(p.first_look("fresh", late, &S), None);
    // While the leader is looked at, it holds (a master followed by one requested later).
    p.observe("stuck", Seen::Preparing, late, &S);
    p.observe("later", Seen::Requested, late, &S);
    assert_eq!(p.first_look("later", late, &S), Some(late + S.poll_max));
}

#[test]
fn once_something_is_learnt_one_master_in_sixteen_keeps_the_usual_schedule() {
    let mut p = Preparations::default();
    timed(&mut p, "teacher", 0, &[1000, 2000], 3050);
    let mut usual = Vec::new();
    for i in 2..=(2 * EXPLORE_EVERY) {
        let asset = format!("a{i}");
        p.observe(&asset, Seen::Requested, t(10_000), &S);
        if p.first_look(&asset, t(10_000), &S).is_none() {
            usual.push(i);
        }
    }
    assert_eq!(usual, [EXPLORE_EVERY, 2 * EXPLORE_EVERY]);
}

#[test]
fn a_first_look_is_never_later_than_poll_max_into_the_preparation() {
    let mut p = Preparations::default();
    // A slow preparation learnt (ten minutes, bracketed by polls).
    timed(&mut p, "teacher", 0, &[500_000], 600_000);
    p.observe("slow", Seen::Requested, t(600_000), &S);
    p.observe("young", Seen::Requested, t(601_000), &S);
    assert_eq!(
        p.first_look("young", t(601_000), &S),
        Some(t(601_000) + S.poll_max)
    );
    // Watches whose end was never seen are dropped after WATCH_LIFETIME.
    for i in 0..64 {
        p.observe(&format!("n{i}"), Seen::Requested, t(4_300_000), &S);
    }
    assert!(!p.watches.contains_key("slow"));
    let mut p = Preparations::default();
    p.observe("big", Seen::Requested, t(0), &S);
    p.observe("big", Seen::Ready { at_once: true }, t(900_000), &S);
    p.observe("next", Seen::Requested, t(900_000), &S);
    assert_eq!(
        p.first_look("next", t(900_000), &S),
        Some(t(900_000) + S.poll_max)
    );
}

#[test]
fn watches_end_with_the_preparation_and_a_repeated_request_keeps_its_start() {
    let mut p = Preparations::default();
    p.observe("a1", Seen::Requested, t(0), &S);
    p.observe("a1", Seen::Requested, t(5000), &S);
    p.observe("a1", Seen::Preparing, t(7000), &S);
    p.observe("a1", Seen::Ready { at_once: false }, t(8000), &S);
    assert_eq!(p.expected(t(8000)), Some(ms(8000)), "timed from the first");
    p.observe("a2", Seen::Requested, t(0), &S);
    p.observe("a2", Seen::Other, t(1000), &S);
    assert_eq!(p.first_look("a2", t(1000), &S), None, "errored or revoked");
    p.observe("a3", Seen::Requested, t(0), &S);
    p.forget("a3", t(0));
    assert!(p.watches.is_empty());
    // Without a watch (not our request, or forgotten), nothing is learnt.
    p.observe("a4", Seen::Preparing, t(0), &S);
    p.observe("a4", Seen::Ready { at_once: true }, t(1000), &S);
    assert_eq!(p.samples.len(), 1);
}

#[test]
fn preparing_polls_wait_for_the_first_look_within_the_bounds() {
    let settings = Settings::default();
    let cases = [
        // (first look in ms, now in ms, wait in ms)
        (None, 0, 1000),
        (Some(3050), 0, 3050),
        (Some(500), 0, 1000),
        (Some(3050), 3000, 1000),
        (Some(90_000), 0, 30_000),
    ];
    for (first_look, now, want) in cases {
        assert_eq!(
            preparing_poll(Some(t(0)), t(now), first_look.map(t), &settings),
            Duration::from_millis(want),
            "{first_look:?} at {now}"
        );
    }
}

/// The policy tests' MasterExport spec (asset `a1`, temporary, refreshBefore 2h).
fn spec() -> MasterExportSpec {
    crate::controller::policy::tests::spec()
}

fn preparing() -> MasterExportStatus {
    MasterExportStatus {
        observed_generation: Some(1),
        phase: Some(Phase::Preparing),
        master: Some(MasterState {
            status: MasterStage::Preparing,
            requested_at: Some(time(t(0))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_settled_preparation_is_not_looked_at_before_its_first_look() {
    let spec = spec();
    let due = Some(t(3050));
    let wait = |status: &MasterExportStatus, generation, now| {
        wait_before_looking(&spec, status, generation, t(now), due)
    };
    assert_eq!(wait(&preparing(), Some(1), 1000), Some(ms(2050)));
    assert_eq!(wait(&preparing(), Some(1), 3000), None, "due: look now");
    assert_eq!(wait(&preparing(), Some(2), 1000), None, "the spec changed");
    let mut pending = preparing();
    pending.pending = Some(PendingRequest {
        operation: Operation::Request,
        at: time(t(0)),
    });
    assert_eq!(
        wait(&pending, Some(1), 1000),
        Some(ms(2050)),
        "the request stays pending while its master prepares"
    );
    let mut ready = preparing();
    ready.phase = Some(Phase::Ready);
    assert_eq!(wait(&ready, Some(1), 1000), None);
    let mut revoking = spec.clone();
    revoking.access = Access::None;
    assert_eq!(
        wait_before_looking(&revoking, &preparing(), Some(1), t(1000), due),
        None
    );
    assert_eq!(
        wait_before_looking(&spec, &preparing(), Some(1), t(1000), None),
        None,
        "nothing learnt"
    );
}
