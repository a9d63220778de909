//! The `MasterExport` custom resource (`masterexport.io/v1alpha1`).
//!
//! The CRD, its OpenAPI schema and its CEL rules are generated from these types
//! (`mux-master-operator crd`); `crds/` holds the committed copy and a test keeps the two
//! identical. Validation lives in the CRD so the apiserver refuses a bad resource with a
//! message at `kubectl apply` time, before the controller ever sees it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

mod copy_status;
mod deletion_status;

pub use copy_status::{CopyPhase, CopyReason};
pub use deletion_status::{AssetDeletion, DeletionState};

pub const GROUP: &str = "masterexport.io";
pub const FINALIZER: &str = "masterexport.io/finalizer";

/// Declares that the master (full-quality MP4) of one Mux asset, or of a live stream's
/// recording, must be downloadable, and keeps its temporary URL fresh.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "masterexport.io",
    version = "v1alpha1",
    kind = "MasterExport",
    namespaced,
    shortname = "mexp",
    category = "mux",
    status = "MasterExportStatus",
    printcolumn = r#"{"name":"Asset","type":"string","jsonPath":".status.asset.id"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    // A string: kubectl shows a date column as an age, and a future instant as <invalid>.
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.master.expiresAt"}"#,
    printcolumn = r#"{"name":"Copied","type":"date","jsonPath":".status.copy.completedAt","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.afterCopy) || !has(self.afterCopy.deleteAsset) || !self.afterCopy.deleteAsset || (has(self.destination) && !self.destination.url.startsWith('file://'))").message("afterCopy.deleteAsset needs a destination in an object store (s3://, gs://, az://): the operator reads the archived object back before it deletes"))]
pub struct MasterExportSpec {
    /// The asset whose master is exported, or the live stream whose recording is.
    /// Immutable: export another asset with another MasterExport.
    #[x_kube(validation = Rule::new("self == oldSelf").message("source is immutable: create another MasterExport to export another asset"))]
    pub source: Source,

    /// The master access wanted: `temporary` (a download URL, kept fresh) or `none`
    /// (access revoked).
    #[serde(default)]
    pub access: Access,

    /// The Secret (in this namespace) holding the Mux access token, under the keys
    /// `tokenId` and `tokenSecret`.
    pub credentials_secret_ref: LocalObjectRef,

    /// How long before the URL expires to fetch a fresh one, as a duration (`2h`, `90m`).
    /// Between 1s and 23h; the default is 2h.
    #[serde(default = "default_refresh_before")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('23h')").message("refreshBefore must be between 1s and 23h"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub refresh_before: String,

    /// The Secret the URL is written to, for workloads to mount (key `url`). Defaults to
    /// `<name>-master`. Owned by this MasterExport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret: Option<UrlSecret>,

    /// What happens to Mux master access when this resource is deleted: `Revoke` turns it
    /// off, `Orphan` leaves it as it is.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stops reconciling (no Mux calls) while true; the status keeps its last state.
    #[serde(default)]
    pub suspend: bool,

    /// Where to archive the master, verified. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,

    /// What to do once a verified copy exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_copy: Option<AfterCopy>,
}

fn default_refresh_before() -> String {
    "2h".into()
}

/// Exactly one of `assetId` or `liveStreamId`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.assetId) != has(self.liveStreamId)").message("set exactly one of source.assetId or source.liveStreamId"))]
pub struct Source {
    /// A Mux asset ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9]{1,255}$"))]
    pub asset_id: Option<String>,
    /// A Mux live stream ID: its recording is exported once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9]{1,255}$"))]
    pub live_stream_id: Option<String>,
}

#[derive(
    schemars::JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    #[default]
    Temporary,
    None,
}

