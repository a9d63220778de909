//! Every guard of the deletion from Mux, one at a time.

use super::*;
use crate::resource::{
    AfterCopy, AssetState, CopyPhase, CopyStatus, Destination, LocalObjectRef, Source,
};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn spec(delete_asset: bool, delete_after: &str) -> MasterExportSpec {
    MasterExportSpec {
        source: Source {
            asset_id: Some("a1".into()),
            live_stream_id: None,
        },
        access: Default::default(),
        credentials_secret_ref: LocalObjectRef { name: "mux".into() },
        refresh_before: "2h".into(),
        url_secret: None,
        deletion_policy: Default::default(),
        suspend: false,
        destination: Some(Destination {
            url: "s3://archive/a1.mp4".into(),
            ..Default::default()
        }),
        after_copy: Some(AfterCopy {
            delete_asset,
            delete_after: delete_after.into(),
            ..Default::default()
        }),
    }
}

/// A status with a verified copy (`phase`) of 10 bytes.
fn copied(phase: CopyPhase) -> MasterExportStatus {
    MasterExportStatus {
        asset: Some(AssetState {
            id: "a1".into(),
            ..Default::default()
        }),
        copy: Some(CopyStatus {
            phase,
            destination: "s3://archive/a1.mp4".into(),
            object: Some("s3://archive/a1.mp4".into()),
            size: Some(10),
            sha256: Some(SHA.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn input<'a>(
    spec: &'a MasterExportSpec,
    status: &'a MasterExportStatus,
    allowed: bool,
    others: &'a [String],
    now: Timestamp,
) -> DeletionInput<'a> {
    DeletionInput {
        spec,
        status,
        allowed,
        others_wanting: others,
        now,
    }
}

/// The record `plan` asks to keep, and its wake-up.
fn waiting(plan: DeletionPlan) -> (AssetDeletion, Option<Duration>) {
    match plan {
        DeletionPlan::Wait { record, wake_in } => (record, wake_in),
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn nothing_without_the_field_and_nothing_before_a_verified_copy() {
    let off = spec(false, "24h");
    let status = copied(CopyPhase::Succeeded);
    assert_eq!(
        plan(&input(&off, &status, true, &[], t(0))),
        DeletionPlan::Off
    );
    let on = spec(true, "24h");
    for phase in [CopyPhase::Running, CopyPhase::Failed] {
        let status = copied(phase);
        assert_eq!(
            plan(&input(&on, &status, true, &[], t(0))),
            DeletionPlan::WaitingForCopy
        );
    }
    // A copy without its digest is no verified copy.
    let mut no_digest = copied(CopyPhase::Succeeded);
    no_digest.copy.as_mut().unwrap().sha256 = None;
    assert_eq!(
        plan(&input(&on, &no_digest, true, &[], t(0))),
        DeletionPlan::WaitingForCopy
    );
    // A copy of another destination neither.
    let mut elsewhere = on.clone();
    elsewhere.destination.as_mut().unwrap().url = "s3://other/a1.mp4".into();
    assert_eq!(
        plan(&input(&elsewhere, &status, true, &[], t(0))),
        DeletionPlan::WaitingForCopy
    );
}

#[test]
fn a_verified_copy_schedules_the_deletion_after_the_grace_period() {
    let on = spec(true, "90m");
    let mut status = copied(CopyPhase::Succeeded);
    let (record, wake_in) = waiting(plan(&input(&on, &status, true, &[], t(0))));
    assert_eq!(record.state, DeletionState::Scheduled);
    assert_eq!((record.scheduled_at.0, record.due_at.0), (t(0), t(5400)));
    assert_eq!((record.size, record.sha256.as_str()), (10, SHA));
    assert_eq!(wake_in, Some(Duration::from_secs(5400)));
    // Later reconciles keep the schedule: the grace counts from when it was set.
    status.deletion = Some(record);
    let (record, wake_in) = waiting(plan(&input(&on, &status, true, &[], t(5399))));
    assert_eq!(
        (record.scheduled_at.0, wake_in),
        (t(0), Some(Duration::from_secs(1)))
    );
    // Due at the end of the grace, not before.
    match plan(&input(&on, &status, true, &[], t(5400))) {
        DeletionPlan::Due(record) => assert_eq!(record.asset_id, "a1"),
        other => panic!("not due: {other:?}"),
    }
}

#[test]
fn the_grace_period_defaults_to_a_day_and_is_never_shorter_than_asked() {
    let on = spec(true, "24h");
    assert_eq!(grace(&on), Duration::from_secs(86_400));
    assert_eq!(grace(&spec(true, "nonsense")), Duration::from_secs(86_400));
    assert_eq!(grace(&spec(true, "2s")), Duration::from_secs(2));
    let defaulted: AfterCopy =
        serde_json::from_value(serde_json::json!({"deleteAsset": true})).unwrap();
    assert_eq!(defaulted.delete_after, "24h");
}

#[test]
fn removing_the_field_during_the_grace_cancels_the_deletion() {
    let on = spec(true, "1h");
    let mut status = copied(CopyPhase::Succeeded);
    let (record, _) = waiting(plan(&input(&on, &status, true, &[], t(0))));
    status.deletion = Some(record.clone());
    let off = spec(false, "1h");
    assert_eq!(
        plan(&input(&off, &status, true, &[], t(4000))),
        DeletionPlan::Cancelled(record)
    );
    // Set again: a new grace period from then.
    status.deletion = None;
    let (again, _) = waiting(plan(&input(&on, &status, true, &[], t(4000))));
    assert_eq!(again.due_at.0, t(7600));
}

#[test]
fn without_the_operators_flag_it_is_refused_and_the_grace_starts_when_allowed() {
    let on = spec(true, "1h");
    let mut status = copied(CopyPhase::Succeeded);
    let (record, wake_in) = waiting(plan(&input(&on, &status, false, &[], t(0))));
    assert_eq!((record.state, wake_in), (DeletionState::Refused, None));
    assert!(
        record
            .message
            .as_deref()
            .unwrap()
            .contains("--allow-asset-deletion")
    );
    // Long after: still refused, never due.
    status.deletion = Some(record);
    let (record, _) = waiting(plan(&input(&on, &status, false, &[], t(100_000))));
    assert_eq!(record.state, DeletionState::Refused);
    // Allowed from now: a full grace period from now, not from the refusal.
    status.deletion = Some(record);
    let (record, _) = waiting(plan(&input(&on, &status, true, &[], t(100_000))));
    assert_eq!(record.state, DeletionState::Scheduled);
    assert_eq!(record.due_at.0, t(103_600));
    let summary = summary(
        &waiting(plan(&input(
            &on,
            &copied(CopyPhase::Succeeded),
            false,
            &[],
            t(0),
        )))
        .0,
        &Summary::ready("Copied", ""),
    );
    assert!(summary.stalled && summary.reason == "AssetDeletionNotAllowed");
}

#[test]
fn another_export_needing_the_asset_holds_the_deletion() {
    let on = spec(true, "1s");
    let mut status = copied(CopyPhase::Succeeded);
    let (record, _) = waiting(plan(&input(&on, &status, true, &[], t(0))));
    status.deletion = Some(record);
    let others = ["media/other".to_string()];
    let (held, wake_in) = waiting(plan(&input(&on, &status, true, &others, t(10))));
    assert_eq!(
        (held.state, wake_in),
        (DeletionState::Held, Some(HELD_RECHECK))
    );
    assert!(held.message.as_deref().unwrap().contains("media/other"));
    // Once none does: due.
    status.deletion = Some(held);
    assert!(matches!(
        plan(&input(&on, &status, true, &[], t(20))),
        DeletionPlan::Due(_)
    ));
}

#[test]
fn a_new_archive_is_a_new_schedule() {
    let on = spec(true, "1h");
    let mut status = copied(CopyPhase::Succeeded);
    let (record, _) = waiting(plan(&input(&on, &status, true, &[], t(0))));
    status.deletion = Some(record);
    status.copy.as_mut().unwrap().sha256 = Some("b".repeat(64));
    let (record, _) = waiting(plan(&input(&on, &status, true, &[], t(3599))));
    assert_eq!(record.scheduled_at.0, t(3599));
    assert_eq!(record.sha256, "b".repeat(64));
}

#[test]
fn a_deletion_made_stays_made() {
    let mut status = copied(CopyPhase::Succeeded);
    let (mut record, _) = waiting(plan(&input(&spec(true, "1s"), &status, true, &[], t(0))));
    record.state = DeletionState::Deleted;
    status.deletion = Some(record.clone());
    for spec in [spec(true, "1s"), spec(false, "1s")] {
        assert_eq!(
            plan(&input(&spec, &status, false, &[], t(9))),
            DeletionPlan::Done(record.clone())
        );
    }
}

#[test]
fn the_fresh_check_wants_the_object_its_size_and_its_digest() {
    let status = copied(CopyPhase::Succeeded);
    let (record, _) = waiting(plan(&input(&spec(true, "1s"), &status, true, &[], t(0))));
    assert_eq!(confirm(&record, Some((10, Some(SHA)))), Ok(()));
    let gone = confirm(&record, None).unwrap_err();
    assert!(gone.contains("is gone"), "{gone}");
    assert!(confirm(&record, Some((11, Some(SHA)))).is_err());
    assert!(confirm(&record, Some((10, Some(&"b".repeat(64))))).is_err());
    assert!(confirm(&record, Some((10, None))).is_err());
}

#[test]
fn each_state_reads_as_a_condition() {
    let status = copied(CopyPhase::Succeeded);
    let (mut record, _) = waiting(plan(&input(&spec(true, "1h"), &status, true, &[], t(0))));
    let copied = Summary::ready("Copied", "copied");
    let reason = |record: &AssetDeletion| {
        let s = summary(record, &copied);
        (s.reason, s.ready, s.stalled)
    };
    assert_eq!(
        reason(&record),
        ("AssetDeletionScheduled".into(), true, false)
    );
    record.state = DeletionState::CheckFailed;
    assert_eq!(reason(&record), ("ArchiveCheckFailed".into(), false, true));
    record.state = DeletionState::Held;
    assert_eq!(reason(&record), ("AssetDeletionHeld".into(), false, false));
    record.state = DeletionState::Deleted;
    assert_eq!(reason(&record), ("AssetDeleted".into(), true, false));
}
