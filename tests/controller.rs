//! A MasterExport's life against a real kube-apiserver and etcd, with mux-sim as Mux, the
//! operator running as a real process: ready, refreshed, revoked, deleted, a live stream's
//! recording. Failures are in `controller_failures.rs`, restarts and load in
//! `controller_restarts.rs`.

use testenv::fixtures as support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use mux_sim::content;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::{World, condition, eventually, is_ready, master_url};

fn asset_spec(asset_id: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset_id}, "credentialsSecretRef": {"name": "mux"}})
}

#[tokio::test]
async fn a_master_export_becomes_ready_with_a_url_that_downloads_the_master() {
    let world = World::new("ready", &["--master-prepare-delay", "500ms"], &[]).await;
    let asset = world
        .admin
        .seed_asset(json!({"size": 200_000, "max_resolution_tier": "2160p"}))
        .await
        .unwrap();
    let mut spec = asset_spec(&asset.id);
    spec["urlSecret"] = json!({"filename": "keynote.mp4"});
    world.create("keynote", spec).await.unwrap();

    let ready = world.wait("keynote", "Ready", is_ready).await;
    let status = ready.status.clone().unwrap();
    assert_eq!(
        status.phase,
        Some(mux_master_operator::resource::Phase::Ready)
    );
    assert_eq!(
        status
            .asset
            .as_ref()
            .unwrap()
            .max_resolution_tier
            .as_deref(),
        Some("2160p")
    );
    let master = status.master.clone().unwrap();
    let url = master.url.clone().expect("the URL is in the status");
    assert!(
        url.contains("download=keynote.mp4"),
        "the filename is in the URL"
    );
    let expires = master.expires_at.unwrap().0;
    let requested = master.requested_at.unwrap().0;
    assert_eq!(
        expires.duration_since(requested).as_secs(),
        24 * 3600,
        "24 h from the request"
    );
    assert!(master.refresh_at.unwrap().0 < expires);

    // The Secret holds the same URL, and is owned by the resource.
    let secret = world.secrets().get("keynote-master").await.unwrap();
    let in_secret = String::from_utf8(secret.data.unwrap()["url"].0.clone()).unwrap();
    assert_eq!(in_secret, url);
    assert_eq!(secret.metadata.owner_references.unwrap()[0].name, "keynote");

    // And the URL downloads the master, byte for byte.
    let body = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let seed = world.admin.inspect(&asset.id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        content::sha256_hex(seed, 200_000)
    );
}

async fn refreshes_keep_a_valid_url(sim_args: &[&str]) {
    let world = World::new(
        "refresh",
        sim_args,
        &["--url-lifetime", "6s", "--poll-min", "100ms"],
    )
    .await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let mut spec = asset_spec(&asset.id);
    spec["refreshBefore"] = json!("3s");
    world.create("fresh", spec).await.unwrap();
    let first = world.wait("fresh", "Ready", is_ready).await;
    let first_url = master_url(&first).unwrap();
    let first_expiry = first.status.unwrap().master.unwrap().expires_at.unwrap().0;

    // Watch every state until two refreshes have happened, before the first URL expires.
    let mut urls = vec![first_url];
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let obj = world.api().get("fresh").await.unwrap();
        let master = obj.status.clone().unwrap().master.unwrap();
        if let Some(url) = &master.url {
            let expires = master
                .expires_at
                .clone()
                .expect("a published URL has an expiry")
                .0;
            assert!(
                expires > jiff::Timestamp::now(),
                "the recorded URL is not expired"
            );
            if urls.last() != Some(url) {
                urls.push(url.clone());
            }
            // What the status shows works now (a revoked URL is withdrawn first).
            let head = http.head(url).send().await.unwrap();
            if head.status() != 200 {
                let again = world.api().get("fresh").await.unwrap();
                assert_ne!(
                    master_url(&again).as_deref(),
                    Some(url.as_str()),
                    "a dead URL stayed published"
                );
            }
        }
        if master.refreshes >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "two refreshes within 30 s; saw {}",
            urls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let distinct: std::collections::HashSet<_> = urls.iter().collect();
    assert!(distinct.len() >= 3, "each refresh gave a new URL: {urls:?}");
    assert!(
        jiff::Timestamp::now() < first_expiry + jiff::SignedDuration::from_secs(6),
        "two refreshes happened quickly"
    );
}

