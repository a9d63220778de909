//! The chart's own files: its CRD, `helm lint`, the Kubernetes schemas, refused values.

use std::path::Path;

use serde_json::json;

use super::helm::*;

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
