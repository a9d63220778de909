//! Helpers for installs into the real apiserver: a release, the operator as its ServiceAccount,
//! an export taken to Copied.

use testenv::fixtures as support;

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use support::{Operator, TIMEOUT, eventually, kubelet};
use testenv::{ControlPlane, Minio, MuxSim};

use super::helm::*;

pub(crate) fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// A kubeconfig that is the admin's, acting as `system:serviceaccount:NS:NAME`: what a pod with
/// that ServiceAccount's token would be allowed, without a kubelet to run one.
pub(crate) fn impersonating_kubeconfig(cp: &ControlPlane, namespace: &str, name: &str) -> PathBuf {
    let admin = std::fs::read_to_string(cp.kubeconfig()).unwrap();
    let mut config: Value = serde_yaml::from_str(&admin).unwrap();
    for user in config["users"].as_array_mut().unwrap() {
        user["user"]["as"] = json!(format!("system:serviceaccount:{namespace}:{name}"));
        user["user"]["as-groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated",
        ]);
    }
    let path = scratch().join(format!("kubeconfig-{namespace}-{name}"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

pub(crate) struct Install {
    pub(crate) release: String,
    pub(crate) namespace: String,
    pub(crate) service_account: String,
}

/// `helm install` into a fresh release namespace; the namespace is labelled to enforce the
/// restricted Pod Security profile first.
pub(crate) async fn helm_install(cp: &ControlPlane, client: &Client, values: &Value) -> Install {
    let namespace = cp.fresh_namespace("chart-sys").await.unwrap();
    enforce_restricted(client, &namespace).await;
    // Release names are cluster-unique here: ClusterRoles are named after the release.
    let release = format!("mmo-{}", &namespace[namespace.len() - 8..]);
    // Copy Jobs run the image the test node holds (`make image`). The operator itself runs as a
    // process here (below), so the Deployment's pods must not run: nothing is pulled, ever.
    let local = json!({
        "copy": {"image": testenv::node::operator_image_name()},
        "image": {"pullPolicy": "Never"},
    });
    let values = merge_deep(values.clone(), local);
    let file = values_file("install", &values);
    let out = helm(&[
        "install",
        &release,
        CHART,
        "--kubeconfig",
        cp.kubeconfig().to_str().unwrap(),
        "--namespace",
        &namespace,
        "-f",
        file.to_str().unwrap(),
        // No kubelet runs here, so the Deployment never becomes available: no --wait.
        "--timeout",
        "60s",
    ]);
    assert!(
        out.status.success(),
        "helm install:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("1. Put a Mux access token"),
        "NOTES.txt is shown: {}",
        text(&out.stdout)
    );
    Install {
        service_account: format!("{release}-mux-master-operator"),
        release,
        namespace,
    }
}

/// The flags that give the operator process the environment of the installed Deployment's
/// container (Operator::start sets the Mux URL, namespaces, metrics address and log level itself).
pub(crate) async fn deployment_args(
    client: &Client,
    install: &Install,
    watched: &str,
) -> Vec<String> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), &install.namespace)
        .get(&install.service_account)
        .await
        .unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(container.args, Some(vec!["run".to_owned()]));
    let flags = operator_env_flags();
    let mut args = Vec::new();
    for var in container.env.clone().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            // What the kubelet resolves: the downward API, and Secret keys (read here as the
            // admin, as the kubelet reads them with its own identity, not the pod's).
            (None, Some(from)) => match (&from.field_ref, &from.secret_key_ref) {
                (Some(field), _) if field.field_path == "metadata.namespace" => {
                    install.namespace.clone()
                }
                (Some(field), _) if field.field_path == "metadata.name" => {
                    format!("{}-7d9f-x1", install.service_account)
                }
                (None, Some(key)) => {
                    let secret = Api::<Secret>::namespaced(client.clone(), &install.namespace)
                        .get(&key.name)
                        .await
                        .unwrap_or_else(|e| panic!("{}: Secret {}: {e}", var.name, key.name));
                    let bytes = secret.data.unwrap_or_default()[&key.key].0.clone();
                    String::from_utf8(bytes).unwrap()
                }
                other => panic!("{}: unexpected valueFrom {other:?}", var.name),
            },
            (None, None) => String::new(),
        };
        match var.name.as_str() {
            "WATCH_NAMESPACES" => assert_eq!(value, watched),
            // The chart's port is the pod's own; here many operators share one machine.
            "WEBHOOK_ADDR" => args.extend(["--webhook-addr".to_owned(), "127.0.0.1:0".to_owned()]),
            "MUX_BASE_URL" | "METRICS_ADDR" | "LOG_LEVEL" | "LOG_FORMAT" => {}
            name => {
                let (flag, takes_value) = &flags[name];
                if *takes_value {
                    args.extend([flag.clone(), value]);
                } else if value == "true" {
                    args.push(flag.clone());
                }
            }
        }
    }
    args
}

