//! `mux-master-operator run`: flags, and the wiring of the controller, the Mux client,
//! metrics, health and leader election.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::utils::Predicate;
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};

use super::context::{Context, Options};
use super::copy_policy::CopySettings;
use super::index::SourceIndex;
use super::policy::Settings;
use super::reconcile::{error_policy, reconcile};
use super::recorder::Recorder;
use super::snapshots::{self, Snapshots};
use super::sweeper::sweep_expired_urls;
use super::wakeup::Wakeups;
use super::watches;
use crate::leader::{Elector, LeaseConfig};
use crate::metrics::Metrics;
use crate::resource::MasterExport;
use crate::server::{self, Health};
use crate::webhooks;
use mux::{MuxClients, MuxConfig, Rate};

fn duration_arg(text: &str) -> Result<Duration, String> {
    mux::duration::parse(text)
}

/// Flags of `run`; each has an environment variable for container setups.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Base URL of the Mux API (mux-sim's address in tests and the demo).
    #[arg(long, env = "MUX_BASE_URL", default_value = "https://api.mux.com")]
    pub mux_base_url: url::Url,
    /// Namespaces to watch, comma-separated; empty watches every namespace.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Sustained POST requests per second to Mux, per token (Mux allows about 1).
    #[arg(long, env = "MUX_POST_RATE", default_value_t = 1.0)]
    pub mux_post_rate: f64,
    #[arg(long, env = "MUX_POST_BURST", default_value_t = 1)]
    pub mux_post_burst: u32,
    /// Sustained requests per second of other methods, per token (Mux allows about 5).
    #[arg(long, env = "MUX_OTHER_RATE", default_value_t = 5.0)]
    pub mux_other_rate: f64,
    #[arg(long, env = "MUX_OTHER_BURST", default_value_t = 5)]
    pub mux_other_burst: u32,
    /// How long a master URL works at Mux (24h); shorter only against mux-sim.
    #[arg(long, env = "URL_LIFETIME", default_value = "24h", value_parser = duration_arg)]
    pub url_lifetime: Duration,
    /// The first poll interval while a master is preparing; it grows up to --poll-max.
    #[arg(long, env = "POLL_MIN", default_value = "1s", value_parser = duration_arg)]
    pub poll_min: Duration,
    #[arg(long, env = "POLL_MAX", default_value = "30s", value_parser = duration_arg)]
    pub poll_max: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Resources reconciled at once (Mux calls are rate limited separately).
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// How long a deletion waits for Mux to revoke access before giving up.
    #[arg(long, env = "DELETION_TIMEOUT", default_value = "10m", value_parser = duration_arg)]
    pub deletion_timeout: Duration,
    /// Elect a leader on a Lease, so that several replicas can run with one active.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "mux-master-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (defaults to the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events (defaults to the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = duration_arg)]
    pub lease_duration: Duration,
    /// Address of the Mux webhook endpoint (POST /webhooks/mux); unset: no webhooks.
    #[arg(long, env = "WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Webhook signing secrets, comma-separated (several while rotating). Required with
    /// --webhook-addr.
    #[arg(
        long,
        env = "MUX_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhook_secrets: Vec<String>,
    /// How far a webhook signature's timestamp may be from now, either way.
    #[arg(long, env = "WEBHOOK_TOLERANCE", default_value = "5m", value_parser = duration_arg)]
    pub webhook_tolerance: Duration,
    /// The fallback poll while webhooks flow (they wake the controller at once).
    #[arg(long, env = "WEBHOOK_POLL_INTERVAL", default_value = "2m", value_parser = duration_arg)]
    pub webhook_poll_interval: Duration,
    /// The image of copy Jobs (the operator's own image; they run `mux-master-operator copy`).
    #[arg(long, env = "COPY_IMAGE", default_value = concat!("ghcr.io/mux-master-operator/mux-master-operator:", env!("CARGO_PKG_VERSION")))]
    pub copy_image: String,
    /// A copy Job's activeDeadlineSeconds.
    #[arg(long, env = "COPY_DEADLINE", default_value = "6h", value_parser = duration_arg)]
    pub copy_deadline: Duration,
    /// Jobs to try for one copy before giving up on transient failures.
    #[arg(long, env = "COPY_MAX_ATTEMPTS", default_value_t = 4)]
    pub copy_max_attempts: u32,
    /// How old a master must be after it became ready before a copy calls its length final
    /// (Mux's files have been seen to grow after `ready`); passed to each copy Job.
    #[arg(long, env = "COPY_MIN_AGE", default_value = "1m", value_parser = duration_arg)]
    pub copy_min_age: Duration,
    /// Without a verified webhook for this long, polling returns to its fast pace.
    #[arg(long, env = "WEBHOOK_STALE_AFTER", default_value = "30m", value_parser = duration_arg)]
    pub webhook_stale_after: Duration,
    /// Publish the download URL in `status.master.url` as well as in the URL Secret. `false`:
    /// the Secret only, for clusters where more people can read MasterExports than Secrets
    /// (the URL is a bearer credential until it expires).
    #[arg(long, env = "URL_IN_STATUS", default_value_t = true, action = clap::ArgAction::Set)]
    pub url_in_status: bool,
    /// Let `afterCopy.deleteAsset` delete assets from Mux (after a verified copy, its grace
    /// period and a fresh check of the archive). Off: such resources say so in a Stalled
    /// condition and nothing is deleted.
    #[arg(long, env = "ALLOW_ASSET_DELETION")]
    pub allow_asset_deletion: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Mux(#[from] mux::MuxError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid flags: {0}")]
    Flags(String),
    #[error("lost the leader lease; exiting so that a new election can take place")]
    LostLeadership,
    #[error(
        "--webhook-addr needs at least one signing secret (--webhook-secrets or MUX_WEBHOOK_SECRETS)"
    )]
    NoWebhookSecret,
}

