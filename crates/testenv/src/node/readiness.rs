//! Waiting, by asking the apiserver, until the node is Ready and the controllers work.

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::{Api, Client, Config};

use super::kubelet::NODE_NAME;
use crate::error::Result;
use crate::process::Process;
use crate::ready::until_ready;

/// Until the kubelet's Node reports `Ready=True` and the ServiceAccount controller has made the
/// `default` namespace's `default` account (so Jobs can make pods).
pub(crate) async fn until_node_ready(kubelet: &mut Process, config: Config) -> Result<()> {
    let client = Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    let (nodes, accounts) = (&nodes, &accounts);
    until_ready(kubelet, move || async move {
        let node = nodes
            .get_opt(NODE_NAME)
            .await
            .map_err(|e| format!("GET node {NODE_NAME}: {e}"))?
            .ok_or_else(|| format!("node {NODE_NAME} not registered yet"))?;
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        match ready {
            Some(c) if c.status == "True" => {}
            Some(c) => {
                return Err(format!(
                    "node {NODE_NAME} Ready={}: {}",
                    c.status,
                    c.message.unwrap_or_default()
                ));
            }
            None => return Err(format!("node {NODE_NAME} has no Ready condition yet")),
        }
        accounts
            .get_opt("default")
            .await
            .map_err(|e| format!("GET serviceaccount default/default: {e}"))?
            .map(drop)
            .ok_or_else(|| "no default ServiceAccount yet (controller-manager)".to_owned())
    })
    .await
}

/// Waits until namespace `namespace` has its `default` ServiceAccount: the apiserver refuses
/// pods before it exists, and the controller-manager makes it a moment after the namespace.
pub async fn wait_for_default_service_account(client: &Client, namespace: &str) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = std::time::Instant::now() + crate::ready::READY_TIMEOUT;
    loop {
        if accounts.get_opt("default").await?.is_some() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(crate::Error::Other(format!(
                "namespace {namespace} has no default ServiceAccount after {:?}",
                crate::ready::READY_TIMEOUT
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
