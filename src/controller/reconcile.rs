//! The reconciler: the I/O around [`policy::decide`].
//!
//! Reads the credentials Secret and the asset (through the shared, rate-limited Mux
//! client), asks the policy what to do, records the intent in the status before each Mux
//! call (so a restart knows what may be in flight and when it started), makes the call,
//! and finally writes the URL Secret, the status and an Event when something changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, Summary};
use super::copy_job;
use super::copy_policy::{self, COPIED, CopyInput, CopySettings, JobOutcome};
use super::expiries::Expiries;
use super::policy::{self, LiveSource, Observation, Settings};
use super::wakeup::Wakeups;
use crate::metrics::Metrics;
use crate::resource::{
    DeletionPolicy, FINALIZER, LocalObjectRef, MasterExport, MasterExportSpec, MasterExportStatus,
    Operation, Phase,
};
use mux::types::{Asset, MasterAccess};
use mux::{Credentials, ErrorKind, MuxClient, MuxClients, MuxError};

pub const FIELD_MANAGER: &str = "mux-master-operator";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mux-master-operator");
/// Keys of the credentials Secret.
pub const TOKEN_ID_KEY: &str = "tokenId";
pub const TOKEN_SECRET_KEY: &str = "tokenSecret";
/// A URL is withdrawn this long before it expires, so that no reader ever finds it published
/// past its expiry (the withdrawal itself takes a write).
const EXPIRY_MARGIN: Duration = Duration::from_secs(1);

fn with_margin(now: Timestamp) -> Timestamp {
    now + jiff::SignedDuration::try_from(EXPIRY_MARGIN).expect("small")
}

const MANAGED_CONDITIONS: &[&str] = &[
    conditions::READY,
    conditions::RECONCILING,
    conditions::STALLED,
];

/// How the controller behaves, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    /// How long a deletion waits for Mux before giving up on revoking access.
    pub deletion_timeout: Duration,
    /// The fallback poll while webhooks flow.
    pub webhook_poll: Duration,
    /// How copy Jobs are made.
    pub copy: CopySettings,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub mux: MuxClients,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Webhook wake-ups, and whether webhooks flow (polls slow down when they do).
    pub wakeups: Arc<Wakeups>,
    pub settings: Settings,
    pub deletion_timeout: Duration,
    pub webhook_poll: Duration,
    pub copy: CopySettings,
    /// Consecutive failures per resource, for backoff; forgotten on success.
    failures: Mutex<HashMap<ObjectRef<MasterExport>, u32>>,
    /// When each published URL expires, for the sweeper.
    expiries: Mutex<Expiries>,
    expiry_changed: tokio::sync::Notify,
}

impl Context {
    pub fn new(
        client: Client,
        mux: MuxClients,
        recorder: Recorder,
        metrics: Metrics,
        wakeups: Arc<Wakeups>,
        options: Options,
    ) -> Self {
        Self {
            client,
            mux,
            recorder,
            metrics,
            wakeups,
            settings: options.settings,
            deletion_timeout: options.deletion_timeout,
            webhook_poll: options.webhook_poll,
            copy: options.copy,
            failures: Mutex::default(),
            expiries: Mutex::default(),
            expiry_changed: tokio::sync::Notify::new(),
        }
    }

    /// Tells the sweeper when `obj`'s published URL expires (and the metric).
    fn track_expiry(&self, obj: &MasterExport, expires_at: Option<Timestamp>) {
        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
        self.metrics.set_expiry(&key.0, &key.1, expires_at);
        self.expiries
            .lock()
            .expect("expiries lock")
            .set(key, expires_at);
        self.expiry_changed.notify_one();
    }

    fn slow_poll(&self) -> Option<Duration> {
        self.wakeups.healthy().then_some(self.webhook_poll)
    }

