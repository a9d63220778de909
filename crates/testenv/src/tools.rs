//! Where the binaries built by `make tools` are.
//!
//! `make tools` puts each in `.tools/<component>-<version>/`, versions from `tools/versions.mk`;
//! that file is compiled in here, so the two can never disagree. Lookup order:
//! 1. kube-apiserver and etcd: `$KUBEBUILDER_ASSETS/<binary>` when that is set (setup-envtest);
//! 2. `$MMO_TOOLS_DIR/<component>-<version>/<binary>` when `MMO_TOOLS_DIR` is set;
//! 3. `<crate root>/.tools/<component>-<version>/<binary>`.

use std::path::PathBuf;

use super::error::{Error, Result};

/// The pinned versions, as `make tools` reads them.
const VERSIONS_MK: &str = include_str!("../../../tools/versions.mk");

/// A component built by `make tools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    KubeApiserver,
    Etcd,
    Minio,
    Helm,
    /// tools/gcs-emulator: fake-gcs-server's storage under the XML API.
    GcsEmulator,
    /// Azurite's blob service, from npm.
    Azurite,
    Kubelet,
    KubeControllerManager,
    KubeScheduler,
}

impl Tool {
    /// The binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "kube-apiserver",
            Tool::Etcd => "etcd",
            Tool::Minio => "minio",
            Tool::Helm => "helm",
            Tool::GcsEmulator => "gcs-emulator",
            Tool::Azurite => "azurite-blob",
            Tool::Kubelet => "kubelet",
            Tool::KubeControllerManager => "kube-controller-manager",
            Tool::KubeScheduler => "kube-scheduler",
        }
    }

    /// Where the binary lies below its `<component>-<version>/` folder.
    fn relative_path(self) -> &'static str {
        match self {
            Tool::Azurite => "node_modules/.bin/azurite-blob",
            other => other.binary(),
        }
    }

    /// The pinned version, from `tools/versions.mk`.
    pub fn version(self) -> &'static str {
        let key = match self {
            Tool::KubeApiserver
            | Tool::Kubelet
            | Tool::KubeControllerManager
            | Tool::KubeScheduler => "KUBE_VERSION",
            Tool::Etcd => "ETCD_VERSION",
            Tool::Minio => "MINIO_VERSION",
            Tool::Helm => "HELM_VERSION",
            Tool::GcsEmulator => "FAKE_GCS_VERSION",
            Tool::Azurite => "AZURITE_VERSION",
        };
        version_of(key).unwrap_or_else(|| panic!("tools/versions.mk does not set {key}"))
    }

    /// The name of its folder under `.tools/` (before `-<version>`).
    fn folder(self) -> &'static str {
        match self {
            Tool::Azurite => "azurite",
            other => other.binary(),
        }
    }

    /// Whether `KUBEBUILDER_ASSETS` may supply this binary.
    fn is_envtest_asset(self) -> bool {
        matches!(self, Tool::KubeApiserver | Tool::Etcd)
    }

    /// The path of the binary, checked to exist.
    pub fn path(self) -> Result<PathBuf> {
        let (path, hint) = match std::env::var_os("KUBEBUILDER_ASSETS") {
            Some(assets) if self.is_envtest_asset() => (
                PathBuf::from(assets).join(self.binary()),
                "KUBEBUILDER_ASSETS to a folder holding it",
            ),
            _ => (
                tools_dir()
                    .join(format!("{}-{}", self.folder(), self.version()))
                    .join(self.relative_path()),
                "MMO_TOOLS_DIR to the folder `make tools` fills",
            ),
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingTool {
                tool: self.binary(),
                path,
                hint,
            })
        }
    }
}

/// The Python of the venv `make tools` makes (kubernetes-validate, lupa), checked to exist.
pub fn venv_python() -> Result<PathBuf> {
    let path = tools_dir().join("venv/bin/python");
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::MissingTool {
            tool: "the Python venv (kubernetes-validate, lupa)",
            path,
            hint: "MMO_TOOLS_DIR to the folder `make tools` fills",
        })
    }
}

/// The folder holding `<component>-<version>/` folders.
pub(crate) fn tools_dir() -> PathBuf {
    match std::env::var_os("MMO_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"),
    }
}

/// The value of `KEY := value` in `tools/versions.mk`.
pub(crate) fn version_of(key: &str) -> Option<&'static str> {
    VERSIONS_MK.lines().find_map(|line| {
        let (name, value) = line.split_once(":=")?;
        (name.trim() == key).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_pinned_version() {
        for tool in [
            Tool::KubeApiserver,
            Tool::Etcd,
            Tool::Minio,
            Tool::Helm,
            Tool::Kubelet,
            Tool::KubeControllerManager,
            Tool::KubeScheduler,
        ] {
            assert!(
                tool.version().starts_with('v'),
                "{tool:?}: {}",
                tool.version()
            );
        }
    }

    #[test]
    fn a_missing_tool_says_how_to_get_it() {
        let err = Error::MissingTool {
            tool: "helm",
            path: "/nowhere/helm".into(),
            hint: "MMO_TOOLS_DIR",
        };
        assert!(err.to_string().contains("run `make tools`"), "{err}");
    }
}
