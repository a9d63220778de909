//! Deleting the asset from Mux after a verified copy (`afterCopy.deleteAsset`): the I/O around
//! the pure plan of `policy::deletion`. The fresh check of the archive runs here, in the
//! operator process, with the destination's credentials read from its Secret (the copy pod
//! has long finished); the call is recorded (`Deleting`) before it is made.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::conditions::Summary;
use super::context::Context;
use super::error::Error;
use super::events::{self, Note};
use super::mux_calls::mux_client;
use super::policy::deletion::{self as plan, DeletionInput, DeletionPlan, HELD_RECHECK};
use super::policy::{Step, time};
use super::publisher::Publisher;
use crate::resource::{
    AssetDeletion, DeletionState, MasterExport, MasterExportStatus, MasterStage, MasterState,
};

/// Whether the reconcile must look at the deletion (and so may not skip Mux): the field is
/// set, or a record is there to keep or cancel.
pub fn involved(obj: &MasterExport, status: &MasterExportStatus) -> bool {
    let asked = obj.spec.after_copy.as_ref().is_some_and(|a| a.delete_asset);
    let done = status
        .deletion
        .as_ref()
        .is_some_and(|d| d.state == DeletionState::Deleted);
    (asked || status.deletion.is_some()) && !done
}

/// An asset already deleted from Mux: nothing more to ask Mux (it would answer 404). The
/// status is brought to the current generation if it lags; `None` when not deleted.
pub async fn after_deleted(
    obj: &MasterExport,
    ctx: &Context,
    previous: &MasterExportStatus,
) -> Result<Option<Action>, Error> {
    let Some(record) = previous
        .deletion
        .as_ref()
        .filter(|d| d.state == DeletionState::Deleted)
    else {
        return Ok(None);
    };
    let generation = obj.meta().generation;
    if previous.observed_generation != generation {
        let mut status = previous.clone();
        status.observed_generation = generation;
        let summary = plan::summary(record, &Summary::ready("Copied", ""));
        Publisher::new(obj, ctx, previous)
            .publish(&mut status, &summary)
            .await?;
    }
    Ok(Some(Action::await_change()))
}

/// Folds the deletion into a reconcile's step: schedules, keeps, cancels, or (when due, and
/// the archive checks out) deletes the asset.
pub async fn step(
    obj: &MasterExport,
    ctx: &Context,
    publisher: &mut Publisher<'_>,
    mut step: Step,
) -> Result<Step, Error> {
    let asset_id = step.status.asset.as_ref().map(|a| a.id.clone());
    let others = asset_id
        .as_deref()
        .map(|id| ctx.others_wanting(id, obj))
        .unwrap_or_default();
    let decided = plan::plan(&DeletionInput {
        spec: &obj.spec,
        status: &step.status,
        allowed: ctx.settings.allow_asset_deletion,
        others_wanting: &others,
        now: Timestamp::now(),
    });
    let record = match decided {
        DeletionPlan::Off | DeletionPlan::WaitingForCopy => {
            step.status.deletion = None;
            return Ok(step);
        }
        DeletionPlan::Cancelled(record) => {
            step.status.deletion = None;
            let message = format!(
                "afterCopy.deleteAsset was removed: asset {} is not deleted from Mux",
                record.asset_id
            );
            events::publish(obj, ctx, Note::normal("AssetDeletionCancelled", message)).await;
            return Ok(step);
        }
        DeletionPlan::Done(record) => return Ok(with_record(step, record, None)),
        DeletionPlan::Wait { record, wake_in } => return Ok(with_record(step, record, wake_in)),
        DeletionPlan::Due(record) => record,
    };
    // Due: the archived object, read again just before the call.
    let checked = check_archive(obj, ctx, &record).await;
    let mut record = AssetDeletion {
        checked_at: Some(time(Timestamp::now())),
        ..record
    };
    if let Err(why) = checked {
        let changed = step.status.deletion.as_ref().map(|d| (d.state, &d.message))
            != Some((DeletionState::CheckFailed, &Some(why.clone())));
        if changed {
            events::publish(obj, ctx, Note::warning("AssetDeletionHeld", why.clone())).await;
        }
        record.state = DeletionState::CheckFailed;
        record.message = Some(why);
        return Ok(with_record(step, record, Some(HELD_RECHECK)));
    }
    // The intent first: a restart finds `Deleting`, checks again and deletes (a second
    // DELETE of a deleted asset finds it gone).
    record.state = DeletionState::Deleting;
    record.message = Some(format!("deleting asset {} from Mux", record.asset_id));
    let mut intent = step.status.clone();
    intent.deletion = Some(record.clone());
    publisher
        .publish(&mut intent, &plan::summary(&record, &step.summary))
        .await?;
    let mux = mux_client(obj, ctx).await?;
    tracing::info!(name = %obj.name_any(), asset = %record.asset_id, "deleting the asset from Mux");
    let deleted = mux.delete_asset(&record.asset_id).await?;
    let now = Timestamp::now();
    record.state = DeletionState::Deleted;
    record.deleted_at = Some(time(now));
    let how = match deleted {
        mux::Deleted::Now => "deleted from Mux",
        mux::Deleted::AlreadyGone => "gone from Mux (it was already deleted when asked)",
    };
    record.message = Some(format!(
        "asset {} {how} at {now}; its verified archive: {} ({} bytes, SHA-256 {})",
        record.asset_id, record.object, record.size, record.sha256
    ));
    // Its master URL died with it.
    let previous_master = step.status.master.clone().unwrap_or_default();
    step.status.master = Some(MasterState {
        status: MasterStage::None,
        url_secret_ref: previous_master.url_secret_ref,
        refreshes: previous_master.refreshes,
        ..Default::default()
    });
    step.status.pending = None;
    ctx.expiries
        .track(&obj.namespace().unwrap_or_default(), &obj.name_any(), None);
    Ok(with_record(step, record, None))
}

/// The step with the deletion's record, its summary and its wake-up.
fn with_record(mut step: Step, record: AssetDeletion, wake_in: Option<Duration>) -> Step {
    step.summary = plan::summary(&record, &step.summary);
    step.requeue_after = match (step.requeue_after, wake_in) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if record.state == DeletionState::Deleted {
        step.requeue_after = None;
    }
    step.status.deletion = Some(record);
    step
}

/// Reads the archived object again, with the destination's credentials: `Ok` only if it is
/// there with the recorded size and SHA-256.
async fn check_archive(
    obj: &MasterExport,
    ctx: &Context,
    record: &AssetDeletion,
) -> Result<(), String> {
    let namespace = obj.namespace().unwrap_or_default();
    let destination = obj.spec.destination.clone().unwrap_or_default();
    let cannot = |e: String| {
        format!(
            "cannot check the archived object {} ({e}): asset {} is not deleted from Mux",
            record.object, record.asset_id
        )
    };
    let (store, path) =
        crate::exportset::store::open(&ctx.client, &namespace, &destination, &record.object)
            .await
            .map_err(cannot)?;
    let found = crate::copy::recorded_object(store.as_ref(), &path)
        .await
        .map_err(|e| cannot(e.to_string()))?;
    plan::confirm(
        record,
        found.as_ref().map(|f| (f.size, f.verified_sha256())),
    )
}
