//! Archive, then delete from Mux (`afterCopy.deleteAsset`), on the real apiserver with mux-sim
//! and MinIO, the copy run by a copy Job (on the real node when there is one): the asset is
//! deleted only after the grace period, not at all when the archived object went missing in
//! between, not without the operator's `--allow-asset-deletion`, and not once the field is
//! removed during the grace. And mux-sim deletes an asset as Mux does.

use testenv::fixtures as support;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use mux::{Credentials, Deleted, MuxClients, MuxConfig, MuxError};
use mux_master_operator::resource::{AssetDeletion, DeletionState, MasterExport, Phase};
use mux_sim::admin_client::{ASSET_ROUTE, SimAdmin};
use object_store::ObjectStoreExt;
use serde_json::json;
use support::exportset::run_copy_jobs;
use support::{World, condition, eventually};
use testenv::Minio;

const SIZE: u64 = 256 * 1024 + 5;
/// Long enough for a copy Job on the real node.
const COPY_TIMEOUT: Duration = Duration::from_secs(240);

/// A world whose operator runs with `operator_args`, a MasterExport `archived` copying to
/// MinIO with `afterCopy.deleteAsset` and `deleteAfter`, and its copy Jobs run.
async fn archiving_world(
    prefix: &str,
    operator_args: &[&str],
    delete_after: &str,
) -> (World, &'static Minio, String, String) {
    let mut args = vec!["--poll-min", "100ms"];
    args.extend_from_slice(operator_args);
    let world = World::new(prefix, &["--master-prepare-delay", "200ms"], &args).await;
    let minio = Minio::shared().expect("MinIO starts");
    world.minio_credentials("archive", minio).await;
    let asset = world.admin.seed_asset(json!({"size": SIZE})).await.unwrap();
    let key = format!("{}/{}.mp4", world.namespace, asset.id);
    run_copy_jobs(&world, 1);
    world
        .create(
            "archived",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("s3://{}/{key}", minio.bucket()),
                    "endpoint": minio.endpoint(),
                    "pathStyle": true,
                    "credentialsSecretRef": {"name": "archive"},
                },
                "afterCopy": {"deleteAsset": true, "deleteAfter": delete_after},
            }),
        )
        .await
        .unwrap();
    (world, minio, asset.id, key)
}

fn deletion(obj: &MasterExport) -> Option<AssetDeletion> {
    obj.status.as_ref()?.deletion.clone()
}

fn in_state(obj: &MasterExport, state: DeletionState) -> bool {
    deletion(obj).is_some_and(|d| d.state == state)
}

/// Waits (at most `timeout`) for the resource to satisfy `predicate`.
async fn wait_for(
    world: &World,
    timeout: Duration,
    what: &str,
    predicate: impl Fn(&MasterExport) -> bool,
) -> MasterExport {
    eventually(timeout, what, || async {
        world
            .api()
            .get_opt("archived")
            .await
            .ok()
            .flatten()
            .filter(|o| predicate(o))
    })
    .await
}

/// The DELETEs mux-sim received for the asset.
async fn deletes(admin: &SimAdmin, asset_id: &str) -> u64 {
    admin
        .count("DELETE", ASSET_ROUTE, Some(asset_id), None)
        .await
        .unwrap()
}

