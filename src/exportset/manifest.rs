//! The set's manifest: one JSON line per archived, verified asset (asset ID, live stream ID,
//! passthrough, object, size, SHA-256, copied at), next to the archive, so that the archive
//! can be checked and restored without the cluster. Rewritten whole as copies complete: an
//! object store PUT replaces an object atomically, so a reader sees the old manifest or the
//! new one, never half of one.

use std::collections::BTreeMap;

use kube::{Client, ResourceExt};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::children::{ASSET_ANNOTATION, LIVE_STREAM_ANNOTATION, PASSTHROUGH_ANNOTATION};
use super::plan::ChildState;
use super::resource::{ManifestStatus, MasterExportSet};
use crate::resource::{DeletionState, Destination, MasterExport};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub asset_id: String,
    #[serde(default)]
    pub live_stream_id: Option<String>,
    #[serde(default)]
    pub passthrough: Option<String>,
    /// The archived object's URL.
    pub object: String,
    pub size: u64,
    pub sha256: String,
    /// RFC 3339.
    #[serde(default)]
    pub copied_at: Option<String>,
    /// When the asset was deleted from Mux after this archive (`afterCopy.deleteAsset`):
    /// from then on the archive is the only copy. RFC 3339; absent while the asset is at Mux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_from_mux_at: Option<String>,
}

/// Where the manifest of a set goes: beside the archive, at the pattern's fixed prefix (the
/// part before its first placeholder, up to a `/`). `None` for `file://`, whose volume the
/// operator does not mount.
pub fn manifest_url(pattern: &str, namespace: &str, set: &str) -> Option<String> {
    if pattern.starts_with("file://") {
        return None;
    }
    let fixed = &pattern[..pattern.find('{').unwrap_or(pattern.len())];
    let folder = &fixed[..fixed.rfind('/')? + 1];
    Some(format!("{folder}manifest-{namespace}.{set}.jsonl"))
}

/// The manifest's lines for the done children, by asset ID.
pub fn entries(children: &[MasterExport]) -> Vec<Entry> {
    let mut by_asset = BTreeMap::new();
    for child in children {
        if super::children::child_state(child) != ChildState::Done {
            continue;
        }
        let Some(copy) = child.status.as_ref().and_then(|s| s.copy.as_ref()) else {
            continue;
        };
        let (Some(size), Some(sha256)) = (copy.size, copy.sha256.clone()) else {
            continue;
        };
        let annotation = |key: &str| child.annotations().get(key).cloned();
        let Some(asset_id) = child
            .spec
            .source
            .asset_id
            .clone()
            .or(annotation(ASSET_ANNOTATION))
        else {
            continue;
        };
        let entry = Entry {
            asset_id: asset_id.clone(),
            live_stream_id: annotation(LIVE_STREAM_ANNOTATION),
            passthrough: annotation(PASSTHROUGH_ANNOTATION),
            object: copy
                .object
                .clone()
                .unwrap_or_else(|| copy.destination.clone()),
            size,
            sha256,
            copied_at: copy.completed_at.as_ref().map(|t| t.0.to_string()),
            deleted_from_mux_at: deleted_from_mux_at(child),
        };
        by_asset.insert(asset_id, entry);
    }
    by_asset.into_values().collect()
}

/// When the child's asset was deleted from Mux, if it was.
fn deleted_from_mux_at(child: &MasterExport) -> Option<String> {
    let deletion = child.status.as_ref()?.deletion.as_ref()?;
    (deletion.state == DeletionState::Deleted)
        .then(|| deletion.deleted_at.as_ref().map(|t| t.0.to_string()))
        .flatten()
}

/// The manifest's bytes and their SHA-256.
pub fn render(entries: &[Entry]) -> (String, String) {
    let mut text = String::new();
    for entry in entries {
        text.push_str(&serde_json::to_string(entry).expect("an entry serialises"));
        text.push('\n');
    }
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    (text, digest)
}

/// Writes the manifest to `url`, with the store settings and credentials of `destination`.
pub async fn write(
    client: &Client,
    namespace: &str,
    destination: &Destination,
    url: &str,
    body: String,
) -> Result<(), String> {
    let (store, path) = super::store::open(client, namespace, destination, url).await?;
    store
        .put(&path, PutPayload::from(body))
        .await
        .map(|_| ())
        .map_err(|e| format!("writing {url}: {e}"))
}

/// While copies go on, the manifest is rewritten at most this often (it holds every line, and
/// 16,000 lines are megabytes); once the set has nothing left to do, at once.
pub const REWRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Should a manifest whose content changed be written now?
pub fn due(work_left: bool, last_written: Option<jiff::Timestamp>, now: jiff::Timestamp) -> bool {
    let Some(last) = last_written else {
        return true;
    };
    let age = std::time::Duration::try_from(now.duration_since(last)).unwrap_or_default();
    !work_left || age >= REWRITE_EVERY
}

/// What keeping the manifest gave: its status, and why it is not current (if it is not).
pub struct Kept {
    pub status: Option<ManifestStatus>,
    pub pending: Option<String>,
}

