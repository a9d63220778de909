//! The Mux client against a running mux-sim, over real HTTP on loopback.

use std::time::Duration;

use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use mux::types::{AssetStatus, LiveStreamStatus, MasterAccess, MasterStatus};
use mux::{Credentials, ErrorKind, MuxClient, MuxClients, MuxConfig, Rate};
use mux_sim::admin_client::{ASSET_ROUTE, MASTER_ACCESS_ROUTE, SimAdmin};
use mux_sim::content;
use serde_json::json;
use sha2::{Digest, Sha256};
use testenv::MuxSim;

const TOKEN_ID: &str = "test-token";
const TOKEN_SECRET: &str = "test-secret";

fn start_sim(args: &[&str]) -> (MuxSim, SimAdmin) {
    let token = format!("{TOKEN_ID}:{TOKEN_SECRET}");
    let mut all = vec!["--token", token.as_str()];
    all.extend_from_slice(args);
    let sim = MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &all)
        .expect("mux-sim starts");
    let admin = SimAdmin::new(sim.url());
    (sim, admin)
}

fn config(sim: &MuxSim) -> MuxConfig {
    MuxConfig {
        base_url: sim.url().parse().unwrap(),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..MuxConfig::default()
    }
}

fn client(sim: &MuxSim) -> MuxClient {
    MuxClients::new(config(sim))
        .unwrap()
        .client(Credentials::new(TOKEN_ID, TOKEN_SECRET))
}

/// Asks `probe` until it answers `Some`, at most `timeout`: waiting by asking, not sleeping.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn every_endpoint_speaks_the_mux_wire_format() {
    let (sim, admin) = start_sim(&[
        "--master-prepare-delay",
        "100ms",
        "--asset-prepare-delay",
        "100ms",
    ]);
    let mux = client(&sim);

    let seeded = admin
        .seed_asset(json!({"size": 4096, "max_resolution_tier": "2160p"}))
        .await
        .unwrap();
    let asset = mux.get_asset(&seeded.id).await.unwrap();
    assert_eq!(asset.status, AssetStatus::Ready);
    assert_eq!(asset.max_resolution_tier.as_deref(), Some("2160p"));
    assert!(
        asset.created_at.is_some(),
        "created_at parsed from a string"
    );
    assert_eq!(
        (asset.master_access, &asset.master),
        (MasterAccess::None, &None)
    );

    let updated = mux
        .update_master_access(&seeded.id, MasterAccess::Temporary)
        .await
        .unwrap();
    assert_eq!(updated.master_access, MasterAccess::Temporary);
    assert_eq!(updated.master_status(), Some(MasterStatus::Preparing));

    let created = mux
        .create_asset(&mux::types::CreateAssetRequest {
            input: vec![mux::types::AssetInput {
                url: "https://example.com/video.mp4".into(),
            }],
            master_access: Some(MasterAccess::Temporary),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.status, AssetStatus::Preparing);
    assert_eq!(
        admin
            .count("POST", "/video/v1/assets", None, Some(201))
            .await
            .unwrap(),
        1
    );

    let stream = admin.seed_live_stream(json!({})).await.unwrap();
    let fetched = mux.get_live_stream(&stream.id).await.unwrap();
    assert_eq!(fetched.status, LiveStreamStatus::Idle);

    let missing = mux.get_asset("doesNotExist").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
}

