//! Keeping many URLs fresh within Mux's rate limits, at a reduced scale in time: URLs live
//! 120 s instead of 24 h (and refreshBefore is 10 s instead of 2 h), so one run covers two
//! refreshes of every export while the operator and mux-sim keep Mux's own limits
//! (5 requests/s, 1 POST/s). 200 exports refreshed every ~110 s make about 14 times the
//! refresh traffic of 10,000 exports refreshed every ~22 h.
//!
//! Reports: time to Ready, refreshes, any published URL seen expired, the busiest second of
//! Mux calls against Mux's limit, 429s, and the operator's memory per export.
//!
//! Reproduce: `cargo bench --bench scale` (RESOURCES=n, default 200; LIFETIME_S, default 120).

use testenv::fixtures as support;

use std::time::{Duration, Instant};

use mux_sim::admin_client::LoggedRequest;
use serde_json::json;
use support::World;

fn busiest_second(log: &[LoggedRequest], post: bool) -> usize {
    let times: Vec<u64> = log
        .iter()
        .filter(|r| r.route.starts_with("/video/") && (r.method == "POST") == post)
        .map(|r| r.at_ms)
        .collect();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let resources: usize = std::env::var("RESOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let lifetime: u64 = std::env::var("LIFETIME_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let lifetime_arg = format!("{lifetime}s");
    // The same proportion as the default 2h of 24h.
    let refresh_before = format!("{}s", (lifetime / 12).max(1));
    // mux-sim at Mux's limits (its defaults); the operator with its defaults.
    let world = World::new(
        "bench-scale",
        &[
            "--master-prepare-delay",
            "1s",
            "--url-lifetime",
            &lifetime_arg,
            "--renew-on-repeat",
        ],
        &["--url-lifetime", &lifetime_arg],
    )
    .await;
    let operator = world.operator.as_ref().unwrap();
    operator.metrics_addr().await; // started and serving
    let pid = operator.pid();
    let rss_before = memory_kib(pid, "VmRSS:");

    let assets = world.seed_assets(resources, json!({"size": 1000})).await;
    let started = Instant::now();
    for (i, asset) in assets.iter().enumerate() {
        world
            .create(
                &format!("s{i}"),
                json!({"source": {"assetId": asset}, "credentialsSecretRef": {"name": "mux"}, "refreshBefore": refresh_before}),
            )
            .await
            .unwrap();
    }

    // Watch every export for two URL lifetimes: all Ready, then kept fresh.
    let api = world.api();
    let mut all_ready_at = None;
    let mut expired_seen = 0usize;
    let mut refreshes = 0u32;
    let horizon = Duration::from_secs(lifetime * 2 + 30);
    while started.elapsed() < horizon {
        let list = api.list(&Default::default()).await.unwrap();
        let now = jiff::Timestamp::now();
        let mut ready = 0;
        refreshes = 0;
        for obj in &list.items {
            let Some(master) = obj.status.as_ref().and_then(|s| s.master.as_ref()) else {
                continue;
            };
            refreshes += master.refreshes;
            if master.url.is_some() {
                ready += 1;
                if master.expires_at.as_ref().is_some_and(|e| e.0 <= now) {
                    expired_seen += 1;
                }
            }
        }
        if ready == resources && all_ready_at.is_none() {
            all_ready_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let log = world.admin.requests().await.unwrap();
    let calls = log
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .count();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    let rss_after = memory_kib(pid, "VmRSS:");
    let peak = memory_kib(pid, "VmHWM:");

    println!(
        "scale: {resources} MasterExports, URLs living {lifetime} s (refreshBefore {refresh_before}), Mux's limits (5/s, 1 POST/s)"
    );
    match all_ready_at {
        Some(t) => println!("  all Ready after            {:>8.1} s", t.as_secs_f64()),
        None => println!("  NOT all Ready within {:.0} s", horizon.as_secs_f64()),
    }
    println!(
        "  observed for               {:>8.1} s ({:.1} URL lifetimes)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() / lifetime as f64
    );
    println!(
        "  refreshes                  {refreshes:>8} ({:.2} per export)",
        refreshes as f64 / resources as f64
    );
    println!("  expired URLs seen published{expired_seen:>8}");
    println!(
        "  Mux calls                  {calls:>8} ({:.2} per export)",
        calls as f64 / resources as f64
    );
    println!(
        "  busiest second (GET/PUT)   {:>8} (Mux allows 5/s, bursts of 10 in mux-sim)",
        busiest_second(&log, false)
    );
    println!("  429s                       {throttled:>8}");
    println!(
        "  operator memory            {:>8.1} MiB before, {:.1} MiB after, peak {:.1} MiB ({:.1} KiB per export)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        peak as f64 / 1024.0,
        (rss_after.saturating_sub(rss_before)) as f64 / resources as f64
    );
    let budget = 5.0 * started.elapsed().as_secs_f64();
    println!(
        "  share of Mux's request budget used: {:.0}% ({calls} of {budget:.0})",
        100.0 * calls as f64 / budget
    );
    println!("reproduce: cargo bench --bench scale   (RESOURCES=n LIFETIME_S=s)");
}
