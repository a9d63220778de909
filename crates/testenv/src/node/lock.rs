//! One test node per machine at a time: they share the kubelet's fixed paths and sysctls, and
//! each restores what it saw at its start. The lock is an abstract Unix socket name: held while
//! any descriptor of the bound socket is open (the watchdog keeps one until its teardown is done),
//! freed by the kernel when the last holder dies, and it leaves no file behind.

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The lock's name (in the abstract namespace: no file).
const NAME: &[u8] = b"mux-master-operator-testenv-node";

/// How long to wait for another test process's node: a whole test binary may hold it.
const WAIT: Duration = Duration::from_secs(30 * 60);

/// How often to ask again while another node holds the lock.
const POLL: Duration = Duration::from_millis(200);

/// Takes the machine-wide lock, waiting while another process holds it.
pub(crate) fn machine_wide() -> Result<OwnedFd> {
    let address =
        SocketAddr::from_abstract_name(NAME).map_err(Error::io("naming the node lock"))?;
    let deadline = Instant::now() + WAIT;
    let mut told = false;
    loop {
        match UnixListener::bind_addr(&address) {
            Ok(listener) => return Ok(OwnedFd::from(listener)),
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                if !told {
                    eprintln!("testenv: another test node runs on this machine; waiting for it");
                    told = true;
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(Error::io("taking the machine-wide node lock")(e)),
        }
    }
}

/// Waits until no node holds the lock (a dead test process's watchdog may still be restoring the
/// machine), then lets it go: for a caller that compares the machine between two nodes.
pub(crate) fn wait_until_free() -> Result<()> {
    machine_wide().map(drop)
}
