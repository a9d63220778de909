//! The URL Secrets the operator writes are watched: one deleted or edited by hand is put
//! back within seconds, long before the next periodic reconcile (here, the refresh ~22 h
//! away: URLs live 24 h, the default).

use testenv::fixtures as support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::{World, eventually, is_ready, master_url};

/// Far below the periodic requeue (~22 h), and below the fallback polls.
const RESTORED_WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_deleted_or_edited_url_secret_is_restored_well_before_the_periodic_reconcile() {
    let world = World::new("urlwatch", &["--master-prepare-delay", "1s"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "watched",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world.wait("watched", "Ready", is_ready).await;
    let url = master_url(&ready).expect("a URL").into_bytes();
    let refresh_at = ready
        .status
        .as_ref()
        .unwrap()
        .master
        .as_ref()
        .unwrap()
        .refresh_at
        .clone();
    let left = refresh_at.unwrap().0.as_second() - jiff::Timestamp::now().as_second();
    assert!(
        left > 3600,
        "the next periodic reconcile is hours away ({left} s)"
    );

    let secrets = world.secrets();
    let name = "watched-master";
    let holds_url = |secrets: kube::Api<k8s_openapi::api::core::v1::Secret>, url: Vec<u8>| async move {
        let secret = secrets.get_opt(name).await.ok()??;
        (secret.data?.get("url")?.0 == url).then_some(())
    };
    secrets
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(RESTORED_WITHIN, "the deleted URL Secret restored", || {
        holds_url(secrets.clone(), url.clone())
    })
    .await;

    // Edited by someone else (their own field manager): put back too.
    secrets
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"url": "https://example.com/not-the-master"}})),
        )
        .await
        .unwrap();
    let edited = secrets.get(name).await.unwrap();
    assert_ne!(edited.data.unwrap()["url"].0, url, "the edit landed");
    eventually(RESTORED_WITHIN, "the edited URL Secret restored", || {
        holds_url(secrets.clone(), url.clone())
    })
    .await;
}
