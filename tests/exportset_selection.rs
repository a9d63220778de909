//! What a MasterExportSet selects, end to end: a passthrough prefix, a live stream's recording
//! (only once it is complete), and nothing while suspended.

use testenv::fixtures as support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::World;
use support::exportset::{
    children, create_set, install_set_crd, set_condition, set_is_ready, sets, wait_set,
};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn world(prefix: &str) -> World {
    let sim = [
        "--master-prepare-delay",
        "200ms",
        "--asset-prepare-delay",
        "200ms",
    ];
    let world = World::new(prefix, &sim, &["--poll-min", "100ms"]).await;
    install_set_crd(&world.client).await;
    world
}

fn done(n: u32) -> impl Fn(&mux_master_operator::exportset::resource::MasterExportSet) -> bool {
    move |s| set_is_ready(s) && s.status.as_ref().is_some_and(|st| st.counts.done == n)
}

#[tokio::test]
async fn a_passthrough_prefix_selects_only_its_assets() {
    let world = world("set-prefix").await;
    let mut kept = Vec::new();
    for passthrough in ["show-42/ep-1", "show-42/ep-2", "show-43/ep-1"] {
        let asset = world
            .admin
            .seed_asset(json!({"size": 1000, "passthrough": passthrough}))
            .await
            .unwrap();
        if passthrough.starts_with("show-42/") {
            kept.push(asset.id);
        }
    }
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "selector": {"passthrough": {"prefix": "show-42/"}}});
    create_set(&world, "show", spec).await.unwrap();
    let set = wait_set(&world, "show", "the two of show 42", TIMEOUT, done(2)).await;
    let mut exported: Vec<String> = children(&world, &set).await.into_keys().collect();
    exported.sort();
    kept.sort();
    assert_eq!(exported, kept);
    assert_eq!(set.status.unwrap().counts.discovered, 2);
}

#[tokio::test]
async fn a_live_streams_recording_is_exported_once_complete() {
    let world = world("set-live").await;
    world.seed_assets(1, json!({"size": 1000})).await;
    let stream = world
        .admin
        .seed_live_stream(json!({"asset_size": 1000}))
        .await
        .unwrap();
    let active = world.admin.start_live_stream(&stream.id).await.unwrap();
    let recording = active.active_asset_id.unwrap();
    let spec = json!({
        "credentialsSecretRef": {"name": "mux"},
        "selector": {"liveStreamIds": [stream.id]},
        "rescanInterval": "10s",
    });
    create_set(&world, "live", spec).await.unwrap();
    let set = wait_set(&world, "live", "the live recording waiting", TIMEOUT, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.counts.discovered == 1 && st.counts.waiting == 1)
    })
    .await;
    assert!(
        children(&world, &set).await.is_empty(),
        "no child while the stream is live"
    );

    world.admin.end_live_stream(&stream.id).await.unwrap();
    let set = wait_set(&world, "live", "the recording exported", TIMEOUT, done(1)).await;
    let kids = children(&world, &set).await;
    assert_eq!(kids.keys().collect::<Vec<_>>(), vec![&recording]);
}

#[tokio::test]
async fn a_suspended_set_creates_no_child_until_resumed() {
    let world = world("set-suspend").await;
    world.seed_assets(2, json!({"size": 1000})).await;
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "suspend": true});
    create_set(&world, "paused", spec).await.unwrap();
    let set = wait_set(&world, "paused", "Suspended", TIMEOUT, |s| {
        set_condition(s, "Ready").is_some_and(|(st, r, _)| st == "False" && r == "Suspended")
    })
    .await;
    assert!(children(&world, &set).await.is_empty());
    assert_eq!(set.status.unwrap().counts.waiting, 2);

    let resume = json!({"spec": {"suspend": false}});
    sets(&world)
        .patch("paused", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    let set = wait_set(&world, "paused", "both exported", TIMEOUT, done(2)).await;
    assert_eq!(children(&world, &set).await.len(), 2);
}
