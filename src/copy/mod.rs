//! The copy Job's program: stream the master from its URL into object storage, verified.
//! Knows nothing of the controller. (Filled in by the copy issue.)

/// `mux-master-operator copy` flags.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {}

/// Runs a copy; the process exits with the code returned.
pub async fn run(_args: CopyArgs) -> std::process::ExitCode {
    eprintln!("copy: not implemented yet");
    std::process::ExitCode::from(2)
}