/// The Deployment's pod, created as a bare Pod in the release namespace: the apiserver's
/// PodSecurity admission (enforcing `restricted` there) and ServiceAccount admission accept it.
pub(crate) async fn pod_is_admitted(client: &Client, install: &Install) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &install.namespace);
    let deployment = Api::<Deployment>::namespaced(client.clone(), &install.namespace)
        .get(&install.service_account)
        .await
        .unwrap();
    let template = deployment.spec.unwrap().template;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "restricted-check", "labels": template.metadata.unwrap().labels},
        "spec": template.spec,
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("the chart's pod is refused: {e}"));
    // And the check is real: the same pod without its security context is refused.
    let mut lax = pod.clone();
    lax.metadata.name = Some("lax-check".into());
    let spec = lax.spec.as_mut().unwrap();
    spec.security_context = None;
    spec.containers[0].security_context = None;
    let refused = pods.create(&PostParams::default(), &lax).await;
    match refused {
        Err(kube::Error::Api(status)) if status.message.contains("violates PodSecurity") => {}
        other => panic!("a pod without a security context should violate PodSecurity: {other:?}"),
    }
}

/// `over` merged into `base`, objects key by key at every level.
fn merge_deep(mut base: Value, over: Value) -> Value {
    match (base.as_object_mut(), over) {
        (Some(fields), Value::Object(over)) => {
            for (key, value) in over {
                let merged = match fields.remove(&key) {
                    Some(old) => merge_deep(old, value),
                    None => value,
                };
                fields.insert(key, merged);
            }
            base
        }
        (_, over) => over,
    }
}

pub(crate) struct Export {
    pub(crate) sim: MuxSim,
    pub(crate) name: String,
    pub(crate) asset_id: String,
    pub(crate) size: u64,
    pub(crate) key: String,
}

/// Enforces the restricted Pod Security profile in `namespace`: every Pod created there, the copy
/// Jobs' included, is checked by the apiserver's admission.
pub(crate) async fn enforce_restricted(client: &Client, namespace: &str) {
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await
        .unwrap();
}

/// A mux-sim with an asset; in `namespace`, the credentials Secrets (Mux, MinIO). The
/// MasterExport, archiving the master into MinIO, comes with [`Export::create`].
pub(crate) async fn export(client: &Client, namespace: &str, sim_args: &[&str]) -> Export {
    let mut args = vec!["--master-prepare-delay", "300ms"];
    args.extend_from_slice(sim_args);
    let sim = MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &args)
        .expect("mux-sim starts");
    let minio = Minio::shared().expect("MinIO starts");
    let size = 300_000;
    let asset = SimAdmin::new(sim.url())
        .seed_asset(json!({"size": size}))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for secret in [
        json!({"metadata": {"name": "mux"},
               "stringData": {"tokenId": support::TOKEN_ID, "tokenSecret": support::TOKEN_SECRET}}),
        json!({"metadata": {"name": "archive"},
               "stringData": {"AWS_ACCESS_KEY_ID": minio.access_key(),
                              "AWS_SECRET_ACCESS_KEY": minio.secret_key()}}),
    ] {
        let secret: Secret = serde_json::from_value(secret).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    Export {
        sim,
        name: "keynote".into(),
        asset_id: asset.id,
        size,
        key: format!("{namespace}/keynote.mp4"),
    }
}

