//! The archive copy's decisions, pure like `policy`: when to start a copy Job, what its
//! outcome means, when to retry, and the Job itself (built here, created by the reconciler).
//!
//! Rules:
//! - one copy per destination and generation; a new destination or a new generation after a
//!   failure starts a new copy (attempts count from 1 again);
//! - a Job runs only while a URL is published, and never two at once (the reconciler deletes
//!   superseded Jobs before creating one);
//! - an expired URL (the copy's `UrlExpired`) gets a fresh URL first, then a new Job;
//!   transient failures get a new Job, up to `max_attempts`; the rest stop and say why;
//! - access is revoked after a copy (`afterCopy.revokeAccess`) only once the copy is verified:
//!   [`CopyDecision::done`] is the only thing that allows it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;

use super::conditions::Wanted;
use super::policy::time;
use crate::copy::{Reason, Report};
use crate::resource::{CopyStatus, MasterExport, MasterExportSpec};

pub const COPIED: &str = "Copied";
pub const CONTAINER: &str = "copy";
pub const NAME_LABEL: &str = "masterexport.io/name";
/// Where the copier writes its result; the kubelet turns it into the termination message.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// How copy Jobs are made.
#[derive(Debug, Clone)]
pub struct CopySettings {
    /// The operator's own image: the Job runs `mux-master-operator copy`.
    pub image: String,
    pub deadline: Duration,
    pub max_attempts: u32,
    pub ttl_after_finished: Duration,
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
    pub generation: i64,
    pub spec: &'a MasterExportSpec,
    pub copy: Option<&'a CopyStatus>,
    /// A URL is published now, requested at this instant.
    pub url_requested_at: Option<Timestamp>,
    pub url_published: bool,
    pub job: JobOutcome,
    pub now: Timestamp,
    /// Jobs to try for one copy before giving up on transient failures.
    pub max_attempts: u32,
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
}

/// A deterministic Job name for (resource, destination, generation, attempt), within the
/// 63 characters a Job name may have (its pods carry it as a label).
pub fn job_name(name: &str, destination: &str, generation: i64, attempt: u32) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{destination}\n{generation}").as_bytes());
    let suffix = format!("-copy-{}-{attempt}", &hex::encode(digest)[..8]);
    let keep = 63usize.saturating_sub(suffix.len()).min(name.len());
    format!("{}{suffix}", name[..keep].trim_end_matches(['-', '.']))
}

fn is_retryable(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::UrlExpired
            | Reason::RetriesExhausted
            | Reason::StoreFailed
            | Reason::Interrupted
            | Reason::Failed
    )
}

fn reason_name(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{reason:?}"))
}

