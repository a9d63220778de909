//! The archive copy end to end on the real apiserver: the controller creates a hardened Job,
//! the real Job controller makes its pod and the kubelet runs it from the operator's image
//! (`make image`; where no node can run, the node is played, and the run says so), the master
//! lands in MinIO with the SHA-256 mux-sim knows, and access is revoked only after that.

use testenv::fixtures as support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
use kube::Api;
use kube::api::PostParams;
use mux::types::MasterAccess;
use mux::{Credentials, MuxClients, MuxConfig};
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::content;
use object_store::ObjectStoreExt;
use serde_json::json;
use support::kubelet;
use support::{World, condition};
use testenv::Minio;

fn phase(obj: &MasterExport) -> Option<Phase> {
    obj.status.as_ref()?.phase
}

fn job_of(obj: &MasterExport) -> Option<String> {
    obj.status.as_ref()?.copy.as_ref()?.job.clone()
}

/// A world with MinIO credentials in a Secret, and a MasterExport copying to MinIO; mux-sim's
/// `faults` switches, if any, set before the MasterExport exists.
async fn copying_world(
    prefix: &str,
    size: u64,
    revoke: bool,
    faults: Option<serde_json::Value>,
) -> (World, &'static Minio, String, String) {
    let world = World::new(prefix, &["--master-prepare-delay", "200ms"], &[]).await;
    if let Some(faults) = faults {
        world.admin.configure(faults).await.unwrap();
    }
    let minio = Minio::shared().expect("MinIO starts");
    let secrets: Api<Secret> = world.secrets();
    let archive: Secret = serde_json::from_value(json!({
        "metadata": {"name": "archive"},
        "stringData": {"AWS_ACCESS_KEY_ID": minio.access_key(), "AWS_SECRET_ACCESS_KEY": minio.secret_key()},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &archive)
        .await
        .unwrap();
    let asset = world.admin.seed_asset(json!({"size": size})).await.unwrap();
    let key = format!("{}/keynote.mp4", world.namespace);
    world
        .create(
            "archived",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("s3://{}/{key}", minio.bucket()),
                    "endpoint": minio.endpoint(),
                    "pathStyle": true,
                    "credentialsSecretRef": {"name": "archive"},
                },
                "afterCopy": {"revokeAccess": revoke},
            }),
        )
        .await
        .unwrap();
    (world, minio, asset.id, key)
}

