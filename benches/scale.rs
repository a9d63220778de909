//! 10,000 MasterExports on one replica, against the real apiserver, with time compressed:
//! URLs live 24 h / K and mux-sim's rate limits (5 req/s, 1 POST/s) are K times Mux's, the
//! operator's own limiter and `refreshBefore` (2 h / K) likewise, so the load is the same
//! share of Mux's budget as 10,000 exports at 24 h and 5 req/s. Webhooks on, as Mux asks;
//! masters prepare in 1 s. The run lasts until every export has been refreshed once (about
//! one compressed lifetime after the last is Ready).
//!
//! Reports: time until all Ready against the rate limit's lower bound; every URL refreshed
//! before its expiry, none published past it; 429s (goal 0); Mux calls and apiserver writes
//! per URL grant; the operator's RSS (goal ≤ 100 MiB at 10,000) and CPU.
//!
//! Reproduce: `cargo bench --bench scale` (RESOURCES=n, default 10000; COMPRESSION=K, default
//! 240: URLs live 360 s; RESOURCES=100000 is the moonshot, run by hand; UNTIL=ready stops once
//! every export is Ready, for a run whose refreshes this machine cannot wait for).

use testenv::fixtures as support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use mux_master_operator::resource::MasterExport;
use serde_json::json;
use support::World;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ
}

/// The apiserver's requests by what they touched, from its own metrics
/// (`apiserver_request_total`): what a URL grant costs it.
#[derive(Debug, Default, Clone, Copy)]
struct ApiRequests {
    /// MasterExport status writes (server-side apply and patches of `/status`).
    status: u64,
    /// Writes to Secrets (the URL Secrets).
    secrets: u64,
    /// Writes to Events (core and events.k8s.io).
    events: u64,
    /// Every other write (creates of MasterExports, finalizers, the apiserver's own).
    other: u64,
    /// Reads of single Secrets (GET).
    secret_reads: u64,
}

impl ApiRequests {
    fn writes(&self) -> u64 {
        self.status + self.secrets + self.events + self.other
    }

    fn since(&self, before: &ApiRequests) -> ApiRequests {
        ApiRequests {
            status: self.status - before.status,
            secrets: self.secrets - before.secrets,
            events: self.events - before.events,
            other: self.other - before.other,
            secret_reads: self.secret_reads - before.secret_reads,
        }
    }
}

/// Reads the apiserver's request counters. Server-side apply is its own verb (`APPLY`).
async fn api_requests(client: &kube::Client) -> ApiRequests {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap_or_default();
    let mut counted = ApiRequests::default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            let key = format!("{name}=\"");
            line.split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value)
                .unwrap_or("")
        };
        let Some(n) = line
            .rsplit_once(' ')
            .and_then(|(_, n)| n.parse::<f64>().ok())
        else {
            continue;
        };
        let n = n as u64;
        let write = ["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&label("verb"));
        match (write, label("resource"), label("subresource")) {
            (true, "masterexports", "status") => counted.status += n,
            (true, "secrets", _) => counted.secrets += n,
            (true, "events", _) => counted.events += n,
            (true, _, _) => counted.other += n,
            (false, "secrets", _) if label("verb") == "GET" => counted.secret_reads += n,
            _ => {}
        }
    }
    counted
}

/// What the watch saw of one export.
#[derive(Default)]
struct Seen {
    first_url: Option<(String, jiff::Timestamp)>,
    ready_at: Option<Duration>,
    /// When a URL other than the first was first seen.
    refreshed_at: Option<jiff::Timestamp>,
    current: Option<(String, jiff::Timestamp)>,
    refreshes: u32,
    /// The refreshAt published with the first URL.
    first_refresh_at: Option<String>,
}

/// When the object's status was last written, from its managed fields (second precision).
fn status_written_at(obj: &MasterExport) -> Option<jiff::Timestamp> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() == Some("status"))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
}

/// Of `names` (not already counted), those the apiserver, read now, still shows publishing a
/// URL whose expiry has passed.
async fn confirm_expired(
    api: &kube::Api<MasterExport>,
    mut names: Vec<String>,
    counted: &HashSet<String>,
) -> Vec<String> {
    names.sort();
    names.dedup();
    names.retain(|n| !counted.contains(n));
    futures::stream::iter(names)
        .map(|name| async move {
            let obj = api.get(&name).await.ok()?;
            let master = obj.status.as_ref()?.master.as_ref()?;
            let expires = master.expires_at.as_ref()?.0;
            (master.url.is_some() && expires <= jiff::Timestamp::now()).then_some(name)
        })
        .buffer_unordered(16)
        .filter_map(std::future::ready)
        .collect()
        .await
}

