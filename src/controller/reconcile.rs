//! The reconciler: apply, converge, cleanup. Decisions are the policy's (`policy`,
//! `copy_policy`); publishing is the publisher's (the URL Secret, then the status); what is
//! left here is the order of things.
//!
//! `apply` reads the credentials Secret and the asset (through the shared, rate-limited Mux
//! client), asks the policy what to do, records the intent in the status before each Mux call
//! (so a restart knows what may be in flight and when it started), makes the call, and
//! finally publishes the result and an Event when something changed.

use std::sync::Arc;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::conditions::Summary;
use super::context::Context;
use super::copy_job;
use super::copy_policy::{self, CopyInput, JobOutcome};
use super::copy_progress;
use super::deletion;
use super::error::Error;
use super::events::{self, Note};
use super::mux_calls::{
    before_expiry, change_access, current_asset, first_request, mux_client, mux_client_to_clean_up,
    source_asset,
};
use super::policy::{self, Failure, LiveSource, Observation, Step, with_margin};
use super::publisher::{self, Publisher, published_expiry, published_url};
use crate::resource::{
    DeletionPolicy, FINALIZER, MasterExport, MasterExportSpec, MasterExportStatus, Operation,
};
use mux::types::MasterAccess;

/// The controller's entry point for one resource.
pub async fn reconcile(obj: Arc<MasterExport>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = obj.name_any();
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
    // Which reconcile chose which next look: what a missed refresh is traced with.
    match &result {
        Ok(action) => tracing::debug!(%namespace, name = %name, ?action, "reconciled"),
        Err(error) => tracing::debug!(%namespace, name = %name, %error, "reconcile failed"),
    }
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&crate::metrics::ResultLabels { result: label })
        .inc();
    result
}

/// What the controller does after a failed reconcile that could not even record itself.
pub fn error_policy(obj: Arc<MasterExport>, error: &Error, ctx: Arc<Context>) -> Action {
    count_error(&ctx, error);
    distrust_refused_token(&obj, &ctx, error);
    tracing::warn!(name = %obj.name_any(), namespace = ?obj.namespace(), %error, "reconcile failed");
    Action::requeue(ctx.backoff(&obj))
}

/// Mux refused the token: the next call reads the credentials Secret again (it may have
/// been rotated since it was read).
fn distrust_refused_token(obj: &MasterExport, ctx: &Context, error: &Error) {
    if let Error::Mux(mux::MuxError::Credentials { .. }) = error {
        let namespace = obj.namespace().unwrap_or_default();
        ctx.tokens
            .distrust(&namespace, &obj.spec.credentials_secret_ref.name);
    }
}

fn count_error(ctx: &Context, error: &Error) {
    ctx.metrics
        .errors
        .get_or_create(&crate::metrics::ReasonLabels {
            reason: error.reason().0.into(),
        })
        .inc();
}

