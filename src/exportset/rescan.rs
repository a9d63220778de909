//! When a set lists its environment again (pure): after a spec change, every
//! `rescanInterval`, and soon after a webhook says an asset became ready or was deleted, but
//! never more than once per [`WEBHOOK_RESCAN_GAP`] however many webhooks come (a bulk upload
//! sends one per asset; a listing of 16,000 assets takes 160 requests).

use std::time::Duration;

use jiff::Timestamp;

/// The least time between two listings prompted by webhooks.
pub const WEBHOOK_RESCAN_GAP: Duration = Duration::from_secs(5);

/// Does a webhook of this type ask for a new listing?
pub fn prompts_rescan(kind: &str) -> bool {
    matches!(
        kind,
        "video.asset.ready" | "video.asset.deleted" | "video.asset.errored"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Use the last scan; list again after this long (the interval, or a webhook's gap).
    Fresh(Duration),
    /// List now.
    Stale,
}

/// Is a scan taken `at` for `scan_generation` still good for `generation`, given the
/// interval and the last webhook that asked for a listing?
pub fn freshness(
    at: Timestamp,
    scan_generation: Option<i64>,
    generation: Option<i64>,
    interval: Duration,
    requested: Option<Timestamp>,
    now: Timestamp,
) -> Freshness {
    let age = Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
    if scan_generation != generation || age >= interval {
        return Freshness::Stale;
    }
    let mut left = interval - age;
    if requested.is_some_and(|r| r >= at) {
        if age >= WEBHOOK_RESCAN_GAP {
            return Freshness::Stale;
        }
        left = left.min(WEBHOOK_RESCAN_GAP - age);
    }
    Freshness::Fresh(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).unwrap()
    }

    #[test]
    fn a_scan_is_listed_again_on_change_interval_or_webhook_at_most_every_gap() {
        let min = Duration::from_secs(60);
        let s = Duration::from_secs;
        let cases = [
            ("young", Some(1), None, 10, Freshness::Fresh(s(50))),
            ("spec changed", Some(2), None, 10, Freshness::Stale),
            ("interval passed", Some(1), None, 60, Freshness::Stale),
            (
                "webhook before the scan",
                Some(1),
                Some(-1),
                10,
                Freshness::Fresh(s(50)),
            ),
            (
                "webhook after an old scan",
                Some(1),
                Some(8),
                10,
                Freshness::Stale,
            ),
            (
                "webhook right after a scan",
                Some(1),
                Some(1),
                2,
                Freshness::Fresh(s(3)),
            ),
        ];
        for (what, generation, webhook, age, want) in cases {
            let got = freshness(t(0), Some(1), generation, min, webhook.map(t), t(age));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn only_asset_arrivals_and_departures_prompt_a_listing() {
        assert!(prompts_rescan("video.asset.ready"));
        assert!(prompts_rescan("video.asset.deleted"));
        assert!(!prompts_rescan("video.asset.master.ready"));
        assert!(!prompts_rescan("video.live_stream.active"));
    }
}
