//! The set's children, pure: their names, how one is made from an asset, and what state the
//! set counts a child in.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use mux::types::Asset;
use sha2::Digest;

use super::pattern::Pattern;
use super::plan::{Child, ChildState};
use super::resource::MasterExportSet;
use crate::controller::conditions::{self, STALLED};
use crate::resource::{CopyPhase, MasterExport, MasterExportSpec, Phase, Source};

/// Children carry their set's UID (names may be longer than a label value).
pub const SET_UID_LABEL: &str = "masterexport.io/set-uid";
/// The asset a child exports (also in its spec; here for `kubectl get -L` and people).
pub const ASSET_ANNOTATION: &str = "masterexport.io/asset-id";
/// The asset's passthrough and live stream, kept for the manifest (the asset may be deleted
/// from Mux later, and its line must stay whole).
pub const PASSTHROUGH_ANNOTATION: &str = "masterexport.io/passthrough";
pub const LIVE_STREAM_ANNOTATION: &str = "masterexport.io/live-stream-id";
/// Set on a child once its asset is gone from Mux: the child and its archive are kept.
pub const ASSET_DELETED_ANNOTATION: &str = "masterexport.io/asset-deleted";

/// How much of the set's name a child's name keeps.
const NAME_PREFIX: usize = 40;

/// `<set>-<12 hex digits>`: deterministic (a restart finds the same child), at most 53
/// characters, and distinct for two sets whose names share their first 40 characters.
pub fn child_name(set: &str, asset_id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{set}/{asset_id}").as_bytes());
    let prefix: String = set.chars().take(NAME_PREFIX).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{}", &hex::encode(digest)[..12])
}

