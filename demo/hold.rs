//! The end: hold everything for trying by hand, and what to try next.

use super::*;

/// MMO_DEMO_HOLD=1: leave everything running and say how to reach it, until Ctrl-C.
pub(crate) async fn hold_until_interrupted(
    cp: &ControlPlane,
    sim: &MuxSim,
    minio: &Minio,
    operator: &Operator,
) {
    println!(
        "\nMMO_DEMO_HOLD is set: everything keeps running until Ctrl-C. In another terminal:\n  \
         export KUBECONFIG={}\n  .tools/kubectl-{}/kubectl -n {NAMESPACE} get mexp -w\n  \
         .tools/kubectl-{}/kubectl -n {NAMESPACE} patch mexp keynote-2026 --type merge -p '{{\"spec\":{{\"access\":\"none\"}}}}'\n  \
         curl -s {}/_sim/stats     # the Mux calls made\n  {}\nMinIO: {}",
        cp.kubeconfig().display(),
        Tool::KubeApiserver.version(),
        Tool::KubeApiserver.version(),
        sim.url(),
        operator.log_hint(),
        minio.endpoint(),
    );
    let _ = tokio::signal::ctrl_c().await;
}

pub(crate) fn next_steps(real_node: bool) {
    let ran = if real_node {
        "  - etcd and kube-apiserver: a real Kubernetes API (crates/testenv)
  - a node: containerd, a kubelet, the Job controller and the scheduler (crates/testenv/src/node)
  - the operator: its chart's Deployment, from the image `make image` built, and the copy Job's pod
    from the same image, both run by the kubelet"
    } else {
        "  - etcd and kube-apiserver: a real Kubernetes API, without nodes (crates/testenv)
  - the operator: target/debug/mux-master-operator run, as its Deployment would run it"
    };
    println!(
        "
What ran where (all on this machine, all stopped now):
{ran}
  - mux-sim: the Mux API, on the wire, with master URLs it serves itself (crates/mux-sim)
  - MinIO: an S3 server, where the archive landed

What to try next:
  - MMO_DEMO_HOLD=1 make demo     keep it all running and poke at it with kubectl
  - make test                     every test, against the same real components
  - helm install mux-master-operator charts/mux-master-operator -n mux-system --create-namespace
                                  on a real cluster (build the image from the Dockerfile); then
                                  kubectl -n media apply -k examples/ with your Mux token and IDs
  - deploy/argocd/                Argo CD health for MasterExports"
    );
}
