//! The kubelet: registers the node and runs its pods through containerd.
//!
//! Everything it keeps goes under the node's folder (root dir, pod logs, certificates); its
//! cgroups under a cgroup of the node's own (`cgroupRoot`), so that teardown finds every pod
//! process and two nodes on one machine never share one. It listens on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::{Process, free_port};
use crate::scratch::Scratch;

/// The node's name. It is also the address the apiserver reaches the kubelet at (for logs and
/// exec: `--kubelet-preferred-address-types=Hostname`), so it must resolve to 127.0.0.1:
/// `localhost` does everywhere, and the kubelet refuses a loopback `--node-ip`.
pub const NODE_NAME: &str = "localhost";

/// The cgroup controllers the node's cgroup is made in (cgroup v1: one hierarchy each). Those
/// the machine lacks are skipped.
const CGROUP_HIERARCHIES: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "systemd", "unified",
];

/// The kubelet's configuration file.
pub(crate) fn config(dir: &Path, socket: &Path, cgroup: &str, port: u16, healthz: u16) -> String {
    let config = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        // Only the apiserver talks to it, over loopback, without a client certificate.
        "authentication": {"anonymous": {"enabled": true}, "webhook": {"enabled": false}},
        "authorization": {"mode": "AlwaysAllow"},
        // cgroup v1 here (v2 cannot be switched on); cgroupfs, as containerd's runc is told.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": format!("/{cgroup}"),
        "failSwapOn": false,
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "podLogsDir": dir.join("pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        // A busy shared disk must not evict test pods, nor collect their images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
            "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        // No kube-proxy, no Service routing: nothing needs the kubelet's iptables chains, and
        // with an nftables backend even listing them would create tables nothing removes.
        "makeIPTablesUtilChains": false,
        "serializeImagePulls": false,
        "fileCheckFrequency": "1s",
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "5s",
    });
    serde_json::to_string_pretty(&config).expect("a JSON value serializes")
}

/// Makes the node's cgroup under every hierarchy the machine has; the kubelet wants its
/// `cgroupRoot` to exist. Returns the folders made.
pub(crate) fn make_cgroup(name: &str) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for hierarchy in CGROUP_HIERARCHIES {
        let root = Path::new("/sys/fs/cgroup").join(hierarchy);
        if !root.join("cgroup.procs").exists() {
            continue;
        }
        let dir = root.join(name);
        std::fs::create_dir(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        if *hierarchy == "cpuset" {
            // A new cpuset has no CPUs and no memory nodes: nothing could run in it.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = std::fs::read_to_string(root.join(file))
                    .map_err(Error::io(format!("reading {file}")))?;
                std::fs::write(dir.join(file), value.trim())
                    .map_err(Error::io(format!("writing {}/{file}", dir.display())))?;
            }
        }
        made.push(dir);
    }
    Ok(made)
}

/// Starts the kubelet of a node in `scratch`, talking to the apiserver as `kubeconfig` says.
pub(crate) fn start(
    scratch: &mut Scratch,
    kubeconfig: &Path,
    socket: &Path,
    cgroup: &str,
) -> Result<(Process, u16)> {
    let dir = scratch.dir().to_owned();
    let (port, healthz) = (free_port()?, free_port()?);
    let config_path = dir.join("kubelet.json");
    std::fs::write(&config_path, config(&dir, socket, cgroup, port, healthz))
        .map_err(Error::io("writing the kubelet's configuration"))?;
    let mut command = Command::new(crate::Tool::Kubelet.path()?);
    command
        .arg("--config")
        .arg(&config_path)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--root-dir")
        .arg(dir.join("kubelet"))
        .arg("--cert-dir")
        .arg(dir.join("kubelet-pki"))
        .arg(format!("--hostname-override={NODE_NAME}"))
        .arg("--v=1");
    let process = Process::spawn("kubelet", command, scratch)?;
    Ok((process, healthz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_listens_on_loopback_and_keeps_its_files_and_cgroups_to_itself() {
        let text = config(
            Path::new("/tmp/mmo-node-x"),
            Path::new("/tmp/mmo-node-x/containerd.sock"),
            "mmo-node-x",
            10250,
            10248,
        );
        let config: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(config["address"], "127.0.0.1");
        assert_eq!(config["healthzBindAddress"], "127.0.0.1");
        assert_eq!(config["readOnlyPort"], 0);
        assert_eq!(config["cgroupRoot"], "/mmo-node-x");
        assert_eq!(config["podLogsDir"], "/tmp/mmo-node-x/pod-logs");
        assert_eq!(
            config["containerRuntimeEndpoint"],
            "unix:///tmp/mmo-node-x/containerd.sock"
        );
        assert_eq!(config["failCgroupV1"], false);
        assert_eq!(config["makeIPTablesUtilChains"], false);
    }
}