#[derive(
    schemars::JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum DeletionPolicy {
    #[default]
    Revoke,
    Orphan,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct LocalObjectRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct UrlSecret {
    /// The Secret's name; defaults to `<name>-master`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Appended to the URL as `download=<filename>`, so browsers save it under that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("!self.contains('/')").message("filename must not contain '/'"))]
    pub filename: Option<String>,
}

/// An object store location for the archived master.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.url.startsWith('file://') || has(self.volume)").message("a file:// destination needs destination.volume: the PersistentVolumeClaim the copy Job writes to"))]
#[x_kube(validation = Rule::new("!has(self.volume) || self.url.startsWith('file://' + self.volume.mountPath + '/')").message("the file:// path must be under destination.volume.mountPath"))]
// `..` would leave the volume (and `.` the copier refuses too), percent-encoded or not.
#[x_kube(validation = Rule::new("!self.url.startsWith('file://') || !self.url.matches('/([.]|%2[eE]){1,2}([/?#]|$)')").message("a file:// destination must not have '.' or '..' path segments (nor %2e%2e): write the path plainly, below destination.volume.mountPath"))]
pub struct Destination {
    /// `s3://bucket/key`, `gs://bucket/key`, `az://container/key` or `file:///path`.
    #[schemars(
        regex(pattern = r"^(s3|gs|az)://[^/]+/.+|^file:///.+"),
        length(max = 2048)
    )]
    pub url: String,
    /// The store's endpoint when it is not the provider's own: an S3-compatible server for s3:// (MinIO, Ceph, R2, e.g. `http://minio.storage:9000`), a GCS-compatible one for gs://, a Blob endpoint for az:// (Azurite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style S3 addressing (most S3-compatible servers need it).
    #[serde(default)]
    pub path_style: bool,
    /// The Secret with the store's credentials (for S3: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`), passed to the copy Job as environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
    /// Replace an existing, different object at the destination.
    #[serde(default)]
    pub overwrite: bool,
    /// For `file://`: the PersistentVolumeClaim mounted into the copy Job at `mountPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<DestinationVolume>,
    /// Do not check that the master is a whole MP4 (ISO BMFF) file before it is archived:
    /// for a master that is not MP4. By default a master whose top-level boxes do not tile it
    /// exactly, or that has no `moov`, is not complete yet, whatever its length says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_mp4_check: bool,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DestinationVolume {
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// An absolute path, e.g. `/archive`; the destination's path lies below it.
    #[schemars(regex(pattern = r"^/.*[^/]$"), length(max = 1024))]
    pub mount_path: String,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AfterCopy {
    /// Turn master access off once the copy is verified.
    #[serde(default)]
    pub revoke_access: bool,
    /// Delete the asset from Mux once the copy is verified, `deleteAfter` later, after a
    /// fresh check that the archived object still has the verified size and SHA-256. Only
    /// done when the operator runs with `--allow-asset-deletion`; needs an object store
    /// destination (the operator reads it back itself). Removing the field, or the resource,
    /// before then cancels the deletion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_asset: bool,
    /// The grace period between the verified copy and the deletion, as a duration (`24h`,
    /// `90m`). At least 1s; the default is 24h.
    #[serde(default = "default_delete_after")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("deleteAfter must be at least 1s"))]
    pub delete_after: String,
}

impl Default for AfterCopy {
    fn default() -> Self {
        Self {
            revoke_access: false,
            delete_asset: false,
            delete_after: default_delete_after(),
        }
    }
}

fn default_delete_after() -> String {
    "24h".into()
}

