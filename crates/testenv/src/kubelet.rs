//! What a kubelet and the Job controller would do for a copy Job, since neither runs here:
//! run the Job's one container command as a local process with exactly the environment its
//! pod template gives (values, Secret keys, whole Secrets), then record the outcome as they
//! would: a Pod whose container status holds the termination message, and the Job's status.
//! The Job object is real and the copy is real; only the node is played.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::error::{Error, Result};
use super::scratch::Scratch;

/// The outcome of one run of a Job's container.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub exit_code: i32,
    /// The termination message the container wrote.
    pub message: String,
    pub stderr: String,
    pub elapsed: Duration,
}

fn text(data: Option<BTreeMap<String, ByteString>>) -> BTreeMap<String, String> {
    data.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Pods need their namespace's `default` ServiceAccount, which no controller-manager makes here.
pub async fn ensure_default_service_account(client: &Client, namespace: &str) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("valid");
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs Job `name`'s container (whose image is `program`: the operator's own binary) to
/// completion, and records it in the apiserver.
pub async fn run_job(
    client: &Client,
    namespace: &str,
    name: &str,
    program: &Path,
) -> Result<JobRun> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let job = jobs.get(name).await?;
    let template = job
        .spec
        .clone()
        .ok_or_else(|| Error::Other(format!("Job {name} has no spec")))?
        .template;
    let pod_spec = template
        .spec
        .clone()
        .ok_or_else(|| Error::Other(format!("Job {name} has no pod spec")))?;
    let container = pod_spec.containers[0].clone();

    // The environment, as the kubelet builds it: envFrom first, then env.
    let mut env = BTreeMap::new();
    for source in container.env_from.clone().unwrap_or_default() {
        if let Some(secret) = source.secret_ref {
            env.extend(text(secrets.get(&secret.name).await?.data));
        }
    }
    for var in container.env.clone().unwrap_or_default() {
        if let Some(value) = var.value {
            env.insert(var.name, value);
        } else if let Some(key) = var.value_from.and_then(|v| v.secret_key_ref) {
            let data = text(secrets.get(&key.name).await?.data);
            let value = data.get(&key.key).ok_or_else(|| {
                Error::Other(format!("Secret {} has no key {}", key.name, key.key))
            })?;
            env.insert(var.name, value.clone());
        }
    }
    // The container's termination message file: a local one here.
    let scratch = Scratch::new("kubelet")?;
    let message_path = scratch.dir().join("termination-log");
    env.insert(
        "MMO_TERMINATION_MESSAGE_PATH".into(),
        message_path.display().to_string(),
    );

    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let output = tokio::process::Command::new(program)
        .args(container.args.clone().unwrap_or_default())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(Error::io(format!("running {}", program.display())))?;
    let elapsed = clock.elapsed();
    let finished = jiff::Timestamp::now();
    let exit_code = output.status.code().unwrap_or(128);
    let message = std::fs::read_to_string(&message_path).unwrap_or_default();

    // The Pod, as the Job controller would have made it, and its status as the kubelet reports.
    ensure_default_service_account(client, namespace).await?;
    let mut labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.insert("batch.kubernetes.io/job-name".into(), name.into());
    let pod_name = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..5]);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": pod_name,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                "uid": job.metadata.uid.clone().unwrap_or_default(), "controller": true}],
        },
        "spec": pod_spec,
    }))
    .map_err(|e| Error::Other(format!("a Pod from Job {name}'s template: {e}")))?;
    pods.create(&PostParams::default(), &pod).await?;
    let succeeded = exit_code == 0;
    pods.patch_status(
        &pod_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": if succeeded { "Succeeded" } else { "Failed" },
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": exit_code,
                    "reason": if succeeded { "Completed" } else { "Error" },
                    "message": message,
                    "startedAt": started.to_string(),
                    "finishedAt": finished.to_string(),
                }},
            }],
        }})),
    )
    .await?;

    // The Job's status, as the Job controller writes it. Terminal conditions need their
    // precursors: SuccessCriteriaMet before Complete, FailureTarget before Failed.
    let now = finished.to_string();
    let (first, last, reason, note) = if succeeded {
        (
            "SuccessCriteriaMet",
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods".to_owned(),
        )
    } else {
        (
            "FailureTarget",
            "Failed",
            "PodFailurePolicy",
            format!("Container copy exited with {exit_code}"),
        )
    };
    let conditions: Vec<Value> = [first, last]
        .iter()
        .map(|t| {
            json!({"type": t, "status": "True", "reason": reason, "message": note,
                   "lastTransitionTime": now, "lastProbeTime": now})
        })
        .collect();
    let mut status = json!({
        "startTime": started.to_string(), "active": 0, "ready": 0, "terminating": 0,
        "uncountedTerminatedPods": {}, "conditions": conditions,
    });
    if succeeded {
        status["succeeded"] = json!(1);
        status["completionTime"] = json!(now);
    } else {
        status["failed"] = json!(1);
    }
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(JobRun {
        exit_code,
        message,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    })
}
