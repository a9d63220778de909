//! The CRDs as YAML: what `mux-master-operator crd` prints and `crds/` holds.

use kube::CustomResourceExt;

use crate::exportset::resource::MasterExportSet;
use crate::resource::MasterExport;

/// The MasterExport CRD, as a YAML document.
pub fn yaml() -> String {
    serde_yaml::to_string(&MasterExport::crd()).expect("the CRD serialises to YAML")
}

/// The MasterExportSet CRD, as a YAML document.
pub fn set_yaml() -> String {
    serde_yaml::to_string(&MasterExportSet::crd()).expect("the CRD serialises to YAML")
}
