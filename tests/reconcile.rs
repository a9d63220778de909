//! The reconciler called in the test process (as kube-rs's controller-rs tests it), against
//! the real apiserver and mux-sim, for the paths a spawned operator rarely shows: the error
//! branch, the intent written before a Mux call, and cleanup with its finalizer.

use testenv::fixtures as support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use mux_master_operator::controller::context::FIELD_MANAGER;
use mux_master_operator::controller::copy_policy::CopySettings;
use mux_master_operator::controller::policy::Settings;
use mux_master_operator::controller::recorder::Recorder;
use mux_master_operator::controller::wakeup::Wakeups;
use mux_master_operator::controller::{Context, Error, Options, reconcile};
use mux_master_operator::metrics::Metrics;
use mux_master_operator::resource::{FINALIZER, MasterExport, Operation, Phase};
use mux_sim::admin_client::MASTER_ACCESS_ROUTE;
use serde_json::json;
use support::{World, condition, eventually, is_ready};

/// A world whose operator is the test itself.
struct InProcess {
    world: World,
    ctx: Arc<Context>,
}

impl InProcess {
    /// `other_rate`: requests per second (burst 1) for GETs and PUTs to Mux.
    async fn new(prefix: &str, sim_args: &[&str], other_rate: f64) -> InProcess {
        let mut world = World::new(prefix, sim_args, &[]).await;
        // The spawned operator would reconcile too: this test is the only reconciler.
        world.operator = None;
        let mux = mux::MuxClients::new(mux::MuxConfig {
            base_url: world.sim.url().parse().unwrap(),
            other_rate: mux::Rate::new(other_rate, 1),
            max_retries: 0,
            ..mux::MuxConfig::default()
        })
        .unwrap();
        let recorder = Recorder::new(
            world.client.clone(),
            Reporter {
                controller: "mux-master-operator".into(),
                instance: Some("reconcile-test".into()),
            },
        );
        let ctx = Context::new(
            world.client.clone(),
            mux,
            recorder,
            Metrics::default(),
            Arc::new(Wakeups::new(false, Duration::from_secs(600))),
            Options {
                settings: Settings {
                    poll_min: Duration::from_millis(100),
                    ..Settings::default()
                },
                deletion_timeout: Duration::from_secs(600),
                webhook_poll: Duration::from_secs(120),
                url_in_status: true,
                copy: CopySettings::default(),
            },
        );
        InProcess {
            world,
            ctx: Arc::new(ctx),
        }
    }

    async fn get(&self, name: &str) -> Option<MasterExport> {
        self.world.api().get_opt(name).await.unwrap()
    }

    /// One reconcile of the resource as the apiserver has it now.
    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let obj = self.get(name).await.expect("the resource exists");
        reconcile(Arc::new(obj), self.ctx.clone()).await
    }

    /// Reconciles until `done` holds of the stored resource.
    async fn reconcile_until(&self, name: &str, what: &str, done: impl Fn(&MasterExport) -> bool) {
        eventually(support::TIMEOUT, what, || async {
            let _ = self.reconcile(name).await;
            self.get(name).await.filter(|o| done(o)).map(|_| ())
        })
        .await
    }

    /// A GET of `asset` through the reconciler's own limiter: at a slow rate, its next call
    /// (a new export's first PUT) then waits in our process.
    async fn hold_back_the_next_call(&self, asset: &str) {
        let token = mux::Credentials::new(support::TOKEN_ID, support::TOKEN_SECRET);
        self.ctx.mux.client(token).get_asset(asset).await.unwrap();
    }

    async fn events(&self, reason: &str) -> Vec<Event> {
        let api: kube::Api<Event> =
            kube::Api::namespaced(self.world.client.clone(), &self.world.namespace);
        let list = api.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }
}

fn asset_spec(asset_id: &str) -> serde_json::Value {
    json!({"source": {"assetId": asset_id}, "credentialsSecretRef": {"name": "mux"}})
}

