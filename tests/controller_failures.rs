//! What goes wrong shows where a person looks: conditions with reasons, and resources the
//! apiserver refuses before the controller sees them (operator as a real process).

use testenv::fixtures as support;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{World, condition, is_ready};

fn asset_spec(asset_id: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset_id}, "credentialsSecretRef": {"name": "mux"}})
}

#[tokio::test]
async fn errors_surface_as_conditions_with_reasons() {
    let world = World::new("errors", &["--master-prepare-delay", "200ms"], &[]).await;
    world
        .credentials("wrong", support::TOKEN_ID, "not-the-secret")
        .await;
    let good = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let errored = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.admin.error_asset(&errored.id).await.unwrap();
    let bad_master = world
        .admin
        .seed_asset(json!({"size": 1000, "fail_master": true}))
        .await
        .unwrap();

    let cases = [
        (
            "no-secret",
            json!({"source": {"assetId": good.id}, "credentialsSecretRef": {"name": "absent"}}),
            "CredentialsSecretNotFound",
        ),
        (
            "bad-token",
            json!({"source": {"assetId": good.id}, "credentialsSecretRef": {"name": "wrong"}}),
            "MuxCredentialsRejected",
        ),
        ("no-asset", asset_spec("doesNotExist"), "AssetNotFound"),
        ("errored", asset_spec(&errored.id), "AssetErrored"),
        ("bad-master", asset_spec(&bad_master.id), "MasterErrored"),
    ];
    for (name, spec, _) in &cases {
        world.create(name, spec.clone()).await.unwrap();
    }
    for (name, _, reason) in &cases {
        let obj = world
            .wait(name, reason, |o| {
                condition(o, "Stalled").is_some_and(|(s, r)| s == "True" && r == *reason)
            })
            .await;
        assert_eq!(
            condition(&obj, "Ready").unwrap(),
            ("False".to_string(), reason.to_string())
        );
    }

    // Mux down: a condition says so, and it is not Stalled: time will tell.
    world
        .admin
        .configure(json!({"error_rate": 1.0}))
        .await
        .unwrap();
    let down = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create("mux-down", asset_spec(&down.id))
        .await
        .unwrap();
    let obj = world
        .wait("mux-down", "MuxUnavailable", |o| {
            condition(o, "Reconciling").is_some_and(|(_, r)| r == "MuxUnavailable")
        })
        .await;
    assert!(condition(&obj, "Stalled").is_none());
    // It recovers by itself once Mux is back.
    world
        .admin
        .configure(json!({"error_rate": 0.0}))
        .await
        .unwrap();
    world
        .wait("mux-down", "Ready after Mux recovers", is_ready)
        .await;
}

#[tokio::test]
async fn invalid_resources_are_refused_by_the_apiserver_with_a_reason() {
    let world = World::new("invalid", &[], &[]).await;
    let creds = json!({"name": "mux"});
    let cases = [
        (
            json!({"source": {}, "credentialsSecretRef": creds}),
            "exactly one of source.assetId or source.liveStreamId",
        ),
        (
            json!({"source": {"assetId": "a", "liveStreamId": "b"}, "credentialsSecretRef": creds}),
            "exactly one of source.assetId or source.liveStreamId",
        ),
        (
            json!({"source": {"assetId": "a/../b"}, "credentialsSecretRef": creds}),
            "spec.source.assetId",
        ),
        (
            json!({"source": {"assetId": "a"}, "credentialsSecretRef": creds, "refreshBefore": "2d"}),
            "spec.refreshBefore",
        ),
        (
            json!({"source": {"assetId": "a"}, "credentialsSecretRef": creds, "refreshBefore": "48h"}),
            "refreshBefore must be between 1s and 23h",
        ),
        (
            json!({"source": {"assetId": "a"}, "credentialsSecretRef": creds, "access": "forever"}),
            "spec.access",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let err = world
            .create_raw(&format!("bad-{i}"), spec.clone())
            .await
            .expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "case {i}: {message:?} should mention {expected:?}"
        );
    }
    // The source is immutable.
    world
        .create(
            "fixed",
            json!({"source": {"assetId": "a"}, "credentialsSecretRef": creds}),
        )
        .await
        .unwrap();
    let err = world
        .api()
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": {"assetId": "b"}}})),
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("source is immutable"), "{err}");
}
