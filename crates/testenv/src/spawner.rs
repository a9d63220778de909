//! Starting component processes so that the kernel kills them when the test process dies
//! (`PR_SET_PDEATHSIG`): a second line of defence behind the watchdog (see `scratch`).
//!
//! The kernel sends the parent-death signal when the *thread* that forked the child ends, not
//! the process. Test harness threads end with their test, and a shared component started by one
//! test must outlive it. So every component is forked by one thread that lives as long as the
//! process.

use std::io;
use std::process::{Child, Command};
use std::sync::{OnceLock, mpsc};

/// A command to start, and where to send the result.
type Request = (Command, mpsc::SyncSender<io::Result<Child>>);

/// Starts `command` from the process-long spawner thread, set to die with this process.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    die_with_this_process(&mut command);
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testenv-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the testenv spawner thread");
        requests
    });
    let gone = || io::Error::other("the testenv spawner thread is gone");
    let (reply, answer) = mpsc::sync_channel(1);
    spawner.send((command, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// Sets the child's parent-death signal to SIGKILL, between fork and exec.
#[cfg(target_os = "linux")]
fn die_with_this_process(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before exec; prctl and getppid are
    // async-signal-safe and it touches no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then we have been reparented.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
}

/// Elsewhere, the watchdog alone cleans up.
#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_command: &mut Command) {}
