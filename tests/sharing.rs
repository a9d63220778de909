//! Resources that share an asset, a destination or a Secret name, on the real apiserver
//! with mux-sim and the operator as a process. At every poll the tests check what must never
//! happen: a URL published past its expiry, access revoked while another resource needs it.

use testenv::fixtures as support;

use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use serde_json::json;
use support::{World, condition, eventually, is_ready, master_url};

fn asset_spec(asset_id: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset_id}, "credentialsSecretRef": {"name": "mux"}})
}

async fn world(prefix: &str) -> World {
    World::new(prefix, &["--master-prepare-delay", "200ms"], &[]).await
}

/// What no poll may ever show: a published URL past its expiry.
fn assert_no_expired_url(obj: &MasterExport) {
    let Some(master) = obj.status.as_ref().and_then(|s| s.master.as_ref()) else {
        return;
    };
    if master.url.is_some()
        && let Some(expires) = &master.expires_at
    {
        assert!(
            expires.0 > jiff::Timestamp::now(),
            "{} publishes a URL past its expiry",
            obj.metadata.name.as_deref().unwrap_or("?")
        );
    }
}

/// Mux's access to `asset` ("temporary" or "none").
async fn access(world: &World, asset: &str) -> String {
    world.admin.inspect(asset).await.unwrap()["asset"]["master_access"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits for `name` to satisfy `done`, checking at every poll that no URL is published past
/// its expiry and, while `needed` is set, that the asset's access stays on.
async fn wait_checking(
    world: &World,
    name: &str,
    what: &str,
    needed: Option<&str>,
    done: impl Fn(Option<&MasterExport>) -> bool,
) {
    let api = world.api();
    eventually(support::TIMEOUT, what, || async {
        let obj = api.get_opt(name).await.unwrap();
        if let Some(obj) = &obj {
            assert_no_expired_url(obj);
        }
        if let Some(asset) = needed {
            assert_eq!(
                access(world, asset).await,
                "temporary",
                "access revoked while another resource needs it"
            );
        }
        done(obj.as_ref()).then_some(())
    })
    .await
}

async fn events(world: &World, reason: &str) -> Vec<Event> {
    let api: kube::Api<Event> = kube::Api::namespaced(world.client.clone(), &world.namespace);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

async fn downloads(url: &str) -> bool {
    reqwest::get(url)
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn puts(world: &World, asset: &str) -> u64 {
    world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(asset), None)
        .await
        .unwrap()
}

fn ready_with_known_window(obj: Option<&MasterExport>) -> bool {
    obj.is_some_and(|o| {
        is_ready(o)
            && o.status
                .as_ref()
                .and_then(|s| s.master.as_ref())
                .is_some_and(|m| m.url.is_some() && m.expires_at.is_some())
    })
}

#[tokio::test]
async fn two_exports_of_one_asset_share_one_grant_without_fighting() {
    let world = world("share-grant").await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("a", asset_spec(&asset.id)).await.unwrap();
    wait_checking(&world, "a", "a Ready", None, ready_with_known_window).await;
    world.create("b", asset_spec(&asset.id)).await.unwrap();
    wait_checking(
        &world,
        "b",
        "b Ready",
        Some(&asset.id),
        ready_with_known_window,
    )
    .await;

    let a = world.api().get("a").await.unwrap();
    let b = world.api().get("b").await.unwrap();
    assert_eq!(master_url(&a), master_url(&b), "one URL for the asset");
    let window = |o: &MasterExport| o.status.clone().unwrap().master.unwrap().expires_at;
    assert_eq!(window(&a), window(&b), "with one window");
    assert_eq!(puts(&world, &asset.id).await, 1, "one grant, one Mux call");
    assert!(downloads(&master_url(&a).unwrap()).await);
}

#[tokio::test]
async fn deleting_one_of_two_exports_keeps_access_for_the_other() {
    let world = world("share-delete").await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    for name in ["a", "b"] {
        world.create(name, asset_spec(&asset.id)).await.unwrap();
        wait_checking(&world, name, "Ready", None, ready_with_known_window).await;
    }
    world
        .api()
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    wait_checking(&world, "a", "a gone", Some(&asset.id), |o| o.is_none()).await;

    assert_eq!(access(&world, &asset.id).await, "temporary");
    let b = world.api().get("b").await.unwrap();
    assert!(is_ready(&b));
    assert!(
        downloads(&master_url(&b).unwrap()).await,
        "b's URL still works"
    );
    let events = events(&world, "RevokeHeldBack").await;
    assert_eq!(events.len(), 1, "the held-back revoke says so");
    let note = events[0].note.clone().unwrap_or_default();
    assert!(note.contains(&format!("{}/b", world.namespace)), "{note}");

    // The last one out turns the light off.
    world
        .api()
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    wait_checking(&world, "b", "b gone", None, |o| o.is_none()).await;
    assert_eq!(access(&world, &asset.id).await, "none");
}

#[tokio::test]
async fn access_none_on_one_export_is_held_back_while_another_needs_the_url() {
    let world = world("share-none").await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    for name in ["a", "b"] {
        world.create(name, asset_spec(&asset.id)).await.unwrap();
        wait_checking(&world, name, "Ready", None, ready_with_known_window).await;
    }
    world
        .api()
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": "none"}})),
        )
        .await
        .unwrap();
    wait_checking(&world, "a", "a kept for others", Some(&asset.id), |o| {
        o.and_then(|o| condition(o, "Ready"))
            .is_some_and(|(_, reason)| reason == "AccessKeptForOthers")
    })
    .await;
    let a = world.api().get("a").await.unwrap();
    assert_eq!(master_url(&a), None, "a publishes no URL");
    assert_eq!(a.status.as_ref().unwrap().phase, Some(Phase::Revoked));
    let message = a.status.unwrap().conditions[0].message.clone();
    assert!(
        message.contains(&format!("{}/b", world.namespace)),
        "{message}"
    );
    let b = world.api().get("b").await.unwrap();
    assert!(
        downloads(&master_url(&b).unwrap()).await,
        "b's URL still works"
    );

    // b no longer needs it either: now access goes, and a says so.
    world
        .api()
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": "none"}})),
        )
        .await
        .unwrap();
    wait_checking(&world, "a", "a revoked", None, |o| {
        o.and_then(|o| condition(o, "Ready"))
            .is_some_and(|(_, reason)| reason == "AccessRevoked")
    })
    .await;
    assert_eq!(access(&world, &asset.id).await, "none");
}