/// Runs the operator until SIGTERM (or leadership is lost).
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    if args.poll_min > args.poll_max {
        return Err(RunError::Flags(format!(
            "--poll-min ({}) must not exceed --poll-max ({})",
            mux::duration::format(args.poll_min),
            mux::duration::format(args.poll_max)
        )));
    }
    if args.poll_min.is_zero() {
        return Err(RunError::Flags("--poll-min must be more than 0s".into()));
    }
    let client = Client::try_default().await?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let metrics = Metrics::default();
    let observer_metrics = metrics.clone();
    let mux = MuxClients::new(MuxConfig {
        base_url: args.mux_base_url.clone(),
        post_rate: Rate::new(args.mux_post_rate, args.mux_post_burst),
        other_rate: Rate::new(args.mux_other_rate, args.mux_other_burst),
        ..MuxConfig::default()
    })?
    .with_observer(Arc::new(move |record| observer_metrics.observe_mux(record)));

    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| RunError::Serve {
            addr: args.metrics_addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| RunError::Serve {
        addr: args.metrics_addr,
        source,
    })?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let http = server::router(metrics.clone(), health.clone());
    tokio::spawn(async move { axum::serve(listener, http).await });

    let mut leadership = None;
    if args.leader_elect {
        // A standby is healthy and ready: it is doing what it should.
        health.set_ready(true);
        let elector = Elector::new(
            client.clone(),
            LeaseConfig {
                namespace: args.lease_namespace.clone(),
                name: args.lease_name.clone(),
                identity: identity.clone(),
                lease_duration: args.lease_duration,
                retry_period: args.lease_duration / 3,
            },
        );
        leadership = Some(elector.lead().await);
    }

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "mux-master-operator".into(),
            instance: Some(identity),
        },
    );
    let settings = Settings {
        url_lifetime: args.url_lifetime,
        poll_min: args.poll_min,
        poll_max: args.poll_max,
        allow_asset_deletion: args.allow_asset_deletion,
        ..Settings::default()
    };
    // MasterExportSets: their own controller, sharing the Mux clients (so each token's limiter).
    let sets = Arc::new(
        crate::exportset::reconcile::SetContext::new(client.clone(), mux.clone())
            .with_gauges(metrics.sets.clone()),
    );
    let webhooks_on = args.webhook_addr.is_some();
    let snapshots = Arc::new(Snapshots::default());
    let wakeups = Arc::new(Wakeups::new(webhooks_on, args.webhook_stale_after));
    if let Some(addr) = args.webhook_addr {
        let secrets: Vec<String> = args
            .webhook_secrets
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if secrets.is_empty() {
            return Err(RunError::NoWebhookSecret);
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Serve { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| RunError::Serve { addr, source })?;
        tracing::info!(addr = %bound, path = webhooks::PATH, "serving Mux webhooks");
        let sink_wakeups = wakeups.clone();
        let sink_sets = sets.clone();
        let sink_snapshots = snapshots.clone();
        let sink: webhooks::EventSink = Arc::new(move |event, received| {
            sink_sets.on_webhook(&event.kind);
            // The asset it carries stands in for a GET; one that is not news (a duplicate, a
            // late delivery) wakes nobody.
            // Kept only for assets a resource is on: Mux sends the events of every asset of
            // the environment, and a snapshot nobody reads would stay for good.
            if let Some(snapshot) = snapshots::trusted(event)
                && sink_wakeups.watches(&snapshot.asset.id)
                && !sink_snapshots.offer(snapshot)
            {
                tracing::debug!(kind = %event.kind, object = %event.object.id, "webhook: nothing new");
                return;
            }
            let woken = sink_wakeups.on_event(event, received);
            tracing::debug!(kind = %event.kind, object = %event.object.id, woken, "webhook");
        });
        let config = webhooks::WebhookConfig {
            secrets,
            tolerance: args.webhook_tolerance,
            max_body: 1 << 20,
        };
        let router = webhooks::router(config, metrics.clone(), sink);
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let ctx = Arc::new(Context::with_snapshots(
        client.clone(),
        mux,
        recorder,
        metrics,
        wakeups.clone(),
        Options {
            settings,
            deletion_timeout: args.deletion_timeout,
            url_in_status: args.url_in_status,
            webhook_poll: args.webhook_poll_interval,
            copy: CopySettings {
                image: args.copy_image.clone(),
                deadline: args.copy_deadline,
                max_attempts: args.copy_max_attempts.max(1),
                min_age: args.copy_min_age,
                ..CopySettings::default()
            },
        },
        snapshots,
    ));

    tokio::spawn(sweep_expired_urls(ctx.clone()));
    let scopes: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        // One controller per namespace: the RBAC may grant nothing cluster-wide.
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let mut controllers = Vec::new();
    controllers.push(crate::exportset::run::run_with(sets, scopes.clone()).boxed());
    let mut stores = Vec::new();
    for scope in scopes {
        let api: Api<MasterExport> = match &scope {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        };
        // Our own watch, so the source index sees every event before the controller does.
        let (reader, writer) = reflector::store();
        let index = Arc::new(RwLock::new(SourceIndex::default()));
        let index_writer = index.clone();
        let freed = wakeups.clone();
        let objects = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(watches::trim)
            .map_ok(move |event| {
                index_writer
                    .write()
                    .expect("index lock")
                    .apply_event(&event);
                if let watcher::Event::Delete(gone) = &event {
                    // Its destination is free now: the next resource naming it may copy.
                    freed.on_deleted(gone);
                }
                event
            })
            .reflect(writer)
            .applied_objects()
            // Our own status writes must not wake us: only spec changes (and deletion, which
            // bumps the generation) and finalizer changes do. Timers and webhooks do the rest.
            .predicate_filter(
                predicates::generation.combine(predicates::finalizers),
                Default::default(),
            );
        let (queue, woken) = futures::channel::mpsc::channel(4096);
        wakeups.add(scope.clone(), index, queue);
        let controller = Controller::for_stream(objects, reader)
            .owns_stream(watches::copy_job_changes(client.clone(), scope.as_deref()))
            // A URL Secret deleted or edited by hand is restored at once.
            .owns_stream(watches::url_secret_changes(
                client.clone(),
                scope.as_deref(),
            ))
            .reconcile_on(woken)
            .with_config(ControllerConfig::default().concurrency(args.concurrency))
            .shutdown_on_signal();
        stores.push(controller.store());
        let ctx = ctx.clone();
        controllers.push(
            controller
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "controller event");
                    }
                })
                .boxed(),
        );
    }
    let ready_health = health.clone();
    tokio::spawn(async move {
        for store in stores {
            // The store's readiness is a oneshot that wakes only its last poller, and the
            // controller's runner polls it too: ask again until it has been memoised.
            while tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready())
                .await
                .is_err()
            {}
        }
        ready_health.set_ready(true);
        tracing::info!("caches synced; reconciling");
    });

    let all = futures::future::join_all(controllers);
    match leadership {
        None => {
            all.await;
            Ok(())
        }
        Some(mut leading) => {
            tokio::select! {
                _ = all => Ok(()),
                _ = leading.wait_for(|leads| !leads) => Err(RunError::LostLeadership),
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "mux-master-operator".into())
}
