//! Webhook delivery, as Mux does it: signed POSTs, retried with growing delays on any
//! non-2xx answer, 5 s per attempt; optionally duplicated or reordered.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::config::Switches;
use super::world::Event;
use mux::signature;

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub kind: String,
    pub object_id: String,
    pub endpoint: String,
    pub attempt: u32,
    /// The endpoint's status, or 0 when it did not answer.
    pub status: u16,
}

#[derive(Clone)]
pub struct Webhooks {
    queue: mpsc::UnboundedSender<Event>,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Webhooks {
    /// Starts the deliverer; it reads the switches at each event.
    pub fn start(switches: Arc<RwLock<Switches>>) -> Self {
        let (queue, mut events) = mpsc::unbounded_channel::<Event>();
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let log = deliveries.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("webhook HTTP client");
            while let Some(event) = events.recv().await {
                let sw = switches.read().expect("switches lock").clone();
                if !sw.webhooks_enabled || sw.webhook_urls.is_empty() {
                    continue;
                }
                let body = envelope(&event);
                let copies = if sw.webhook_duplicate { 2 } else { 1 };
                for endpoint in &sw.webhook_urls {
                    for _ in 0..copies {
                        tokio::spawn(deliver(
                            http.clone(),
                            endpoint.clone(),
                            body.clone(),
                            sw.clone(),
                            log.clone(),
                        ));
                    }
                }
            }
        });
        Self { queue, deliveries }
    }

    pub fn send(&self, events: Vec<Event>) {
        for event in events {
            // The receiver lives as long as the runtime: a failed send means shutdown.
            let _ = self.queue.send(event);
        }
    }
}

/// The JSON Mux POSTs. In webhooks `data.created_at` is a number (the REST API sends a
/// string), which is what serialising the wire type gives.
fn envelope(event: &Event) -> serde_json::Value {
    json!({
        "type": event.kind,
        "object": {"type": event.object_type, "id": event.object_id},
        "id": uuid::Uuid::new_v4().to_string(),
        "environment": {"name": "Development", "id": "mux-sim"},
        "data": event.data,
        "created_at": jiff::Timestamp::now().to_string(),
        "attempts": [],
        "accessor_source": null,
        "accessor": null,
        "request_id": null,
    })
}

async fn deliver(
    http: reqwest::Client,
    endpoint: String,
    mut body: serde_json::Value,
    sw: Switches,
    log: Arc<Mutex<Vec<Delivery>>>,
) {
    if !sw.webhook_reorder.is_zero() {
        let max = sw.webhook_reorder.as_millis() as u64;
        let wait = rand::random_range(0..=max);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let event_id = body["id"].as_str().unwrap_or_default().to_string();
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let object_id = body["object"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut delay = sw.webhook_retry_base;
    for attempt in 1..=sw.webhook_max_attempts.max(1) {
        let raw = serde_json::to_vec(&body).expect("JSON serialises");
        let now = jiff::Timestamp::now().as_second();
        let header = signature::sign(sw.webhook_secret.as_bytes(), now, &raw);
        let status = http
            .post(&endpoint)
            .header(signature::HEADER, header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        log.lock().expect("delivery log").push(Delivery {
            event_id: event_id.clone(),
            kind: kind.clone(),
            object_id: object_id.clone(),
            endpoint: endpoint.clone(),
            attempt,
            status,
        });
        if (200..300).contains(&status) {
            return;
        }
        // Later attempts carry the history of earlier ones, as Mux's do.
        if let Some(attempts) = body["attempts"].as_array_mut() {
            attempts.push(json!({
                "webhook_id": attempt,
                "response_status_code": status,
                "address": endpoint,
                "created_at": jiff::Timestamp::now().to_string(),
            }));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3600));
    }
}
