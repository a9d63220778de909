//! One pass over the master, from byte 0 to its settled end: `Range` requests resumed after
//! transient failures, bodies streamed into the hash and the staging upload, and the
//! final-length rule (quiet checks `--settle` apart, and a whole MP4 structure).

use std::time::{Duration, Instant};

use bytes::Buf;
use reqwest::Response;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::error::{CopyError, Reason};
use super::mp4::{BoxWalker, Structure};
use super::progress::Progress;
use super::retries::{Retries, sleep};
use super::s3_upload::Pending;
use super::source::{FetchError, Fetched, Source, Validator, Version, describe};
use super::upload::PartWriter;

mod ranges;

/// Why a download stopped early.
pub enum Stop {
    /// The master changed under it: start over.
    Changed(String),
    Failed(CopyError),
}

impl From<CopyError> for Stop {
    fn from(e: CopyError) -> Self {
        Stop::Failed(e)
    }
}

/// Why a body stopped early.
enum BodyError {
    Transient(String),
    Fatal(CopyError),
}

/// One pass over the master, from byte 0 to its settled end.
pub struct Download<'a> {
    source: &'a Source,
    args: &'a CopyArgs,
    cancel: &'a CancellationToken,
    done: u64,
    hasher: Sha256,
    /// CRC-64/NVME of the same bytes: what S3's combined checksum of the object must equal.
    crc: crc_fast::Digest,
    validator: Option<Validator>,
    total: Option<u64>,
    content_type: Option<String>,
    retries: Retries<'a>,
    progress: Progress,
    /// The MP4 structure of what was streamed (`None` with `--skip-mp4-check`).
    structure: Option<BoxWalker>,
    /// Since when the end was reached, quiet, with an incomplete structure (and no growth).
    incomplete_since: Option<Instant>,
    /// Whether the parallel ranges were fetched (once a pass; before, the first range of them
    /// is asked for alone).
    parallel_tried: bool,
}

impl<'a> Download<'a> {
    pub fn new(source: &'a Source, args: &'a CopyArgs, cancel: &'a CancellationToken) -> Self {
        Download {
            source,
            args,
            cancel,
            done: 0,
            hasher: Sha256::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            validator: None,
            total: None,
            content_type: None,
            retries: Retries::new(args, cancel),
            progress: Progress::new(args.progress_interval),
            structure: (!args.skip_mp4_check).then(BoxWalker::new),
            incomplete_since: None,
            parallel_tried: false,
        }
    }

