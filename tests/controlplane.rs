//! The test environment against real components: a real kube-apiserver and etcd (CRDs, the
//! status subresource, watches, RBAC), a real MinIO, Helm, mux-sim, and the cleanup guarantees.
//!
//! They need the binaries `make tools` builds (`make test` builds them first).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use object_store::{ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use testenv::leftovers::processes_mentioning;
use testenv::{ControlPlane, Minio, MuxSim, Tool};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The bound on every wait for the apiserver to reflect a change.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A throwaway resource, only for these tests.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "testenv.mux-master-operator.test",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
struct GadgetSpec {
    size: i64,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
struct GadgetStatus {
    observed_size: i64,
}

#[tokio::test]
async fn a_custom_resource_is_established_created_read_status_updated_and_watched() -> TestResult {
    let control_plane = ControlPlane::shared()?;
    let client = control_plane.client()?;
    let namespace = control_plane.fresh_namespace("crd").await?;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Gadget::crd();
    let crd_name = crd.name_any();
    let apply = PatchParams::apply("testenv-test").force();
    crds.patch(&crd_name, &apply, &Patch::Apply(&crd)).await?;
    let established = await_condition(crds, &crd_name, conditions::is_crd_established());
    tokio::time::timeout(TIMEOUT, established).await??;

    let gadgets: Api<Gadget> = Api::namespaced(client, &namespace);
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("g", GadgetSpec { size: 1 }),
        )
        .await?;
    let read = gadgets.get("g").await?;
    assert_eq!(read.spec.size, 1);
    assert_eq!(read.status, None);

    let status = json!({ "status": { "observed_size": 1 } });
    let patched = gadgets
        .patch_status("g", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    assert_eq!(patched.status, Some(GadgetStatus { observed_size: 1 }));
    assert_eq!(
        gadgets.get("g").await?.status,
        Some(GadgetStatus { observed_size: 1 })
    );

    // Watch from the version we have read, change the spec, and see the change arrive.
    let version = patched
        .resource_version()
        .expect("a stored object has a version");
    let watch = WatchParams::default().fields("metadata.name=g");
    let mut events = gadgets.watch(&watch, &version).await?.boxed();
    gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "size": 2 } })),
        )
        .await?;
    let modified = tokio::time::timeout(TIMEOUT, async {
        while let Some(event) = events.try_next().await? {
            if let WatchEvent::Modified(gadget) = event {
                return Ok(Some(gadget));
            }
        }
        Ok::<_, kube::Error>(None)
    })
    .await??
    .ok_or("the watch ended before the update arrived")?;
    assert_eq!(modified.spec.size, 2);
    assert_eq!(modified.status, Some(GadgetStatus { observed_size: 1 }));
    Ok(())
}

