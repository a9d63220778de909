//! The MasterExportSet's Argo CD health check
//! (`deploy/argocd/masterexport.io/MasterExportSet/health.lua`) against its test cases, the
//! argocd-cm copy, and sets the set controller wrote on the real apiserver.

use testenv::fixtures as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::World;
use support::argocd::health;
use support::exportset::{
    create_set, install_set_crd, set_condition, set_is_ready, start_set_controller, wait_set,
};

fn check_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd/masterexport.io/MasterExportSet")
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_set_health_check_gives_each_test_case_its_expected_health() {
    let tests = yaml(&check_dir().join("health_test.yaml"));
    let cases = tests["tests"].as_array().unwrap();
    let objects: Vec<Value> = cases
        .iter()
        .map(|c| yaml(&check_dir().join(c["inputPath"].as_str().unwrap())))
        .collect();
    let got = health(&check_dir().join("health.lua"), &objects);
    for (case, (status, message)) in cases.iter().zip(got) {
        let want = &case["healthStatus"];
        assert_eq!(
            (status.as_str(), message.as_str()),
            (
                want["status"].as_str().unwrap(),
                want["message"].as_str().unwrap()
            ),
            "{}",
            case["inputPath"]
        );
    }
    // Every sample is a case, and a well-typed set.
    for entry in std::fs::read_dir(check_dir().join("testdata")).unwrap() {
        let name = format!("testdata/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            cases.iter().any(|c| c["inputPath"] == name.as_str()),
            "{name} has no case"
        );
        let object = yaml(&check_dir().join(&name));
        serde_json::from_value::<mux_master_operator::exportset::resource::MasterExportSet>(object)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_argocd_cm_entry_is_the_same_set_script() {
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    let cm = yaml(&check_dir().join("../../argocd-cm.yaml"));
    assert_eq!(
        cm["data"]["resource.customizations.health.masterexport.io_MasterExportSet"]
            .as_str()
            .unwrap(),
        script,
        "deploy/argocd/argocd-cm.yaml embeds the set's health.lua verbatim: regenerate it"
    );
}

#[tokio::test]
async fn the_set_health_check_reads_what_the_set_controller_writes() {
    let world = World::new(
        "set-argocd",
        &["--master-prepare-delay", "200ms"],
        &["--poll-min", "100ms"],
    )
    .await;
    install_set_crd(&world.client).await;
    world.seed_assets(2, json!({"size": 1000})).await;
    start_set_controller(&world, 50.0);
    let timeout = Duration::from_secs(60);
    create_set(
        &world,
        "good",
        json!({"credentialsSecretRef": {"name": "mux"}}),
    )
    .await
    .unwrap();
    let bad_template = json!({
        "credentialsSecretRef": {"name": "mux"},
        "template": {"destination": {"url": "s3://a/{createdAt:%Q}/{assetId}"}},
    });
    create_set(&world, "bad", bad_template).await.unwrap();
    let good = wait_set(&world, "good", "Ready", timeout, set_is_ready).await;
    let bad = wait_set(&world, "bad", "Stalled", timeout, |s| {
        set_condition(s, "Stalled").is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    let objects = [
        serde_json::to_value(&good).unwrap(),
        serde_json::to_value(&bad).unwrap(),
    ];
    let got = health(&check_dir().join("health.lua"), &objects);
    assert_eq!(got[0], ("Healthy".into(), "Exported: 2/2 exported".into()));
    assert_eq!(got[1].0, "Degraded");
    assert!(
        got[1]
            .1
            .starts_with("InvalidTemplate: destination.url: {createdAt:%Q}"),
        "{}",
        got[1].1
    );
}
