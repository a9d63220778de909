//! etcd + kube-apiserver: a real Kubernetes control plane, without nodes or controllers.
//!
//! What runs is what a cluster's API runs: RBAC authorization, the ServiceAccount token
//! machinery (TokenRequest, a signing key and an issuer), admission, CRDs. What does not run is
//! the controller manager and the scheduler: no namespace is ever finalized, no Pod scheduled,
//! no Job started, unless a test starts a [`crate::node::Node`] on it (which adds them and a
//! kubelet); otherwise tests play those parts where they need them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::credentials::Credentials;
use super::error::{Error, Result};
use super::process::{Process, free_port, retry_on_port_conflict};
use super::ready::{block_on, http_client, http_get_ok, until_ready};
use super::scratch::Scratch;
use super::tools::Tool;

/// The label on every namespace made by [`ControlPlane::fresh_namespace`].
pub const NAMESPACE_LABEL: &str = "mux-master-operator.test/testenv";

/// A running etcd and kube-apiserver, and an admin identity for them.
#[derive(Debug)]
pub struct ControlPlane {
    // Fields drop in order: the apiserver before its etcd, both before their scratch folder.
    apiserver: Process,
    etcd: Process,
    config: Config,
    kubeconfig: PathBuf,
    /// The apiserver's serving CA (self-signed), for a controller-manager's `--root-ca-file`.
    ca: PathBuf,
    /// The ServiceAccount signing key, for a controller-manager's token controller.
    service_account_key: PathBuf,
    scratch: Scratch,
}

impl ControlPlane {
    /// The control plane shared by every test of this process, started by the first caller.
    ///
    /// It is never dropped (it lives in a `static`): its watchdog stops it when the process ends.
    pub fn shared() -> Result<&'static ControlPlane> {
        static SHARED: OnceLock<std::result::Result<ControlPlane, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| ControlPlane::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| Error::Shared {
                component: "control plane",
                message: message.clone(),
            })
    }

    /// Starts a control plane of its own; it stops when dropped. Blocks until it is ready.
    pub fn start() -> Result<Self> {
        mux::tls::install_crypto_provider();
        let etcd_bin = Tool::Etcd.path()?;
        let apiserver_bin = Tool::KubeApiserver.path()?;
        let mut scratch = Scratch::new("controlplane")?;
        let credentials = Credentials::generate(scratch.dir())?;
        let (etcd, etcd_url) = retry_on_port_conflict(|| start_etcd(&etcd_bin, &mut scratch))?;
        let (apiserver, config, kubeconfig, ca) = retry_on_port_conflict(|| {
            start_apiserver(&apiserver_bin, &etcd_url, &credentials, &mut scratch)
        })?;
        Ok(ControlPlane {
            apiserver,
            etcd,
            config,
            kubeconfig,
            ca,
            service_account_key: credentials.service_account_private_key,
            scratch,
        })
    }

    /// The admin's kubeconfig file (user `admin`, group `system:masters`), for tools like Helm.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver's serving CA certificate (PEM).
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The private key that signs ServiceAccount tokens (PEM).
    pub(crate) fn service_account_key(&self) -> &Path {
        &self.service_account_key
    }

    /// The admin's client configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The apiserver's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.config.cluster_url.to_string()
    }

    /// The end of the apiserver's and etcd's logs, for a failing test's message.
    pub fn log_tails(&self) -> String {
        format!(
            "--- kube-apiserver ---\n{}\n--- etcd ---\n{}",
            self.apiserver.log_tail(),
            self.etcd.log_tail()
        )
    }

    /// The scratch folder (logs, data, credentials); removed when the control plane stops.
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// A client for the admin. Call it on the runtime that will use the client (each
    /// `#[tokio::test]` has its own).
    pub fn client(&self) -> Result<Client> {
        Ok(Client::try_from(self.config.clone())?)
    }

    /// A client that acts as the ServiceAccount `namespace/name`, through impersonation by the
    /// admin: what RBAC allows it is exactly what it would allow a pod running as that account.
    /// The ServiceAccount need not exist. Call it on the runtime that will use the client.
    pub fn service_account_client(&self, namespace: &str, name: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
        config.auth_info.impersonate_groups = Some(vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_owned(),
        ]);
        Ok(Client::try_from(config)?)
    }

    /// Creates a namespace no other test uses, `<prefix>-<random>`, and returns its name.
    pub async fn fresh_namespace(&self, prefix: &str) -> Result<String> {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client()?)
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(name)
    }
}

