//! The real node: containerd, kubelet, controller-manager and scheduler on the test control
//! plane. Where no node can run here (see `testenv::node::Node::unavailable`), each test says so
//! and passes, unless `MMO_REQUIRE_NODE` is set (CI), when it fails.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node as NodeObject, Pod};
use kube::Api;
use kube::api::{LogParams, Patch, PatchParams, PostParams};
use serde_json::json;
use testenv::ControlPlane;
use testenv::node::{
    NODE_NAME, Node, REQUIRE_ENV, operator_image_archive, operator_image_name,
    wait_for_default_service_account,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The bound on every wait for a pod.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The shared node, or `None` (with a line saying why) where none can run and none is required.
fn node() -> Result<Option<&'static Node>, Box<dyn std::error::Error>> {
    if let Some(reason) = Node::unavailable() {
        if std::env::var_os(REQUIRE_ENV).is_some() {
            return Err(format!("{REQUIRE_ENV} is set, but no node can run here: {reason}").into());
        }
        eprintln!("node: not tested, no node can run here: {reason}");
        return Ok(None);
    }
    let started = Instant::now();
    let node = Node::shared()?;
    eprintln!("node: ready after {:?}", started.elapsed());
    Ok(Some(node))
}

#[tokio::test]
async fn the_node_registers_and_is_ready() -> TestResult {
    let Some(_node) = node()? else {
        return Ok(());
    };
    let client = ControlPlane::shared()?.client()?;
    let node = Api::<NodeObject>::all(client).get(NODE_NAME).await?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .ok_or("no Ready condition")?;
    assert_eq!(ready.status, "True", "{ready:?}");
    Ok(())
}

/// Waits until pod `name` has finished; returns its phase.
async fn finished(pods: &Api<Pod>, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let phase = pods.get(name).await?.status.and_then(|s| s.phase);
        match phase.as_deref() {
            Some(done @ ("Succeeded" | "Failed")) => return Ok(done.to_owned()),
            _ if Instant::now() > deadline => {
                return Err(format!("pod {name} is {phase:?} after {TIMEOUT:?}").into());
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A namespace where the real Pod Security admission enforces the restricted profile.
async fn restricted_namespace(prefix: &str) -> Result<String, Box<dyn std::error::Error>> {
    let control_plane = ControlPlane::shared()?;
    let client = control_plane.client()?;
    let namespace = control_plane.fresh_namespace(prefix).await?;
    let label = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    wait_for_default_service_account(&client, &namespace).await?;
    Ok(namespace)
}

/// A pod that passes the restricted profile, running the operator's image with `args`.
fn restricted_pod(name: &str, args: &[&str]) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "operator",
                "image": operator_image_name(),
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
            }],
        },
    }))
}

#[tokio::test]
async fn the_operator_image_prints_its_version_in_a_restricted_pod() -> TestResult {
    let Some(node) = node()? else {
        return Ok(());
    };
    let image = operator_image_name();
    assert!(
        node.has_image(&image)?,
        "the node has no {image}: run `make image` ({})",
        operator_image_archive()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    );
    let namespace = restricted_namespace("image").await?;
    let pods: Api<Pod> = Api::namespaced(ControlPlane::shared()?.client()?, &namespace);
    pods.create(
        &PostParams::default(),
        &restricted_pod("version", &["--version"])?,
    )
    .await?;
    let phase = finished(&pods, "version").await?;
    // Through the apiserver, which asks the kubelet: what `kubectl logs` does.
    let logs = pods.logs("version", &LogParams::default()).await?;
    assert_eq!(phase, "Succeeded", "logs: {logs}\n{}", node.log_tails());
    assert_eq!(
        logs.trim(),
        format!("mux-master-operator {}", env!("CARGO_PKG_VERSION"))
    );
    let status = pods.get("version").await?.status.unwrap_or_default();
    let terminated = status.container_statuses.unwrap_or_default()[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .ok_or("the container did not terminate")?;
    assert_eq!(terminated.exit_code, 0);
    Ok(())
}

#[tokio::test]
async fn the_restricted_profile_is_enforced_on_pods() -> TestResult {
    let Some(_node) = node()? else {
        return Ok(());
    };
    let namespace = restricted_namespace("psa").await?;
    let pods: Api<Pod> = Api::namespaced(ControlPlane::shared()?.client()?, &namespace);
    let mut root = restricted_pod("as-root", &["--version"])?;
    let spec = root.spec.as_mut().ok_or("a spec")?;
    spec.security_context
        .as_mut()
        .ok_or("a context")?
        .run_as_non_root = Some(false);
    spec.security_context
        .as_mut()
        .ok_or("a context")?
        .run_as_user = Some(0);
    let refused = pods.create(&PostParams::default(), &root).await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains("restricted"), "{status:?}");
        }
        other => panic!("a pod running as root was not refused: {other:?}"),
    }
    Ok(())
}
