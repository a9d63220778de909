//! Mux's error envelope, as every refused request gets it: one place for the API's routes, the
//! admin routes and asset deletion.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mux::types::ErrorEnvelope;

/// `status` with `{"error": {"type": kind, "messages": [message]}}`.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(ErrorEnvelope::new(kind, message))).into_response()
}
