//! The Argo CD health check (`deploy/argocd/masterexport.io/MasterExport/health.lua`), run by a
//! real Lua 5.1 (Argo CD's gopher-lua speaks 5.1; lupa, in the project's venv, embeds the
//! reference implementation) against its test cases, laid out as Argo CD's
//! `resource_customizations` are, and against objects the real operator wrote.

use testenv::fixtures as support;

use std::path::Path;

use mux_master_operator::resource::MasterExport;
use serde_json::{Value, json};
use support::{World, condition, is_ready};

const CHECK_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/argocd/masterexport.io/MasterExport"
);

/// The health Argo CD would show for each object: `(status, message)`, by the real Lua 5.1 of
/// testenv's runner.
fn health(objects: &[Value]) -> Vec<(String, String)> {
    testenv::fixtures::argocd::health(&Path::new(CHECK_DIR).join("health.lua"), objects)
}

fn yaml_file(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

struct Case {
    input: String,
    status: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let tests = yaml_file(&Path::new(CHECK_DIR).join("health_test.yaml"));
    tests["tests"]
        .as_array()
        .expect("health_test.yaml has `tests`")
        .iter()
        .map(|t| Case {
            input: t["inputPath"].as_str().unwrap().to_owned(),
            status: t["healthStatus"]["status"].as_str().unwrap().to_owned(),
            message: t["healthStatus"]["message"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn the_health_check_gives_each_test_case_its_expected_health() {
    let cases = cases();
    let objects: Vec<Value> = cases
        .iter()
        .map(|c| yaml_file(&Path::new(CHECK_DIR).join(&c.input)))
        .collect();
    let results = health(&objects);
    for (case, (status, message)) in cases.iter().zip(results) {
        assert_eq!(
            (status.as_str(), message.as_str()),
            (case.status.as_str(), case.message.as_str()),
            "{}",
            case.input
        );
    }
    // Every health Argo CD knows that applies here is covered.
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(
            cases.iter().any(|c| c.status == status),
            "no case for {status}"
        );
    }
}

#[test]
fn every_sample_is_a_test_case_and_a_well_typed_master_export() {
    let referenced: std::collections::BTreeSet<String> =
        cases().into_iter().map(|c| c.input).collect();
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(Path::new(CHECK_DIR).join("testdata")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("testdata/{}", path.file_name().unwrap().to_string_lossy());
        // The samples have the operator's own types: status fields a real operator writes.
        let object: MasterExport = serde_json::from_value(yaml_file(&path))
            .unwrap_or_else(|e| panic!("{name} is not a MasterExport: {e}"));
        assert_eq!(object.metadata.namespace.as_deref(), Some("media"));
        found.insert(name);
    }
    assert_eq!(found, referenced, "testdata/ and health_test.yaml agree");
}

#[test]
fn the_argocd_cm_entry_is_the_same_script() {
    let script = std::fs::read_to_string(Path::new(CHECK_DIR).join("health.lua")).unwrap();
    let cm = yaml_file(&Path::new(CHECK_DIR).join("../../argocd-cm.yaml"));
    assert_eq!(
        cm["data"]["resource.customizations.health.masterexport.io_MasterExport"]
            .as_str()
            .unwrap(),
        script,
        "deploy/argocd/argocd-cm.yaml embeds health.lua verbatim: regenerate it"
    );
}

/// The check reads what the operator really writes: Ready, Stalled and suspended objects from
/// the operator running against the real apiserver and mux-sim.
#[tokio::test]
async fn the_health_check_reads_what_the_operator_writes() {
    let world = World::new("argocd", &["--master-prepare-delay", "300ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let spec = |secret: &str| json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": secret}});
    world.create("ready", spec("mux")).await.unwrap();
    world
        .create("stalled", spec("no-such-secret"))
        .await
        .unwrap();
    let mut suspended = spec("mux");
    suspended["suspend"] = json!(true);
    world.create("suspended", suspended).await.unwrap();

    let ready = world.wait("ready", "Ready", is_ready).await;
    let stalled = world
        .wait("stalled", "Stalled", |o| {
            condition(o, "Stalled").is_some_and(|(s, _)| s == "True")
        })
        .await;
    let suspended = world.api().get("suspended").await.unwrap();
    let objects: Vec<Value> = [ready, stalled, suspended]
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
    let results = health(&objects);
    assert_eq!(results[0].0, "Healthy", "{:?}", results[0]);
    assert!(results[0].1.starts_with("UrlReady: "), "{:?}", results[0]);
    assert_eq!(results[1].0, "Degraded", "{:?}", results[1]);
    assert!(
        results[1].1.starts_with("CredentialsSecretNotFound: "),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].0, "Suspended", "{:?}", results[2]);
}
