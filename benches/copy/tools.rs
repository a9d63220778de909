//! The processes the copy benchmark runs: each to its end, its wall time and peak resident
//! memory from wait4(2); and the peers it compares with, installed from Debian when missing.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One finished process.
pub struct Run {
    pub code: i32,
    pub wall: Duration,
    pub peak_rss: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end, its output in a scratch file, measuring wall time and peak RSS.
pub fn run(command: &mut Command) -> Result<Run, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).map_err(|e| e.to_string())?)
        .stderr(File::create(&stderr_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, and wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals above.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if code != 0 {
        return Err(format!(
            "{:?} exited with {code}: {}",
            command.get_program(),
            stderr.trim()
        ));
    }
    Ok(Run {
        code,
        wall,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr,
    })
}

/// The path of `binary`, installing Debian's `package` (if `install`) when it is missing and we
/// are root (rclone, aria2: the tools people use, as Debian ships them).
pub fn tool(binary: &str, package: &str, install: bool) -> Result<String, String> {
    let found = |name: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(path) = found(binary) {
        return Ok(path);
    }
    if !install {
        return Err(format!("{binary} is not installed"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || found("apt-get").is_none() {
        return Err(format!(
            "{binary} is not installed; `apt-get install -y {package}` (as root) adds it"
        ));
    }
    println!("{binary} is missing: apt-get install -y {package}");
    let apt_get = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // The package lists may be missing (a fresh image) or stale: update once on failure.
    let installed = apt_get(&["install", "-y", "-q", package])
        || (apt_get(&["update", "-q"]) && apt_get(&["install", "-y", "-q", package]));
    if !installed {
        return Err(format!("apt-get install {package} failed"));
    }
    found(binary).ok_or_else(|| format!("{binary} is still not on PATH after installing it"))
}
