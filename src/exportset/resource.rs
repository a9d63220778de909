//! The `MasterExportSet` custom resource (`masterexport.io/v1alpha1`): every selected asset of
//! one Mux environment, exported (and archived) by one MasterExport child each.
//!
//! Like the MasterExport's, the CRD comes from these types (`mux-master-operator crd --kind
//! MasterExportSet`) and the apiserver refuses what it can at `kubectl apply` time: an unknown
//! placeholder, or a destination pattern that could give two assets one key. The controller
//! checks the same rules again (`pattern::Pattern::parse`, which also tries the strftime
//! formats) before creating anything.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::resource::{Access, AfterCopy, DeletionPolicy, Destination, LocalObjectRef};

/// Keeps one MasterExport per selected asset, at most `maxInFlight` of them working at once.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "masterexport.io",
    version = "v1alpha1",
    kind = "MasterExportSet",
    namespaced,
    shortname = "mexs",
    category = "mux",
    status = "MasterExportSetStatus",
    printcolumn = r#"{"name":"Done","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"In Flight","type":"integer","jsonPath":".status.counts.inFlight"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last Scan","type":"date","jsonPath":".status.lastScan","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MasterExportSetSpec {
    /// The Secret (in this namespace) holding the Mux access token (`tokenId`,
    /// `tokenSecret`): the set lists the environment's assets with it, and its children use it.
    pub credentials_secret_ref: LocalObjectRef,

    /// Which assets of the environment to export; empty selects every asset.
    #[serde(default)]
    pub selector: AssetSelector,

    /// What every child MasterExport gets, the destination written as a pattern over the asset.
    #[serde(default)]
    pub template: ExportTemplate,

    /// How many children may be working at once (between "access requested" and done):
    /// bounds the Mux requests and copy Jobs of a large environment.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_in_flight: u32,

    /// How often to list the environment's assets again, as a duration (`10m`, `1h`).
    /// At least 10s; the default is 10m.
    #[serde(default = "default_rescan_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("rescanInterval must be at least 10s"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub rescan_interval: String,

    /// Creates no more children while true (the existing ones go on).
    #[serde(default)]
    pub suspend: bool,
}

pub fn default_max_in_flight() -> u32 {
    10
}

fn default_rescan_interval() -> String {
    "10m".into()
}

/// The assets to export. Every field set must match (AND); a list matches any of its items.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AssetSelector {
    /// Only these assets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(regex(pattern = r"^[A-Za-z0-9]{1,255}$")))]
    pub asset_ids: Vec<String>,
    /// Only the recordings of these live streams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(regex(pattern = r"^[A-Za-z0-9]{1,255}$")))]
    pub live_stream_ids: Vec<String>,
    /// Only assets created at or after this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Time>,
    /// Only assets created before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<Time>,
    /// Only assets whose `passthrough` matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<PassthroughMatch>,
}

/// Exactly one of `prefix` or `pattern`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.prefix) != has(self.pattern)").message("set exactly one of selector.passthrough.prefix or selector.passthrough.pattern"))]
pub struct PassthroughMatch {
    /// The passthrough starts with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub prefix: Option<String>,
    /// A glob over the whole passthrough: `*` any text, `?` one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub pattern: Option<String>,
}

/// Everything a child MasterExport has but its source (and its URL Secret, named after it).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.afterCopy) || !has(self.afterCopy.deleteAsset) || !self.afterCopy.deleteAsset || (has(self.destination) && !self.destination.url.startsWith('file://'))").message("afterCopy.deleteAsset needs a destination in an object store (s3://, gs://, az://): the operator reads each archived object back before it deletes"))]
pub struct ExportTemplate {
    #[serde(default)]
    pub access: Access,
    #[serde(default = "default_refresh_before")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('23h')").message("refreshBefore must be between 1s and 23h"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub refresh_before: String,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The archive, its `url` a pattern over the asset: `{assetId}` (required),
    /// `{passthrough}`, `{liveStreamId}`, `{createdAt}` or `{createdAt:%Y/%m}` (strftime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.url.matches('^([^{}]|[{][^{}]*[}])*$')").message("destination.url: every '{' must close with '}' before another opens"))]
    #[x_kube(validation = Rule::new("self.url.findAll('[{][^{}]*[}]').all(p, p.matches('^[{](assetId|passthrough|liveStreamId|createdAt(:[%A-Za-z0-9/_.-]+)?)[}]$'))").message("destination.url: unknown placeholder; use {assetId}, {passthrough}, {liveStreamId}, {createdAt} or {createdAt:FORMAT}"))]
    #[x_kube(validation = Rule::new("self.url.contains('{assetId}')").message("destination.url must contain {assetId}: without it two assets could be archived under one key"))]
    #[x_kube(validation = Rule::new("!self.url.contains('{assetId}') || (self.url.substring(self.url.indexOf('{assetId}') + 9).indexOf('{') < 0 && !self.url.substring(0, self.url.indexOf('{assetId}')).substring(self.url.substring(0, self.url.indexOf('{assetId}')).lastIndexOf('/') + 1).contains('}'))").message("destination.url: {assetId} must be the last placeholder and alone in its path segment, or two assets could get one key"))]
    pub destination: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_copy: Option<AfterCopy>,
}

impl Default for ExportTemplate {
    fn default() -> Self {
        Self {
            access: Access::default(),
            refresh_before: default_refresh_before(),
            deletion_policy: DeletionPolicy::default(),
            destination: None,
            after_copy: None,
        }
    }
}

fn default_refresh_before() -> String {
    "2h".into()
}

#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MasterExportSetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (every selected asset exported, archived when there is a destination),
    /// `Reconciling`, `Stalled` (naming the failed children).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub counts: SetCounts,
    /// `done/total`, e.g. `812/1000`: what `kubectl get` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Bytes of the verified archives of the children done.
    #[serde(default)]
    pub bytes_archived: u64,
    /// When the environment's assets were last listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<Time>,
    /// The manifest of the archive (with a destination in object storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestStatus>,
    /// The failed children (at most 50 named; `counts.failed` has them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_children: Vec<String>,
    /// The copies running now, summed over the children (absent when none reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copying: Option<SetCopying>,
}

/// The running copies of a set's children, summed.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SetCopying {
    /// Running copies that reported their progress.
    pub copies: u32,
    pub bytes_done: u64,
    /// The sum of their masters' lengths, when each is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    pub bytes_per_second: u64,
}

/// The selected assets by state. `total = waiting + inFlight + done + failed`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SetCounts {
    /// Assets of the last scan that the selector selects.
    pub discovered: u32,
    /// Selected assets to export: a child each, now or later.
    pub total: u32,
    /// Ready (or still preparing) assets without a child yet.
    pub waiting: u32,
    /// Children between "access requested" and done.
    pub in_flight: u32,
    /// Children done: master available, or archived and verified with a destination.
    pub done: u32,
    /// Children that need a person (their `Stalled` condition says why).
    pub failed: u32,
    /// Selected assets Mux reports `errored`: counted, never exported nor retried.
    pub skipped: u32,
    /// Children whose asset is gone from Mux: kept, with their archive.
    pub deleted: u32,
}

/// The manifest the set keeps next to its archive (destinations in object storage).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStatus {
    /// Where it is, e.g. `s3://archive/mux/manifest-media.environment-archive.jsonl`.
    pub url: String,
    /// Lines written: one per archived, verified asset.
    pub entries: u32,
    /// The SHA-256 of the manifest as written.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<Time>,
}
