//! Offline helpers: helm, rendering, value sets, the schema validator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use testenv::Tool;

pub(crate) const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/mux-master-operator");

/// The Kubernetes release the project builds and tests against (`tools/versions.mk`), which is
/// also the version `helm template` and the schema validation assume.
pub(crate) fn kube_version() -> &'static str {
    Tool::KubeApiserver.version()
}

pub(crate) fn helm(args: &[&str]) -> Output {
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
pub(crate) fn scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
        .to_path_buf()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `values` as a values file and returns its path.
pub(crate) fn values_file(name: &str, values: &Value) -> PathBuf {
    let path = scratch().join(format!("{name}-{}.yaml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, serde_yaml::to_string(values).unwrap()).unwrap();
    path
}

/// `helm template` with these values; returns the output or helm's error text.
pub(crate) fn template(values: &Value, extra: &[&str]) -> Result<String, String> {
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
pub(crate) fn render(values: &Value) -> Vec<Value> {
    let yaml = template(values, &[]).unwrap_or_else(|e| panic!("helm template fails: {e}"));
    documents(&yaml)
}

pub(crate) fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).expect("valid YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

pub(crate) fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

pub(crate) fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}: {found:#?}");
    found[0]
}

pub(crate) fn container(objects: &[Value]) -> &Value {
    &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The operator container's environment: name → value (or the JSON of valueFrom).
pub(crate) fn env(objects: &[Value]) -> BTreeMap<String, String> {
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
pub(crate) fn grants(
    objects: &[Value],
    service_account: &str,
) -> BTreeSet<(String, String, String, String)> {
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

pub(crate) fn namespaced_values(namespaces: &[&str]) -> Value {
    json!({"rbac": {"mode": "namespaced"}, "watchNamespaces": namespaces})
}

/// Every optional part switched on.
pub(crate) fn everything_values() -> Value {
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
pub(crate) fn value_sets() -> Vec<(&'static str, Value)> {
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

pub(crate) fn merge(mut base: Value, over: Value) -> Value {
    if let (Some(base), Value::Object(over)) = (base.as_object_mut(), over) {
        for (k, v) in over {
            base.insert(k, v);
        }
    }
    base
}

/// Runs kubernetes-validate, strict (unknown fields are errors), against the schemas of our
/// Kubernetes minor; returns (success, output).
pub(crate) fn kubernetes_validate(file: &Path) -> (bool, String) {
    let minor = kube_version()
        .trim_start_matches('v')
        .rsplit_once('.')
        .unwrap()
        .0;
    let out = Command::new(testenv::tools::venv_python().expect("the venv"))
        .args(["-m", "kubernetes_validate", "--strict", "-k"])
        .arg(format!("{minor}.0"))
        .arg(file)
        .output()
        .expect("kubernetes-validate runs");
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

/// The environment variables that `mux-master-operator run` reads, from its own `--help`: each
/// with its flag, and whether the flag takes a value.
pub(crate) fn operator_env_flags() -> BTreeMap<String, (String, bool)> {
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
