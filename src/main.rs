//! The `mux-master-operator` command line: the controller, the copy Job's program, and
//! tools. Only argument parsing and dispatch live here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mux_master_operator::{controller, copy};

#[derive(Parser)]
#[command(
    name = "mux-master-operator",
    version,
    about = "Keeps the masters of Mux assets downloadable, fresh, and archived"
)]
struct Cli {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log level or filter (`info`, `debug`, `mux_master_operator=debug,kube=info`).
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(Box<controller::run::RunArgs>),
    /// Copy a master from its URL into object storage, verified (the copy Job runs this).
    Copy(Box<copy::CopyArgs>),
    /// Print one MasterExport per asset of the environment (YAML), for GitOps repositories.
    ExportManifests(Box<mux_master_operator::exportset::manifests::ExportManifestsArgs>),
    /// Print a CustomResourceDefinition as YAML (MasterExport unless `--kind` says otherwise).
    Crd {
        #[arg(long, default_value = "MasterExport", value_parser = ["MasterExport", "MasterExportSet"])]
        kind: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    mux::tls::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(&cli.log_format, &cli.log_level);
    match cli.command {
        Command::Run(args) => match controller::run::run(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "the operator stopped");
                ExitCode::FAILURE
            }
        },
        Command::Copy(args) => copy::run(*args).await,
        Command::ExportManifests(args) => {
            mux_master_operator::exportset::manifests::run(*args).await
        }
        Command::Crd { kind } => {
            match kind.as_str() {
                "MasterExportSet" => print!("{}", mux_master_operator::crd::set_yaml()),
                _ => print!("{}", mux_master_operator::crd::yaml()),
            }
            ExitCode::SUCCESS
        }
    }
}

/// Logs go to stderr, so `crd` and `copy` keep stdout for their output.
fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
