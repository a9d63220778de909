//! What the node changes on the machine beyond its folder, captured so that teardown can put it
//! back and a test can prove it did: the sysctls the kubelet sets, the iptables chains it adds,
//! the files it writes outside its root folder, cgroups and mounts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sysctls the kubelet sets at start (its `setupKernelTunables`), as `/proc/sys` paths.
pub(crate) const SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Places outside its folders that the kubelet or containerd create whatever they are told (the
/// device-plugin socket folder, the container log links, the shims' socket folder), parents first.
/// Teardown removes those that were not there before.
pub(crate) const GLOBAL_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/lib/kubelet/device-plugins",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/run/containerd/s",
    "/var/lib/cni",
    "/run/netns",
];

/// The iptables tables the kubelet may add chains to.
pub(crate) const IPTABLES_TABLES: &[&str] = &["filter", "nat", "mangle"];

/// The iptables front ends, IPv4 and IPv6.
pub(crate) const IPTABLES_TOOLS: &[&str] = &["iptables", "ip6tables"];

/// Folders not listed: other programs' shared memory comes and goes there.
const UNLISTED: &[&str] = &["/run/shm", "/dev/shm"];

/// Folders listed (to a few levels) to catch any new file outside the temporary folders.
const LISTED_ROOTS: &[(&str, usize)] = &[
    ("/run", 3),
    ("/var/lib", 3),
    ("/var/log", 2),
    ("/etc", 2),
    ("/opt", 2),
];

/// Every cgroup or mount of a test node has this in its name or path.
pub(crate) const NODE_MARK: &str = "mmo-node-";

/// What teardown must restore, and what a test compares before and after.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineState {
    /// `/proc/sys` path -> value.
    pub sysctls: BTreeMap<String, String>,
    /// `tool table` -> its chain names (`-N` lines of `-S`); only for tools that are installed.
    pub iptables_chains: BTreeMap<String, BTreeSet<String>>,
    /// `tool table` for every table that exists (`*table` lines of `iptables-save`): with the
    /// nftables backend a table exists only once something has added to it.
    pub iptables_tables: BTreeSet<String>,
    /// Which [`GLOBAL_PATHS`] exist.
    pub global_paths: BTreeSet<String>,
    /// Every path under the listed roots (see `LISTED_ROOTS`).
    pub files: BTreeSet<PathBuf>,
    /// cgroup folders of any test node (`/sys/fs/cgroup/<hierarchy>/mmo-node-*`).
    pub node_cgroups: BTreeSet<PathBuf>,
    /// Mount points of any test node (paths containing `mmo-node-`).
    pub node_mounts: BTreeSet<String>,
}

impl MachineState {
    /// Reads the machine's current state.
    pub fn capture() -> Self {
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|name| {
                let value = std::fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?;
                Some(((*name).to_owned(), value.trim().to_owned()))
            })
            .collect();
        let mut iptables_chains = BTreeMap::new();
        for tool in IPTABLES_TOOLS {
            for table in IPTABLES_TABLES {
                if let Some(chains) = iptables_chains_of(tool, table) {
                    iptables_chains.insert(format!("{tool} {table}"), chains);
                }
            }
        }
        let iptables_tables = IPTABLES_TOOLS
            .iter()
            .flat_map(|tool| {
                let listing = Command::new(format!("{tool}-save"))
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                tables_in(&listing)
                    .into_iter()
                    .map(move |table| format!("{tool} {table}"))
            })
            .collect();
        let global_paths = GLOBAL_PATHS
            .iter()
            .filter(|p| Path::new(p).symlink_metadata().is_ok())
            .map(|p| (*p).to_owned())
            .collect();
        let mut files = BTreeSet::new();
        for (root, depth) in LISTED_ROOTS {
            list(Path::new(root), *depth, &mut files);
        }
        let mut node_cgroups = BTreeSet::new();
        for hierarchy in read_dir_paths(Path::new("/sys/fs/cgroup")) {
            for cgroup in read_dir_paths(&hierarchy) {
                let named = cgroup
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(NODE_MARK));
                if named && cgroup.is_dir() {
                    node_cgroups.insert(cgroup);
                }
            }
        }
        let node_mounts = mount_points()
            .into_iter()
            .filter(|m| m.contains(NODE_MARK))
            .collect();
        MachineState {
            sysctls,
            iptables_chains,
            iptables_tables,
            global_paths,
            files,
            node_cgroups,
            node_mounts,
        }
    }

    /// What differs from `before`, one line each; empty when the machine is as it was.
    pub fn differences_from(&self, before: &MachineState) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in &self.sysctls {
            match before.sysctls.get(name) {
                Some(old) if old != value => out.push(format!("sysctl {name}: {old} -> {value}")),
                _ => {}
            }
        }
        for (key, chains) in &self.iptables_chains {
            let old = before.iptables_chains.get(key).cloned().unwrap_or_default();
            for chain in chains.difference(&old) {
                out.push(format!("{key}: new chain {chain}"));
            }
        }
        for table in self.iptables_tables.difference(&before.iptables_tables) {
            out.push(format!("new table {table}"));
        }
        for path in self.global_paths.difference(&before.global_paths) {
            out.push(format!("new {path}"));
        }
        for path in self.files.difference(&before.files) {
            out.push(format!("new file {}", path.display()));
        }
        for cgroup in self.node_cgroups.difference(&before.node_cgroups) {
            out.push(format!("new cgroup {}", cgroup.display()));
        }
        for mount in self.node_mounts.difference(&before.node_mounts) {
            out.push(format!("new mount {mount}"));
        }
        out
    }
}

