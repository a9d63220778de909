//! containerd, from a configuration of its own: root, state, sockets, runc's state, CNI config
//! and the `opt` folder all under the node's folder, so that it shares nothing with a containerd
//! the machine may run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::Process;
use crate::ready::{block_on, until_ready};
use crate::scratch::Scratch;

/// The pause image's name, as `tools/tools.mk` tags it (`PAUSE_IMAGE_NAME`).
pub(crate) fn pause_image_name(version: &str) -> String {
    format!("localhost/mmo-pause:{version}")
}

/// A running containerd.
#[derive(Debug)]
pub(crate) struct Containerd {
    pub(crate) process: Process,
    pub(crate) socket: PathBuf,
}

/// containerd's configuration (version 2, containerd 1.6 and 1.7) for a node in `dir`.
pub(crate) fn config(dir: &Path, sandbox_image: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
# Snapshotters and exporters a test node has no use for: fewer plugins, quicker start.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  # Nothing can be pulled here: the sandbox image is imported at start.
  sandbox_image = "{sandbox_image}"
  # Root lacks CAP_SYS_RESOURCE on these machines: without this runc cannot lower a
  # container's oom_score_adj and fails every pod.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 and no systemd here: the cgroupfs driver, as the kubelet is told.
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
    )
}

/// A CNI network of a loopback interface only: pods that use it reach nothing but themselves
/// (the tests' pods use the host's network), and containerd reports the network ready.
const CNI_LOOPBACK: &str =
    r#"{"cniVersion": "1.0.0", "name": "mmo-loopback", "plugins": [{"type": "loopback"}]}"#;

/// Starts containerd for a node in `scratch`; returns once it answers on its socket.
pub(crate) fn start(scratch: &mut Scratch, sandbox_image: &str) -> Result<Containerd> {
    let dir = scratch.dir().to_owned();
    let config_path = dir.join("containerd.toml");
    write(&config_path, &config(&dir, sandbox_image))?;
    std::fs::create_dir_all(dir.join("cni")).map_err(Error::io("creating the CNI folder"))?;
    write(&dir.join("cni/10-loopback.conflist"), CNI_LOOPBACK)?;
    let tmp = dir.join("containerd/tmp");
    std::fs::create_dir_all(&tmp).map_err(Error::io("creating containerd's temp folder"))?;

    let mut command = Command::new("containerd");
    command
        .arg("--config")
        .arg(&config_path)
        // Image unpacking mounts in the temporary folder: keep it ours.
        .env("TMPDIR", &tmp);
    let mut process = Process::spawn("containerd", command, scratch)?;
    let socket = dir.join("containerd.sock");
    block_on(async {
        let socket = socket.as_path();
        until_ready(&mut process, move || async move {
            ctr(socket, &["version"]).map(drop)
        })
        .await
    })??;
    Ok(Containerd { process, socket })
}

/// Talks to a running containerd through `ctr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    socket: &'a Path,
}

impl Containerd {
    /// A client for it.
    pub(crate) fn client(&self) -> Client<'_> {
        Client::new(&self.socket)
    }
}

impl<'a> Client<'a> {
    pub(crate) fn new(socket: &'a Path) -> Self {
        Client { socket }
    }

    /// Imports an image archive (OCI or docker format) into the namespace the kubelet uses.
    pub(crate) fn import(&self, archive: &Path) -> Result<()> {
        let archive = archive.to_string_lossy();
        ctr(self.socket, &["images", "import", &archive])
            .map(drop)
            .map_err(Error::Other)
    }

    /// Whether `name` is among the images the kubelet can see.
    pub(crate) fn has_image(&self, name: &str) -> Result<bool> {
        let listing = ctr(self.socket, &["images", "list", "--quiet"]).map_err(Error::Other)?;
        Ok(listing.lines().any(|line| line.trim() == name))
    }
}

/// `ctr --address SOCKET -n k8s.io ARGS`: its stdout, or what went wrong.
fn ctr(socket: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .map_err(|e| format!("running ctr: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ctr {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_containerd_keeps_is_under_the_node_folder() {
        let config = config(Path::new("/tmp/mmo-node-x"), "localhost/mmo-pause:1");
        for key in ["root", "state", "address", "path", "Root", "conf_dir"] {
            let line = config
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("no {key} in\n{config}"));
            assert!(line.contains("\"/tmp/mmo-node-x/"), "{line}");
        }
        assert!(config.contains("restrict_oom_score_adj = true"));
        assert!(config.contains("SystemdCgroup = false"));
        assert!(config.contains(r#"sandbox_image = "localhost/mmo-pause:1""#));
    }
}