impl Export {
    pub(crate) async fn create(&self, client: &Client, namespace: &str) {
        let minio = Minio::shared().expect("MinIO starts");
        let object: MasterExport = serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1",
            "kind": "MasterExport",
            "metadata": {"name": self.name},
            "spec": {
                "source": {"assetId": self.asset_id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {
                    "url": format!("s3://{}/{}", minio.bucket(), self.key),
                    "endpoint": minio.endpoint(),
                    "pathStyle": true,
                    "credentialsSecretRef": {"name": "archive"},
                },
            },
        }))
        .unwrap();
        Api::<MasterExport>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
}

/// Waits until the export satisfies `done`; on a timeout, the operator's log says why.
pub(crate) async fn wait_for(
    client: &Client,
    namespace: &str,
    export: &Export,
    operator: &Operator,
    what: &str,
    done: impl Fn(&MasterExport) -> bool,
) -> MasterExport {
    let api: Api<MasterExport> = Api::namespaced(client.clone(), namespace);
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Ok(obj) = api.get(&export.name).await
                && done(&obj)
            {
                return obj;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the MasterExport is {what} within {TIMEOUT:?}; operator log:\n{}",
            operator.log()
        )
    })
}

pub(crate) fn phase(obj: &MasterExport) -> Option<Phase> {
    obj.status.as_ref()?.phase
}

/// Takes the export through everything the operator does with its identity: Ready (the URL
/// Secret, Events), then Copying (a Job), the Job's pod run by the node (admitted by the
/// namespace's restricted Pod Security; on the real node, run by the kubelet), then Copied (the operator read the
/// copier's report from the pod) with the object in MinIO.
pub(crate) async fn becomes_ready_and_copied(
    client: &Client,
    namespace: &str,
    export: &Export,
    operator: &Operator,
) {
    let copying = wait_for(client, namespace, export, operator, "Copying", |o| {
        phase(o) == Some(Phase::Copying)
    })
    .await;
    let url = copying
        .status
        .as_ref()
        .unwrap()
        .master
        .as_ref()
        .unwrap()
        .url
        .clone();
    assert!(url.is_some(), "the URL is published before the copy");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get("keynote-master")
        .await
        .expect("the operator wrote the URL Secret");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    eventually(TIMEOUT, "an Event on the MasterExport", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("keynote"))
    })
    .await;

    let job = copying
        .status
        .unwrap()
        .copy
        .unwrap()
        .job
        .expect("a copy Job");
    let run = kubelet::run_job(client, namespace, &job).await;
    assert_eq!(run.exit_code, 0, "the copy runs: {}", run.stderr);
    let copied = wait_for(client, namespace, export, operator, "Copied", |o| {
        phase(o) == Some(Phase::Copied)
    })
    .await;
    let seed = SimAdmin::new(export.sim.url())
        .inspect(&export.asset_id)
        .await
        .unwrap()["seed"]
        .as_u64()
        .unwrap();
    let copy = copied.status.unwrap().copy.unwrap();
    assert_eq!(copy.size, Some(export.size));
    assert_eq!(
        copy.sha256.as_deref(),
        Some(content::sha256_hex(seed, export.size).as_str()),
        "verified against the master's real SHA-256"
    );
    let minio = Minio::shared().unwrap();
    let meta = minio
        .store(minio.bucket())
        .unwrap()
        .head(&object_store::path::Path::from(export.key.as_str()))
        .await
        .expect("the master is in the bucket");
    assert_eq!(meta.size, export.size);

    let log = operator.log();
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "the operator was refused something:\n{log}"
    );
}
