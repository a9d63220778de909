//! The URL Secret's name pointing at a Secret the operator did not create for this resource
//! (the credentials, another resource's URL Secret), on the real apiserver with mux-sim and
//! the operator as a process: refused with a reason, the foreign Secret untouched.

use testenv::fixtures as support;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use mux_master_operator::resource::MasterExport;
use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use serde_json::json;
use support::{World, condition, eventually, is_ready, master_url};

fn spec(asset_id: &str, url_secret: &str) -> serde_json::Value {
    json!({
        "source": {"assetId": asset_id},
        "credentialsSecretRef": {"name": "mux"},
        "urlSecret": {"name": url_secret},
    })
}

fn refused(obj: &mux_master_operator::resource::MasterExport) -> bool {
    condition(obj, "Stalled").is_some_and(|(s, r)| s == "True" && r == "UrlSecretNotOurs")
}

#[tokio::test]
async fn a_url_secret_named_after_the_credentials_is_refused_and_they_stay_untouched() {
    let world = World::new("secret-creds", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let before = world.secrets().get("mux").await.unwrap();
    world
        .create("grabby", spec(&asset.id, "mux"))
        .await
        .unwrap();

    let obj = world.wait("grabby", "refused", refused).await;
    let message = &obj.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("spec.urlSecret.name"), "{message}");
    assert_eq!(
        master_url(&obj),
        None,
        "no URL published without its Secret"
    );
    let after = world.secrets().get("mux").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the credentials Secret is not written"
    );
    assert!(after.metadata.owner_references.is_none(), "nor adopted");
    assert!(!after.data.unwrap_or_default().contains_key("url"));
    let puts = world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(puts, 0, "nothing asked of Mux that could not be published");
}

