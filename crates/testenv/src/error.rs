//! Errors of the test environment, worded for the person reading a failed test's output.

use std::path::PathBuf;
use std::time::Duration;

/// Result of the test environment.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a component could not be found, started or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary is not where `make tools` puts it.
    #[error("{tool} not found at {}: run `make tools` (or set {hint})", path.display())]
    MissingTool {
        tool: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// A component exited while we waited for it to become ready.
    #[error(
        "{component} exited with {status} before it was ready; the end of its log:\n{log_tail}"
    )]
    Exited {
        component: String,
        status: std::process::ExitStatus,
        log_tail: String,
    },

    /// A component did not become ready in time.
    #[error(
        "{component} was not ready after {timeout:?} (last answer: {last}); the end of its log:\n{log_tail}"
    )]
    NotReady {
        component: String,
        timeout: Duration,
        last: String,
        log_tail: String,
    },

    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The Kubernetes client failed.
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),

    /// The shared instance failed to start, earlier, in another test of this process.
    #[error("the shared {component} failed to start: {message}")]
    Shared {
        component: &'static str,
        message: String,
    },

    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Wraps an I/O error with what we were doing.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// True when a component failed because its port was taken between our pick and its bind.
    pub(crate) fn is_port_conflict(&self) -> bool {
        match self {
            Error::Exited { log_tail, .. } | Error::NotReady { log_tail, .. } => {
                log_tail.contains("address already in use")
            }
            _ => false,
        }
    }
}