#[tokio::main]
async fn main() {
    let resources: usize = env_or("RESOURCES", 10_000);
    let k: f64 = env_or("COMPRESSION", 240.0);
    let lifetime = Duration::from_secs(86_400).div_f64(k);
    let refresh_before = Duration::from_secs(7_200).div_f64(k);
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let (other_rate, post_rate) = (5.0 * k, 1.0 * k);
    let compression = k.to_string();
    // WEBHOOKS=0: polling only, for comparison.
    let webhooks = env_or("WEBHOOKS", 1u8) == 1;
    // UNTIL=ready: stop once every export is Ready (a run too large to wait for its refreshes
    // on this machine: its start, memory and calls, not its refreshes).
    let until_ready = std::env::var("UNTIL").is_ok_and(|v| v == "ready");
    let lifetime_arg = ms(lifetime);
    let (other_arg, post_arg) = (other_rate.to_string(), post_rate.to_string());
    let poll_arg = ms(Duration::from_secs(120)
        .div_f64(k)
        .max(Duration::from_secs(1)));
    let mut operator_args = vec![
        "--url-lifetime",
        &lifetime_arg,
        "--mux-other-rate",
        &other_arg,
        "--mux-post-rate",
        &post_arg,
        "--concurrency",
        "32",
    ];
    if webhooks {
        operator_args.extend([
            "--webhook-addr",
            "127.0.0.1:0",
            "--webhook-secrets",
            "whsec-scale",
            "--webhook-poll-interval",
            &poll_arg,
        ]);
    }
    let world = World::new(
        "bench-scale",
        &[
            "--master-prepare-delay",
            "1s",
            "--time-compression",
            &compression,
            "--renew-on-repeat",
            "--webhook-secret",
            "whsec-scale",
        ],
        &operator_args,
    )
    .await;
    if webhooks {
        world.deliver_webhooks_to_operator().await;
    }
    let operator = world.operator.as_ref().unwrap();
    let pid = operator.pid();
    let rss_idle = proc_status_kib(pid, "VmRSS:");

    let seeded: Vec<String> = futures::stream::iter(0..resources)
        .map(|_| async {
            world
                .admin
                .seed_asset(json!({"size": 1000}))
                .await
                .unwrap()
                .id
        })
        .buffer_unordered(32)
        .collect()
        .await;

    // One watch over every export: what each published, when.
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    // Exports the watch showed publishing a URL past its expiry. The watch can lag behind the
    // apiserver on a loaded machine, so each is then read afresh (`confirm_expired`): what
    // counts is an expired URL the apiserver still serves.
    let expired_published: Arc<Mutex<HashSet<String>>> = Arc::default();
    let to_confirm: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut confirmed_expired: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let (watch_seen, watch_expired, watch_confirm) =
        (seen.clone(), expired_published.clone(), to_confirm.clone());
    let api = world.api();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = stream.next().await {
            let obj: MasterExport = obj;
            let name = obj.metadata.name.clone().unwrap();
            let master = obj.status.as_ref().and_then(|s| s.master.as_ref());
            let published = master.and_then(|m| Some((m.url.as_ref()?, m.expires_at.as_ref()?)));
            let mut all = watch_seen.lock().unwrap();
            let entry = all.entry(name.clone()).or_default();
            let (Some(master), Some((url, expires))) = (master, published) else {
                entry.current = None;
                continue;
            };
            let now = jiff::Timestamp::now();
            if expires.0 <= now {
                watch_expired.lock().unwrap().insert(name.clone());
                watch_confirm.lock().unwrap().push(name.clone());
            }
            entry.refreshes = master.refreshes;
            if entry.first_url.is_none() {
                entry.first_url = Some((url.clone(), expires.0));
                entry.first_refresh_at = master.refresh_at.as_ref().map(|t| t.0.to_string());
                entry.ready_at = Some(started.elapsed());
            } else if entry.refreshed_at.is_none()
                && entry.first_url.as_ref().is_some_and(|(u, _)| u != url)
            {
                // When the apiserver took the status write that published it (its managed
                // fields' time), not when this watch, which can lag, delivered it.
                entry.refreshed_at = Some(status_written_at(&obj).unwrap_or(now));
            }
            entry.current = Some((url.clone(), expires.0));
        }
    });

    let requests_before = api_requests(&world.client).await;
    let cpu_before = cpu_seconds(pid);
    let refresh_before_arg = ms(refresh_before);
    futures::stream::iter(seeded.iter().enumerate())
        .map(|(i, asset)| {
            let world = &world;
            let refresh_before = &refresh_before_arg;
            async move {
                world
                    .create(
                        &format!("s{i}"),
                        json!({"source": {"assetId": asset}, "credentialsSecretRef": {"name": "mux"}, "refreshBefore": refresh_before}),
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created_in = started.elapsed();

    // Until every export has been refreshed once (or two lifetimes past the last creation).
    let horizon = created_in + lifetime * 2 + Duration::from_secs(60);
    let mut all_ready_at = None;
    let mut rss_peak_seen = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = jiff::Timestamp::now();
        let (ready, refreshed) = {
            let all = seen.lock().unwrap();
            // A URL still published past its expiry (no event since) counts too.
            let mut expired = expired_published.lock().unwrap();
            for (name, s) in all.iter() {
                if s.current.as_ref().is_some_and(|(_, e)| *e <= now) {
                    expired.insert(name.clone());
                    to_confirm.lock().unwrap().push(name.clone());
                }
            }
            let ready = all.values().filter(|s| s.first_url.is_some()).count();
            let refreshed = all.values().filter(|s| s.refreshed_at.is_some()).count();
            (ready, refreshed)
        };
        let suspects: Vec<String> = std::mem::take(&mut *to_confirm.lock().unwrap());
        confirmed_expired.extend(confirm_expired(&world.api(), suspects, &confirmed_expired).await);
        rss_peak_seen = rss_peak_seen.max(proc_status_kib(pid, "VmRSS:"));
        if ready == resources && all_ready_at.is_none() {
            all_ready_at = Some(started.elapsed());
        }
        if refreshed == resources || started.elapsed() > horizon {
            break;
        }
        if until_ready && all_ready_at.is_some() {
            break;
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let requests = api_requests(&world.client).await.since(&requests_before);
    // The bench's own writes: one create per export.
    let operator_writes = requests.writes().saturating_sub(resources as u64);
    let rss = proc_status_kib(pid, "VmRSS:");
    let peak = proc_status_kib(pid, "VmHWM:");
    watch.abort();

    let log = world.admin.requests().await.unwrap();
    let calls: Vec<_> = log
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .collect();
    let throttled = calls.iter().filter(|r| r.status == 429).count();
    let all: HashMap<String, Seen> = std::mem::take(&mut *seen.lock().unwrap());
    let ready_calls = all_ready_at.map(|_| {
        let first = calls.first().map(|r| r.at_ms).unwrap_or(0);
        let span = all_ready_at.unwrap().as_millis() as u64;
        calls.iter().filter(|r| r.at_ms <= first + span).count()
    });
    let grants: u32 = all.values().map(|s| 1 + s.refreshes).sum();
    let in_time = all
        .values()
        .filter(|s| match (&s.first_url, s.refreshed_at) {
            (Some((_, expiry)), Some(at)) => at < *expiry,
            _ => false,
        })
        .count();
    let expired_seen = expired_published.lock().unwrap().len();
    let expired_served = confirmed_expired.len();
    // A few late ones, with their asset's calls at mux-sim, to see why.
    let late: Vec<_> = all
        .iter()
        .filter(|(_, s)| match (&s.first_url, s.refreshed_at) {
            (Some((_, expiry)), Some(at)) => at >= *expiry,
            _ => true,
        })
        .take(3)
        .collect();
    // The operator's log is its stdout: readable through /proc while it runs.
    let operator_log = std::fs::read_to_string(format!("/proc/{pid}/fd/1")).unwrap_or_default();
    for (name, s) in late {
        let needle = format!("/{name}.");
        let needle2 = format!("name={name} ");
        for line in operator_log
            .lines()
            .filter(|l| l.contains(&needle) || l.contains(&needle2))
            .take(40)
        {
            eprintln!("    {}", &line[..line.len().min(300)]);
        }
        let index: usize = name[1..].parse().unwrap_or(0);
        let asset = &seeded[index];
        let asset_calls: Vec<String> = calls
            .iter()
            .filter(|r| r.id.as_deref() == Some(asset.as_str()))
            .map(|r| format!("{} {} @{} ms", r.method, r.status, r.at_ms))
            .collect();
        if let Ok(obj) = world.api().get(name).await
            && let Some(m) = obj.status.as_ref().and_then(|s| s.master.as_ref())
        {
            eprintln!(
                "    now: requestedAt {:?} refreshAt {:?} expiresAt {:?} readyAt {:?} refreshes {}",
                m.requested_at.as_ref().map(|t| t.0.to_string()),
                m.refresh_at.as_ref().map(|t| t.0.to_string()),
                m.expires_at.as_ref().map(|t| t.0.to_string()),
                m.ready_at.as_ref().map(|t| t.0.to_string()),
                m.refreshes
            );
        }
        eprintln!(
            "  late: {name}: ready at {:?}, first refreshAt {:?}, first URL expiring {:?}, refreshed at {:?}; calls {asset_calls:?}",
            s.ready_at,
            s.first_refresh_at,
            s.first_url.as_ref().map(|(_, e)| e.to_string()),
            s.refreshed_at.map(|t| t.to_string())
        );
    }

    let goal = |ok: bool| if ok { "goal met" } else { "goal NOT met" };
    println!(
        "scale: {resources} MasterExports (webhooks: {webhooks}), one replica, real kube-apiserver; time compressed {k}x: URLs live {:.0} s (24 h), refreshBefore {:.0} s (2 h), Mux's limits {other_rate}/s and {post_rate} POST/s (5/s, 1/s)",
        lifetime.as_secs_f64(),
        refresh_before.as_secs_f64()
    );
    println!(
        "  created in                  {:>9.1} s",
        created_in.as_secs_f64()
    );
    match (all_ready_at, ready_calls) {
        (Some(t), Some(n)) => {
            let bound = n as f64 / other_rate;
            println!(
                "  all Ready after             {:>9.1} s (rate limit's lower bound for its {n} Mux calls: {bound:.1} s; uncompressed {:.1} h vs {:.1} h)",
                t.as_secs_f64(),
                t.as_secs_f64() * k / 3600.0,
                bound * k / 3600.0
            );
        }
        _ => println!(
            "  NOT all Ready ({} of {resources})",
            all.values().filter(|s| s.first_url.is_some()).count()
        ),
    }
    if until_ready {
        println!(
            "  refreshes                   not observed (UNTIL=ready: stopped once all were Ready)"
        );
    } else {
        println!(
            "  refreshed before expiry     {in_time:>9} of {resources} ({})",
            goal(in_time == resources)
        );
    }
    println!(
        "  published past expiry       {expired_served:>9} served by the apiserver when read afresh ({}); {expired_seen} shown by the bench's watch, which lags on a loaded machine",
        goal(expired_served == 0)
    );
    println!(
        "  observed for                {:>9.1} s",
        wall.as_secs_f64()
    );
    println!(
        "  429s                        {throttled:>9} ({})",
        goal(throttled == 0)
    );
    // When and what: a burst at the creation, at the refresh wave, or spread.
    let throttled_at: Vec<String> = calls
        .iter()
        .filter(|r| r.status == 429)
        .take(12)
        .map(|r| format!("{} @{:.1} s", r.method, r.at_ms as f64 / 1000.0))
        .collect();
    if !throttled_at.is_empty() {
        println!(
            "    429s at (mux-sim's clock, its first Mux call at {:.1} s): {}",
            calls.first().map_or(0.0, |r| r.at_ms as f64 / 1000.0),
            throttled_at.join(", ")
        );
    }
    let per_grant = |n: u64| n as f64 / grants.max(1) as f64;
    println!(
        "  URL grants                  {grants:>9}; Mux calls {} ({:.2} per grant)",
        calls.len(),
        per_grant(calls.len() as u64)
    );
    println!(
        "  apiserver writes            {operator_writes:>9} ({:.2} per grant: status {:.2}, URL Secret {:.2}, Events {:.2}, other {:.2}); Secret reads {:.2} per grant",
        per_grant(operator_writes),
        per_grant(requests.status),
        per_grant(requests.secrets),
        per_grant(requests.events),
        per_grant(requests.other.saturating_sub(resources as u64)),
        per_grant(requests.secret_reads)
    );
    println!(
        "  operator RSS                {:>9.1} MiB at the end, peak {:.1} MiB (idle {:.1} MiB; {:.1} KiB per export) ({})",
        rss as f64 / 1024.0,
        peak.max(rss_peak_seen) as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        rss.saturating_sub(rss_idle) as f64 / resources as f64,
        match resources {
            10_000 => goal(peak.max(rss_peak_seen) <= 100 * 1024),
            _ => "the goal is at 10,000",
        }
    );
    println!(
        "  operator CPU                {cpu:>9.1} s over {:.0} s ({:.2} cores on average)",
        wall.as_secs_f64(),
        cpu / wall.as_secs_f64()
    );
    println!(
        "reproduce: RESOURCES={resources} COMPRESSION={k}{} cargo bench --locked --bench scale   (or make bench)",
        if until_ready { " UNTIL=ready" } else { "" }
    );
}
