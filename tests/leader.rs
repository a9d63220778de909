//! Two replicas with leader election: one leads and reconciles; when it dies, the other
//! takes the Lease and carries on.

use testenv::fixtures as support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use support::{Operator, TIMEOUT, World, eventually, is_ready};

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("mux-master-operator")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies() {
    let mut world = World::new("leader", &["--master-prepare-delay", "200ms"], &[]).await;
    // Replace the default operator with two replicas electing a leader in the namespace.
    world.operator = None;
    let ns = world.namespace.clone();
    let args = |id: &'static str| {
        vec![
            "--leader-elect",
            "--lease-duration",
            "3s",
            "--lease-namespace",
            &ns,
            "--identity",
            id,
        ]
    };
    let kubeconfig = world.control_plane.kubeconfig().to_path_buf();
    let mut a = Some(Operator::start(
        &kubeconfig,
        world.sim.url(),
        &ns,
        &args("replica-a"),
    ));
    let b = Operator::start(&kubeconfig, world.sim.url(), &ns, &args("replica-b"));

    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &ns);
    let first = eventually(TIMEOUT, "a leader", || holder(&leases)).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "one",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    world
        .wait("one", "Ready under the first leader", is_ready)
        .await;

    // Kill the leader; the standby must take the Lease once it lapses.
    let (survivor, mut dead) = if first == "replica-a" {
        (b, a.take().unwrap())
    } else {
        (a.take().unwrap(), b)
    };
    dead.kill();
    let second = eventually(TIMEOUT, "a new leader", || async {
        holder(&leases).await.filter(|h| *h != first)
    })
    .await;
    assert_ne!(second, first);

    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "two",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    world
        .wait("two", "Ready under the new leader", is_ready)
        .await;
    drop(survivor);
}
