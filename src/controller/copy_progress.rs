//! A running copy's progress in `status.copy.progress`: the controller reads the last
//! progress line the copier printed (`copy::ProgressLine`) from the tail of its pod's log
//! (`pods/log`), so the copy pod needs no API token. Read at each reconcile while the Job
//! runs, and the reconcile comes back every [`POLL`] for it.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use super::copy_job::CONTAINER;
use super::policy::{Step, time};
use crate::copy::ProgressLine;
use crate::resource::{CopyPhase, CopyProgress};

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
