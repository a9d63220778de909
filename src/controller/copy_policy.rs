//! The archive copy's decisions, pure like `policy`: when to start a copy Job, what its
//! outcome means, when to retry, and (in [`outcome`]) what it makes of the resource's phase,
//! summary and next look. The Job itself is built and observed in `copy_job`.
//!
//! Rules:
//! - one copy per destination and generation; a new destination or a new generation after a
//!   failure starts a new copy (attempts count from 1 again);
//! - a Job runs only while a URL is published, and is created only once the URL Secret holds
//!   that URL (the pod reads it from there); never two at once (the reconciler deletes
//!   superseded Jobs before creating one);
//! - an expired URL (the copy's `UrlExpired`) gets a fresh URL first, then a new Job;
//!   transient failures get a new Job, up to `max_attempts`; the rest stop and say why;
//! - access is revoked after a copy (`afterCopy.revokeAccess`) only once the copy is verified:
//!   [`CopyDecision::done`] is the only thing that allows it.

mod destination;
mod outcome;

use std::time::Duration;

use jiff::Timestamp;

use super::conditions::Wanted;
use super::policy::time;
use crate::copy::Report;
use crate::resource::{CopyPhase, CopyReason, CopyStatus, MasterExportSpec};

pub use destination::{identity as destination_identity, is_of, object_key};
pub use outcome::{fold_copy, has_copy_work, job_to_observe};

pub const COPIED: &str = "Copied";

/// How copy Jobs are made.
#[derive(Debug, Clone)]
pub struct CopySettings {
    /// The operator's own image: the Job runs `mux-master-operator copy`.
    pub image: String,
    pub deadline: Duration,
    pub max_attempts: u32,
    pub ttl_after_finished: Duration,
    /// The age the master must have after it became ready before a copy calls its length
    /// final (the copier's `--min-age`): Mux's files have been seen to grow after `ready`.
    pub min_age: Duration,
}

impl Default for CopySettings {
    fn default() -> Self {
        Self {
            image: concat!(
                "ghcr.io/mux-master-operator/mux-master-operator:",
                env!("CARGO_PKG_VERSION")
            )
            .into(),
            deadline: Duration::from_secs(6 * 3600),
            max_attempts: 4,
            ttl_after_finished: Duration::from_secs(24 * 3600),
            min_age: Duration::from_secs(60),
        }
    }
}

/// What the reconciler saw of the current copy Job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Gone, or not created yet.
    Missing,
    Running,
    Succeeded(Option<Report>),
    /// `message`: the Job's or the pod's own account, when the copier left no report.
    Failed {
        report: Option<Report>,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct CopyInput<'a> {
    pub name: &'a str,
    /// The resource's UID: its Jobs are named for it, so a leftover Job of a deleted
    /// resource of the same name is never taken for this one's.
    pub uid: &'a str,
    pub generation: i64,
    pub spec: &'a MasterExportSpec,
    pub copy: Option<&'a CopyStatus>,
    /// A URL is published now, requested at this instant.
    pub url_requested_at: Option<Timestamp>,
    pub url_published: bool,
    /// The URL Secret holds that URL already (as read or written by this reconcile): the Job
    /// reads its URL from the Secret, so it starts only then.
    pub url_in_secret: bool,
    pub job: JobOutcome,
    pub now: Timestamp,
    /// Jobs to try for one copy before giving up on transient failures.
    pub max_attempts: u32,
    /// Another resource (`namespace/name`) that claimed the same destination object first.
    pub taken_by: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyDecision {
    pub copy: Option<CopyStatus>,
    /// Create this Job (after deleting any other active copy Job of the resource).
    pub create_job: Option<String>,
    /// The `Copied` condition; `None` removes it (no destination).
    pub condition: Option<Wanted>,
    /// The URL expired under the copy: refresh it before the next attempt.
    pub refresh_url: bool,
    /// A verified copy of the master is at the current destination.
    pub done: bool,
    /// Stopped: a person must act (`reason`, `message`).
    pub stalled: Option<(String, String)>,
    /// A Job is due, but the URL Secret does not hold the current URL yet: publish it (the
    /// Secret first), then look again at once.
    pub publish_first: bool,
}

/// A deterministic Job name for (resource and its UID, destination identity, generation,
/// attempt), within the 63 characters a Job name may have (its pods carry it as a label).
pub fn job_name(name: &str, uid: &str, destination: &str, generation: i64, attempt: u32) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{uid}\n{destination}\n{generation}").as_bytes());
    let suffix = format!("-copy-{}-{attempt}", &hex::encode(digest)[..8]);
    let keep = 63usize.saturating_sub(suffix.len()).min(name.len());
    format!("{}{suffix}", name[..keep].trim_end_matches(['-', '.']))
}

