//! The Helm chart (`charts/mux-master-operator`): linted, rendered and checked offline against the
//! Kubernetes schemas, its values refused with a message when wrong, and installed into the real
//! apiserver, where the operator runs as the chart's ServiceAccount (by impersonation) to prove
//! that the RBAC is enough, and is refused what it should not have, to prove it is not too much.

use testenv::fixtures as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use mux_master_operator::resource::{MasterExport, Phase};
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use support::{Operator, TIMEOUT, eventually, install_crd, kubelet};
use testenv::{ControlPlane, Minio, MuxSim, Tool};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/mux-master-operator");

// --- helpers -----------------------------------------------------------------------------------

/// The Kubernetes release the project builds and tests against (`tools/versions.mk`), which is
/// also the version `helm template` and the schema validation assume.
fn kube_version() -> &'static str {
    Tool::KubeApiserver.version()
}

fn helm(args: &[&str]) -> Output {
    let helm = Tool::Helm.path().expect("helm is built by `make tools`");
    Command::new(helm)
        .args(args)
        // Helm keeps caches and repository lists under these: keep them out of the user's home.
        .env("HELM_CACHE_HOME", scratch().join("helm-cache"))
        .env("HELM_CONFIG_HOME", scratch().join("helm-config"))
        .env("HELM_DATA_HOME", scratch().join("helm-data"))
        .output()
        .expect("helm runs")
}

