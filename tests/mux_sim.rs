//! mux-sim on the wire, as the operator meets it: the master's lifecycle and its file (HEAD,
//! Range, 403 once expired), recordings of live streams, webhooks signed as Mux documents, and
//! the binary's start and stop.

mod mux_support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use mux::types::{AssetStatus, LiveStreamStatus, MasterAccess, MasterStatus};
use mux_sim::content;
use serde_json::json;
use sha2::{Digest, Sha256};
use testenv::fixtures::eventually;

use mux_support::{client, start_sim};

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
    content::fill(seed, 10_000, 100, &mut expected);
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
async fn the_master_is_an_mp4_with_validators_that_if_range_honours() {
    let (_sim, admin) = start_sim(&["--master-prepare-delay", "0s", "--master-validators"]);
    let master = admin
        .ready_master(10_000, Duration::from_secs(10))
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let whole = http.get(&master.url).send().await.unwrap();
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert!(!etag.starts_with("W/"), "a strong ETag: {etag}");
    assert!(whole.headers().contains_key("last-modified"));
    let body = whole.bytes().await.unwrap();
    assert_eq!((&body[4..8], &body[36..40]), (&b"ftyp"[..], &b"mdat"[..]));
    let moov = 10_000 - 116;
    assert_eq!(&body[moov + 4..moov + 8], b"moov");
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        content::sha256_hex(master.seed, 10_000)
    );

    let ranged = |if_range: &str| {
        http.get(&master.url)
            .header("Range", "bytes=100-")
            .header("If-Range", if_range)
            .send()
    };
    assert_eq!(ranged(&etag).await.unwrap().status(), 206);
    let stale = ranged("\"another-version\"").await.unwrap();
    assert_eq!(stale.status(), 200, "a stale validator gets the whole file");
    assert_eq!(stale.bytes().await.unwrap().len(), 10_000);
}

#[tokio::test]
async fn unmatched_routes_and_wrong_methods_answer_with_mux_s_error_envelope() {
    let (sim, _admin) = start_sim(&[]);
    let http = reqwest::Client::new();
    let unknown = http
        .get(format!("{}/video/v1/nothing-here", sim.url()))
        .send()
        .await
        .unwrap();
    let wrong = http
        .delete(format!("{}/video/v1/assets", sim.url()))
        .send()
        .await
        .unwrap();
    for (response, status, kind) in [
        (unknown, 404, "not_found"),
        (wrong, 405, "method_not_allowed"),
    ] {
        assert_eq!(response.status(), status);
        assert!(response.headers().contains_key("x-request-id"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(body["error"]["messages"][0].is_string(), "{body}");
    }
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
