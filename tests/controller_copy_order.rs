//! The copy Job's pod reads the master URL from the URL Secret, so the Job must not exist
//! before the Secret holds that URL (a real kubelet retries a missing Secret, but a pod that
//! starts on an older URL copies from a URL about to be withdrawn).
//!
//! The order is read from etcd itself: every write gets the next revision, and an object's
//! `resourceVersion` in a watch event is the revision of that write (one etcd here, so the
//! versions of a Secret and a Job compare).

use testenv::fixtures as support;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::{Arc, Mutex};
use support::{World, eventually};

/// Watches `api` from now on; records the revision of the first object `wanted` accepts.
async fn first_revision<K>(api: Api<K>, wanted: fn(&K) -> bool) -> Arc<Mutex<Option<u64>>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let (synced_tx, synced) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut synced_tx = Some(synced_tx);
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = synced_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))
                    if wanted(&object) =>
                {
                    let version = object.resource_version().unwrap_or_default();
                    let mut first = record.lock().unwrap();
                    first.get_or_insert(version.parse().expect("a numeric resourceVersion"));
                }
                _ => {}
            }
        }
    });
    synced.await.expect("the watch starts");
    seen
}

#[tokio::test]
async fn the_copy_job_is_created_only_after_the_url_secret_holds_the_url() {
    let world = World::new("copy-order", &["--master-prepare-delay", "200ms"], &[]).await;
    let secrets: Api<Secret> = world.secrets();
    let jobs: Api<Job> = Api::namespaced(world.client.clone(), &world.namespace);
    let secret_with_url = first_revision(secrets.clone(), |s: &Secret| {
        s.name_any() == "archived-master" && s.data.as_ref().is_some_and(|d| d.contains_key("url"))
    })
    .await;
    let job_created = first_revision(jobs, |_| true).await;

    let asset = world.admin.seed_asset(json!({"size": 4096})).await.unwrap();
    world
        .create(
            "archived",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "destination": {"url": "s3://archive/k.mp4", "endpoint": "http://127.0.0.1:9", "pathStyle": true},
            }),
        )
        .await
        .unwrap();

    let (secret, job) = eventually(
        support::TIMEOUT,
        "a copy Job and the URL Secret",
        || async {
            let secret = (*secret_with_url.lock().unwrap())?;
            let job = (*job_created.lock().unwrap())?;
            Some((secret, job))
        },
    )
    .await;
    assert!(
        secret < job,
        "the URL Secret held the URL at revision {secret}, after the copy Job was created at {job}"
    );
    // And the URL the Job will read is the one the status publishes.
    let obj = world.api().get("archived").await.unwrap();
    let stored = secrets.get("archived-master").await.unwrap().data.unwrap()["url"]
        .0
        .clone();
    assert_eq!(
        Some(String::from_utf8(stored).unwrap()),
        support::master_url(&obj)
    );
}
