//! The freshness rule and which events are trusted, without I/O.

use super::*;
use crate::resource::{MasterState, Operation, PendingRequest};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).unwrap()
}

fn event(kind: &str, data: serde_json::Value, created: i64) -> WebhookEvent {
    serde_json::from_value(json!({
        "type": kind, "object": {"type": "asset", "id": "a1"}, "id": "e1",
        "data": data, "created_at": t(created).to_string(), "attempts": []
    }))
    .unwrap()
}

fn ready(url: &str) -> serde_json::Value {
    json!({"id": "a1", "status": "ready", "master_access": "temporary", "created_at": 1_700_000_000,
           "master": {"status": "ready", "url": url}})
}

fn snapshot(url: &str, created: i64) -> Snapshot {
    trusted(&event("video.asset.master.ready", ready(url), created)).unwrap()
}

fn status_requested_at(second: i64) -> MasterExportStatus {
    MasterExportStatus {
        master: Some(MasterState {
            requested_at: Some(Time(t(second))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_ready_event_with_its_url_is_trusted_and_one_without_is_not() {
    let s = snapshot("https://m/a1?s=1", 5);
    assert_eq!(s.at, t(5));
    assert_eq!(s.asset.master_url().unwrap().expose(), "https://m/a1?s=1");

    let no_url = json!({"id": "a1", "status": "ready", "master_access": "temporary",
                        "master": {"status": "ready"}});
    assert!(trusted(&event("video.asset.master.ready", no_url, 5)).is_none());
    let preparing = json!({"id": "a1", "status": "ready", "master_access": "temporary",
                           "master": {"status": "preparing"}});
    assert!(trusted(&event("video.asset.master.ready", preparing, 5)).is_none());
}

#[test]
fn only_events_whose_data_is_the_whole_asset_in_the_state_they_name_are_trusted() {
    let gone = json!({"id": "a1", "status": "ready", "master_access": "none"});
    assert!(trusted(&event("video.asset.master.deleted", gone.clone(), 1)).is_some());
    assert!(
        trusted(&event(
            "video.asset.master.deleted",
            ready("https://m/x"),
            1
        ))
        .is_none(),
        "a deletion that still shows a master"
    );
    let errored = json!({"id": "a1", "status": "ready", "master": {"status": "errored"}});
    assert!(trusted(&event("video.asset.master.errored", errored, 1)).is_some());
    // The GET's 404 is what a deletion is acted on; a recording's master comes after it.
    for kind in [
        "video.asset.deleted",
        "video.asset.live_stream_completed",
        "video.asset.master.preparing",
    ] {
        assert!(trusted(&event(kind, gone.clone(), 1)).is_none(), "{kind}");
    }
    // Another asset's data, or no creation time: not a snapshot of this one.
    let other = json!({"id": "a2", "status": "ready", "master_access": "none"});
    assert!(trusted(&event("video.asset.master.deleted", other, 1)).is_none());
    let mut undated = event("video.asset.master.deleted", gone.clone(), 1);
    undated.created_at = serde_json::Value::Null;
    assert!(trusted(&undated).is_none());
    let mut unix = event("video.asset.master.deleted", gone, 1);
    unix.created_at = json!(1_800_000_001);
    assert_eq!(trusted(&unix).unwrap().at, t(1));
    let stream: WebhookEvent = serde_json::from_value(json!({
        "type": "video.asset.ready", "object": {"type": "live_stream", "id": "a1"}, "id": "e",
        "data": {"id": "a1", "status": "ready"}, "created_at": t(1).to_string()
    }))
    .unwrap();
    assert!(trusted(&stream).is_none());
}

#[test]
fn a_snapshot_is_used_only_when_newer_than_everything_recorded() {
    let snapshots = Snapshots::default();
    let none = MasterExportStatus::default();
    assert!(snapshots.usable("a1", &none).is_none(), "nothing offered");

    snapshots.record("a1", t(10)); // a GET sent at 10
    assert!(
        !snapshots.offer(snapshot("https://m/old", 9)),
        "older than the GET"
    );
    assert!(snapshots.usable("a1", &none).is_none());

    assert!(snapshots.offer(snapshot("https://m/new", 12)));
    let used = snapshots.usable("a1", &none).unwrap();
    assert_eq!(used.master_url().unwrap().expose(), "https://m/new");
    // Several resources on the asset use the same snapshot.
    assert!(snapshots.usable("a1", &none).is_some());

    // The status's own record wins: a renewal requested at 15 makes the snapshot of 12 old,
    // even after a restart (no in-memory record).
    assert!(snapshots.usable("a1", &status_requested_at(15)).is_none());
    let pending = MasterExportStatus {
        pending: Some(PendingRequest {
            operation: Operation::Renew,
            at: Time(t(13)),
        }),
        ..Default::default()
    };
    assert!(snapshots.usable("a1", &pending).is_none());
    assert!(snapshots.usable("a1", &status_requested_at(11)).is_some());

    // A change of access answered at 20: the snapshot of 12 is dropped.
    snapshots.record("a1", t(20));
    assert!(snapshots.usable("a1", &none).is_none());
}

#[test]
fn duplicates_and_reordered_deliveries_are_not_news() {
    let snapshots = Snapshots::default();
    assert!(snapshots.offer(snapshot("https://m/2", 20)));
    assert!(!snapshots.offer(snapshot("https://m/2", 20)), "a duplicate");
    assert!(
        !snapshots.offer(snapshot("https://m/1", 15)),
        "delivered late"
    );
    let kept = snapshots
        .usable("a1", &MasterExportStatus::default())
        .unwrap();
    assert_eq!(kept.master_url().unwrap().expose(), "https://m/2");
    assert!(snapshots.offer(snapshot("https://m/3", 21)));

    snapshots.forget("a1");
    assert!(
        snapshots
            .usable("a1", &MasterExportStatus::default())
            .is_none()
    );
}

#[test]
fn the_rule_compares_strictly() {
    let at_ten = Freshness {
        recorded: Some(t(10)),
    };
    assert!(!at_ten.is_newer(t(10), None));
    assert!(at_ten.is_newer(t(11), None));
    assert!(Freshness::default().is_newer(t(0), None));
    assert!(!Freshness::default().is_newer(t(5), Some(&status_requested_at(5))));
}
