//! The copier as a real process: its command line and environment, its output in files, its
//! exit status, termination message and peak memory from wait4(2); and the check that no
//! secret ever shows in what it prints.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mux_master_operator::copy::{Reason, Report};
use testenv::Minio;
use testenv::fixtures::eventually;

use super::master::Master;

const COPIER: &str = env!("CARGO_BIN_EXE_mux-master-operator");

/// A `mux-master-operator copy` command line and environment (cleared of everything else).
pub struct Copier {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Strings that must not appear in anything the copier prints.
    pub secrets: Vec<String>,
}

impl Copier {
    /// A copy of `master` (URL in `MUX_MASTER_URL`) to `destination`, with short settle checks.
    pub fn new(master: &Master, destination: &str) -> Copier {
        Copier {
            args: ["--destination", destination, "--settle", "200ms"]
                .map(String::from)
                .to_vec(),
            env: vec![
                ("MUX_MASTER_URL".into(), master.url.clone()),
                ("LOG_LEVEL".into(), "info".into()),
            ],
            secrets: vec![master.signature()],
        }
    }

    /// A copy to MinIO, credentials in the standard AWS variables.
    pub fn to_minio(master: &Master, minio: &Minio, key: &str) -> Copier {
        let destination = format!("s3://{}/{key}", minio.bucket());
        let mut copier = Copier::new(master, &destination).args(&["--endpoint", minio.endpoint()]);
        copier.env.extend([
            ("AWS_ACCESS_KEY_ID".into(), minio.access_key().into()),
            ("AWS_SECRET_ACCESS_KEY".into(), minio.secret_key().into()),
        ]);
        copier.secrets.push(minio.secret_key().into());
        copier
    }

    pub fn args(mut self, args: &[&str]) -> Copier {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn without_env(mut self, name: &str) -> Copier {
        self.env.retain(|(key, _)| key != name);
        self
    }

    /// Starts the process; its output goes to files in a folder of its own.
    pub fn spawn(&self) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let termination = dir.path().join("termination-log");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        // Reaped by wait4 in `Running::wait`, which also gives its peak memory.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(COPIER)
            .arg("copy")
            .args(&self.args)
            .arg("--termination-message-path")
            .arg(&termination)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("the copier starts");
        Running {
            pid: child.id() as libc::pid_t,
            dir,
            termination,
            stdout,
            stderr,
            secrets: self.secrets.clone(),
        }
    }

    /// Runs the copy to its end.
    pub async fn run(&self) -> Outcome {
        self.spawn().wait().await
    }
}

/// A copier process that has not been waited for yet.
pub struct Running {
    pid: libc::pid_t,
    dir: tempfile::TempDir,
    termination: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    secrets: Vec<String>,
}

impl Running {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the copier's log contains `text`.
    pub async fn until_logged(&self, text: &str) {
        let what = format!("the copier to log {text:?}");
        eventually(Duration::from_secs(60), &what, || async {
            self.stderr().contains(text).then_some(())
        })
        .await
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(self.pid, signal) }, 0);
    }

    /// Reaps the process with wait4(2), which also gives its peak resident memory.
    pub async fn wait(self) -> Outcome {
        let pid = self.pid;
        let (status, usage) = tokio::task::spawn_blocking(move || {
            let mut status = 0;
            // SAFETY: rusage is plain data, and wait4 fills it in.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: waits for our own child, writing into the two locals above.
            let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
            (status, usage)
        })
        .await
        .unwrap();
        let stdout = std::fs::read_to_string(&self.stdout).unwrap();
        let stderr = self.stderr();
        assert!(
            libc::WIFEXITED(status),
            "the copier died of signal {}; its log:\n{stderr}",
            libc::WTERMSIG(status)
        );
        let termination = std::fs::read_to_string(&self.termination).unwrap_or_default();
        for secret in &self.secrets {
            for (name, text) in [
                ("stdout", &stdout),
                ("stderr", &stderr),
                ("termination message", &termination),
            ] {
                assert!(
                    !text.contains(secret.as_str()),
                    "the copier's {name} shows a secret:\n{text}"
                );
            }
        }
        let report: Report = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not a report ({e}): {stdout:?}\n{stderr}"));
        let from_file: Report = serde_json::from_str(&termination)
            .unwrap_or_else(|e| panic!("the termination message is not a report ({e})"));
        assert_eq!(
            report, from_file,
            "stdout and the termination message differ"
        );
        drop(self.dir);
        Outcome {
            code: libc::WEXITSTATUS(status),
            report,
            stderr,
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        }
    }
}

/// How a copier process ended.
pub struct Outcome {
    pub code: i32,
    pub report: Report,
    pub stderr: String,
    pub peak_rss_bytes: u64,
}

impl Outcome {
    /// The key of the staging object the copy named in its log (`staging the copy as ...`).
    pub fn staging_key(&self) -> Option<String> {
        let (_, rest) = self.stderr.split_once("staging the copy as s3://")?;
        let name = rest.split_whitespace().next()?;
        Some(name.split_once('/')?.1.to_owned())
    }

    /// Asserts the reason, and that the exit status is that reason's.
    pub fn expect(&self, reason: Reason) -> &Self {
        assert_eq!(
            (self.report.reason, self.code),
            (reason, i32::from(reason.exit_code())),
            "the copier's report: {:?}; its log:\n{}",
            self.report,
            self.stderr
        );
        self
    }
}
