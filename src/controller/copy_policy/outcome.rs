//! What a copy decision makes of the resource: its phase, its summary (the Ready reason)
//! and when to look again. Pure: the reconciler observes the Job, creates the one
//! [`super::CopyDecision`] asks for, and folds the decision in with [`fold_copy`].

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{COPIED, CopyDecision};
use crate::controller::conditions::{self, Summary};
use crate::controller::policy::{ACCESS_KEPT_FOR_OTHERS, Step};
use crate::resource::{CopyPhase, MasterExportSpec, MasterExportStatus, Phase};

/// The copy Job poll while one runs: the Job's own events wake the controller sooner.
const COPY_POLL: Duration = Duration::from_secs(30);
/// How soon to look again when the next step is ours (refresh the URL, revoke after copy).
const AT_ONCE: Duration = Duration::from_millis(100);

/// Whether the copy step has anything to do or undo: a destination, or a copy or a `Copied`
/// condition left from one.
pub fn has_copy_work(spec: &MasterExportSpec, status: &MasterExportStatus) -> bool {
    spec.destination.is_some()
        || status.copy.is_some()
        || conditions::find(&status.conditions, COPIED).is_some()
}

/// The Job to observe: the current copy's, while it runs.
pub fn job_to_observe(status: &MasterExportStatus) -> Option<&str> {
    status
        .copy
        .as_ref()
        .filter(|c| c.phase == CopyPhase::Running)
        .and_then(|c| c.job.as_deref())
}

