//! A new export's first call (`request_first`), and what is decided over its answer.

use super::*;

fn before<'a>(spec: &'a MasterExportSpec, status: &'a MasterExportStatus) -> BeforeReading<'a> {
    BeforeReading {
        spec,
        status,
        generation: Some(1),
        shared: false,
        snapshot: false,
    }
}

#[test]
fn a_new_export_that_wants_access_puts_before_it_reads() {
    let spec = spec();
    let status = MasterExportStatus::default();
    let d = request_first(&before(&spec, &status)).expect("a first request");
    assert_eq!(d.call, Some((Operation::Request, MasterAccess::Temporary)));
    assert_eq!(d.status.phase, Some(Phase::Preparing));
    assert_eq!(d.status.observed_generation, Some(1));
    assert_eq!(d.status.pending, None, "the reconciler records the intent");
    assert_eq!(d.summary.reason, "RequestingAccess");
    // A resource that failed before it reached its asset (credentials missing) is still new.
    let failed_early = MasterExportStatus {
        phase: Some(Phase::Failed),
        observed_generation: Some(1),
        ..Default::default()
    };
    assert!(request_first(&before(&spec, &failed_early)).is_some());
}

#[test]
fn the_asset_is_read_first_wherever_the_put_could_not_tell_enough() {
    let new = MasterExportStatus::default();
    let mut none = spec();
    none.access = Access::None;
    let mut live = spec();
    live.source = Source {
        asset_id: None,
        live_stream_id: Some("ls1".into()),
    };
    let mut suspended = spec();
    suspended.suspend = true;
    let restarted = with_pending(Operation::Request, t(0));
    let seen = recorded_ready();
    let asset_known = MasterExportStatus {
        asset: Some(asset_state(&asset(None))),
        ..Default::default()
    };
    let spec = spec();
    let cases: [(&str, BeforeReading<'_>); 8] = [
        ("access none", before(&none, &new)),
        ("a live stream source", before(&live, &new)),
        ("suspended", before(&suspended, &new)),
        (
            "a request already recorded (restart)",
            before(&spec, &restarted),
        ),
        ("a master already recorded", before(&spec, &seen)),
        ("the asset already observed", before(&spec, &asset_known)),
        (
            "another resource shares the asset",
            BeforeReading {
                shared: true,
                ..before(&spec, &new)
            },
        ),
        (
            "a webhook snapshot stands for the asset",
            BeforeReading {
                snapshot: true,
                ..before(&spec, &new)
            },
        ),
    ];
    for (why, case) in cases {
        assert!(request_first(&case).is_none(), "{why}: read first");
    }
}

/// The intent recorded for a first request made at `at`.
fn intent(at: Timestamp) -> MasterExportStatus {
    let spec = spec();
    let status = MasterExportStatus::default();
    let mut intent = request_first(&before(&spec, &status)).unwrap().status;
    intent.pending = Some(pending(Operation::Request, at));
    intent
}

#[test]
fn a_preparing_answer_is_our_request_and_its_window_counts_from_the_intent() {
    let answer = asset(Some((MasterStatus::Preparing, None)));
    let status = first_answer(&intent(t(0)), &answer);
    let d = decide_at(t(1), &spec(), &status, &answer);
    assert_eq!(
        d.call, None,
        "no second call: the answer is the observation"
    );
    assert_eq!(d.status.phase, Some(Phase::Preparing));
    let master = d.status.master.clone().unwrap();
    assert_eq!(master.requested_at, Some(time(t(0))));
    // When it turns ready, the window is the request's.
    let ready = asset(Some((MasterStatus::Ready, Some(URL_A))));
    let d = decide_at(t(4), &spec(), &d.status, &ready);
    let master = d.status.master.unwrap();
    assert_eq!(master.requested_at, Some(time(t(0))));
    assert_eq!(
        master.expires_at,
        Some(time(t(0) + jiff::SignedDuration::from_hours(24)))
    );
}

#[test]
fn a_master_already_ready_in_the_answer_has_an_unknown_window_and_is_renewed_once() {
    // Someone else's grant, or Mux renewed an earlier one: not provably ours.
    let answer = asset(Some((MasterStatus::Ready, Some(URL_A))));
    let status = first_answer(&intent(t(0)), &answer);
    assert_eq!(status.pending, None);
    let d = decide_at(t(1), &spec(), &status, &answer);
    let master = d.status.master.clone().unwrap();
    assert_eq!(master.requested_at, None, "the window is unknown");
    assert_eq!(master.expires_at, None);
    assert_eq!(master.refresh_at, Some(time(t(1))), "refreshed at once");
    // The refresh renews (a new window), as when a GET had found this URL.
    let d = decide_at(t(2), &spec(), &d.status, &answer);
    assert_eq!(d.call, Some((Operation::Renew, MasterAccess::Temporary)));
    // Had it been read by a GET first, the same decision.
    let by_get = decide_at(t(1), &spec(), &MasterExportStatus::default(), &answer);
    assert_eq!(by_get.status.master.unwrap().refresh_at, Some(time(t(1))));
}

#[test]
fn errored_answers_are_decided_as_before() {
    let answer = asset(Some((MasterStatus::Errored, None)));
    let status = first_answer(&intent(t(0)), &answer);
    let d = decide_at(t(1), &spec(), &status, &answer);
    assert_eq!(d.call, None);
    assert_eq!(d.status.phase, Some(Phase::Failed));
    assert_eq!(d.status.pending, None);
    assert_eq!(d.summary.reason, "MasterErrored");
}

#[test]
fn only_a_refusal_for_the_assets_state_is_followed_by_a_read() {
    assert!(read_after_refusal(mux::ErrorKind::BadRequest));
    for kind in [
        mux::ErrorKind::NotFound,
        mux::ErrorKind::Credentials,
        mux::ErrorKind::RetryLater,
    ] {
        assert!(!read_after_refusal(kind), "{kind:?}");
    }
}