/// Brings the set's manifest up to date with its done children (if it has one and it is due).
pub async fn keep(
    client: &Client,
    set: &MasterExportSet,
    children: &[MasterExport],
    work_left: bool,
) -> Kept {
    let previous = set.status.as_ref().and_then(|s| s.manifest.clone());
    let namespace = set.namespace().unwrap_or_default();
    let Some(destination) = &set.spec.template.destination else {
        return Kept {
            status: None,
            pending: None,
        };
    };
    let Some(url) = manifest_url(&destination.url, &namespace, &set.name_any()) else {
        return Kept {
            status: None,
            pending: None,
        };
    };
    let lines = entries(children);
    if lines.is_empty() {
        return Kept {
            status: previous,
            pending: None,
        };
    }
    let (body, digest) = render(&lines);
    if previous
        .as_ref()
        .is_some_and(|m| m.sha256 == digest && m.url == url)
    {
        return Kept {
            status: previous,
            pending: None,
        };
    }
    let now = jiff::Timestamp::now();
    let last = previous
        .as_ref()
        .and_then(|m| m.written_at.as_ref())
        .map(|t| t.0);
    if !due(work_left, last, now) {
        return Kept {
            status: previous,
            pending: Some("the manifest is rewritten shortly".into()),
        };
    }
    match write(client, &namespace, destination, &url, body).await {
        Ok(()) => Kept {
            status: Some(ManifestStatus {
                url,
                entries: lines.len() as u32,
                sha256: digest,
                written_at: Some(Time(now)),
            }),
            pending: None,
        },
        Err(e) => {
            tracing::warn!(set = %set.name_any(), %namespace, error = %e, "cannot write the manifest");
            Kept {
                status: previous,
                pending: Some(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_manifest_sits_at_the_patterns_fixed_folder() {
        let cases = [
            (
                "s3://a/mux/{createdAt:%Y/%m}/{assetId}.mp4",
                Some("s3://a/mux/manifest-ns.s.jsonl"),
            ),
            ("s3://a/{assetId}.mp4", Some("s3://a/manifest-ns.s.jsonl")),
            ("gs://a/x/y-{assetId}", Some("gs://a/x/manifest-ns.s.jsonl")),
            ("file:///archive/{assetId}", None),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                manifest_url(pattern, "ns", "s").as_deref(),
                want,
                "{pattern}"
            );
        }
    }

    fn child(id: &str, phase: &str, sha: Option<&str>) -> MasterExport {
        serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1", "kind": "MasterExport",
            "metadata": {"name": id.to_lowercase(), "annotations": {PASSTHROUGH_ANNOTATION: "show 1"}},
            "spec": {"source": {"assetId": id}, "credentialsSecretRef": {"name": "mux"}, "destination": {"url": format!("s3://b/{id}")}},
            "status": {"phase": phase, "copy": {
                "phase": "Succeeded", "destination": format!("s3://b/{id}"), "object": format!("s3://b/{id}"),
                "size": 7, "sha256": sha, "completedAt": "2026-01-02T03:04:05Z"}},
        }))
        .unwrap()
    }

    #[test]
    fn a_changed_manifest_is_written_at_once_when_done_and_at_most_every_30s_before() {
        let t = |s: i64| jiff::Timestamp::from_second(1_000_000 + s).unwrap();
        let cases = [
            (true, None, 0, true),
            (true, Some(0), 10, false),
            (true, Some(0), 30, true),
            (false, Some(0), 1, true),
        ];
        for (work_left, last, now, want) in cases {
            assert_eq!(
                due(work_left, last.map(t), t(now)),
                want,
                "{work_left} {last:?} {now}"
            );
        }
    }

    #[test]
    fn one_line_per_verified_archive_in_asset_order() {
        let children = [
            child("B2", "Copied", Some("bb")),
            child("A1", "Copied", Some("aa")),
            child("C3", "Copying", None),
        ];
        let (text, digest) = render(&entries(&children));
        let lines: Vec<Entry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines
                .iter()
                .map(|e| e.asset_id.as_str())
                .collect::<Vec<_>>(),
            ["A1", "B2"]
        );
        assert_eq!(lines[0].passthrough.as_deref(), Some("show 1"));
        assert_eq!((lines[0].size, lines[0].sha256.as_str()), (7, "aa"));
        assert_eq!(lines[0].copied_at.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(digest, render(&entries(&children)).1, "deterministic");
        assert_ne!(digest, render(&entries(&children[..1])).1);
    }

    #[test]
    fn a_line_records_the_deletion_from_mux() {
        let mut deleted = child("A1", "Copied", Some("aa"));
        let record = json!({"state": "Deleted", "assetId": "A1", "object": "s3://b/A1", "size": 7,
            "sha256": "aa", "scheduledAt": "2026-01-02T03:04:05Z", "dueAt": "2026-01-03T03:04:05Z",
            "deletedAt": "2026-01-03T03:04:06Z"});
        deleted.status.as_mut().unwrap().deletion = Some(serde_json::from_value(record).unwrap());
        let kept = child("B2", "Copied", Some("bb"));
        let (text, _) = render(&entries(&[deleted, kept]));
        let lines: Vec<&str> = text.lines().collect();
        let first: Entry = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            first.deleted_from_mux_at.as_deref(),
            Some("2026-01-03T03:04:06Z")
        );
        // A line of an asset still at Mux is as before: no such field.
        assert!(!lines[1].contains("deletedFromMuxAt"), "{}", lines[1]);
    }
}
