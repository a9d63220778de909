//! kube-controller-manager and kube-scheduler: what turns Jobs into Pods and Pods into
//! assignments, collects garbage, finalizes namespaces and makes `default` ServiceAccounts.
//!
//! Both talk to the apiserver as the admin (the node is a test fixture, not a cluster to
//! harden), serve their health endpoints on 127.0.0.1 only, and keep their self-signed serving
//! certificates under the node's folder.

use std::path::Path;
use std::process::Command;

use crate::error::Result;
use crate::process::{Process, free_port};
use crate::ready::{block_on, http_get_ok, until_ready};
use crate::scratch::Scratch;
use crate::tools::Tool;

/// What the controller-manager needs from the control plane.
#[derive(Debug)]
pub(crate) struct ControlPlaneFiles<'a> {
    pub(crate) kubeconfig: &'a Path,
    /// Signs the tokens of the ServiceAccount token controller.
    pub(crate) service_account_key: &'a Path,
    /// The apiserver's serving CA, published to every namespace as `kube-root-ca.crt`.
    pub(crate) root_ca: &'a Path,
}

/// Starts kube-controller-manager; returns once its `/healthz` answers.
pub(crate) fn start_controller_manager(
    scratch: &mut Scratch,
    files: &ControlPlaneFiles<'_>,
) -> Result<Process> {
    let mut command = Command::new(Tool::KubeControllerManager.path()?);
    command
        .arg("--service-account-private-key-file")
        .arg(files.service_account_key)
        .arg("--root-ca-file")
        .arg(files.root_ca)
        // Every default controller (Job, garbage collector, namespace, ServiceAccount, ...).
        .arg("--controllers=*")
        .arg("--use-service-account-credentials=false");
    start(
        "kube-controller-manager",
        command,
        scratch,
        files.kubeconfig,
    )
}

/// Starts kube-scheduler; returns once its `/healthz` answers.
pub(crate) fn start_scheduler(scratch: &mut Scratch, kubeconfig: &Path) -> Result<Process> {
    let command = Command::new(Tool::KubeScheduler.path()?);
    start("kube-scheduler", command, scratch, kubeconfig)
}

/// The flags both share, then the start and the wait.
fn start(
    name: &str,
    mut command: Command,
    scratch: &mut Scratch,
    kubeconfig: &Path,
) -> Result<Process> {
    let port = free_port()?;
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--authentication-kubeconfig")
        .arg(kubeconfig)
        .arg("--authorization-kubeconfig")
        .arg(kubeconfig)
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg("--cert-dir")
        .arg(scratch.dir().join(format!("{name}-certs")))
        .arg("--leader-elect=false")
        .arg("--v=1");
    let mut process = Process::spawn(name, command, scratch)?;
    let url = format!("https://127.0.0.1:{port}/healthz");
    block_on(async {
        let http = insecure_client()?;
        let (http, url) = (&http, url.as_str());
        until_ready(&mut process, move || async move {
            http_get_ok(http, url).await.map(drop)
        })
        .await
    })??;
    Ok(process)
}

/// An HTTP client that accepts the components' self-signed serving certificates (loopback only,
/// health endpoints only).
fn insecure_client() -> Result<reqwest::Client> {
    mux::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| crate::Error::Other(format!("building an HTTP client: {e}")))
}
