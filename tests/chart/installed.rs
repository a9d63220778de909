//! The chart installed into the real apiserver, in both RBAC modes.

use testenv::fixtures as support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};
use mux_master_operator::resource::MasterExport;
use mux_sim::admin_client::SimAdmin;
use serde_json::json;
use support::{Operator, install_crd};
use testenv::ControlPlane;

use super::helm::*;

use super::release::*;
#[tokio::test]
async fn cluster_mode_install_runs_the_operator_with_enough_rbac() {
    let cp = ControlPlane::shared().expect("the control plane starts");
    let client = cp.client().unwrap();
    install_crd(&client).await;
    // Two replicas: leader election on, so the Lease permissions are exercised too.
    let install = helm_install(cp, &client, &json!({"replicaCount": 2})).await;
    pod_is_admitted(&client, &install).await;

    let watched = cp.fresh_namespace("chart-media").await.unwrap();
    enforce_restricted(&client, &watched).await;
    let export = export(&client, &watched, &[]).await;
    let kubeconfig = impersonating_kubeconfig(cp, &install.namespace, &install.service_account);
    let args = deployment_args(&client, &install, &watched).await;
    assert!(args.contains(&"--leader-elect".to_owned()), "{args:?}");
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let operator = Operator::start(&kubeconfig, export.sim.url(), &watched, &arg_refs);
    export.create(&client, &watched).await;
    becomes_ready_and_copied(&client, &watched, &export, &operator).await;

    // It leads through the Lease in the release namespace.
    let lease = Api::<Lease>::namespaced(client.clone(), &install.namespace)
        .get(&install.service_account)
        .await
        .expect("the operator created its Lease");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(format!("{}-7d9f-x1", install.service_account).as_str())
    );

    // Not too much, even cluster-wide: no Lease elsewhere, no deleting Secrets, no reading Pods.
    let sa = cp
        .service_account_client(&install.namespace, &install.service_account)
        .unwrap();
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    forbidden(
        Api::<Lease>::namespaced(sa.clone(), &watched)
            .create(&PostParams::default(), &lease)
            .await,
        "a Lease outside the release namespace",
    );
    forbidden(
        Api::<Secret>::namespaced(sa.clone(), &watched)
            .delete("mux", &Default::default())
            .await,
        "deleting a Secret",
    );
    forbidden(
        Api::<Pod>::namespaced(sa.clone(), &watched)
            .get("any")
            .await,
        "reading a Pod (it may only list them, for copy reports)",
    );
    drop(operator);
    uninstall(cp, &install);
}

