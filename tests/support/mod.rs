//! Shared by the integration tests of the operator: a namespace on the shared control plane,
//! a mux-sim of its own, the CRD installed, and the operator running as a real process.
#![allow(dead_code)] // Each test binary uses its own share of these helpers.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions as wait_conditions};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use mux_master_operator::resource::MasterExport;
use mux_master_operator::sim::admin_client::SimAdmin;
use mux_master_operator::testenv::{ControlPlane, MuxSim};

pub const TOKEN_ID: &str = "mux-sim-token-id";
pub const TOKEN_SECRET: &str = "mux-sim-token-secret";
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The operator as a real process, watching one namespace.
pub struct Operator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub fn start(kubeconfig: &Path, mux_url: &str, namespace: &str, extra: &[&str]) -> Operator {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mux-master-operator"));
        command
            .args(["run", "--mux-base-url", mux_url, "--namespaces", namespace])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-level",
                "info,mux_master_operator=debug",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("MUX_BASE_URL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log handle"))
            .stderr(out);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the operator
        // when this test process dies, so no operator outlives its test.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("the operator starts");
        Operator {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the operator at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(20_000)));
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The address of /metrics, read from the operator's log.
    pub async fn metrics_addr(&self) -> String {
        self.logged_addr("serving /metrics").await
    }

    /// The address of the webhook endpoint, read from the operator's log.
    pub async fn webhook_addr(&self) -> String {
        self.logged_addr("serving Mux webhooks").await
    }

    /// The `addr=` of the first log line containing `marker`.
    async fn logged_addr(&self, marker: &str) -> String {
        eventually(TIMEOUT, marker, || async {
            self.log().lines().find_map(|line| {
                if !line.contains(marker) {
                    return None;
                }
                let after = line.split("addr=").nth(1)?;
                Some(after.split_whitespace().next()?.to_string())
            })
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- operator log (tail) ---\n{}", self.log());
        }
    }
}

/// Asks `probe` until it answers `Some`, at most `timeout`: a wait on a condition, by asking.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Installs the CRD (idempotent) and waits until the apiserver serves it.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = MasterExport::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the CRD applies");
    tokio::time::timeout(
        TIMEOUT,
        await_condition(crds, &name, wait_conditions::is_crd_established()),
    )
    .await
    .expect("the CRD is established in time")
    .expect("the CRD is established");
}

/// One test's world: its namespace, its mux-sim, its operator.
pub struct World {
    pub control_plane: &'static ControlPlane,
    pub client: Client,
    pub namespace: String,
    pub sim: MuxSim,
    pub admin: SimAdmin,
    pub operator: Option<Operator>,
    pub operator_args: Vec<String>,
}

impl World {
    pub async fn new(prefix: &str, sim_args: &[&str], operator_args: &[&str]) -> World {
        let control_plane = ControlPlane::shared().expect("the control plane starts");
        let client = control_plane.client().expect("a client");
        install_crd(&client).await;
        let namespace = control_plane
            .fresh_namespace(prefix)
            .await
            .expect("a namespace");
        let sim = MuxSim::start(env!("CARGO_BIN_EXE_mux-sim"), sim_args).expect("mux-sim starts");
        let admin = SimAdmin::new(sim.url());
        let mut world = World {
            control_plane,
            client,
            namespace,
            sim,
            admin,
            operator: None,
            operator_args: operator_args.iter().map(|s| s.to_string()).collect(),
        };
        world.credentials("mux", TOKEN_ID, TOKEN_SECRET).await;
        world.start_operator();
        world
    }

    pub fn start_operator(&mut self) {
        let args: Vec<&str> = self.operator_args.iter().map(String::as_str).collect();
        self.operator = Some(Operator::start(
            self.control_plane.kubeconfig(),
            self.sim.url(),
            &self.namespace,
            &args,
        ));
    }

    pub fn api(&self) -> Api<MasterExport> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A Secret with a Mux token, as users create it.
    pub async fn credentials(&self, name: &str, id: &str, secret: &str) {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "stringData": {"tokenId": id, "tokenSecret": secret},
        }))
        .unwrap();
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .expect("the credentials Secret is created");
    }

    /// Creates a MasterExport from its YAML/JSON spec.
    pub async fn create(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<MasterExport, kube::Error> {
        let object: MasterExport = serde_json::from_value(serde_json::json!({
            "apiVersion": "masterexport.io/v1alpha1",
            "kind": "MasterExport",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("a well-typed MasterExport");
        self.api().create(&PostParams::default(), &object).await
    }

    /// Creates a MasterExport from raw JSON, bypassing the Rust types: for what only the
    /// apiserver should refuse.
    pub async fn create_raw(&self, name: &str, spec: serde_json::Value) -> Result<(), kube::Error> {
        let resource = kube::api::ApiResource::erase::<MasterExport>(&());
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let object: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "masterexport.io/v1alpha1",
            "kind": "MasterExport",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("an object");
        api.create(&PostParams::default(), &object)
            .await
            .map(|_| ())
    }

    /// Waits until the resource satisfies `predicate`; returns it.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        predicate: impl Fn(&MasterExport) -> bool,
    ) -> MasterExport {
        let api = self.api();
        eventually(TIMEOUT, what, || async {
            api.get_opt(name)
                .await
                .ok()
                .flatten()
                .filter(|o| predicate(o))
        })
        .await
    }
}

/// The status of condition `type_` and its reason.
pub fn condition(obj: &MasterExport, type_: &str) -> Option<(String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn is_ready(obj: &MasterExport) -> bool {
    condition(obj, "Ready").is_some_and(|(s, _)| s == "True")
}

pub fn master_url(obj: &MasterExport) -> Option<String> {
    obj.status.as_ref()?.master.as_ref()?.url.clone()
}
pub mod kubelet;
