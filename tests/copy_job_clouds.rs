//! gs:// and az:// archives end to end on the real apiserver: the controller's copy Job, its
//! container run with the pod template's environment (the storage credentials from the Secret,
//! under the keys the README documents), the master verified in the GCS emulator and in Azurite,
//! and the resource Copied.

use testenv::fixtures as support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::content;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use support::{World, condition, kubelet};
use testenv::{Azurite, GcsEmulator};

fn phase(obj: &MasterExport) -> Option<Phase> {
    obj.status.as_ref()?.phase
}

/// Archives a fresh asset to `url` with `credentials` in a Secret, through the copy Job; checks
/// the object in `store` is the master, and returns nothing once the resource is Copied.
async fn archived_through_the_job(
    prefix: &str,
    destination: Value,
    credentials: Value,
    store: &dyn ObjectStore,
    key: &str,
) {
    let world = World::new(prefix, &["--master-prepare-delay", "200ms"], &[]).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "archive"},
        "stringData": credentials,
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let size = 9 * 1024 * 1024 + 5;
    let asset = world.admin.seed_asset(json!({"size": size})).await.unwrap();
    let mut destination = destination;
    destination["credentialsSecretRef"] = json!({"name": "archive"});
    world
        .create(
            "archived",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": destination,
            }),
        )
        .await
        .unwrap();

    let copying = world
        .wait("archived", "Copying", |o| phase(o) == Some(Phase::Copying))
        .await;
    let job = copying
        .status
        .unwrap()
        .copy
        .unwrap()
        .job
        .expect("a copy Job");
    let run = kubelet::run_job(&world.client, &world.namespace, &job).await;
    assert_eq!(run.exit_code, 0, "the copy succeeds: {}", run.stderr);

    let copied = world
        .wait("archived", "Copied", |o| {
            phase(o) == Some(Phase::Copied)
                && condition(o, "Ready").is_some_and(|(s, _)| s == "True")
        })
        .await;
    let seed = world.admin.inspect(&asset.id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();
    let expected = content::sha256_hex(seed, size);
    let copy = copied.status.clone().unwrap().copy.unwrap();
    assert_eq!(copy.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        condition(&copied, "Copied").unwrap(),
        ("True".into(), "Verified".into())
    );
    let object = store
        .get(&Path::from(key))
        .await
        .expect("the object is there");
    assert_eq!(object.meta.size, size, "the object is whole");
}

#[tokio::test]
async fn a_gs_destination_is_archived_through_the_copy_job() {
    let gcs = GcsEmulator::start().expect("the GCS emulator starts (run `make tools` first)");
    let store = gcs.store(gcs.bucket()).unwrap();
    let key = "media/keynote.mp4";
    archived_through_the_job(
        "copy-gcs",
        json!({"url": format!("gs://{}/{key}", gcs.bucket())}),
        json!({"GOOGLE_SERVICE_ACCOUNT_KEY": gcs.service_account_key()}),
        &store,
        key,
    )
    .await;
}

#[tokio::test]
async fn an_az_destination_is_archived_through_the_copy_job() {
    let azurite = Azurite::start().expect("Azurite starts (run `make tools` first)");
    let store = azurite.store(azurite.container()).unwrap();
    let key = "media/keynote.mp4";
    archived_through_the_job(
        "copy-azure",
        json!({
            "url": format!("az://{}/{key}", azurite.container()),
            "endpoint": azurite.endpoint(),
        }),
        json!({
            "AZURE_STORAGE_ACCOUNT_NAME": testenv::azurite::ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": testenv::azurite::ACCOUNT_KEY,
        }),
        &store,
        key,
    )
    .await;
}
