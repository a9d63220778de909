//! Transient failures and the waits between them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::error::{CopyError, Reason};

/// The longest wait between retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Transient failures: at most `--max-retries` in a row without progress, with a delay that
/// doubles from `--retry-delay` up to 30 s.
pub struct Retries<'a> {
    in_a_row: u32,
    pub total: u32,
    max: u32,
    base: Duration,
    cancel: &'a CancellationToken,
}

impl<'a> Retries<'a> {
    pub fn new(args: &CopyArgs, cancel: &'a CancellationToken) -> Self {
        Retries {
            in_a_row: 0,
            total: 0,
            max: args.max_retries,
            base: args.retry_delay,
            cancel,
        }
    }

    /// Counts a failure (after progress, the count starts again), gives up past the budget,
    /// else waits before the retry.
    pub async fn failed(&mut self, why: String, progressed: bool) -> Result<(), CopyError> {
        if progressed {
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        if self.in_a_row > self.max {
            return Err(CopyError::new(
                Reason::RetriesExhausted,
                format!(
                    "gave up after {} failures in a row without progress; the last: {why}",
                    self.in_a_row
                ),
            ));
        }
        self.total += 1;
        let delay = self
            .base
            .saturating_mul(1 << (self.in_a_row - 1).min(16))
            .min(MAX_RETRY_DELAY);
        tracing::warn!(
            "{why}: resuming in {delay:?} (failure {} of at most {} in a row)",
            self.in_a_row,
            self.max
        );
        sleep(delay, self.cancel).await
    }
}

/// Sleeps, unless cancelled first.
pub async fn sleep(duration: Duration, cancel: &CancellationToken) -> Result<(), CopyError> {
    tokio::select! {
        _ = tokio::time::sleep(duration) => Ok(()),
        _ = cancel.cancelled() => Err(CopyError::interrupted()),
    }
}