async fn apply(obj: Arc<MasterExport>, ctx: &Context) -> Result<Action, Error> {
    let previous = obj.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    if obj.spec.suspend {
        return Ok(Action::await_change());
    }
    // Deleted from Mux after its archive: nothing more to ask Mux.
    if let Some(action) = deletion::after_deleted(&obj, ctx, &previous).await? {
        return Ok(action);
    }
    let mut publisher = Publisher::new(&obj, ctx, &previous);
    let previous = publisher.with_stored_url(previous).await?;
    // A webhook about this resource's asset: ask Mux, whatever the status says.
    let poked = ctx.wakeups.take_poke(&ObjectRef::from(&*obj));
    // A copy running with a fresh URL: only its progress to read (no Mux call).
    if poked.is_none()
        && copy_progress::progress_only(&obj.spec, &previous, obj.meta().generation, now)
        && let Some(action) = copy_progress::refresh(&obj, ctx, &mut publisher, &previous).await?
    {
        return Ok(action);
    }
    if poked.is_none()
        && !deletion::involved(&obj, &previous)
        && policy::can_skip_mux(&obj.spec, &previous, obj.meta().generation, now)
    {
        publisher.restore_secret(&previous).await?;
        track_expiry(&obj, ctx, &previous);
        ctx.record_grant(&previous);
        return Ok(policy::skipped_requeue(&previous, now)
            .map(Action::requeue)
            .unwrap_or_else(Action::await_change));
    }
    // A refresh due while webhook wake-ups (refreshes finishing) wait for a worker: they first.
    if poked.is_none()
        && !deletion::involved(&obj, &previous)
        && let Some(wait) = policy::yielding::step_aside(
            &obj.spec,
            &previous,
            obj.meta().generation,
            now,
            policy::spread_seed(&obj.uid().unwrap_or_else(|| obj.name_any())),
            ctx.wakeups.waiting(std::time::Instant::now()),
        )
    {
        return Ok(Action::requeue(wait));
    }
    // A master preparing for our request, woken before its first look is due: no GET yet.
    let first_look = previous
        .asset
        .as_ref()
        .filter(|_| previous.phase == Some(crate::resource::Phase::Preparing))
        .and_then(|a| ctx.first_look(&a.id, now));
    if poked.is_none()
        && !deletion::involved(&obj, &previous)
        && let Some(wait) = policy::preparation::wait_before_looking(
            &obj.spec,
            &previous,
            obj.meta().generation,
            now,
            first_look,
        )
    {
        return Ok(Action::requeue(wait));
    }

    // A URL already past its expiry (the reconcile came late) goes before anything else.
    let mut recorded = previous.clone();
    if policy::drop_expired_url(&mut recorded, with_margin(now)) {
        publisher
            .publish(&mut recorded, &policy::url_expired())
            .await?;
    }
    // The access wanted now: `none` once a verified copy exists, if afterCopy says so.
    let mut spec = obj.spec.clone();
    spec.access = policy::effective_access(&obj.spec, &recorded);
    let converged = async {
        let (step, changed) = converge(&obj, &spec, ctx, recorded, &mut publisher).await?;
        let step = copy_step(&obj, ctx, step, &publisher).await?;
        let mut step = deletion::step(&obj, ctx, &mut publisher, step).await?;
        publisher.publish(&mut step.status, &step.summary).await?;
        Ok::<_, Error>((step, changed))
    }
    .await;
    match converged {
        Ok((step, changed_access)) => {
            ctx.record_grant(&step.status);
            if changed_access && let Some(asset) = step.status.asset.as_ref() {
                // What Mux shows for the asset changed: the others on it look again.
                ctx.wakeups.wake_others(&asset.id, &ObjectRef::from(&*obj));
            }
            if let Some(arrived) = poked {
                ctx.metrics
                    .webhook_to_status_seconds
                    .observe(arrived.elapsed().as_secs_f64());
            }
            events::announce(&obj, ctx, &previous, &step.status, &step.summary).await;
            ctx.succeeded(&obj);
            Ok(step
                .requeue_after
                .map(Action::requeue)
                .unwrap_or_else(Action::await_change))
        }
        Err(error) => {
            // Record what went wrong where a person looks, then back off.
            count_error(ctx, &error);
            distrust_refused_token(&obj, ctx, &error);
            let (reason, stalled) = error.reason();
            let failure = Failure {
                reason,
                stalled,
                message: error.condition_message(),
            };
            // Over the status last recorded, not the one read at the start: that one may
            // lack the intent written since, or publish a URL withdrawn since.
            let recorded = publisher.recorded().clone();
            let (mut status, summary) = policy::failed_status(
                &recorded,
                obj.meta().generation,
                &failure,
                with_margin(Timestamp::now()),
            );
            // A transient apiserver error: the status write would likely fail too; back off.
            // A refused write (invalid, forbidden) is recorded where a person looks.
            if matches!(error, Error::Kube(_)) && !stalled {
                return Err(error);
            }
            publisher.publish(&mut status, &summary).await?;
            events::announce(&obj, ctx, &previous, &status, &summary).await;
            let wait = policy::retry_after_failure(
                ctx.backoff(&obj),
                published_expiry(&status),
                error.retry_after(),
                Timestamp::now(),
            );
            Ok(Action::requeue(wait))
        }
    }
}