/// A folder for this test process's files, removed by the OS's tmp cleaning at worst; each test
/// writes under a name of its own.
fn scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `values` as a values file and returns its path.
fn values_file(name: &str, values: &Value) -> PathBuf {
    let path = scratch().join(format!("{name}-{}.yaml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, serde_yaml::to_string(values).unwrap()).unwrap();
    path
}

/// `helm template` with these values; returns the output or helm's error text.
fn template(values: &Value, extra: &[&str]) -> Result<String, String> {
    let file = values_file("values", values);
    let mut args = vec![
        "template",
        "mmo",
        CHART,
        "--namespace",
        "mmo-system",
        "--kube-version",
        kube_version(),
        "-f",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = helm(&args);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// The rendered objects, as JSON.
fn render(values: &Value) -> Vec<Value> {
    let yaml = template(values, &[]).unwrap_or_else(|e| panic!("helm template fails: {e}"));
    documents(&yaml)
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}: {found:#?}");
    found[0]
}

fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The operator container's environment: name → value (or the JSON of valueFrom).
fn env(objects: &[Value]) -> BTreeMap<String, String> {
    container(objects)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = match e.get("value") {
                Some(v) => v.as_str().unwrap().to_owned(),
                None => e["valueFrom"].to_string(),
            };
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// Every (namespace or "cluster", apiGroup, resource, verb) the rendered RBAC grants the
/// operator's ServiceAccount, following the bindings to their roles.
fn grants(objects: &[Value], service_account: &str) -> BTreeSet<(String, String, String, String)> {
    let mut grants = BTreeSet::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let bound = binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == service_account);
        if !bound {
            continue;
        }
        let scope = binding["metadata"]["namespace"]
            .as_str()
            .unwrap_or("cluster")
            .to_owned();
        let role_ref = &binding["roleRef"];
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == role_ref["kind"]
                    && o["metadata"]["name"] == role_ref["name"]
                    && (o["kind"] == "ClusterRole"
                        || o["metadata"]["namespace"] == binding["metadata"]["namespace"])
            })
            .unwrap_or_else(|| panic!("the role of {binding:#} is rendered"));
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        grants.insert((
                            scope.clone(),
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    grants
}

fn namespaced_values(namespaces: &[&str]) -> Value {
    json!({"rbac": {"mode": "namespaced"}, "watchNamespaces": namespaces})
}

/// Every optional part switched on.
fn everything_values() -> Value {
    json!({
        "replicaCount": 2,
        "image": {"tag": "1.2.3", "digest": format!("sha256:{}", "ab".repeat(32))},
        "webhooks": {
            "enabled": true,
            "signingSecretRef": {"name": "mux-webhooks"},
            "ingress": {"enabled": true, "className": "nginx", "host": "hooks.example.com",
                        "tls": [{"secretName": "hooks-tls", "hosts": ["hooks.example.com"]}]},
        },
        "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}},
        "networkPolicy": {"enabled": true,
                          "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
        "podDisruptionBudget": {"enabled": true},
        "commonLabels": {"team": "media"},
        "extraEnv": [{"name": "URL_LIFETIME", "value": "24h"}],
    })
}

/// The value sets every offline check runs over.
fn value_sets() -> Vec<(&'static str, Value)> {
    vec![
        ("defaults", json!({})),
        ("namespaced", namespaced_values(&["media", "archive"])),
        ("everything", everything_values()),
        (
            "namespaced-everything",
            merge(everything_values(), namespaced_values(&["media"])),
        ),
    ]
}

fn merge(mut base: Value, over: Value) -> Value {
    if let (Some(base), Value::Object(over)) = (base.as_object_mut(), over) {
        for (k, v) in over {
            base.insert(k, v);
        }
    }
    base
}

fn venv_python() -> PathBuf {
    let tools = std::env::var_os("MMO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let python = tools.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make tools` (it creates the Python venv with kubernetes-validate)",
        python.display()
    );
    python
}

/// Runs kubernetes-validate, strict (unknown fields are errors), against the schemas of our
/// Kubernetes minor; returns (success, output).
fn kubernetes_validate(file: &Path) -> (bool, String) {
    let minor = kube_version()
        .trim_start_matches('v')
        .rsplit_once('.')
        .unwrap()
        .0;
    let out = Command::new(venv_python())
        .args(["-m", "kubernetes_validate", "--strict", "-k"])
        .arg(format!("{minor}.0"))
        .arg(file)
        .output()
        .expect("kubernetes-validate runs");
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

// --- offline: the chart's files ----------------------------------------------------------------

#[test]
fn the_chart_ships_the_crd_the_operator_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = std::fs::read_to_string(root.join("crds/masterexport.yaml")).unwrap();
    let shipped = std::fs::read_to_string(Path::new(CHART).join("crds/masterexport.yaml")).unwrap();
    assert!(
        generated == shipped,
        "charts/mux-master-operator/crds/masterexport.yaml differs from crds/masterexport.yaml: \
         cp crds/masterexport.yaml charts/mux-master-operator/crds/"
    );
}

#[test]
fn helm_lint_passes_for_every_value_set() {
    for (name, values) in value_sets() {
        let file = values_file(name, &values);
        let out = helm(&[
            "lint",
            "--strict",
            CHART,
            "--kube-version",
            kube_version(),
            "-f",
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "helm lint ({name}):\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    // The validator must be able to fail: a Deployment with a misspelt field does.
    let broken = scratch().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  \
         selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    \
         spec:\n      containers: [{name: c, image: i, imagePullPolicy: IfNotPresent, portz: []}]\n",
    )
    .unwrap();
    let (ok, output) = kubernetes_validate(&broken);
    assert!(!ok, "a misspelt field must fail validation: {output}");

    for (name, values) in value_sets() {
        let yaml = template(&values, &["--include-crds"])
            .unwrap_or_else(|e| panic!("helm template ({name}): {e}"));
        let objects = documents(&yaml);
        let file = scratch().join(format!("rendered-{name}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        let (ok, output) = kubernetes_validate(&file);
        assert!(ok, "kubernetes-validate ({name}):\n{output}");
        // Every object was checked against a schema, except the Prometheus Operator's
        // ServiceMonitor, whose schema is not Kubernetes'.
        let passed = output.matches(" passed for resource ").count();
        let unknown = of_kind(&objects, "ServiceMonitor").len();
        assert_eq!(
            passed + unknown,
            objects.len(),
            "every object validated ({name}):\n{output}"
        );
        for line in output.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                line.contains("kind ServiceMonitor"),
                "unexpected warning ({name}): {line}"
            );
        }
    }
}

#[test]
fn wrong_values_are_refused_with_a_message_that_names_them() {
    let cases = [
        (json!({"rbac": {"mode": "cluster-wide"}}), "/rbac/mode"),
        (json!({"replicaCount": 0}), "/replicaCount"),
        (json!({"replicacount": 2}), "'replicacount' not allowed"),
        (json!({"image": {"digest": "sha256:abc"}}), "/image/digest"),
        (json!({"controller": {"pollMin": 5}}), "/controller/pollMin"),
        (
            json!({"controller": {"pollMin": "5 minutes"}}),
            "/controller/pollMin",
        ),
        (
            json!({"leaderElection": {"enabled": "maybe"}}),
            "/leaderElection/enabled",
        ),
        (json!({"mux": {"baseUrl": "api.mux.com"}}), "/mux/baseUrl"),
        (json!({"watchNamespaces": ["Media"]}), "/watchNamespaces/0"),
        (json!({"logging": {"format": "xml"}}), "/logging/format"),
        (
            json!({"rbac": {"mode": "namespaced"}}),
            "rbac.mode=namespaced needs watchNamespaces",
        ),
        (
            json!({"webhooks": {"enabled": true}}),
            "webhooks.enabled=true needs webhooks.signingSecretRef.name",
        ),
        (
            json!({"webhooks": {"ingress": {"enabled": true}}}),
            "webhooks.ingress.enabled=true needs webhooks.enabled=true",
        ),
        (
            json!({"replicaCount": 3, "leaderElection": {"enabled": false}}),
            "replicaCount > 1 needs leader election",
        ),
        (
            json!({"podDisruptionBudget": {"enabled": true, "minAvailable": 1, "maxUnavailable": 1}}),
            "set minAvailable or maxUnavailable, not both",
        ),
    ];
    for (values, message) in cases {
        let Err(error) = template(&values, &[]) else {
            panic!("{values} should be refused");
        };
        assert!(
            error.contains(message),
            "{values}: the error should contain {message:?}; it was:\n{error}"
        );
    }
}

// --- offline: what the chart renders ------------------------------------------------------------

#[test]
fn every_object_carries_the_recommended_labels() {
    for (name, values) in value_sets() {
        for object in render(&values) {
            let labels = &object["metadata"]["labels"];
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
                "app.kubernetes.io/managed-by",
                "app.kubernetes.io/part-of",
                "helm.sh/chart",
            ] {
                assert!(
                    labels[key].is_string(),
                    "{name}: {} {} lacks {key}",
                    object["kind"],
                    object["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn the_pod_meets_the_restricted_pod_security_profile_and_is_probed() {
    let objects = render(&json!({}));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&objects);
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        c["image"], "mux-master-operator:0.1.0",
        "the tag is the appVersion"
    );
    assert_eq!(
        env(&objects)["COPY_IMAGE"],
        "mux-master-operator:0.1.0",
        "copy Jobs run the operator's image"
    );
    let env = env(&objects);
    assert_eq!(env["METRICS_ADDR"], "0.0.0.0:8080");
    assert!(env["POD_NAME"].contains("metadata.name"));
    assert!(env["POD_NAMESPACE"].contains("metadata.namespace"));
}

#[test]
fn the_image_runs_as_the_user_the_chart_asks_for() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile sets USER");
    let objects = render(&json!({}));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(
        user.trim(),
        format!("{}:{}", pod["runAsUser"], pod["runAsGroup"]),
        "a numeric, non-root user in the image and the chart alike"
    );
    assert!(dockerfile.contains(r#"CMD ["run"]"#));
    assert_eq!(container(&objects)["args"], json!(["run"]));
}

#[test]
fn the_image_is_pulled_by_tag_or_digest() {
    let digest = format!("sha256:{}", "0f".repeat(32));
    let cases = [
        (
            json!({"image": {"tag": "1.2.3"}}),
            "mux-master-operator:1.2.3".to_owned(),
        ),
        (
            json!({"image": {"repository": "registry.example/mmo", "digest": digest}}),
            format!("registry.example/mmo@{digest}"),
        ),
        (
            json!({"image": {"tag": "1.2.3", "digest": digest}}),
            format!("mux-master-operator:1.2.3@{digest}"),
        ),
    ];
    for (values, image) in cases {
        assert_eq!(container(&render(&values))["image"], image.as_str());
    }
}

#[test]
fn leader_election_follows_the_replica_count() {
    let single = render(&json!({}));
    assert_eq!(env(&single)["LEADER_ELECT"], "false");
    assert_eq!(
        one(&single, "Deployment")["spec"]["strategy"]["type"],
        "Recreate",
        "one replica without election: the old pod stops before the new one starts"
    );
    assert!(
        !grants(&single, "mmo-mux-master-operator")
            .iter()
            .any(|g| g.2 == "leases"),
        "no Lease permissions without an election"
    );

    let several = render(&json!({"replicaCount": 2}));
    let env = env(&several);
    assert_eq!(env["LEADER_ELECT"], "true");
    assert_eq!(env["LEASE_NAME"], "mmo-mux-master-operator");
    let leases: BTreeSet<_> = grants(&several, "mmo-mux-master-operator")
        .into_iter()
        .filter(|g| g.2 == "leases")
        .collect();
    assert!(!leases.is_empty());
    assert!(
        leases.iter().all(|g| g.0 == "mmo-system"),
        "leases only in the release namespace: {leases:?}"
    );
    let role = of_kind(&several, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "mmo-mux-master-operator-leader-election")
        .unwrap();
    let named = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["verbs"].as_array().unwrap().contains(&json!("update")))
        .unwrap();
    assert_eq!(named["resourceNames"], json!(["mmo-mux-master-operator"]));

    assert_eq!(
        crate::env(&render(&json!({"leaderElection": {"enabled": true}})))["LEADER_ELECT"],
        "true"
    );
}

#[test]
fn cluster_mode_grants_what_the_operator_does_and_nothing_more() {
    let objects = render(&json!({}));
    let grants = grants(&objects, "mmo-mux-master-operator");
    let expected: BTreeSet<_> = [
        ("masterexport.io", "masterexports", "get list watch patch"),
        ("masterexport.io", "masterexports/status", "patch"),
        ("masterexport.io", "masterexports/finalizers", "update"),
        ("", "secrets", "get create patch"),
        ("events.k8s.io", "events", "create patch"),
        ("", "events", "create patch"),
        ("batch", "jobs", "get list watch create delete"),
        ("", "pods", "list"),
    ]
    .into_iter()
    .flat_map(|(group, resource, verbs)| {
        verbs.split(' ').map(move |verb| {
            (
                "cluster".to_owned(),
                group.to_owned(),
                resource.to_owned(),
                verb.to_owned(),
            )
        })
    })
    .collect();
    assert_eq!(grants, expected);
}

#[test]
fn namespaced_mode_grants_nothing_cluster_wide() {
    let objects = render(&merge(
        namespaced_values(&["media", "archive"]),
        json!({"replicaCount": 2}),
    ));
    assert!(
        of_kind(&objects, "ClusterRoleBinding").is_empty(),
        "no ClusterRoleBinding in namespaced mode"
    );
    let grants = grants(&objects, "mmo-mux-master-operator");
    let scopes: BTreeSet<_> = grants.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        scopes,
        BTreeSet::from(["archive", "media", "mmo-system"]),
        "{grants:#?}"
    );
    for namespace in ["media", "archive"] {
        for verb in ["get", "create", "patch"] {
            assert!(grants.contains(&(namespace.into(), "".into(), "secrets".into(), verb.into())));
        }
        assert!(grants.contains(&(
            namespace.into(),
            "batch".into(),
            "jobs".into(),
            "create".into()
        )));
    }
    // In the release namespace: the Lease, and nothing else.
    assert!(
        grants
            .iter()
            .filter(|g| g.0 == "mmo-system")
            .all(|g| g.2 == "leases"),
        "{grants:#?}"
    );
    assert_eq!(env(&objects)["WATCH_NAMESPACES"], "media,archive");
    // The only ClusterRole is for people (aggregated into admin and edit), bound to no one here.
    for role in of_kind(&objects, "ClusterRole") {
        assert_eq!(
            role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
        assert_eq!(
            role["rules"],
            json!([{"apiGroups": ["masterexport.io"], "resources": ["masterexports"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]}])
        );
    }
}

#[test]
fn webhooks_are_wired_to_the_service_and_the_ingress() {
    let objects = render(&everything_values());
    let env = env(&objects);
    assert_eq!(env["WEBHOOK_ADDR"], "0.0.0.0:8443");
    let secrets: Value = serde_json::from_str(&env["MUX_WEBHOOK_SECRETS"]).unwrap();
    assert_eq!(
        secrets["secretKeyRef"],
        json!({"name": "mux-webhooks", "key": "signingSecrets"})
    );
    let ports = &one(&objects, "Service")["spec"]["ports"];
    assert_eq!(
        ports,
        &json!([
            {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"},
            {"name": "webhooks", "port": 8443, "targetPort": "webhooks", "protocol": "TCP"},
        ])
    );
    let ingress = one(&objects, "Ingress");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "hooks.example.com");
    assert_eq!(rule["http"]["paths"][0]["path"], "/webhooks/mux");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "webhooks"
    );
    assert_eq!(
        one(&objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"],
        "metrics"
    );
    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"].as_array().unwrap().len(), 2);

    // Off by default: no webhook port, no webhook variables, no Ingress.
    let plain = render(&json!({}));
    assert!(!crate::env(&plain).contains_key("WEBHOOK_ADDR"));
    assert_eq!(
        one(&plain, "Service")["spec"]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(of_kind(&plain, "Ingress").is_empty());
}

/// The environment variables that `mux-master-operator run` reads, from its own `--help`: each
/// with its flag, and whether the flag takes a value.
fn operator_env_flags() -> BTreeMap<String, (String, bool)> {
    let out = Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .args(["run", "--help"])
        .output()
        .expect("the operator runs");
    let help = text(&out.stdout);
    let mut flags = BTreeMap::new();
    let mut current: Option<(String, bool)> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--").or_else(|| {
            trimmed
                .strip_prefix('-')
                .and_then(|r| r.split_once(", --").map(|(_, r)| r))
        }) {
            let mut words = rest.split_whitespace();
            let flag = format!("--{}", words.next().unwrap());
            let takes_value = words.next().is_some_and(|w| w.starts_with('<'));
            current = Some((flag, takes_value));
        }
        if let (Some(at), Some(flag)) = (line.find("[env: "), current.clone()) {
            let name: String = line[at + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            flags.insert(name, flag);
        }
    }
    assert!(flags.contains_key("LEADER_ELECT"), "parsed --help: {help}");
    flags
}

#[test]
fn every_variable_the_chart_sets_is_one_the_operator_reads() {
    let flags = operator_env_flags();
    for (name, values) in value_sets() {
        for variable in env(&render(&values)).keys() {
            assert!(
                flags.contains_key(variable),
                "{name}: the chart sets {variable}, which `mux-master-operator run` does not read"
            );
        }
    }
}

// --- on the real apiserver ----------------------------------------------------------------------

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// A kubeconfig that is the admin's, acting as `system:serviceaccount:NS:NAME`: what a pod with
/// that ServiceAccount's token would be allowed, without a kubelet to run one.
fn impersonating_kubeconfig(cp: &ControlPlane, namespace: &str, name: &str) -> PathBuf {
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

struct Install {
    release: String,
    namespace: String,
    service_account: String,
}

/// `helm install` into a fresh release namespace; the namespace is labelled to enforce the
/// restricted Pod Security profile first.
async fn helm_install(cp: &ControlPlane, client: &Client, values: &Value) -> Install {
    let namespace = cp.fresh_namespace("chart-sys").await.unwrap();
    enforce_restricted(client, &namespace).await;
    // Release names are cluster-unique here: ClusterRoles are named after the release.
    let release = format!("mmo-{}", &namespace[namespace.len() - 8..]);
    let file = values_file("install", values);
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
async fn deployment_args(client: &Client, install: &Install, watched: &str) -> Vec<String> {
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
async fn pod_is_admitted(client: &Client, install: &Install) {
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

struct Export {
    sim: MuxSim,
    name: String,
    asset_id: String,
    size: u64,
    key: String,
}

/// Enforces the restricted Pod Security profile in `namespace`: every Pod created there, the copy
/// Jobs' included, is checked by the apiserver's admission.
async fn enforce_restricted(client: &Client, namespace: &str) {
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
async fn export(client: &Client, namespace: &str, sim_args: &[&str]) -> Export {
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
    async fn create(&self, client: &Client, namespace: &str) {
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
async fn wait_for(
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

fn phase(obj: &MasterExport) -> Option<Phase> {
    obj.status.as_ref()?.phase
}

/// Takes the export through everything the operator does with its identity: Ready (the URL
/// Secret, Events), then Copying (a Job), the Job's container run as a kubelet would (its pod
/// admitted by the namespace's restricted Pod Security), then Copied (the operator read the
/// copier's report from the pod) with the object in MinIO.
async fn becomes_ready_and_copied(
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
    forbidden(
        Api::<Secret>::namespaced(sa.clone(), &watched)
            .list(&ListParams::default())
            .await,
        "listing Secrets even where it works",
    );
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
