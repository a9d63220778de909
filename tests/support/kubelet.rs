//! The node's part for copy Jobs in tests: `testenv::kubelet` with this build's operator binary.

use std::path::Path;

use kube::Client;
use mux_master_operator::testenv::kubelet;

/// The outcome of one run.
pub struct Run {
    pub exit_code: i32,
    pub message: String,
    pub stderr: String,
}

/// Pods need the namespace's `default` ServiceAccount (no controller-manager makes it here).
pub async fn ensure_default_service_account(client: &Client, namespace: &str) {
    kubelet::ensure_default_service_account(client, namespace)
        .await
        .expect("the default ServiceAccount");
}

/// Runs Job `name`'s one container to completion and records it in the apiserver.
pub async fn run_job(client: &Client, namespace: &str, name: &str) -> Run {
    let program = Path::new(env!("CARGO_BIN_EXE_mux-master-operator"));
    let run = kubelet::run_job(client, namespace, name, program)
        .await
        .unwrap_or_else(|e| panic!("running Job {name}: {e}"));
    Run {
        exit_code: run.exit_code,
        message: run.message,
        stderr: run.stderr,
    }
}
