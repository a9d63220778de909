//! The decisions of `decide`, step by step through a MasterExport's life.

use super::*;
use crate::resource::{LocalObjectRef, Source, UrlSecret};
use mux::types::{AssetErrors, Master, MasterUrl};

const URL_A: &str = "https://mezzanine.mux.com/a1/mezzanine.mp4?skid=A&signature=sa";
const URL_B: &str = "https://mezzanine.mux.com/a1/mezzanine.mp4?skid=B&signature=sb";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

pub(super) fn spec() -> MasterExportSpec {
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
        others_wanting: &[],
        known_grant: None,
        first_look: None,
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
        others_wanting: &[],
        known_grant: None,
        first_look: None,
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
fn at_refresh_time_access_is_cycled_without_a_renewal_first() {
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
    // A renewal is assumed to keep the window it renews: it would only add a PUT before this.
    assert_eq!(due.call, Some((Operation::Cycle, MasterAccess::None)));
    assert_eq!(
        due.status.master.unwrap().url,
        None,
        "a URL about to be revoked is not published"
    );
}

#[test]
fn a_url_of_unknown_window_is_renewed_once() {
    let mut adopted = recorded_ready();
    let master = adopted.master.as_mut().unwrap();
    master.requested_at = None;
    master.expires_at = None;
    master.refresh_at = Some(time(t(3600)));
    let due = decide_at(
        t(3600),
        &spec(),
        &adopted,
        &asset(Some((MasterStatus::Ready, Some(URL_A)))),
    );
    assert_eq!(due.call, Some((Operation::Renew, MasterAccess::Temporary)));
    assert_eq!(
        due.status.master.unwrap().url.as_deref(),
        Some(URL_A),
        "the URL stays published while its window is renewed"
    );
}

#[test]
fn a_renewal_with_a_new_url_keeps_the_earlier_window_then_cycles() {
    let recorded = recorded_ready();
    let mut renewing = recorded.clone();
    renewing.pending = Some(pending(Operation::Renew, t(22 * 3600)));
    let d = decide_at(
        t(22 * 3600 + 1),
        &spec(),
        &renewing,
        &asset(Some((MasterStatus::Ready, Some(URL_B)))),
    );
    let master = d.status.master.clone().unwrap();
    assert_eq!(master.url.as_deref(), Some(URL_B));
    assert_eq!(
        master.expires_at,
        Some(time(t(24 * 3600))),
        "a renewal may not have renewed: the earlier window"
    );
    assert_eq!(master.refreshes, 1);
    // Due at once, and a second renewal would prove nothing: none → temporary.
    let next = decide_at(
        t(22 * 3600 + 2),
        &spec(),
        &d.status,
        &asset(Some((MasterStatus::Ready, Some(URL_B)))),
    );
    assert_eq!(next.call, Some((Operation::Cycle, MasterAccess::None)));
    assert_eq!(next.status.master.unwrap().url, None);
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
fn a_cycle_records_one_intent_for_both_halves() {
    // Its first half, and every other call, is recorded before it is made.
    assert!(records_intent(Operation::Cycle, MasterAccess::None, false));
    assert!(records_intent(
        Operation::Request,
        MasterAccess::Temporary,
        false
    ));
    assert!(records_intent(Operation::Revoke, MasterAccess::None, true));
    // The second half, when this reconcile recorded the first: covered by it.
    assert!(!records_intent(
        Operation::Cycle,
        MasterAccess::Temporary,
        true
    ));
    // A second half with no first half recorded here (a restart between them): recorded.
    assert!(records_intent(
        Operation::Cycle,
        MasterAccess::Temporary,
        false
    ));
    // The window of the URL it brings is counted from the first half's intent: earlier.
    let mut cycling = recorded_ready();
    cycling.pending = Some(pending(Operation::Cycle, t(22 * 3600)));
    let done = decide_at(
        t(22 * 3600 + 9),
        &spec(),
        &cycling,
        &asset(Some((MasterStatus::Ready, Some(URL_B)))),
    );
    let master = done.status.master.unwrap();
    assert_eq!(master.requested_at, Some(time(t(22 * 3600))));
    assert_eq!(master.expires_at, Some(time(t(22 * 3600 + 86_400))));
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
fn access_is_revoked_after_copy_only_once_verified() {
    use crate::resource::{AfterCopy, CopyPhase, CopyStatus, Destination};
    let mut spec = spec();
    spec.destination = Some(Destination {
        url: "s3://b/k".into(),
        ..Default::default()
    });
    spec.after_copy = Some(AfterCopy {
        revoke_access: true,
        ..Default::default()
    });
    let mut status = MasterExportStatus::default();
    assert_eq!(effective_access(&spec, &status), Access::Temporary);
    status.copy = Some(CopyStatus {
        phase: CopyPhase::Running,
        destination: "s3://b/k".into(),
        ..Default::default()
    });
    assert_eq!(effective_access(&spec, &status), Access::Temporary);
    status.copy.as_mut().unwrap().phase = CopyPhase::Succeeded;
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

mod new_exports;
mod sharing;
