//! Progress in the log at a steady pace: bytes done, the latest known total, the rate.

use std::time::{Duration, Instant};

use super::units::human;

pub struct Progress {
    interval: Duration,
    started: Instant,
    last: Instant,
    last_done: u64,
}

impl Progress {
    pub fn new(interval: Duration) -> Self {
        let now = Instant::now();
        Progress {
            interval,
            started: now,
            last: now,
            last_done: 0,
        }
    }

    /// Logs if `interval` has passed since the last line.
    pub fn update(&mut self, done: u64, total: Option<u64>) {
        if self.last.elapsed() >= self.interval {
            self.log(done, total);
        }
    }

    /// Logs now.
    pub fn log(&mut self, done: u64, total: Option<u64>) {
        let now = Instant::now();
        let seconds = now.duration_since(self.last).as_secs_f64().max(1e-3);
        let rate = done.saturating_sub(self.last_done) as f64 / seconds / 1e6;
        let percent = total
            .filter(|t| *t > 0)
            .map(|t| format!(" ({:.1}%)", done as f64 * 100.0 / t as f64))
            .unwrap_or_default();
        let of_total = total
            .map(|t| format!(" of {}", human(t)))
            .unwrap_or_default();
        tracing::info!(
            done,
            total,
            rate_mb_s = (rate * 10.0).round() / 10.0,
            "copied {}{of_total}{percent} at {rate:.1} MB/s",
            human(done)
        );
        // The controller's reading of the same numbers (the pod's log; see `progress_line`).
        super::progress_line::ProgressLine {
            done,
            total,
            bytes_per_second: (rate * 1e6) as u64,
        }
        .emit();
        self.last = now;
        self.last_done = done;
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
