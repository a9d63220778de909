//! Events about a MasterExport: which ones a reconcile's change calls for (pure), and
//! publishing them.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};

use super::conditions::{self, Summary};
use super::context::Context;
use super::publisher::published_expiry;
use crate::resource::{MasterExport, MasterExportStatus, Operation, Phase};
use kube::ResourceExt;

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, message)
        }
    }
}

/// The Events for going from `previous` to `status`: a refreshed URL, and a change of
/// phase or of the Ready reason (a warning when a person must act).
///
/// A routine refresh is one Event, `UrlRefreshed`: the phases it passes through (access
/// cycled, the master preparing again, ready again) say nothing a person acts on, and at
/// 10,000 exports three Events per refresh were the apiserver's largest share of writes.
/// A warning is never left out.
pub fn changes(
    previous: &MasterExportStatus,
    status: &MasterExportStatus,
    summary: &Summary,
) -> Vec<Note> {
    let mut notes = Vec::new();
    let old_refreshes = previous.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    let new_refreshes = status.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    let refreshed = new_refreshes > old_refreshes;
    if refreshed {
        notes.push(Note::normal(
            "UrlRefreshed",
            "a fresh master URL replaced the previous one",
        ));
    }
    let refreshing = status
        .pending
        .as_ref()
        .is_some_and(|p| matches!(p.operation, Operation::Cycle | Operation::Renew));
    let routine = !summary.stalled
        && match status.phase {
            Some(Phase::Preparing) => refreshing,
            Some(Phase::Ready) => refreshed,
            _ => false,
        };
    let old_reason =
        conditions::find(&previous.conditions, conditions::READY).map(|c| c.reason.as_str());
    let changed = previous.phase != status.phase || old_reason != Some(summary.reason.as_str());
    if changed && !routine {
        notes.push(Note {
            warning: summary.stalled,
            reason: summary.reason.clone(),
            message: summary.message.clone(),
        });
    }
    notes
}

/// Events and metrics for what changed in this reconcile.
pub async fn announce(
    obj: &MasterExport,
    ctx: &Context,
    previous: &MasterExportStatus,
    status: &MasterExportStatus,
    summary: &Summary,
) {
    ctx.expiries.track(
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
        published_expiry(status),
    );
    let old_refreshes = previous.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    let new_refreshes = status.master.as_ref().map(|m| m.refreshes).unwrap_or(0);
    if new_refreshes > old_refreshes {
        ctx.metrics
            .refreshes
            .inc_by(u64::from(new_refreshes - old_refreshes));
    }
    for note in changes(previous, status, summary) {
        publish(obj, ctx, note).await;
    }
}

/// Publishes one Event about `obj`; a failure is logged, never fatal.
pub async fn publish(obj: &MasterExport, ctx: &Context, note: Note) {
    let event = KubeEvent {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason,
        note: Some(note.message),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::MasterState;

    #[test]
    fn events_follow_refreshes_and_changes_of_phase_or_reason() {
        let ready = |refreshes| MasterExportStatus {
            phase: Some(Phase::Ready),
            master: Some(MasterState {
                refreshes,
                ..Default::default()
            }),
            conditions: conditions::merge(
                &[],
                &Summary::ready("UrlReady", "m").wanted(),
                &[conditions::READY],
                None,
                &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            ),
            ..Default::default()
        };
        let same = Summary::ready("UrlReady", "m");
        assert_eq!(changes(&ready(0), &ready(0), &same), vec![]);
        assert_eq!(
            changes(&ready(0), &ready(1), &same),
            vec![Note::normal(
                "UrlRefreshed",
                "a fresh master URL replaced the previous one"
            )]
        );
        // A refresh passing through Preparing and back to Ready: one Event in all.
        let mut cycling = ready(0);
        cycling.phase = Some(Phase::Preparing);
        cycling.pending = Some(crate::controller::policy::pending(
            Operation::Cycle,
            jiff::Timestamp::UNIX_EPOCH,
        ));
        let preparing = Summary::progressing("MasterPreparing", "p");
        assert_eq!(changes(&ready(0), &cycling, &preparing), vec![]);
        let mut refreshed = ready(1);
        refreshed.conditions = conditions::merge(
            &[],
            &preparing.wanted(),
            &[conditions::READY],
            None,
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        refreshed.phase = Some(Phase::Preparing);
        assert_eq!(
            changes(&refreshed, &ready(1), &same),
            vec![Note::normal("UrlReady", "m")],
            "without a new refresh, Preparing → Ready is a change of phase"
        );
        assert_eq!(
            changes(&cycling, &ready(1), &same),
            vec![Note::normal(
                "UrlRefreshed",
                "a fresh master URL replaced the previous one"
            )],
            "the refresh's end is its one Event"
        );
        // A cycle that fails is a warning still.
        let mut stuck = cycling.clone();
        stuck.phase = Some(Phase::Failed);
        assert_eq!(
            changes(&ready(0), &stuck, &Summary::stalled("MasterErrored", "e")),
            vec![Note::warning("MasterErrored", "e")]
        );
        let stalled = Summary::stalled("AssetErrored", "x");
        let mut failed = ready(0);
        failed.phase = Some(Phase::Failed);
        assert_eq!(
            changes(&ready(0), &failed, &stalled),
            vec![Note::warning("AssetErrored", "x")]
        );
    }
}
