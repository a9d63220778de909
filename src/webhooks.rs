//! The Mux webhook endpoint: `POST /webhooks/mux` on a port of its own.
//!
//! Verifies `Mux-Signature` (HMAC-SHA256 over `t.body`, any configured secret, constant-time,
//! a tolerance both ways), reads at most a bounded body, and hands a verified event to a sink
//! that only wakes reconciles: it answers at once, never waits on Mux or on the controller.
//! Duplicates and reordering are harmless because a reconcile reads the asset's real state;
//! the event is only a nudge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::metrics::{KindLabels, Metrics, ReasonLabels};
use mux::signature;
use mux::types::WebhookEvent;

pub const PATH: &str = "/webhooks/mux";

/// Receives each verified event, with the instant it arrived.
pub type EventSink = Arc<dyn Fn(&WebhookEvent, Instant) + Send + Sync>;

#[derive(Clone)]
pub struct WebhookConfig {
    /// Signing secrets; several during a rotation.
    pub secrets: Vec<String>,
    /// How far a signature's timestamp may be from now, either way.
    pub tolerance: Duration,
    /// Bodies larger than this are refused unread.
    pub max_body: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secrets", &format!("{} configured", self.secrets.len()))
            .field("tolerance", &self.tolerance)
            .field("max_body", &self.max_body)
            .finish()
    }
}

#[derive(Clone)]
struct Shared {
    config: Arc<WebhookConfig>,
    metrics: Metrics,
    sink: EventSink,
}

pub fn router(config: WebhookConfig, metrics: Metrics, sink: EventSink) -> Router {
    Router::new().route(PATH, post(receive)).with_state(Shared {
        config: Arc::new(config),
        metrics,
        sink,
    })
}

fn refuse(shared: &Shared, status: StatusCode, reason: &str, message: &str) -> Response {
    shared
        .metrics
        .webhook_refused
        .get_or_create(&ReasonLabels {
            reason: reason.into(),
        })
        .inc();
    tracing::debug!(reason, "refused a webhook delivery");
    (status, format!("{message}\n")).into_response()
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let received = Instant::now();
    let bytes = match axum::body::to_bytes(body, shared.config.max_body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                &shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is too large",
            );
        }
    };
    let header = headers.get(signature::HEADER).and_then(|v| v.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    let tolerance = shared.config.tolerance.as_secs() as i64;
    if let Err(error) = signature::verify(header, &bytes, &shared.config.secrets, now, tolerance) {
        let status = match error {
            signature::SignatureError::Missing | signature::SignatureError::Malformed => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::UNAUTHORIZED,
        };
        return refuse(&shared, status, error.reason(), &error.to_string());
    }
    let event: WebhookEvent = match serde_json::from_slice(&bytes) {
        Ok(event) => event,
        Err(_) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "the body is not a Mux event",
            );
        }
    };
    shared
        .metrics
        .webhook_events
        .get_or_create(&KindLabels {
            kind: event.kind.clone(),
        })
        .inc();
    (shared.sink)(&event, received);
    (StatusCode::OK, "ok\n").into_response()
}
