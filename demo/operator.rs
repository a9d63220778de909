//! The operator as a child process of the demo.

use super::*;

/// The operator, as a child process with the admin's kubeconfig (in a cluster it would run as the
/// chart's ServiceAccount: tests/chart/ proves that is enough).
pub(crate) struct Operator {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
    pub(crate) command_line: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Operator {
    pub(crate) fn start(bin: &Path, cp: &ControlPlane, mux_url: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("mmo-demo-").tempdir()?;
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
            child,
            log,
            command_line: format!("KUBECONFIG=... {shown} {}", args.join(" ")),
            dir,
        })
    }

    /// The demo's scratch folder (the operator's log is in it); removed when the operator stops.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The end of the operator's log, for a failure's message.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!(
                "the operator exited ({status}); its log:\n{}",
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
