//! mux-sim: an emulator of the Mux Video API for tests, benchmarks and the demo.
//!
//! Prints `mux-sim listening on http://ADDR` as its first line, then serves until SIGTERM
//! or Ctrl-C. `/_sim/*` seeds assets and live streams and shows what was asked.

use std::net::SocketAddr;

use clap::Parser;
use mux_sim::{self as sim, Switches};

#[derive(Parser)]
#[command(
    name = "mux-sim",
    version,
    about = "An emulator of the Mux Video API (master access)"
)]
struct Cli {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8085", env = "MUX_SIM_LISTEN")]
    listen: SocketAddr,
    /// An accepted access token, as ID:SECRET (repeatable).
    #[arg(
        long = "token",
        default_value = "mux-sim-token-id:mux-sim-token-secret"
    )]
    tokens: Vec<String>,
    /// Base of the master URLs it hands out, when clients reach it by another address.
    #[arg(long)]
    public_url: Option<String>,
    #[command(flatten)]
    switches: Switches,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    mux::tls::install_crypto_provider();
    let mut tokens = Vec::new();
    for token in &cli.tokens {
        let Some((id, secret)) = token.split_once(':') else {
            eprintln!(
                "mux-sim: --token takes ID:SECRET, got {:?}",
                token.split(':').next().unwrap_or("")
            );
            std::process::exit(2);
        };
        tokens.push((id.to_string(), secret.to_string()));
    }
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mux-sim: cannot listen on {}: {e}", cli.listen);
            std::process::exit(1);
        }
    };
    println!("mux-sim listening on http://{}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    let options = sim::Options {
        tokens,
        public_url: cli.public_url,
        switches: cli.switches,
    };
    sim::serve(listener, options, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
