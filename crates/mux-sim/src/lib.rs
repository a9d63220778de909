//! mux-sim: an emulator of the Mux Video API, faithful on the wire (`shared/mux-api.md`),
//! for tests, benchmarks and the demo. It shares only the wire types with the client.
//!
//! - `api`: the Mux endpoints, behind the gate of auth, rate limits and faults (`deletion`:
//!   deleting an asset);
//! - `download`: the master file at its signed URL (GET, HEAD, Range);
//! - `admin`: `/_sim/*`, seeding and inspection (not part of Mux);
//! - `world`: the state machine; `webhooks`: delivery; `stats`: what was asked.

pub mod admin;
pub mod admin_client;
pub mod api;
pub mod config;
pub mod content;
pub mod deletion;
pub mod download;
pub mod envelope;
pub mod stats;
pub mod webhooks;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use config::Switches;
use world::{Event, World};

/// The whole emulator's shared state.
pub struct Sim {
    pub world: Mutex<World>,
    pub switches: Arc<RwLock<Switches>>,
    /// `(token id, token secret)` pairs accepted by Basic auth.
    pub tokens: Vec<(String, String)>,
    pub stats: stats::Stats,
    pub webhooks: webhooks::Webhooks,
    pub limits: api::Limits,
    /// Wakes the clock task when a new deadline may have appeared.
    clock: Arc<Notify>,
}

impl Sim {
    pub fn switches(&self) -> Switches {
        self.switches.read().expect("switches lock").clone()
    }

    /// Runs `f` on the world with the current switches and the time, then sends the
    /// events it produced.
    pub fn with_world<T>(
        &self,
        f: impl FnOnce(&mut World, Instant, &Switches) -> (T, Vec<Event>),
    ) -> T {
        let sw = self.switches();
        let (value, events) = {
            let mut world = self.world.lock().expect("world lock");
            f(&mut world, Instant::now(), &sw)
        };
        self.webhooks.send(events);
        self.clock.notify_one();
        value
    }
}

/// What the binary takes besides the switches.
pub struct Options {
    pub tokens: Vec<(String, String)>,
    /// Where master URLs point; defaults to this server's own address.
    pub public_url: Option<String>,
    pub switches: Switches,
}

/// Serves mux-sim on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let public = options
        .public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let switches = Arc::new(RwLock::new(options.switches));
    let sim = Arc::new(Sim {
        world: Mutex::new(World::new(public)),
        webhooks: webhooks::Webhooks::start(switches.clone()),
        switches,
        tokens: options.tokens,
        stats: stats::Stats::default(),
        limits: api::Limits::default(),
        clock: Arc::new(Notify::new()),
    });
    tokio::spawn(run_clock(Arc::downgrade(&sim)));
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(api::routes(sim.clone()))
        .merge(admin::routes())
        .merge(download::routes())
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::wrong_method)
        .with_state(sim)
}

/// Moves the world at each deadline (a master turning ready, a URL expiring), so webhooks
/// fire on time even when nobody asks.
async fn run_clock(sim: std::sync::Weak<Sim>) {
    loop {
        let Some(strong) = sim.upgrade() else { return };
        let sw = strong.switches();
        let deadline = strong.world.lock().expect("world lock").next_deadline(&sw);
        let wake = deadline.unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(60));
        let clock = strong.clock.clone();
        // Do not keep the Sim alive while waiting.
        drop(strong);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = clock.notified() => {}
        }
        let Some(strong) = sim.upgrade() else { return };
        let events = {
            let mut world = strong.world.lock().expect("world lock");
            world.advance(Instant::now(), &sw)
        };
        strong.webhooks.send(events);
    }
}
