//! The operator as a process that restarts, serves its metrics, and works under a saturated
//! Mux rate limit: restarts cost no second PUT and no Mux call for fresh exports, and an
//! expired URL is withdrawn even while every worker waits on Mux.

use testenv::fixtures as support;

use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use serde_json::json;
use support::{World, condition, eventually, is_ready, master_url};

fn asset_spec(asset_id: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset_id}, "credentialsSecretRef": {"name": "mux"}})
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
    // The sweeper writes the Secret right after the status (the status first, conditionally: see
    // `withdraw_if_unchanged`): the URL leaves the Secret as promptly.
    let secrets = world.secrets();
    let out_of_secret_at = eventually(
        support::TIMEOUT,
        "the expired URL out of the Secret",
        || async {
            let secret = secrets.get("early-master").await.ok()?;
            let holds_url = secret.data.unwrap_or_default().contains_key("url");
            (!holds_url).then(jiff::Timestamp::now)
        },
    )
    .await;
    let late = out_of_secret_at.duration_since(expires).as_secs_f64();
    assert!(late < 2.0, "out of the Secret {late:.2} s after expiry");
}
