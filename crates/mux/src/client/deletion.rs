//! Deleting an asset: `DELETE /video/v1/assets/{id}`, which Mux answers 204 with no body.

use http::Method;

use super::{Idempotent, MuxClient, encode_segment};
use crate::error::MuxError;

/// What a deletion found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Mux deleted the asset (204).
    Now,
    /// Mux has no such asset (404): deleted before, by this call's earlier attempt (a retry
    /// after a lost answer) or by someone else.
    AlreadyGone,
}

impl MuxClient {
    /// `DELETE /video/v1/assets/{id}`. Retried like a GET on 5xx and timeouts: deleting twice
    /// deletes once, and a second attempt that finds nothing says [`Deleted::AlreadyGone`].
    pub async fn delete_asset(&self, asset_id: &str) -> Result<Deleted, MuxError> {
        let path = format!("/video/v1/assets/{}", encode_segment(asset_id));
        let no_body = None::<&()>;
        let answer: Result<(), MuxError> = self
            .exchange(
                "delete_asset",
                Method::DELETE,
                &path,
                &[],
                no_body,
                Idempotent::Yes,
            )
            .await;
        match answer {
            Ok(()) => Ok(Deleted::Now),
            Err(MuxError::NotFound { .. }) => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }
}
