//! What a kubelet would do for a copy Job, since none runs here: run the Job's container
//! command as a local process with exactly the environment its pod template gives (values,
//! Secret keys, whole Secrets), then record the outcome as the kubelet and the Job controller
//! would: a Pod with the container's termination message, and the Job's status.

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The outcome of one run.
pub struct Run {
    pub exit_code: i32,
    pub message: String,
    pub stderr: String,
}

async fn secret_data(secrets: &Api<Secret>, name: &str) -> BTreeMap<String, String> {
    let secret = secrets
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8 Secret value")))
        .collect()
}

/// Pods need the namespace's `default` ServiceAccount (no controller-manager makes it here).
pub async fn ensure_default_service_account(client: &Client, namespace: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the default ServiceAccount: {e}"),
    }
}

/// Runs Job `name`'s one container to completion and records it in the apiserver.
pub async fn run_job(client: &Client, namespace: &str, name: &str) -> Run {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let job = jobs.get(name).await.expect("the Job exists");
    let template = job.spec.clone().unwrap().template;
    let pod_spec = template.spec.clone().unwrap();
    let container = pod_spec.containers[0].clone();

    // The environment, as the kubelet builds it: envFrom first, then env.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for source in container.env_from.clone().unwrap_or_default() {
        if let Some(secret) = source.secret_ref {
            env.extend(secret_data(&secrets, &secret.name).await);
        }
    }
    for var in container.env.clone().unwrap_or_default() {
        if let Some(value) = var.value {
            env.insert(var.name, value);
        } else if let Some(key_ref) = var.value_from.and_then(|v| v.secret_key_ref) {
            let data = secret_data(&secrets, &key_ref.name).await;
            env.insert(
                var.name,
                data.get(&key_ref.key)
                    .cloned()
                    .expect("the Secret has the key"),
            );
        }
    }
    // The container's termination message file, here a local one.
    let dir = tempfile::tempdir().unwrap();
    let message_path = dir.path().join("termination-log");
    env.insert(
        "MMO_TERMINATION_MESSAGE_PATH".into(),
        message_path.display().to_string(),
    );

    let started = jiff::Timestamp::now();
    let output = Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .args(container.args.clone().unwrap_or_default())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .output()
        .expect("the copy runs");
    let finished = jiff::Timestamp::now();
    let exit_code = output.status.code().unwrap_or(128);
    let message = std::fs::read_to_string(&message_path).unwrap_or_default();

    // The Pod, as the Job controller would have made it, and its status as the kubelet reports.
    ensure_default_service_account(client, namespace).await;
    let mut labels = template
        .metadata
        .clone()
        .and_then(|m| m.labels)
        .unwrap_or_default();
    labels.insert("batch.kubernetes.io/job-name".into(), name.into());
    let pod_name = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..5]);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": pod_name,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                "uid": job.metadata.uid.clone().unwrap(), "controller": true}],
        },
        "spec": pod_spec,
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("the Pod is created");
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
    .await
    .expect("the Pod's status is written");

    // The Job's status, as the Job controller writes it (terminal conditions need their
    // precursors: SuccessCriteriaMet before Complete, FailureTarget before Failed).
    let now = finished.to_string();
    let conditions = if succeeded {
        json!([
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now, "lastProbeTime": now},
        ])
    } else {
        json!([
            {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy", "message": format!("Container copy exited with {exit_code}"), "lastTransitionTime": now, "lastProbeTime": now},
            {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": format!("Container copy exited with {exit_code}"), "lastTransitionTime": now, "lastProbeTime": now},
        ])
    };
    let mut status = json!({
        "startTime": started.to_string(),
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": conditions,
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
    .await
    .expect("the Job's status is written");
    Run {
        exit_code,
        message,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
