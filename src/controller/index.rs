//! Which MasterExports name a given Mux asset or live stream: an index kept from the watch
//! stream (as linkerd2's policy controller keeps its indexes apart from the I/O), so that a
//! webhook finds the resources to wake without a list call.

use std::collections::{HashMap, HashSet};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::resource::MasterExport;

type Ref = ObjectRef<MasterExport>;
/// When a claim was made: the resource's creation, then its name, for a stable order.
type Claim = (Option<jiff::Timestamp>, String, String);

#[derive(Debug, Default)]
pub struct SourceIndex {
    by_id: HashMap<String, HashSet<Ref>>,
    keys: HashMap<Ref, Vec<String>>,
    /// The resources that need master access now ([`crate::controller::policy::wants_url`]):
    /// what decides whether an asset's access may be turned off.
    wanting: HashSet<Ref>,
    /// Who names which destination object, with when each was created: the first one
    /// keeps it, the later ones are refused.
    destinations: HashMap<String, Vec<(Claim, Ref)>>,
    destination_of: HashMap<Ref, String>,
    /// Objects seen since the watch (re)started listing; the rest are pruned at its end.
    relisting: Option<HashSet<Ref>>,
}

/// The Mux IDs a resource answers to: its asset, its live stream, and the live stream's
/// recording once chosen.
fn ids_of(obj: &MasterExport) -> Vec<String> {
    let mut ids = Vec::new();
    ids.extend(obj.spec.source.asset_id.clone());
    ids.extend(obj.spec.source.live_stream_id.clone());
    if let Some(recorded) = obj.status.as_ref().and_then(|s| s.asset.as_ref()) {
        ids.push(recorded.id.clone());
    }
    ids.sort();
    ids.dedup();
    ids
}

