//! A new export's first call: `PUT master_access=temporary` before any GET, its answer (the
//! whole asset) standing for the read.
//!
//! Today's path for a new export is GET, then PUT: two calls before the master even starts
//! preparing. A PUT alone tells as much, since Mux answers it with the asset. What the GET
//! protected stays protected:
//! - the asset missing: the PUT's 404 is the GET's (`AssetNotFound`, a person must act);
//! - an asset the PUT is refused on (errored, or a state Mux does not accept it in: a 4xx
//!   other than 404): the reconciler falls back to the GET and decides over it, as before;
//! - a master already ready when our PUT is answered: it was not prepared for this request
//!   (someone else's grant, or a renewal Mux may count from an earlier request), so its
//!   window is unknown: [`first_answer`] drops the request from what is decided over, and
//!   the URL is handled as a GET would have found it (renewed once, issue 12's rule);
//! - live-stream sources: their recording is chosen from the stream first (not here);
//! - an asset another resource of this operator names, or has a grant of on record: issue
//!   12's sharing rules (`known_grant`, access kept for others) need the asset read first;
//! - a restart: a status holding anything (a pending request, a master, an asset) is not new;
//! - rate limits and Mux being down: the error path, as for any call (the intent recorded
//!   before the PUT makes the next reconcile read before acting again).
//!
//! One thing the GET saw that the PUT's answer cannot show: a master that someone outside
//! this operator requested moments earlier and that is still preparing looks the same as
//! ours. Its window (if Mux counts from the request) would then have begun up to that
//! preparation time before our recorded `requestedAt`. The GET-then-PUT path has the same gap
//! between its two calls; the refresh (`refreshBefore`, 2 h by default, well above a
//! preparation) comes before that earlier expiry.

use super::conditions::Summary;
use super::{Decision, MasterExportSpec, MasterExportStatus};
use crate::resource::{Access, MasterStage, MasterState, Operation, Phase};
use mux::types::{Asset, MasterAccess, MasterStatus};

/// What is known about a resource before reading its asset.
#[derive(Debug, Clone)]
pub struct BeforeReading<'a> {
    /// The spec, with the access wanted now (`effective_access`).
    pub spec: &'a MasterExportSpec,
    pub status: &'a MasterExportStatus,
    pub generation: Option<i64>,
    /// Another resource of this operator names the asset, or a grant of it is on record.
    pub shared: bool,
    /// A webhook snapshot stands for the asset: reading it costs nothing.
    pub snapshot: bool,
}

/// The status of a resource that never got as far as its asset: no asset, master or
/// request recorded (a new resource, or one that failed before reaching Mux's asset).
pub fn never_observed(status: &MasterExportStatus) -> bool {
    status.asset.is_none() && status.master.is_none() && status.pending.is_none()
}

/// The request to make before any read, when the resource is new, wants access, names an
/// asset (not a live stream) that no other resource of ours shares, and no snapshot stands
/// for the asset. The decision carries the intent to record, as [`super::decide`]'s do.
pub fn request_first(before: &BeforeReading<'_>) -> Option<Decision> {
    let spec = before.spec;
    let applies = spec.access == Access::Temporary
        && !spec.suspend
        && spec.source.asset_id.is_some()
        && spec.source.live_stream_id.is_none()
        && never_observed(before.status)
        && !before.shared
        && !before.snapshot;
    if !applies {
        return None;
    }
    let mut status = before.status.clone();
    status.observed_generation = before.generation;
    status.phase = Some(Phase::Preparing);
    status.master = Some(MasterState {
        status: MasterStage::None,
        ..Default::default()
    });
    Some(Decision {
        call: Some((Operation::Request, MasterAccess::Temporary)),
        status,
        summary: Summary::progressing("RequestingAccess", "asking Mux for master access"),
        requeue_after: None,
    })
}

/// The status to decide over once the first request is answered with `answer`: the intent
/// as recorded, except when the master was already ready (not prepared for this request:
/// its window is unknown, as if a GET had found it), where the request is left out.
pub fn first_answer(intent: &MasterExportStatus, answer: &Asset) -> MasterExportStatus {
    let mut status = intent.clone();
    if answer.master_status() == Some(MasterStatus::Ready) {
        status.pending = None;
    }
    status
}

/// Whether a refusal of the first request should be followed by a GET and a decision over
/// it: a 4xx other than 404 (Mux would not take the request in the asset's state; the GET
/// says which state, e.g. errored).
pub fn read_after_refusal(kind: mux::ErrorKind) -> bool {
    kind == mux::ErrorKind::BadRequest
}