#[tokio::test]
async fn namespaced_mode_install_is_enough_there_and_refused_elsewhere() {
    let cp = ControlPlane::shared().expect("the control plane starts");
    let client = cp.client().unwrap();
    install_crd(&client).await;
    let watched = cp.fresh_namespace("chart-media").await.unwrap();
    let elsewhere = cp.fresh_namespace("chart-other").await.unwrap();
    enforce_restricted(&client, &watched).await;
    // Webhooks on, their signing secret in a Secret of the release namespace.
    let values = merge(
        namespaced_values(&[&watched]),
        json!({"webhooks": {"enabled": true, "signingSecretRef": {"name": "mux-webhooks"}}}),
    );
    let install = helm_install(cp, &client, &values).await;
    let signing: Secret = serde_json::from_value(json!({
        "metadata": {"name": "mux-webhooks"}, "stringData": {"signingSecrets": "whsec-old,whsec-chart"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &install.namespace)
        .create(&PostParams::default(), &signing)
        .await
        .unwrap();

    let export = export(&client, &watched, &["--webhook-secret", "whsec-chart"]).await;
    let kubeconfig = impersonating_kubeconfig(cp, &install.namespace, &install.service_account);
    let args = deployment_args(&client, &install, &watched).await;
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let operator = Operator::start(&kubeconfig, export.sim.url(), &watched, &arg_refs);
    // Mux (mux-sim) delivers its webhooks to the endpoint the chart turned on, signed with the
    // secret the chart's Secret holds: with webhooks on, they are what wakes the operator.
    let hook = operator.webhook_addr().await;
    SimAdmin::new(export.sim.url())
        .configure(json!({"webhook_urls": [format!("http://{hook}/webhooks/mux")]}))
        .await
        .unwrap();
    export.create(&client, &watched).await;
    becomes_ready_and_copied(&client, &watched, &export, &operator).await;
    webhooks_verify_with_the_charts_secret(&operator).await;

    // A Secret in a namespace it does not watch: the operator's identity cannot touch it.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "mux"}, "stringData": {"tokenId": "a", "tokenSecret": "b"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &elsewhere)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let sa = cp
        .service_account_client(&install.namespace, &install.service_account)
        .unwrap();
    let there: Api<Secret> = Api::namespaced(sa.clone(), &elsewhere);
    forbidden(there.get("mux").await, "getting a Secret elsewhere");
    forbidden(
        there.list(&ListParams::default()).await,
        "listing Secrets elsewhere",
    );
    forbidden(
        there.create(&PostParams::default(), &secret).await,
        "creating a Secret elsewhere",
    );
    forbidden(
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await,
        "listing Secrets cluster-wide",
    );
    forbidden(
        Api::<Secret>::namespaced(sa.clone(), &install.namespace)
            .list(&ListParams::default())
            .await,
        "listing Secrets in the release namespace",
    );
    forbidden(
        Api::<MasterExport>::all(sa.clone())
            .list(&ListParams::default())
            .await,
        "listing MasterExports cluster-wide",
    );
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "i"}]}}},
    }))
    .unwrap();
    forbidden(
        Api::<Job>::namespaced(sa.clone(), &elsewhere)
            .create(&PostParams::default(), &job)
            .await,
        "creating a Job elsewhere",
    );
    // ...while where it works, the same calls are allowed.
    Api::<Secret>::namespaced(sa.clone(), &watched)
        .get_opt("no-such-secret")
        .await
        .expect("reading Secrets where it works");
    // Listing (and watching) Secrets where it works is what the watch on its URL Secrets needs:
    // RBAC cannot narrow it to the operator's own by label. Elsewhere it stays refused (above).
    Api::<Secret>::namespaced(sa.clone(), &watched)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=mux-master-operator"))
        .await
        .expect("listing Secrets where it works (the URL Secret watch)");
    Api::<Job>::namespaced(sa.clone(), &watched)
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &job,
        )
        .await
        .expect("creating a Job where it works");
    drop(operator);
    uninstall(cp, &install);
}

/// The webhook endpoint the chart turned on verifies signatures with the secrets from the
/// chart's Secret (both, while rotating), and refuses others.
async fn webhooks_verify_with_the_charts_secret(operator: &Operator) {
    use hmac::{Hmac, Mac};
    let url = format!("http://{}/webhooks/mux", operator.webhook_addr().await);
    let body = r#"{"type":"video.asset.ready","object":{"type":"asset","id":"a1"},"id":"e1","data":{"id":"a1","status":"ready"},"created_at":"2026-11-21T00:00:00Z","attempts":[]}"#;
    let sign = |secret: &str| {
        let t = jiff::Timestamp::now().as_second();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let http = reqwest::Client::new();
    for (secret, accepted) in [
        ("whsec-chart", true),
        ("whsec-old", true),
        ("whsec-other", false),
    ] {
        let status = http
            .post(&url)
            .header("Mux-Signature", sign(secret))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status.is_success(),
            accepted,
            "signed with {secret}: {status}"
        );
    }
}

/// `helm uninstall` removes what it installed (cluster-scoped roles included); the CRD stays,
/// as Helm leaves CRDs alone.
fn uninstall(cp: &ControlPlane, install: &Install) {
    let out = helm(&[
        "uninstall",
        &install.release,
        "--kubeconfig",
        cp.kubeconfig().to_str().unwrap(),
        "--namespace",
        &install.namespace,
    ]);
    assert!(
        out.status.success(),
        "helm uninstall: {}",
        text(&out.stderr)
    );
}
