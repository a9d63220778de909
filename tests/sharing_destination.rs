//! Resources that name one destination, and Jobs left by a resource of the same name, on the
//! real apiserver with mux-sim and the operator as a process (no kubelet: the copy Jobs are
//! created, not run, which is all these tests need).

use testenv::fixtures as support;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use mux_master_operator::resource::MasterExport;
use serde_json::json;
use support::{World, condition, eventually};

fn spec(asset_id: &str, destination: serde_json::Value) -> serde_json::Value {
    json!({
        "source": {"assetId": asset_id},
        "credentialsSecretRef": {"name": "mux"},
        "destination": destination,
    })
}

fn copy_job(obj: &MasterExport) -> Option<String> {
    obj.status.as_ref()?.copy.as_ref()?.job.clone()
}

async fn jobs_of(world: &World, name: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    api.list(&ListParams::default().labels(&format!("masterexport.io/name={name}")))
        .await
        .unwrap()
        .items
}

async fn gone(world: &World, name: &str) {
    world
        .api()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    let api = world.api();
    eventually(support::TIMEOUT, "the resource to be gone", || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_export_to_the_same_object_is_stalled_and_copies_nothing() {
    let world = World::new("dest-shared", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let destination = json!({
        "url": "s3://archive/shared.mp4",
        "endpoint": "http://127.0.0.1:9",
        "pathStyle": true,
        "credentialsSecretRef": {"name": "team-a"},
    });
    world
        .create("first", spec(&asset.id, destination.clone()))
        .await
        .unwrap();
    world
        .wait("first", "first copying", |o| copy_job(o).is_some())
        .await;

    // Another team, other credentials and region: the same object all the same.
    let mut theirs = destination.clone();
    theirs["credentialsSecretRef"] = json!({"name": "team-b"});
    theirs["region"] = json!("eu-west-1");
    theirs["endpoint"] = json!("http://127.0.0.1:9/");
    world
        .create("second", spec(&asset.id, theirs))
        .await
        .unwrap();
    let second = world
        .wait("second", "second refused", |o| {
            condition(o, "Stalled").is_some_and(|(s, r)| s == "True" && r == "DestinationInUse")
        })
        .await;
    let message = &second.status.as_ref().unwrap().conditions[0].message;
    assert!(
        message.contains(&format!("{}/first", world.namespace)),
        "{message}"
    );
    assert!(copy_job(&second).is_none());
    assert!(
        jobs_of(&world, "second").await.is_empty(),
        "no Job writes it"
    );

    // Once the first is gone, the destination is the second's.
    gone(&world, "first").await;
    world
        .wait("second", "second copying", |o| copy_job(o).is_some())
        .await;
}

#[tokio::test]
async fn a_leftover_job_of_a_deleted_namesake_is_not_taken_for_the_new_ones_copy() {
    let world = World::new("dest-leftover", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let destination = json!({
        "url": "s3://archive/k.mp4",
        "endpoint": "http://127.0.0.1:9",
        "pathStyle": true,
    });
    world
        .create("keynote", spec(&asset.id, destination.clone()))
        .await
        .unwrap();
    let old = world
        .wait("keynote", "a copy Job", |o| copy_job(o).is_some())
        .await;
    let old_job = copy_job(&old).unwrap();
    gone(&world, "keynote").await;
    // No garbage collector here (as when it lags): the old Job is still there.
    assert_eq!(jobs_of(&world, "keynote").await.len(), 1);

    let new = world
        .create("keynote", spec(&asset.id, destination))
        .await
        .unwrap();
    let recreated = world
        .wait("keynote", "the new one's copy Job", |o| {
            copy_job(o).is_some()
        })
        .await;
    let new_job = copy_job(&recreated).unwrap();
    assert_ne!(new_job, old_job, "the leftover is not adopted");
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let job = jobs.get(&new_job).await.unwrap();
    let owner = job.owner_references()[0].uid.clone();
    assert_eq!(Some(owner), new.uid(), "the Job it watches is its own");
}
