//! Reading an object back whole, however long it takes.
//!
//! object_store gives one read a budget: the client's request timeout, resumed at most ten times
//! and for three minutes in all. A multi-GiB staging object read back through the pod on a slow
//! link outlasts it (at 15 MB/s, 4 GiB take 4.5 minutes). This reads on from where a failed read
//! stopped, with a fresh request and a fresh budget, for as long as the reads make progress; only
//! failures in a row, without a byte between them, are bounded (`--max-retries`). Every request
//! after the first is conditional on the first one's ETag, so a changed object is an error, never
//! a splice of two.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

/// A whole object, read in order, resuming after failures.
pub struct ReadBack<'a> {
    store: &'a dyn ObjectStore,
    path: &'a Path,
    size: u64,
    offset: u64,
    e_tag: Option<String>,
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    failures_in_a_row: u32,
    max_retries: u32,
    retry_delay: Duration,
}

impl<'a> ReadBack<'a> {
    /// Reads the `size` bytes of `path`; `max_retries` failures in a row without progress end it,
    /// each waited for `retry_delay` times its rank.
    pub fn new(
        store: &'a dyn ObjectStore,
        path: &'a Path,
        size: u64,
        max_retries: u32,
        retry_delay: Duration,
    ) -> Self {
        ReadBack {
            store,
            path,
            size,
            offset: 0,
            e_tag: None,
            body: None,
            failures_in_a_row: 0,
            max_retries,
            retry_delay,
        }
    }

    /// The next bytes, or `None` once all `size` were read.
    pub async fn next_chunk(&mut self) -> object_store::Result<Option<Bytes>> {
        while self.offset < self.size {
            let Some(body) = self.body.as_mut() else {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(self.offset..self.size)),
                    if_match: self.e_tag.clone(),
                    ..Default::default()
                };
                match self.store.get_opts(self.path, options).await {
                    Ok(result) => {
                        if self.e_tag.is_none() {
                            self.e_tag = result.meta.e_tag.clone();
                        }
                        self.body = Some(result.into_stream());
                    }
                    Err(error) => self.failed(error).await?,
                }
                continue;
            };
            match body.next().await {
                Some(Ok(bytes)) => {
                    self.offset += bytes.len() as u64;
                    self.failures_in_a_row = 0;
                    return Ok(Some(bytes));
                }
                Some(Err(error)) => {
                    self.body = None;
                    self.failed(error).await?;
                }
                None => {
                    // The body ended short of the size: read on from there.
                    self.body = None;
                    let short = object_store::Error::Generic {
                        store: "read back",
                        source: format!("a response ended at byte {}", self.offset).into(),
                    };
                    self.failed(short).await?;
                }
            }
        }
        Ok(None)
    }

    /// Waits before the next attempt, or gives up: after `max_retries` failures in a row, or at
    /// once when the object is gone or changed (retrying would not help).
    async fn failed(&mut self, error: object_store::Error) -> object_store::Result<()> {
        let final_error = matches!(
            error,
            object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. }
        );
        if final_error || self.failures_in_a_row >= self.max_retries {
            return Err(error);
        }
        self.failures_in_a_row += 1;
        tracing::info!(
            "reading {} back stopped at byte {} ({error}); reading on",
            self.path,
            self.offset
        );
        tokio::time::sleep(self.retry_delay * self.failures_in_a_row).await;
        Ok(())
    }
}
