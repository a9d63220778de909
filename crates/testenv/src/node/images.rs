//! The images a node holds: nothing is pulled, so they come from archives built on this machine.
//!
//! - the pause image (every pod's sandbox), from `make tools`;
//! - the operator's image, from `make image` (the repository's Dockerfile), imported when the
//!   node starts if its archive is there. Its tag is the workspace's version, never `latest`, so
//!   that the kubelet never tries to pull it (`imagePullPolicy: IfNotPresent` suffices).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The operator image's name, as `make image` tags it (`IMAGE_NAME:IMAGE_TAG`).
pub fn operator_image_name() -> String {
    format!(
        "localhost/mux-master-operator:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The operator image's archive, as `make image` writes it, checked to exist. `MMO_IMAGE_ARCHIVE`
/// overrides the path.
pub fn operator_image_archive() -> Result<PathBuf> {
    let path = match std::env::var_os("MMO_IMAGE_ARCHIVE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../../target/image/mux-master-operator-{}.oci.tar",
            env!("CARGO_PKG_VERSION")
        )),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Other(format!(
            "the operator's image archive {} is missing: run `make image`",
            path.display()
        )))
    }
}

/// The pause image's archive and name, as `make tools` builds them.
pub(crate) fn pause_image() -> Result<(PathBuf, String)> {
    let version = crate::tools::version_of("PAUSE_VERSION")
        .ok_or_else(|| Error::Other("tools/versions.mk does not set PAUSE_VERSION".to_owned()))?;
    let archive = crate::tools::tools_dir()
        .join(format!("pause-{version}"))
        .join("pause.oci.tar");
    if archive.is_file() {
        Ok((archive, format!("localhost/mmo-pause:{version}")))
    } else {
        Err(Error::MissingTool {
            tool: "the pause image",
            path: archive,
            hint: "MMO_TOOLS_DIR to the folder `make tools` fills",
        })
    }
}

/// The name of the pause image, which every node holds: a container that runs until killed.
pub fn pause_image_name() -> Result<String> {
    pause_image().map(|(_, name)| name)
}