#[tokio::test]
async fn refreshes_happen_before_expiry_when_mux_renews_on_a_second_put() {
    refreshes_keep_a_valid_url(&["--master-prepare-delay", "200ms", "--renew-on-repeat"]).await;
}

#[tokio::test]
async fn refreshes_cycle_access_when_mux_returns_the_same_url() {
    refreshes_keep_a_valid_url(&["--master-prepare-delay", "200ms"]).await;
}

#[tokio::test]
async fn access_none_revokes_in_mux() {
    let world = World::new("revoke", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("r", asset_spec(&asset.id)).await.unwrap();
    world.wait("r", "Ready", is_ready).await;
    world
        .api()
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": "none"}})),
        )
        .await
        .unwrap();
    let revoked = world
        .wait("r", "Revoked", |o| {
            o.status.as_ref().and_then(|s| s.phase)
                == Some(mux_master_operator::resource::Phase::Revoked)
        })
        .await;
    assert_eq!(master_url(&revoked), None);
    let sim_state = world.admin.inspect(&asset.id).await.unwrap();
    assert_eq!(sim_state["asset"]["master_access"], "none");
    let secret = world.secrets().get("r-master").await.unwrap();
    assert!(
        !secret.data.unwrap_or_default().contains_key("url"),
        "the URL left the Secret"
    );
}

async fn delete_with_policy(policy: &str) -> serde_json::Value {
    let world = World::new("delete", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let mut spec = asset_spec(&asset.id);
    spec["deletionPolicy"] = json!(policy);
    world.create("d", spec).await.unwrap();
    world.wait("d", "Ready", is_ready).await;
    world
        .api()
        .delete("d", &DeleteParams::default())
        .await
        .unwrap();
    let api = world.api();
    eventually(support::TIMEOUT, "the resource to be gone", || async {
        api.get_opt("d").await.unwrap().is_none().then_some(())
    })
    .await;
    world.admin.inspect(&asset.id).await.unwrap()
}

#[tokio::test]
async fn deletion_with_revoke_turns_access_off() {
    let state = delete_with_policy("Revoke").await;
    assert_eq!(state["asset"]["master_access"], "none");
}

#[tokio::test]
async fn deletion_with_orphan_leaves_access_on() {
    let state = delete_with_policy("Orphan").await;
    assert_eq!(state["asset"]["master_access"], "temporary");
}

#[tokio::test]
async fn an_ended_live_stream_leads_to_its_recordings_master() {
    let world = World::new(
        "live",
        &[
            "--master-prepare-delay",
            "200ms",
            "--asset-prepare-delay",
            "200ms",
        ],
        &["--poll-max", "1s"],
    )
    .await;
    let stream = world.admin.seed_live_stream(json!({})).await.unwrap();
    let active = world.admin.start_live_stream(&stream.id).await.unwrap();
    let recording = active.active_asset_id.unwrap();
    world
        .create(
            "live",
            json!({"source": {"liveStreamId": stream.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    world
        .wait("live", "waiting for the recording", |o| {
            condition(o, "Reconciling").is_some_and(|(_, r)| r == "WaitingForRecording")
        })
        .await;
    assert_eq!(
        world
            .admin
            .count("PUT", MASTER_ACCESS_ROUTE, None, None)
            .await
            .unwrap(),
        0,
        "nothing requested while live"
    );

    world.admin.end_live_stream(&stream.id).await.unwrap();
    let ready = world.wait("live", "Ready", is_ready).await;
    assert_eq!(ready.status.unwrap().asset.unwrap().id, recording);
}