/// The resource's step once the copy has been decided: the `Copied` condition, the copy
/// status, and the phase, summary and requeue the copy calls for.
pub fn fold_copy(
    spec: &MasterExportSpec,
    generation: Option<i64>,
    decision: &CopyDecision,
    step: Step,
    now: Timestamp,
) -> Step {
    let Step {
        mut status,
        mut summary,
        mut requeue_after,
    } = step;
    let wanted: Vec<conditions::Wanted> = decision.condition.clone().into_iter().collect();
    status.conditions = conditions::merge(
        &status.conditions,
        &wanted,
        &[COPIED],
        generation,
        &Time(now),
    );
    if spec.destination.is_none() {
        status.copy = None;
        return Step {
            status,
            summary,
            requeue_after,
        };
    }
    let url_published = status.master.as_ref().is_some_and(|m| m.url.is_some());
    if decision.refresh_url
        && let Some(master) = status.master.as_mut()
    {
        master.refresh_at = Some(Time(now));
        requeue_after = Some(AT_ONCE);
    }
    if decision.publish_first {
        // The Secret is written with this step's status; the Job follows on the next look.
        requeue_after = Some(AT_ONCE);
    }
    if let Some(copy) = decision.copy.clone() {
        status.copy = Some(copy);
    }
    let condition = decision.condition.clone();
    let message = condition
        .as_ref()
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if let Some((reason, why)) = &decision.stalled {
        status.phase = Some(Phase::Failed);
        summary = Summary::stalled(reason, why.clone());
    } else if decision.done {
        status.phase = Some(Phase::Copied);
        let revoke = spec.after_copy.as_ref().is_some_and(|a| a.revoke_access);
        if revoke && url_published {
            // The next reconcile revokes, now that the copy is verified.
            summary = Summary::progressing(
                "RevokingAfterCopy",
                format!("{message}; turning master access off"),
            );
            requeue_after = Some(AT_ONCE);
        } else if !summary.stalled {
            let tail = if summary.reason == ACCESS_KEPT_FOR_OTHERS {
                // Done here, but the asset's access is not this resource's alone to end.
                format!("; {}", summary.message)
            } else if revoke {
                "; master access is off, as afterCopy asks".into()
            } else {
                String::new()
            };
            summary = Summary::ready("Copied", format!("{message}{tail}"));
        }
    } else if status
        .copy
        .as_ref()
        .is_some_and(|c| c.phase == CopyPhase::Running)
    {
        status.phase = Some(Phase::Copying);
        summary = Summary::progressing("Copying", message);
        requeue_after = Some(requeue_after.map_or(COPY_POLL, |r| r.min(COPY_POLL)));
    } else if let Some(condition) = condition
        && summary.ready
    {
        // The URL is there but the archive is not: not Ready yet.
        summary = Summary::progressing(&condition.reason, condition.message);
    }
    Step {
        status,
        summary,
        requeue_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::Wanted;
    use crate::resource::{CopyStatus, MasterState};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn spec(revoke_after_copy: bool) -> MasterExportSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"assetId": "a1"},
            "credentialsSecretRef": {"name": "mux"},
            "destination": {"url": "s3://b/k"},
            "afterCopy": {"revokeAccess": revoke_after_copy},
        }))
        .unwrap()
    }

    fn ready_step() -> Step {
        Step {
            status: MasterExportStatus {
                phase: Some(Phase::Ready),
                master: Some(MasterState {
                    url: Some("https://m/x".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            summary: Summary::ready("UrlReady", "ready"),
            requeue_after: Some(Duration::from_secs(3600)),
        }
    }

    fn copy(phase: CopyPhase) -> Option<CopyStatus> {
        Some(CopyStatus {
            phase,
            destination: "s3://b/k".into(),
            ..Default::default()
        })
    }

    fn condition(reason: &str) -> Option<Wanted> {
        Some(Wanted::new(
            COPIED,
            reason == "Verified",
            reason,
            format!("m-{reason}"),
        ))
    }

    #[test]
    fn the_copy_decides_phase_summary_and_requeue() {
        let s = Duration::from_secs;
        // (decision, revoke after copy) → (phase, summary reason, ready, requeue)
        type Case = (
            CopyDecision,
            bool,
            Phase,
            &'static str,
            bool,
            Option<Duration>,
        );
        let cases: Vec<Case> = vec![
            (
                CopyDecision {
                    copy: copy(CopyPhase::Running),
                    create_job: Some("j".into()),
                    condition: condition("Copying"),
                    ..Default::default()
                },
                false,
                Phase::Copying,
                "Copying",
                false,
                Some(s(30)),
            ),
            (
                CopyDecision {
                    copy: copy(CopyPhase::Succeeded),
                    condition: condition("Verified"),
                    done: true,
                    ..Default::default()
                },
                false,
                Phase::Copied,
                "Copied",
                true,
                Some(s(3600)),
            ),
            (
                CopyDecision {
                    copy: copy(CopyPhase::Succeeded),
                    condition: condition("Verified"),
                    done: true,
                    ..Default::default()
                },
                true,
                Phase::Copied,
                "RevokingAfterCopy",
                false,
                Some(AT_ONCE),
            ),
            (
                CopyDecision {
                    copy: copy(CopyPhase::Failed),
                    condition: condition("DestinationExists"),
                    stalled: Some(("CopyDestinationExists".into(), "why".into())),
                    ..Default::default()
                },
                false,
                Phase::Failed,
                "CopyDestinationExists",
                false,
                Some(s(3600)),
            ),
            (
                CopyDecision {
                    copy: copy(CopyPhase::Failed),
                    condition: condition("UrlExpired"),
                    refresh_url: true,
                    ..Default::default()
                },
                false,
                Phase::Ready,
                "UrlExpired",
                false,
                Some(AT_ONCE),
            ),
            (
                CopyDecision {
                    condition: condition("WaitingForUrl"),
                    ..Default::default()
                },
                false,
                Phase::Ready,
                "WaitingForUrl",
                false,
                Some(s(3600)),
            ),
        ];
        for (decision, revoke, phase, reason, ready, requeue) in cases {
            let step = fold_copy(&spec(revoke), Some(1), &decision, ready_step(), t(0));
            assert_eq!(
                (step.status.phase, step.summary.reason.as_str()),
                (Some(phase), reason)
            );
            assert_eq!(step.summary.ready, ready, "{reason}");
            assert_eq!(step.requeue_after, requeue, "{reason}");
            assert_eq!(step.status.copy, decision.copy.clone());
            let copied = conditions::find(&step.status.conditions, COPIED).unwrap();
            assert_eq!(copied.reason, decision.condition.unwrap().reason);
            if decision.refresh_url {
                let master = step.status.master.unwrap();
                assert_eq!(master.refresh_at, Some(Time(t(0))), "refresh now");
            }
        }
    }

    #[test]
    fn a_verified_copy_whose_access_is_kept_for_others_says_so() {
        let decision = CopyDecision {
            copy: copy(CopyPhase::Succeeded),
            condition: condition("Verified"),
            done: true,
            ..Default::default()
        };
        let mut step = ready_step();
        step.status.master.as_mut().unwrap().url = None;
        step.summary = Summary::ready(ACCESS_KEPT_FOR_OTHERS, "kept for media/b");
        let out = fold_copy(&spec(true), Some(1), &decision, step, t(0));
        assert_eq!(out.status.phase, Some(Phase::Copied));
        assert_eq!(out.summary.reason, "Copied");
        assert_eq!(out.summary.message, "m-Verified; kept for media/b");
        assert!(!out.summary.message.contains("is off"));
    }

    #[test]
    fn without_a_destination_the_copy_and_its_condition_go() {
        let mut spec = spec(false);
        spec.destination = None;
        let mut step = ready_step();
        step.status.copy = copy(CopyPhase::Succeeded);
        step.status.conditions = conditions::merge(
            &[],
            &[Wanted::new(COPIED, true, "Verified", "m")],
            &[COPIED],
            None,
            &Time(t(0)),
        );
        assert!(has_copy_work(&spec, &step.status));
        let out = fold_copy(&spec, Some(2), &CopyDecision::default(), step, t(1));
        assert_eq!(out.status.copy, None);
        assert!(conditions::find(&out.status.conditions, COPIED).is_none());
        assert_eq!(out.summary.reason, "UrlReady", "the rest is untouched");
        assert!(!has_copy_work(&spec, &out.status));
    }

    #[test]
    fn only_a_running_copy_has_a_job_to_observe() {
        let mut status = MasterExportStatus {
            copy: copy(CopyPhase::Running),
            ..Default::default()
        };
        status.copy.as_mut().unwrap().job = Some("j1".into());
        assert_eq!(job_to_observe(&status), Some("j1"));
        status.copy.as_mut().unwrap().phase = CopyPhase::Failed;
        assert_eq!(job_to_observe(&status), None);
    }
}
