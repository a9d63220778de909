//! The master in parallel ranges. A CDN caps each connection, so one stream is as slow as one
//! connection; several `Range` requests at once go faster in aggregate (aria2 and rclone's
//! multi-thread mode do the same). Once the first answer (a 206 for the first range) named the
//! file's length, the rest of that length is asked for as `--range-size` ranges,
//! `--connections` requests in flight, each on a task of its own (so it keeps reading while the
//! others are consumed) with `If-Range` on the validator of the first answer. A body is read
//! only once its range lies within `--read-ahead` of the bytes consumed (before that it waits
//! in its connection: the request's time to first byte overlaps the others' transfers), then
//! held until its turn and consumed in order: hashed, checked for its MP4 structure and
//! uploaded (`Download::consume`). Memory is bounded by the read-ahead, whatever the master's
//! size.
//!
//! A range that fails in a way a retry may cure is asked for again (counted by the download's
//! retries: `--max-retries` in a row without progress). A changed validator, or a file now
//! shorter than a range, is a change of the master: the pass restarts (`Stop::Changed`). A
//! server that answers a range with the whole file (200) has stopped honouring `Range`: the
//! download goes on in one stream from the first byte not consumed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Download, Stop};
use crate::copy::buffers::{Buffer, Pool};
use crate::copy::error::{CopyError, Reason};
use crate::copy::source::{
    FetchError, Source, Validator, content_range, describe, validator_changed,
};
use crate::copy::upload::PartWriter;

/// Why one range could not be read.
enum RangeError {
    Transient(String),
    /// The master is not the version the download started on.
    Changed(String),
    /// The server answered with the whole file: it does not honour `Range` (any more).
    Ignored,
    Fatal(CopyError),
}

/// Bytes `[start, end)`.
type Span = (u64, u64);

impl Download<'_> {
    /// Fetches `[self.done, to)` in parallel ranges, consuming them in order. `Ok(true)` once
    /// all were consumed; `Ok(false)` when the server stopped honouring `Range` (the caller goes
    /// on in one stream from `self.done`).
    pub(super) async fn fetch_in_parallel(
        &mut self,
        to: u64,
        writer: &mut PartWriter,
    ) -> Result<bool, Stop> {
        let size = self.args.range_size;
        let window = self.args.connections;
        // How far past the bytes consumed a range's body may be read: the memory bound.
        let (consumed, gate) = watch::channel(self.done);
        let read_ahead = self.args.read_ahead.max(size);
        let mut tasks: JoinSet<(Span, Result<Buffer, RangeError>)> = JoinSet::new();
        let mut ready: BTreeMap<u64, Buffer> = BTreeMap::new();
        let buffers = Pool::new(size as usize);
        let mut again: BTreeSet<Span> = BTreeSet::new();
        let mut next = self.done;
        let mut done_at_last_failure = self.done;
        tracing::debug!(
            "fetching bytes {}..{to} in ranges of {size}, {window} at once",
            self.done
        );
        loop {
            while let Some(bytes) = ready.remove(&self.done) {
                self.consume(&bytes, writer).await?;
                consumed.send_replace(self.done);
            }
            if self.done >= to {
                return Ok(true);
            }
            // Ranges asked for again first (the lowest first: it holds the others back).
            while tasks.len() + ready.len() < window {
                let span = match again.pop_first() {
                    Some(span) => span,
                    None if next < to => {
                        let span = (next, (next + size).min(to));
                        next = span.1;
                        span
                    }
                    None => break,
                };
                let source = self.source.clone();
                let validator = self.validator.clone();
                let gate = Gate(gate.clone(), read_ahead);
                let buffers = buffers.clone();
                tasks.spawn(async move {
                    let fetched = fetch_range(&source, span, validator, gate, &buffers).await;
                    (span, fetched)
                });
            }
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                _ = self.cancel.cancelled() => return Err(CopyError::interrupted().into()),
            };
            let Some(joined) = joined else {
                // Nothing in flight and nothing to consume: cannot happen while done < to.
                return Err(CopyError::new(Reason::Failed, "the parallel download ran dry").into());
            };
            let (span, result) = joined.map_err(|e| {
                CopyError::new(Reason::Failed, format!("a range's download task: {e}"))
            })?;
            match result {
                Ok(bytes) => {
                    ready.insert(span.0, bytes);
                }
                Err(RangeError::Transient(why)) => {
                    let progressed = self.done > done_at_last_failure;
                    done_at_last_failure = self.done;
                    let why = format!("bytes {}-{}: {why}", span.0, span.1 - 1);
                    self.retries.failed(why, progressed).await?;
                    again.insert(span);
                }
                Err(RangeError::Changed(why)) => return Err(Stop::Changed(why)),
                Err(RangeError::Fatal(e)) => return Err(e.into()),
                Err(RangeError::Ignored) => {
                    tracing::warn!(
                        "the server answered a range with the whole file: reading on in one \
                         stream from byte {}",
                        self.done
                    );
                    return Ok(false);
                }
            }
        }
    }
}

