//! Why a copy ended: the reason (reported to the controller) and its exit status.

use serde::{Deserialize, Serialize};

/// The outcome of a copy, as the termination message names it. Each has its own exit status
/// ([`Reason::exit_code`]); the table is in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The master was copied and verified.
    Copied,
    /// The destination already held the verified master.
    Skipped,
    /// An unexpected error.
    Failed,
    /// Flags, URL, destination or credentials are unusable.
    BadInput,
    /// The URL answered 401/403: refresh it and run again.
    UrlExpired,
    /// A different object is at the destination and overwriting was not allowed.
    DestinationExists,
    /// A size or SHA-256 mismatch.
    VerificationFailed,
    /// Transient failures went on past the retry budget, or the master kept changing past
    /// the restart budget.
    RetriesExhausted,
    /// The object store refused or failed.
    StoreFailed,
    /// The source answered something final (404, 410, another 4xx).
    SourceFailed,
    /// SIGTERM or SIGINT.
    Interrupted,
    /// The master is not a whole MP4 yet (its boxes do not tile it, or it has no `moov`) and
    /// did not become one within `--incomplete-wait`: a later run may find it whole.
    MasterIncomplete,
}

impl Reason {
    /// Every outcome, in the order of their exit statuses.
    pub const ALL: [Reason; 12] = [
        Reason::Copied,
        Reason::Skipped,
        Reason::Failed,
        Reason::BadInput,
        Reason::UrlExpired,
        Reason::DestinationExists,
        Reason::VerificationFailed,
        Reason::RetriesExhausted,
        Reason::StoreFailed,
        Reason::SourceFailed,
        Reason::Interrupted,
        Reason::MasterIncomplete,
    ];

    /// Whether running the same pod again cannot help, so the copy Job should stop at once
    /// (its `podFailurePolicy` is built from this): the input is unusable, the URL has
    /// expired (the controller fetches a fresh one and starts a new Job), the destination
    /// holds another object, the copy did not verify, or the source refused for good.
    pub fn ends_the_job(self) -> bool {
        match self {
            Reason::BadInput
            | Reason::UrlExpired
            | Reason::DestinationExists
            | Reason::VerificationFailed
            | Reason::SourceFailed => true,
            Reason::Copied
            | Reason::Skipped
            | Reason::Failed
            | Reason::RetriesExhausted
            | Reason::StoreFailed
            | Reason::Interrupted
            | Reason::MasterIncomplete => false,
        }
    }

    /// The process's exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Reason::Copied | Reason::Skipped => 0,
            Reason::Failed => 1,
            Reason::BadInput => 2,
            Reason::UrlExpired => 3,
            Reason::DestinationExists => 4,
            Reason::VerificationFailed => 5,
            Reason::RetriesExhausted => 6,
            Reason::StoreFailed => 7,
            Reason::SourceFailed => 8,
            Reason::Interrupted => 9,
            Reason::MasterIncomplete => 10,
        }
    }

    /// The reason an exit status stands for (`Copied` for 0).
    pub fn from_exit_code(code: i32) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|r| i32::from(r.exit_code()) == code)
    }
}

/// A failed copy: why, and a message a person can act on (never holding a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct CopyError {
    pub reason: Reason,
    pub message: String,
}

impl CopyError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Reason::BadInput, message)
    }

    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(Reason::VerificationFailed, message)
    }

    pub fn interrupted() -> Self {
        Self::new(Reason::Interrupted, "interrupted by a signal")
    }

    /// An object store failure while doing `what`.
    pub fn store(what: impl std::fmt::Display, error: object_store::Error) -> Self {
        Self::new(Reason::StoreFailed, format!("{what}: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_round_trip() {
        let all = [
            Reason::Failed,
            Reason::BadInput,
            Reason::UrlExpired,
            Reason::DestinationExists,
            Reason::VerificationFailed,
            Reason::RetriesExhausted,
            Reason::StoreFailed,
            Reason::SourceFailed,
            Reason::Interrupted,
            Reason::MasterIncomplete,
        ];
        let mut codes: Vec<u8> = all.iter().map(|r| r.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(!codes.contains(&0));
        for reason in all {
            assert_eq!(
                Reason::from_exit_code(reason.exit_code().into()),
                Some(reason)
            );
        }
        assert_eq!(Reason::Skipped.exit_code(), 0);
        assert_eq!(Reason::from_exit_code(0), Some(Reason::Copied));
    }

    #[test]
    fn the_outcomes_that_end_a_job_exit_with_their_own_nonzero_codes() {
        let ending: Vec<u8> = Reason::ALL
            .into_iter()
            .filter(|r| r.ends_the_job())
            .map(Reason::exit_code)
            .collect();
        assert_eq!(ending, vec![2, 3, 4, 5, 8]);
        assert!(
            Reason::ALL
                .into_iter()
                .all(|r| r.exit_code() != 0 || !r.ends_the_job())
        );
    }
}
