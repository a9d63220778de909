//! A verified copy that asks to revoke access, on an asset another MasterExport still needs:
//! "done" for the one, not "revoke for everyone" (real apiserver, mux-sim, MinIO, the copy
//! Job's container run by the test-side kubelet, the operator as a process).

use testenv::fixtures as support;

use kube::api::DeleteParams;
use mux_master_operator::resource::{MasterExport, Phase};
use serde_json::json;
use support::kubelet;
use support::{World, condition, eventually, is_ready, master_url};
use testenv::Minio;

async fn access(world: &World, asset: &str) -> String {
    world.admin.inspect(asset).await.unwrap()["asset"]["master_access"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits for `name` to satisfy `done`; at every poll, the asset's access must stay on.
async fn wait_keeping_access(
    world: &World,
    asset: &str,
    name: &str,
    what: &str,
    done: impl Fn(&MasterExport) -> bool,
) -> MasterExport {
    let api = world.api();
    eventually(support::TIMEOUT, what, || async {
        assert_eq!(
            access(world, asset).await,
            "temporary",
            "access revoked while another resource needs it"
        );
        api.get_opt(name).await.unwrap().filter(|o| done(o))
    })
    .await
}

#[tokio::test]
async fn a_copy_that_revokes_after_copy_leaves_access_on_for_another_export() {
    let world = World::new("share-copy", &["--master-prepare-delay", "200ms"], &[]).await;
    let minio = Minio::shared().expect("MinIO starts");
    world.minio_credentials("archive", minio).await;
    let asset = world
        .admin
        .seed_asset(json!({"size": 100_000}))
        .await
        .unwrap();
    world
        .create(
            "viewer",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    world.wait("viewer", "viewer Ready", is_ready).await;
    world
        .create(
            "archiver",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("s3://{}/{}/shared.mp4", minio.bucket(), world.namespace),
                    "endpoint": minio.endpoint(),
                    "pathStyle": true,
                    "credentialsSecretRef": {"name": "archive"},
                },
                "afterCopy": {"revokeAccess": true},
            }),
        )
        .await
        .unwrap();
    let copying = wait_keeping_access(&world, &asset.id, "archiver", "Copying", |o| {
        o.status.as_ref().and_then(|s| s.phase) == Some(Phase::Copying)
    })
    .await;
    let job = copying.status.unwrap().copy.unwrap().job.unwrap();
    let run = kubelet::run_job(&world.client, &world.namespace, &job).await;
    assert_eq!(run.exit_code, 0, "the copy succeeds: {}", run.stderr);

    let copied = wait_keeping_access(&world, &asset.id, "archiver", "Copied", |o| {
        o.status.as_ref().and_then(|s| s.phase) == Some(Phase::Copied) && is_ready(o)
    })
    .await;
    let ready = copied.status.as_ref().unwrap().conditions[0]
        .message
        .clone();
    assert!(
        ready.contains("stays on") && ready.contains(&format!("{}/viewer", world.namespace)),
        "{ready}"
    );
    assert_eq!(
        master_url(&copied),
        None,
        "done: the archiver publishes no URL"
    );
    let viewer = world.api().get("viewer").await.unwrap();
    let url = master_url(&viewer).expect("the viewer's URL");
    assert!(reqwest::get(&url).await.unwrap().status().is_success());

    // The viewer goes: nobody needs access now, and the archiver's afterCopy is honoured.
    world
        .api()
        .delete("viewer", &DeleteParams::default())
        .await
        .unwrap();
    let api = world.api();
    eventually(
        support::TIMEOUT,
        "access off once nobody needs it",
        || async {
            let off = access(&world, &asset.id).await == "none";
            let archiver = api.get("archiver").await.unwrap();
            let says_off = condition(&archiver, "Ready").is_some_and(|(s, _)| s == "True")
                && archiver.status.as_ref().unwrap().conditions[0]
                    .message
                    .contains("is off");
            (off && says_off).then_some(())
        },
    )
    .await;
}
