//! A running copy's progress in `status.copy.progress`: the controller reads the last
//! progress line the copier printed (`copy::ProgressLine`) from the tail of its pod's log
//! (`pods/log`), so the copy pod needs no API token. Read at each reconcile while the Job
//! runs, and the reconcile comes back every [`POLL`] for it.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, LogParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::conditions::{self, Summary};
use super::context::Context;
use super::copy_job::{self, CONTAINER};
use super::copy_policy::JobOutcome;
use super::error::Error;
use super::policy::timing::add;
use super::policy::{Step, time};
use super::publisher::Publisher;
use crate::copy::ProgressLine;
use crate::resource::{
    CopyPhase, CopyProgress, MasterExport, MasterExportSpec, MasterExportStatus, Phase,
};

/// How often a reconcile comes back while a copy runs, to read its progress again.
pub const POLL: Duration = Duration::from_secs(5);

/// Lines of the log's tail read: the copier prints one progress line every 2 s, and a few
/// other lines at most between them.
const TAIL_LINES: i64 = 40;

/// Reads the progress of the step's running copy into it; clears it once the copy is not
/// running. A log that cannot be read (a pod not started yet, a played node) keeps the last.
pub async fn attach(client: &Client, namespace: &str, mut step: Step) -> Step {
    let Some(copy) = step.status.copy.as_mut() else {
        return step;
    };
    if copy.phase != CopyPhase::Running {
        copy.progress = None;
        return step;
    }
    let Some(job) = copy.job.clone() else {
        return step;
    };
    if let Some(line) = last_line(client, namespace, &job).await {
        copy.progress = Some(progress(line, Timestamp::now()));
    }
    step.requeue_after = Some(step.requeue_after.map_or(POLL, |r| r.min(POLL)));
    step
}

/// What the status shows of a progress line.
pub fn progress(line: ProgressLine, now: Timestamp) -> CopyProgress {
    CopyProgress {
        bytes_done: line.done,
        bytes_total: line.total,
        bytes_per_second: line.bytes_per_second,
        observed_at: Some(time(now)),
    }
}

async fn last_line(client: &Client, namespace: &str, job: &str) -> Option<ProgressLine> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .ok()?;
    let running = listed
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))?;
    let name = running.metadata.name?;
    let params = LogParams {
        container: Some(CONTAINER.into()),
        tail_lines: Some(TAIL_LINES),
        ..Default::default()
    };
    match pods.logs(&name, &params).await {
        Ok(log) => ProgressLine::last_in(&log),
        Err(e) => {
            tracing::debug!(pod = %name, %namespace, error = %e, "cannot read the copy's log");
            None
        }
    }
}

/// Whether a reconcile has nothing to do but read a running copy's progress: the copy runs,
/// the spec is the one observed, no Mux call is in flight and the URL is good for a while.
/// Then it asks neither Mux (a GET every few seconds per copy would spend the rate limit) nor
/// anything but the Job and its pod's log.
pub fn progress_only(
    spec: &MasterExportSpec,
    status: &MasterExportStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let settled = status.observed_generation.is_some()
        && status.observed_generation == generation
        && status.pending.is_none()
        && !spec.suspend;
    let copying = status.phase == Some(Phase::Copying)
        && status
            .copy
            .as_ref()
            .is_some_and(|c| c.phase == CopyPhase::Running && c.job.is_some());
    let fresh = status
        .master
        .as_ref()
        .and_then(|m| m.refresh_at.as_ref())
        .is_some_and(|r| r.0 > add(now, FRESH_FOR));
    settled && copying && fresh
}

/// How long the URL must stay good for a progress-only reconcile.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The progress-only reconcile: if the copy Job still runs, its progress is read and
/// published (the conditions as they are), and the reconcile comes back in [`POLL`]. `None`
/// when there is more to do (the Job finished or went): the full reconcile follows.
pub async fn refresh(
    obj: &MasterExport,
    ctx: &Context,
    publisher: &mut Publisher<'_>,
    previous: &MasterExportStatus,
) -> Result<Option<Action>, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let Some(job) = previous.copy.as_ref().and_then(|c| c.job.clone()) else {
        return Ok(None);
    };
    let uid = obj.uid().unwrap_or_default();
    let outcome = copy_job::observe(&ctx.client, &namespace, &job, &uid).await?;
    if outcome != JobOutcome::Running {
        return Ok(None);
    }
    // What a reconcile that skips Mux keeps up to date (after a restart, this may be first).
    ctx.record_grant(previous);
    ctx.expiries.track(
        &namespace,
        &obj.name_any(),
        super::publisher::published_expiry(previous),
    );
    let Some(line) = last_line(&ctx.client, &namespace, &job).await else {
        return Ok(Some(Action::requeue(POLL)));
    };
    let mut status = previous.clone();
    if let Some(copy) = status.copy.as_mut() {
        copy.progress = Some(progress(line, Timestamp::now()));
    }
    publisher
        .publish(&mut status, &as_they_are(&previous.conditions))
        .await?;
    Ok(Some(Action::requeue(POLL)))
}

/// The summary the recorded conditions stand for (so a write keeps them as they are).
fn as_they_are(recorded: &[Condition]) -> Summary {
    let find = |t| conditions::find(recorded, t);
    let ready = find(conditions::READY);
    Summary {
        ready: ready.is_some_and(|c| c.status == "True"),
        reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        reconciling: find(conditions::RECONCILING).is_some_and(|c| c.status == "True"),
        stalled: find(conditions::STALLED).is_some_and(|c| c.status == "True"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{CopyStatus, MasterState, PendingRequest};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn only_a_settled_running_copy_with_a_fresh_url_skips_mux_for_its_progress() {
        let spec: MasterExportSpec = serde_json::from_value(serde_json::json!({
            "source": {"assetId": "a1"}, "credentialsSecretRef": {"name": "mux"},
            "destination": {"url": "s3://b/k"}
        }))
        .unwrap();
        let status = MasterExportStatus {
            observed_generation: Some(1),
            phase: Some(Phase::Copying),
            master: Some(MasterState {
                refresh_at: Some(time(t(3600))),
                ..Default::default()
            }),
            copy: Some(CopyStatus {
                phase: CopyPhase::Running,
                destination: "s3://b/k".into(),
                job: Some("j".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(progress_only(&spec, &status, Some(1), t(0)));
        assert!(
            !progress_only(&spec, &status, Some(2), t(0)),
            "a new generation"
        );
        assert!(
            !progress_only(&spec, &status, Some(1), t(3550)),
            "the refresh is near"
        );
        let mut pending = status.clone();
        pending.pending = Some(PendingRequest {
            operation: crate::resource::Operation::Renew,
            at: time(t(0)),
        });
        assert!(
            !progress_only(&spec, &pending, Some(1), t(0)),
            "a call in flight"
        );
        let mut done = status.clone();
        done.copy.as_mut().unwrap().phase = CopyPhase::Succeeded;
        assert!(
            !progress_only(&spec, &done, Some(1), t(0)),
            "the copy ended"
        );
    }

    #[test]
    fn a_progress_write_keeps_the_conditions_as_they_are() {
        let condition = |type_: &str, status: &str, reason: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason}!"),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)),
            observed_generation: None,
        };
        let summary = as_they_are(&[
            condition("Ready", "False", "Copying"),
            condition("Reconciling", "True", "Copying"),
        ]);
        assert_eq!(
            (
                summary.ready,
                summary.reason.as_str(),
                summary.message.as_str()
            ),
            (false, "Copying", "Copying!")
        );
        assert!(summary.reconciling && !summary.stalled);
    }
}
