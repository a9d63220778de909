//! `examples/`: every file is in the kustomization, every object is accepted by the real
//! apiserver with the CRD installed (server-side dry run, through real kubectl and kustomize),
//! and the asset and live-stream examples, applied as they are, become Ready with the operator.

use testenv::fixtures as support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, ResourceExt};
use mux_master_operator::resource::MasterExport;
use serde_json::{Value, json};
use support::{World, condition, install_crd, is_ready};
use testenv::{ControlPlane, Tool};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// kubectl of the Kubernetes release we test against, built by `make tools` next to the others.
fn kubectl_path() -> PathBuf {
    let tools = std::env::var_os("MMO_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let path = tools
        .join(format!("kubectl-{}", Tool::KubeApiserver.version()))
        .join("kubectl");
    assert!(
        path.exists(),
        "{} is missing: run `make tools`",
        path.display()
    );
    path
}

fn kubectl(cp: &ControlPlane, args: &[&str]) -> Output {
    Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn yaml_file(name: &str) -> Value {
    let path = Path::new(EXAMPLES).join(name);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example_files() -> BTreeSet<String> {
    std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect()
}

#[test]
fn the_kustomization_lists_every_example() {
    let kustomization = yaml_file("kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, example_files());
}

#[test]
fn the_examples_cover_an_asset_a_live_stream_and_s3_gcs_and_azure_destinations() {
    let exports: Vec<MasterExport> = example_files()
        .iter()
        .map(|f| yaml_file(f))
        .filter(|o| o["kind"] == "MasterExport")
        // The operator's own types read them: no field the controller would not see.
        .map(|o| serde_json::from_value(o).unwrap())
        .collect();
    assert!(exports.iter().any(|e| e.spec.source.asset_id.is_some()));
    assert!(
        exports
            .iter()
            .any(|e| e.spec.source.live_stream_id.is_some())
    );
    let scheme_of = |e: &&MasterExport| {
        let url = &e.spec.destination.as_ref()?.url;
        url.split_once("://").map(|(scheme, _)| scheme.to_owned())
    };
    let schemes: BTreeSet<String> = exports.iter().filter_map(|e| scheme_of(&e)).collect();
    assert_eq!(schemes, ["az", "gs", "s3"].map(String::from).into());
    let archived = exports
        .iter()
        .find(|e| scheme_of(e).as_deref() == Some("s3"))
        .expect("an example with an S3 destination");
    let destination = archived.spec.destination.as_ref().unwrap();
    assert!(destination.endpoint.is_some() && destination.path_style);
    assert!(archived.spec.after_copy.as_ref().unwrap().revoke_access);

    // Every Secret an example names is an example too, with the keys the operator reads.
    let secrets: Vec<Value> = example_files()
        .iter()
        .map(|f| yaml_file(f))
        .filter(|o| o["kind"] == "Secret")
        .collect();
    let secret = |name: &str| {
        secrets
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no example Secret {name}"))
    };
    for export in &exports {
        let mux = secret(&export.spec.credentials_secret_ref.name);
        assert!(mux["stringData"]["tokenId"].is_string());
        assert!(mux["stringData"]["tokenSecret"].is_string());
        if let Some(credentials) = export
            .spec
            .destination
            .as_ref()
            .and_then(|d| d.credentials_secret_ref.as_ref())
        {
            // The names object_store reads from the copy Job's environment, per store.
            let keys: &[&str] = match scheme_of(&export).as_deref() {
                Some("s3") => &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
                Some("gs") => &["GOOGLE_SERVICE_ACCOUNT_KEY"],
                Some("az") => &["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"],
                other => panic!("an example destination of an unknown store: {other:?}"),
            };
            let archive = secret(&credentials.name);
            for key in keys {
                assert!(
                    archive["stringData"][key].is_string(),
                    "Secret {} lacks {key}",
                    credentials.name
                );
            }
        }
    }
}

#[tokio::test]
async fn the_apiserver_accepts_every_example() {
    let cp = ControlPlane::shared().expect("the control plane starts");
    let client = cp.client().unwrap();
    install_crd(&client).await;
    support::exportset::install_set_crd(&client).await;
    let namespace = cp.fresh_namespace("examples").await.unwrap();

    // As a user applies them: kubectl runs kustomize, the apiserver validates (schema, CEL rules)
    // and defaults each object, and stores nothing.
    let out = kubectl(
        cp,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            &namespace,
            "-k",
            EXAMPLES,
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "kubectl apply -k examples/ (dry run):\n{}",
        text(&out.stderr)
    );
    let applied: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = applied["items"].as_array().unwrap();
    assert_eq!(items.len(), example_files().len(), "{applied:#}");
    for item in items {
        assert_eq!(item["metadata"]["namespace"], namespace.as_str());
        assert_eq!(
            item["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "mux-master-operator"
        );
        if item["kind"] == "MasterExport" {
            // The apiserver filled in the defaults: the CRD's schema was applied.
            assert!(item["spec"]["deletionPolicy"].is_string(), "{item:#}");
            assert!(item["spec"]["refreshBefore"].is_string(), "{item:#}");
        }
        if item["kind"] == "MasterExportSet" {
            assert!(
                item["spec"]["template"]["refreshBefore"].is_string(),
                "{item:#}"
            );
        }
    }

    // The check is real: an example with both sources is refused by the CRD's CEL rule.
    let resource = ApiResource::erase::<MasterExport>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let mut broken = yaml_file("asset.yaml");
    broken["spec"]["source"]["liveStreamId"] = json!("L1v3S7r3aMiD");
    let object: DynamicObject = serde_json::from_value(broken).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&dry_run, &object).await {
        Err(kube::Error::Api(status)) => assert!(
            status
                .message
                .contains("set exactly one of source.assetId or source.liveStreamId"),
            "{status:?}"
        ),
        other => panic!("two sources should be refused: {other:?}"),
    }
}

#[tokio::test]
async fn the_asset_and_live_stream_examples_become_ready_as_they_are() {
    // A short poll: without webhooks the operator learns that the stream ended by polling.
    let world = World::new(
        "examples-run",
        &["--master-prepare-delay", "300ms"],
        &["--poll-min", "100ms", "--poll-max", "500ms"],
    )
    .await;
    let asset = yaml_file("asset.yaml");
    let live = yaml_file("live-stream.yaml");
    // mux-sim gets the very IDs the examples name, so the files are applied unchanged.
    world
        .admin
        .seed_asset(json!({"id": asset["spec"]["source"]["assetId"], "size": 10_000}))
        .await
        .unwrap();
    let stream_id = live["spec"]["source"]["liveStreamId"].as_str().unwrap();
    world
        .admin
        .seed_live_stream(json!({"id": stream_id, "asset_size": 10_000}))
        .await
        .unwrap();
    world.admin.start_live_stream(stream_id).await.unwrap();

    for file in ["asset.yaml", "live-stream.yaml"] {
        let out = kubectl(
            world.control_plane,
            &[
                "apply",
                "-n",
                &world.namespace,
                "-f",
                Path::new(EXAMPLES).join(file).to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
    }
    let asset_name = asset["metadata"]["name"].as_str().unwrap();
    let ready = world.wait(asset_name, "Ready", is_ready).await;
    let filename = asset["spec"]["urlSecret"]["filename"].as_str().unwrap();
    let master = ready.status.unwrap().master.unwrap();
    assert!(
        master
            .url
            .unwrap()
            .contains(&format!("download={filename}"))
    );
    world
        .secrets()
        .get(&format!("{asset_name}-master"))
        .await
        .expect("the URL Secret, named after the example");

    let live_name = live["metadata"]["name"].as_str().unwrap();
    world
        .wait(live_name, "waiting for the recording", |o| {
            condition(o, "Ready").is_some_and(|(_, reason)| reason == "WaitingForRecording")
        })
        .await;
    world.admin.end_live_stream(stream_id).await.unwrap();
    let ready = world.wait(live_name, "Ready", is_ready).await;
    let secret_name = live["spec"]["urlSecret"]["name"].as_str().unwrap();
    assert_eq!(
        ready
            .status
            .unwrap()
            .master
            .unwrap()
            .url_secret_ref
            .unwrap()
            .name,
        secret_name
    );
    let secret = world.secrets().get(secret_name).await.unwrap();
    assert_eq!(secret.owner_references()[0].name, live_name);
}

/// The README's table of the resource's fields, generated from the CRD's schema: one row per
/// field of `spec`, with its type, default and description, so the two cannot drift apart.
fn fields_table() -> String {
    let crd: Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/masterexport.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut rows = vec![
        "| field | type | default | |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    fn walk(path: &str, schema: &Value, required: bool, rows: &mut Vec<String>) {
        let kind = match schema["type"].as_str().unwrap_or("") {
            "string" if schema["enum"].is_array() => schema["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| format!("`{}`", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(" \\| "),
            other => other.to_owned(),
        };
        let default = match &schema["default"] {
            Value::Null => String::new(),
            Value::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        };
        let description = schema["description"]
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        let required = if required { " (required)" } else { "" };
        rows.push(format!(
            "| `{path}`{required} | {kind} | {default} | {description} |"
        ));
        if let Some(properties) = schema["properties"].as_object() {
            let needed: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut names: Vec<&String> = properties.keys().collect();
            names.sort();
            for name in names {
                walk(
                    &format!("{path}.{name}"),
                    &properties[name],
                    needed.contains(&name.as_str()),
                    rows,
                );
            }
        }
    }
    let needed: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut names: Vec<&String> = spec["properties"].as_object().unwrap().keys().collect();
    names.sort();
    for name in names {
        walk(
            &format!("spec.{name}"),
            &spec["properties"][name],
            needed.contains(&name.as_str()),
            &mut rows,
        );
    }
    rows.join("\n") + "\n"
}

#[test]
fn the_readme_lists_every_field_of_the_resource() {
    const BEGIN: &str =
        "<!-- fields: generated from crds/masterexport.yaml, checked by tests/examples.rs -->\n";
    const END: &str = "<!-- end of fields -->";
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let expected = fields_table();
    let Some(table) = readme
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table)
    else {
        panic!(
            "README.md has no fields table between {BEGIN:?} and {END:?}; it should be:\n{BEGIN}{expected}{END}"
        );
    };
    assert!(
        table == expected,
        "README.md's fields table is not the CRD's; replace it with:\n{BEGIN}{expected}{END}"
    );
}