    /// The next backoff for `obj` after one more failure: 5 s doubling to 5 min, jittered.
    fn backoff(&self, obj: &MasterExport) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(ObjectRef::from(obj)).or_default();
        *n = n.saturating_add(1);
        let base = Duration::from_secs(5).saturating_mul(2u32.saturating_pow((*n - 1).min(10)));
        let capped = base.min(Duration::from_secs(300));
        capped.mul_f64(0.8 + 0.4 * rand::random::<f64>())
    }

    /// Drops what is kept about a resource that is going away, so memory follows the
    /// resources that exist.
    fn forget(&self, obj: &MasterExport) {
        self.succeeded(obj);
        self.wakeups.take_poke(&ObjectRef::from(obj));
    }

    fn succeeded(&self, obj: &MasterExport) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from(obj));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error(
        "Secret {0} not found: create it with the keys tokenId and tokenSecret (a Mux access token)"
    )]
    CredentialsMissing(String),
    #[error("Secret {secret} has no usable key {key}: it needs tokenId and tokenSecret")]
    CredentialsInvalid { secret: String, key: &'static str },
    #[error("Mux has no {what} {id} in the environment of this token")]
    SourceNotFound { what: &'static str, id: String },
    #[error("the resource has no namespace")]
    NoNamespace,
    #[error(
        "the published URL expired while the reconcile waited for Mux (its rate limit is saturated); it is withdrawn, and a fresh one follows"
    )]
    ExpiredWhileWaiting,
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// A condition reason, and whether a person must act (Stalled) or time will tell.
    pub fn reason(&self) -> (&'static str, bool) {
        match self {
            Error::Kube(_) => ("KubernetesApiError", false),
            Error::Mux(e) if e.kind() == ErrorKind::Credentials => ("MuxCredentialsRejected", true),
            Error::Mux(e) if e.kind() == ErrorKind::BadRequest => (e.reason(), true),
            Error::Mux(e) if e.kind() == ErrorKind::NotFound => ("NotFound", true),
            Error::Mux(e) => (e.reason(), false),
            Error::CredentialsMissing(_) => ("CredentialsSecretNotFound", true),
            Error::CredentialsInvalid { .. } => ("CredentialsSecretInvalid", true),
            Error::SourceNotFound { what: "asset", .. } => ("AssetNotFound", true),
            Error::SourceNotFound { .. } => ("LiveStreamNotFound", true),
            Error::ExpiredWhileWaiting => ("MuxRateLimited", false),
            Error::NoNamespace | Error::Finalizer(_) => ("InternalError", false),
        }
    }
}

/// The controller's entry point for one resource.
pub async fn reconcile(obj: Arc<MasterExport>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&crate::metrics::ResultLabels { result: label })
        .inc();
    result
}

/// What the controller does after a failed reconcile that could not even record itself.
pub fn error_policy(obj: Arc<MasterExport>, error: &Error, ctx: Arc<Context>) -> Action {
    let (reason, _) = error.reason();
    ctx.metrics
        .errors
        .get_or_create(&crate::metrics::ReasonLabels {
            reason: reason.into(),
        })
        .inc();
    tracing::warn!(name = %obj.name_any(), namespace = ?obj.namespace(), %error, "reconcile failed");
    Action::requeue(ctx.backoff(&obj))
}