/// Reads the world and acts until the policy asks for no more calls; says whether it
/// changed master access at Mux.
async fn converge(
    obj: &MasterExport,
    spec: &MasterExportSpec,
    ctx: &Context,
    mut status: MasterExportStatus,
    publisher: &mut Publisher<'_>,
) -> Result<(Step, bool), Error> {
    publisher.ensure_secret_is_ours().await?;
    let mux = mux_client(obj, ctx).await?;
    let asset_id = match source_asset(obj, &mux, &status).await? {
        LiveSource::Asset(id) => id,
        LiveSource::Waiting(message) => {
            let wait = ctx.slow_poll().unwrap_or(ctx.settings.poll_max);
            let step = policy::waiting_for_recording(status, obj.meta().generation, message, wait);
            return Ok((step, false));
        }
    };
    let known_grant = ctx.grant_for(&asset_id);
    let first = first_request(obj, spec, ctx, &mux, &asset_id, &status, publisher).await?;
    let (mut asset, mut changed) = match first {
        Some((answer, answered)) => {
            status = answered;
            (answer, true)
        }
        None => {
            let read = current_asset(ctx, &mux, &asset_id, &status);
            (before_expiry(&status, read).await?, false)
        }
    };
    let spread_seed = policy::spread_seed(&obj.uid().unwrap_or_else(|| obj.name_any()));
    // The asset's access is decided over every resource on it.
    let others_wanting = ctx.others_wanting(&asset_id, obj);
    // Each call changes what Mux shows; a handful of steps covers the longest path
    // (renew → same URL → none → temporary).
    // Whether this reconcile recorded the first half of a cycle (its intent covers both).
    let mut cycle_recorded = false;
    for _ in 0..6 {
        let observation = Observation {
            now: Timestamp::now(),
            generation: obj.meta().generation,
            spread_seed,
            spec,
            status: &status,
            asset: &asset,
            slow_poll: ctx.slow_poll(),
            others_wanting: &others_wanting,
            known_grant: known_grant.as_ref(),
            first_look: ctx.first_look(&asset_id, Timestamp::now()),
        };
        let decision = policy::decide(&observation, &ctx.settings);
        let Some((operation, access)) = decision.call else {
            return Ok((decision.into(), changed));
        };
        // The intent first: a restart then knows what may be in flight, and since when.
        let mut intent = decision.status;
        if policy::records_intent(operation, access, cycle_recorded) {
            intent.pending = Some(policy::pending(operation, Timestamp::now()));
            publisher.publish(&mut intent, &decision.summary).await?;
            cycle_recorded = operation == Operation::Cycle;
        }
        if operation == Operation::Cycle && access == MasterAccess::None {
            // The asset's URL is about to die for every resource publishing it.
            withdraw_shared_url(obj, ctx, &asset_id, &status).await?;
        }
        tracing::info!(name = %obj.name_any(), asset = %asset_id, ?operation, access = access.as_str(), "changing master access");
        asset = before_expiry(&intent, change_access(ctx, &mux, &asset_id, access)).await?;
        changed = true;
        if operation == Operation::Revoke {
            let message = format!("master access to asset {asset_id} turned off");
            events::publish(obj, ctx, Note::normal("AccessRevoked", message)).await;
        }
        status = intent;
    }
    Err(Error::Mux(mux::MuxError::Unavailable {
        message: "Mux's answers did not settle after several changes of master access".into(),
        attempts: 6,
    }))
}

/// Before turning access off to renew it, withdraws the URL from the other resources that
/// publish the same grant (their status first, only if unchanged since read, then their
/// Secret): none keeps publishing a URL that is about to stop working. They are woken once
/// the fresh URL is recorded, and adopt it.
async fn withdraw_shared_url(
    obj: &MasterExport,
    ctx: &Context,
    asset_id: &str,
    status: &MasterExportStatus,
) -> Result<(), Error> {
    let Some(url) = published_url(status) else {
        return Ok(());
    };
    let grant = mux::types::MasterUrl::new(&url);
    let me = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    for peer in ctx.wakeups.others_on(asset_id, &ObjectRef::from(obj)) {
        let api: Api<MasterExport> = Api::namespaced(
            ctx.client.clone(),
            peer.namespace.as_deref().unwrap_or_default(),
        );
        let Some(other) = api.get_opt(&peer.name).await? else {
            continue;
        };
        let read = other.status.clone().unwrap_or_default();
        let mut withdrawn = Publisher::new(&other, ctx, &read)
            .with_stored_url(read)
            .await?;
        let Some(master) = withdrawn.master.as_mut() else {
            continue;
        };
        if !master
            .url
            .as_deref()
            .is_some_and(|u| policy::same_grant(u, &grant))
        {
            continue;
        }
        master.url = None;
        master.status = crate::resource::MasterStage::Preparing;
        withdrawn.phase = Some(crate::resource::Phase::Preparing);
        let summary = Summary::progressing(
            "RenewingAccess",
            format!(
                "MasterExport {me} renews the URL this asset's MasterExports share; the fresh one follows"
            ),
        );
        publisher::withdraw_if_unchanged(&other, ctx, &withdrawn, &summary).await?;
    }
    Ok(())
}

