//! The copy's decisions, attempt by attempt.

use super::*;
use crate::copy::Reason;
use crate::resource::{CopyReason, Destination, LocalObjectRef, MasterExportStatus, Source};

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
        uid: "u1",
        generation: 1,
        spec,
        copy,
        url_requested_at: Some(t(0)),
        url_published: true,
        url_in_secret: true,
        job,
        now: t(10),
        max_attempts: 4,
        taken_by: None,
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
    assert_eq!(d.copy.unwrap().phase, CopyPhase::Running);
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
        (copy.phase, copy.sha256.as_deref(), copy.size),
        (CopyPhase::Succeeded, Some("ab"), Some(5))
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
fn a_master_not_yet_whole_gets_another_job_not_a_stall() {
    let spec = spec();
    let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
        .copy
        .unwrap();
    let incomplete = JobOutcome::Failed {
        report: Some(report(Reason::MasterIncomplete)),
        message: String::new(),
    };
    let d = decide_copy(&input(&spec, Some(&running), incomplete));
    assert!(d.create_job.unwrap().ends_with("-2"), "a new attempt");
    assert!(d.stalled.is_none());
}

#[test]
fn a_new_destination_means_a_new_copy() {
    let spec = spec();
    let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
        .copy
        .unwrap();
    let done = decide_copy(&input(
        &spec,
        Some(&running),
        JobOutcome::Succeeded(Some(report(Reason::Copied))),
    ))
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
    let a = job_name(&long, "u1", "s3://b/k", 3, 1);
    assert!(a.len() <= 63, "{a}");
    assert_eq!(a, job_name(&long, "u1", "s3://b/k", 3, 1));
    assert_ne!(a, job_name(&long, "u1", "s3://b/k", 4, 1));
    assert_ne!(
        a,
        job_name(&long, "u2", "s3://b/k", 3, 1),
        "a recreated resource of the same name has Jobs of its own"
    );
}

#[test]
fn a_successful_job_without_a_readable_report_is_not_a_verified_copy() {
    let spec = spec();
    let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
        .copy
        .unwrap();
    let mut no_digest = report(Reason::Copied);
    no_digest.sha256 = None;
    for outcome in [
        JobOutcome::Succeeded(None),
        JobOutcome::Succeeded(Some(no_digest)),
    ] {
        let d = decide_copy(&input(&spec, Some(&running), outcome));
        assert!(!d.done, "not verified");
        let copy = d.copy.unwrap();
        assert_eq!(copy.reason, Some(CopyReason::ReportMissing));
        assert_eq!(copy.attempts, 2, "another Job runs");
        assert!(d.create_job.unwrap().ends_with("-2"));
    }
}

#[test]
fn a_new_endpoint_region_credentials_or_volume_means_a_new_copy() {
    let spec = spec();
    let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
        .copy
        .unwrap();
    let done = decide_copy(&input(
        &spec,
        Some(&running),
        JobOutcome::Succeeded(Some(report(Reason::Copied))),
    ));
    assert!(done.done);
    let copied = done.copy.unwrap();
    let mut moved = spec.clone();
    moved.destination.as_mut().unwrap().endpoint = Some("http://other:9000".into());
    let d = decide_copy(&input(&moved, Some(&copied), JobOutcome::Missing));
    assert!(!d.done && d.create_job.is_some(), "same URL, another store");
    assert!(!crate::controller::policy::copy_done(
        &moved,
        &MasterExportStatus {
            copy: Some(copied.clone()),
            ..Default::default()
        }
    ));
    let again = decide_copy(&input(&spec, Some(&copied), JobOutcome::Missing));
    assert!(again.done, "the original destination is still copied");
}

#[test]
fn a_destination_another_resource_claimed_first_is_refused() {
    let spec = spec();
    let mut i = input(&spec, None, JobOutcome::Missing);
    i.taken_by = Some("media/first");
    let d = decide_copy(&i);
    assert_eq!(d.create_job, None, "no Job writes another's object");
    let (reason, message) = d.stalled.unwrap();
    assert_eq!(reason, "DestinationInUse");
    assert!(message.contains("media/first") && message.contains("s3://archive/k.mp4"));
    assert!(!d.done);
}

#[test]
fn a_copy_counts_the_masters_age_from_no_earlier_than_it_became_ready() {
    let seen = t(0)
        .checked_add(jiff::SignedDuration::from_millis(840))
        .unwrap();
    // As the status stores it: whole seconds.
    let recorded: Timestamp = serde_json::from_value::<
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    >(serde_json::to_value(time(seen)).unwrap())
    .unwrap()
    .0;
    assert!(recorded < seen, "the status drops the fraction");
    for ready in [seen, recorded] {
        assert_eq!(
            ready_time_for_copy(ready),
            t(1),
            "the same from memory or the status"
        );
        assert!(ready_time_for_copy(ready) >= seen);
    }
}

/// The Job's pod reads the URL from the URL Secret: the Job is created only once the Secret
/// holds the URL this step publishes, first copy or retry; until then the step publishes (the
/// Secret first) and looks again at once.
#[test]
fn a_job_is_created_only_once_the_url_secret_holds_the_current_url() {
    use crate::controller::conditions::Summary;
    use crate::controller::policy::Step;
    let spec = spec();
    let mut first = input(&spec, None, JobOutcome::Missing);
    first.url_in_secret = false;
    let d = decide_copy(&first);
    assert_eq!(d.create_job, None, "not before the Secret holds the URL");
    assert!(d.publish_first && d.copy.is_none() && !d.done && d.stalled.is_none());
    assert_eq!(d.condition.clone().unwrap().reason, "WaitingForUrl");
    let step = Step {
        status: MasterExportStatus::default(),
        summary: Summary::ready("UrlReady", "the URL is ready"),
        requeue_after: Some(Duration::from_secs(3600)),
    };
    let folded = fold_copy(&spec, Some(1), &d, step, t(10));
    assert_eq!(folded.requeue_after, Some(Duration::from_millis(100)));
    assert!(!folded.summary.ready, "no archive yet: not Ready");
    first.url_in_secret = true;
    assert!(decide_copy(&first).create_job.is_some());

    // A retry after an expired URL waits the same way for the fresh URL to be in the Secret,
    // and keeps the failed attempt on record meanwhile.
    let running = decide_copy(&input(&spec, None, JobOutcome::Missing))
        .copy
        .unwrap();
    let failed = JobOutcome::Failed {
        report: Some(report(Reason::UrlExpired)),
        message: String::new(),
    };
    let recorded = decide_copy(&input(&spec, Some(&running), failed))
        .copy
        .unwrap();
    let mut retry = input(&spec, Some(&recorded), JobOutcome::Missing);
    retry.url_requested_at = Some(t(20));
    retry.now = t(21);
    retry.url_in_secret = false;
    let d = decide_copy(&retry);
    assert_eq!(d.create_job, None);
    assert!(d.publish_first);
    assert_eq!(d.copy.as_ref(), Some(&recorded));
    retry.url_in_secret = true;
    assert!(decide_copy(&retry).create_job.unwrap().ends_with("-2"));
}
