//! What the chart renders: labels, Pod Security, the image, leader election, RBAC, webhooks, and
//! the variables the operator reads.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::helm::*;

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
        super::helm::env(&render(&json!({"leaderElection": {"enabled": true}})))["LEADER_ELECT"],
        "true"
    );
}

#[test]
fn cluster_mode_grants_what_the_operator_does_and_nothing_more() {
    let objects = render(&json!({}));
    let grants = grants(&objects, "mmo-mux-master-operator");
    let expected: BTreeSet<_> = [
        (
            "masterexport.io",
            "masterexports",
            "get list watch create patch",
        ),
        ("masterexport.io", "masterexports/status", "patch"),
        ("masterexport.io", "masterexports/finalizers", "update"),
        ("masterexport.io", "masterexportsets", "get list watch"),
        ("masterexport.io", "masterexportsets/status", "patch"),
        ("masterexport.io", "masterexportsets/finalizers", "update"),
        ("", "secrets", "get list watch create patch"),
        ("events.k8s.io", "events", "create patch"),
        ("", "events", "create patch"),
        ("batch", "jobs", "get list watch create delete"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
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
        for verb in ["get", "list", "watch", "create", "patch"] {
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
            json!([{"apiGroups": ["masterexport.io"], "resources": ["masterexports", "masterexportsets"],
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
    assert!(!super::helm::env(&plain).contains_key("WEBHOOK_ADDR"));
    assert_eq!(
        one(&plain, "Service")["spec"]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(of_kind(&plain, "Ingress").is_empty());
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

#[test]
fn the_copies_minimum_age_after_ready_is_a_value() {
    assert_eq!(
        env(&render(&json!({})))["COPY_MIN_AGE"],
        "1m",
        "the operator's own default"
    );
    let shorter = render(&json!({"copy": {"minAge": "20s"}}));
    assert_eq!(env(&shorter)["COPY_MIN_AGE"], "20s");
}

#[test]
fn the_url_can_be_kept_out_of_the_status() {
    assert_eq!(
        env(&render(&json!({})))["URL_IN_STATUS"],
        "true",
        "by default the status publishes the URL, as before"
    );
    let secret_only = render(&json!({"controller": {"urlInStatus": false}}));
    assert_eq!(env(&secret_only)["URL_IN_STATUS"], "false");
}