    /// Streams until `--settle-checks` checks in a row find no byte past the end and what was
    /// streamed is a whole MP4.
    pub async fn run(&mut self, writer: &mut PartWriter) -> Result<(), Stop> {
        let mut quiet_checks = 0;
        let mut reached_end = false;
        let mut wait = None;
        loop {
            if let Some(delay) = wait.take() {
                sleep(delay, self.cancel).await?;
            }
            // The first request of a pass asks for one range only when ranges go in parallel:
            // its answer says whether the server honours Range, and the file's length.
            // (Resumed within that range, it asks for the rest of it.)
            let range_size = self.args.range_size;
            let limit =
                (!self.parallel_tried && self.args.connections > 1 && self.done < range_size)
                    .then(|| range_size - self.done);
            let fetched = tokio::select! {
                fetched = self.source.fetch(self.done, self.validator.as_ref(), limit) => fetched,
                _ = self.cancel.cancelled() => return Err(CopyError::interrupted().into()),
            };
            match fetched {
                Err(FetchError::Fatal(e)) => return Err(e.into()),
                Err(FetchError::Transient(why)) => self.retries.failed(why, false).await?,
                Ok(Fetched::Changed { why }) => return Err(Stop::Changed(why)),
                Ok(Fetched::End { total }) => {
                    self.total = Some(total);
                    quiet_checks += 1;
                    if quiet_checks >= self.args.settle_checks {
                        if let Some(young) = self.too_young() {
                            tracing::info!(
                                "no byte past {} for now, but the master became ready less \
                                 than {:?} ago: checking again in {:?}",
                                self.done,
                                self.args.min_age,
                                young.min(self.args.settle)
                            );
                            wait = Some(young.min(self.args.settle));
                            continue;
                        }
                        let Some(why) = self.not_whole() else {
                            self.progress.log(self.done, self.total);
                            return Ok(());
                        };
                        // Not complete, whatever the length says: read on, within a bound.
                        let since = *self.incomplete_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.args.incomplete_wait {
                            return Err(CopyError::new(
                                Reason::MasterIncomplete,
                                format!(
                                    "the master is not a whole MP4 after {:?} without growing \
                                     ({} bytes: {why})",
                                    self.args.incomplete_wait, self.done
                                ),
                            )
                            .into());
                        }
                        tracing::info!(
                            "no byte past {} for now, but the master is not complete ({why}): \
                             checking again in {:?}",
                            self.done,
                            self.args.settle
                        );
                        wait = Some(self.args.settle);
                        continue;
                    }
                    tracing::debug!(
                        "nothing past byte {}: checking again in {:?} ({quiet_checks}/{})",
                        self.done,
                        self.args.settle,
                        self.args.settle_checks
                    );
                    wait = Some(self.args.settle);
                }
                Ok(Fetched::Body {
                    response,
                    body_start,
                    end,
                    total,
                    validator,
                }) => {
                    if self.done == 0 {
                        if let Some(total) = total {
                            writer.fit(total);
                        }
                        self.validator = validator;
                        self.content_type = response
                            .headers()
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        writer.set_content_type(self.content_type.as_deref());
                    }
                    let grew = reached_end;
                    if grew {
                        tracing::info!(
                            "the master grew past {} bytes (now {}): copying the new bytes",
                            self.done,
                            total.map_or_else(|| "unknown".to_owned(), |t| t.to_string())
                        );
                    }
                    self.total = total.or(self.total);
                    quiet_checks = 0;
                    self.incomplete_since = None;
                    let before = self.done;
                    reached_end = false;
                    let first_of_ranges = limit.is_some();
                    match self.stream_body(response, body_start, end, writer).await {
                        Ok(()) => {
                            // The first range of several: the rest of the length it named, in
                            // parallel ranges (unless the server stops honouring Range: then
                            // on in one stream from where they got).
                            if let (true, Some(total)) = (first_of_ranges, total)
                                && self.done < total
                            {
                                self.parallel_tried = true;
                                if !self.fetch_in_parallel(total, writer).await? {
                                    continue;
                                }
                            }
                            reached_end = true;
                            // The first end is checked at once; once the master is seen
                            // growing, checks are spaced by --settle, not a busy loop.
                            if grew {
                                wait = Some(self.args.settle);
                            }
                        }
                        Err(BodyError::Transient(why)) => {
                            self.retries.failed(why, self.done > before).await?
                        }
                        Err(BodyError::Fatal(e)) => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// Streams one body into the hash and the upload, skipping what was already copied.
    async fn stream_body(
        &mut self,
        mut response: Response,
        body_start: u64,
        end: Option<u64>,
        writer: &mut PartWriter,
    ) -> Result<(), BodyError> {
        let mut skip = self.done - body_start;
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                _ = self.cancel.cancelled() => return Err(BodyError::Fatal(CopyError::interrupted())),
            };
            let mut bytes = match chunk {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(e) => return Err(BodyError::Transient(describe(e))),
            };
            if skip > 0 {
                let n = skip.min(bytes.len() as u64);
                bytes.advance(n as usize);
                skip -= n;
                if bytes.is_empty() {
                    continue;
                }
            }
            self.consume(&bytes, writer)
                .await
                .map_err(BodyError::Fatal)?;
        }
        match end {
            Some(end) if self.done < end => Err(BodyError::Transient(format!(
                "the body ended at byte {} of {end}",
                self.done
            ))),
            _ => Ok(()),
        }
    }

    /// The next bytes of the master, in order: into the hash, the structure check and the
    /// upload.
    async fn consume(&mut self, bytes: &[u8], writer: &mut PartWriter) -> Result<(), CopyError> {
        self.hasher.update(bytes);
        self.crc.update(bytes);
        if let Some(structure) = &mut self.structure {
            structure.update(bytes);
        }
        let written = tokio::select! {
            written = writer.write(bytes) => written,
            _ = self.cancel.cancelled() => return Err(CopyError::interrupted()),
        };
        written.map_err(|e| CopyError::store("uploading the master", e))?;
        self.done += bytes.len() as u64;
        if self.total.is_some_and(|total| total < self.done) {
            self.total = Some(self.done);
        }
        self.progress.update(self.done, self.total);
        Ok(())
    }

    /// How long until the master is `--min-age` old (after `--master-ready-at`), if it is not.
    fn too_young(&self) -> Option<std::time::Duration> {
        let earliest = self.args.earliest_final()?;
        let left = earliest.duration_since(jiff::Timestamp::now());
        std::time::Duration::try_from(left)
            .ok()
            .filter(|d| !d.is_zero())
    }

    /// Why what was streamed is not a whole MP4 yet, if it is not (and it is checked).
    fn not_whole(&self) -> Option<String> {
        match self.structure.as_ref()?.verdict() {
            Structure::Complete => None,
            Structure::Incomplete(why) => Some(why),
        }
    }

    pub fn into_streamed(self) -> Streamed {
        Streamed {
            size: self.done,
            sha256: hex::encode(self.hasher.finalize()),
            crc64nvme: self.crc.finalize(),
            content_type: self.content_type,
            resumes: self.retries.total,
            elapsed: self.progress.elapsed(),
            pending: None,
        }
    }
}

/// After the master changed under a download: waits until it holds still (its validator and
/// length the same `--settle-checks` times in a row, `--settle` apart), so that the next pass
/// does not start over a file still being written. A master that keeps changing for
/// `--incomplete-wait` ends the copy with `RetriesExhausted` (a later run may find it done).
pub async fn wait_until_unchanged(
    source: &Source,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    let started = Instant::now();
    let mut retries = Retries::new(args, cancel);
    let mut last: Option<Version> = None;
    let mut agreeing = 0;
    loop {
        let probe = tokio::select! {
            probe = source.version() => probe,
            _ = cancel.cancelled() => return Err(CopyError::interrupted()),
        };
        match probe {
            Ok(version) if last.as_ref() == Some(&version) => agreeing += 1,
            Ok(version) => {
                last = Some(version);
                agreeing = 1;
            }
            Err(FetchError::Transient(why)) => {
                retries.failed(why, false).await?;
                continue;
            }
            Err(FetchError::Fatal(e)) => return Err(e),
        }
        if agreeing >= args.settle_checks {
            return Ok(());
        }
        if started.elapsed() >= args.incomplete_wait {
            return Err(CopyError::new(
                Reason::RetriesExhausted,
                format!(
                    "the master kept changing for {:?} (last seen: {last:?})",
                    args.incomplete_wait
                ),
            ));
        }
        sleep(args.settle, cancel).await?;
    }
}

/// What the download produced.
pub struct Streamed {
    pub size: u64,
    pub sha256: String,
    /// The CRC-64/NVME of the same bytes, in the same pass.
    pub crc64nvme: u64,
    pub content_type: Option<String>,
    pub resumes: u32,
    pub elapsed: Duration,
    /// On S3, the upload of the final key, every part stored, waiting for its completion.
    pub pending: Option<Pending>,
}
