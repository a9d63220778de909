//! Deleting the asset from Mux after a verified copy (`afterCopy.deleteAsset`): pure decisions.
//!
//! The guards, in the order they are checked ([`plan`]):
//! 1. a deletion once made stays recorded, whatever the spec says since;
//! 2. the field must be set: removing it cancels a scheduled deletion;
//! 3. a verified copy (Succeeded at the current destination, with size and SHA-256);
//! 4. the operator's `--allow-asset-deletion` (refused otherwise, with a Stalled condition);
//! 5. the grace period `deleteAfter`, counted from when the deletion was scheduled;
//! 6. no other MasterExport on the asset still needs master access (deleting the asset
//!    deletes it for them too: the deletion is held until none does);
//! 7. then, just before the call, the archived object is read again: it must exist with the
//!    recorded size and SHA-256 ([`confirm`]).
//!
//! A deletion refused for want of the flag is scheduled anew (a fresh grace period) once the
//! flag is given: whoever set the field had no grace period that counted.

use std::time::Duration;

use jiff::Timestamp;

use super::access::copy_done;
use super::timing::{add, time, until};
use crate::controller::conditions::Summary;
use crate::resource::{AssetDeletion, DeletionState, MasterExportSpec, MasterExportStatus};

/// How often a held deletion looks again (another MasterExport on the asset, a failed check).
pub const HELD_RECHECK: Duration = Duration::from_secs(60);

/// What the deletion concern sees.
#[derive(Debug, Clone)]
pub struct DeletionInput<'a> {
    pub spec: &'a MasterExportSpec,
    pub status: &'a MasterExportStatus,
    /// Whether the operator runs with `--allow-asset-deletion`.
    pub allowed: bool,
    /// The other resources on the asset that need master access now (`namespace/name`).
    pub others_wanting: &'a [String],
    pub now: Timestamp,
}

/// What to do about the deletion now.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletionPlan {
    /// Not asked for, nothing recorded.
    Off,
    /// Asked for, but no verified copy (yet, or any more at this destination): no record.
    WaitingForCopy,
    /// The field was removed before the deletion was made: the record goes (an Event says so).
    Cancelled(AssetDeletion),
    /// Record this and look again after `wake_in` (`None`: on a change only).
    Wait {
        record: AssetDeletion,
        wake_in: Option<Duration>,
    },
    /// Due: check the archive again ([`confirm`]), then delete.
    Due(AssetDeletion),
    /// Deleted: nothing more to do at Mux.
    Done(AssetDeletion),
}

/// The grace period the spec asks for (an unparsable one, which the CRD refuses, is the
/// default 24 h: never shorter than asked).
pub fn grace(spec: &MasterExportSpec) -> Duration {
    spec.after_copy
        .as_ref()
        .and_then(|a| mux::duration::parse(&a.delete_after).ok())
        .unwrap_or(Duration::from_secs(24 * 3600))
}

pub fn plan(input: &DeletionInput<'_>) -> DeletionPlan {
    let previous = input.status.deletion.as_ref();
    if let Some(record) = previous.filter(|r| r.state == DeletionState::Deleted) {
        return DeletionPlan::Done(record.clone());
    }
    let wanted = input
        .spec
        .after_copy
        .as_ref()
        .is_some_and(|a| a.delete_asset);
    if !wanted {
        return match previous {
            Some(record) => DeletionPlan::Cancelled(record.clone()),
            None => DeletionPlan::Off,
        };
    }
    let Some(verified) = verified_archive(input.spec, input.status) else {
        return DeletionPlan::WaitingForCopy;
    };
    // The same archive, scheduled while the deletion could count: the grace runs on.
    let scheduled_at = previous
        .filter(|r| same_archive(r, &verified) && r.state != DeletionState::Refused)
        .map(|r| r.scheduled_at.0)
        .unwrap_or(input.now);
    let due_at = add(scheduled_at, grace(input.spec));
    let mut record = AssetDeletion {
        scheduled_at: time(scheduled_at),
        due_at: time(due_at),
        checked_at: previous.and_then(|r| r.checked_at.clone()),
        ..verified
    };
    if !input.allowed {
        record.state = DeletionState::Refused;
        record.message = Some(format!(
            "afterCopy.deleteAsset is set, but this operator runs without --allow-asset-deletion: asset {} is not deleted from Mux",
            record.asset_id
        ));
        return DeletionPlan::Wait {
            record,
            wake_in: None,
        };
    }
    if input.now < due_at {
        record.state = DeletionState::Scheduled;
        record.message = Some(format!(
            "asset {} is deleted from Mux at {due_at} (after a fresh check of {}), unless afterCopy.deleteAsset is removed first",
            record.asset_id, record.object
        ));
        return DeletionPlan::Wait {
            record,
            wake_in: Some(until(input.now, due_at).max(Duration::from_millis(100))),
        };
    }
    if !input.others_wanting.is_empty() {
        record.state = DeletionState::Held;
        record.message = Some(format!(
            "deleting asset {} from Mux waits: other MasterExports still need it ({}); deleting it would delete it for them",
            record.asset_id,
            input.others_wanting.join(", ")
        ));
        return DeletionPlan::Wait {
            record,
            wake_in: Some(HELD_RECHECK),
        };
    }
    DeletionPlan::Due(record)
}

