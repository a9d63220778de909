//! Exporting a whole environment with a MasterExportSet at Mux's real limits (5 requests/s,
//! 1 POST/s: mux-sim's and the operator's defaults), no destination: the time until every asset's
//! master is available, against the lower bound the rate limit sets for N assets, and the share
//! of the request budget the run used.
//!
//! Lower bound: each asset needs at least one PUT (master access on) and one GET that finds its
//! master ready, and the listing one GET per 100 assets: (2N + ceil(N/100)) / 5 s.
//!
//! Reproduce: `cargo bench --bench exportset` (ASSETS=n, default 100; MAX_IN_FLIGHT, default 10).

use testenv::fixtures as support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::World;
use support::exportset::{create_set, install_set_crd, set_is_ready, sets};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let assets = env_or("ASSETS", 100);
    let max_in_flight = env_or("MAX_IN_FLIGHT", 10);
    // A master takes mux-sim's default 2 s to prepare; the operator polls from 1 s up.
    let world = World::new("bench-set", &[], &[]).await;
    install_set_crd(&world.client).await;
    world.seed_assets(assets, json!({"size": 1000})).await;
    // Seeding goes through /_sim/*: every /video/* request counted below is the operator's.

    let started = Instant::now();
    let spec = json!({"credentialsSecretRef": {"name": "mux"}, "maxInFlight": max_in_flight});
    create_set(&world, "bench", spec).await.expect("the set");
    let api = sets(&world);
    loop {
        let set = api.get("bench").await.expect("the set");
        let done = set.status.as_ref().map(|s| s.counts.done).unwrap_or(0) as usize;
        if set_is_ready(&set) && done == assets {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "not done in an hour"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = world.admin.stats().await.expect("stats");
    let mux: Vec<_> = stats
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .collect();
    let requests: u64 = mux.iter().map(|r| r.count).sum();
    let throttled: u64 = mux
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.count)
        .sum();
    let lower_bound = (2 * assets + assets.div_ceil(100)) as f64 / 5.0;
    println!(
        "{assets} assets, maxInFlight {max_in_flight}: every master available in {elapsed:.1} s; \
         lower bound {lower_bound:.1} s ({:.2}x); {requests} Mux requests ({:.1} per asset, {throttled} answered 429), \
         {:.0}% of the {:.0}-request budget of the run",
        elapsed / lower_bound,
        requests as f64 / assets as f64,
        100.0 * requests as f64 / (elapsed * 5.0),
        elapsed * 5.0,
    );
}
