//! The Mux client against a running mux-sim, over real HTTP on loopback: the wire format,
//! pagination, rate limits, retries and errors. (mux-sim's own behaviour: `tests/mux_sim.rs`.)

mod mux_support;

use futures::TryStreamExt;
use mux::types::{AssetStatus, LiveStreamStatus, MasterAccess, MasterStatus};
use mux::{Credentials, ErrorKind, MuxClients, MuxConfig, Rate};
use mux_sim::admin_client::{ASSET_ROUTE, MASTER_ACCESS_ROUTE};
use serde_json::json;

use mux_support::{TOKEN_ID, TOKEN_SECRET, client, config, start_sim};

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
async fn gateway_errors_with_or_without_retry_after_are_retried_and_a_403_is_not() {
    let (sim, admin) = start_sim(&[]);
    let mux = client(&sim);
    let asset = admin.seed_asset(json!({"size": 10})).await.unwrap();
    let mut answered = 0;
    for (status, retry_after) in [(502, 0), (503, 1), (504, 0)] {
        let fault = json!({"fail_next": 1, "fail_status": status, "fail_retry_after": retry_after});
        admin.configure(fault).await.unwrap();
        mux.get_asset(&asset.id)
            .await
            .unwrap_or_else(|e| panic!("a {status} is retried: {e}"));
        let failed = admin
            .count("GET", ASSET_ROUTE, Some(&asset.id), Some(status))
            .await
            .unwrap();
        assert_eq!(failed, 1, "one {status}, then a success");
        answered += 1;
    }
    let served = admin
        .count("GET", ASSET_ROUTE, Some(&asset.id), Some(200))
        .await
        .unwrap();
    assert_eq!(served, answered);

    // A 403 from the API (a token whose permissions were withdrawn): not retried.
    admin
        .configure(json!({"fail_next": 5, "fail_status": 403}))
        .await
        .unwrap();
    let err = mux.get_asset(&asset.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials, "{err}");
    let refused = admin
        .count("GET", ASSET_ROUTE, Some(&asset.id), Some(403))
        .await
        .unwrap();
    assert_eq!(refused, 1);
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
