//! `/_sim/*`: seeding and inspection for tests, benchmarks and the demo. Not part of Mux,
//! and not behind Mux's auth or rate limits.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{Value, json};

use super::Sim;
use super::api::{rest_asset, split};
use super::envelope::error;
use super::world::{AssetSeed, LiveStreamSeed, Refusal};

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/healthz", get(|| async { "ok" }))
        .route("/_sim/config", get(get_config).patch(patch_config))
        .route("/_sim/assets", post(seed_asset))
        .route("/_sim/assets/{id}", get(inspect_asset).delete(delete_asset))
        .route("/_sim/assets/{id}/error", post(error_asset))
        .route("/_sim/live-streams", post(seed_live_stream))
        .route("/_sim/live-streams/{id}/start", post(start_live_stream))
        .route("/_sim/live-streams/{id}/end", post(end_live_stream))
        .route("/_sim/stats", get(stats).delete(reset_stats))
        .route("/_sim/requests", get(requests))
        .route("/_sim/webhooks", get(deliveries))
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
        Refusal::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_parameters", &m),
    }
}

async fn get_config(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(serde_json::to_value(sim.switches()).expect("switches serialise"))
}

async fn patch_config(State(sim): State<Arc<Sim>>, Json(patch): Json<Value>) -> Response {
    let mut switches = sim.switches.write().expect("switches lock");
    match switches.patched(&patch) {
        Ok(new) => {
            *switches = new;
            Json(serde_json::to_value(&*switches).expect("serialises")).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_parameters", &e),
    }
}

async fn seed_asset(State(sim): State<Arc<Sim>>, Json(seed): Json<AssetSeed>) -> Response {
    match sim.with_world(|w, now, sw| split(w.seed_asset(seed, now, sw))) {
        Ok(asset) => (
            StatusCode::CREATED,
            Json(json!({"data": rest_asset(&asset)})),
        )
            .into_response(),
        Err(r) => refused(r),
    }
}

async fn inspect_asset(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let view = sim.with_world(|w, now, sw| {
        let events = w.advance(now, sw);
        (w.admin_view(&id, now, sw), events)
    });
    match view {
        Some(view) => Json(view).into_response(),
        None => refused(Refusal::NotFound(format!("asset {id} not found"))),
    }
}

async fn delete_asset(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match sim.with_world(|w, _, _| split(w.delete_asset(&id).map(|e| ((), e)))) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn error_asset(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match sim.with_world(|w, _, _| split(w.error_asset(&id).map(|e| ((), e)))) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refused(r),
    }
}

async fn seed_live_stream(
    State(sim): State<Arc<Sim>>,
    Json(seed): Json<LiveStreamSeed>,
) -> Response {
    match sim.with_world(|w, _, sw| (w.seed_live_stream(seed, sw), Vec::new())) {
        Ok(stream) => (StatusCode::CREATED, Json(json!({"data": stream}))).into_response(),
        Err(r) => refused(r),
    }
}

async fn start_live_stream(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    live_stream_transition(&sim, &id, true)
}

async fn end_live_stream(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    live_stream_transition(&sim, &id, false)
}

fn live_stream_transition(sim: &Sim, id: &str, start: bool) -> Response {
    let result = sim.with_world(|w, now, sw| {
        let result = if start {
            w.start_live_stream(id, now, sw)
        } else {
            w.end_live_stream(id, now, sw)
        };
        split(result.map(|events| (w.live_stream(id), events)))
    });
    match result {
        Ok(stream) => Json(json!({"data": stream})).into_response(),
        Err(r) => refused(r),
    }
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let rows = sim.stats.counts();
    let total: u64 = rows.iter().map(|r| r.count).sum();
    Json(json!({"total": total, "requests": rows}))
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.stats.reset();
    StatusCode::NO_CONTENT
}

async fn requests(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({"requests": sim.stats.log()}))
}

async fn deliveries(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let log = sim
        .webhooks
        .deliveries
        .lock()
        .expect("delivery log")
        .clone();
    Json(json!({"deliveries": log}))
}
