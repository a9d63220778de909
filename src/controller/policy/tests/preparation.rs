//! The preparation estimator and the first look, without I/O.

use super::*;
use crate::controller::policy::preparing_poll;
use crate::controller::policy::timing::time;
use crate::resource::{LocalObjectRef, MasterState, Operation, PendingRequest, Source};
use mux::types::{Master, MasterAccess, MasterUrl};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A master requested at `start`, seen preparing at each of `looks`, then ready at `ready`.
fn timed(p: &mut Preparations, asset: &str, start: i64, looks: &[i64], ready: i64) {
    p.observe(asset, Seen::Requested, t(start));
    for at in looks {
        p.observe(asset, Seen::Preparing, t(*at));
    }
    p.observe(asset, Seen::Ready { at_once: false }, t(ready));
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
    let settings = Settings::default();
    let mut p = Preparations::default();
    // Polls at 1 s and 2 s saw it preparing, the one at 3.05 s ready.
    timed(&mut p, "a1", 0, &[1000, 2000], 3050);
    assert_eq!(p.expected(t(3050)), Some(ms(3050)));
    p.observe("a2", Seen::Requested, t(10_000));
    assert_eq!(p.first_look("a2", t(10_000), &settings), Some(t(13_050)));
    assert_eq!(p.first_look("unknown", t(10_000), &settings), None);
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
    p.observe("a3", Seen::Requested, t(0));
    p.observe("a3", Seen::Ready { at_once: true }, t(2900));
    assert_eq!(p.expected(t(2900)), Some(ms(2900)));
}

#[test]
fn the_expected_time_is_the_median_of_recent_samples() {
    let mut p = Preparations::default();
    for (i, took) in [3000, 9000, 4000, 3500, 60_000].iter().enumerate() {
        let asset = format!("a{i}");
        p.observe(&asset, Seen::Requested, t(0));
        p.observe(&asset, Seen::Ready { at_once: true }, t(*took));
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
        p.observe(&asset, Seen::Requested, t(100_000 + i));
        p.observe(&asset, Seen::Ready { at_once: true }, t(101_000 + i));
    }
    assert_eq!(p.samples.len(), SAMPLES);
    assert_eq!(p.expected(t(200_000)), Some(ms(1000)));
}

#[test]
fn with_nothing_learnt_a_master_waits_behind_an_older_one_still_preparing() {
    let settings = Settings::default();
    let mut p = Preparations::default();
    p.observe("old", Seen::Requested, t(0));
    p.observe("young", Seen::Requested, t(500));
    // The oldest has nobody ahead: the usual schedule.
    assert_eq!(p.first_look("old", t(500), &settings), None);
    // Nobody has looked yet: one usual poll.
    assert_eq!(p.first_look("young", t(500), &settings), Some(t(1500)));
    // The oldest seen still preparing at 2 s of age: the younger one waits past that age.
    p.observe("old", Seen::Preparing, t(1000));
    p.observe("old", Seen::Preparing, t(2000));
    assert_eq!(p.first_look("young", t(1500), &settings), Some(t(3500)));
    // Once the oldest is ready, its preparation is what everyone expects.
    p.observe("old", Seen::Ready { at_once: false }, t(3050));
    assert_eq!(p.first_look("young", t(3100), &settings), Some(t(3550)));
}

#[test]
fn a_first_look_is_never_later_than_poll_max_into_the_preparation() {
    let settings = Settings::default();
    let mut p = Preparations::default();
    p.observe("slow", Seen::Requested, t(0));
    p.observe("slow", Seen::Preparing, t(600_000));
    p.observe("young", Seen::Requested, t(1000));
    assert_eq!(
        p.first_look("young", t(1000), &settings),
        Some(t(1000) + settings.poll_max)
    );
    p.observe("big", Seen::Requested, t(0));
    p.observe("big", Seen::Ready { at_once: true }, t(900_000));
    p.observe("next", Seen::Requested, t(900_000));
    assert_eq!(
        p.first_look("next", t(900_000), &settings),
        Some(t(900_000) + settings.poll_max)
    );
}

#[test]
fn watches_end_with_the_preparation_and_a_repeated_request_keeps_its_start() {
    let settings = Settings::default();
    let mut p = Preparations::default();
    p.observe("a1", Seen::Requested, t(0));
    p.observe("a1", Seen::Requested, t(5000));
    p.observe("a1", Seen::Preparing, t(7000));
    p.observe("a1", Seen::Ready { at_once: false }, t(8000));
    assert_eq!(p.expected(t(8000)), Some(ms(8000)), "timed from the first");
    p.observe("a2", Seen::Requested, t(0));
    p.observe("a2", Seen::Other, t(1000));
    assert_eq!(
        p.first_look("a2", t(1000), &settings),
        None,
        "errored or revoked"
    );
    p.observe("a3", Seen::Requested, t(0));
    p.forget("a3");
    assert!(p.watches.is_empty());
    // Without a watch (not our request, or forgotten), nothing is learnt.
    p.observe("a4", Seen::Preparing, t(0));
    p.observe("a4", Seen::Ready { at_once: true }, t(1000));
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
        None,
        "a call may be in flight"
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
