//! What access a resource wants now, and whether a reconcile may skip Mux altogether.

use jiff::Timestamp;

use crate::resource::{
    Access, CopyPhase, MasterExport, MasterExportSpec, MasterExportStatus, Phase,
};

/// Whether a resource needs master access to its asset now: it is not being deleted, and
/// its access (after a verified copy that asks to revoke: `none`) is `temporary`. The access
/// an asset gets is decided from this, over every resource on it: `none` only when none does.
pub fn wants_url(obj: &MasterExport) -> bool {
    let status = obj.status.clone().unwrap_or_default();
    obj.metadata.deletion_timestamp.is_none()
        && effective_access(&obj.spec, &status) == Access::Temporary
}

/// Whether this reconcile can skip Mux entirely: the URL is fresh, nothing is in flight and
/// the spec has not changed. This keeps a restart of the operator from costing one API call
/// per resource.
pub fn can_skip_mux(
    spec: &MasterExportSpec,
    status: &MasterExportStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let settled = status.observed_generation.is_some()
        && status.observed_generation == generation
        && status.pending.is_none();
    let copy_settled = spec.destination.is_none() || copy_done(spec, status);
    let fresh = effective_access(spec, status) == Access::Temporary
        && matches!(status.phase, Some(Phase::Ready | Phase::Copied))
        && status
            .master
            .as_ref()
            .and_then(|m| m.refresh_at.as_ref())
            .is_some_and(|r| r.0 > now);
    let revoked = effective_access(spec, status) == Access::None
        && matches!(status.phase, Some(Phase::Revoked | Phase::Copied))
        && status.master.as_ref().is_none_or(|m| m.url.is_none());
    settled && copy_settled && !spec.suspend && (fresh || revoked)
}

/// A verified copy of the master is at the spec's current destination.
pub fn copy_done(spec: &MasterExportSpec, status: &MasterExportStatus) -> bool {
    match (&spec.destination, &status.copy) {
        (Some(destination), Some(copy)) => {
            crate::controller::copy_policy::is_of(copy, destination)
                && copy.phase == CopyPhase::Succeeded
        }
        _ => false,
    }
}

/// The access wanted now: `none` once a verified copy exists and `afterCopy.revokeAccess`
/// asks for it (and never before), else the spec's.
pub fn effective_access(spec: &MasterExportSpec, status: &MasterExportStatus) -> Access {
    let revoke_after_copy = spec.after_copy.as_ref().is_some_and(|a| a.revoke_access);
    if revoke_after_copy && copy_done(spec, status) {
        Access::None
    } else {
        spec.access
    }
}