/// The archive copy: observe the current Job, let the copy policy decide, start the Job it
/// asks for, and fold the decision into the step.
async fn copy_step(
    obj: &MasterExport,
    ctx: &Context,
    step: Step,
    publisher: &Publisher<'_>,
) -> Result<Step, Error> {
    if !copy_policy::has_copy_work(&obj.spec, &step.status) {
        return Ok(step);
    }
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let now = Timestamp::now();
    let uid = obj.uid().unwrap_or_default();
    let job = match copy_policy::job_to_observe(&step.status) {
        Some(name) => copy_job::observe(&ctx.client, &namespace, name, &uid).await?,
        None => JobOutcome::Missing,
    };
    let master = step.status.master.clone().unwrap_or_default();
    let me = ObjectRef::from(obj);
    let taken_by = obj.spec.destination.as_ref().and_then(|d| {
        let key = copy_policy::object_key(&namespace, d);
        ctx.wakeups
            .destination_taken_by(&key, &me)
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
    });
    let decision = copy_policy::decide_copy(&CopyInput {
        name: &obj.name_any(),
        uid: &uid,
        taken_by: taken_by.as_deref(),
        generation: obj.meta().generation.unwrap_or(0),
        spec: &obj.spec,
        copy: step.status.copy.as_ref(),
        url_requested_at: master.requested_at.as_ref().map(|t| t.0),
        url_published: master.url.is_some(),
        url_in_secret: master
            .url
            .as_deref()
            .is_some_and(|url| publisher.secret_holds(url)),
        job,
        now,
        max_attempts: ctx.copy.max_attempts,
    });
    if let Some(job_name) = &decision.create_job {
        let ready_at = master
            .ready_at
            .as_ref()
            .map(|t| copy_policy::ready_time_for_copy(t.0));
        let job = copy_job::build_job(obj, job_name, ready_at, &ctx.copy);
        copy_job::create_exclusive(&ctx.client, &namespace, &obj.name_label(), &job).await?;
        let message = format!("copy Job {job_name} started");
        events::publish(obj, ctx, Note::normal("CopyStarted", message)).await;
    }
    let step = copy_policy::fold_copy(&obj.spec, obj.meta().generation, &decision, step, now);
    Ok(copy_progress::attach(&ctx.client, &namespace, step).await)
}

fn track_expiry(obj: &MasterExport, ctx: &Context, status: &MasterExportStatus) {
    ctx.expiries.track(
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
        published_expiry(status),
    );
}

/// Deletion: turn access off (policy `Revoke`) or leave it (`Orphan`). A Mux that is down
/// delays the deletion, with a condition saying so, for at most `deletion_timeout`.
async fn cleanup(obj: Arc<MasterExport>, ctx: &Context) -> Result<Action, Error> {
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
    let others = ctx.others_wanting(&asset_id, &obj);
    if !others.is_empty() {
        let message = policy::kept_for_others(&asset_id, &others);
        events::publish(&obj, ctx, Note::normal("RevokeHeldBack", message)).await;
        return Ok(Action::await_change());
    }
    let outcome = match mux_client_to_clean_up(&obj, ctx).await {
        Ok(mux) => change_access(ctx, &mux, &asset_id, MasterAccess::None)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            let message = format!("master access to asset {asset_id} turned off on deletion");
            events::publish(&obj, ctx, Note::normal("AccessRevoked", message)).await;
            ctx.wakeups.wake_others(&asset_id, &ObjectRef::from(&*obj));
            Ok(Action::await_change())
        }
        Err(Error::SourceNotFound { .. }) => Ok(Action::await_change()),
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
                let message = format!(
                    "could not turn off master access to asset {asset_id} ({error}); deleting anyway: the URL expires by itself within 24 hours"
                );
                events::publish(&obj, ctx, Note::warning("RevokeAbandoned", message)).await;
                return Ok(Action::await_change());
            }
            let previous = obj.status.clone().unwrap_or_default();
            let mut status = previous.clone();
            policy::drop_expired_url(&mut status, with_margin(Timestamp::now()));
            let summary = Summary::progressing(
                "RevokePending",
                format!(
                    "deletion waits to turn off master access ({error}); it gives up after {}. To delete now without revoking, set spec.deletionPolicy to Orphan",
                    mux::duration::format(ctx.deletion_timeout)
                ),
            );
            Publisher::new(&obj, ctx, &previous)
                .publish(&mut status, &summary)
                .await?;
            Err(error)
        }
    }
}
