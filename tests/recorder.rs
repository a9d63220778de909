//! The operator's Event recorder on a real apiserver: a repeat within the series window
//! counts on the first Event instead of making a new one; a different note, reason or object
//! is a new Event; an Event deleted meanwhile is made again.

use testenv::fixtures as support;

use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Resource};
use mux_master_operator::controller::recorder::Recorder;
use serde_json::json;
use support::World;

fn note(reason: &str, message: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(message.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

async fn events(world: &World) -> Vec<K8sEvent> {
    let api: Api<K8sEvent> = Api::namespaced(world.client.clone(), &world.namespace);
    let mut items = api.list(&ListParams::default()).await.unwrap().items;
    items.sort_by_key(|e| e.metadata.name.clone());
    items
}

#[tokio::test]
async fn repeats_count_on_one_event_and_anything_different_is_a_new_one() {
    let mut world = World::new("recorder", &[], &[]).await;
    world.operator = None; // this test is the only publisher
    let a = world
        .create(
            "a",
            json!({"source": {"assetId": "x"}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let b = world
        .create(
            "b",
            json!({"source": {"assetId": "y"}, "credentialsSecretRef": {"name": "mux"}}),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        world.client.clone(),
        Reporter {
            controller: "mux-master-operator".into(),
            instance: Some("recorder-test".into()),
        },
    );
    let (ra, rb) = (a.object_ref(&()), b.object_ref(&()));

    for _ in 0..3 {
        recorder
            .publish(&note("UrlReady", "the URL is ready"), &ra)
            .await
            .unwrap();
    }
    let after_repeats = events(&world).await;
    assert_eq!(after_repeats.len(), 1, "three repeats are one Event");
    let series = after_repeats[0].series.as_ref().expect("a series");
    assert_eq!(series.count, 3);
    assert_eq!(
        after_repeats[0].reporting_instance.as_deref(),
        Some("recorder-test")
    );
    assert_eq!(
        after_repeats[0]
            .regarding
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("a")
    );

    // Another note, another reason, another object: three new Events.
    recorder
        .publish(&note("UrlReady", "another message"), &ra)
        .await
        .unwrap();
    recorder
        .publish(&note("UrlRefreshed", "the URL is ready"), &ra)
        .await
        .unwrap();
    recorder
        .publish(&note("UrlReady", "the URL is ready"), &rb)
        .await
        .unwrap();
    assert_eq!(events(&world).await.len(), 4);
    assert_eq!(recorder.remembered(), 4);

    // The series' Event deleted: the next repeat makes a new one instead of failing.
    let api: Api<K8sEvent> = Api::namespaced(world.client.clone(), &world.namespace);
    let first = after_repeats[0].metadata.name.clone().unwrap();
    api.delete(&first, &DeleteParams::default()).await.unwrap();
    recorder
        .publish(&note("UrlReady", "the URL is ready"), &ra)
        .await
        .unwrap();
    let now = events(&world).await;
    assert_eq!(now.len(), 4);
    assert!(
        now.iter()
            .all(|e| e.metadata.name.as_deref() != Some(&first))
    );
}