async fn apply(obj: Arc<MasterExport>, ctx: &Context) -> Result<Action, Error> {
    let previous = obj.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    if obj.spec.suspend {
        return Ok(Action::await_change());
    }
    // A webhook about this resource's asset: ask Mux, whatever the status says.
    let poked = ctx.wakeups.take_poke(&ObjectRef::from(&*obj));
    if poked.is_none() && policy::can_skip_mux(&obj.spec, &previous, obj.meta().generation, now) {
        ensure_url_secret(&obj, ctx, &previous).await?;
        ctx.track_expiry(&obj, published_expiry(&previous));
        let refresh = previous
            .master
            .as_ref()
            .and_then(|m| m.refresh_at.as_ref())
            .map(|r| r.0);
        return Ok(match refresh {
            Some(at) => Action::requeue(policy::until(now, at).max(Duration::from_millis(100))),
            None => Action::await_change(),
        });
    }

    // What the URL Secret holds now (it is written before the status that records it).
    let mut in_secret = published_url(&previous);
    // A URL already past its expiry (the reconcile came late) goes before anything else.
    let mut previous = previous;
    if policy::drop_expired_url(&mut previous, with_margin(now)) {
        sync_url_secret(&obj, ctx, &previous, &mut in_secret).await?;
        write_status(&obj, ctx, &previous, &url_expired()).await?;
    }
    // The access wanted now: `none` once a verified copy exists, if afterCopy says so.
    let mut spec = obj.spec.clone();
    spec.access = policy::effective_access(&obj.spec, &previous);
    let converged = match converge(&obj, &spec, ctx, previous.clone(), &mut in_secret).await {
        Ok((status, summary, requeue)) => copy_step(&obj, ctx, status, summary, requeue).await,
        Err(error) => Err(error),
    };
    match converged {
        Ok((mut status, summary, requeue)) => {
            attach_secret_ref(&obj, &mut status);
            sync_url_secret(&obj, ctx, &status, &mut in_secret).await?;
            write_status(&obj, ctx, &status, &summary).await?;
            if let Some(arrived) = poked {
                ctx.metrics
                    .webhook_to_status_seconds
                    .observe(arrived.elapsed().as_secs_f64());
            }
            announce(&obj, ctx, &previous, &status, &summary).await;
            ctx.succeeded(&obj);
            Ok(requeue
                .map(Action::requeue)
                .unwrap_or_else(Action::await_change))
        }
        Err(error) => {
            // Record what went wrong where a person looks, then back off.
            let (reason, stalled) = error.reason();
            ctx.metrics
                .errors
                .get_or_create(&crate::metrics::ReasonLabels {
                    reason: reason.into(),
                })
                .inc();
            let message = error.to_string();
            let summary = if stalled {
                Summary::stalled(reason, message)
            } else {
                Summary::progressing(reason, format!("{message}; retrying"))
            };
            let mut status = obj.status.clone().unwrap_or_default();
            status.observed_generation = obj.meta().generation;
            if stalled {
                status.phase = Some(Phase::Failed);
            }
            policy::drop_expired_url(&mut status, with_margin(Timestamp::now()));
            attach_secret_ref(&obj, &mut status);
            if let Error::Kube(_) = error {
                return Err(error);
            }
            sync_url_secret(&obj, ctx, &status, &mut in_secret).await?;
            write_status(&obj, ctx, &status, &summary).await?;
            announce(&obj, ctx, &previous, &status, &summary).await;
            let mut wait = ctx.backoff(&obj);
            if let Some(expiry) = published_expiry(&status) {
                // Come back in time to withdraw a URL that could not be refreshed.
                wait = wait
                    .min(policy::until(Timestamp::now(), expiry).max(Duration::from_millis(100)));
            }
            if let Error::Mux(MuxError::RateLimited {
                retry_after: Some(after),
                ..
            }) = &error
            {
                wait = wait.max(*after);
            }
            Ok(Action::requeue(wait))
        }
    }
}

