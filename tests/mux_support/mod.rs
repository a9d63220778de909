//! What the Mux tests (`tests/mux_*.rs`) share: mux-sim with a known token, and a client of it.
// Each test target uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use mux::{Credentials, MuxClient, MuxClients, MuxConfig};
use mux_sim::admin_client::SimAdmin;
use testenv::MuxSim;

pub const TOKEN_ID: &str = "test-token";
pub const TOKEN_SECRET: &str = "test-secret";

pub fn start_sim(args: &[&str]) -> (MuxSim, SimAdmin) {
    let token = format!("{TOKEN_ID}:{TOKEN_SECRET}");
    let mut all = vec!["--token", token.as_str()];
    all.extend_from_slice(args);
    let sim = MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &all)
        .expect("mux-sim starts");
    let admin = SimAdmin::new(sim.url());
    (sim, admin)
}

pub fn config(sim: &MuxSim) -> MuxConfig {
    MuxConfig {
        base_url: sim.url().parse().unwrap(),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..MuxConfig::default()
    }
}

pub fn client(sim: &MuxSim) -> MuxClient {
    MuxClients::new(config(sim))
        .unwrap()
        .client(Credentials::new(TOKEN_ID, TOKEN_SECRET))
}
