//! What mux-sim was asked: counts by endpoint, resource and status, and a timed log,
//! so tests and benchmarks can count calls and check rates from Mux's side.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The log keeps this many of the latest requests.
const LOG_CAPACITY: usize = 200_000;

/// One request as the log keeps it (`GET /_sim/requests`; the admin client reads it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Milliseconds since mux-sim started.
    pub at_ms: u64,
    pub method: String,
    /// The route template, e.g. `/video/v1/assets/{id}`.
    pub route: String,
    /// The asset or live stream the request was about, if any.
    pub id: Option<String>,
    /// The status answered; 0 for a dropped connection.
    pub status: u16,
}

#[derive(Debug, Serialize)]
pub struct CountRow {
    pub method: String,
    pub route: String,
    pub id: Option<String>,
    pub status: u16,
    pub count: u64,
}

type Key = (String, String, Option<String>, u16);

pub struct Stats {
    started: Instant,
    counts: Mutex<BTreeMap<Key, u64>>,
    log: Mutex<VecDeque<LoggedRequest>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            counts: Mutex::default(),
            log: Mutex::default(),
        }
    }
}

impl Stats {
    pub fn record(&self, method: &str, route: &str, id: Option<&str>, status: u16) {
        let key = (
            method.to_string(),
            route.to_string(),
            id.map(str::to_string),
            status,
        );
        *self
            .counts
            .lock()
            .expect("stats lock")
            .entry(key)
            .or_default() += 1;
        let mut log = self.log.lock().expect("stats lock");
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(LoggedRequest {
            at_ms: self.started.elapsed().as_millis() as u64,
            method: method.to_string(),
            route: route.to_string(),
            id: id.map(str::to_string),
            status,
        });
    }

    pub fn counts(&self) -> Vec<CountRow> {
        self.counts
            .lock()
            .expect("stats lock")
            .iter()
            .map(|((method, route, id, status), count)| CountRow {
                method: method.clone(),
                route: route.clone(),
                id: id.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }

    pub fn log(&self) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .expect("stats lock")
            .iter()
            .cloned()
            .collect()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("stats lock").clear();
        self.log.lock().expect("stats lock").clear();
    }
}