/// Where the export stands.
#[derive(schemars::JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the asset, or for a live stream's recording to complete.
    Pending,
    /// Master access requested; Mux is preparing the master.
    Preparing,
    /// The URL is in the status and the URL Secret.
    Ready,
    /// The copy Job runs.
    Copying,
    /// The master is archived and verified.
    Copied,
    /// Master access is off (`access: none`, or after a verified copy).
    Revoked,
    /// Something a person must fix; see the `Stalled` condition.
    Failed,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MasterExportStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Ready`, `Reconciling`, `Stalled` (as kstatus and Flux read them), and `Copied`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<MasterState>,
    /// The archive copy, when `spec.destination` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyStatus>,
    /// A Mux call about to be made: written before the call so that a restart knows what
    /// may be in flight, and when (a URL's window counts from the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRequest>,
    /// The deletion of the asset from Mux (`afterCopy.deleteAsset`): scheduled, held,
    /// refused, or done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<AssetDeletion>,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AssetState {
    pub id: String,
    /// `preparing`, `ready` or `errored`, as Mux says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resolution_tier: Option<String>,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MasterState {
    /// `preparing`, `ready`, `errored`, or `none` when there is no master.
    #[schemars(with = "String")]
    pub status: MasterStage,
    /// The download URL (with `download=` when a filename is set). A bearer credential
    /// until `expiresAt`: whoever can read this resource can download the master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Secret that holds the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<LocalObjectRef>,
    /// When the current URL's access was requested: its 24 hours count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the controller fetches a fresh URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_at: Option<Time>,
    /// How many times the URL was replaced by a fresh one.
    #[serde(default)]
    pub refreshes: u32,
}

/// Where the master stands, as `status.master.status` says it (a string in the CRD, so
/// that the schema and stored objects are what they were before this was an enum).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MasterStage {
    /// No master: access is off, or not granted yet.
    #[default]
    None,
    Preparing,
    Ready,
    Errored,
    /// The recorded URL expired before it could be refreshed.
    Expired,
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub operation: Operation,
    pub at: Time,
}

/// A change of master access the controller makes.
#[derive(schemars::JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `PUT temporary` on an asset without master access.
    Request,
    /// `PUT temporary` on a ready master, hoping for a fresh URL.
    Renew,
    /// `PUT none` then `temporary`: Mux gave the same URL on renewal.
    Cycle,
    /// `PUT none` for good.
    Revoke,
}

impl MasterExport {
    /// The Secret the URL is written to.
    pub fn url_secret_name(&self) -> String {
        self.spec
            .url_secret
            .as_ref()
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| {
                let name = kube::ResourceExt::name_any(self);
                format!("{}-master", shortened(&name, 253 - "-master".len()))
            })
    }

    /// The value of [`NAME_LABEL`] on what this resource makes: its name, shortened with a
    /// digest when longer than a label value may be (63).
    pub fn name_label(&self) -> String {
        shortened(&kube::ResourceExt::name_any(self), 63)
    }
}

/// The label naming the MasterExport that made an object (its URL Secret, its copy Jobs).
pub const NAME_LABEL: &str = "masterexport.io/name";

/// `name` within `max` characters: itself when it fits, else a prefix and a digest of the
/// whole (distinct names stay distinct; the result starts and ends with a letter or digit).
pub fn shortened(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..4]);
    let keep = max.saturating_sub(digest.len() + 1).min(name.len());
    let prefix = name[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{digest}")
}

/// The state of the archive copy.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// `Running`, `Succeeded` or `Failed`.
    #[schemars(with = "String")]
    pub phase: CopyPhase,
    /// The destination this copy is for (a new destination means a new copy).
    pub destination: String,
    /// The identity of that destination: a digest of its URL, endpoint, region, credentials
    /// and volume (a change of any of them is a new destination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_identity: Option<String>,
    /// The resource generation the copy belongs to.
    #[serde(default)]
    pub generation: i64,
    /// The current (or last) copy Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Jobs run for this destination (a new one after an expired URL or a transient failure).
    #[serde(default)]
    pub attempts: u32,
    /// The object written, as the copy reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The SHA-256 of the archived master, verified by reading the object back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Why the last attempt ended (the copy's reason: `UrlExpired`, `DestinationExists`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub reason: Option<CopyReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How far the running copy is, as its copier last reported (every few seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<CopyProgress>,
}

/// A running copy's progress, read from its copier's log.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CopyProgress {
    pub bytes_done: u64,
    /// The master's length, when known (it may still grow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    pub bytes_per_second: u64,
    /// When the controller read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_enums_serialise_as_the_strings_stored_before() {
        let stages = [
            (MasterStage::None, "none"),
            (MasterStage::Preparing, "preparing"),
            (MasterStage::Ready, "ready"),
            (MasterStage::Errored, "errored"),
            (MasterStage::Expired, "expired"),
        ];
        for (stage, text) in stages {
            assert_eq!(serde_json::to_value(stage).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<MasterStage>(text.into()).unwrap(),
                stage
            );
        }
        for (phase, text) in [
            (CopyPhase::Running, "Running"),
            (CopyPhase::Succeeded, "Succeeded"),
            (CopyPhase::Failed, "Failed"),
        ] {
            assert_eq!(serde_json::to_value(phase).unwrap(), text);
        }
        for reason in [
            CopyReason::JobFailed,
            CopyReason::JobMissing,
            CopyReason::ReportMissing,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    #[test]
    fn long_names_are_shortened_into_labels_and_secret_names() {
        let spec: MasterExportSpec = serde_json::from_value(serde_json::json!({
            "source": {"assetId": "a1"}, "credentialsSecretRef": {"name": "mux"}
        }))
        .unwrap();
        let short = MasterExport::new("keynote", spec.clone());
        assert_eq!(short.name_label(), "keynote");
        assert_eq!(short.url_secret_name(), "keynote-master");
        let long_name = format!("{}.{}", "a".repeat(200), "b".repeat(52));
        let long = MasterExport::new(&long_name, spec.clone());
        let label = long.name_label();
        assert!(label.len() <= 63 && label.starts_with("aaa"), "{label}");
        assert!(label.chars().last().unwrap().is_ascii_alphanumeric());
        assert!(long.url_secret_name().len() <= 253);
        assert!(long.url_secret_name().ends_with("-master"));
        let other = MasterExport::new(&format!("{}.{}", "a".repeat(200), "c".repeat(52)), spec);
        assert_ne!(other.name_label(), label, "distinct names, distinct labels");
    }
}