fn has_finalizer(obj: &MasterExport) -> bool {
    obj.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

#[tokio::test]
async fn the_error_branch_says_why_and_withdraws_a_url_past_its_expiry() {
    let env = InProcess::new("rec-error", &[], 5.0).await;
    let asset = env
        .world
        .admin
        .seed_asset(json!({"size": 1000}))
        .await
        .unwrap();
    let mut spec = asset_spec(&asset.id);
    spec["credentialsSecretRef"] = json!({"name": "absent"});
    env.world.create("err", spec).await.unwrap();
    // The first reconcile adds the finalizer, and nothing else.
    env.reconcile("err").await.unwrap();
    assert!(has_finalizer(&env.get("err").await.unwrap()));
    // A URL recorded earlier, expired since (the operator was down past its expiry).
    let expired = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let status = json!({
        "apiVersion": "masterexport.io/v1alpha1",
        "kind": "MasterExport",
        "status": {
            "phase": "Ready",
            "master": {
                "status": "ready",
                "url": "https://mezzanine.example/old.mp4?signature=s",
                "expiresAt": expired.to_string(),
                "refreshes": 0,
            },
        },
    });
    env.world
        .api()
        // As the operator's field manager: the status as the operator recorded it.
        .patch_status(
            "err",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();

    let action = env
        .reconcile("err")
        .await
        .expect("the error is recorded, not returned");
    assert_ne!(action, Action::await_change(), "it looks again later");
    let obj = env.get("err").await.unwrap();
    assert_eq!(
        condition(&obj, "Stalled").unwrap(),
        ("True".into(), "CredentialsSecretNotFound".into())
    );
    assert_eq!(
        condition(&obj, "Ready").unwrap(),
        ("False".into(), "CredentialsSecretNotFound".into())
    );
    let status = obj.status.unwrap();
    assert_eq!(status.observed_generation, obj.metadata.generation);
    assert_eq!(
        status.master.unwrap().url,
        None,
        "the expired URL is withdrawn"
    );
    // (This status was written by hand, its Secret never: the Secret, read, holds no URL.)
    let secret = env.world.secrets().get_opt("err-master").await.unwrap();
    assert!(
        !secret
            .and_then(|s| s.data)
            .unwrap_or_default()
            .contains_key("url"),
        "and no URL Secret holds the URL"
    );
    assert_eq!(env.events("CredentialsSecretNotFound").await.len(), 1);
}

#[tokio::test]
async fn the_intent_is_recorded_before_the_mux_call_is_made() {
    // GETs and PUTs to Mux at one every 2 s: the PUT waits 2 s behind the test's own GET
    // (a new export makes no GET before it), in our process.
    let env = InProcess::new("rec-intent", &["--master-prepare-delay", "30s"], 0.5).await;
    let asset = env
        .world
        .admin
        .seed_asset(json!({"size": 1000}))
        .await
        .unwrap();
    env.world
        .create("intent", asset_spec(&asset.id))
        .await
        .unwrap();
    env.reconcile("intent").await.unwrap(); // the finalizer
    env.hold_back_the_next_call(&asset.id).await;

    let ctx = env.ctx.clone();
    let obj = env.get("intent").await.unwrap();
    let running = tokio::spawn(async move { reconcile(Arc::new(obj), ctx).await });
    let recorded = eventually(support::TIMEOUT, "status.pending", || async {
        env.get("intent")
            .await
            .and_then(|o| o.status)
            .and_then(|s| s.pending)
    })
    .await;
    assert_eq!(recorded.operation, Operation::Request);
    let puts = env
        .world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(
        puts, 0,
        "the intent is in the status before Mux sees the call"
    );
    assert!(!running.is_finished());

    running.await.unwrap().unwrap();
    let puts = env
        .world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(puts, 1);
    let status = env.get("intent").await.unwrap().status.unwrap();
    assert_eq!(status.phase, Some(Phase::Preparing));
    let master = status.master.unwrap();
    assert_eq!(
        master.requested_at,
        Some(recorded.at.clone()),
        "the window counts from the recorded intent"
    );
    // A second reconcile, as after a restart, does not request again.
    env.reconcile("intent").await.unwrap();
    let puts = env
        .world
        .admin
        .count("PUT", MASTER_ACCESS_ROUTE, Some(&asset.id), None)
        .await
        .unwrap();
    assert_eq!(puts, 1, "no second request while the first is preparing");
}

#[tokio::test]
async fn cleanup_revokes_access_then_releases_the_finalizer() {
    let env = InProcess::new("rec-cleanup", &["--master-prepare-delay", "200ms"], 5.0).await;
    let asset = env
        .world
        .admin
        .seed_asset(json!({"size": 1000}))
        .await
        .unwrap();
    env.world
        .create("gone", asset_spec(&asset.id))
        .await
        .unwrap();
    env.reconcile_until("gone", "Ready", is_ready).await;
    env.world
        .api()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = env.get("gone").await.expect("held by the finalizer");
    assert!(deleting.metadata.deletion_timestamp.is_some() && has_finalizer(&deleting));

    env.reconcile("gone").await.unwrap();
    assert!(env.get("gone").await.is_none(), "the finalizer is released");
    let state = env.world.admin.inspect(&asset.id).await.unwrap();
    assert_eq!(state["asset"]["master_access"], "none");
    assert_eq!(env.events("AccessRevoked").await.len(), 1);
}

#[tokio::test]
async fn cleanup_waits_for_a_mux_that_is_down_and_says_so() {
    let env = InProcess::new("rec-pending", &["--master-prepare-delay", "200ms"], 5.0).await;
    let asset = env
        .world
        .admin
        .seed_asset(json!({"size": 1000}))
        .await
        .unwrap();
    env.world
        .create("held", asset_spec(&asset.id))
        .await
        .unwrap();
    env.reconcile_until("held", "Ready", is_ready).await;
    env.world
        .admin
        .configure(json!({"error_rate": 1.0}))
        .await
        .unwrap();
    env.world
        .api()
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();

    let error = env.reconcile("held").await.expect_err("the revoke failed");
    assert_eq!(error.reason(), ("MuxUnavailable", false));
    let held = env.get("held").await.expect("still there");
    assert!(has_finalizer(&held));
    assert_eq!(
        condition(&held, "Reconciling").unwrap(),
        ("True".into(), "RevokePending".into())
    );

    env.world
        .admin
        .configure(json!({"error_rate": 0.0}))
        .await
        .unwrap();
    env.reconcile("held").await.unwrap();
    assert!(env.get("held").await.is_none());
    let state = env.world.admin.inspect(&asset.id).await.unwrap();
    assert_eq!(state["asset"]["master_access"], "none");
}

#[tokio::test]
async fn a_failed_call_is_recorded_over_the_intent_not_over_the_status_first_read() {
    // As above: the PUT waits 2 s behind the test's GET, time to make Mux fail it.
    let env = InProcess::new("rec-intent-error", &["--master-prepare-delay", "30s"], 0.5).await;
    let asset = env
        .world
        .admin
        .seed_asset(json!({"size": 1000}))
        .await
        .unwrap();
    env.world
        .create("fails", asset_spec(&asset.id))
        .await
        .unwrap();
    env.reconcile("fails").await.unwrap(); // the finalizer
    env.hold_back_the_next_call(&asset.id).await;

    let ctx = env.ctx.clone();
    let obj = env.get("fails").await.unwrap();
    let running = tokio::spawn(async move { reconcile(Arc::new(obj), ctx).await });
    let recorded = eventually(support::TIMEOUT, "status.pending", || async {
        env.get("fails")
            .await
            .and_then(|o| o.status)
            .and_then(|s| s.pending)
    })
    .await;
    env.world
        .admin
        .configure(json!({"fail_next": 1}))
        .await
        .unwrap();
    running.await.unwrap().expect("the failure is recorded");

    let obj = env.get("fails").await.unwrap();
    assert_eq!(
        condition(&obj, "Reconciling").unwrap(),
        ("True".into(), "MuxUnavailable".into())
    );
    assert_eq!(
        obj.status.unwrap().pending,
        Some(recorded),
        "the intent stays on record: the call may have reached Mux"
    );
}
