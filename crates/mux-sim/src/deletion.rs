//! `DELETE /video/v1/assets/{id}` as Mux answers it: 204 with no body, the asset gone from
//! then on (404 to GET, to a second DELETE and at its master URL), and `video.asset.deleted`
//! sent with the asset as it was.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::Sim;
use super::envelope::error;
use super::world::Refusal;

pub async fn delete_asset(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let deleted = sim.with_world(|w, now, sw| {
        // What was due happens first (a master turning ready), so events keep their order.
        let mut events = w.advance(now, sw);
        match w.delete_asset(&id) {
            Ok(more) => {
                events.extend(more);
                (Ok(()), events)
            }
            Err(refused) => (Err(refused), events),
        }
    });
    match deleted {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Refusal::NotFound(message)) => error(StatusCode::NOT_FOUND, "not_found", &message),
        Err(Refusal::Invalid(message)) => {
            error(StatusCode::BAD_REQUEST, "invalid_parameters", &message)
        }
    }
}