/// The fresh check just before the call: the archived object exists, with the recorded size
/// and a recorded SHA-256 (consistent with its size) equal to the verified one. `found` is the
/// object's size and its verified recorded digest, `None` when there is no object.
pub fn confirm(record: &AssetDeletion, found: Option<(u64, Option<&str>)>) -> Result<(), String> {
    let object = &record.object;
    let Some((size, sha256)) = found else {
        return Err(format!(
            "the archived object {object} is gone: asset {} is not deleted from Mux",
            record.asset_id
        ));
    };
    if size != record.size {
        return Err(format!(
            "the archived object {object} has {size} bytes, not the verified {}: asset {} is not deleted from Mux",
            record.size, record.asset_id
        ));
    }
    match sha256 {
        Some(sha) if sha == record.sha256 => Ok(()),
        Some(sha) => Err(format!(
            "the archived object {object} records SHA-256 {sha}, not the verified {}: asset {} is not deleted from Mux",
            record.sha256, record.asset_id
        )),
        None => Err(format!(
            "the archived object {object} records no SHA-256 matching its size: asset {} is not deleted from Mux",
            record.asset_id
        )),
    }
}

/// The summary a reconcile shows for a deletion record, over the copy's own (`copied`).
pub fn summary(record: &AssetDeletion, copied: &Summary) -> Summary {
    let message = record.message.clone().unwrap_or_default();
    match record.state {
        DeletionState::Scheduled if copied.ready => {
            Summary::ready("AssetDeletionScheduled", message)
        }
        DeletionState::Scheduled => copied.clone(),
        DeletionState::Refused => Summary::stalled("AssetDeletionNotAllowed", message),
        DeletionState::Held => Summary::progressing("AssetDeletionHeld", message),
        DeletionState::CheckFailed => Summary::stalled("ArchiveCheckFailed", message),
        DeletionState::Deleting => Summary::progressing("DeletingAsset", message),
        DeletionState::Deleted => Summary::ready("AssetDeleted", message),
    }
}

/// The verified archive of the current destination, as a record to schedule.
fn verified_archive(spec: &MasterExportSpec, status: &MasterExportStatus) -> Option<AssetDeletion> {
    if !copy_done(spec, status) {
        return None;
    }
    let copy = status.copy.as_ref()?;
    let asset_id = status.asset.as_ref().map(|a| a.id.clone())?;
    Some(AssetDeletion {
        state: DeletionState::Scheduled,
        asset_id,
        object: copy
            .object
            .clone()
            .unwrap_or_else(|| copy.destination.clone()),
        size: copy.size?,
        sha256: copy.sha256.clone()?,
        scheduled_at: time(Timestamp::UNIX_EPOCH),
        due_at: time(Timestamp::UNIX_EPOCH),
        checked_at: None,
        deleted_at: None,
        message: None,
    })
}

fn same_archive(a: &AssetDeletion, b: &AssetDeletion) -> bool {
    (&a.asset_id, &a.object, a.size, &a.sha256) == (&b.asset_id, &b.object, b.size, &b.sha256)
}

#[cfg(test)]
#[path = "deletion_tests.rs"]
mod tests;
