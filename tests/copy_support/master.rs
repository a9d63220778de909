//! mux-sim with masters ready as soon as they are asked for, and a master in it: its signed URL,
//! its SHA-256 (known without storing it), and what mux-sim counted of its downloads.

use std::time::Duration;

use mux::{Credentials, MuxClient, MuxClients, MuxConfig};
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use testenv::MuxSim;

/// mux-sim's default access token.
const TOKEN_ID: &str = "mux-sim-token-id";
const TOKEN_SECRET: &str = "mux-sim-token-secret";
/// The route mux-sim records master downloads under.
const MASTER_ROUTE: &str = "/{id}/mezzanine.mp4";

/// mux-sim with masters ready as soon as they are asked for.
pub fn start_sim(args: &[&str]) -> MuxSim {
    let mut all = vec!["--master-prepare-delay", "0s"];
    all.extend_from_slice(args);
    MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &all)
        .expect("mux-sim starts")
}

/// A master in mux-sim, with its signed URL.
pub struct Master {
    pub id: String,
    pub url: String,
    pub seed: u64,
    pub size: u64,
    pub admin: SimAdmin,
    /// A Mux API client of mux-sim's token (to turn access off mid-copy).
    pub client: MuxClient,
}

impl Master {
    /// Seeds a ready asset of `size` bytes with temporary access, and its URL.
    pub async fn new(sim: &MuxSim, size: u64) -> Master {
        let admin = SimAdmin::new(sim.url());
        let ready = admin
            .ready_master(size, Duration::from_secs(10))
            .await
            .expect("mux-sim seeds a ready master");
        let client = MuxClients::new(MuxConfig {
            base_url: sim.url().parse().unwrap(),
            ..Default::default()
        })
        .unwrap()
        .client(Credentials::new(TOKEN_ID, TOKEN_SECRET));
        Master {
            id: ready.id,
            url: ready.url,
            seed: ready.seed,
            size,
            admin,
            client,
        }
    }

    /// The SHA-256 mux-sim's master has, computed without storing it.
    pub fn sha256(&self) -> String {
        content::sha256_hex(self.seed, self.size)
    }

    /// The URL's signature: it must never appear in the copier's output.
    pub fn signature(&self) -> String {
        let url = url::Url::parse(&self.url).unwrap();
        let signature = url
            .query_pairs()
            .find(|(k, _)| k == "signature")
            .map(|(_, v)| v.into_owned());
        signature.expect("a signed URL")
    }

    /// Cuts the next `count` downloads (of any master) with a connection error after `after`
    /// bytes.
    pub async fn cut_downloads(&self, count: u32, after: u64) {
        let cut = serde_json::json!({"master_drops": count, "master_drop_after": after});
        self.admin
            .configure(cut)
            .await
            .expect("mux-sim takes the switch");
    }

    /// How many downloads of this master mux-sim answered with `status`.
    pub async fn downloads(&self, status: u16) -> u64 {
        self.admin
            .count("GET", MASTER_ROUTE, Some(&self.id), Some(status))
            .await
            .unwrap()
    }
}