#[tokio::test]
async fn a_service_account_is_refused_until_a_role_binding_allows_it() -> TestResult {
    let control_plane = ControlPlane::shared()?;
    let admin = control_plane.client()?;
    let namespace = control_plane.fresh_namespace("rbac").await?;
    let account = ServiceAccount {
        metadata: named("reader"),
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &account)
        .await?;

    let as_reader = control_plane.service_account_client(&namespace, "reader")?;
    let config_maps: Api<ConfigMap> = Api::namespaced(as_reader.clone(), &namespace);
    assert_eq!(
        status_code(config_maps.list(&ListParams::default()).await),
        Some(403)
    );

    let role = Role {
        metadata: named("read-config-maps"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
        metadata: named("reader-reads-config-maps"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: "read-config-maps".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: "reader".to_owned(),
            namespace: Some(namespace.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &namespace)
        .create(&PostParams::default(), &binding)
        .await?;

    // The authorizer reads RBAC objects from an informer cache: the binding takes effect soon
    // after it is stored, not at once. Ask until it does, within the bound.
    let allowed = tokio::time::timeout(TIMEOUT, async {
        loop {
            match config_maps.list(&ListParams::default()).await {
                Ok(list) => return list,
                Err(e) => assert_eq!(status_code(Err::<(), _>(e)), Some(403)),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        allowed.is_ok(),
        "still refused {TIMEOUT:?} after the RoleBinding was created"
    );

    // The Role grants config maps, and nothing else.
    let secrets: Api<Secret> = Api::namespaced(as_reader, &namespace);
    assert_eq!(
        status_code(secrets.list(&ListParams::default()).await),
        Some(403)
    );
    Ok(())
}

#[tokio::test]
async fn an_object_written_to_minio_reads_back() -> TestResult {
    let minio = Minio::shared()?;
    let store = minio.store(minio.bucket())?;
    let key = ObjectPath::from(format!("controlplane-test/{}", uuid::Uuid::new_v4()));
    let content = b"a master, byte for byte".to_vec();
    store.put(&key, PutPayload::from(content.clone())).await?;
    let read = store.get(&key).await?.bytes().await?;
    assert_eq!(read.as_ref(), content.as_slice());
    Ok(())
}

#[test]
fn helm_runs_from_the_tools_folder() -> TestResult {
    let output = Command::new(Tool::Helm.path()?).arg("version").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "helm version: {output:?}");
    assert!(
        stdout.contains(Tool::Helm.version()),
        "helm version said: {stdout}"
    );
    Ok(())
}

#[test]
fn helm_talks_to_the_control_plane_through_the_admin_kubeconfig() -> TestResult {
    let control_plane = ControlPlane::shared()?;
    let home = tempfile::tempdir()?;
    let output = Command::new(Tool::Helm.path()?)
        .args(["list", "--all-namespaces", "--kubeconfig"])
        .arg(control_plane.kubeconfig())
        // Helm keeps caches and settings under these; keep them out of the user's home.
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()?;
    assert!(output.status.success(), "helm list: {output:?}");
    Ok(())
}

#[test]
fn mux_sim_starts_and_answers() -> TestResult {
    let sim = MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &[])?;
    let url = format!("{}/_sim/healthz", sim.url());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    mux::tls::install_crypto_provider();
    let status = runtime.block_on(async { reqwest::get(&url).await.map(|r| r.status()) })?;
    assert!(
        status.is_success(),
        "GET {url}: {status}; log:\n{}",
        sim.log_tail()
    );
    Ok(())
}

#[test]
fn dropping_a_component_stops_it_and_removes_its_folder() -> TestResult {
    let minio = Minio::start()?;
    let dir = minio.dir().to_owned();
    assert!(dir.is_dir() && !processes_mentioning(&dir).is_empty());
    drop(minio);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    Ok(())
}

/// Set in the child process of the next test.
const ORPHAN_ENV: &str = "MMO_TESTENV_ORPHAN";

#[test]
fn a_test_process_that_dies_leaves_no_process_or_folder_behind() -> TestResult {
    // Run `orphan_a_component` in a child test process: it starts MinIO, prints its folder and
    // aborts, so nothing is dropped. Its watchdog must clean up.
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "orphan_a_component",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORPHAN_ENV, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        // The harness prints `test orphan_a_component ... ` before the test's own output.
        .find_map(|line| line.split_once("orphan dir: ").map(|(_, dir)| dir))
        .map(PathBuf::from)
        .ok_or_else(|| format!("the child printed no folder: {output:?}"))?;
    assert_eq!(
        output.status.code(),
        Some(3),
        "the child was meant to exit(3): {output:?}"
    );

    // The watchdog works right after the child's death; give it a bounded time.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while (dir.exists() || !processes_mentioning(&dir).is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    Ok(())
}

#[test]
#[ignore = "run by a_test_process_that_dies_leaves_no_process_or_folder_behind"]
fn orphan_a_component() -> TestResult {
    if std::env::var_os(ORPHAN_ENV).is_none() {
        return Ok(());
    }
    let minio = Minio::start()?;
    println!("orphan dir: {}", minio.dir().display());
    // Like a test binary ending with a shared instance in a `static`: no destructor runs.
    std::process::exit(3);
}

/// `metadata.name = name`.
fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// The HTTP status of an apiserver refusal, `None` for success or other errors.
fn status_code<T>(result: kube::Result<T>) -> Option<u16> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}
