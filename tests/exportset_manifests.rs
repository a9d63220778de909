//! `mux-master-operator export-manifests` against mux-sim: one MasterExport per selected ready
//! asset, deterministic, the pattern applied, each accepted by the real apiserver as it is.

use std::process::Command;

use kube::Api;
use kube::api::PostParams;
use mux_master_operator::resource::MasterExport;
use mux_sim::admin_client::SimAdmin;
use serde_json::json;
use testenv::fixtures as support;
use testenv::{ControlPlane, MuxSim};

fn export_manifests(sim: &MuxSim, flags: &[&str]) -> (String, String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .arg("export-manifests")
        .args(["--mux-base-url", sim.url()])
        .args(flags)
        .env("MUX_TOKEN_ID", support::TOKEN_ID)
        .env("MUX_TOKEN_SECRET", support::TOKEN_SECRET)
        .output()
        .expect("the operator runs");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        output.status.success(),
    )
}

#[tokio::test]
async fn export_manifests_prints_one_master_export_per_selected_ready_asset() {
    let sim = MuxSim::start(testenv::bins::mux_sim().unwrap(), &[]).unwrap();
    let admin = SimAdmin::new(sim.url());
    let mut wanted = Vec::new();
    for i in 0..120 {
        // More than a page (100): the listing follows the cursor.
        let passthrough = if i % 2 == 0 { "keep/x" } else { "other" };
        let asset = admin
            .seed_asset(json!({"passthrough": passthrough}))
            .await
            .unwrap();
        if i % 2 == 0 {
            wanted.push(asset.id);
        }
    }
    let errored = admin
        .seed_asset(json!({"passthrough": "keep/y"}))
        .await
        .unwrap();
    admin.error_asset(&errored.id).await.unwrap();

    let flags = [
        "--passthrough-prefix",
        "keep/",
        "--destination",
        "s3://archive/{passthrough}/{assetId}.mp4",
        "--endpoint",
        "http://minio.storage:9000",
        "--path-style",
        "--destination-secret",
        "archive",
        "--name-prefix",
        "env",
    ];
    let (yaml, stderr, ok) = export_manifests(&sim, &flags);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("60 MasterExports; left out: 0 not ready yet, 1 errored"),
        "{stderr}"
    );
    let exports: Vec<MasterExport> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let mut ids: Vec<String> = exports
        .iter()
        .map(|e| e.spec.source.asset_id.clone().unwrap())
        .collect();
    ids.sort();
    wanted.sort();
    assert_eq!(ids, wanted);
    for e in &exports {
        let id = e.spec.source.asset_id.as_deref().unwrap();
        assert_eq!(
            e.spec.destination.as_ref().unwrap().url,
            format!("s3://archive/keep_x/{id}.mp4")
        );
        assert!(e.metadata.name.as_deref().unwrap().starts_with("env-"));
    }
    let (again, _, _) = export_manifests(&sim, &flags);
    assert_eq!(again, yaml, "the same environment gives the same files");

    // Applied as they are (server-side dry run): the apiserver accepts each.
    let cp = ControlPlane::shared().unwrap();
    let client = cp.client().unwrap();
    support::install_crd(&client).await;
    let namespace = cp.fresh_namespace("manifests").await.unwrap();
    let api: Api<MasterExport> = Api::namespaced(client, &namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for e in &exports {
        api.create(&dry_run, e)
            .await
            .unwrap_or_else(|err| panic!("{:?}: {err}", e.metadata.name));
    }

    let (_, stderr, ok) =
        export_manifests(&sim, &["--destination", "s3://archive/{title}/{assetId}"]);
    assert!(
        !ok && stderr.contains("unknown placeholder {title}"),
        "{stderr}"
    );
}