/// Reads the world and acts until the policy asks for no more calls.
async fn converge(
    obj: &MasterExport,
    spec: &MasterExportSpec,
    ctx: &Context,
    mut status: MasterExportStatus,
    in_secret: &mut Option<String>,
) -> Result<(MasterExportStatus, Summary, Option<Duration>), Error> {
    let mux = mux_client(obj, ctx).await?;
    let asset_id = match source_asset(obj, &mux, &status).await? {
        LiveSource::Asset(id) => id,
        LiveSource::Waiting(message) => {
            status.observed_generation = obj.meta().generation;
            status.phase = Some(Phase::Pending);
            let wait = ctx.slow_poll().unwrap_or(ctx.settings.poll_max);
            return Ok((
                status,
                Summary::progressing("WaitingForRecording", message),
                Some(wait),
            ));
        }
    };
    let mut asset = before_expiry(&status, get_asset(&mux, &asset_id)).await?;
    let spread_seed = spread_seed(obj);
    // Each call changes what Mux shows; a handful of steps covers the longest path
    // (renew → same URL → none → temporary).
    for _ in 0..6 {
        let observation = Observation {
            now: Timestamp::now(),
            generation: obj.meta().generation,
            spread_seed,
            spec,
            status: &status,
            asset: &asset,
            slow_poll: ctx.slow_poll(),
        };
        let decision = policy::decide(&observation, &ctx.settings);
        let Some((operation, access)) = decision.call else {
            return Ok((decision.status, decision.summary, decision.requeue_after));
        };
        let mut intent = decision.status;
        intent.pending = Some(policy::pending(operation, Timestamp::now()));
        attach_secret_ref(obj, &mut intent);
        sync_url_secret(obj, ctx, &intent, in_secret).await?;
        write_status(obj, ctx, &intent, &decision.summary).await?;
        tracing::info!(name = %obj.name_any(), asset = %asset_id, ?operation, access = access.as_str(), "changing master access");
        asset = before_expiry(&intent, put_access(&mux, &asset_id, access)).await?;
        if operation == Operation::Revoke {
            publish(
                obj,
                ctx,
                EventType::Normal,
                "AccessRevoked",
                format!("master access to asset {asset_id} turned off"),
            )
            .await;
        }
        status = intent;
    }
    Err(Error::Mux(MuxError::Unavailable {
        message: "Mux's answers did not settle after several changes of master access".into(),
        attempts: 6,
    }))
}

/// The archive copy: observe the current Job, let the copy policy decide, start a Job when
/// it says so, and fold the outcome into the phase, the summary and the `Copied` condition.
async fn copy_step(
    obj: &MasterExport,
    ctx: &Context,
    mut status: MasterExportStatus,
    mut summary: Summary,
    mut requeue: Option<Duration>,
) -> Result<(MasterExportStatus, Summary, Option<Duration>), Error> {
    let has_condition = status.conditions.iter().any(|c| c.type_ == COPIED);
    if obj.spec.destination.is_none() && status.copy.is_none() && !has_condition {
        return Ok((status, summary, requeue));
    }
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let now = Timestamp::now();
    let running_job = status
        .copy
        .as_ref()
        .filter(|c| c.phase == "Running")
        .and_then(|c| c.job.clone());
    let job = match &running_job {
        Some(name) => copy_job::observe(&ctx.client, &namespace, name).await?,
        None => JobOutcome::Missing,
    };
    let master = status.master.clone().unwrap_or_default();
    let decision = copy_policy::decide_copy(&CopyInput {
        name: &obj.name_any(),
        generation: obj.meta().generation.unwrap_or(0),
        spec: &obj.spec,
        copy: status.copy.as_ref(),
        url_requested_at: master.requested_at.as_ref().map(|t| t.0),
        url_published: master.url.is_some(),
        job,
        now,
        max_attempts: ctx.copy.max_attempts,
    });
    let wanted: Vec<conditions::Wanted> = decision.condition.clone().into_iter().collect();
    status.conditions = conditions::merge(
        &status.conditions,
        &wanted,
        &[COPIED],
        obj.meta().generation,
        &Time(now),
    );
    if obj.spec.destination.is_none() {
        status.copy = None;
        return Ok((status, summary, requeue));
    }
    if let Some(job_name) = &decision.create_job {
        let job = copy_policy::build_job(obj, job_name, &ctx.copy);
        copy_job::create_exclusive(&ctx.client, &namespace, &obj.name_any(), &job).await?;
        publish(
            obj,
            ctx,
            EventType::Normal,
            "CopyStarted",
            format!("copy Job {job_name} started"),
        )
        .await;
    }
    if decision.refresh_url
        && let Some(master) = status.master.as_mut()
    {
        master.refresh_at = Some(Time(now));
        requeue = Some(Duration::from_millis(100));
    }
    if let Some(copy) = decision.copy.clone() {
        status.copy = Some(copy);
    }
    let condition = decision.condition.clone();
    let message = condition
        .as_ref()
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if let Some((reason, why)) = decision.stalled {
        status.phase = Some(Phase::Failed);
        summary = Summary::stalled(&reason, why);
    } else if decision.done {
        status.phase = Some(Phase::Copied);
        let revoke = obj
            .spec
            .after_copy
            .as_ref()
            .is_some_and(|a| a.revoke_access);
        if revoke && master.url.is_some() {
            // The next reconcile revokes, now that the copy is verified.
            summary = Summary::progressing(
                "RevokingAfterCopy",
                format!("{message}; turning master access off"),
            );
            requeue = Some(Duration::from_millis(100));
        } else if !summary.stalled {
            let tail = if revoke {
                "; master access is off, as afterCopy asks"
            } else {
                ""
            };
            summary = Summary::ready("Copied", format!("{message}{tail}"));
        }
    } else if status.copy.as_ref().is_some_and(|c| c.phase == "Running") {
        status.phase = Some(Phase::Copying);
        summary = Summary::progressing("Copying", message);
        // The Job's own events wake us; this is the fallback.
        requeue = Some(requeue.map_or(Duration::from_secs(30), |r| r.min(Duration::from_secs(30))));
    } else if let Some(condition) = condition
        && summary.ready
    {
        // The URL is there but the archive is not: not Ready yet.
        summary = Summary::progressing(&condition.reason, condition.message);
    }
    Ok((status, summary, requeue))
}

