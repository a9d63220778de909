//! MasterExportSet on the real apiserver with mux-sim: a whole environment exported under
//! `maxInFlight`, new assets picked up on rescan, deleted ones' children kept.
//!
//! The operator process reconciles the children (MasterExports); the set controller runs in
//! this process (`start_set_controller`), the same code the operator runs.

use testenv::fixtures as support;

use std::time::Duration;

use kube::ResourceExt;
use mux_master_operator::exportset::children::ASSET_DELETED_ANNOTATION;
use mux_master_operator::exportset::reconcile::SetContext;
use mux_master_operator::resource::{MasterExport, Phase};
use serde_json::json;
use support::World;
use support::exportset::{
    children, create_set, install_set_crd, set_condition, set_is_ready, start_set_controller,
    wait_set,
};

/// Mux's limits raised for the test (mux-sim, the operator, the set controller alike).
const RATE: &str = "1000";

async fn world(prefix: &str) -> World {
    world_and_context(prefix).await.0
}

async fn world_and_context(prefix: &str) -> (World, std::sync::Arc<SetContext>) {
    let sim = [
        "--master-prepare-delay",
        "200ms",
        "--other-rate",
        RATE,
        "--other-burst",
        RATE,
    ];
    let operator = [
        "--poll-min",
        "100ms",
        "--mux-other-rate",
        RATE,
        "--mux-other-burst",
        RATE,
        "--concurrency",
        "32",
    ];
    let world = World::new(prefix, &sim, &operator).await;
    install_set_crd(&world.client).await;
    let ctx = start_set_controller(&world, 1000.0);
    (world, ctx)
}

fn is_exported(child: &MasterExport) -> bool {
    child.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
}

#[tokio::test]
async fn a_set_over_many_assets_without_a_destination_brings_each_to_ready_never_more_than_max_in_flight()
 {
    const ASSETS: usize = 1000;
    const MAX_IN_FLIGHT: usize = 50;
    let world = world("set-many").await;
    let mut ids = world.seed_assets(ASSETS, json!({"size": 1000})).await;
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "maxInFlight": MAX_IN_FLIGHT});
    create_set(&world, "all", spec).await.unwrap();

    let started = std::time::Instant::now();
    let mut polls = 0;
    let mut most = 0;
    let deadline = Duration::from_secs(600);
    let set = loop {
        let set = support::exportset::sets(&world).get("all").await.unwrap();
        let kids = children(&world, &set).await;
        let in_flight = kids.values().filter(|c| !is_exported(c)).count();
        assert!(
            in_flight <= MAX_IN_FLIGHT,
            "{in_flight} children in flight, more than maxInFlight {MAX_IN_FLIGHT}"
        );
        most = most.max(in_flight);
        polls += 1;
        if set_is_ready(&set) && kids.len() == ASSETS && kids.values().all(is_exported) {
            break set;
        }
        assert!(
            started.elapsed() < deadline,
            "not every asset exported in {deadline:?}: {:?}",
            set.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "{ASSETS} assets exported in {:?}; {polls} polls, at most {most} in flight",
        started.elapsed()
    );
    assert!(most > 1, "the children were pipelined, not made one by one");
    let status = set.status.unwrap();
    assert_eq!(
        (
            status.counts.discovered,
            status.counts.total,
            status.counts.done
        ),
        (ASSETS as u32, ASSETS as u32, ASSETS as u32)
    );
    assert_eq!(
        status.counts.in_flight + status.counts.waiting + status.counts.failed,
        0
    );
    assert_eq!(
        status.progress.as_deref(),
        Some(format!("{ASSETS}/{ASSETS}").as_str())
    );
    assert!(status.last_scan.is_some());
    let mut exported: Vec<String> = children(
        &world,
        &support::exportset::sets(&world).get("all").await.unwrap(),
    )
    .await
    .into_keys()
    .collect();
    exported.sort();
    ids.sort();
    assert_eq!(exported, ids, "one child per asset, each for its own asset");
}

#[tokio::test]
async fn a_rescan_picks_up_a_new_asset_and_keeps_the_child_of_a_deleted_one() {
    let world = world("set-rescan").await;
    let first = world.seed_assets(3, json!({"size": 1000})).await;
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "rescanInterval": "10s"});
    create_set(&world, "rescan", spec).await.unwrap();
    let timeout = Duration::from_secs(60);
    let set = wait_set(&world, "rescan", "the first 3 exported", timeout, |s| {
        set_is_ready(s) && s.status.as_ref().is_some_and(|st| st.counts.done == 3)
    })
    .await;
    let before = children(&world, &set).await;
    let kept = before[&first[0]].name_any();

    let late = world.seed_assets(1, json!({"size": 1000})).await.remove(0);
    world.admin.delete_asset(&first[0]).await.unwrap();

    let set = wait_set(
        &world,
        "rescan",
        "the new asset exported after a rescan",
        timeout,
        |s| {
            set_is_ready(s)
                && s.status
                    .as_ref()
                    .is_some_and(|st| st.counts.done == 3 && st.counts.deleted == 1)
        },
    )
    .await;
    let after = children(&world, &set).await;
    assert!(
        is_exported(&after[&late]),
        "the late asset's child is Ready"
    );
    let gone = &after[&first[0]];
    assert_eq!(
        gone.name_any(),
        kept,
        "the deleted asset's child is the same child, kept"
    );
    assert_eq!(
        gone.annotations()
            .get(ASSET_DELETED_ANNOTATION)
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(after.len(), 4);
    let (status, reason, _) = set_condition(&set, "Ready").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Exported"));
}

#[tokio::test]
async fn an_asset_ready_webhook_makes_the_set_list_again_long_before_its_interval() {
    let (world, ctx) = world_and_context("set-webhook").await;
    world.seed_assets(2, json!({"size": 1000})).await;
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "rescanInterval": "1h"});
    create_set(&world, "hooked", spec).await.unwrap();
    let timeout = Duration::from_secs(60);
    wait_set(&world, "hooked", "the first 2 exported", timeout, |s| {
        set_is_ready(s) && s.status.as_ref().is_some_and(|st| st.counts.done == 2)
    })
    .await;
    let late = world.seed_assets(1, json!({"size": 1000})).await.remove(0);
    // Not a prompt: the set keeps its listing.
    assert!(!ctx.on_webhook("video.asset.master.ready"));
    assert!(ctx.on_webhook("video.asset.ready"));
    let set = wait_set(
        &world,
        "hooked",
        "the late asset exported",
        Duration::from_secs(30),
        |s| set_is_ready(s) && s.status.as_ref().is_some_and(|st| st.counts.done == 3),
    )
    .await;
    assert!(is_exported(&children(&world, &set).await[&late]));
}