#[tokio::test]
async fn a_second_export_naming_anothers_url_secret_is_refused() {
    let world = World::new("secret-shared", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let first = world
        .create("first", spec(&asset.id, "shared"))
        .await
        .unwrap();
    let ready = world.wait("first", "first Ready", is_ready).await;
    world
        .create("second", spec(&asset.id, "shared"))
        .await
        .unwrap();
    world.wait("second", "second refused", refused).await;

    let secret = world.secrets().get("shared").await.unwrap();
    let owners = secret.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(Some(owners[0].uid.clone()), first.metadata.uid);
    let url = String::from_utf8(secret.data.unwrap()["url"].0.clone()).unwrap();
    assert_eq!(Some(url), master_url(&ready), "the first one's URL, kept");
}

#[tokio::test]
async fn a_name_of_the_maximum_length_gets_its_url_secret() {
    let world = World::new("secret-long", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    let name = format!("{}.{}", "a".repeat(200), "b".repeat(52));
    assert_eq!(name.len(), 253, "the Kubernetes maximum");
    world
        .create(
            &name,
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world.wait(&name, "Ready", is_ready).await;
    let secret_name = ready.url_secret_name();
    let secret = world.secrets().get(&secret_name).await.unwrap();
    let url = String::from_utf8(secret.data.unwrap()["url"].0.clone()).unwrap();
    assert_eq!(Some(url), master_url(&ready));
    let label = &secret.metadata.labels.unwrap()["masterexport.io/name"];
    assert_eq!(label, &ready.name_label());
    assert!(label.len() <= 63);
}

#[tokio::test]
async fn a_url_secret_the_apiserver_refuses_surfaces_as_a_condition() {
    let world = World::new("secret-invalid", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    // The CRD bounds the length only; the apiserver refuses this name for a Secret.
    world
        .create("bad-name", spec(&asset.id, "Not_A_Secret_Name"))
        .await
        .unwrap();
    let obj = world
        .wait("bad-name", "a condition, not a silent retry loop", |o| {
            condition(o, "Stalled").is_some_and(|(s, r)| s == "True" && r == "KubernetesRejected")
        })
        .await;
    let message = &obj.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("Not_A_Secret_Name"), "{message}");
    assert_eq!(master_url(&obj), None, "no URL without its Secret");
}

fn secret_url(secret: &k8s_openapi::api::core::v1::Secret) -> Option<String> {
    let value = secret.data.as_ref()?.get("url")?;
    String::from_utf8(value.0.clone()).ok()
}

#[tokio::test]
async fn a_renamed_url_secret_is_written_and_the_old_one_removed() {
    let world = World::new("secret-rename", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create("moves", spec(&asset.id, "moves-old"))
        .await
        .unwrap();
    let ready = world.wait("moves", "Ready", is_ready).await;
    assert!(
        world
            .secrets()
            .get_opt("moves-old")
            .await
            .unwrap()
            .is_some()
    );

    // The order of the writes, from etcd's revisions (one etcd: a Secret's and a MasterExport's
    // versions compare): the old Secret may go only once the status names the new one, so that
    // whoever follows the status's reference always finds a Secret.
    let names_new = first_revision(world.api(), |m: &MasterExport| {
        m.status
            .as_ref()
            .and_then(|s| s.master.as_ref())
            .and_then(|m| m.url_secret_ref.as_ref())
            .is_some_and(|r| r.name == "moves-new")
    })
    .await;
    let old_deleted = deletion_revision(world.secrets(), "moves-old").await;
    world
        .api()
        .patch(
            "moves",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"urlSecret": {"name": "moves-new"}}})),
        )
        .await
        .unwrap();
    let secrets = world.secrets();
    let url = master_url(&ready);
    eventually(
        support::TIMEOUT,
        "the new Secret, the old one gone",
        || async {
            let new = secrets.get_opt("moves-new").await.unwrap();
            let old = secrets.get_opt("moves-old").await.unwrap();
            (new.as_ref().and_then(secret_url) == url && old.is_none()).then_some(())
        },
    )
    .await;
    let moved = world.api().get("moves").await.unwrap();
    let reference = moved
        .status
        .unwrap()
        .master
        .unwrap()
        .url_secret_ref
        .unwrap();
    assert_eq!(reference.name, "moves-new");
    let (named_at, deleted_at) = eventually(
        support::TIMEOUT,
        "both writes seen by the watches",
        || async {
            let named = *names_new.lock().unwrap();
            let deleted = *old_deleted.lock().unwrap();
            named.zip(deleted)
        },
    )
    .await;
    assert!(
        named_at < deleted_at,
        "the old URL Secret went (revision {deleted_at}) before the status named the new one \
         (revision {named_at})"
    );
}

/// Watches `api` from now on; the revision of the first object `wanted` accepts.
async fn first_revision<K>(api: Api<K>, wanted: fn(&K) -> bool) -> Arc<Mutex<Option<u64>>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watch_revision(api, move |event| match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) if wanted(o) => Some(o),
        _ => None,
    })
    .await
}

/// Watches `api` from now on; the revision at which `name` is deleted.
async fn deletion_revision<K>(api: Api<K>, name: &'static str) -> Arc<Mutex<Option<u64>>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watch_revision(api, move |event| match event {
        watcher::Event::Delete(o) if o.name_any() == name => Some(o),
        _ => None,
    })
    .await
}

/// Runs a watch on `api` in the background (returns once it has started) and records the
/// `resourceVersion` of the first object `pick` takes from an event.
async fn watch_revision<K>(
    api: Api<K>,
    pick: impl Fn(&watcher::Event<K>) -> Option<&K> + Send + 'static,
) -> Arc<Mutex<Option<u64>>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = events.next().await {
            if matches!(event, watcher::Event::InitDone)
                && let Some(tx) = started_tx.take()
            {
                let _ = tx.send(());
            }
            if let Some(object) = pick(&event) {
                let version = object.resource_version().unwrap_or_default();
                let mut first = record.lock().unwrap();
                first.get_or_insert(version.parse().expect("a numeric resourceVersion"));
            }
        }
    });
    started.await.expect("the watch starts");
    seen
}

