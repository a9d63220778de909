//! What a MasterExportSet refuses, and how it reports what it cannot export: the apiserver
//! refuses unknown placeholders and patterns that could give two assets one key at apply time;
//! the controller refuses a time format it cannot write; errored assets are skipped and failed
//! children named.

use testenv::fixtures as support;

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use support::World;
use support::exportset::{
    children, create_raw_set, create_set, install_set_crd, set_condition, wait_set,
};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn world(prefix: &str) -> World {
    let world = World::new(
        prefix,
        &["--master-prepare-delay", "200ms"],
        &["--poll-min", "100ms"],
    )
    .await;
    install_set_crd(&world.client).await;
    world
}

fn with_destination(url: &str) -> serde_json::Value {
    json!({
        "credentialsSecretRef": {"name": "mux"},
        "template": {"destination": {"url": url, "endpoint": "http://127.0.0.1:9", "pathStyle": true}},
    })
}

#[tokio::test]
async fn the_apiserver_refuses_unknown_placeholders_and_patterns_without_the_asset_id() {
    let world = world("set-refuse").await;
    let refused = [
        ("s3://archive/{assetID}.mp4", "unknown placeholder"),
        ("s3://archive/{assetId}/{title}.mp4", "unknown placeholder"),
        (
            "s3://archive/{createdAt:%Y %m}/{assetId}",
            "unknown placeholder",
        ),
        ("s3://archive/{assetId", "must close"),
        ("s3://archive/{passthrough}.mp4", "must contain {assetId}"),
        (
            "s3://archive/{passthrough}-{assetId}.mp4",
            "alone in its path segment",
        ),
        (
            "s3://archive/{assetId}/{passthrough}.mp4",
            "must be the last placeholder",
        ),
        (
            "s3://archive/{assetId}/{assetId}.mp4",
            "must be the last placeholder",
        ),
    ];
    for (i, (url, why)) in refused.iter().enumerate() {
        let error = create_raw_set(&world, &format!("bad-{i}"), with_destination(url))
            .await
            .expect_err(url);
        let kube::Error::Api(response) = error else {
            panic!("{url}: not an API refusal: {error}");
        };
        assert_eq!(response.code, 422, "{url}: {response:?}");
        assert!(
            response.message.contains(why),
            "{url}: {}",
            response.message
        );
    }
    let accepted = [
        "s3://archive/mux/{assetId}.mp4",
        "s3://archive/{createdAt:%Y/%m}/{passthrough}/{assetId}.mp4",
        "gs://archive/{liveStreamId}/{createdAt}/{assetId}/master.mp4",
    ];
    for (i, url) in accepted.iter().enumerate() {
        create_raw_set(&world, &format!("good-{i}"), with_destination(url))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    let error = create_raw_set(
        &world,
        "zero",
        json!({"credentialsSecretRef": {"name": "mux"}, "maxInFlight": 0}),
    )
    .await
    .expect_err("maxInFlight 0");
    assert!(error.to_string().contains("maxInFlight"), "{error}");
    // Deleting from Mux needs an archive the operator can read back: not on a volume.
    let on_a_volume = json!({
        "credentialsSecretRef": {"name": "mux"},
        "template": {
            "destination": {"url": "file:///archive/{assetId}.mp4", "volume": {"claimName": "c", "mountPath": "/archive"}},
            "afterCopy": {"deleteAsset": true},
        },
    });
    let error = create_raw_set(&world, "delete-from-a-volume", on_a_volume)
        .await
        .expect_err("deleteAsset with a file:// destination");
    assert!(
        error
            .to_string()
            .contains("needs a destination in an object store"),
        "{error}"
    );
    let mut in_s3 = with_destination("s3://archive/{assetId}.mp4");
    in_s3["template"]["afterCopy"] = json!({"deleteAsset": true, "deleteAfter": "72h"});
    create_raw_set(&world, "delete-after-s3", in_s3)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_time_format_the_controller_cannot_write_stalls_the_set_before_any_child_is_made() {
    let world = world("set-badtime").await;
    world.seed_assets(2, json!({"size": 1000})).await;
    // Accepted by the apiserver (its characters are allowed), refused by the controller, which
    // tries the format: `%Q` is no strftime conversion.
    create_set(
        &world,
        "glued",
        with_destination("s3://archive/{createdAt:%Q}/{assetId}.mp4"),
    )
    .await
    .unwrap();
    let set = wait_set(&world, "glued", "Stalled InvalidTemplate", TIMEOUT, |s| {
        set_condition(s, "Stalled").is_some_and(|(st, r, _)| st == "True" && r == "InvalidTemplate")
    })
    .await;
    let (_, _, message) = set_condition(&set, "Stalled").unwrap();
    assert!(
        message.contains("{createdAt:%Q}: not a strftime format"),
        "{message}"
    );
    assert!(
        children(&world, &set).await.is_empty(),
        "no child of a refused set"
    );
}

#[tokio::test]
async fn errored_assets_are_skipped_and_a_failed_child_is_named() {
    let world = world("set-failed").await;
    let good = world.seed_assets(2, json!({"size": 1000})).await;
    let broken = world
        .seed_assets(1, json!({"size": 1000, "fail_master": true}))
        .await
        .remove(0);
    let errored = world.seed_assets(1, json!({"size": 1000})).await.remove(0);
    world.admin.error_asset(&errored).await.unwrap();
    create_set(
        &world,
        "mixed",
        json!({"credentialsSecretRef": {"name": "mux"}}),
    )
    .await
    .unwrap();

    let set = wait_set(
        &world,
        "mixed",
        "Stalled with the failed child named",
        TIMEOUT,
        |s| {
            set_condition(s, "Stalled").is_some_and(|(st, _, _)| st == "True")
                && s.status.as_ref().is_some_and(|st| st.counts.done == 2)
        },
    )
    .await;
    let kids = children(&world, &set).await;
    assert!(
        !kids.contains_key(&errored),
        "an errored asset gets no child"
    );
    assert!(good.iter().all(|id| kids.contains_key(id)));
    let failed = kids[&broken].name_any();
    let status = set.status.clone().unwrap();
    assert_eq!(
        (
            status.counts.failed,
            status.counts.skipped,
            status.counts.total
        ),
        (1, 1, 3)
    );
    assert_eq!(status.failed_children, vec![failed.clone()]);
    let (_, reason, message) = set_condition(&set, "Stalled").unwrap();
    assert_eq!(reason, "ChildrenFailed");
    assert!(message.contains(&failed), "{message}");
    let (ready, _, _) = set_condition(&set, "Ready").unwrap();
    assert_eq!(ready, "False");
}

#[tokio::test]
async fn a_set_whose_children_all_fail_stops_after_one_pipeline_of_them() {
    let world = world("set-halt").await;
    world
        .seed_assets(5, json!({"size": 1000, "fail_master": true}))
        .await;
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "maxInFlight": 2});
    create_set(&world, "doomed", spec).await.unwrap();
    let set = wait_set(&world, "doomed", "halted", TIMEOUT, |s| {
        set_condition(s, "Stalled")
            .is_some_and(|(st, _, m)| st == "True" && m.contains("no more children"))
    })
    .await;
    let status = set.status.clone().unwrap();
    assert_eq!(
        (status.counts.failed, status.counts.waiting),
        (2, 3),
        "{status:?}"
    );
    assert_eq!(
        children(&world, &set).await.len(),
        2,
        "not one child more than the failed pipeline"
    );
    assert!(
        set_condition(&set, "Reconciling").is_none(),
        "a halted set is not progressing"
    );
}