/// Runs a Mux call, but gives up when the URL the status publishes expires first (a saturated
/// rate limit can queue a call for long): the error path then withdraws the URL, so an
/// expired URL is never left published while we wait.
async fn before_expiry<T>(
    status: &MasterExportStatus,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(expiry) = published_expiry(status) else {
        return call.await;
    };
    let left = policy::until(with_margin(Timestamp::now()), expiry);
    tokio::time::timeout(left, call)
        .await
        .unwrap_or(Err(Error::ExpiredWhileWaiting))
}

async fn get_asset(mux: &MuxClient, id: &str) -> Result<Asset, Error> {
    mux.get_asset(id).await.map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::SourceNotFound {
            what: "asset",
            id: id.to_string(),
        },
        _ => Error::Mux(e),
    })
}

async fn put_access(mux: &MuxClient, id: &str, access: MasterAccess) -> Result<Asset, Error> {
    mux.update_master_access(id, access)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::SourceNotFound {
                what: "asset",
                id: id.to_string(),
            },
            _ => Error::Mux(e),
        })
}

/// The asset to export: the spec's, or the live stream's recording.
async fn source_asset(
    obj: &MasterExport,
    mux: &MuxClient,
    status: &MasterExportStatus,
) -> Result<LiveSource, Error> {
    if let Some(asset_id) = &obj.spec.source.asset_id {
        return Ok(LiveSource::Asset(asset_id.clone()));
    }
    let stream_id = obj.spec.source.live_stream_id.clone().unwrap_or_default();
    let chosen = status.asset.as_ref().map(|a| a.id.as_str());
    if let Some(chosen) = chosen {
        return Ok(LiveSource::Asset(chosen.to_string()));
    }
    let stream = mux
        .get_live_stream(&stream_id)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::SourceNotFound {
                what: "live stream",
                id: stream_id.clone(),
            },
            _ => Error::Mux(e),
        })?;
    Ok(policy::resolve_live_stream(&stream, None))
}

