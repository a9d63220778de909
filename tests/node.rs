//! The real node: containerd, kubelet, controller-manager and scheduler on the test control
//! plane. Where no node can run here (see `testenv::node::Node::unavailable`), each test says so
//! and passes, unless `MMO_REQUIRE_NODE` is set (CI), when it fails.

use std::time::Instant;

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;
use testenv::ControlPlane;
use testenv::node::{NODE_NAME, Node, REQUIRE_ENV};

type TestResult = Result<(), Box<dyn std::error::Error>>;

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
