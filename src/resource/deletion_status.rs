//! `status.deletion`: where the deletion of the asset from Mux stands (`afterCopy.deleteAsset`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A deletion from Mux, scheduled once the copy was verified; what it will check before the
/// call (the archived object, its size and SHA-256) is recorded with it.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AssetDeletion {
    /// `Scheduled`, `Held`, `CheckFailed`, `Refused`, `Deleting` or `Deleted`.
    #[schemars(with = "String")]
    pub state: DeletionState,
    pub asset_id: String,
    /// The verified archive the deletion relies on.
    pub object: String,
    pub size: u64,
    pub sha256: String,
    /// When the deletion was scheduled: the grace period counts from here.
    pub scheduled_at: Time,
    /// When the grace period ends.
    pub due_at: Time,
    /// The last fresh check of the archived object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Time>,
    /// Why it waits, or what was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionState {
    /// In the grace period.
    Scheduled,
    /// Due, but held: another MasterExport on the asset still needs it.
    Held,
    /// Due, but the fresh check of the archive failed (gone, another size or digest, or the
    /// store could not be read): nothing is deleted; checked again from time to time.
    CheckFailed,
    /// Due, but the operator runs without `--allow-asset-deletion`.
    Refused,
    /// The call is being made (recorded first, so a restart knows).
    Deleting,
    /// Mux deleted the asset (or had no such asset any more when asked).
    Deleted,
}