/// The Mux client for the resource's credentials Secret.
async fn mux_client(obj: &MasterExport, ctx: &Context) -> Result<MuxClient, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = &obj.spec.credentials_secret_ref.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::CredentialsMissing(format!("{namespace}/{name}")))?;
    let read = |key: &'static str| -> Result<String, Error> {
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok());
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key).cloned());
        from_data
            .or(from_string)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or(Error::CredentialsInvalid {
                secret: format!("{namespace}/{name}"),
                key,
            })
    };
    Ok(ctx.mux.client(Credentials::new(
        read(TOKEN_ID_KEY)?,
        read(TOKEN_SECRET_KEY)?,
    )))
}

fn spread_seed(obj: &MasterExport) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.uid()
        .unwrap_or_else(|| obj.name_any())
        .hash(&mut hasher);
    hasher.finish()
}

fn attach_secret_ref(obj: &MasterExport, status: &mut MasterExportStatus) {
    if let Some(master) = status.master.as_mut() {
        master.url_secret_ref = Some(LocalObjectRef {
            name: obj.url_secret_name(),
        });
    }
}

fn published_expiry(status: &MasterExportStatus) -> Option<Timestamp> {
    status
        .master
        .as_ref()
        .filter(|m| m.url.is_some())
        .and_then(|m| m.expires_at.as_ref())
        .map(|e| e.0)
}

/// Writes the whole status by server-side apply: fields the status no longer has (a
/// settled `pending`, a withdrawn `url`) are removed, which a merge patch would not do.
async fn write_status(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
    summary: &Summary,
) -> Result<(), Error> {
    apply_status(obj, ctx, status, summary, None).await
}

/// The status write itself. With `precondition`, the write applies only if the resource is
/// still at that resourceVersion (a 409 otherwise).
async fn apply_status(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
    summary: &Summary,
    precondition: Option<String>,
) -> Result<(), Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = status.clone();
    status.conditions = conditions::merge(
        &status.conditions,
        &summary.wanted(),
        MANAGED_CONDITIONS,
        obj.meta().generation,
        &Time(Timestamp::now()),
    );
    let mut patch = json!({
        "apiVersion": "masterexport.io/v1alpha1",
        "kind": "MasterExport",
        "status": status,
    });
    if let Some(version) = precondition {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// What the status says once an expired URL is withdrawn.
fn url_expired() -> Summary {
    Summary::progressing(
        "UrlExpired",
        "the URL expired before it could be refreshed; fetching a fresh one",
    )
}

fn published_url(status: &MasterExportStatus) -> Option<String> {
    status.master.as_ref().and_then(|m| m.url.clone())
}

/// Writes the URL Secret when the URL to publish differs from what it holds: most
/// reconciles change only the status, and every write costs the apiserver.
async fn sync_url_secret(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
    in_secret: &mut Option<String>,
) -> Result<(), Error> {
    let wanted = published_url(status);
    if wanted != *in_secret {
        write_url_secret(obj, ctx, status).await?;
        *in_secret = wanted;
    }
    Ok(())
}

/// The URL Secret as the status says: `url` and `expiresAt` while a URL is published,
/// no keys otherwise. Owned by the resource, so it goes when the resource goes.
async fn write_url_secret(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
) -> Result<(), Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = obj.url_secret_name();
    let mut data = BTreeMap::new();
    if let Some(master) = status.master.as_ref()
        && let Some(url) = &master.url
    {
        data.insert("url".to_string(), encode(url));
        if let Some(expires) = &master.expires_at {
            data.insert("expiresAt".to_string(), encode(&expires.0.to_string()));
        }
    }
    let owner = OwnerReference {
        api_version: "masterexport.io/v1alpha1".into(),
        kind: "MasterExport".into(),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { MANAGED_BY.0: MANAGED_BY.1, "masterexport.io/name": obj.name_any() },
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        // `data`, not `stringData`: server-side apply removes a key we stop applying
        // only from the field we own, and the apiserver moves stringData into data.
        "data": data,
    });
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

