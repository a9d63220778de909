//! A real node on the control plane: containerd, kube-controller-manager, kube-scheduler and one
//! kubelet, so that Jobs make pods, pods run as containers from local images, garbage is
//! collected and namespaces finalize.
//!
//! Pods use the host's network (`hostNetwork: true`) and reach everything over 127.0.0.1: there
//! is no pod network and no Service routing. Images are never pulled: [`Node::import`] loads an
//! archive built locally (`make image`; the pause image by `make tools`).
//!
//! The node changes the machine beyond its folder (cgroups, mounts, sysctls, iptables chains,
//! a few paths the kubelet always uses). Before starting, it captures that state
//! ([`MachineState`]) and writes a teardown script that restores it (`teardown`); the script
//! runs on drop and, from the watchdog, when the test process dies. One node runs on a machine
//! at a time: a machine-wide lock (an abstract socket, which leaves no file) is held until the
//! teardown is done.
//!
//! Where a node cannot run (not root, no containerd or runc, no pause image), [`Node::unavailable`]
//! says why, and callers fall back to the played node (`crate::kubelet`).

mod containerd;
mod controllers;
mod images;
mod kubelet;
mod lock;
mod machine;
mod readiness;
mod teardown;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use images::pause_image;
pub use images::{operator_image_archive, operator_image_name, pause_image_name};
pub use kubelet::NODE_NAME;
pub use machine::MachineState;
pub use readiness::wait_for_default_service_account;

use crate::controlplane::ControlPlane;
use crate::error::{Error, Result};
use crate::process::{Process, retry_on_port_conflict};
use crate::ready::block_on;
use crate::scratch::Scratch;
use crate::tools::Tool;

/// Set (to anything) to make a missing node an error instead of a fallback: CI sets it.
pub const REQUIRE_ENV: &str = "MMO_REQUIRE_NODE";

/// A running node and the controllers that feed it.
#[derive(Debug)]
pub struct Node {
    /// Stopped in this order on drop: the kubelet first (no new pods), containerd last.
    components: Vec<Process>,
    containerd: PathBuf,
    teardown: PathBuf,
    scratch: Scratch,
    /// The machine-wide lock; released after the teardown (the watchdog holds a copy).
    _lock: OwnedFd,
}

impl Node {
    /// The node shared by every test of this process, on [`ControlPlane::shared`], started by
    /// the first caller. Never dropped: its watchdog tears it down when the process ends.
    pub fn shared() -> Result<&'static Node> {
        static SHARED: OnceLock<std::result::Result<Node, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let control_plane = ControlPlane::shared().map_err(|e| e.to_string())?;
                Node::start(control_plane).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| Error::Shared {
                component: "node",
                message: message.clone(),
            })
    }

    /// Why no node can run on this machine, or `None` when one can. Checks what a start needs
    /// without starting anything.
    pub fn unavailable() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root (the kubelet and containerd need root)".to_owned());
        }
        for command in ["containerd", "ctr", "runc"] {
            if !on_path(command) {
                return Some(format!(
                    "no {command} on PATH (`make tools` installs it as root)"
                ));
            }
        }
        if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists()
            && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            return Some("no cgroup memory controller at /sys/fs/cgroup".to_owned());
        }
        for tool in [
            Tool::Kubelet,
            Tool::KubeControllerManager,
            Tool::KubeScheduler,
        ] {
            if let Err(e) = tool.path() {
                return Some(e.to_string());
            }
        }
        if let Err(e) = pause_image() {
            return Some(e.to_string());
        }
        None
    }

    /// Blocks until no node runs on this machine, its teardown included: a test binary that ended
    /// with a shared node leaves its watchdog restoring the machine after the process is gone.
    /// For a caller that captures [`MachineState`] and needs no node's changes in it.
    pub fn wait_until_none_runs() -> Result<()> {
        lock::wait_until_free()
    }

    /// Starts a node of its own on `control_plane`; blocks until the node is Ready and the
    /// controllers work (the `default` namespace has its `default` ServiceAccount).
    pub fn start(control_plane: &ControlPlane) -> Result<Self> {
        if let Some(reason) = Node::unavailable() {
            return Err(Error::Other(format!("no node can run here: {reason}")));
        }
        let lock = lock::machine_wide()?;
        let before = MachineState::capture();
        let mut scratch = Scratch::holding("node", &lock)?;
        let cgroup = scratch
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Other("the node's folder has no name".to_owned()))?;
        let socket = scratch.dir().join("containerd.sock");
        let layout = teardown::Layout {
            dir: scratch.dir().display().to_string(),
            containerd_socket: socket.display().to_string(),
            cgroup: cgroup.clone(),
        };
        let teardown = scratch.dir().join("teardown.sh");
        std::fs::write(&teardown, teardown::script(&layout, &before))
            .map_err(Error::io("writing the node's teardown script"))?;
        scratch.run_on_teardown(&teardown)?;
        // From here on, an error drops `node`, which tears down what was started.
        let mut node = Node {
            components: Vec::new(),
            containerd: socket.clone(),
            teardown,
            scratch,
            _lock: lock,
        };
        kubelet::make_cgroup(&cgroup)?;

        let (pause, pause_name) = pause_image()?;
        let runtime = containerd::start(&mut node.scratch, &pause_name)?;
        runtime.client().import(&pause)?;
        // The operator's image, when `make image` has built it; tests that need it say so.
        if let Ok(archive) = operator_image_archive() {
            runtime.client().import(&archive)?;
        }
        node.components.push(runtime.process);

        let files = controllers::ControlPlaneFiles {
            kubeconfig: control_plane.kubeconfig(),
            service_account_key: control_plane.service_account_key(),
            root_ca: control_plane.ca(),
        };
        let manager = retry_on_port_conflict(|| {
            controllers::start_controller_manager(&mut node.scratch, &files)
        })?;
        node.components.insert(0, manager);
        let scheduler = retry_on_port_conflict(|| {
            controllers::start_scheduler(&mut node.scratch, control_plane.kubeconfig())
        })?;
        node.components.insert(0, scheduler);
        let (mut kubelet, _healthz) = kubelet::start(
            &mut node.scratch,
            control_plane.kubeconfig(),
            &socket,
            &cgroup,
        )?;
        let ready = block_on(readiness::until_node_ready(
            &mut kubelet,
            control_plane.config().clone(),
        ));
        node.components.insert(0, kubelet);
        ready??;
        Ok(node)
    }

    /// Imports an image archive (as `make image` writes) so that pods can run it without a pull.
    pub fn import(&self, archive: &Path) -> Result<()> {
        self.runtime().import(archive)
    }

    /// Whether the node holds image `name` (e.g. `localhost/mux-master-operator:0.1.0`).
    pub fn has_image(&self, name: &str) -> Result<bool> {
        self.runtime().has_image(name)
    }

    /// The node's folder (logs of every component, the kubelet's root).
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// The end of each component's log, for a failing test's message.
    pub fn log_tails(&self) -> String {
        self.components
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name(), p.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A handle on containerd for `ctr` (the process itself is in `components`).
    fn runtime(&self) -> containerd::Client<'_> {
        containerd::Client::new(&self.containerd)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The processes first, then what they left (the watchdog would do the same, but only if
        // this process died; it is stopped, unused, when `scratch` drops after this).
        // Run even when the folder is kept (MMO_TESTENV_KEEP): the script leaves files alone.
        self.components.drain(..).for_each(drop);
        let _ = std::process::Command::new("sh")
            .arg(&self.teardown)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}
