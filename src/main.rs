//! The `mux-master-operator` command line: the controller, the copy Job's program, and
//! tools. Only argument parsing and dispatch live here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mux_master_operator::copy;

#[derive(Parser)]
#[command(
    name = "mux-master-operator",
    version,
    about = "Keeps the masters of Mux assets downloadable, fresh, and archived"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Copy a master from its URL into object storage, verified (the copy Job runs this).
    Copy(copy::CopyArgs),
    /// Print the MasterExport CustomResourceDefinition as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> ExitCode {
    mux_master_operator::tls::install_crypto_provider();
    match Cli::parse().command {
        Command::Copy(args) => copy::run(args).await,
        Command::Crd => {
            print!("{}", mux_master_operator::crd::yaml());
            ExitCode::SUCCESS
        }
    }
}
