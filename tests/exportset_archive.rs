//! A MasterExportSet with an S3 destination: every asset archived in MinIO through copy Jobs
//! (on the real node when there is one, else played as local processes), verified against mux-sim's digest and size, never
//! more than `maxInFlight` children (nor copy Jobs) at work at once, and a manifest beside the
//! archive whose every line matches mux-sim.

use testenv::fixtures as support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use mux_master_operator::exportset::manifest::Entry;
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::content;
use serde_json::json;
use support::World;
use support::exportset::{
    children, create_set, install_set_crd, run_copy_jobs, set_is_ready, sets,
};
use testenv::Minio;

const ASSETS: usize = 50;
const MAX_IN_FLIGHT: usize = 5;
const SIZE: u64 = 64 * 1024 + 3;

fn copied(child: &MasterExport) -> bool {
    child.status.as_ref().and_then(|s| s.phase) == Some(Phase::Copied)
}

fn job_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

#[tokio::test]
async fn a_set_archives_every_asset_verified_never_more_than_max_in_flight() {
    let rate = "200";
    let world = World::new(
        "set-archive",
        &[
            "--master-prepare-delay",
            "200ms",
            "--other-rate",
            rate,
            "--other-burst",
            rate,
        ],
        &[
            "--poll-min",
            "100ms",
            "--mux-other-rate",
            rate,
            "--mux-other-burst",
            rate,
        ],
    )
    .await;
    install_set_crd(&world.client).await;
    let minio = Minio::shared().expect("MinIO starts");
    world.minio_credentials("archive", minio).await;
    let mut ids = Vec::new();
    for i in 0..ASSETS {
        let asset = world
            .admin
            .seed_asset(json!({"size": SIZE, "passthrough": format!("show {}", i % 3)}))
            .await
            .unwrap();
        ids.push(asset.id);
    }
    let ran = run_copy_jobs(&world, 4);
    let prefix = world.namespace.clone();
    create_set(
        &world,
        "archive",
        json!({
            "credentialsSecretRef": {"name": "mux"},
            "maxInFlight": MAX_IN_FLIGHT,
            "template": {"destination": {
                "url": format!("s3://{}/{prefix}/{{passthrough}}/{{assetId}}.mp4", minio.bucket()),
                "endpoint": minio.endpoint(),
                "pathStyle": true,
                "credentialsSecretRef": {"name": "archive"},
            }},
        }),
    )
    .await
    .unwrap();

    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let started = Instant::now();
    let deadline = Duration::from_secs(480);
    let mut most = (0, 0);
    let set = loop {
        let set = sets(&world).get("archive").await.unwrap();
        let kids = children(&world, &set).await;
        let in_flight = kids.values().filter(|c| !copied(c)).count();
        let running = jobs
            .list(&ListParams::default().labels("app.kubernetes.io/component=copy"))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|j| !job_finished(j))
            .count();
        assert!(
            in_flight <= MAX_IN_FLIGHT,
            "{in_flight} children in flight (max {MAX_IN_FLIGHT})"
        );
        assert!(
            running <= MAX_IN_FLIGHT,
            "{running} copy Jobs running (max {MAX_IN_FLIGHT})"
        );
        most = (most.0.max(in_flight), most.1.max(running));
        if set_is_ready(&set) && kids.len() == ASSETS && kids.values().all(copied) {
            break set;
        }
        assert!(
            started.elapsed() < deadline,
            "not archived in {deadline:?}: {:?}",
            set.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "{ASSETS} assets archived in {:?} ({} Jobs played); at most {} in flight, {} Jobs running",
        started.elapsed(),
        ran.load(std::sync::atomic::Ordering::SeqCst),
        most.0,
        most.1
    );
    let status = set.status.clone().unwrap();
    assert_eq!(
        (status.counts.done, status.counts.total),
        (ASSETS as u32, ASSETS as u32)
    );
    assert_eq!(status.bytes_archived, SIZE * ASSETS as u64);

    // Every archive is where the pattern says, whole, with the digest mux-sim knows.
    let store = minio.store(minio.bucket()).unwrap();
    let kids = children(&world, &set).await;
    for id in &ids {
        let copy = kids[id].status.clone().unwrap().copy.unwrap();
        let inspected = world.admin.inspect(id).await.unwrap();
        let passthrough = inspected["asset"]["passthrough"]
            .as_str()
            .unwrap()
            .replace(' ', "_");
        let key = format!("{prefix}/{passthrough}/{id}.mp4");
        let seed = inspected["seed"].as_u64().unwrap();
        assert_eq!(
            copy.sha256.as_deref(),
            Some(content::sha256_hex(seed, SIZE).as_str()),
            "{id}"
        );
        assert_eq!(copy.size, Some(SIZE));
        let meta = object_store::ObjectStoreExt::head(
            &store,
            &object_store::path::Path::from(key.as_str()),
        )
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(meta.size, SIZE, "{key}");
    }

    // The manifest, beside the archive: one line per asset, each matching mux-sim.
    let manifest = status.manifest.clone().expect("a manifest written");
    let key = format!("{prefix}/manifest-{}.archive.jsonl", world.namespace);
    assert_eq!(manifest.url, format!("s3://{}/{key}", minio.bucket()));
    assert_eq!(manifest.entries, ASSETS as u32);
    let body =
        object_store::ObjectStoreExt::get(&store, &object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    assert_eq!(
        digest, manifest.sha256,
        "the status names the manifest as written"
    );
    let lines: Vec<Entry> = std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut listed: Vec<&str> = lines.iter().map(|e| e.asset_id.as_str()).collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected, "one line per asset");
    for line in &lines {
        let inspected = world.admin.inspect(&line.asset_id).await.unwrap();
        let seed = inspected["seed"].as_u64().unwrap();
        let passthrough = inspected["asset"]["passthrough"].as_str().unwrap();
        assert_eq!(
            line.sha256,
            content::sha256_hex(seed, SIZE),
            "{}",
            line.asset_id
        );
        assert_eq!(line.size, SIZE);
        assert_eq!(line.passthrough.as_deref(), Some(passthrough));
        let object = format!(
            "s3://{}/{prefix}/{}/{}.mp4",
            minio.bucket(),
            passthrough.replace(' ', "_"),
            line.asset_id
        );
        assert_eq!(line.object, object);
        assert!(line.copied_at.is_some());
    }

    // And `verify-manifest` re-hashes every archive against it, without the cluster.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .args([
            "verify-manifest",
            &manifest.url,
            "--endpoint",
            minio.endpoint(),
            "--path-style",
        ])
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key())
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{ASSETS} entries: {ASSETS} ok")),
        "{stderr}"
    );
}
