//! The Mux endpoints mux-sim serves, behind the same gate Mux has: Basic auth, rate
//! limits per environment, and (for tests) injected faults.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Sim;
use super::world::Refusal;
use crate::envelope::error;
use mux::types::{
    Asset, CreateAssetRequest, DataEnvelope, MasterAccess, UpdateMasterAccessRequest,
};

pub fn routes(sim: Arc<Sim>) -> Router<Arc<Sim>> {
    Router::new()
        .route("/video/v1/assets", get(list_assets).post(create_asset))
        .route(
            "/video/v1/assets/{id}",
            get(get_asset).delete(super::deletion::delete_asset),
        )
        .route(
            "/video/v1/assets/{id}/master-access",
            put(update_master_access),
        )
        .route("/video/v1/live-streams/{id}", get(get_live_stream))
        .route_layer(middleware::from_fn_with_state(sim, gate))
}

// --- The gate -------------------------------------------------------------------------

/// A token bucket per class of request, refilled continuously.
#[derive(Default)]
pub struct Limits {
    post: Mutex<Bucket>,
    other: Mutex<Bucket>,
}

#[derive(Default)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// Takes a token if there is one; otherwise how long until there is.
    fn take(&mut self, rate: f64, burst: u32, now: Instant) -> Result<u32, f64> {
        let capacity = burst.max(1) as f64;
        let elapsed = self
            .last
            .map(|t| (now - t).as_secs_f64())
            .unwrap_or(f64::MAX);
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens as u32)
        } else {
            Err((1.0 - self.tokens) / rate)
        }
    }
}

/// Marks a response whose connection mux-sim cut, for the stats.
#[derive(Clone, Copy)]
struct Dropped;

async fn gate(
    State(sim): State<Arc<Sim>>,
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = matched.as_str().to_string();
    let id = resource_id(request.uri().path());
    let mut response = admit(&sim, request, next).await;
    let status = if response.extensions().get::<Dropped>().is_some() {
        0
    } else {
        response.status().as_u16()
    };
    sim.stats
        .record(method.as_str(), &route, id.as_deref(), status);
    response.headers_mut().insert("x-request-id", request_id());
    response
}

async fn admit(sim: &Sim, request: Request, next: Next) -> Response {
    if !authorized(sim, request.headers().get(header::AUTHORIZATION)) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized request",
        );
    }
    let sw = sim.switches();
    let (bucket, rate, burst) = if request.method() == Method::POST {
        (&sim.limits.post, sw.post_limit(), sw.post_burst)
    } else {
        (&sim.limits.other, sw.other_limit(), sw.other_burst)
    };
    let taken = bucket
        .lock()
        .expect("limits lock")
        .take(rate, burst, Instant::now());
    let remaining = match taken {
        Ok(remaining) => remaining,
        Err(wait_secs) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests: slow down, or use webhooks instead of polling",
            );
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", number(rate.ceil() as u64));
            headers.insert("x-ratelimit-remaining", number(0));
            if sw.retry_after {
                headers.insert(
                    header::RETRY_AFTER,
                    number(wait_secs.ceil().max(1.0) as u64),
                );
            }
            return response;
        }
    };
    if !sw.latency.is_zero() {
        tokio::time::sleep(sw.latency).await;
    }
    if let Some(fault) = draw_fault(sim) {
        return fault;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", number(rate.ceil() as u64));
    headers.insert("x-ratelimit-remaining", number(remaining as u64));
    response
}

/// Injected faults: an error status, a dropped connection, or a body that does not parse.
fn draw_fault(sim: &Sim) -> Option<Response> {
    let sw = {
        let mut switches = sim.switches.write().expect("switches lock");
        if switches.fail_next > 0 {
            switches.fail_next -= 1;
            return Some(injected_error(&switches));
        }
        switches.clone()
    };
    let roll: f64 = rand::random();
    if roll < sw.error_rate {
        return Some(injected_error(&sw));
    }
    if roll < sw.error_rate + sw.drop_rate {
        // A body that fails at once: hyper aborts the connection mid-response.
        let body = Body::from_stream(futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mux-sim dropped the connection",
            ))
        }));
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, number(64));
        response.extensions_mut().insert(Dropped);
        return Some(response);
    }
    if roll < sw.error_rate + sw.drop_rate + sw.malformed_rate {
        return Some(
            (
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"data": {"id": "#,
            )
                .into_response(),
        );
    }
    None
}

/// The error `fail_status` names, in Mux's envelope, with `Retry-After` if switched on.
fn injected_error(sw: &super::Switches) -> Response {
    let status = StatusCode::from_u16(sw.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        401 | 403 => "unauthorized",
        500 => "internal_error",
        _ => "service_unavailable",
    };
    let mut response = error(status, kind, "injected by mux-sim");
    if sw.fail_retry_after > 0 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, number(sw.fail_retry_after));
    }
    response
}

/// A path the API does not have: Mux's envelope and a request ID, like the rest.
pub async fn no_route(method: Method, uri: http::Uri) -> Response {
    let message = format!("{method} {}: no such route", uri.path());
    with_request_id(error(StatusCode::NOT_FOUND, "not_found", &message))
}

/// A method a route does not take: the same envelope, 405.
pub async fn wrong_method(method: Method, uri: http::Uri) -> Response {
    let message = format!("{} does not take {method}", uri.path());
    let status = StatusCode::METHOD_NOT_ALLOWED;
    with_request_id(error(status, "method_not_allowed", &message))
}

