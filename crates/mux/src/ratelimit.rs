//! Client-side rate limiting: one limiter per Mux environment, shared by every caller.
//!
//! Each class of request (POST, everything else) has a GCRA bucket: a request reserves the
//! next slot and sleeps until it comes, so waiting callers are served in order and nobody
//! spins. A 429 from Mux halves the rate and pauses the bucket for `Retry-After` (or one
//! interval); the rate then climbs back linearly to the configured one over
//! [`RECOVERY`] without 429s, so a limit set too high settles near what Mux allows.
//! Mux's own count comes back with each answer (`X-RateLimit-Remaining`): when it is lower
//! than this bucket's burst (another client spends the token's budget, or requests reached
//! Mux closer together than they left), the next slot is skipped, so Mux's bucket refills
//! before it runs dry instead of after a 429.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The rate of one class of requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// How many may go at once after a quiet spell.
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

/// The slowest a bucket goes after repeated 429s, as a share of the configured rate.
const MIN_SHARE: f64 = 0.1;
/// How long the rate takes to climb back to the configured one after a 429.
pub const RECOVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Bucket {
    configured: Rate,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// The rate right after the last 429 (the configured rate before any).
    throttled_rate: f64,
    throttled_at: Instant,
    /// Theoretical arrival time of the next request (GCRA).
    tat: Instant,
}

impl Bucket {
    pub fn new(rate: Rate) -> Self {
        assert!(rate.per_second > 0.0, "a rate must be positive");
        Self {
            configured: rate,
            state: Mutex::new(BucketState {
                throttled_rate: rate.per_second,
                throttled_at: Instant::now(),
                tat: Instant::now(),
            }),
        }
    }

    /// Reserves a slot and returns when the request may go.
    pub async fn acquire(&self) {
        let at = self.reserve(Instant::now());
        tokio::time::sleep_until(at).await;
    }

    /// Reserves the next slot at or after `now` and returns its time. Pure bookkeeping.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.state.lock().expect("rate limiter lock");
        let interval = Duration::from_secs_f64(1.0 / self.rate_at(&state, now));
        let tolerance = interval * self.configured.burst.saturating_sub(1);
        let tat = state.tat.max(now);
        let allowed_at = tat.checked_sub(tolerance).unwrap_or(now).max(now);
        state.tat = tat + interval;
        allowed_at
    }

    /// Mux answered with `remaining` requests left in its own bucket: below this bucket's
    /// burst, the next slot is skipped (one interval of the current rate).
    pub fn mux_remaining(&self, remaining: u64) {
        if remaining >= u64::from(self.configured.burst) {
            return;
        }
        let now = Instant::now();
        let mut state = self.state.lock().expect("rate limiter lock");
        let interval = Duration::from_secs_f64(1.0 / self.rate_at(&state, now));
        state.tat = state.tat.max(now) + interval;
    }

    /// Mux said 429: halve the rate and hold every request back for `retry_after`.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("rate limiter lock");
        let floor = self.configured.per_second * MIN_SHARE;
        let rate = (self.rate_at(&state, now) / 2.0).max(floor);
        state.throttled_rate = rate;
        state.throttled_at = now;
        let pause = retry_after.unwrap_or(Duration::from_secs_f64(1.0 / rate));
        state.tat = state.tat.max(now + pause);
    }

    /// The sustained rate at `now`: back to the configured one [`RECOVERY`] after a 429.
    fn rate_at(&self, state: &BucketState, now: Instant) -> f64 {
        let configured = self.configured.per_second;
        let progress = (now
            .saturating_duration_since(state.throttled_at)
            .as_secs_f64()
            / RECOVERY.as_secs_f64())
        .min(1.0);
        state.throttled_rate + (configured - state.throttled_rate) * progress
    }

    /// The current sustained rate.
    pub fn current_rate(&self) -> f64 {
        let state = self.state.lock().expect("rate limiter lock");
        self.rate_at(&state, Instant::now())
    }
}

/// The two buckets of one Mux environment.
#[derive(Debug)]
pub struct RateLimiter {
    pub post: Bucket,
    pub other: Bucket,
}

impl RateLimiter {
    pub fn new(post: Rate, other: Rate) -> Self {
        Self {
            post: Bucket::new(post),
            other: Bucket::new(other),
        }
    }

    pub fn bucket(&self, method: &http::Method) -> &Bucket {
        if method == http::Method::POST {
            &self.post
        } else {
            &self.other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate_after_the_burst() {
        let bucket = Bucket::new(Rate::new(5.0, 2));
        let now = Instant::now();
        let slots: Vec<_> = (0..5).map(|_| bucket.reserve(now) - now).collect();
        let ms: Vec<u128> = slots.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 0, 200, 400, 600]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_refills_the_burst_but_no_more() {
        let bucket = Bucket::new(Rate::new(1.0, 3));
        let start = Instant::now();
        for _ in 0..3 {
            bucket.reserve(start);
        }
        let later = start + Duration::from_secs(60);
        let slots: Vec<u128> = (0..4)
            .map(|_| (bucket.reserve(later) - later).as_millis())
            .collect();
        assert_eq!(slots, vec![0, 0, 0, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn mux_running_low_skips_the_next_slot_and_a_full_bucket_skips_none() {
        let bucket = Bucket::new(Rate::new(10.0, 3));
        let now = Instant::now();
        // Plenty left at Mux (its count at least our burst): nothing changes.
        bucket.mux_remaining(3);
        let slots: Vec<u128> = (0..4)
            .map(|_| (bucket.reserve(now) - now).as_millis())
            .collect();
        assert_eq!(slots, vec![0, 0, 0, 100]);
        // Mux has 1 left: the slot at 200 ms is skipped, the next request goes at 300 ms.
        bucket.mux_remaining(1);
        assert_eq!((bucket.reserve(now) - now).as_millis(), 300);
        // The rate itself is unchanged (no 429 was seen).
        assert_eq!(bucket.current_rate(), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_rate_pauses_and_time_recovers_it() {
        let bucket = Bucket::new(Rate::new(4.0, 1));
        bucket.throttled(Some(Duration::from_secs(2)));
        assert_eq!(bucket.current_rate(), 2.0);
        let now = Instant::now();
        assert!(bucket.reserve(now) - now >= Duration::from_secs(2));
        tokio::time::advance(RECOVERY / 2).await;
        assert!((bucket.current_rate() - 3.0).abs() < 1e-9);
        tokio::time::advance(RECOVERY).await;
        assert_eq!(bucket.current_rate(), 4.0);
        for _ in 0..10 {
            bucket.throttled(None);
        }
        assert!(
            (bucket.current_rate() - 0.4).abs() < 1e-9,
            "floored at a tenth"
        );
    }
}