pub fn decide_copy(input: &CopyInput<'_>) -> CopyDecision {
    let Some(destination) = input.spec.destination.as_ref() else {
        return CopyDecision::default();
    };
    let previous = input
        .copy
        .filter(|c| c.destination == destination.url)
        // A failed copy of an older generation is not retried as is: the spec changed.
        .filter(|c| !(c.phase == "Failed" && c.generation != input.generation))
        .cloned();
    let wanted = |status: bool, reason: &str, message: String| {
        Some(Wanted::new(COPIED, status, reason, message))
    };
    let start = |attempt: u32, previous: Option<&CopyStatus>| {
        let job = job_name(input.name, &destination.url, input.generation, attempt);
        CopyDecision {
            copy: Some(CopyStatus {
                phase: "Running".into(),
                destination: destination.url.clone(),
                generation: input.generation,
                job: Some(job.clone()),
                attempts: attempt,
                started_at: Some(time(input.now)),
                reason: previous.and_then(|p| p.reason.clone()),
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

    match copy.phase.as_str() {
        "Succeeded" => done(copy, destination.url.as_str()),
        "Running" => match &input.job {
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
                copy.phase = "Succeeded".into();
                copy.completed_at = Some(time(input.now));
                if let Some(report) = report {
                    copy.object = Some(report.object.clone());
                    copy.size = report.size;
                    copy.sha256 = report.sha256.clone();
                    copy.reason = Some(reason_name(report.reason));
                    copy.message = report.message.clone();
                } else {
                    copy.reason = Some("Copied".into());
                }
                done(copy, destination.url.as_str())
            }
            JobOutcome::Failed { report, message } => {
                copy.phase = "Failed".into();
                copy.completed_at = Some(time(input.now));
                copy.reason = Some(
                    report
                        .as_ref()
                        .map(|r| reason_name(r.reason))
                        .unwrap_or_else(|| "JobFailed".into()),
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
                copy.phase = "Failed".into();
                copy.reason = Some("JobMissing".into());
                copy.message = Some("the copy Job disappeared before it finished".into());
                copy.completed_at = Some(time(input.now));
                failed(copy, input, start)
            }
        },
        _ => failed(copy, input, start),
    }
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
    let reason = copy.reason.clone().unwrap_or_else(|| "JobFailed".into());
    let message = copy.message.clone().unwrap_or_default();
    let retryable = match reason.as_str() {
        "JobFailed" | "JobMissing" => true,
        other => serde_json::from_value::<Reason>(json!(other))
            .map(is_retryable)
            .unwrap_or(false),
    };
    if !retryable || copy.attempts >= input.max_attempts {
        let why = if retryable {
            format!("{message} (gave up after {} attempts)", copy.attempts)
        } else {
            message
        };
        return CopyDecision {
            condition: Some(Wanted::new(COPIED, false, &reason, why.clone())),
            stalled: Some((format!("Copy{reason}"), format!("the copy failed: {why}"))),
            copy: Some(copy),
            ..Default::default()
        };
    }
    if reason == "UrlExpired" {
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
                format!("retrying the copy ({reason}) once the URL is ready"),
            )),
            copy: Some(copy),
            ..Default::default()
        };
    }
    let next = copy.attempts + 1;
    start(next, Some(&copy))
}

/// The copy Job: hardened, owned by the resource, the URL only by reference to its Secret.
pub fn build_job(obj: &MasterExport, job_name: &str, settings: &CopySettings) -> Job {
    use kube::ResourceExt;
    let destination = obj.spec.destination.clone().unwrap_or_default();
    let name = obj.name_any();
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "mux-master-operator"),
        ("app.kubernetes.io/component", "copy"),
        ("app.kubernetes.io/managed-by", "mux-master-operator"),
        (NAME_LABEL, name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut env = vec![
        json!({"name": "MUX_MASTER_URL", "valueFrom": {"secretKeyRef": {"name": obj.url_secret_name(), "key": "url"}}}),
        json!({"name": "MMO_DESTINATION", "value": destination.url}),
        json!({"name": "MMO_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH}),
        json!({"name": "LOG_FORMAT", "value": "json"}),
        // glibc makes an arena per thread by default; two keep the copier's memory flat.
        json!({"name": "MALLOC_ARENA_MAX", "value": "2"}),
    ];
    if let Some(endpoint) = &destination.endpoint {
        env.push(json!({"name": "MMO_ENDPOINT", "value": endpoint}));
    }
    if let Some(region) = &destination.region {
        env.push(json!({"name": "MMO_REGION", "value": region}));
    }
    if !destination.path_style && destination.endpoint.is_none() {
        env.push(json!({"name": "MMO_VIRTUAL_HOSTED_STYLE", "value": "true"}));
    }
    if destination.overwrite {
        env.push(json!({"name": "MMO_OVERWRITE", "value": "true"}));
    }
    // A file:// destination writes to the claimed volume.
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})];
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    if let Some(volume) = &destination.volume {
        volumes.push(
            json!({"name": "archive", "persistentVolumeClaim": {"claimName": volume.claim_name}}),
        );
        mounts.push(json!({"name": "archive", "mountPath": volume.mount_path}));
    }
    let env_from: Vec<serde_json::Value> = destination
        .credentials_secret_ref
        .iter()
        .map(|s| json!({"secretRef": {"name": s.name}}))
        .collect();
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": obj.namespace(),
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "masterexport.io/v1alpha1",
                "kind": "MasterExport",
                "name": name,
                "uid": obj.uid().unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": settings.deadline.as_secs(),
            "ttlSecondsAfterFinished": settings.ttl_after_finished.as_secs(),
            // Exit codes that a rerun cannot fix end the Job at once (see `copy`'s docs):
            // BadInput, UrlExpired (the controller refreshes the URL first), DestinationExists,
            // VerificationFailed, SourceFailed.
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [2, 3, 4, 5, 8]},
            }]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        // So the copy may write to a claimed volume as its non-root user.
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": CONTAINER,
                        "image": settings.image,
                        "args": ["copy"],
                        "env": env,
                        "envFrom": env_from,
                        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
                        "terminationMessagePolicy": "File",
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            // A CPU limit also bounds the runtime's worker threads.
                            "limits": {"cpu": "2", "memory": "256Mi"},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    serde_json::from_value(job).expect("a well-formed Job")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{Destination, LocalObjectRef, Source};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn spec() -> MasterExportSpec {
        MasterExportSpec {
            source: Source {
                asset_id: Some("a1".into()),
                live_stream_id: None,
            },
            access: Default::default(),
            credentials_secret_ref: LocalObjectRef { name: "mux".into() },
            refresh_before: "2h".into(),
            url_secret: None,
            deletion_policy: Default::default(),
            suspend: false,
            destination: Some(Destination {
                url: "s3://archive/k.mp4".into(),
                credentials_secret_ref: Some(LocalObjectRef {
                    name: "archive".into(),
                }),
                endpoint: Some("http://minio:9000".into()),
                path_style: true,
                ..Default::default()
            }),
            after_copy: None,
        }
    }

    fn input<'a>(
        spec: &'a MasterExportSpec,
        copy: Option<&'a CopyStatus>,
        job: JobOutcome,
    ) -> CopyInput<'a> {
        CopyInput {
            name: "keynote",
            generation: 1,
            spec,
            copy,
            url_requested_at: Some(t(0)),
            url_published: true,
            job,
            now: t(10),
            max_attempts: 4,
        }
    }

    fn report(reason: Reason) -> Report {
        Report {
            reason,
            message: Some("m".into()),
            object: "s3://archive/k.mp4".into(),
            size: Some(5),
            sha256: Some("ab".into()),
            resumes: 0,
            verified: None,
        }
    }

    #[test]
    fn a_ready_url_starts_the_first_copy() {
        let spec = spec();
        let d = decide_copy(&input(&spec, None, JobOutcome::Missing));
        let job = d.create_job.clone().unwrap();
        assert!(
            job.starts_with("keynote-copy-") && job.ends_with("-1"),
            "{job}"
        );
        assert_eq!(d.copy.unwrap().phase, "Running");
        assert!(!d.done);
    }

    #[test]
    fn no_url_no_copy() {
        let spec = spec();
        let mut i = input(&spec, None, JobOutcome::Missing);
        i.url_published = false;
        let d = decide_copy(&i);
        assert_eq!(d.create_job, None);
        assert_eq!(d.condition.unwrap().reason, "WaitingForUrl");
    }

    #[test]
    fn a_succeeded_job_records_the_verified_object() {
        let spec = spec();
        let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
            .copy
            .unwrap();
        let d = decide_copy(&input(
            &spec,
            Some(&running),
            JobOutcome::Succeeded(Some(report(Reason::Copied))),
        ));
        assert!(d.done);
        let copy = d.copy.unwrap();
        assert_eq!(
            (copy.phase.as_str(), copy.sha256.as_deref(), copy.size),
            ("Succeeded", Some("ab"), Some(5))
        );
        assert!(d.condition.unwrap().status);
    }

    #[test]
    fn an_expired_url_refreshes_then_runs_a_new_job() {
        let spec = spec();
        let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
            .copy
            .unwrap();
        let failed = JobOutcome::Failed {
            report: Some(report(Reason::UrlExpired)),
            message: String::new(),
        };
        let d = decide_copy(&input(&spec, Some(&running), failed));
        assert!(d.refresh_url && d.create_job.is_none() && !d.done);
        // Once a URL requested after the failure is published, attempt 2 starts.
        let recorded = d.copy.unwrap();
        let mut later = input(&spec, Some(&recorded), JobOutcome::Missing);
        later.url_requested_at = Some(t(20));
        later.now = t(21);
        let d = decide_copy(&later);
        assert!(d.create_job.unwrap().ends_with("-2"));
        assert_eq!(d.copy.unwrap().attempts, 2);
    }

    #[test]
    fn a_different_object_at_the_destination_stalls_without_retrying() {
        let spec = spec();
        let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
            .copy
            .unwrap();
        let failed = JobOutcome::Failed {
            report: Some(report(Reason::DestinationExists)),
            message: String::new(),
        };
        let d = decide_copy(&input(&spec, Some(&running), failed));
        assert_eq!(d.create_job, None);
        assert_eq!(d.stalled.unwrap().0, "CopyDestinationExists");
        assert!(!d.done);
    }

    #[test]
    fn transient_failures_retry_up_to_the_cap() {
        let spec = spec();
        let mut copy = decide_copy(&input(&spec, None, JobOutcome::Missing))
            .copy
            .unwrap();
        for attempt in 2..=4 {
            let failed = JobOutcome::Failed {
                report: Some(report(Reason::RetriesExhausted)),
                message: String::new(),
            };
            let d = decide_copy(&input(&spec, Some(&copy), failed));
            assert!(d.create_job.unwrap().ends_with(&format!("-{attempt}")));
            copy = d.copy.unwrap();
        }
        let failed = JobOutcome::Failed {
            report: Some(report(Reason::RetriesExhausted)),
            message: String::new(),
        };
        let d = decide_copy(&input(&spec, Some(&copy), failed));
        assert_eq!(d.create_job, None);
        assert!(d.stalled.is_some());
    }

    #[test]
    fn a_new_destination_means_a_new_copy() {
        let spec = spec();
        let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
            .copy
            .unwrap();
        let done = decide_copy(&input(&spec, Some(&running), JobOutcome::Succeeded(None)))
            .copy
            .unwrap();
        let mut moved = spec.clone();
        moved.destination.as_mut().unwrap().url = "s3://archive/other.mp4".into();
        let mut i = input(&moved, Some(&done), JobOutcome::Missing);
        i.generation = 2;
        let d = decide_copy(&i);
        assert!(d.create_job.is_some() && !d.done);
    }

    #[test]
    fn job_names_are_deterministic_and_short() {
        let long = "x".repeat(80);
        let a = job_name(&long, "s3://b/k", 3, 1);
        assert!(a.len() <= 63, "{a}");
        assert_eq!(a, job_name(&long, "s3://b/k", 3, 1));
        assert_ne!(a, job_name(&long, "s3://b/k", 4, 1));
    }

    #[test]
    fn the_job_is_hardened_and_holds_no_url() {
        let mut obj = MasterExport::new("keynote", spec());
        obj.metadata.namespace = Some("media".into());
        obj.metadata.uid = Some("u1".into());
        let job = build_job(&obj, "keynote-copy-1", &CopySettings::default());
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains("https://"), "no URL in the Job spec");
        let spec = job.spec.unwrap();
        assert!(
            spec.active_deadline_seconds.is_some() && spec.ttl_seconds_after_finished.is_some()
        );
        assert_eq!(spec.backoff_limit, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            pod.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        let container = &pod.containers[0];
        let sc = container.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
            &vec!["ALL".to_string()]
        );
        assert!(container.resources.as_ref().unwrap().limits.is_some());
        let url_env = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "MUX_MASTER_URL")
            .unwrap();
        assert_eq!(url_env.value, None);
        assert_eq!(
            url_env
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "keynote-master"
        );
    }
}