fn encode(value: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// On the fast path, restore the URL Secret if someone deleted or changed it.
async fn ensure_url_secret(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
) -> Result<(), Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let wanted = status.master.as_ref().and_then(|m| m.url.clone());
    let current = api.get_opt(&obj.url_secret_name()).await?.and_then(|s| {
        s.data.and_then(|d| {
            d.get("url")
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        })
    });
    if current != wanted {
        write_url_secret(obj, ctx, status).await?;
    }
    Ok(())
}

/// Events and metrics for what changed in this reconcile.
async fn announce(
    obj: &MasterExport,
    ctx: &Context,
    previous: &MasterExportStatus,
    status: &MasterExportStatus,
    summary: &Summary,
) {
    ctx.track_expiry(obj, published_expiry(status));
    let old_refreshes = previous.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    let new_refreshes = status.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    if new_refreshes > old_refreshes {
        ctx.metrics
            .refreshes
            .inc_by(u64::from(new_refreshes - old_refreshes));
        publish(
            obj,
            ctx,
            EventType::Normal,
            "UrlRefreshed",
            "a fresh master URL replaced the previous one".into(),
        )
        .await;
    }
    let old_reason = previous
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map(|c| c.reason.as_str());
    if previous.phase != status.phase || old_reason != Some(summary.reason.as_str()) {
        let kind = if summary.stalled {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(obj, ctx, kind, &summary.reason, summary.message.clone()).await;
    }
}

async fn publish(obj: &MasterExport, ctx: &Context, type_: EventType, reason: &str, note: String) {
    let event = KubeEvent {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}

/// Deletion: turn access off (policy `Revoke`) or leave it (`Orphan`). A Mux that is down
/// delays the deletion, with a condition saying so, for at most `deletion_timeout`.
async fn cleanup(obj: Arc<MasterExport>, ctx: &Context) -> Result<Action, Error> {
    ctx.track_expiry(&obj, None);
    ctx.forget(&obj);
    if obj.spec.deletion_policy == DeletionPolicy::Orphan {
        return Ok(Action::await_change());
    }
    let asset_id = obj
        .status
        .as_ref()
        .and_then(|s| s.asset.as_ref())
        .map(|a| a.id.clone())
        .or_else(|| obj.spec.source.asset_id.clone());
    let Some(asset_id) = asset_id else {
        return Ok(Action::await_change());
    };
    let outcome = match mux_client(&obj, ctx).await {
        Ok(mux) => mux
            .update_master_access(&asset_id, MasterAccess::None)
            .await
            .map(|_| ())
            .map_err(Error::Mux),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            publish(
                &obj,
                ctx,
                EventType::Normal,
                "AccessRevoked",
                format!("master access to asset {asset_id} turned off on deletion"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(Error::Mux(e)) if e.kind() == ErrorKind::NotFound => Ok(Action::await_change()),
        Err(error) => {
            let deleting_since = obj
                .meta()
                .deletion_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now);
            let waited = policy::until(deleting_since, Timestamp::now());
            let (_, stalled) = error.reason();
            if stalled || waited >= ctx.deletion_timeout {
                publish(
                    &obj,
                    ctx,
                    EventType::Warning,
                    "RevokeAbandoned",
                    format!("could not turn off master access to asset {asset_id} ({error}); deleting anyway: the URL expires by itself within 24 hours"),
                )
                .await;
                return Ok(Action::await_change());
            }
            let mut status = obj.status.clone().unwrap_or_default();
            policy::drop_expired_url(&mut status, with_margin(Timestamp::now()));
            let summary = Summary::progressing(
                "RevokePending",
                format!(
                    "deletion waits to turn off master access ({error}); it gives up after {}. To delete now without revoking, set spec.deletionPolicy to Orphan",
                    mux::duration::format(ctx.deletion_timeout)
                ),
            );
            write_status(&obj, ctx, &status, &summary).await?;
            Err(error)
        }
    }
}

/// Withdraws published URLs the moment they expire, whatever the reconcile workers are doing
/// (under a saturated Mux rate limit they can all be waiting for a token). One task, one
/// timer: the soonest expiry.
pub async fn sweep_expired_urls(ctx: Arc<Context>) {
    loop {
        let next = ctx.expiries.lock().expect("expiries lock").next();
        let changed = ctx.expiry_changed.notified();
        match next {
            Some(at) => {
                let wait = policy::until(with_margin(Timestamp::now()), at);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = changed => continue,
                }
            }
            None => {
                changed.await;
                continue;
            }
        }
        let due = ctx
            .expiries
            .lock()
            .expect("expiries lock")
            .take_due(with_margin(Timestamp::now()));
        for (namespace, name) in due {
            if let Err(error) = withdraw_expired(&ctx, &namespace, &name).await {
                tracing::warn!(%namespace, %name, %error, "could not withdraw an expired URL");
            }
        }
    }
}

/// Removes an expired URL from the status (only if the status has not changed since it was
/// read: a reconcile may just have published a fresh one) and from the URL Secret.
async fn withdraw_expired(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let mut status = obj.status.clone().unwrap_or_default();
    let mut in_secret = published_url(&status);
    if !policy::drop_expired_url(&mut status, with_margin(Timestamp::now())) {
        return Ok(());
    }
    // If a reconcile wrote meanwhile (it may have published a fresh URL), this changes nothing.
    match apply_status(&obj, ctx, &status, &url_expired(), obj.resource_version()).await {
        Ok(()) => {}
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_url_secret(&obj, ctx, &status, &mut in_secret).await?;
    ctx.metrics.set_expiry(namespace, name, None);
    tracing::info!(%namespace, %name, "withdrew an expired URL");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_reason_and_whether_a_person_must_act() {
        let cases: Vec<(Error, &str, bool)> = vec![
            (
                Error::CredentialsMissing("media/mux".into()),
                "CredentialsSecretNotFound",
                true,
            ),
            (
                Error::CredentialsInvalid {
                    secret: "media/mux".into(),
                    key: TOKEN_ID_KEY,
                },
                "CredentialsSecretInvalid",
                true,
            ),
            (
                Error::Mux(MuxError::Credentials {
                    status: 401,
                    message: "no".into(),
                    request_id: "r".into(),
                }),
                "MuxCredentialsRejected",
                true,
            ),
            (
                Error::SourceNotFound {
                    what: "asset",
                    id: "a".into(),
                },
                "AssetNotFound",
                true,
            ),
            (
                Error::SourceNotFound {
                    what: "live stream",
                    id: "l".into(),
                },
                "LiveStreamNotFound",
                true,
            ),
            (
                Error::Mux(MuxError::BadRequest {
                    status: 400,
                    kind: "invalid_parameters".into(),
                    message: "m".into(),
                    request_id: "r".into(),
                }),
                "MuxRejectedRequest",
                true,
            ),
            (
                Error::Mux(MuxError::RateLimited {
                    attempts: 21,
                    retry_after: None,
                }),
                "MuxRateLimited",
                false,
            ),
            (
                Error::Mux(MuxError::Unavailable {
                    message: "503".into(),
                    attempts: 5,
                }),
                "MuxUnavailable",
                false,
            ),
            (
                Error::Mux(MuxError::Decode {
                    message: "eof".into(),
                    request_id: "r".into(),
                }),
                "MuxBadResponse",
                false,
            ),
        ];
        for (error, reason, stalled) in cases {
            assert_eq!(error.reason(), (reason, stalled), "{error}");
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let missing = Error::CredentialsMissing("media/mux".into()).to_string();
        assert!(
            missing.contains("tokenId") && missing.contains("media/mux"),
            "{missing}"
        );
    }
}
