//! The copy's phase and reason in the status: enums, serialised as the strings stored before.

use serde::{Deserialize, Serialize};

/// Where a copy stands (a string in the CRD, as before this was an enum).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CopyPhase {
    #[default]
    Running,
    Succeeded,
    Failed,
}

/// Why a copy attempt ended: the copier's own reason ([`crate::copy::Reason`], by the same
/// name), or what the controller saw of a Job that left no report. A string in the CRD.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReason {
    Copied,
    Skipped,
    Failed,
    BadInput,
    UrlExpired,
    DestinationExists,
    VerificationFailed,
    RetriesExhausted,
    StoreFailed,
    SourceFailed,
    Interrupted,
    /// The master was not yet a whole MP4 when the copier gave up waiting (retryable).
    MasterIncomplete,
    /// The Job failed and its pod left no report.
    JobFailed,
    /// The Job disappeared before it finished.
    JobMissing,
    /// The Job succeeded but its pod left no readable report (size and digest).
    ReportMissing,
}

impl From<crate::copy::Reason> for CopyReason {
    fn from(reason: crate::copy::Reason) -> Self {
        use crate::copy::Reason;
        match reason {
            Reason::Copied => CopyReason::Copied,
            Reason::Skipped => CopyReason::Skipped,
            Reason::Failed => CopyReason::Failed,
            Reason::BadInput => CopyReason::BadInput,
            Reason::UrlExpired => CopyReason::UrlExpired,
            Reason::DestinationExists => CopyReason::DestinationExists,
            Reason::VerificationFailed => CopyReason::VerificationFailed,
            Reason::RetriesExhausted => CopyReason::RetriesExhausted,
            Reason::StoreFailed => CopyReason::StoreFailed,
            Reason::SourceFailed => CopyReason::SourceFailed,
            Reason::Interrupted => CopyReason::Interrupted,
            Reason::MasterIncomplete => CopyReason::MasterIncomplete,
        }
    }
}

impl CopyReason {
    /// The name, as the status and conditions carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyReason::Copied => "Copied",
            CopyReason::Skipped => "Skipped",
            CopyReason::Failed => "Failed",
            CopyReason::BadInput => "BadInput",
            CopyReason::UrlExpired => "UrlExpired",
            CopyReason::DestinationExists => "DestinationExists",
            CopyReason::VerificationFailed => "VerificationFailed",
            CopyReason::RetriesExhausted => "RetriesExhausted",
            CopyReason::StoreFailed => "StoreFailed",
            CopyReason::SourceFailed => "SourceFailed",
            CopyReason::MasterIncomplete => "MasterIncomplete",
            CopyReason::Interrupted => "Interrupted",
            CopyReason::JobFailed => "JobFailed",
            CopyReason::JobMissing => "JobMissing",
            CopyReason::ReportMissing => "ReportMissing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::Reason;

    #[test]
    fn a_copy_reason_is_the_copiers_reason_by_the_same_name() {
        for reason in Reason::ALL {
            let ours = CopyReason::from(reason);
            assert_eq!(
                serde_json::to_value(ours).unwrap(),
                serde_json::to_value(reason).unwrap()
            );
            assert_eq!(serde_json::to_value(ours).unwrap(), ours.as_str());
        }
    }
}
