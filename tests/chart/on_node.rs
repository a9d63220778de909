//! The chart installed with the image `make image` built, on the real node: the operator runs as
//! the Deployment's pod, with its own ServiceAccount token (no impersonation), and takes a
//! MasterExport to Copied, its copy Job run by the kubelet from the same image. Both RBAC modes.
//!
//! The node's pods share the host's loopback network, so the values point the pod at 127.0.0.1
//! with ordinary chart options: `extraEnv` names the apiserver (the injected
//! KUBERNETES_SERVICE_HOST is a cluster IP nothing routes here) and binds metrics to loopback
//! on a free port, `metrics.port` follows for the probes. Where no node can run, the tests say
//! so and pass (unless `MMO_REQUIRE_NODE` is set).

use testenv::fixtures as support;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use mux_master_operator::resource::{MasterExport, Phase};
use serde_json::{Value, json};
use support::{install_crd, kubelet};
use testenv::ControlPlane;

use super::helm::*;
use super::release::*;

/// How long the operator's pod may take to become available.
const AVAILABLE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn cluster_mode_the_operator_runs_as_its_pod_and_copies() {
    operator_pod_copies(|_watched| json!({})).await;
}

#[tokio::test]
async fn namespaced_mode_the_operator_runs_as_its_pod_and_copies() {
    operator_pod_copies(|watched| namespaced_values(&[watched])).await;
}

async fn operator_pod_copies(mode: impl Fn(&str) -> Value) {
    if !kubelet::is_real() {
        eprintln!("node: not tested, the operator's pod needs the real node");
        return;
    }
    let cp = ControlPlane::shared().expect("the control plane starts");
    let client = cp.client().unwrap();
    install_crd(&client).await;
    let watched = cp.fresh_namespace("pod-media").await.unwrap();
    enforce_restricted(&client, &watched).await;
    let export = export(&client, &watched, &[]).await;

    let port = free_port();
    let apiserver_port = cp
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let image = testenv::node::operator_image_name();
    let (repository, tag) = image.rsplit_once(':').unwrap();
    let values = merge(
        mode(&watched),
        json!({
            "image": {"repository": repository, "tag": tag},
            "mux": {"baseUrl": export.sim.url()},
            "watchNamespaces": [watched],
            "metrics": {"port": port},
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": apiserver_port},
                {"name": "METRICS_ADDR", "value": format!("127.0.0.1:{port}")},
            ],
        }),
    );
    let install = helm_install(cp, &client, &values).await;
    let pod = available_pod(&client, &install).await;

    export.create(&client, &watched).await;
    let copying = until(&client, &watched, &install, &pod, "a copy Job", |o| {
        o.status.as_ref()?.copy.as_ref()?.job.clone()
    })
    .await;
    let run = kubelet::run_job(&client, &watched, &copying).await;
    assert_eq!(run.exit_code, 0, "the copy runs: {}", run.stderr);
    let sha = until(&client, &watched, &install, &pod, "Copied", |o| {
        let status = o.status.as_ref()?;
        (status.phase == Some(Phase::Copied)).then(|| status.copy.as_ref()?.sha256.clone())?
    })
    .await;
    let seed = mux_sim::admin_client::SimAdmin::new(export.sim.url())
        .inspect(&export.asset_id)
        .await
        .unwrap()["seed"]
        .as_u64()
        .unwrap();
    assert_eq!(sha, mux_sim::content::sha256_hex(seed, export.size));

    // The pod acted as itself: its own token, which the operator's log names no impersonation
    // for, and nothing refused.
    let logs = pod_logs(&client, &install, &pod).await;
    assert!(
        !logs.contains("forbidden") && !logs.contains("Forbidden"),
        "the operator's pod was refused something:\n{logs}"
    );
    let spec = Api::<Pod>::namespaced(client.clone(), &install.namespace)
        .get(&pod)
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some(install.service_account.as_str())
    );
}

/// Waits until the release's Deployment has an available pod (its probes pass); its name.
async fn available_pod(client: &Client, install: &Install) -> String {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &install.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &install.namespace);
    let deadline = tokio::time::Instant::now() + AVAILABLE;
    loop {
        let deployment = deployments.get(&install.service_account).await.unwrap();
        let available = deployment
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if available >= 1 {
            let listed = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=mux-master-operator"))
                .await
                .unwrap();
            let ready = listed.items.into_iter().find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if let Some(pod) = ready {
                return pod.metadata.name.unwrap();
            }
        }
        if tokio::time::Instant::now() > deadline {
            let mut report = String::new();
            for pod in pods.list(&ListParams::default()).await.unwrap().items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                report.push_str(&format!(
                    "--- {name}: {:?}\n{}\n",
                    pod.status.and_then(|s| s.container_statuses),
                    pod_logs(client, install, &name).await
                ));
            }
            panic!("the operator's Deployment has no available pod after {AVAILABLE:?}:\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asks for the MasterExport until `found` returns something; the operator pod's log on timeout.
async fn until<T>(
    client: &Client,
    namespace: &str,
    install: &Install,
    pod: &str,
    what: &str,
    found: impl Fn(&MasterExport) -> Option<T>,
) -> T {
    let api: Api<MasterExport> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + kubelet::JOB_TIMEOUT;
    loop {
        if let Some(value) = api.get("keynote").await.ok().as_ref().and_then(&found) {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "no {what} within {:?}; the operator pod's log:\n{}",
                kubelet::JOB_TIMEOUT,
                pod_logs(client, install, pod).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The operator pod's log, through the apiserver and the kubelet (`kubectl logs`).
async fn pod_logs(client: &Client, install: &Install, pod: &str) -> String {
    Api::<Pod>::namespaced(client.clone(), &install.namespace)
        .logs(pod, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("(no log: {e})"))
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
