//! What the controller watches besides its MasterExports, and how little of it it keeps.
//!
//! Memory follows what the controller reads: the cached MasterExports lose `managedFields`
//! and kubectl's last-applied copy of the spec (often the largest parts of an object, read by
//! nothing here); owned copy Jobs and URL Secrets are watched by their metadata only (a
//! Secret's data never crosses the watch) and are not cached at all: their events only map
//! to their owner's reconcile.

use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::context::{FIELD_MANAGER, MANAGED_BY};
use crate::resource::{MasterExport, NAME_LABEL};

/// kubectl's copy of the last applied object: as large as the spec, read by nothing here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Trims a MasterExport to what the controller reads before it is cached.
pub fn trim(obj: &mut MasterExport) {
    obj.metadata.managed_fields = None;
    if let Some(annotations) = obj.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The label selector of the URL Secrets the operator writes.
pub fn url_secret_selector() -> String {
    format!("{}={},{NAME_LABEL}", MANAGED_BY.0, MANAGED_BY.1)
}

/// Whether a URL Secret's event calls for its owner's reconcile: it was deleted, or someone
/// other than the operator wrote to it (a field manager of theirs). The operator's own writes
/// do not wake anyone: the reconcile that made them already knows.
pub fn restore_trigger(
    event: watcher::Event<PartialObjectMeta<Secret>>,
) -> Option<PartialObjectMeta<Secret>> {
    match event {
        watcher::Event::Delete(secret) => Some(secret),
        watcher::Event::Apply(secret) | watcher::Event::InitApply(secret) => {
            let foreign = secret
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .any(|entry| entry.manager.as_deref() != Some(FIELD_MANAGER));
            foreign.then_some(secret)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// The URL Secrets' changes that call for their owner's reconcile (a deleted or edited
/// Secret is then restored within seconds, not at the next periodic reconcile).
pub fn url_secret_changes(
    client: Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    watcher(
        metadata_api::<Secret>(client, namespace),
        watcher::Config::default().labels(&url_secret_selector()),
    )
    .default_backoff()
    .filter_map(|event| async move {
        match event {
            Ok(event) => restore_trigger(event).map(Ok),
            Err(error) => Some(Err(error)),
        }
    })
}

/// The copy Jobs' changes, by metadata: their owner's reconcile reads the Job itself.
pub fn copy_job_changes(
    client: Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<PartialObjectMeta<Job>, watcher::Error>> + Send + 'static {
    watcher(
        metadata_api::<Job>(client, namespace),
        watcher::Config::default().labels("app.kubernetes.io/component=copy"),
    )
    .default_backoff()
    .touched_objects()
}

/// An API whose lists and watches ask for metadata only.
fn metadata_api<K>(client: Client, namespace: Option<&str>) -> Api<PartialObjectMeta<K>>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        None => Api::all(client),
        Some(ns) => Api::namespaced(client, ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    fn secret(managers: &[&str]) -> PartialObjectMeta<Secret> {
        let mut meta: PartialObjectMeta<Secret> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "m-master", "namespace": "media"}
        }))
        .unwrap();
        meta.metadata.managed_fields = Some(
            managers
                .iter()
                .map(|m| ManagedFieldsEntry {
                    manager: Some(m.to_string()),
                    ..Default::default()
                })
                .collect(),
        );
        meta
    }

    #[test]
    fn a_deleted_or_foreign_edited_url_secret_wakes_its_owner_and_our_own_writes_do_not() {
        let ours = secret(&[FIELD_MANAGER]);
        let edited = secret(&[FIELD_MANAGER, "kubectl-edit"]);
        assert!(restore_trigger(watcher::Event::Apply(ours.clone())).is_none());
        assert!(restore_trigger(watcher::Event::InitApply(ours.clone())).is_none());
        assert!(restore_trigger(watcher::Event::Delete(ours)).is_some());
        assert!(restore_trigger(watcher::Event::Apply(edited.clone())).is_some());
        assert!(restore_trigger(watcher::Event::InitApply(edited)).is_some());
        assert!(restore_trigger(watcher::Event::Init).is_none());
    }

    #[test]
    fn a_cached_export_keeps_what_the_controller_reads_only() {
        let mut obj: MasterExport = serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1", "kind": "MasterExport",
            "metadata": {
                "name": "m", "namespace": "media", "uid": "u", "generation": 2,
                "finalizers": ["masterexport.io/cleanup"],
                "labels": {"team": "a"},
                "annotations": {LAST_APPLIED: "{...}", "note": "kept"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {"source": {"assetId": "a1"}, "credentialsSecretRef": {"name": "mux"}}
        }))
        .unwrap();
        let before = obj.clone();
        trim(&mut obj);
        assert!(obj.metadata.managed_fields.is_none());
        let annotations = obj.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["note"], "kept");
        assert_eq!(obj.spec, before.spec);
        assert_eq!(obj.metadata.finalizers, before.metadata.finalizers);
        assert_eq!(obj.metadata.generation, Some(2));
        assert_eq!(obj.metadata.labels, before.metadata.labels);
    }
}