/// The instant a copy Job is told the master became ready, from the status' `readyAt`. The
/// status holds whole seconds (Kubernetes' time format drops the fraction), so the second it
/// may have lost is added back: the same answer from memory or after a restart, and never
/// before the master was ready, so the copier never counts its minimum age from too early.
pub fn ready_time_for_copy(ready_at: Timestamp) -> Timestamp {
    Timestamp::from_second(ready_at.as_second().saturating_add(1)).unwrap_or(ready_at)
}

/// Whether another Job may succeed where this attempt failed.
fn is_retryable(reason: CopyReason) -> bool {
    match reason {
        CopyReason::JobFailed
        | CopyReason::JobMissing
        | CopyReason::UrlExpired
        | CopyReason::RetriesExhausted
        | CopyReason::StoreFailed
        | CopyReason::Interrupted
        | CopyReason::ReportMissing
        | CopyReason::MasterIncomplete
        | CopyReason::Failed => true,
        CopyReason::Copied
        | CopyReason::Skipped
        | CopyReason::BadInput
        | CopyReason::DestinationExists
        | CopyReason::VerificationFailed
        | CopyReason::SourceFailed => false,
    }
}

pub fn decide_copy(input: &CopyInput<'_>) -> CopyDecision {
    let Some(destination) = input.spec.destination.as_ref() else {
        return CopyDecision::default();
    };
    let identity = destination::identity(destination);
    if let Some(other) = input.taken_by {
        let why = format!(
            "destination {} is already the destination of MasterExport {other}, created earlier; two copies must not write one object: give this MasterExport another destination (or delete one of them)",
            destination.url
        );
        return CopyDecision {
            condition: Some(Wanted::new(COPIED, false, "DestinationInUse", why.clone())),
            stalled: Some(("DestinationInUse".into(), why)),
            copy: input.copy.cloned(),
            ..Default::default()
        };
    }
    let previous = input
        .copy
        .filter(|c| destination::is_of(c, destination))
        // A failed copy of an older generation is not retried as is: the spec changed.
        .filter(|c| !(c.phase == CopyPhase::Failed && c.generation != input.generation))
        .cloned();
    let wanted = |status: bool, reason: &str, message: String| {
        Some(Wanted::new(COPIED, status, reason, message))
    };
    let start = |attempt: u32, previous: Option<&CopyStatus>| {
        // A pod started now could find no Secret (a real kubelet then retries) or an older
        // URL in it (one about to be withdrawn, or expired): the Secret comes first.
        if !input.url_in_secret {
            return CopyDecision {
                copy: previous.cloned(),
                condition: wanted(
                    false,
                    "WaitingForUrl",
                    "the copy starts once the URL Secret holds the current URL".into(),
                ),
                publish_first: true,
                ..Default::default()
            };
        }
        let job = job_name(input.name, input.uid, &identity, input.generation, attempt);
        CopyDecision {
            copy: Some(CopyStatus {
                phase: CopyPhase::Running,
                destination: destination.url.clone(),
                destination_identity: Some(identity.clone()),
                generation: input.generation,
                job: Some(job.clone()),
                attempts: attempt,
                started_at: Some(time(input.now)),
                reason: previous.and_then(|p| p.reason),
                ..Default::default()
            }),
            create_job: Some(job),
            condition: wanted(
                false,
                "Copying",
                format!("copying the master to {}", destination.url),
            ),
            ..Default::default()
        }
    };

    let Some(mut copy) = previous else {
        if !input.url_published {
            return CopyDecision {
                condition: wanted(
                    false,
                    "WaitingForUrl",
                    "the copy starts once the master URL is ready".into(),
                ),
                ..Default::default()
            };
        }
        return start(1, None);
    };

    // A copy recorded before identities were: it is of this destination (by URL); record it.
    copy.destination_identity = Some(identity.clone());
    match copy.phase {
        CopyPhase::Succeeded => done(copy, destination.url.as_str()),
        CopyPhase::Running => match &input.job {
            JobOutcome::Running => CopyDecision {
                condition: wanted(
                    false,
                    "Copying",
                    format!(
                        "copy Job {} is running",
                        copy.job.clone().unwrap_or_default()
                    ),
                ),
                copy: Some(copy),
                ..Default::default()
            },
            JobOutcome::Succeeded(report) => {
                copy.completed_at = Some(time(input.now));
                match report.as_ref().filter(|r| verified(r)) {
                    Some(report) => {
                        copy.phase = CopyPhase::Succeeded;
                        copy.object = Some(report.object.clone());
                        copy.size = report.size;
                        copy.sha256 = report.sha256.clone();
                        copy.reason = Some(report.reason.into());
                        copy.message = report.message.clone();
                        done(copy, destination.url.as_str())
                    }
                    // Nothing says what was written: not a verified copy.
                    None => {
                        copy.phase = CopyPhase::Failed;
                        copy.reason = Some(CopyReason::ReportMissing);
                        copy.message = Some(
                            "the copy Job succeeded but left no readable report (size and SHA-256), so the copy is not verified".into(),
                        );
                        failed(copy, input, start)
                    }
                }
            }
            JobOutcome::Failed { report, message } => {
                copy.phase = CopyPhase::Failed;
                copy.completed_at = Some(time(input.now));
                copy.reason = Some(
                    report
                        .as_ref()
                        .map_or(CopyReason::JobFailed, |r| r.reason.into()),
                );
                copy.message = Some(
                    report
                        .as_ref()
                        .and_then(|r| r.message.clone())
                        .unwrap_or_else(|| message.clone()),
                );
                failed(copy, input, start)
            }
            // The Job vanished (deleted by hand, or expired by its TTL before we saw it).
            JobOutcome::Missing => {
                copy.phase = CopyPhase::Failed;
                copy.reason = Some(CopyReason::JobMissing);
                copy.message = Some("the copy Job disappeared before it finished".into());
                copy.completed_at = Some(time(input.now));
                failed(copy, input, start)
            }
        },
        _ => failed(copy, input, start),
    }
}

