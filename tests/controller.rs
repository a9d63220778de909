//! The controller against a real kube-apiserver and etcd, with mux-sim as Mux, the operator
//! running as a real process.

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
async fn a_restarted_operator_converges_without_a_second_put() {
    let mut world = World::new("restart", &["--master-prepare-delay", "3s"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("crash", asset_spec(&asset.id)).await.unwrap();
    // Kill it while Mux prepares the master the operator asked for.
    world
        .wait("crash", "preparing", |o| {
            condition(o, "Reconciling").is_some_and(|(_, r)| r == "MasterPreparing")
        })
        .await;
    world.operator.as_mut().unwrap().kill();
    world.start_operator();
    world
        .wait("crash", "Ready after the restart", is_ready)
        .await;
    let puts = world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(puts, 1, "exactly one PUT master-access");
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

#[tokio::test]
async fn the_operator_serves_metrics_and_health() {
    let world = World::new("metrics", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("m", asset_spec(&asset.id)).await.unwrap();
    world.wait("m", "Ready", is_ready).await;
    let addr = world.operator.as_ref().unwrap().metrics_addr().await;
    let base = format!("http://{addr}");
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "mux_master_operator_reconciles_total{result=\"success\"}",
        "mux_master_operator_mux_requests_total{endpoint=\"update_master_access\",code=\"200\"}",
        &format!(
            "mux_master_operator_url_expires_in_seconds{{namespace=\"{}\",name=\"m\"}}",
            world.namespace
        ),
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains("signature="), "no URL in metrics");
}

#[tokio::test]
async fn a_restart_costs_no_mux_call_for_fresh_exports() {
    let mut world = World::new("warm-restart", &["--master-prepare-delay", "200ms"], &[]).await;
    let mut names = Vec::new();
    for i in 0..5 {
        let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
        let name = format!("warm-{i}");
        world.create(&name, asset_spec(&asset.id)).await.unwrap();
        names.push(name);
    }
    for name in &names {
        world.wait(name, "Ready", is_ready).await;
    }
    world.operator.as_mut().unwrap().kill();
    reqwest::Client::new()
        .delete(format!("{}/_sim/stats", world.sim.url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    world.start_operator();

    // Wait until the new operator has reconciled all five (its own count says so)...
    let addr = world.operator.as_ref().unwrap().metrics_addr().await;
    eventually(
        support::TIMEOUT,
        "five reconciles after the restart",
        || async {
            let text = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let count = text
                .lines()
                .find(|l| {
                    l.starts_with("mux_master_operator_reconciles_total{result=\"success\"}")
                })?
                .rsplit(' ')
                .next()?
                .parse::<f64>()
                .ok()?;
            (count >= 5.0).then_some(())
        },
    )
    .await;
    // ...and Mux was not asked anything: their status said fresh until the refresh time.
    let stats = world.admin.stats().await.unwrap();
    let mux_calls: u64 = stats
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .map(|r| r.count)
        .sum();
    assert_eq!(mux_calls, 0, "{stats:?}");
}

#[tokio::test]
async fn an_expired_url_is_withdrawn_even_while_every_worker_waits_on_mux() {
    // One worker, URLs living 6 s: once Mux turns slow, the worker is stuck on another
    // resource's call when this URL expires; only the expiry sweeper can withdraw it in time.
    let world = World::new(
        "sweeper",
        &["--master-prepare-delay", "100ms"],
        &["--concurrency", "1", "--url-lifetime", "6s"],
    )
    .await;
    let first = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let mut spec = asset_spec(&first.id);
    spec["refreshBefore"] = json!("3s");
    world.create("early", spec).await.unwrap();
    let ready = world.wait("early", "Ready", is_ready).await;
    let expires = ready.status.unwrap().master.unwrap().expires_at.unwrap().0;

    world
        .admin
        .configure(json!({"latency_ms": 20_000}))
        .await
        .unwrap();
    let second = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create("blocker", asset_spec(&second.id))
        .await
        .unwrap();

    let api = world.api();
    let withdrawn_at = eventually(
        support::TIMEOUT,
        "the expired URL to be withdrawn",
        || async {
            let obj = api.get("early").await.ok()?;
            match master_url(&obj) {
                Some(_) => {
                    let status = obj.status.unwrap().master.unwrap();
                    assert!(
                        status.expires_at.unwrap().0 > jiff::Timestamp::now(),
                        "an expired URL is published"
                    );
                    None
                }
                None => Some(jiff::Timestamp::now()),
            }
        },
    )
    .await;
    let late = withdrawn_at.duration_since(expires).as_secs_f64();
    assert!(late < 2.0, "withdrawn {late:.2} s after expiry");
    let secret = world.secrets().get("early-master").await.unwrap();
    assert!(
        !secret.data.unwrap_or_default().contains_key("url"),
        "and out of the Secret"
    );
}
