//! One component process: started with its output in a log file, killed when dropped, and
//! registered with the watchdog and the kernel (see `scratch` and `spawner`) to die with us.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::error::{Error, Result};
use super::scratch::Scratch;
use super::spawner;

/// How many lines of a component's log an error shows.
const LOG_TAIL_LINES: usize = 40;

/// A running component.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `<scratch>/<name>.log` (a file, not a
    /// pipe, so nobody has to drain it), and registers it with the scratch folder's watchdog.
    pub(crate) fn spawn(name: &str, mut command: Command, scratch: &mut Scratch) -> Result<Self> {
        let log = scratch.dir().join(format!("{name}.log"));
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io("duplicating a log file"))?;
        command.stdout(out).stderr(err);
        Self::spawn_with(name, command, scratch, log)
    }

    /// Starts `command`, whose stdout and stderr the caller has set up, logging to `log`.
    pub(crate) fn spawn_with(
        name: &str,
        mut command: Command,
        scratch: &mut Scratch,
        log: PathBuf,
    ) -> Result<Self> {
        let program = command.get_program().to_owned();
        command.stdin(Stdio::null());
        let child = spawner::spawn(command).map_err(Error::io(format!(
            "starting {name} ({})",
            program.display()
        )))?;
        let process = Process {
            name: name.to_owned(),
            child,
            log,
        };
        scratch.guard(&process.child)?;
        Ok(process)
    }

    /// The component's name, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The child process, for the caller to take its pipes.
    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Some(status)` when the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the component's log.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// The error for a process that exited early.
    pub(crate) fn exited_error(&self, status: ExitStatus) -> Error {
        Error::Exited {
            component: self.name.clone(),
            status,
            log_tail: self.log_tail(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Test data is disposable, so no graceful shutdown: SIGKILL, then reap.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, or why it could not be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A loopback port that was free a moment ago. Another process may take it before the component
/// binds it: callers retry on [`Error::is_port_conflict`].
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("finding a free port"))?
        .port();
    Ok(port)
}

/// Runs `start` up to three times while it fails because a picked port was taken meanwhile.
pub(crate) fn retry_on_port_conflict<T>(mut start: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(e) if e.is_port_conflict() && attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}