#[tokio::test]
async fn a_url_secret_deleted_by_hand_is_restored_by_the_next_reconcile() {
    let world = World::new("secret-restore", &["--master-prepare-delay", "200ms"], &[]).await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "kept",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world.wait("kept", "Ready", is_ready).await;
    world
        .secrets()
        .delete("kept-master", &Default::default())
        .await
        .unwrap();
    // A change of spec: a reconcile that asks Mux (not the fast path).
    world
        .api()
        .patch(
            "kept",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"refreshBefore": "3h"}})),
        )
        .await
        .unwrap();
    let secrets = world.secrets();
    let url = master_url(&ready);
    eventually(support::TIMEOUT, "the Secret restored", || async {
        let secret = secrets.get_opt("kept-master").await.unwrap();
        (secret.as_ref().and_then(secret_url) == url).then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_url_in_status_off_the_url_is_in_the_secret_only() {
    let world = World::new(
        "secret-only",
        &["--master-prepare-delay", "200ms"],
        &["--url-in-status=false"],
    )
    .await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "quiet",
            json!({"source": {"assetId": asset.id}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let ready = world.wait("quiet", "Ready", is_ready).await;
    let status = ready.status.clone().unwrap();
    assert_eq!(master_url(&ready), None, "no URL in the status");
    assert!(
        !serde_json::to_string(&status)
            .unwrap()
            .contains("signature=")
    );
    assert!(status.master.unwrap().expires_at.is_some());
    let secret = world.secrets().get("quiet-master").await.unwrap();
    let url = secret_url(&secret).expect("the URL is in the Secret");
    assert!(reqwest::get(&url).await.unwrap().status().is_success());

    // A reconcile that asks Mux knows the URL it published: no renewal, no second grant.
    world
        .api()
        .patch(
            "quiet",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"refreshBefore": "3h"}})),
        )
        .await
        .unwrap();
    let generation = world.api().get("quiet").await.unwrap().metadata.generation;
    world
        .wait("quiet", "the new generation observed", |o| {
            o.status.as_ref().and_then(|s| s.observed_generation) == generation && is_ready(o)
        })
        .await;
    let puts = world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(puts, 1);
    let secret = world.secrets().get("quiet-master").await.unwrap();
    assert_eq!(secret_url(&secret), Some(url), "the same URL, kept");
}

#[tokio::test]
async fn with_url_in_status_off_an_expired_url_leaves_the_secret_on_time() {
    let world = World::new(
        "secret-only-expiry",
        &["--master-prepare-delay", "200ms"],
        &["--url-in-status=false", "--url-lifetime", "6s"],
    )
    .await;
    let asset = world.admin.seed_asset(json!({"size": 1000})).await.unwrap();
    world
        .create(
            "lapses",
            json!({
                "source": {"assetId": asset.id},
                "credentialsSecretRef": {"name": "mux"},
                "refreshBefore": "3s",
            }),
        )
        .await
        .unwrap();
    world.wait("lapses", "Ready", is_ready).await;
    // Mux goes down: no refresh can succeed, the URL runs out.
    world
        .admin
        .configure(json!({"error_rate": 1.0}))
        .await
        .unwrap();
    let secrets = world.secrets();
    let last_expiry = std::sync::Mutex::new(None::<jiff::Timestamp>);
    eventually(support::TIMEOUT, "the expired URL withdrawn", || async {
        let secret = secrets.get("lapses-master").await.unwrap();
        if secret_url(&secret).is_none() {
            return Some(());
        }
        let data = secret.data.unwrap();
        let expires: jiff::Timestamp = String::from_utf8(data["expiresAt"].0.clone())
            .unwrap()
            .parse()
            .unwrap();
        assert!(expires > jiff::Timestamp::now(), "a URL past its expiry");
        *last_expiry.lock().unwrap() = Some(expires);
        None
    })
    .await;
    assert!(last_expiry.lock().unwrap().is_some(), "a URL was published");
}
