//! Mux webhooks: the endpoint's verification (with signatures computed here, from the
//! documented algorithm, not by the code under test), and the operator woken by mux-sim's
//! deliveries.

use testenv::fixtures as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use mux_master_operator::metrics::Metrics;
use mux_master_operator::webhooks::{self, WebhookConfig};
use mux_sim::admin_client::ASSET_ROUTE;
use serde_json::json;
use sha2::Sha256;
use support::{World, condition, is_ready, master_url};

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Mux documents it.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

const BODY: &str = r#"{"type":"video.asset.master.ready","object":{"type":"asset","id":"a1"},"id":"e1","data":{"id":"a1","status":"ready"},"created_at":"2026-11-21T00:00:00Z","attempts":[]}"#;

/// The endpoint on a real socket, with what its sink received.
async fn endpoint(secrets: &[&str]) -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink_log = received.clone();
    let sink: webhooks::EventSink =
        Arc::new(move |event, _| sink_log.lock().unwrap().push(event.kind.clone()));
    let config = WebhookConfig {
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        tolerance: Duration::from_secs(300),
        max_body: 64 * 1024,
    };
    let router = webhooks::router(config, Metrics::default(), sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}{}",
        listener.local_addr().unwrap(),
        webhooks::PATH
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

async fn post(url: &str, signature: Option<String>, body: Vec<u8>) -> u16 {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(signature) = signature {
        request = request.header("Mux-Signature", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_endpoint_accepts_only_what_mux_signed_recently() {
    let (url, received) = endpoint(&["whsec"]).await;
    let body = BODY.as_bytes().to_vec();

    assert_eq!(
        post(&url, Some(sign("whsec", now(), &body)), body.clone()).await,
        200,
        "accepted"
    );
    assert_eq!(
        post(&url, Some(sign("other", now(), &body)), body.clone()).await,
        401,
        "wrong secret"
    );
    let mut changed = body.clone();
    changed[10] ^= 1;
    assert_eq!(
        post(&url, Some(sign("whsec", now(), &body)), changed).await,
        401,
        "one byte changed"
    );
    assert_eq!(
        post(&url, Some(sign("whsec", now() - 600, &body)), body.clone()).await,
        401,
        "stale"
    );
    assert_eq!(
        post(&url, Some(sign("whsec", now() + 600, &body)), body.clone()).await,
        401,
        "far future"
    );
    assert_eq!(post(&url, None, body.clone()).await, 400, "missing header");
    assert_eq!(
        post(&url, Some("garbage".into()), body.clone()).await,
        400,
        "malformed header"
    );
    let huge = vec![b' '; 1 << 20];
    assert_eq!(
        post(&url, Some(sign("whsec", now(), &huge)), huge).await,
        413,
        "oversized"
    );
    let not_json = b"hello".to_vec();
    assert_eq!(
        post(&url, Some(sign("whsec", now(), &not_json)), not_json).await,
        400,
        "not an event"
    );

    assert_eq!(
        received.lock().unwrap().as_slice(),
        ["video.asset.master.ready"],
        "only the good one got through"
    );
}

#[tokio::test]
async fn rotated_secrets_are_all_accepted() {
    let (url, received) = endpoint(&["old", "new"]).await;
    let body = BODY.as_bytes().to_vec();
    assert_eq!(
        post(&url, Some(sign("old", now(), &body)), body.clone()).await,
        200
    );
    assert_eq!(
        post(&url, Some(sign("new", now(), &body)), body.clone()).await,
        200
    );
    // Mux sends one v1 per active secret during a rotation.
    let t = now();
    let old = sign("unknown", t, &body);
    let new = sign("new", t, &body);
    let both = format!("{old},v1={}", new.split("v1=").nth(1).unwrap());
    assert_eq!(post(&url, Some(both), body.clone()).await, 200);
    assert_eq!(received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_webhook_puts_the_url_in_the_status_within_a_second_with_few_polls() {
    let world = World::new(
        "hooks",
        &[
            "--master-prepare-delay",
            "3s",
            "--webhook-secret",
            "whsec-sim",
        ],
        &[
            "--webhook-addr",
            "127.0.0.1:0",
            "--webhook-secrets",
            "whsec-sim",
        ],
    )
    .await;
    world.deliver_webhooks_to_operator().await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "hooked",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();

    // Watch closely for the URL, and note when it shows.
    let api = world.api();
    let seen_at = support::eventually(support::TIMEOUT, "the URL in the status", || async {
        let obj = api.get("hooked").await.ok()?;
        master_url(&obj).map(|_| jiff::Timestamp::now().as_millisecond())
    })
    .await;
    let sim = world.admin.inspect(&asset.id).await.unwrap();
    let ready_unix_ms = sim["master_ready_unix_ms"]
        .as_i64()
        .expect("the master is ready");
    let latency_ms = seen_at - ready_unix_ms;
    assert!(
        latency_ms < 1000,
        "the URL took {latency_ms} ms to reach the status after Mux's ready"
    );

    // GETs of the asset while the master was preparing (between the PUT and ready).
    let ready_at_ms = sim["master_ready_at_ms"].as_u64().unwrap();
    let log = world.admin.requests().await.unwrap();
    let put_at = log
        .iter()
        .find(|r| r.method == "PUT" && r.id.as_deref() == Some(asset.id.as_str()))
        .expect("a PUT")
        .at_ms;
    let polls = log
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.route == ASSET_ROUTE
                && r.id.as_deref() == Some(asset.id.as_str())
        })
        .filter(|r| r.at_ms >= put_at && r.at_ms <= ready_at_ms + 1000)
        .count();
    eprintln!("webhook → status: {latency_ms} ms; GETs while preparing: {polls}");
    assert!(polls <= 2, "{polls} GETs while the master prepared");
}

#[tokio::test]
async fn without_webhook_deliveries_polling_still_gets_there() {
    let world = World::new(
        "nohooks",
        &[
            "--master-prepare-delay",
            "1s",
            "--webhooks-enabled",
            "false",
        ],
        &[
            "--webhook-addr",
            "127.0.0.1:0",
            "--webhook-secrets",
            "whsec-sim",
            "--webhook-poll-interval",
            "2s",
        ],
    )
    .await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let started = Instant::now();
    world
        .create(
            "polled",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world.wait("polled", "Ready by polling", is_ready).await;
    assert!(condition(&ready, "Ready").is_some());
    assert!(started.elapsed() < Duration::from_secs(30));
    let deliveries = world.admin.deliveries().await.unwrap();
    assert_eq!(
        deliveries["deliveries"].as_array().unwrap().len(),
        0,
        "no webhook was sent"
    );
}

#[tokio::test]
async fn a_webhook_driven_grant_takes_the_url_from_the_event_without_a_get() {
    // Every event delivered twice; fallback polls far apart, so only the webhook can bring
    // the URL within the test's time.
    let world = World::new(
        "hookdata",
        &[
            "--master-prepare-delay",
            "2s",
            "--webhook-secret",
            "whsec-sim",
            "--webhook-duplicate",
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
    world
        .create(
            "fromevent",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world
        .wait("fromevent", "Ready with the webhook's URL", is_ready)
        .await;
    let sim = world.admin.inspect(&asset.id).await.unwrap();
    assert!(
        sim["master_ready_unix_ms"].as_i64().is_some(),
        "ready at Mux"
    );

    let log = world.admin.requests().await.unwrap();
    let of_asset: Vec<_> = log
        .iter()
        .filter(|r| r.id.as_deref() == Some(asset.id.as_str()))
        .collect();
    let put_at = of_asset
        .iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT")
        .at_ms;
    let gets_after_put = of_asset
        .iter()
        .filter(|r| r.method == "GET" && r.route == ASSET_ROUTE && r.at_ms >= put_at)
        .count();
    assert_eq!(
        gets_after_put, 0,
        "the master.ready event (sent twice) carried the asset: no GET after the PUT"
    );
    assert_eq!(
        of_asset.len(),
        1,
        "the PUT alone for the grant (a new export makes no GET before it)"
    );
    assert!(master_url(&ready).is_some());
    let secret = world.secrets().get("fromevent-master").await.unwrap();
    assert_eq!(
        secret.data.unwrap()["url"].0,
        master_url(&ready).unwrap().into_bytes()
    );
}
