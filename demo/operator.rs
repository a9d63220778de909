//! The operator: its pod, installed with Helm on the real node, or (where no node can run) a
//! child process of the demo with the API access its pod would have.

use super::*;

/// The running operator, however it runs.
pub(crate) struct Operator {
    run: Run,
    pub(crate) command_line: String,
    pub(crate) dir: tempfile::TempDir,
}

enum Run {
    /// A child process with the admin's kubeconfig (in a cluster it runs as the chart's
    /// ServiceAccount: tests/chart/ proves that is enough).
    Process { child: Child, log: PathBuf },
    /// The chart's Deployment, its pod run by the kubelet.
    Pod {
        kubectl: Option<PathBuf>,
        kubeconfig: PathBuf,
    },
}

/// Where the chart installs the operator, and the release's name (the Deployment's too).
pub(crate) const RELEASE: &str = "mux-master-operator";
pub(crate) const RELEASE_NAMESPACE: &str = "mux-system";

impl Operator {
    pub(crate) fn start(bin: &Path, cp: &ControlPlane, mux_url: &str) -> Result<Self> {
        let dir = scratch()?;
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log)?;
        // Polling stands in for webhooks here, so a short poll keeps the demo brisk.
        let args = [
            "run",
            "--mux-base-url",
            mux_url,
            "--namespaces",
            NAMESPACE,
            "--metrics-addr",
            "127.0.0.1:0",
            "--poll-min",
            "500ms",
            "--poll-max",
            "2s",
        ];
        let mut command = Command::new(bin);
        command
            .args(args)
            .env("KUBECONFIG", cp.kubeconfig())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // The one spawner of testenv: the kernel kills the operator when the demo dies, however
        // it dies, so that no operator outlives it.
        let child = testenv::spawner::spawn(command)?;
        let shown = bin
            .strip_prefix(ROOT)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| bin.display().to_string());
        Ok(Operator {
            run: Run::Process { child, log },
            command_line: format!("KUBECONFIG=... {shown} {}", args.join(" ")),
            dir,
        })
    }

    /// The chart, installed with `values`, and its pod available (`helm install --wait`).
    pub(crate) fn install(kubectl: &Kubectl, values: &Value) -> Result<Self> {
        let dir = scratch()?;
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, serde_yaml::to_string(values)?)?;
        let chart = "charts/mux-master-operator";
        let args = [
            "install",
            RELEASE,
            chart,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "-f",
            file.to_str().ok_or("a values path that is not UTF-8")?,
            "--wait",
            "--timeout",
            "180s",
        ];
        let command_line = format!(
            "helm {} (values: {})",
            args.join(" ")
                .replace(&file.display().to_string(), "values.yaml"),
            serde_json::to_string(values)?
        );
        println!("      $ {command_line}");
        let helm = Tool::Helm.path()?;
        let out = Command::new(helm)
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubectl.kubeconfig)
            .current_dir(ROOT)
            // Helm keeps caches and repository lists under these: out of the user's home.
            .env("HELM_CACHE_HOME", dir.path().join("helm-cache"))
            .env("HELM_CONFIG_HOME", dir.path().join("helm-config"))
            .env("HELM_DATA_HOME", dir.path().join("helm-data"))
            .output()?;
        let operator = Operator {
            run: Run::Pod {
                kubectl: kubectl.path.clone(),
                kubeconfig: kubectl.kubeconfig.clone(),
            },
            command_line,
            dir,
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // Up to the chart's NOTES, which are for a real cluster's user.
        for line in text.lines().take_while(|l| !l.starts_with("NOTES:")) {
            println!("      {line}");
        }
        if !out.status.success() {
            return Err(format!(
                "helm install failed; the operator's log:\n{}",
                operator.log_tail()
            )
            .into());
        }
        Ok(operator)
    }

    /// The demo's scratch folder; removed when the operator stops.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How a person follows the operator's log.
    pub(crate) fn log_hint(&self) -> String {
        match &self.run {
            Run::Process { log, .. } => format!("tail -f {}", log.display()),
            Run::Pod { .. } => format!(
                "kubectl -n {RELEASE_NAMESPACE} logs -f deployment/{RELEASE}   # the operator's log"
            ),
        }
    }

    /// Where it runs, for the step's description.
    pub(crate) fn describe(&self) -> String {
        match &self.run {
            Run::Process { child, log } => {
                format!("(pid {}, log: {})", child.id(), log.display())
            }
            Run::Pod { .. } => format!(
                "(the Deployment {RELEASE_NAMESPACE}/{RELEASE}, its pod run by the kubelet from \
                 image {})",
                testenv::node::operator_image_name()
            ),
        }
    }

    /// The end of the operator's log, for a failure's message.
    pub(crate) fn log_tail(&self) -> String {
        let text = match &self.run {
            Run::Process { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
            Run::Pod {
                kubectl: Some(kubectl),
                kubeconfig,
            } => Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["-n", RELEASE_NAMESPACE, "logs", "--tail=30"])
                .arg(format!("deployment/{RELEASE}"))
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).into_owned()
                        + &String::from_utf8_lossy(&o.stderr)
                })
                .unwrap_or_else(|e| format!("(no log: {e})")),
            Run::Pod { kubectl: None, .. } => "(no kubectl to read the pod's log)".to_owned(),
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A process that exited is an error; a pod the kubelet restarts, and the deadlines of the
    /// steps catch one that never works.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Run::Process { child, .. } = &mut self.run
            && let Some(status) = child.try_wait()?
        {
            return Err(format!(
                "the operator exited ({status}); its log:\n{}",
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }
}

fn scratch() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("mmo-demo-").tempdir()?)
}

impl Drop for Operator {
    fn drop(&mut self) {
        // The pod goes with the node; the process is ours to stop.
        if let Run::Process { child, .. } = &mut self.run {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
