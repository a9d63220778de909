//! The URL Secret's name pointing at a Secret the operator did not create for this resource
//! (the credentials, another resource's URL Secret), on the real apiserver with mux-sim and
//! the operator as a process: refused with a reason, the foreign Secret untouched.

use testenv::fixtures as support;

use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use serde_json::json;
use support::{World, condition, is_ready, master_url};

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