/// The chains of `tool -t table -S`, or `None` when the tool is not there or cannot list.
fn iptables_chains_of(tool: &str, table: &str) -> Option<BTreeSet<String>> {
    let output = Command::new(tool)
        .args(["-w", "-t", table, "-S"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(chains_in(&String::from_utf8_lossy(&output.stdout)))
}

/// The chain names declared in `iptables -S` output (`-N NAME` lines; built-ins are `-P`).
pub(crate) fn chains_in(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("-N "))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The tables in `iptables-save` output (`*NAME` lines).
pub(crate) fn tables_in(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix('*'))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The mount points of this mount namespace (field 5 of `/proc/self/mountinfo`).
pub(crate) fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_owned))
        .collect()
}

fn read_dir_paths(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Adds `dir`'s entries to `out`, `depth` levels down, not following symlinks.
fn list(dir: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
    if depth == 0 {
        return;
    }
    for path in read_dir_paths(dir) {
        if UNLISTED.iter().any(|u| path == Path::new(u)) {
            continue;
        }
        let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
        out.insert(path.clone());
        if is_dir {
            list(&path, depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_the_declared_ones_not_the_built_in_policies() {
        let listing = "-P INPUT ACCEPT\n-N KUBE-FIREWALL\n-N KUBE-KUBELET-CANARY\n\
                       -A INPUT -j KUBE-FIREWALL\n";
        assert_eq!(
            chains_in(listing),
            ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY"]
                .map(str::to_owned)
                .into()
        );
    }

    #[test]
    fn tables_are_the_starred_lines_of_a_save() {
        let save =
            "# Generated by iptables-save\n*mangle\n:INPUT ACCEPT [0:0]\nCOMMIT\n*nat\nCOMMIT\n";
        assert_eq!(tables_in(save), ["mangle", "nat"].map(str::to_owned).into());
    }

    #[test]
    fn a_changed_sysctl_a_new_chain_and_a_new_file_are_differences() {
        let before = MachineState {
            sysctls: [("kernel/panic".to_owned(), "0".to_owned())].into(),
            ..MachineState::default()
        };
        let after = MachineState {
            sysctls: [("kernel/panic".to_owned(), "10".to_owned())].into(),
            iptables_chains: [(
                "iptables filter".to_owned(),
                ["KUBE-FIREWALL".to_owned()].into(),
            )]
            .into(),
            files: [PathBuf::from("/var/log/pods")].into(),
            ..MachineState::default()
        };
        assert_eq!(
            after.differences_from(&before),
            [
                "sysctl kernel/panic: 0 -> 10",
                "iptables filter: new chain KUBE-FIREWALL",
                "new file /var/log/pods",
            ]
        );
        assert_eq!(before.differences_from(&before), Vec::<String>::new());
    }
}
