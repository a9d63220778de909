//! Copy progress: while a copy Job runs, its MasterExport's `status.copy.progress` shows bytes
//! done, the total and the rate, read from the copier's log (the pod has no API token), and
//! the set's `status.copying` sums them; both go once the copies are verified. Needs the real
//! node (a played node has no pod logs).

use testenv::fixtures as support;

use std::time::{Duration, Instant};

use mux_master_operator::resource::{CopyPhase, MasterExport, Phase};
use serde_json::json;
use support::World;
use support::exportset::{children, create_set, install_set_crd, run_copy_jobs, sets};
use support::kubelet;
use testenv::Minio;

const SIZE: u64 = 8 * 1024 * 1024 + 11;

fn running_progress(child: &MasterExport) -> Option<(u64, Option<u64>, u64)> {
    let copy = child.status.as_ref()?.copy.as_ref()?;
    let p = copy
        .progress
        .as_ref()
        .filter(|_| copy.phase == CopyPhase::Running)?;
    Some((p.bytes_done, p.bytes_total, p.bytes_per_second))
}

#[tokio::test]
async fn a_running_copy_shows_its_progress_and_the_set_sums_it() {
    if !kubelet::is_real() {
        eprintln!("skipped: copy progress is read from pod logs, which only the real node has");
        return;
    }
    // The master grows for 30 s after it is ready: the copy follows it, bytes trickling in.
    let world = World::new(
        "set-progress",
        &[
            "--master-prepare-delay",
            "200ms",
            "--growth",
            "30s",
            "--growth-initial-fraction",
            "0.5",
        ],
        &["--poll-min", "100ms"],
    )
    .await;
    install_set_crd(&world.client).await;
    let minio = Minio::shared().expect("MinIO starts");
    world.minio_credentials("archive", minio).await;
    for _ in 0..2 {
        world.admin.seed_asset(json!({"size": SIZE})).await.unwrap();
    }
    run_copy_jobs(&world, 2);
    let prefix = world.namespace.clone();
    create_set(
        &world,
        "env",
        json!({
            "credentialsSecretRef": {"name": "mux"},
            "maxInFlight": 2,
            "template": {"destination": {
                "url": format!("s3://{}/{prefix}/{{assetId}}.mp4", minio.bucket()),
                "endpoint": minio.endpoint(),
                "pathStyle": true,
                "credentialsSecretRef": {"name": "archive"},
            }},
        }),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let deadline = Duration::from_secs(300);
    let mut seen: Vec<(u64, Option<u64>, u64)> = Vec::new();
    let mut set_seen = Vec::new();
    loop {
        let set = sets(&world).get("env").await.unwrap();
        let kids = children(&world, &set).await;
        for child in kids.values() {
            if let Some(p) = running_progress(child) {
                assert!(p.0 <= SIZE, "more bytes done than the master has: {p:?}");
                assert!(p.1.is_none_or(|t| t <= SIZE && t >= p.0), "{p:?}");
                seen.push(p);
            }
        }
        if let Some(copying) = set.status.as_ref().and_then(|s| s.copying.clone()) {
            assert!(copying.copies >= 1 && copying.copies <= 2, "{copying:?}");
            set_seen.push(copying);
        }
        let all_copied = kids.len() == 2
            && kids
                .values()
                .all(|c| c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Copied));
        if all_copied {
            break;
        }
        assert!(started.elapsed() < deadline, "not copied in {deadline:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut gets = Vec::new();
    for child in children(&world, &sets(&world).get("env").await.unwrap())
        .await
        .values()
    {
        let id = child.spec.source.asset_id.clone().unwrap();
        gets.push(
            world
                .admin
                .count("GET", mux_sim::admin_client::ASSET_ROUTE, Some(&id), None)
                .await
                .unwrap(),
        );
    }
    eprintln!(
        "GETs of each asset at mux-sim: {gets:?}, in {:?}",
        started.elapsed()
    );
    // Reading progress costs no Mux call: the copies ran over 30 s (the master grew that
    // long), which at one poll per 5 s would be 6 GETs per asset on top of the prepare polls.
    assert!(gets.iter().all(|n| *n <= 6), "GETs of each asset: {gets:?}");
    eprintln!(
        "progress seen {} times: bytes done {}..{}, rates {:?} B/s; the set's sums seen {} times",
        seen.len(),
        seen.iter().map(|p| p.0).min().unwrap_or(0),
        seen.iter().map(|p| p.0).max().unwrap_or(0),
        seen.iter().map(|p| p.2).max(),
        set_seen.len()
    );
    // Progress was shown while the copies ran, moving forward, with a rate and (from the
    // source's length) a total.
    assert!(seen.len() >= 2, "progress seen {} times", seen.len());
    let least = seen.iter().map(|p| p.0).min().unwrap();
    let most = seen.iter().map(|p| p.0).max().unwrap();
    assert!(
        least > 0 && most > least,
        "bytes done did not move: {seen:?}"
    );
    assert!(seen.iter().any(|p| p.2 > 0), "no rate: {seen:?}");
    assert!(seen.iter().any(|p| p.1.is_some()), "no total: {seen:?}");
    // The set summed its children's.
    assert!(
        set_seen
            .iter()
            .any(|c| c.bytes_done > 0 && c.bytes_per_second > 0),
        "the set showed no progress: {set_seen:?}"
    );
    // Once verified, the progress goes (the copy's size says it all), from the set too.
    support::eventually(support::TIMEOUT, "the set's copying cleared", || async {
        let set = sets(&world).get("env").await.ok()?;
        let kids = children(&world, &set).await;
        let clear = kids.values().all(|c| {
            let copy = c.status.as_ref().and_then(|s| s.copy.as_ref());
            copy.is_some_and(|copy| copy.progress.is_none())
        });
        (clear && set.status.as_ref()?.copying.is_none()).then_some(())
    })
    .await;
}
