//! How fast a ready master's URL reaches the MasterExport's status: with Mux webhooks, and
//! with polling alone, side by side, over 100 resources on the real apiserver and mux-sim.
//!
//! Latency = the first moment a watch on the resources sees the URL in the status, minus
//! the moment mux-sim turned the master ready. Also counted: GETs of the assets while their
//! masters prepared (what Mux asks us to keep down).
//!
//! Reproduce: `make bench` or `cargo bench --bench webhook_latency` (RESOURCES=n to change 100).

use testenv::fixtures as support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use mux_master_operator::resource::MasterExport;
use mux_sim::admin_client::ASSET_ROUTE;
use serde_json::json;
use support::World;

const PREPARE: &str = "3s";

struct Outcome {
    latencies_ms: Vec<i64>,
    gets_while_preparing: usize,
    /// Every Mux API call of the run (one URL grant per resource).
    mux_calls: usize,
    /// How many resources' grants took how many Mux calls.
    calls_per_grant: BTreeMap<usize, usize>,
    wall: Duration,
}

async fn run(webhooks: bool, resources: usize) -> Outcome {
    // Rates above Mux's 5/s so the bench measures latency, not the creation queue; the
    // operator's limiter sits just under mux-sim's, as it should under Mux's.
    let mut sim_args = vec![
        "--master-prepare-delay",
        PREPARE,
        "--other-rate",
        "50",
        "--other-burst",
        "50",
        "--webhook-secret",
        "whsec-bench",
    ];
    let mut op_args = vec![
        "--mux-other-rate",
        "40",
        "--mux-other-burst",
        "20",
        "--concurrency",
        "32",
    ];
    if webhooks {
        op_args.extend([
            "--webhook-addr",
            "127.0.0.1:0",
            "--webhook-secrets",
            "whsec-bench",
        ]);
    } else {
        sim_args.extend(["--webhooks-enabled", "false"]);
    }
    let world = World::new(
        if webhooks {
            "bench-hooks"
        } else {
            "bench-poll"
        },
        &sim_args,
        &op_args,
    )
    .await;
    if webhooks {
        world.deliver_webhooks_to_operator().await;
    }

    // Watch the resources: note when each first shows a URL.
    let seen: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let seen_by_watch = seen.clone();
    let api = world.api();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = stream.next().await {
            let obj: MasterExport = obj;
            if support::master_url(&obj).is_some() {
                let now = jiff::Timestamp::now().as_millisecond();
                seen_by_watch
                    .lock()
                    .unwrap()
                    .entry(obj.metadata.name.clone().unwrap())
                    .or_insert(now);
            }
        }
    });

    let assets = world.seed_assets(resources, json!({"size": 1000})).await;
    let started = Instant::now();
    for (i, asset) in assets.iter().enumerate() {
        world
            .create(
                &format!("m{i}"),
                json!({"source": {"assetId": asset}, "credentialsSecretRef": {"name": "mux"}}),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().unwrap().len() < resources {
        assert!(
            Instant::now() < deadline,
            "not every resource got its URL within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed();
    watch.abort();

    let log = world.admin.requests().await.unwrap();
    let mut latencies_ms = Vec::new();
    let mut gets_while_preparing = 0;
    let seen = seen.lock().unwrap().clone();
    for (i, asset) in assets.iter().enumerate() {
        let state = world.admin.inspect(asset).await.unwrap();
        let ready_unix = state["master_ready_unix_ms"].as_i64().expect("ready");
        let ready_at = state["master_ready_at_ms"].as_u64().unwrap();
        latencies_ms.push(seen[&format!("m{i}")] - ready_unix);
        let put_at = log
            .iter()
            .find(|r| r.method == "PUT" && r.id.as_deref() == Some(asset))
            .map(|r| r.at_ms)
            .unwrap_or(0);
        gets_while_preparing += log
            .iter()
            .filter(|r| {
                r.method == "GET" && r.route == ASSET_ROUTE && r.id.as_deref() == Some(asset)
            })
            .filter(|r| r.at_ms > put_at && r.at_ms <= ready_at + 1000)
            .count();
    }
    latencies_ms.sort();
    let mut calls_per_grant = BTreeMap::new();
    for asset in &assets {
        let calls = log
            .iter()
            .filter(|r| r.route.starts_with("/video/") && r.id.as_deref() == Some(asset))
            .count();
        *calls_per_grant.entry(calls).or_default() += 1;
    }
    let api_calls: Vec<u64> = log
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .map(|r| r.at_ms)
        .collect();
    if let (Some(first), Some(last)) = (api_calls.first(), api_calls.last()) {
        eprintln!(
            "  {}: {} Mux API calls ({} answered 429) over {:.1} s",
            if webhooks { "webhooks" } else { "polling" },
            api_calls.len(),
            log.iter().filter(|r| r.status == 429).count(),
            (last - first) as f64 / 1000.0
        );
    }
    Outcome {
        latencies_ms,
        gets_while_preparing,
        mux_calls: api_calls.len(),
        calls_per_grant,
        wall,
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let resources: usize = std::env::var("RESOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    println!(
        "webhook latency: {resources} MasterExports, masters prepared in {PREPARE} by mux-sim, real kube-apiserver"
    );
    let hooks = run(true, resources).await;
    let polls = run(false, resources).await;
    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>16} {:>22} {:>8}",
        "mode",
        "median ms",
        "p99 ms",
        "max ms",
        "Mux calls/grant",
        "GETs while preparing",
        "wall s"
    );
    let per_grant = |o: &Outcome| o.mux_calls as f64 / resources as f64;
    for (name, o) in [("webhooks", &hooks), ("polling only", &polls)] {
        println!(
            "{:<14} {:>10} {:>8} {:>8} {:>16.2} {:>22} {:>8.1}",
            name,
            percentile(&o.latencies_ms, 50.0),
            percentile(&o.latencies_ms, 99.0),
            o.latencies_ms.last().unwrap(),
            per_grant(o),
            format!(
                "{} ({:.2}/resource)",
                o.gets_while_preparing,
                o.gets_while_preparing as f64 / resources as f64
            ),
            o.wall.as_secs_f64()
        );
    }
    for (name, o) in [("webhooks", &hooks), ("polling only", &polls)] {
        let spread: Vec<String> = o
            .calls_per_grant
            .iter()
            .map(|(calls, n)| format!("{n} x {calls}"))
            .collect();
        println!(
            "  {name}: resources x Mux calls for their grant: {}",
            spread.join(", ")
        );
    }
    let goal = |ok: bool| if ok { "met" } else { "NOT met" };
    let (p50, p99) = (
        percentile(&hooks.latencies_ms, 50.0),
        percentile(&hooks.latencies_ms, 99.0),
    );
    println!("goals ({resources} resources; issue 15 sets them at 100):");
    println!(
        "  Mux calls per URL grant, webhooks      {:.2}  (goal <= 1.5: {})",
        per_grant(&hooks),
        goal(per_grant(&hooks) <= 1.5)
    );
    println!(
        "  Mux calls per URL grant, polling only  {:.2}  (goal <= 2.5: {})",
        per_grant(&polls),
        goal(per_grant(&polls) <= 2.5)
    );
    println!(
        "  webhook -> URL in status p50           {p50} ms  (goal <= 50 ms: {})",
        goal(p50 <= 50)
    );
    println!(
        "  webhook -> URL in status p99           {p99} ms  (goal <= 500 ms: {})",
        goal(p99 <= 500)
    );
    let ratio = |a: i64, b: i64| a.max(1) as f64 / b.max(1) as f64;
    println!(
        "polling / webhooks: median {:.1}x, p99 {:.1}x slower; {:.1}x the Mux calls",
        ratio(
            percentile(&polls.latencies_ms, 50.0),
            percentile(&hooks.latencies_ms, 50.0)
        ),
        ratio(
            percentile(&polls.latencies_ms, 99.0),
            percentile(&hooks.latencies_ms, 99.0)
        ),
        polls.mux_calls as f64 / hooks.mux_calls.max(1) as f64,
    );
    println!(
        "reproduce: RESOURCES={resources} cargo bench --locked --bench webhook_latency   (or make bench)"
    );
}
