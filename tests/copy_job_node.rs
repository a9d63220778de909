//! What only a real node shows: the Job controller retrying a transient failure with a new pod,
//! the kernel holding the copier to its pod's memory limit, `kubectl logs` of a copy pod, the
//! garbage collector removing what a MasterExport owned, and the namespace controller finishing
//! a namespace full of MasterExports. Where no node can run, each test says so and passes
//! (unless `MMO_REQUIRE_NODE` is set).

use testenv::fixtures as support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use mux_master_operator::resource::{MasterExport, Phase};
use serde_json::json;
use support::kubelet;
use support::{World, eventually};
use testenv::Minio;

/// Long enough for the controllers on two busy cores.
const GONE: Duration = Duration::from_secs(120);

/// Whether this process has the real node; says so when it has not.
fn real_node() -> bool {
    let real = kubelet::is_real();
    if !real {
        eprintln!("node: not tested, these tests need the real node");
    }
    real
}

fn job_of(obj: &MasterExport) -> Option<String> {
    obj.status.as_ref()?.copy.as_ref()?.job.clone()
}

/// A world whose export `name` copies an asset of `size` bytes to MinIO with `archive` keys.
async fn copying(prefix: &str, size: u64, secret_key: &str, spec: serde_json::Value) -> World {
    let world = World::new(prefix, &["--master-prepare-delay", "200ms"], &[]).await;
    let minio = Minio::shared().expect("MinIO starts");
    let archive: Secret = serde_json::from_value(json!({
        "metadata": {"name": "archive"},
        "stringData": {"AWS_ACCESS_KEY_ID": minio.access_key(), "AWS_SECRET_ACCESS_KEY": secret_key},
    }))
    .unwrap();
    world
        .secrets()
        .create(&PostParams::default(), &archive)
        .await
        .unwrap();
    let asset = world.admin.seed_asset(json!({"size": size})).await.unwrap();
    let mut body = json!({
        "source": {"assetId": asset.id},
        "credentialsSecretRef": {"name": "mux"},
        "destination": {
            "url": format!("s3://{}/{}/{prefix}.mp4", minio.bucket(), world.namespace),
            "endpoint": minio.endpoint(),
            "pathStyle": true,
            "credentialsSecretRef": {"name": "archive"},
        },
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), spec.as_object()) {
        body.extend(extra.clone());
    }
    world.create("archived", body).await.unwrap();
    world
}

#[tokio::test]
async fn a_transient_failure_gets_a_new_pod() {
    if !real_node() {
        return;
    }
    // MinIO refuses the wrong key: StoreFailed, which a rerun may fix (the key may be rotated).
    let world = copying("transient", 64 * 1024, "not-the-key", json!({})).await;
    let copying = world
        .wait("archived", "Copying", |o| job_of(o).is_some())
        .await;
    let job = job_of(&copying).unwrap();
    let run = kubelet::run_job(&world.client, &world.namespace, &job).await;
    assert_eq!(run.exit_code, 7, "StoreFailed: {}", run.stderr);
    assert!(
        run.pods > 1,
        "the Job controller retried with a new pod ({} pods)",
        run.pods
    );
}

#[tokio::test]
async fn the_copier_stays_within_its_memory_limit_for_a_large_master() {
    if !real_node() {
        return;
    }
    let size = 1024 * 1024 * 1024 + 4099;
    let minio = Minio::shared().expect("MinIO starts");
    let world = copying("large", size, minio.secret_key(), json!({})).await;
    let copying = world
        .wait("archived", "Copying", |o| job_of(o).is_some())
        .await;
    let job_name = job_of(&copying).unwrap();
    let job = Api::<Job>::namespaced(world.client.clone(), &world.namespace)
        .get(&job_name)
        .await
        .unwrap();
    let limit = job.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap()["memory"]
        .0
        .clone();
    assert_eq!(limit, "256Mi", "the limit the operator sets for copy Jobs");
    let run = kubelet::run_job(&world.client, &world.namespace, &job_name).await;
    assert_eq!(run.exit_code, 0, "{}", run.stderr);
    assert_eq!(run.pods, 1, "no pod was killed and replaced");
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}")))
        .await
        .unwrap();
    let status = listed.items[0].status.clone().unwrap();
    let container = &status.container_statuses.unwrap()[0];
    let terminated = container.state.clone().unwrap().terminated.unwrap();
    assert_eq!(
        terminated.reason.as_deref(),
        Some("Completed"),
        "not OOMKilled"
    );
    assert_eq!(container.restart_count, 0);
    world
        .wait("archived", "Copied", |o| {
            o.status.as_ref().and_then(|s| s.phase) == Some(Phase::Copied)
        })
        .await;
}

