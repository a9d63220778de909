//! A scratch folder for one environment, and the watchdog that cleans up after it.
//!
//! `Drop` stops the processes and removes the folder on the normal path. But a test process can
//! end without dropping anything: a `static` shared instance is never dropped, and a panic with
//! `panic = "abort"`, `process::exit` or a signal skip destructors. So each environment also
//! starts a small `sh` watchdog whose stdin is a pipe from this process. We tell it the pid of
//! every process we start, one per line. When this process dies, for whatever reason, the kernel
//! closes the pipe; the watchdog reads end-of-file, kills those pids and removes the folder.
//!
//! The write end of the pipe is close-on-exec (std opens every pipe so), so no child inherits it
//! and keeps the watchdog waiting.
//!
//! An environment that changes the machine beyond its folder (the node: mounts, cgroups, sysctls)
//! also registers a teardown script (`run PATH` on the pipe), which the watchdog runs after the
//! kills and before removing the folder; and it may hand the watchdog a file descriptor to hold
//! (a machine-wide lock) until that cleanup is done.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::error::{Error, Result};

/// Set to keep scratch folders (logs, data) after the test, for debugging.
const KEEP_ENV: &str = "MMO_TESTENV_KEEP";

/// The watchdog: collects pids (and teardown scripts, `run PATH`) until end-of-file, then kills
/// the pids, waits (bounded) until they are dead, zombies included, runs the scripts, and removes
/// the folder `$1` unless `$2` is `keep`. It ignores the terminal's signals, which are aimed at
/// the test's process group, so that Ctrl-C leaves it alive to clean up.
const WATCHDOG: &str = r#"
trap '' INT TERM HUP QUIT
alive() {
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}
pids=
scripts=
while read -r line; do
  case $line in
    "run "*) scripts="$scripts ${line#run }" ;;
    *) pids="$pids $line" ;;
  esac
done
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
for pid in $pids; do
  n=0
  while alive "$pid" && [ "$n" -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
done
for script in $scripts; do sh "$script" >/dev/null 2>&1; done
[ "$2" = keep ] || rm -rf "$1"
"#;

/// A scratch folder guarded by a watchdog process.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: PathBuf,
    keep: bool,
    watchdog: Child,
    /// Our end of the watchdog's stdin; closing it (by dying) is the watchdog's signal.
    pipe: ChildStdin,
}

impl Scratch {
    /// Creates `$TMPDIR/mmo-<label>-<random>` and its watchdog.
    pub(crate) fn new(label: &str) -> Result<Self> {
        Self::create(label, None, &std::env::temp_dir())
    }

    /// Like [`Scratch::new`], under `base` instead of `$TMPDIR`.
    pub(crate) fn new_in(label: &str, base: &Path) -> Result<Self> {
        Self::create(label, None, base)
    }

    /// Like [`Scratch::new`], and the watchdog holds a duplicate of `held` (as its stdout) until
    /// it has cleaned up: a lock held through it is released only once the machine is clean.
    pub(crate) fn holding(label: &str, held: &std::os::fd::OwnedFd) -> Result<Self> {
        let held = held
            .try_clone()
            .map_err(Error::io("duplicating a descriptor for the watchdog"))?;
        Self::create(label, Some(Stdio::from(held)), &std::env::temp_dir())
    }

    fn create(label: &str, stdout: Option<Stdio>, base: &Path) -> Result<Self> {
        let dir = base.join(format!("mmo-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let keep = std::env::var_os(KEEP_ENV).is_some();
        let spawned = Command::new("sh")
            .args(["-c", WATCHDOG, "mmo-testenv-watchdog"])
            .arg(&dir)
            .arg(if keep { "keep" } else { "remove" })
            .stdin(Stdio::piped())
            .stdout(stdout.unwrap_or_else(Stdio::null))
            .stderr(Stdio::null())
            // Its own process group: signals sent to the test's group do not reach it.
            .process_group(0)
            .spawn();
        let mut watchdog = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::io("starting the cleanup watchdog (sh)")(e));
            }
        };
        let pipe = watchdog.stdin.take().expect("stdin was piped");
        if keep {
            eprintln!("testenv: keeping {} ({KEEP_ENV} is set)", dir.display());
        }
        Ok(Scratch {
            dir,
            keep,
            watchdog,
            pipe,
        })
    }

    /// The folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Tells the watchdog to run `sh SCRIPT` if this process dies, after killing the processes
    /// and before removing the folder. The path must have no whitespace.
    pub(crate) fn run_on_teardown(&mut self, script: &Path) -> Result<()> {
        writeln!(self.pipe, "run {}", script.display())
            .map_err(Error::io("registering a teardown script with the watchdog"))
    }

    /// Tells the watchdog to kill `child` if this process dies.
    pub(crate) fn guard(&mut self, child: &Child) -> Result<()> {
        writeln!(self.pipe, "{}", child.id())
            .map_err(Error::io("registering a pid with the watchdog"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The owner has stopped its processes already (fields drop before this one). Stop the
        // watchdog first, so that closing the pipe does not make it kill pids that are gone and
        // may have been reused; then clean up ourselves.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
