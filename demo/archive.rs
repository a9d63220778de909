//! The archive step: examples/s3-archive.yaml into the local MinIO, verified, then access off.

use super::*;

/// The archive: examples/s3-archive.yaml with one change, its endpoint pointed at the local
/// MinIO. The operator publishes the URL, then creates a copy Job; the node's kubelet runs its pod
/// from the operator's image (where no node can run, the demo plays its part: `run_copy_job`);
/// the operator reads the copier's report, checks it, marks the resource Copied, and only then
/// turns master access off (afterCopy.revokeAccess).
///
/// What the archive step uses of the running demo.
pub(crate) struct Parts<'a> {
    pub(crate) kubectl: &'a Kubectl,
    pub(crate) client: &'a Client,
    pub(crate) minio: &'a Minio,
    pub(crate) admin: &'a SimAdmin,
    pub(crate) bins: &'a Binaries,
    pub(crate) pods: &'a Pods,
}

pub(crate) async fn archive(
    parts: &Parts<'_>,
    watch: &mut Watch,
    operator: &mut Operator,
    example: &Value,
) -> Result<()> {
    let Parts {
        kubectl,
        client,
        minio,
        admin,
        bins,
        pods,
    } = *parts;
    let url = str_at(example, "/spec/destination/url")?;
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or("the example's destination is not s3://bucket/key")?;
    tokio::task::block_in_place(|| minio.create_bucket(bucket))?;
    println!(
        "      (MinIO has a bucket `{bucket}` now; its credentials go in the Secret the example names:)"
    );
    kubectl.show(&[
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "archive",
        &format!("--from-literal=AWS_ACCESS_KEY_ID={}", minio.access_key()),
        &format!(
            "--from-literal=AWS_SECRET_ACCESS_KEY={}",
            minio.secret_key()
        ),
    ])?;
    let mut local = example.clone();
    local["spec"]["destination"]["endpoint"] = json!(minio.endpoint());
    let file = operator.dir().join("s3-archive.yaml");
    std::fs::write(&file, serde_yaml::to_string(&local)?)?;
    println!(
        "      (examples/s3-archive.yaml, with spec.destination.endpoint: {})",
        minio.endpoint()
    );
    kubectl.show(&["-n", NAMESPACE, "apply", "-f", &file.display().to_string()])?;

    let name = str_at(example, "/metadata/name")?;
    let api: Api<MasterExport> = Api::namespaced(client.clone(), NAMESPACE);
    watch
        .until(&[name.as_str()], operator, |o| phase(o) == "Copying")
        .await?;
    let job = api
        .get(&name)
        .await?
        .status
        .and_then(|s| s.copy)
        .and_then(|c| c.job)
        .ok_or("Copying, but no Job in status.copy")?;
    kubectl.show(&["-n", NAMESPACE, "get", "jobs"])?;
    let copied = if pods.is_real() {
        println!(
            "      (the Job controller makes its pod, the scheduler places it, the kubelet runs it from\n      \
             image {}: `mux-master-operator copy`)",
            testenv::node::operator_image_name()
        );
        wait_for_job(client, &job)
            .await
            .map_err(|e| format!("{e}\nthe node's logs:\n{}", pods.log_tails()))?
    } else {
        println!(
            "      (no kubelet here: the demo runs the Job's container, `mux-master-operator copy`, as a\n      \
             local process with the environment its pod template gives, then records the Pod and the\n      \
             Job's status as the kubelet and the Job controller would)"
        );
        run_copy_job(client, &job, &bins.operator).await?
    };
    println!("      copy finished: {copied}");
    watch
        .until(&[name.as_str()], operator, |o| {
            phase(o) == "Copied" && reason(o) != "-"
        })
        .await?;
    println!();
    kubectl.show(&["-n", NAMESPACE, "get", "mexp", "-o", "wide"])?;
    kubectl.show(&["get", "pods", "--all-namespaces", "-o", "wide"])?;
    let status = api.get(&name).await?.status.unwrap_or_default();
    if let Some(copy) = status.copy {
        println!(
            "      status.copy: object {}, {} bytes, sha256 {}",
            copy.object.as_deref().unwrap_or("-"),
            copy.size.map_or("-".into(), |s| s.to_string()),
            copy.sha256.as_deref().unwrap_or("-"),
        );
    }
    // mux-sim's content is deterministic: it knows the master's SHA-256 without storing it.
    let asset_id = str_at(example, "/spec/source/assetId")?;
    let inspected = admin.inspect(&asset_id).await?;
    let (seed, size) = (
        inspected["seed"].as_u64().ok_or("mux-sim gave no seed")?,
        inspected["size"].as_u64().ok_or("mux-sim gave no size")?,
    );
    let truth = mux_sim::content::sha256_hex(seed, size);
    let recorded = api
        .get(&name)
        .await?
        .status
        .and_then(|s| s.copy)
        .and_then(|c| c.sha256);
    if recorded.as_deref() != Some(truth.as_str()) {
        return Err(
            format!("the recorded SHA-256 {recorded:?} is not the master's {truth}").into(),
        );
    }
    println!("      (the master's own SHA-256, as mux-sim computes it: the same)");
    let store = minio.store(bucket)?;
    let objects: Vec<_> = store.list(None).try_collect().await?;
    println!(
        "      In MinIO, bucket {bucket} ({} object(s)):",
        objects.len()
    );
    for object in objects {
        println!("        {}  {} bytes", object.location, object.size);
    }
    let expected = object_store::path::Path::from(key);
    if !store
        .list(None)
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .any(|o| o.location == expected)
    {
        return Err(format!("{key} is not in bucket {bucket}").into());
    }
    // afterCopy.revokeAccess: the operator turns access off once the copy is verified; ask Mux.
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let access = admin.inspect(&asset_id).await?["asset"]["master_access"].clone();
        if access == "none" {
            break;
        }
        operator.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("master access of {asset_id} is still {access}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch
        .until(&[name.as_str()], operator, |o| {
            reason(o) != "RevokingAfterCopy"
        })
        .await?;
    println!(
        "      Mux now says master_access: none for {asset_id} (afterCopy.revokeAccess): turned off only\n      \
         after the copy's size and SHA-256 were verified."
    );
    Ok(())
}

/// What a kubelet and the Job controller would do for copy Job `name`: `testenv::kubelet`
/// runs its container's command as a local process with the pod template's environment and
/// records the Pod and the Job's status. Returns what the copy said.
pub(crate) async fn run_copy_job(
    client: &Client,
    name: &str,
    operator_bin: &Path,
) -> Result<String> {
    let run = testenv::kubelet::run_job(client, NAMESPACE, name, operator_bin).await?;
    if run.exit_code == 0 {
        Ok(format!("exit 0, in {:.1} s", run.elapsed.as_secs_f64()))
    } else {
        Err(format!("the copy exited with {}: {}", run.exit_code, run.stderr).into())
    }
}
