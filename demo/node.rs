//! Where pods run: the real node (containerd, kubelet, Job controller and scheduler from
//! `testenv::node`) when one can run here, or nowhere, the demo then playing the kubelet's part.

use super::*;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use testenv::node::Node;

/// Set (to anything) to run the fallback even where a node could run.
pub(crate) const PLAYED_ENV: &str = "MMO_DEMO_PLAYED";

/// The real node, or why there is none.
pub(crate) enum Pods {
    Node(Node),
    Played(String),
}

impl Pods {
    /// Starts the node on `cp` when one can run and the operator's image is built; otherwise
    /// the reason the demo plays the kubelet. A node that fails to start is an error: the
    /// machine said it could run one.
    pub(crate) fn start(cp: &ControlPlane) -> Result<Self> {
        if std::env::var_os(PLAYED_ENV).is_some() {
            return Ok(Pods::Played(format!("{PLAYED_ENV} is set")));
        }
        if let Some(reason) = Node::unavailable() {
            return Ok(Pods::Played(reason));
        }
        if let Err(e) = testenv::node::operator_image_archive() {
            return Ok(Pods::Played(e.to_string()));
        }
        let node = tokio::task::block_in_place(|| Node::start(cp))?;
        Ok(Pods::Node(node))
    }

    pub(crate) fn is_real(&self) -> bool {
        matches!(self, Pods::Node(_))
    }

    /// The end of each node component's log, for a failure's message.
    pub(crate) fn log_tails(&self) -> String {
        match self {
            Pods::Node(node) => node.log_tails(),
            Pods::Played(_) => String::new(),
        }
    }
}

/// The chart's values for the demo's node: the image `make image` built (never pulled), mux-sim
/// as Mux, a brisk poll (it stands in for webhooks). The node's pods share the host's loopback
/// network, so `extraEnv` names the apiserver at 127.0.0.1 (the injected
/// KUBERNETES_SERVICE_HOST is a cluster IP nothing routes here) and binds metrics to a free
/// loopback port, which `metrics.port` gives the probes; as tests/chart/on_node.rs does.
pub(crate) fn chart_values(cp: &ControlPlane, mux_url: &str) -> Result<Value> {
    let image = testenv::node::operator_image_name();
    let (repository, tag) = image
        .rsplit_once(':')
        .ok_or("an image name without a tag")?;
    let apiserver_port = cp
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .ok_or("an apiserver URL without a port")?
        .to_owned();
    let port = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    Ok(json!({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "copy": {"image": image},
        "mux": {"baseUrl": mux_url},
        "watchNamespaces": [NAMESPACE],
        "controller": {"pollMin": "500ms", "pollMax": "2s"},
        "metrics": {"port": port},
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": apiserver_port},
            {"name": "METRICS_ADDR", "value": format!("127.0.0.1:{port}")},
        ],
    }))
}

/// Waits for copy Job `name` to finish on the node (the Job controller says Complete or
/// Failed); what its pod's container said.
pub(crate) async fn wait_for_job(client: &Client, name: &str) -> Result<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let deadline = started + READY_DEADLINE;
    loop {
        let job = jobs.get(name).await?;
        let finished = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conditions| {
                conditions
                    .iter()
                    .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
                    .map(|c| c.type_.clone())
            });
        if let Some(outcome) = finished {
            let selector = format!("batch.kubernetes.io/job-name={name}");
            let listed = pods.list(&ListParams::default().labels(&selector)).await?;
            let codes: Vec<String> = listed
                .items
                .iter()
                .filter_map(|p| {
                    let state = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
                    let code = state.state.as_ref()?.terminated.as_ref()?.exit_code;
                    Some(format!("pod {} exit {code}", p.metadata.name.as_deref()?))
                })
                .collect();
            let said = format!(
                "Job {outcome} in {:.1} s ({})",
                started.elapsed().as_secs_f64(),
                codes.join(", ")
            );
            return if outcome == "Complete" {
                Ok(said)
            } else {
                Err(said.into())
            };
        }
        if Instant::now() > deadline {
            return Err(format!(
                "Job {name} did not finish within {READY_DEADLINE:?}: {:?}",
                job.status
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