/// A report that vouches for a verified copy: a success, with the size and digest checked.
fn verified(report: &Report) -> bool {
    matches!(
        CopyReason::from(report.reason),
        CopyReason::Copied | CopyReason::Skipped
    ) && report.size.is_some()
        && report.sha256.is_some()
}

fn done(copy: CopyStatus, destination: &str) -> CopyDecision {
    let digest = copy
        .sha256
        .clone()
        .map(|d| format!(", sha256 {d}"))
        .unwrap_or_default();
    let size = copy
        .size
        .map(|s| format!(", {s} bytes"))
        .unwrap_or_default();
    CopyDecision {
        condition: Some(Wanted::new(
            COPIED,
            true,
            "Verified",
            format!("the master is archived at {destination}{size}{digest}"),
        )),
        copy: Some(copy),
        done: true,
        ..Default::default()
    }
}

/// A failed attempt: retry when it may help, else stop and say why.
fn failed(
    copy: CopyStatus,
    input: &CopyInput<'_>,
    start: impl Fn(u32, Option<&CopyStatus>) -> CopyDecision,
) -> CopyDecision {
    let reason = copy.reason.unwrap_or(CopyReason::JobFailed);
    let message = copy.message.clone().unwrap_or_default();
    let retryable = is_retryable(reason);
    if !retryable || copy.attempts >= input.max_attempts {
        let why = if retryable {
            format!("{message} (gave up after {} attempts)", copy.attempts)
        } else {
            message
        };
        return CopyDecision {
            condition: Some(Wanted::new(COPIED, false, reason.as_str(), why.clone())),
            stalled: Some((
                format!("Copy{}", reason.as_str()),
                format!("the copy failed: {why}"),
            )),
            copy: Some(copy),
            ..Default::default()
        };
    }
    if reason == CopyReason::UrlExpired {
        // Only a URL requested after the failure is worth another attempt.
        let failed_at = copy.completed_at.as_ref().map(|t| t.0);
        let fresh =
            matches!((input.url_requested_at, failed_at), (Some(req), Some(at)) if req > at);
        if !(fresh && input.url_published) {
            return CopyDecision {
                condition: Some(Wanted::new(
                    COPIED,
                    false,
                    "UrlExpired",
                    "the URL expired during the copy; fetching a fresh one",
                )),
                copy: Some(copy),
                refresh_url: true,
                ..Default::default()
            };
        }
    }
    if !input.url_published {
        return CopyDecision {
            condition: Some(Wanted::new(
                COPIED,
                false,
                "WaitingForUrl",
                format!(
                    "retrying the copy ({}) once the URL is ready",
                    reason.as_str()
                ),
            )),
            copy: Some(copy),
            ..Default::default()
        };
    }
    let next = copy.attempts + 1;
    start(next, Some(&copy))
}

#[cfg(test)]
mod tests;
