//! What a new export's URL grant costs in Mux calls (issue 15): its first call is the PUT
//! (no GET before it), and without webhooks its first look at the preparing master comes
//! when masters have been seen to be ready. Operator and mux-sim as real processes.

use testenv::fixtures as support;

use mux_sim::admin_client::ASSET_ROUTE;
use mux_sim::stats::LoggedRequest;
use serde_json::json;
use support::{World, is_ready, master_url};

fn spec(asset: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset}, "credentialsSecretRef": {"name": "mux"}})
}

/// The Mux API calls about `asset`, in order, as (method, route).
fn calls_on<'a>(log: &'a [LoggedRequest], asset: &str) -> Vec<&'a LoggedRequest> {
    log.iter()
        .filter(|r| r.route.starts_with("/video/") && r.id.as_deref() == Some(asset))
        .collect()
}

#[tokio::test]
async fn with_webhooks_a_new_exports_grant_is_one_put_and_no_get() {
    let world = World::new(
        "calls-hooks",
        &[
            "--master-prepare-delay",
            "2s",
            "--webhook-secret",
            "whsec-sim",
        ],
        &[
            "--webhook-addr",
            "127.0.0.1:0",
            "--webhook-secrets",
            "whsec-sim",
            "--webhook-poll-interval",
            "10m",
        ],
    )
    .await;
    world.deliver_webhooks_to_operator().await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("one-put", spec(&asset.id)).await.unwrap();
    let ready = world.wait("one-put", "Ready", is_ready).await;
    assert!(master_url(&ready).is_some());

    let log = world.admin.requests().await.unwrap();
    let calls = calls_on(&log, &asset.id);
    let methods: Vec<&str> = calls.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["PUT"],
        "the grant is the PUT alone: its answer is the asset, the webhook brings the URL"
    );
}

#[tokio::test]
async fn without_webhooks_a_new_exports_grant_is_a_put_and_one_get_once_a_preparation_was_seen() {
    let world = World::new(
        "calls-polls",
        &[
            "--master-prepare-delay",
            "3s",
            "--webhooks-enabled",
            "false",
        ],
        &[],
    )
    .await;
    // The first export teaches the operator how long a master takes: its polls follow the
    // usual schedule (1 s, then 1 s apart), the last two bracket the preparation.
    let first = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world.create("teacher", spec(&first.id)).await.unwrap();
    world.wait("teacher", "Ready", is_ready).await;
    let log = world.admin.requests().await.unwrap();
    let taught = calls_on(&log, &first.id);
    assert_eq!(taught[0].method, "PUT", "the first call is the PUT");
    assert!(
        taught.len() >= 3,
        "{} calls: polls bracketed it",
        taught.len()
    );

    // The next ones look once, at the expected time, and find their masters ready.
    let assets = world.seed_assets(4, json!({"size": 1000})).await;
    for (i, asset) in assets.iter().enumerate() {
        world
            .create(&format!("learnt{i}"), spec(asset))
            .await
            .unwrap();
    }
    for i in 0..assets.len() {
        world.wait(&format!("learnt{i}"), "Ready", is_ready).await;
    }
    let log = world.admin.requests().await.unwrap();
    for asset in &assets {
        let methods: Vec<&str> = calls_on(&log, asset)
            .iter()
            .map(|r| r.method.as_str())
            .collect();
        assert_eq!(methods, ["PUT", "GET"], "asset {asset}: one PUT, one look");
    }
    let gets = log
        .iter()
        .filter(|r| r.method == "GET" && r.route == ASSET_ROUTE)
        .count();
    eprintln!(
        "teacher: {} calls; 4 learnt exports: {} calls; GETs in all: {gets}",
        taught.len(),
        assets
            .iter()
            .map(|a| calls_on(&log, a).len())
            .sum::<usize>()
    );
}

#[tokio::test]
async fn without_webhooks_a_batch_created_together_waits_for_its_first_preparation_to_be_timed() {
    let world = World::new(
        "calls-batch",
        &[
            "--master-prepare-delay",
            "3s",
            "--webhooks-enabled",
            "false",
        ],
        &[],
    )
    .await;
    // Nothing learnt yet, all requested within a second or two: one master leads (usual
    // schedule: polls 1 s apart bracket its 3 s), the others wait until it is timed, then
    // look once. On the usual schedule each would poll at 1 s and 2 s before finding it ready.
    const BATCH: usize = 12;
    let assets = world.seed_assets(BATCH, json!({"size": 1000})).await;
    for (i, asset) in assets.iter().enumerate() {
        world.create(&format!("b{i}"), spec(asset)).await.unwrap();
    }
    for i in 0..BATCH {
        world.wait(&format!("b{i}"), "Ready", is_ready).await;
    }
    let log = world.admin.requests().await.unwrap();
    let per_asset: Vec<Vec<&str>> = assets
        .iter()
        .map(|a| {
            calls_on(&log, a)
                .iter()
                .map(|r| r.method.as_str())
                .collect()
        })
        .collect();
    eprintln!("calls per asset: {per_asset:?}");
    assert!(per_asset.iter().all(|m| m.first() == Some(&"PUT")));
    let one_look = per_asset.iter().filter(|m| *m == &["PUT", "GET"]).count();
    assert!(
        one_look >= BATCH - 1,
        "all but the leader look once: {per_asset:?}"
    );
}

#[tokio::test]
async fn a_master_someone_else_made_temporary_is_renewed_before_its_window_is_trusted() {
    let world = World::new("calls-foreign", &["--master-prepare-delay", "300ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    // Someone else turns master access on, outside the operator: the URL's window is theirs.
    let mux = mux::MuxClients::new(mux::MuxConfig {
        base_url: world.sim.url().parse().unwrap(),
        ..mux::MuxConfig::default()
    })
    .unwrap()
    .client(mux::Credentials::new(
        support::TOKEN_ID,
        support::TOKEN_SECRET,
    ));
    mux.update_master_access(&asset.id, mux::types::MasterAccess::Temporary)
        .await
        .unwrap();
    let foreign = support::eventually(support::TIMEOUT, "the foreign URL", || async {
        mux.get_asset(&asset.id)
            .await
            .ok()
            .and_then(|a| a.master_url().map(|u| u.expose().to_string()))
    })
    .await;
    let before = world.admin.requests().await.unwrap().len();

    world.create("late", spec(&asset.id)).await.unwrap();
    // The first PUT's answer shows the foreign URL ready: not provably ours, so it is renewed
    // (mux-sim keeps the URL on a second PUT: access is cycled none → temporary).
    let renewed = world
        .wait("late", "Ready with a URL of a known window", |o| {
            is_ready(o)
                && master_url(o).is_some_and(|u| u != foreign)
                && o.status
                    .as_ref()
                    .and_then(|s| s.master.as_ref())
                    .is_some_and(|m| m.expires_at.is_some() && m.requested_at.is_some())
        })
        .await;
    let log = world.admin.requests().await.unwrap();
    let ours = &log[before..];
    let puts = calls_on(ours, &asset.id)
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(
        puts, 4,
        "first request, renewal, then none and temporary again"
    );
    let master = renewed.status.unwrap().master.unwrap();
    assert!(master.refreshes >= 1, "the fresh URL counts as a refresh");
}