fn with_request_id(mut response: Response) -> Response {
    response.headers_mut().insert("x-request-id", request_id());
    response
}

fn request_id() -> HeaderValue {
    HeaderValue::from_str(&super::world::new_id(24)).expect("alphanumeric")
}

fn authorized(sim: &Sim, value: Option<&HeaderValue>) -> bool {
    let Some(credentials) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
    else {
        return false;
    };
    let Some((id, secret)) = credentials.split_once(':') else {
        return false;
    };
    sim.tokens.iter().any(|(i, s)| i == id && s == secret)
}

/// The asset or live stream ID in an API path.
fn resource_id(path: &str) -> Option<String> {
    let mut segments = path.trim_matches('/').split('/');
    // video / v1 / assets|live-streams / {id} / ...
    let (_, _, kind, id) = (
        segments.next(),
        segments.next(),
        segments.next()?,
        segments.next()?,
    );
    matches!(kind, "assets" | "live-streams").then(|| id.to_string())
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
        Refusal::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_parameters", &m),
    }
}

/// An asset as the REST API sends it: `created_at` as a string of Unix seconds, and some
/// fields a client does not know, as Mux's real responses have.
pub fn rest_asset(asset: &Asset) -> Value {
    let mut value = serde_json::to_value(asset).expect("asset serialises");
    if let Some(created) = asset.created_at {
        value["created_at"] = json!(created.to_string());
    }
    value["playback_ids"] = json!([{"id": format!("pb{}", asset.id), "policy": "public"}]);
    value["tracks"] = json!([]);
    value["video_quality"] = json!("plus");
    value["aspect_ratio"] = json!("16:9");
    value
}

fn data(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(DataEnvelope { data: value })).into_response()
}

// --- The endpoints ----------------------------------------------------------------------

async fn get_asset(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match sim.with_world(|w, now, sw| split(w.view_checked(&id, now, sw))) {
        Ok(asset) => data(StatusCode::OK, rest_asset(&asset)),
        Err(r) => refusal(r),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    page: Option<usize>,
}

async fn list_assets(State(sim): State<Arc<Sim>>, Query(q): Query<ListQuery>) -> Response {
    let result = sim.with_world(|w, now, sw| {
        match w.list(q.limit.unwrap_or(25), q.cursor.as_deref(), q.page, now, sw) {
            Ok((assets, next, events)) => (Ok((assets, next)), events),
            Err(r) => (Err(r), Vec::new()),
        }
    });
    match result {
        Ok((assets, next)) => {
            let mut body = json!({"data": assets.iter().map(rest_asset).collect::<Vec<_>>()});
            if let Some(next) = next {
                body["next_cursor"] = json!(next);
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(r) => refusal(r),
    }
}

/// A JSON request body, or Mux's 400 for one that does not parse.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_parameters",
            &format!("invalid JSON body: {e}"),
        ))
    })
}

async fn create_asset(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: CreateAssetRequest = match json_body(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    let result = sim.with_world(|w, now, sw| {
        split(w.create_asset(
            request.master_access,
            request.passthrough,
            request.max_resolution_tier,
            now,
            sw,
        ))
    });
    match result {
        Ok(asset) => data(StatusCode::CREATED, rest_asset(&asset)),
        Err(r) => refusal(r),
    }
}

async fn update_master_access(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request: UpdateMasterAccessRequest = match json_body(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    if request.master_access == MasterAccess::Unknown {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameters",
            "master_access must be one of: temporary, none",
        );
    }
    match sim
        .with_world(|w, now, sw| split(w.put_master_access(&id, request.master_access, now, sw)))
    {
        Ok(asset) => data(StatusCode::OK, rest_asset(&asset)),
        Err(r) => refusal(r),
    }
}

async fn get_live_stream(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let stream = sim.with_world(|w, now, sw| {
        let events = w.advance(now, sw);
        (w.live_stream(&id), events)
    });
    match stream {
        Some(stream) => {
            let mut value = serde_json::to_value(stream).expect("serialises");
            if let Some(created) = value.get("created_at").and_then(Value::as_i64) {
                value["created_at"] = json!(created.to_string());
            }
            data(StatusCode::OK, value)
        }
        None => refusal(Refusal::NotFound(format!("live stream {id} not found"))),
    }
}

/// Moves the events of a world call out of its result, for `Sim::with_world`.
pub fn split<T>(
    result: Result<(T, Vec<super::world::Event>), Refusal>,
) -> (Result<T, Refusal>, Vec<super::world::Event>) {
    match result {
        Ok((value, events)) => (Ok(value), events),
        Err(r) => (Err(r), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_come_from_api_paths() {
        assert_eq!(
            resource_id("/video/v1/assets/abc/master-access").as_deref(),
            Some("abc")
        );
        assert_eq!(
            resource_id("/video/v1/live-streams/ls1").as_deref(),
            Some("ls1")
        );
        assert_eq!(resource_id("/video/v1/assets"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_the_burst_then_the_rate() {
        let mut bucket = Bucket::default();
        let now = Instant::now();
        assert!((0..3).all(|_| bucket.take(1.0, 3, now).is_ok()));
        assert!(bucket.take(1.0, 3, now).is_err());
        assert!(
            bucket
                .take(1.0, 3, now + std::time::Duration::from_secs(1))
                .is_ok()
        );
    }
}
