//! Reading what Mux answered: its error envelope, request ID and `Retry-After`, and transport
//! errors told without their URL.

use std::time::Duration;

use http::StatusCode;

use crate::error::MuxError;
use crate::types::ErrorEnvelope;

pub(super) fn client_error(status: StatusCode, body: &[u8], request_id: String) -> MuxError {
    let message = error_message(body);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => MuxError::Credentials {
            status: status.as_u16(),
            message,
            request_id,
        },
        StatusCode::NOT_FOUND => MuxError::NotFound {
            message,
            request_id,
        },
        _ => MuxError::BadRequest {
            status: status.as_u16(),
            kind: serde_json::from_slice::<ErrorEnvelope>(body)
                .map(|e| e.error.kind)
                .unwrap_or_else(|_| "unknown".into()),
            message,
            request_id,
        },
    }
}

/// The messages of Mux's error body, or a bounded excerpt of whatever came instead.
pub(super) fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) if !envelope.error.messages.is_empty() => envelope.error.messages.join("; "),
        Ok(envelope) => envelope.error.kind,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

pub(super) fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// `X-RateLimit-Remaining`: what Mux's bucket has left after this request, when it says.
pub(super) fn rate_limit_remaining(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get("x-ratelimit-remaining")?;
    value.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` in seconds (Mux does not document it; honoured when present).
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(http::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(300.0)))
}

/// reqwest's error text can carry the URL; ours never has secrets in it (auth is in a
/// header), but say what happened without it anyway.
pub(super) fn describe_transport_error(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "response body interrupted"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_sorted_by_what_to_do() {
        use crate::error::ErrorKind;
        let body = br#"{"error":{"type":"not_found","messages":["Asset not found"]}}"#;
        let kind = |s: u16| client_error(StatusCode::from_u16(s).unwrap(), body, "r".into()).kind();
        assert_eq!(kind(401), ErrorKind::Credentials);
        assert_eq!(kind(403), ErrorKind::Credentials);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(400), ErrorKind::BadRequest);
        assert_eq!(kind(422), ErrorKind::BadRequest);
    }
}