/// Until `until` (plus a margin for a reconcile to run), asserts at every poll that mux-sim
/// received no DELETE and still has the asset.
async fn never_deleted_until(world: &World, asset_id: &str, until: Timestamp) {
    let end = until + jiff::SignedDuration::from_secs(3);
    while Timestamp::now() < end {
        assert_eq!(
            deletes(&world.admin, asset_id).await,
            0,
            "a DELETE was sent"
        );
        assert!(
            world.admin.inspect(asset_id).await.is_ok(),
            "the asset is gone"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn event_reasons(world: &World) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(world.client.clone(), &world.namespace);
    let listed = events.list(&ListParams::default()).await.unwrap();
    listed.items.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test]
async fn the_asset_is_deleted_only_after_the_grace_period() {
    let (world, minio, asset_id, key) =
        archiving_world("delete-grace", &["--allow-asset-deletion"], "6s").await;
    let scheduled = wait_for(&world, COPY_TIMEOUT, "copied, a deletion recorded", |o| {
        deletion(o).is_some()
    })
    .await;
    let record = deletion(&scheduled).unwrap();
    assert_eq!(record.state, DeletionState::Scheduled, "{record:?}");
    assert_eq!(
        scheduled.status.as_ref().unwrap().phase,
        Some(Phase::Copied)
    );
    let copy = scheduled.status.clone().unwrap().copy.unwrap();
    assert_eq!(
        (record.size, Some(&record.sha256)),
        (SIZE, copy.sha256.as_ref())
    );
    assert_eq!(
        record.due_at.0.duration_since(record.scheduled_at.0),
        jiff::SignedDuration::from_secs(6)
    );
    // Nothing before the end of the grace period, asked at every poll.
    while Timestamp::now() < record.due_at.0 {
        assert_eq!(deletes(&world.admin, &asset_id).await, 0, "deleted early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deleted = wait_for(&world, support::TIMEOUT, "deleted", |o| {
        in_state(o, DeletionState::Deleted)
    })
    .await;
    let done = deletion(&deleted).unwrap();
    assert!(done.deleted_at.unwrap().0 >= record.due_at.0);
    assert!(
        done.checked_at.unwrap().0 >= record.due_at.0,
        "checked just before"
    );
    assert_eq!(deletes(&world.admin, &asset_id).await, 1);
    assert!(
        world.admin.inspect(&asset_id).await.is_err(),
        "gone at mux-sim"
    );
    assert_eq!(
        condition(&deleted, "Ready").unwrap(),
        ("True".into(), "AssetDeleted".into())
    );
    assert!(
        support::master_url(&deleted).is_none(),
        "its URL is withdrawn"
    );
    // The archive stays, and an Event says what was deleted.
    let store = minio.store(minio.bucket()).unwrap();
    let path = object_store::path::Path::from(key.as_str());
    assert_eq!(store.head(&path).await.unwrap().size, SIZE);
    eventually(support::TIMEOUT, "an AssetDeleted Event", || async {
        event_reasons(&world)
            .await
            .contains(&"AssetDeleted".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_asset_is_kept_when_the_archived_object_was_removed_in_between() {
    let (world, minio, asset_id, key) =
        archiving_world("delete-missing", &["--allow-asset-deletion"], "15s").await;
    let scheduled = wait_for(&world, COPY_TIMEOUT, "copied, deletion scheduled", |o| {
        in_state(o, DeletionState::Scheduled)
    })
    .await;
    let due = deletion(&scheduled).unwrap().due_at.0;
    let store = minio.store(minio.bucket()).unwrap();
    store
        .delete(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap();
    assert!(Timestamp::now() < due, "removed within the grace period");
    let held = wait_for(&world, support::TIMEOUT, "the check failed", |o| {
        in_state(o, DeletionState::CheckFailed)
    })
    .await;
    let message = deletion(&held).unwrap().message.unwrap();
    assert!(message.contains("is gone"), "{message}");
    assert_eq!(
        condition(&held, "Stalled").unwrap(),
        ("True".into(), "ArchiveCheckFailed".into())
    );
    assert_eq!(deletes(&world.admin, &asset_id).await, 0);
    assert!(
        world.admin.inspect(&asset_id).await.is_ok(),
        "kept at mux-sim"
    );
}

#[tokio::test]
async fn nothing_is_deleted_without_the_operators_flag() {
    let (world, _minio, asset_id, _key) = archiving_world("delete-refused", &[], "1s").await;
    let refused = wait_for(&world, COPY_TIMEOUT, "copied, deletion refused", |o| {
        in_state(o, DeletionState::Refused)
    })
    .await;
    assert_eq!(
        condition(&refused, "Stalled").unwrap(),
        ("True".into(), "AssetDeletionNotAllowed".into())
    );
    let record = deletion(&refused).unwrap();
    assert!(
        record.message.unwrap().contains("--allow-asset-deletion"),
        "the condition names the flag"
    );
    never_deleted_until(&world, &asset_id, record.due_at.0).await;
    let still = world.api().get("archived").await.unwrap();
    assert!(in_state(&still, DeletionState::Refused));
}

#[tokio::test]
async fn removing_the_field_during_the_grace_cancels_the_deletion() {
    let (world, _minio, asset_id, _key) =
        archiving_world("delete-cancel", &["--allow-asset-deletion"], "12s").await;
    let scheduled = wait_for(&world, COPY_TIMEOUT, "copied, deletion scheduled", |o| {
        in_state(o, DeletionState::Scheduled)
    })
    .await;
    let due = deletion(&scheduled).unwrap().due_at.0;
    world
        .api()
        .patch(
            "archived",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"afterCopy": {"deleteAsset": false}}})),
        )
        .await
        .unwrap();
    assert!(Timestamp::now() < due, "removed within the grace period");
    let cancelled = wait_for(&world, support::TIMEOUT, "no deletion recorded", |o| {
        deletion(o).is_none()
            && o.status.as_ref().unwrap().observed_generation == o.metadata.generation
    })
    .await;
    assert_eq!(cancelled.status.unwrap().phase, Some(Phase::Copied));
    eventually(
        support::TIMEOUT,
        "an AssetDeletionCancelled Event",
        || async {
            event_reasons(&world)
                .await
                .contains(&"AssetDeletionCancelled".to_string())
                .then_some(())
        },
    )
    .await;
    never_deleted_until(&world, &asset_id, due).await;
}

#[tokio::test]
async fn mux_sim_deletes_an_asset_as_mux_does() {
    let sim = testenv::MuxSim::start(
        testenv::bins::mux_sim().expect("mux-sim's binary"),
        &["--webhook-url", "http://127.0.0.1:9/webhooks/mux"],
    )
    .expect("mux-sim starts");
    let admin = SimAdmin::new(sim.url());
    let asset = admin.seed_asset(json!({"size": 1024})).await.unwrap();
    let config = MuxConfig {
        base_url: sim.url().parse().unwrap(),
        ..MuxConfig::default()
    };
    let mux = MuxClients::new(config)
        .unwrap()
        .client(Credentials::new(support::TOKEN_ID, support::TOKEN_SECRET));
    assert_eq!(mux.delete_asset(&asset.id).await.unwrap(), Deleted::Now);
    assert_eq!(
        admin
            .count("DELETE", ASSET_ROUTE, Some(&asset.id), Some(204))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        mux.get_asset(&asset.id).await,
        Err(MuxError::NotFound { .. })
    ));
    assert_eq!(
        mux.delete_asset(&asset.id).await.unwrap(),
        Deleted::AlreadyGone
    );
    let listed = mux.list_assets_page(100, None).await.unwrap();
    assert!(listed.data.iter().all(|a| a.id != asset.id));
    eventually(support::TIMEOUT, "video.asset.deleted sent", || async {
        let deliveries = admin.deliveries().await.ok()?;
        deliveries["deliveries"]
            .as_array()?
            .iter()
            .any(|d| d["kind"] == "video.asset.deleted" && d["object_id"] == asset.id.as_str())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_apiserver_refuses_a_deletion_without_an_object_store_or_a_grace_period() {
    let world = World::new("delete-refused-spec", &[], &[]).await;
    let spec = |destination: serde_json::Value, after_copy: serde_json::Value| {
        json!({
            "source": {"assetId": "a1"},
            "credentialsSecretRef": {"name": "mux"},
            "destination": destination,
            "afterCopy": after_copy,
        })
    };
    let volume = json!({"url": "file:///archive/a1.mp4", "volume": {"claimName": "c", "mountPath": "/archive"}});
    let s3 = json!({"url": "s3://archive/a1.mp4"});
    let refused = world
        .create_raw(
            "on-a-volume",
            spec(volume.clone(), json!({"deleteAsset": true})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("needs a destination in an object store"),
        "{refused}"
    );
    let refused = world
        .create_raw(
            "no-grace",
            spec(
                s3.clone(),
                json!({"deleteAsset": true, "deleteAfter": "0s"}),
            ),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("deleteAfter must be at least 1s"),
        "{refused}"
    );
    let no_destination = json!({
        "source": {"assetId": "a1"},
        "credentialsSecretRef": {"name": "mux"},
        "afterCopy": {"deleteAsset": true},
    });
    assert!(world.create_raw("nowhere", no_destination).await.is_err());
    // Accepted: an object store, the default grace; a volume without deletion.
    world
        .create_raw("fine", spec(s3, json!({"deleteAsset": true})))
        .await
        .unwrap();
    let fine = world.api().get("fine").await.unwrap();
    assert_eq!(fine.spec.after_copy.unwrap().delete_after, "24h");
    world
        .create_raw(
            "kept-on-a-volume",
            spec(volume, json!({"revokeAccess": true})),
        )
        .await
        .unwrap();
}