#[tokio::test]
async fn kubectl_logs_of_a_copy_pod_show_progress_and_no_url_or_credential() {
    if !real_node() {
        return;
    }
    let minio = Minio::shared().expect("MinIO starts");
    let world = copying("logs", 3 * 1024 * 1024, minio.secret_key(), json!({})).await;
    let copying = world
        .wait("archived", "Copying", |o| job_of(o).is_some())
        .await;
    let url = support::master_url(&copying).expect("a URL");
    let job = job_of(&copying).unwrap();
    let run = kubelet::run_job(&world.client, &world.namespace, &job).await;
    assert_eq!(run.exit_code, 0, "{}", run.stderr);
    // `run.stderr` is what the apiserver returns for the pod's log: the kubelet's, as kubectl.
    let logs = run.stderr;
    assert!(logs.contains("copying"), "a progress line: {logs}");
    for secret in [
        url.as_str(),
        "signature=",
        minio.secret_key(),
        support::TOKEN_SECRET,
    ] {
        assert!(!logs.contains(secret), "the logs hold {secret:?}:\n{logs}");
    }
}

#[tokio::test]
async fn deleting_a_master_export_lets_the_garbage_collector_remove_its_secret_and_job() {
    if !real_node() {
        return;
    }
    let minio = Minio::shared().expect("MinIO starts");
    let world = copying(
        "gc",
        64 * 1024,
        minio.secret_key(),
        json!({"deletionPolicy": "Revoke"}),
    )
    .await;
    let copying = world
        .wait("archived", "Copying", |o| job_of(o).is_some())
        .await;
    let job = job_of(&copying).unwrap();
    let secret = copying.url_secret_name();
    let asset = copying.spec.source.asset_id.clone().unwrap();
    world
        .api()
        .delete("archived", &DeleteParams::default())
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let secrets = world.secrets();
    eventually(
        GONE,
        "the MasterExport, its Secret and its Job gone",
        || async {
            let export = world.api().get_opt("archived").await.ok()?;
            let job = jobs.get_opt(&job).await.ok()?;
            let secret = secrets.get_opt(&secret).await.ok()?;
            (export.is_none() && job.is_none() && secret.is_none()).then_some(())
        },
    )
    .await;
    let state = world.admin.inspect(&asset).await.unwrap();
    assert_eq!(state["asset"]["master_access"], "none", "Revoke: {state}");
}

// Fails today, and that is the finding: the namespace controller deletes the credentials Secret
// alongside the MasterExports, the operator's cleanup then meets CredentialsMissing (a stalled
// error) and lets go with a RevokeAbandoned event, so `Revoke` leaves access on. The fix belongs
// to the controller (src/controller/reconcile.rs `cleanup`); run with `--ignored` to see it.
#[tokio::test]
#[ignore = "the operator does not revoke when the namespace's deletion removes its credentials Secret first (see the comment)"]
async fn deleting_a_namespace_of_master_exports_finishes_with_access_as_their_policy_says() {
    if !real_node() {
        return;
    }
    let world = World::new("ns-delete", &["--master-prepare-delay", "200ms"], &[]).await;
    let ids = world.seed_assets(3, json!({"size": 1000})).await;
    let policies = ["Revoke", "Orphan", "Revoke"];
    for (i, (id, policy)) in ids.iter().zip(policies).enumerate() {
        world
            .create(
                &format!("export-{i}"),
                json!({"source": {"assetId": id}, "credentialsSecretRef": {"name": "mux"},
                       "deletionPolicy": policy}),
            )
            .await
            .unwrap();
    }
    for i in 0..ids.len() {
        world
            .wait(&format!("export-{i}"), "Ready", support::is_ready)
            .await;
    }
    let namespaces: Api<Namespace> = Api::all(world.client.clone());
    namespaces
        .delete(&world.namespace, &DeleteParams::default())
        .await
        .unwrap();
    eventually(GONE, "the namespace finalized and gone", || async {
        namespaces
            .get_opt(&world.namespace)
            .await
            .ok()
            .and_then(|n| n.is_none().then_some(()))
    })
    .await;
    for (id, policy) in ids.iter().zip(policies) {
        let state = world.admin.inspect(id).await.unwrap();
        let expected = if policy == "Revoke" {
            "none"
        } else {
            "temporary"
        };
        assert_eq!(
            state["asset"]["master_access"], expected,
            "{policy}: {state}"
        );
    }
}