#[tokio::test]
async fn a_master_is_archived_verified_then_access_revoked() {
    let size = 3 * 1024 * 1024 + 17;
    let (world, minio, asset_id, key) = copying_world("copy", size, true, None).await;

    let copying = world
        .wait("archived", "Copying", |o| phase(o) == Some(Phase::Copying))
        .await;
    let job_name = job_of(&copying).expect("a copy Job");
    assert!(
        support::master_url(&copying).is_some(),
        "the URL was Ready before the copy"
    );
    // Nothing is revoked before the copy is verified.
    let sim_state = world.admin.inspect(&asset_id).await.unwrap();
    assert_eq!(sim_state["asset"]["master_access"], "temporary");

    // The Job is hardened and carries no URL.
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let job = jobs.get(&job_name).await.unwrap();
    let text = serde_json::to_string(&job).unwrap();
    assert!(
        !text.contains("signature=") && !text.contains("mezzanine.mp4"),
        "no URL in the Job"
    );
    let spec = job.spec.clone().unwrap();
    assert!(
        spec.active_deadline_seconds.is_some()
            && spec.backoff_limit.is_some()
            && spec.ttl_seconds_after_finished.is_some()
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let sc = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(
        (
            sc.read_only_root_filesystem,
            sc.allow_privilege_escalation,
            sc.run_as_non_root
        ),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!(job.metadata.owner_references.unwrap()[0].name, "archived");

    let run = kubelet::run_job(&world.client, &world.namespace, &job_name).await;
    assert_eq!(run.exit_code, 0, "the copy succeeds: {}", run.stderr);
    assert!(
        !run.stderr.contains("signature="),
        "the copy does not log the URL"
    );

    let copied = world
        .wait("archived", "Copied", |o| {
            phase(o) == Some(Phase::Copied)
                && condition(o, "Ready").is_some_and(|(s, _)| s == "True")
        })
        .await;
    let seed = world.admin.inspect(&asset_id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();
    let expected = content::sha256_hex(seed, size);
    let copy = copied.status.clone().unwrap().copy.unwrap();
    assert_eq!(copy.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(copy.size, Some(size));
    assert_eq!(
        condition(&copied, "Copied").unwrap(),
        ("True".into(), "Verified".into())
    );

    // The object is in MinIO, whole.
    let store = minio.store(minio.bucket()).unwrap();
    let meta = store
        .head(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap();
    assert_eq!(meta.size, size);

    // And only now is access off.
    let sim_state = world.admin.inspect(&asset_id).await.unwrap();
    assert_eq!(sim_state["asset"]["master_access"], "none");
    assert_eq!(support::master_url(&copied), None);
}

#[tokio::test]
async fn an_expired_url_during_the_copy_leads_to_a_fresh_url_and_a_new_run() {
    let size = 512 * 1024;
    // On a real node the first Job's pod starts at once: until access is off, every download
    // answers 503 (retried by the copier), so the copy cannot finish before the URL dies.
    let downloads_fail = json!({"master_errors": 1_000_000, "master_error_status": 503});
    let (world, minio, asset_id, key) =
        copying_world("copy-expired", size, false, Some(downloads_fail)).await;
    let first = world
        .wait("archived", "Copying", |o| phase(o) == Some(Phase::Copying))
        .await;
    let first_job = job_of(&first).unwrap();

    // Someone turns access off behind the operator's back: the URL now answers 403.
    let mux = MuxClients::new(MuxConfig {
        base_url: world.sim.url().parse().unwrap(),
        ..MuxConfig::default()
    })
    .unwrap()
    .client(Credentials::new(support::TOKEN_ID, support::TOKEN_SECRET));
    if kubelet::is_real() {
        // The pod holds the first URL once its copier is asking (and hearing 503): only then
        // may access go off, or the pod could start later with the operator's fresh URL.
        support::eventually(support::TIMEOUT, "the copier's first download", || async {
            let answered = world
                .admin
                .count(
                    "GET",
                    mux_sim::admin_client::MASTER_ROUTE,
                    Some(&asset_id),
                    Some(503),
                )
                .await
                .ok()?;
            (answered > 0).then_some(())
        })
        .await;
    }
    mux.update_master_access(&asset_id, MasterAccess::None)
        .await
        .unwrap();
    world
        .admin
        .configure(json!({"master_errors": 0}))
        .await
        .unwrap();
    let run = kubelet::run_job(&world.client, &world.namespace, &first_job).await;
    assert_eq!(
        run.exit_code, 3,
        "UrlExpired has its own exit status: {}",
        run.stderr
    );
    assert!(run.message.contains("UrlExpired"), "{}", run.message);
    // The Job's podFailurePolicy ends it at once on that code: no second pod (on the real
    // node this is the real Job controller's doing).
    assert_eq!(run.pods, 1, "a rerun cannot fix an expired URL");

    // The operator gets a fresh URL and starts attempt 2.
    let second = world
        .wait("archived", "a second copy Job", |o| {
            job_of(o).is_some_and(|j| j != first_job)
        })
        .await;
    let second_job = job_of(&second).unwrap();
    assert_eq!(
        second
            .status
            .as_ref()
            .unwrap()
            .copy
            .as_ref()
            .unwrap()
            .attempts,
        2
    );
    let run = kubelet::run_job(&world.client, &world.namespace, &second_job).await;
    assert_eq!(run.exit_code, 0, "{}", run.stderr);
    let copied = world
        .wait("archived", "Copied", |o| phase(o) == Some(Phase::Copied))
        .await;
    assert!(
        support::master_url(&copied).is_some(),
        "without afterCopy.revokeAccess the URL stays"
    );
    let store = minio.store(minio.bucket()).unwrap();
    assert_eq!(
        store
            .head(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .size,
        size
    );
}

#[tokio::test]
async fn a_file_destination_writes_to_the_claimed_volume() {
    let world = World::new("copy-file", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world
        .admin
        .seed_asset(json!({"size": 300_000}))
        .await
        .unwrap();
    // The claim is bound to a hostPath volume on a local folder, mounted at the same path in the
    // pod, so the test reads what the copy wrote. (A played node writes to the folder directly.)
    let volume = tempfile::tempdir().unwrap();
    let mount = volume.path().display().to_string();
    let target = format!("{mount}/media/keynote.mp4");
    claim_host_folder(&world, "archive", &mount).await;
    world
        .create(
            "to-file",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("file://{target}"),
                    "volume": {"claimName": "archive", "mountPath": mount},
                },
            }),
        )
        .await
        .unwrap();
    let copying = world
        .wait("to-file", "Copying", |o| phase(o) == Some(Phase::Copying))
        .await;
    let job_name = job_of(&copying).unwrap();
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let pod = jobs
        .get(&job_name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let claim = pod
        .volumes
        .unwrap()
        .into_iter()
        .find_map(|v| v.persistent_volume_claim)
        .expect("the claim is mounted");
    assert_eq!(claim.claim_name, "archive");
    assert!(
        pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == mount)
    );

    // The copy runs as 65532; a hostPath volume keeps the folder's owner (no fsGroup there).
    let media = format!("{mount}/media");
    std::fs::create_dir_all(&media).unwrap();
    std::os::unix::fs::chown(&media, Some(65532), Some(65532)).unwrap();
    let run = kubelet::run_job(&world.client, &world.namespace, &job_name).await;
    assert_eq!(run.exit_code, 0, "{}", run.stderr);
    let copied = world
        .wait("to-file", "Copied", |o| phase(o) == Some(Phase::Copied))
        .await;
    let seed = world.admin.inspect(&asset.id).await.unwrap()["seed"]
        .as_u64()
        .unwrap();
    let written = std::fs::read(&target).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&written)),
        content::sha256_hex(seed, 300_000)
    );
    assert_eq!(copied.status.unwrap().copy.unwrap().size, Some(300_000));
}

/// A PersistentVolumeClaim `claim` bound (by the real PV controller, on a real node) to a hostPath
/// volume on `folder`.
async fn claim_host_folder(world: &World, claim: &str, folder: &str) {
    let volume_name = format!("{}-{claim}", world.namespace);
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": volume_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": folder, "type": "Directory"},
        },
    }))
    .unwrap();
    Api::<PersistentVolume>::all(world.client.clone())
        .create(&PostParams::default(), &volume)
        .await
        .unwrap();
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": claim},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": volume_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(world.client.clone(), &world.namespace)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_file_destination_without_a_volume_is_refused() {
    let world = World::new("copy-file-bad", &[], &[]).await;
    let cases = [
        (
            json!({"url": "file:///archive/k.mp4"}),
            "needs destination.volume",
        ),
        (
            json!({"url": "file:///elsewhere/k.mp4", "volume": {"claimName": "a", "mountPath": "/archive"}}),
            "must be under destination.volume.mountPath",
        ),
    ];
    for (i, (destination, expected)) in cases.into_iter().enumerate() {
        let err = world
            .create_raw(
                &format!("bad-{i}"),
                json!({"source": {"assetId": "a1"}, "credentialsSecretRef": {"name": "mux"}, "destination": destination}),
            )
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(expected), "{err}");
    }
}
