//! kubectl, as a person would type it, against the demo's control plane.

use super::*;

/// kubectl of the tested Kubernetes release, as `make tools` builds it, pointed at the local
/// control plane. Each command is printed as a person would type it, then its output.
pub(crate) struct Kubectl {
    pub(crate) path: Option<PathBuf>,
    pub(crate) kubeconfig: PathBuf,
}

impl Kubectl {
    pub(crate) fn new(cp: &ControlPlane) -> Self {
        let tools = std::env::var_os("MMO_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(ROOT).join(".tools"));
        let path = tools
            .join(format!("kubectl-{}", Tool::KubeApiserver.version()))
            .join("kubectl");
        let path = path.is_file().then_some(path);
        if path.is_none() {
            println!("      (kubectl is not built: `make tools` builds it; showing less)");
        }
        Kubectl {
            path,
            kubeconfig: cp.kubeconfig().to_path_buf(),
        }
    }

    pub(crate) fn show(&self, args: &[&str]) -> Result<()> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                a.strip_prefix(ROOT)
                    .map_or(a.to_string(), |r| r[1..].to_owned())
            })
            .collect();
        println!("      $ kubectl {}", shown.join(" "));
        let Some(path) = &self.path else {
            return Ok(());
        };
        let out = Command::new(path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(ROOT)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        for line in text.lines() {
            println!("      {line}");
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("kubectl {} failed", shown.join(" ")).into())
        }
    }
}

pub(crate) async fn wait_for_crd(client: &Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = MasterExport::crd_name();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| "the CRD was not established within 30 s")??;
    Ok(())
}
