//! mux-sim, the Mux emulator, as a process.
//!
//! It is started as `mux-sim --listen 127.0.0.1:0 [args]`: the kernel picks the port, so there
//! is no race for it, and mux-sim announces it on the first line of its stdout:
//! `mux-sim listening on http://127.0.0.1:PORT`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;

use super::error::{Error, Result};
use super::process::Process;
use super::ready::{READY_TIMEOUT, block_on, http_client, http_get_ok, until_ready};
use super::scratch::Scratch;

/// What precedes the URL on mux-sim's first line.
const ANNOUNCEMENT: &str = "mux-sim listening on ";

/// A running mux-sim.
#[derive(Debug)]
pub struct MuxSim {
    // Fields drop in order: the process before its scratch folder.
    process: Process,
    url: String,
    scratch: Scratch,
}

impl MuxSim {
    /// Starts `bin` (`testenv::bins::mux_sim()` finds it) with `args` after
    /// `--listen 127.0.0.1:0`; blocks until it answers `GET /_sim/healthz`. It stops when dropped.
    pub fn start(bin: impl AsRef<Path>, args: &[&str]) -> Result<Self> {
        mux::tls::install_crypto_provider();
        let mut scratch = Scratch::new("mux-sim")?;
        let log = scratch.dir().join("mux-sim.log");
        let stderr =
            File::create(&log).map_err(Error::io(format!("creating {}", log.display())))?;
        let stdout_log = stderr
            .try_clone()
            .map_err(Error::io("duplicating a log file"))?;
        let mut command = Command::new(bin.as_ref());
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut process = Process::spawn_with("mux-sim", command, &mut scratch, log)?;

        let stdout = process.child_mut().stdout.take().expect("stdout was piped");
        let first_line = announce(stdout, stdout_log);
        let url = match first_line.recv_timeout(READY_TIMEOUT) {
            Ok(line) => match line.strip_prefix(ANNOUNCEMENT) {
                Some(url) => url.trim().to_owned(),
                None => {
                    return Err(Error::Other(format!(
                        "mux-sim's first line should be `{ANNOUNCEMENT}URL`, it was {line:?}; its log:\n{}",
                        process.log_tail()
                    )));
                }
            },
            // The sender is gone (stdout closed: mux-sim exited), or nothing came in time.
            Err(_) => {
                return Err(match process.exited() {
                    Some(status) => process.exited_error(status),
                    None => Error::NotReady {
                        component: "mux-sim".to_owned(),
                        timeout: READY_TIMEOUT,
                        last: "no first line on stdout".to_owned(),
                        log_tail: process.log_tail(),
                    },
                });
            }
        };

        let healthz = format!("{url}/_sim/healthz");
        block_on(async {
            let http = http_client()?;
            let (http, healthz) = (&http, healthz.as_str());
            until_ready(&mut process, move || async move {
                http_get_ok(http, healthz).await.map(drop)
            })
            .await
        })??;
        Ok(MuxSim {
            process,
            url,
            scratch,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The scratch folder holding `mux-sim.log`; removed when mux-sim stops.
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// The end of mux-sim's log (stdout and stderr), for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// Sends the first line of `stdout` on the returned channel, then keeps copying the rest into
/// `log` on a thread of its own, so that mux-sim never blocks on a full pipe.
fn announce(stdout: ChildStdout, mut log: File) -> mpsc::Receiver<String> {
    let (first_line, receiver) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return; // Dropping the sender tells the receiver that stdout closed.
        }
        let _ = log.write_all(line.as_bytes());
        let _ = first_line.send(line);
        let _ = std::io::copy(&mut lines, &mut log);
    });
    receiver
}
