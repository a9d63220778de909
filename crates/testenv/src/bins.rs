//! Where the workspace's two programs are, for whatever runs them: tests, benches, the demo.
//!
//! Cargo builds the operator's binary next to the operator's own integration tests, benches and
//! examples (`target/<profile>/`), so it is found beside the running program. mux-sim belongs to
//! another package, which Cargo does not build for the operator's tests: it is built here, once
//! per process, with the caller's profile (`cargo build -p mux-sim`, a no-op when it is fresh),
//! so a plain `cargo test` never runs a stale emulator. `MMO_OPERATOR_BIN` and `MMO_SIM_BIN`
//! override both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The operator's binary, `mux-master-operator`.
pub fn operator() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MMO_OPERATOR_BIN") {
        return existing(PathBuf::from(path), "MMO_OPERATOR_BIN");
    }
    existing(
        profile_dir()?.join("mux-master-operator"),
        "cargo build --bins",
    )
}

/// mux-sim's binary, built first if this process runs under Cargo.
pub fn mux_sim() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MMO_SIM_BIN") {
        return existing(PathBuf::from(path), "MMO_SIM_BIN");
    }
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(build_mux_sim)
        .clone()
        .map_err(Error::Other)?;
    existing(profile_dir()?.join("mux-sim"), "cargo build -p mux-sim")
}

/// `cargo build -p mux-sim` with the profile of the running program, when Cargo started it (it
/// sets `CARGO`); otherwise the binary must already be there.
fn build_mux_sim() -> std::result::Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mux-sim/Cargo.toml");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--bin", "mux-sim", "--manifest-path"])
        .arg(&manifest);
    if profile_dir().is_ok_and(|dir| dir.ends_with("release")) {
        command.arg("--release");
    }
    if std::env::var_os("CARGO_LOCKED").is_some() || std::env::var_os("CI").is_some() {
        command.arg("--locked");
    }
    let output = command
        .output()
        .map_err(|e| format!("running cargo to build mux-sim: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build -p mux-sim` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `target/<profile>/`: the running program is in it (a bin), or in its `deps/` (tests,
/// benches) or `examples/` (the demo).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(Error::io("finding the running program"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| Error::Other(format!("{} has no folder", exe.display())))?;
    let dir = match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().unwrap_or(dir),
        _ => dir,
    };
    Ok(dir.to_path_buf())
}

fn existing(path: PathBuf, how: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Other(format!(
            "{} is missing: build it ({how})",
            path.display()
        )))
    }
}