impl SourceIndex {
    pub fn apply_event(&mut self, event: &watcher::Event<MasterExport>) {
        match event {
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(ObjectRef::from(obj));
                }
                self.upsert(obj);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<Ref> = self
                        .keys
                        .keys()
                        .filter(|r| !seen.contains(r))
                        .cloned()
                        .collect();
                    for r in gone {
                        self.remove(&r);
                    }
                }
            }
            watcher::Event::Apply(obj) => self.upsert(obj),
            watcher::Event::Delete(obj) => self.remove(&ObjectRef::from(obj)),
        }
    }

    fn upsert(&mut self, obj: &MasterExport) {
        let r = ObjectRef::from(obj);
        self.remove(&r);
        let ids = ids_of(obj);
        for id in &ids {
            self.by_id.entry(id.clone()).or_default().insert(r.clone());
        }
        if crate::controller::policy::wants_url(obj) {
            self.wanting.insert(r.clone());
        }
        if let Some(destination) = &obj.spec.destination {
            let namespace = obj.metadata.namespace.clone().unwrap_or_default();
            let key = crate::controller::copy_policy::object_key(&namespace, destination);
            let claim = (
                obj.metadata.creation_timestamp.as_ref().map(|t| t.0),
                namespace,
                obj.metadata.name.clone().unwrap_or_default(),
            );
            self.destinations
                .entry(key.clone())
                .or_default()
                .push((claim, r.clone()));
            self.destination_of.insert(r.clone(), key);
        }
        self.keys.insert(r, ids);
    }

    fn remove(&mut self, r: &Ref) {
        self.wanting.remove(r);
        if let Some(key) = self.destination_of.remove(r)
            && let Some(claims) = self.destinations.get_mut(&key)
        {
            claims.retain(|(_, other)| other != r);
            if claims.is_empty() {
                self.destinations.remove(&key);
            }
        }
        for id in self.keys.remove(r).unwrap_or_default() {
            if let Some(set) = self.by_id.get_mut(&id) {
                set.remove(r);
                if set.is_empty() {
                    self.by_id.remove(&id);
                }
            }
        }
    }

    /// The resources that name `id` (an asset or a live stream).
    /// Whether any resource refers to `id`.
    pub fn refers_to(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|s| !s.is_empty())
    }

    pub fn lookup(&self, id: &str) -> Vec<Ref> {
        self.by_id
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The resources on `id` that need master access now.
    pub fn wanting(&self, id: &str) -> Vec<Ref> {
        self.by_id
            .get(id)
            .map(|s| {
                s.iter()
                    .filter(|r| self.wanting.contains(*r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The claims on destination object `key`, in no particular order.
    pub fn claims(&self, key: &str) -> Vec<(Claim, Ref)> {
        self.destinations.get(key).cloned().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{AssetState, MasterExportSpec, MasterExportStatus, Source};

    fn export(
        name: &str,
        asset: Option<&str>,
        stream: Option<&str>,
        recorded: Option<&str>,
    ) -> MasterExport {
        let mut obj = MasterExport::new(
            name,
            MasterExportSpec {
                source: Source {
                    asset_id: asset.map(Into::into),
                    live_stream_id: stream.map(Into::into),
                },
                access: Default::default(),
                credentials_secret_ref: Default::default(),
                refresh_before: "2h".into(),
                url_secret: None,
                deletion_policy: Default::default(),
                suspend: false,
                destination: None,
                after_copy: None,
            },
        );
        obj.metadata.namespace = Some("media".into());
        obj.status = recorded.map(|id| MasterExportStatus {
            asset: Some(AssetState {
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        obj
    }

    fn names(index: &SourceIndex, id: &str) -> Vec<String> {
        let mut names: Vec<String> = index.lookup(id).into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn assets_and_live_streams_and_recordings_are_found() {
        let mut index = SourceIndex::default();
        index.apply_event(&watcher::Event::Apply(export(
            "a",
            Some("asset1"),
            None,
            None,
        )));
        index.apply_event(&watcher::Event::Apply(export(
            "b",
            Some("asset1"),
            None,
            None,
        )));
        index.apply_event(&watcher::Event::Apply(export(
            "live",
            None,
            Some("ls1"),
            Some("rec1"),
        )));
        assert_eq!(names(&index, "asset1"), vec!["a", "b"]);
        assert_eq!(names(&index, "ls1"), vec!["live"]);
        assert_eq!(names(&index, "rec1"), vec!["live"]);
        assert!(index.lookup("other").is_empty());
    }

    #[test]
    fn deletes_and_relists_forget_what_is_gone() {
        let mut index = SourceIndex::default();
        index.apply_event(&watcher::Event::Apply(export(
            "a",
            Some("asset1"),
            None,
            None,
        )));
        index.apply_event(&watcher::Event::Apply(export(
            "b",
            Some("asset2"),
            None,
            None,
        )));
        index.apply_event(&watcher::Event::Delete(export(
            "a",
            Some("asset1"),
            None,
            None,
        )));
        assert!(index.lookup("asset1").is_empty());
        // A relist that no longer has b prunes it.
        index.apply_event(&watcher::Event::Init);
        index.apply_event(&watcher::Event::InitApply(export(
            "c",
            Some("asset3"),
            None,
            None,
        )));
        index.apply_event(&watcher::Event::InitDone);
        assert!(index.lookup("asset2").is_empty());
        assert_eq!(names(&index, "asset3"), vec!["c"]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_recording_chosen_later_is_indexed_on_update() {
        let mut index = SourceIndex::default();
        index.apply_event(&watcher::Event::Apply(export(
            "live",
            None,
            Some("ls1"),
            None,
        )));
        assert!(index.lookup("rec9").is_empty());
        index.apply_event(&watcher::Event::Apply(export(
            "live",
            None,
            Some("ls1"),
            Some("rec9"),
        )));
        assert_eq!(names(&index, "rec9"), vec!["live"]);
    }

    #[test]
    fn only_live_resources_that_want_a_url_count_for_an_assets_access() {
        use crate::resource::Access;
        let mut index = SourceIndex::default();
        let wants = export("wants", Some("asset1"), None, None);
        let mut off = export("off", Some("asset1"), None, None);
        off.spec.access = Access::None;
        let mut leaving = export("leaving", Some("asset1"), None, None);
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        for obj in [&wants, &off, &leaving] {
            index.apply_event(&watcher::Event::Apply(obj.clone()));
        }
        let wanting: Vec<String> = index
            .wanting("asset1")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(wanting, vec!["wants"]);
        // It changes its mind: nobody wants access any more.
        let mut now_off = wants.clone();
        now_off.spec.access = Access::None;
        index.apply_event(&watcher::Event::Apply(now_off));
        assert!(index.wanting("asset1").is_empty());
        assert_eq!(names(&index, "asset1"), vec!["leaving", "off", "wants"]);
    }
}
