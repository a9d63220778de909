//! The controller tells each copy Job when the master became ready, with the operator's minimum
//! age after it (`--copy-min-age`): a master that still grows after `ready`, with a pause longer
//! than the copier's settle checks, is archived whole, not as the prefix served at first.
//!
//! The MP4 structure check is off here (`skipMp4Check`), so that the growth checks are the only
//! guard: with the structure check on, mux-sim's prefix (cut mid-box, `moov` last) would be
//! refused for its structure whatever the timing.

use testenv::fixtures as support;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::content;
use serde_json::json;
use support::World;
use support::kubelet;
use testenv::Minio;

fn phase(obj: &MasterExport) -> Option<Phase> {
    obj.status.as_ref()?.phase
}

/// The value of `name` in the copy container's environment.
fn env_value(job: &Job, name: &str) -> Option<String> {
    let pod = job.spec.as_ref()?.template.spec.as_ref()?;
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// The writer holds still at 60% for 20 s after `ready`, then finishes. The copier's default
/// settle checks (two, 10 s apart) call the length final about 10 s after its first pass: by
/// time alone, the 60% prefix. The minimum age of 30 s after ready outlasts the pause.
#[tokio::test]
async fn a_master_that_grows_after_ready_past_the_settle_checks_is_archived_whole() {
    let sim_args = [
        "--master-prepare-delay",
        "200ms",
        "--growth-initial-fraction",
        "0.6",
        "--growth-pause",
        "20s",
        "--growth",
        "500ms",
    ];
    let world = World::new("min-age", &sim_args, &["--copy-min-age", "30s"]).await;
    // The node first (it may wait for another test process to release it): the pod must start
    // within seconds of `ready`, while the writer still pauses, for the timing to mean anything.
    kubelet::ensure_default_service_account(&world.client, &world.namespace).await;
    let minio = Minio::shared().expect("MinIO starts");
    world.minio_credentials("archive", minio).await;
    let size = 2 * 1024 * 1024 + 5;
    let asset = world.admin.seed_asset(json!({"size": size})).await.unwrap();
    let key = format!("{}/growing.mp4", world.namespace);
    world
        .create(
            "growing",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("s3://{}/{key}", minio.bucket()),
                    "endpoint": minio.endpoint(),
                    "pathStyle": true,
                    "credentialsSecretRef": {"name": "archive"},
                    "skipMp4Check": true,
                },
            }),
        )
        .await
        .unwrap();

    let copying = world
        .wait("growing", "Copying", |o| phase(o) == Some(Phase::Copying))
        .await;
    let status = copying.status.clone().unwrap();
    let recorded_ready = status.master.as_ref().unwrap().ready_at.clone().unwrap().0;
    let job_name = status.copy.as_ref().unwrap().job.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let job = jobs.get(&job_name).await.unwrap();
    // The Job carries the ready time the status records (whole seconds: plus the second the
    // status' precision may have dropped), and the operator's minimum age.
    let passed: jiff::Timestamp = env_value(&job, "MMO_MASTER_READY_AT")
        .expect("the Job says when the master became ready")
        .parse()
        .unwrap();
    let next_second = jiff::Timestamp::from_second(recorded_ready.as_second() + 1).unwrap();
    assert_eq!(passed, next_second);
    assert_eq!(env_value(&job, "MMO_MIN_AGE").as_deref(), Some("30s"));
    // Never earlier than the master really became ready.
    let view = world.admin.inspect(&asset.id).await.unwrap();
    let sim_ready = view["master_ready_unix_ms"].as_i64().expect("a ready time");
    assert!(
        passed.as_millisecond() >= sim_ready,
        "{passed} vs {sim_ready} ms"
    );
    // And still no URL in the Job.
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("signature=") && !text.contains("mezzanine.mp4"));

    let run = kubelet::run_job(&world.client, &world.namespace, &job_name).await;
    assert_eq!(run.exit_code, 0, "the copy succeeds: {}", run.stderr);
    assert!(
        run.stderr.contains("became ready less than"),
        "the copier waited for the minimum age: {}",
        run.stderr
    );

    let copied = world
        .wait("growing", "Copied", |o| phase(o) == Some(Phase::Copied))
        .await;
    let seed = view["seed"].as_u64().unwrap();
    let copy = copied.status.unwrap().copy.unwrap();
    assert_eq!(copy.size, Some(size), "the whole master, not its prefix");
    assert_eq!(
        copy.sha256.as_deref(),
        Some(content::sha256_hex(seed, size).as_str())
    );
    let store = minio.store(minio.bucket()).unwrap();
    let meta =
        object_store::ObjectStoreExt::head(&store, &object_store::path::Path::from(key.as_str()))
            .await
            .unwrap();
    assert_eq!(meta.size, size);
}