/// The child of `set` for `asset`, its destination (if any) rendered from `pattern`.
pub fn build_child(
    set: &MasterExportSet,
    asset: &Asset,
    pattern: Option<&Pattern>,
) -> MasterExport {
    let template = &set.spec.template;
    let destination = template.destination.clone().map(|mut d| {
        if let Some(pattern) = pattern {
            d.url = pattern.render(asset);
        }
        d
    });
    let labels = BTreeMap::from([
        (SET_UID_LABEL.to_string(), set.uid().unwrap_or_default()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "mux-master-operator".to_string(),
        ),
    ]);
    let mut annotations = BTreeMap::from([(ASSET_ANNOTATION.to_string(), asset.id.clone())]);
    if let Some(passthrough) = &asset.passthrough {
        annotations.insert(PASSTHROUGH_ANNOTATION.to_string(), passthrough.clone());
    }
    if let Some(live_stream) = &asset.live_stream_id {
        annotations.insert(LIVE_STREAM_ANNOTATION.to_string(), live_stream.clone());
    }
    MasterExport {
        metadata: ObjectMeta {
            name: Some(child_name(&set.name_any(), &asset.id)),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: set.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: MasterExportSpec {
            source: Source {
                asset_id: Some(asset.id.clone()),
                live_stream_id: None,
            },
            access: template.access,
            credentials_secret_ref: set.spec.credentials_secret_ref.clone(),
            refresh_before: template.refresh_before.clone(),
            url_secret: None,
            deletion_policy: template.deletion_policy,
            suspend: false,
            destination,
            after_copy: template.after_copy.clone(),
        },
        status: None,
    }
}

/// The state the set counts `child` in. Done means the child reached its goal: the master
/// available, or (with a destination) archived and verified.
pub fn child_state(child: &MasterExport) -> ChildState {
    let Some(status) = &child.status else {
        return ChildState::InFlight;
    };
    let stalled = conditions::find(&status.conditions, STALLED).is_some_and(|c| c.status == "True");
    if stalled || status.phase == Some(Phase::Failed) {
        return ChildState::Failed;
    }
    let copied = status
        .copy
        .as_ref()
        .is_some_and(|c| c.phase == CopyPhase::Succeeded && c.sha256.is_some());
    let done = match (child.spec.destination.is_some(), status.phase) {
        (true, Some(Phase::Copied)) => true,
        (true, Some(Phase::Revoked)) => copied,
        (false, Some(Phase::Ready | Phase::Revoked)) => true,
        _ => false,
    };
    if done {
        ChildState::Done
    } else {
        ChildState::InFlight
    }
}

/// The planner's view of a child.
pub fn view(child: &MasterExport) -> Option<Child> {
    let asset_id = child.spec.source.asset_id.clone()?;
    let state = child_state(child);
    let archived_bytes = match state {
        ChildState::Done => child.status.as_ref()?.copy.as_ref().and_then(|c| c.size),
        _ => None,
    };
    Some(Child {
        name: child.name_any(),
        asset_id,
        state,
        archived_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> MasterExportSet {
        serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1",
            "kind": "MasterExportSet",
            "metadata": {"name": "archive", "namespace": "media", "uid": "u-1"},
            "spec": {
                "credentialsSecretRef": {"name": "mux"},
                "template": {
                    "refreshBefore": "3h",
                    "destination": {"url": "s3://b/{passthrough}/{assetId}.mp4", "pathStyle": true},
                    "afterCopy": {"revokeAccess": true},
                },
            },
        }))
        .unwrap()
    }

    fn asset() -> Asset {
        serde_json::from_value(json!({"id": "Ab1", "status": "ready", "passthrough": "show"}))
            .unwrap()
    }

    fn child(destination: bool, status: serde_json::Value) -> MasterExport {
        let mut spec =
            json!({"source": {"assetId": "Ab1"}, "credentialsSecretRef": {"name": "mux"}});
        if destination {
            spec["destination"] = json!({"url": "s3://b/k"});
        }
        serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1", "kind": "MasterExport",
            "metadata": {"name": "c"}, "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn names_are_deterministic_short_and_distinct() {
        assert_eq!(child_name("archive", "Ab1"), child_name("archive", "Ab1"));
        assert_ne!(child_name("archive", "Ab1"), child_name("archive", "ab1"));
        let long = "a".repeat(253);
        let name = child_name(&long, "Ab1");
        assert!(name.len() <= 53, "{name}");
        assert_ne!(name, child_name(&format!("{}b", "a".repeat(252)), "Ab1"));
        assert!(
            child_name("x-".repeat(30).as_str(), "A")
                .split('-')
                .all(|p| !p.is_empty())
        );
    }

    #[test]
    fn a_child_is_owned_by_its_set_and_gets_the_template_with_its_destination() {
        let pattern = Pattern::parse("s3://b/{passthrough}/{assetId}.mp4").unwrap();
        let c = build_child(&set(), &asset(), Some(&pattern));
        let owner = &c.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("MasterExportSet", "u-1", Some(true))
        );
        assert_eq!(c.labels()[SET_UID_LABEL], "u-1");
        assert_eq!(c.annotations()[ASSET_ANNOTATION], "Ab1");
        assert_eq!(c.annotations()[PASSTHROUGH_ANNOTATION], "show");
        assert_eq!(c.metadata.namespace.as_deref(), Some("media"));
        assert_eq!(c.spec.source.asset_id.as_deref(), Some("Ab1"));
        assert_eq!(c.spec.refresh_before, "3h");
        assert_eq!(c.spec.credentials_secret_ref.name, "mux");
        let d = c.spec.destination.unwrap();
        assert_eq!(
            (d.url.as_str(), d.path_style),
            ("s3://b/show/Ab1.mp4", true)
        );
        assert!(c.spec.after_copy.unwrap().revoke_access);
    }

    #[test]
    fn child_states_follow_phase_conditions_and_the_verified_copy() {
        let stalled = json!({"phase": "Preparing", "conditions": [{"type": "Stalled", "status": "True", "reason": "X", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let verified = json!({"phase": "Revoked", "copy": {"phase": "Succeeded", "destination": "s3://b/k", "sha256": "ab", "size": 5}});
        let cases = [
            (false, json!(null), ChildState::InFlight),
            (false, json!({"phase": "Preparing"}), ChildState::InFlight),
            (false, json!({"phase": "Ready"}), ChildState::Done),
            (true, json!({"phase": "Ready"}), ChildState::InFlight),
            (true, json!({"phase": "Copying"}), ChildState::InFlight),
            (true, json!({"phase": "Copied"}), ChildState::Done),
            (true, verified.clone(), ChildState::Done),
            (true, json!({"phase": "Revoked"}), ChildState::InFlight),
            (true, json!({"phase": "Failed"}), ChildState::Failed),
            (false, stalled, ChildState::Failed),
        ];
        for (destination, status, want) in cases {
            assert_eq!(
                child_state(&child(destination, status.clone())),
                want,
                "{destination} {status}"
            );
        }
        let v = view(&child(true, verified)).unwrap();
        assert_eq!(v.archived_bytes, Some(5));
    }
}