#[tokio::test]
async fn listing_follows_the_cursor_over_several_pages() {
    let (sim, admin) = start_sim(&[]);
    let mux = client(&sim);
    let mut seeded = Vec::new();
    for _ in 0..7 {
        seeded.push(admin.seed_asset(json!({"size": 10})).await.unwrap().id);
    }
    let listed: Vec<String> = mux
        .list_assets(3)
        .map_ok(|a| a.id)
        .try_collect()
        .await
        .unwrap();
    seeded.reverse(); // Mux lists the newest first.
    assert_eq!(listed, seeded);
    assert_eq!(
        admin
            .count("GET", "/video/v1/assets", None, Some(200))
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn a_client_at_the_configured_rate_never_exceeds_it() {
    // mux-sim allows 5/s with bursts of 10; the client is set to 5/s with bursts of 5.
    let (sim, admin) = start_sim(&[]);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();
    let mux = MuxClients::new(MuxConfig {
        other_rate: Rate::new(5.0, 5),
        ..config(&sim)
    })
    .unwrap();
    // Two handles on the same token share one limiter.
    let (a, b) = (
        mux.client(Credentials::new(TOKEN_ID, TOKEN_SECRET)),
        mux.client(Credentials::new(TOKEN_ID, TOKEN_SECRET)),
    );
    let calls = (0..20).map(|i| {
        let (c, id) = (
            if i % 2 == 0 { a.clone() } else { b.clone() },
            asset.id.clone(),
        );
        async move { c.get_asset(&id).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(
        admin
            .count("GET", ASSET_ROUTE, None, Some(429))
            .await
            .unwrap(),
        0
    );
    let times: Vec<u64> = admin
        .requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.route == ASSET_ROUTE)
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(times.len(), 20);
    // In any one-second window: at most the burst plus one second's worth.
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|t| **t < start + 1000).count();
        assert!(
            in_window <= 10,
            "{in_window} requests within 1 s of {start} ms"
        );
    }
    // 20 requests at 5/s after a burst of 5 take about 3 s: the limiter really waited.
    assert!(
        times.last().unwrap() - times.first().unwrap() >= 2500,
        "{times:?}"
    );
}

#[tokio::test]
async fn a_429_storm_is_absorbed_and_slows_the_client() {
    // The client believes it may send 40/s; mux-sim allows 5/s: a storm of 429s follows.
    let (sim, admin) = start_sim(&["--other-rate", "5", "--other-burst", "5"]);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();
    let mux = MuxClients::new(MuxConfig {
        other_rate: Rate::new(40.0, 40),
        ..config(&sim)
    })
    .unwrap()
    .client(Credentials::new(TOKEN_ID, TOKEN_SECRET));
    let calls = (0..30).map(|_| {
        let (c, id) = (mux.clone(), asset.id.clone());
        async move { c.get_asset(&id).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(
        results.iter().all(Result::is_ok),
        "every request succeeded in the end"
    );
    let throttled = admin
        .count("GET", ASSET_ROUTE, None, Some(429))
        .await
        .unwrap();
    let served = admin
        .count("GET", ASSET_ROUTE, None, Some(200))
        .await
        .unwrap();
    assert_eq!(served, 30);
    assert!(throttled > 0, "the storm happened");
    assert!(
        mux.limiter().other.current_rate() < 40.0,
        "the bucket slowed down"
    );
}

#[tokio::test]
async fn injected_500s_are_retried_and_a_400_is_not() {
    let (sim, admin) = start_sim(&[]);
    let mux = client(&sim);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();

    admin.configure(json!({"fail_next": 2})).await.unwrap();
    mux.get_asset(&asset.id)
        .await
        .expect("the third attempt succeeds");
    assert_eq!(
        admin
            .count("GET", ASSET_ROUTE, Some(&asset.id), Some(500))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        admin
            .count("GET", ASSET_ROUTE, Some(&asset.id), Some(200))
            .await
            .unwrap(),
        1
    );

    admin.error_asset(&asset.id).await.unwrap();
    let err = mux
        .update_master_access(&asset.id, MasterAccess::Temporary)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
    assert_eq!(
        admin
            .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn malformed_bodies_and_dropped_connections_are_retried() {
    let (sim, admin) = start_sim(&[]);
    let mux = client(&sim);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();
    admin
        .configure(json!({"malformed_rate": 1.0}))
        .await
        .unwrap();
    let err = mux.get_asset(&asset.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RetryLater, "{err}");
    assert_eq!(
        admin
            .count("GET", ASSET_ROUTE, None, Some(200))
            .await
            .unwrap(),
        5,
        "1 + 4 retries"
    );

    admin
        .configure(json!({"malformed_rate": 0.0, "drop_rate": 1.0}))
        .await
        .unwrap();
    let err = mux.get_asset(&asset.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RetryLater, "{err}");
    assert_eq!(
        admin
            .count("GET", ASSET_ROUTE, None, Some(0))
            .await
            .unwrap(),
        5
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_credentials_error() {
    let (sim, _admin) = start_sim(&[]);
    let mux = MuxClients::new(config(&sim))
        .unwrap()
        .client(Credentials::new(TOKEN_ID, "wrong"));
    let err = mux.get_asset("anything").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials, "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "the secret is not in the message"
    );
}

#[tokio::test]
async fn the_master_goes_preparing_ready_then_expires_with_a_403() {
    let (sim, admin) = start_sim(&["--master-prepare-delay", "200ms", "--url-lifetime", "2s"]);
    let mux = client(&sim);
    let size = 300_000u64;
    let asset = admin.seed_asset(json!({"size": size})).await.unwrap();
    let seed = admin.inspect(&asset.id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();

    let preparing = mux
        .update_master_access(&asset.id, MasterAccess::Temporary)
        .await
        .unwrap();
    assert_eq!(preparing.master_status(), Some(MasterStatus::Preparing));
    let url = eventually(Duration::from_secs(5), "the master to be ready", || async {
        mux.get_asset(&asset.id)
            .await
            .unwrap()
            .master_url()
            .cloned()
    })
    .await;

    let http = reqwest::Client::new();
    let body = http
        .get(url.expose())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len() as u64, size);
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        content::sha256_hex(seed, size)
    );

    eventually(Duration::from_secs(5), "the URL to expire", || async {
        let asset = mux.get_asset(&asset.id).await.unwrap();
        (asset.master.is_none() && asset.master_access == MasterAccess::None).then_some(())
    })
    .await;
    let expired = http.get(url.expose()).send().await.unwrap();
    assert_eq!(expired.status(), 403);
}

#[tokio::test]
async fn the_master_answers_head_and_range() {
    let (sim, admin) = start_sim(&["--master-prepare-delay", "0s"]);
    let mux = client(&sim);
    let asset = admin
        .seed_asset(json!({"size": 10_000, "master_access": "temporary"}))
        .await
        .unwrap();
    let seed = admin.inspect(&asset.id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();
    let url = mux
        .get_asset(&asset.id)
        .await
        .unwrap()
        .master_url()
        .cloned()
        .expect("ready at once");
    let http = reqwest::Client::new();

    let head = http.head(url.expose()).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "10000");
    assert_eq!(head.headers()["accept-ranges"], "bytes");

    let part = http
        .get(url.expose())
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/10000");
    let mut expected = vec![0u8; 100];
    content::fill(seed, 100, &mut expected);
    assert_eq!(part.bytes().await.unwrap().as_ref(), expected.as_slice());

    let beyond = http
        .get(url.expose())
        .header("Range", "bytes=10000-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);

    let mut forged = url.expose().to_string();
    forged.pop();
    assert_eq!(http.get(&forged).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_recorded_live_stream_gets_its_master() {
    let (sim, admin) = start_sim(&[
        "--master-prepare-delay",
        "100ms",
        "--asset-prepare-delay",
        "100ms",
    ]);
    let mux = client(&sim);
    let stream = admin
        .seed_live_stream(json!({"new_asset_settings": {"master_access": "temporary"}}))
        .await
        .unwrap();
    let active = admin.start_live_stream(&stream.id).await.unwrap();
    let recording = active.active_asset_id.expect("an asset records the stream");
    let live = mux.get_asset(&recording).await.unwrap();
    assert_eq!(
        (live.is_live, live.status),
        (Some(true), AssetStatus::Preparing)
    );
    assert_eq!(live.master_status(), Some(MasterStatus::Preparing));

    admin.end_live_stream(&stream.id).await.unwrap();
    let idle = mux.get_live_stream(&stream.id).await.unwrap();
    assert_eq!(idle.status, LiveStreamStatus::Idle);
    assert_eq!(idle.recent_asset_ids.last(), Some(&recording));
    eventually(Duration::from_secs(5), "the recording's master", || async {
        mux.get_asset(&recording)
            .await
            .unwrap()
            .master_url()
            .cloned()
    })
    .await;
}

/// Receives webhook deliveries: (Mux-Signature header, raw body).
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let signature = headers
                    .get("mux-signature")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                tx.send((signature, body.to_vec())).unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

/// The documented algorithm, written here independently of the code under test.
fn documented_signature_matches(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1s = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_string()),
            Some(("v1", value)) => v1s.push(value.to_string()),
            _ => {}
        }
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", t.expect("a timestamp")).as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    v1s.contains(&expected)
}

#[tokio::test]
async fn webhooks_are_signed_as_mux_documents() {
    let (hook_url, mut deliveries) = webhook_receiver().await;
    let (sim, admin) = start_sim(&[
        "--webhook-url",
        &hook_url,
        "--webhook-secret",
        "whsec-test",
        "--master-prepare-delay",
        "100ms",
    ]);
    let mux = client(&sim);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();
    mux.update_master_access(&asset.id, MasterAccess::Temporary)
        .await
        .unwrap();

    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "video.asset.master.ready") {
        let (header, body) = tokio::time::timeout(Duration::from_secs(5), deliveries.recv())
            .await
            .expect("a delivery within 5 s")
            .unwrap();
        assert!(
            documented_signature_matches("whsec-test", &header, &body),
            "{header}"
        );
        let mut tampered = body.clone();
        tampered[0] ^= 1;
        assert!(!documented_signature_matches(
            "whsec-test",
            &header,
            &tampered
        ));
        assert!(!documented_signature_matches(
            "another-secret",
            &header,
            &body
        ));
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if event["object"]["id"] == asset.id.as_str() {
            // In webhooks created_at is a number, as Mux sends it.
            assert!(event["data"]["created_at"].is_number(), "{event}");
            kinds.push(event["type"].as_str().unwrap().to_string());
        }
    }
    assert!(
        kinds.contains(&"video.asset.master.preparing".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn mux_sim_announces_its_address_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(testenv::bins::mux_sim().expect("mux-sim's binary"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("mux-sim listening on ")
        .expect("the first line gives the address");
    assert!(healthz_answers(url), "it serves at the address it gave");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends it with success: {status:?}");
}

/// A GET of `/_sim/healthz` over a plain socket (this test has no async runtime).
fn healthz_answers(base: &str) -> bool {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /_sim/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.starts_with("HTTP/1.1 200")
}
