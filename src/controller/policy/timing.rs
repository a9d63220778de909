//! The clock arithmetic of the policy: when a URL expires, when to refresh it, how fast to
//! poll. Saturating everywhere: a misconfiguration must not panic a reconcile.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Settings;
use crate::resource::MasterExportSpec;

/// A URL is withdrawn this long before it expires, so that no reader ever finds it published
/// past its expiry (the withdrawal itself takes a write).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(1);

/// `now` moved forward by [`EXPIRY_MARGIN`]: a URL expiring by then counts as expired.
pub fn with_margin(now: Timestamp) -> Timestamp {
    add(now, EXPIRY_MARGIN)
}

/// A `Time` for the status.
pub fn time(t: Timestamp) -> Time {
    Time(t)
}

pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

pub(crate) fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN)
}

/// `later − earlier`, zero when `later` is not later.
pub fn until(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The `refreshBefore` of the spec; the CRD guarantees it parses, but be safe.
pub fn refresh_before(spec: &MasterExportSpec) -> Duration {
    mux::duration::parse(&spec.refresh_before).unwrap_or(Duration::from_secs(7200))
}

/// How far before `expiresAt − refreshBefore` a resource's refresh may be drawn: the whole
/// `refreshBefore` (URLs requested together, a MasterExportSet's thousands, then refresh over
/// that much time: 10,000 refreshes of 2 PUTs over a quarter of 2 h would ask Mux for 11
/// requests/s, over twice its budget, and over the whole 2 h for 2.8/s), but no more than a
/// quarter of the rest of the lifetime, so a long `refreshBefore` does not refresh far more
/// often.
pub fn spread_window(refresh_before: Duration, lifetime: Duration) -> Duration {
    refresh_before.min(lifetime.saturating_sub(refresh_before) / 4)
}

/// When to refresh a URL requested at `requested_at`.
pub fn refresh_at(
    requested_at: Timestamp,
    settings: &Settings,
    refresh_before: Duration,
    spread_seed: u64,
) -> Timestamp {
    let expires_at = add(requested_at, settings.url_lifetime);
    let window = spread_window(refresh_before, settings.url_lifetime);
    let spread = if window.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_millis(spread_seed % (window.as_millis() as u64).max(1))
    };
    let at = sub(expires_at, refresh_before + spread);
    if at <= requested_at {
        // refreshBefore is longer than the URL lives: refresh halfway instead.
        add(requested_at, settings.url_lifetime / 2)
    } else {
        at
    }
}

/// How long to wait before polling a master that has been preparing since `since`.
pub fn poll_interval(since: Option<Timestamp>, now: Timestamp, settings: &Settings) -> Duration {
    let waited = since.map(|s| until(s, now)).unwrap_or(Duration::ZERO);
    // max then min, not clamp: a misconfiguration must not panic a reconcile.
    (waited / 4).max(settings.poll_min).min(settings.poll_max)
}

/// How long to wait before looking again at a master preparing since `since`: the usual
/// schedule, but not before its first look is due (`first_look`, from what the operator has
/// seen of preparations: `preparation`), and never longer than `poll_max`.
pub fn preparing_poll(
    since: Option<Timestamp>,
    now: Timestamp,
    first_look: Option<Timestamp>,
    settings: &Settings,
) -> Duration {
    let usual = poll_interval(since, now, settings);
    let due = first_look.map(|at| until(now, at)).unwrap_or_default();
    usual.max(due).min(settings.poll_max)
}

/// A stable number drawn from a resource's UID (or name), to spread refreshes.
pub fn spread_seed(uid_or_name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid_or_name.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn refresh_is_spread_but_never_later_than_asked() {
        let settings = Settings::default();
        let before = Duration::from_secs(7200);
        let latest = sub(add(t(0), settings.url_lifetime), before);
        let times: std::collections::HashSet<_> = (0..50u64)
            .map(|seed| {
                refresh_at(
                    t(0),
                    &settings,
                    before,
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            })
            .collect();
        assert!(times.len() > 40, "spread over many instants");
        assert!(
            times
                .iter()
                .all(|r| *r <= latest && *r >= sub(latest, before)),
            "within refreshBefore before the latest"
        );
        let earliest = times.iter().min().unwrap();
        assert!(
            until(*earliest, latest) > before * 3 / 4,
            "over most of that window, not a quarter of it"
        );
    }

    #[test]
    fn a_long_refresh_before_spreads_over_a_quarter_of_the_rest_of_the_lifetime() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            spread_window(Duration::from_secs(7200), day),
            Duration::from_secs(7200)
        );
        assert_eq!(
            spread_window(Duration::from_secs(11 * 3600), day),
            Duration::from_secs(13 * 3600 / 4)
        );
        assert_eq!(spread_window(day, day), Duration::ZERO);
    }

    #[test]
    fn refresh_before_longer_than_the_lifetime_refreshes_halfway() {
        let settings = Settings {
            url_lifetime: Duration::from_secs(10),
            ..Settings::default()
        };
        assert_eq!(
            refresh_at(t(0), &settings, Duration::from_secs(3600), 0),
            t(5)
        );
    }

    #[test]
    fn polls_start_fast_and_slow_down_within_bounds() {
        let settings = Settings::default();
        let cases = [
            (None, 0, 1),
            (Some(0), 2, 1),
            (Some(0), 20, 5),
            (Some(0), 600, 30),
        ];
        for (since, now, want) in cases {
            assert_eq!(
                poll_interval(since.map(t), t(now), &settings),
                Duration::from_secs(want),
                "{since:?} {now}"
            );
        }
        assert_eq!(with_margin(t(0)), t(1));
        assert_eq!(until(t(5), t(1)), Duration::ZERO);
    }
}