/// Where the download has consumed to, and how far past it a body may be read.
struct Gate(watch::Receiver<u64>, u64);

impl Gate {
    /// Waits until bytes up to `end` fit in the read-ahead. The request was sent before: its
    /// first-byte wait overlaps the other ranges' transfers, and its body waits in the
    /// connection (TCP holds the server back) rather than in memory.
    async fn admit(&mut self, end: u64) {
        let read_ahead = self.1;
        let _ = self.0.wait_for(|done| end <= done + read_ahead).await;
    }
}

/// `GET` of bytes `[start, end)` with `If-Range` on `validator`: the bytes, exactly those, read
/// once the gate admits them into a buffer of `buffers`.
async fn fetch_range(
    source: &Source,
    (start, end): Span,
    validator: Option<Validator>,
    mut gate: Gate,
    buffers: &Arc<Pool>,
) -> Result<Buffer, RangeError> {
    let range = format!("bytes={start}-{}", end - 1);
    let mut response = match source.get(&range, validator.as_ref()).await {
        Ok(response) => response,
        Err(FetchError::Transient(why)) => return Err(RangeError::Transient(why)),
        Err(FetchError::Fatal(e)) => return Err(RangeError::Fatal(e)),
    };
    let headers = response.headers();
    let now = Validator::from_headers(headers);
    if let Some(why) = validator_changed(validator.as_ref(), now.as_ref()) {
        return Err(RangeError::Changed(why));
    }
    match response.status() {
        StatusCode::PARTIAL_CONTENT => match content_range(headers) {
            Some((first, last, _)) if (first, last + 1) == (start, end) => {}
            Some((_, _, Some(total))) if total < end => {
                return Err(RangeError::Changed(format!(
                    "it is now {total} bytes long, we had {end}"
                )));
            }
            other => {
                return Err(RangeError::Fatal(CopyError::new(
                    Reason::SourceFailed,
                    format!("asked for {range}, the server sent {other:?}"),
                )));
            }
        },
        StatusCode::OK => return Err(RangeError::Ignored),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(RangeError::Changed(format!(
                "it is now shorter than {end} bytes"
            )));
        }
        other => {
            return Err(RangeError::Fatal(CopyError::new(
                Reason::SourceFailed,
                format!("the source answered {other}"),
            )));
        }
    }
    gate.admit(end).await;
    // Copied into one buffer of the range's size: what is held is what was asked for.
    let length = (end - start) as usize;
    let mut bytes = buffers.take();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() <= length => {
                bytes.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => {
                return Err(RangeError::Fatal(CopyError::new(
                    Reason::SourceFailed,
                    format!("the answer to {range} is longer than the range"),
                )));
            }
            Ok(None) => break,
            Err(e) => return Err(RangeError::Transient(describe(e))),
        }
    }
    if bytes.len() < length {
        return Err(RangeError::Transient(format!(
            "the body ended after {} of {length} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}