/// Starts etcd on fresh ports; returns it and its client URL once it reports healthy.
fn start_etcd(bin: &Path, scratch: &mut Scratch) -> Result<(Process, String)> {
    let client_url = format!("http://127.0.0.1:{}", free_port()?);
    let peer_url = format!("http://127.0.0.1:{}", free_port()?);
    // A data folder per attempt: a failed attempt may have bootstrapped a member on other ports.
    let data = scratch
        .dir()
        .join(format!("etcd-{}", uuid::Uuid::new_v4().simple()));
    let mut command = Command::new(bin);
    command
        .arg("--name=testenv")
        .arg("--data-dir")
        .arg(&data)
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=testenv={peer_url}"))
        // Test data need not survive a power cut; fsync would dominate the apiserver's latency.
        .arg("--unsafe-no-fsync");
    let mut etcd = Process::spawn("etcd", command, scratch)?;
    let health = format!("{client_url}/health");
    block_on(async {
        let http = http_client()?;
        let (http, health) = (&http, health.as_str());
        until_ready(&mut etcd, move || async move {
            let body = http_get_ok(http, health).await?;
            if body.contains(r#""health":"true""#) {
                Ok(())
            } else {
                Err(body)
            }
        })
        .await
    })??;
    Ok((etcd, client_url))
}

/// Starts kube-apiserver on a fresh port; returns it, the admin's client configuration, the
/// admin's kubeconfig and the serving CA once `/readyz` says yes.
fn start_apiserver(
    bin: &Path,
    etcd_url: &str,
    credentials: &Credentials,
    scratch: &mut Scratch,
) -> Result<(Process, Config, PathBuf, PathBuf)> {
    let port = free_port()?;
    let url = format!("https://127.0.0.1:{port}");
    // The apiserver writes a self-signed serving certificate (and its CA) here when it starts.
    let cert_dir = scratch.dir().join(format!("apiserver-certs-{port}"));
    let mut command = Command::new(bin);
    command
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg("--cert-dir")
        .arg(&cert_dir)
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg("--authorization-mode=RBAC")
        .arg("--token-auth-file")
        .arg(&credentials.token_file)
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg("--service-account-key-file")
        .arg(&credentials.service_account_public_key)
        .arg("--service-account-signing-key-file")
        .arg(&credentials.service_account_private_key)
        .arg("--allow-privileged=true")
        // A test node's kubelet listens on 127.0.0.1 under the name `localhost` (its InternalIP
        // is the machine's address, which it does not listen on): logs and exec go by name.
        .arg("--kubelet-preferred-address-types=Hostname");
    let mut apiserver = Process::spawn("kube-apiserver", command, scratch)?;

    let ca = cert_dir.join("apiserver.crt");
    let kubeconfig = scratch.dir().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        kubeconfig_yaml(&url, &ca, &credentials.admin_token)?,
    )
    .map_err(Error::io(format!("writing {}", kubeconfig.display())))?;

    let config = block_on(async {
        let (ca, kubeconfig) = (ca.as_path(), kubeconfig.as_path());
        until_ready(&mut apiserver, move || async move {
            if !ca.exists() {
                return Err("no serving certificate yet".to_owned());
            }
            // Loaded each time: the certificate may be half-written on the first look.
            let config = load_kubeconfig(kubeconfig).await?;
            let client = Client::try_from(config.clone()).map_err(|e| e.to_string())?;
            let readyz = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a valid request");
            client
                .request_text(readyz)
                .await
                .map_err(|e| format!("GET /readyz: {e}"))?;
            Ok(config)
        })
        .await
    })??;
    Ok((apiserver, config, kubeconfig, ca))
}

/// Reads the kubeconfig we wrote, exactly as a user's tool would.
async fn load_kubeconfig(path: &Path) -> std::result::Result<Config, String> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// The admin's kubeconfig: the apiserver's own CA, and the admin's static token.
fn kubeconfig_yaml(url: &str, ca: &Path, token: &str) -> Result<String> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": url, "certificate-authority": ca}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "admin", "namespace": "default"}}],
        "current-context": "testenv",
    });
    serde_yaml::to_string(&kubeconfig)
        .map_err(|e| Error::Other(format!("writing a kubeconfig: {e}")))
}
