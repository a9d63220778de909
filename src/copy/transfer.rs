//! The copy from start to end: the idempotence check, the resumable download into the staging
//! upload, the final-length rule, verification and publication. The rules are documented in
//! the module documentation of `copy`.

use std::time::{Duration, Instant};

use bytes::Buf;
use object_store::{ObjectStoreExt, PutMultipartOptions};
use reqwest::Response;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::destination::{Backend, Destination, Existing, remove_local_leftovers};
use super::error::{CopyError, Reason};
use super::finalize::{Verified, abort_leftover_uploads, publish};
use super::progress::Progress;
use super::report::Report;
use super::source::{FetchError, Fetched, Source, SourceUrl, Validator, describe};
use super::units::human;
use super::upload::PartWriter;

/// The longest wait between retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Runs one copy and says how it went.
pub async fn copy(args: &CopyArgs, cancel: &CancellationToken) -> Result<Report, CopyError> {
    args.validate().map_err(CopyError::bad_input)?;
    let url = SourceUrl::from_args(args)?;
    let destination = Destination::open(args)?;
    let source = Source::new(url, args)?;
    tracing::info!(
        "copying {} to {} (parts of {}, {} in flight)",
        source.url(),
        destination.display,
        human(args.part_size),
        args.parts_in_flight
    );

    if let Some(existing) = destination.existing().await?
        && let Some(skipped) =
            decide_on_existing(&destination, &existing, &source, args, cancel).await?
    {
        return Ok(skipped);
    }

    match destination.files() {
        Some((_, staging)) => remove_local_leftovers(&staging),
        None => abort_leftover_uploads(&destination).await,
    }
    let streamed = stream_to_staging(&source, &destination, args, cancel).await?;
    let publishing = Instant::now();
    let published = verify_and_publish(&destination, &streamed, &source, args, cancel).await;
    remove_staging(&destination).await;
    published?;

    let streaming = streamed.elapsed.as_secs_f64().max(1e-3);
    let total = streaming + publishing.elapsed().as_secs_f64();
    tracing::info!(
        size = streamed.size,
        sha256 = %streamed.sha256,
        resumes = streamed.resumes,
        "copied {} ({} bytes) to {} in {total:.1}s: streamed in {streaming:.1}s ({:.1} MB/s), \
         verified and published in {:.1}s; SHA-256 {}",
        human(streamed.size),
        streamed.size,
        destination.display,
        streamed.size as f64 / streaming / 1e6,
        total - streaming,
        streamed.sha256
    );
    Ok(Report {
        reason: Reason::Copied,
        message: None,
        object: destination.display.clone(),
        size: Some(streamed.size),
        sha256: Some(streamed.sha256),
        resumes: streamed.resumes,
    })
}

/// An object is already there: `Some(report)` to skip, `None` to overwrite it, or
/// `DestinationExists`.
async fn decide_on_existing(
    destination: &Destination,
    existing: &Existing,
    source: &Source,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Option<Report>, CopyError> {
    let name = &destination.display;
    let skipped = |sha256: &str, message: String| Report {
        reason: Reason::Skipped,
        message: Some(message),
        object: name.clone(),
        size: Some(existing.size),
        sha256: Some(sha256.to_owned()),
        resumes: 0,
    };
    let size_ok = |size: u64| args.expected_size.is_none_or(|expected| expected == size);
    let verdict = match existing.verified_sha256() {
        None => Err(format!(
            "{name} already holds an object of {} bytes without a recorded SHA-256",
            existing.size
        )),
        Some(sha256) => match args.expected_sha256() {
            Some(expected) if expected == sha256 && size_ok(existing.size) => Ok(skipped(
                sha256,
                "the destination already holds the expected SHA-256".into(),
            )),
            Some(expected) => Err(format!(
                "{name} already holds {} bytes with SHA-256 {sha256}, not the expected {expected}",
                existing.size
            )),
            None => {
                let mut retries = Retries::new(args, cancel);
                let length = settled_length(source, args, &mut retries, cancel).await?;
                if length == existing.size && size_ok(length) {
                    Ok(skipped(
                        sha256,
                        format!(
                            "the destination already holds a verified copy of the same length \
                             ({length} bytes)"
                        ),
                    ))
                } else {
                    Err(format!(
                        "{name} already holds {} bytes with SHA-256 {sha256}; the master has \
                         {length} bytes",
                        existing.size
                    ))
                }
            }
        },
    };
    match verdict {
        Ok(report) => {
            tracing::info!("skipped: {}", report.message.as_deref().unwrap_or_default());
            Ok(Some(report))
        }
        Err(why) if args.overwrite => {
            tracing::warn!("{why}: replacing it (--overwrite)");
            Ok(None)
        }
        Err(why) => Err(CopyError::new(
            Reason::DestinationExists,
            format!("{why}; not replacing it without --overwrite"),
        )),
    }
}

/// The source's length once `--settle-checks` probes in a row, `--settle` apart, agree.
async fn settled_length(
    source: &Source,
    args: &CopyArgs,
    retries: &mut Retries<'_>,
    cancel: &CancellationToken,
) -> Result<u64, CopyError> {
    let mut last = None;
    let mut agreeing = 0;
    loop {
        let length = loop {
            let probe = tokio::select! {
                probe = source.length() => probe,
                _ = cancel.cancelled() => return Err(CopyError::interrupted()),
            };
            match probe {
                Ok(length) => break length,
                Err(FetchError::Transient(why)) => retries.failed(why, false).await?,
                Err(FetchError::Fatal(e)) => return Err(e),
            }
        };
        if last == Some(length) {
            agreeing += 1;
        } else {
            last = Some(length);
            agreeing = 1;
        }
        if agreeing >= args.settle_checks {
            return Ok(length);
        }
        sleep(args.settle, cancel).await?;
    }
}

/// What the download produced.
struct Streamed {
    size: u64,
    sha256: String,
    content_type: Option<String>,
    resumes: u32,
    elapsed: Duration,
}

/// Downloads the master into a multipart upload of the staging object and completes it.
/// Starts over (in a new upload) when the master changes under it.
async fn stream_to_staging(
    source: &Source,
    destination: &Destination,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Streamed, CopyError> {
    let staging_name = destination.name_of(&destination.staging);
    let mut restarts = 0;
    loop {
        let mut writer = PartWriter::create(
            &destination.store,
            &destination.staging,
            PutMultipartOptions::default(),
            args.part_size,
            args.parts_in_flight,
        )
        .await
        .map_err(|e| CopyError::store(format!("starting the upload of {staging_name}"), e))?;
        let mut download = Download::new(source, args, cancel);
        match download.run(&mut writer).await {
            Ok(()) => {
                writer.finish().await.map_err(|e| {
                    CopyError::store(format!("completing the upload of {staging_name}"), e)
                })?;
                return Ok(download.into_streamed());
            }
            Err(Stop::Changed(why)) => {
                writer.abort().await;
                restarts += 1;
                if restarts > args.max_restarts {
                    return Err(CopyError::verification(format!(
                        "the master kept changing while it was copied ({why})"
                    )));
                }
                tracing::warn!(
                    "the master changed while it was copied ({why}): starting over \
                     ({restarts}/{})",
                    args.max_restarts
                );
            }
            Err(Stop::Failed(e)) => {
                writer.abort().await;
                return Err(e);
            }
        }
    }
}

/// Why a download stopped early.
enum Stop {
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
struct Download<'a> {
    source: &'a Source,
    args: &'a CopyArgs,
    cancel: &'a CancellationToken,
    done: u64,
    hasher: Sha256,
    validator: Option<Validator>,
    total: Option<u64>,
    content_type: Option<String>,
    retries: Retries<'a>,
    progress: Progress,
}

impl<'a> Download<'a> {
    fn new(source: &'a Source, args: &'a CopyArgs, cancel: &'a CancellationToken) -> Self {
        Download {
            source,
            args,
            cancel,
            done: 0,
            hasher: Sha256::new(),
            validator: None,
            total: None,
            content_type: None,
            retries: Retries::new(args, cancel),
            progress: Progress::new(args.progress_interval),
        }
    }

    /// Streams until `--settle-checks` checks in a row find no byte past the end.
    async fn run(&mut self, writer: &mut PartWriter) -> Result<(), Stop> {
        let mut quiet_checks = 0;
        let mut reached_end = false;
        let mut wait = None;
        loop {
            if let Some(delay) = wait.take() {
                sleep(delay, self.cancel).await?;
            }
            let fetched = tokio::select! {
                fetched = self.source.fetch(self.done, self.validator.as_ref()) => fetched,
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
                        self.progress.log(self.done, self.total);
                        return Ok(());
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
                    let before = self.done;
                    reached_end = false;
                    match self.stream_body(response, body_start, end, writer).await {
                        Ok(()) => {
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
            self.hasher.update(&bytes);
            let written = tokio::select! {
                written = writer.write(&bytes) => written,
                _ = self.cancel.cancelled() => return Err(BodyError::Fatal(CopyError::interrupted())),
            };
            written.map_err(|e| {
                BodyError::Fatal(CopyError::store("uploading the staging object", e))
            })?;
            self.done += bytes.len() as u64;
            if self.total.is_some_and(|total| total < self.done) {
                self.total = Some(self.done);
            }
            self.progress.update(self.done, self.total);
        }
        match end {
            Some(end) if self.done < end => Err(BodyError::Transient(format!(
                "the body ended at byte {} of {end}",
                self.done
            ))),
            _ => Ok(()),
        }
    }

    fn into_streamed(self) -> Streamed {
        Streamed {
            size: self.done,
            sha256: hex::encode(self.hasher.finalize()),
            content_type: self.content_type,
            resumes: self.retries.total,
            elapsed: self.progress.elapsed(),
        }
    }
}

/// Checks the staging object, publishes it with its metadata, and reads the final object back.
async fn verify_and_publish(
    destination: &Destination,
    streamed: &Streamed,
    source: &Source,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    if let Some(expected) = args.expected_sha256()
        && expected != streamed.sha256
    {
        return Err(CopyError::verification(format!(
            "the master's SHA-256 is {}, not the expected {expected}",
            streamed.sha256
        )));
    }
    if let Some(expected) = args.expected_size
        && expected != streamed.size
    {
        return Err(CopyError::verification(format!(
            "the master has {} bytes, not the expected {expected}",
            streamed.size
        )));
    }
    let staged = match destination.files() {
        Some((_, staging)) => std::fs::metadata(&staging).map(|m| m.len()).ok(),
        None => destination
            .object_meta(&destination.staging)
            .await?
            .map(|e| e.size),
    };
    if staged != Some(streamed.size) {
        return Err(CopyError::verification(format!(
            "the staging object holds {staged:?} bytes, {} were sent",
            streamed.size
        )));
    }

    let verified = Verified {
        size: streamed.size,
        sha256: streamed.sha256.clone(),
        content_type: streamed.content_type.clone(),
        source: source.url().redacted(),
    };
    publish(destination, &verified, args, cancel).await?;

    let written = destination.existing().await?;
    let matches = written.as_ref().is_some_and(|w| {
        w.size == streamed.size && w.verified_sha256() == Some(streamed.sha256.as_str())
    });
    if !matches {
        remove_final(destination).await;
        return Err(CopyError::verification(format!(
            "{} read back as {written:?}, expected {} bytes with SHA-256 {}",
            destination.display, streamed.size, streamed.sha256
        )));
    }
    Ok(())
}

/// Deletes the staging object, whatever happened (it is gone already after a local rename).
async fn remove_staging(destination: &Destination) {
    if let Some((_, staging)) = destination.files() {
        let _ = std::fs::remove_file(staging);
        return;
    }
    match destination.store.delete(&destination.staging).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(
            "could not delete the staging object {}: {e}",
            destination.name_of(&destination.staging)
        ),
    }
}

/// Deletes a final object that failed its read-back.
async fn remove_final(destination: &Destination) {
    let result = match destination.backend {
        Backend::Local => {
            let file = destination.file.as_ref().expect("a local destination");
            let _ = std::fs::remove_file(super::destination::sidecar_path(file));
            std::fs::remove_file(file).map_err(|e| e.to_string())
        }
        _ => destination
            .store
            .delete(&destination.path)
            .await
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!("could not delete {}: {e}", destination.display);
    }
}

/// Transient failures: at most `--max-retries` in a row without progress, with a delay that
/// doubles from `--retry-delay` up to 30 s.
struct Retries<'a> {
    in_a_row: u32,
    total: u32,
    max: u32,
    base: Duration,
    cancel: &'a CancellationToken,
}

impl<'a> Retries<'a> {
    fn new(args: &CopyArgs, cancel: &'a CancellationToken) -> Self {
        Retries {
            in_a_row: 0,
            total: 0,
            max: args.max_retries,
            base: args.retry_delay,
            cancel,
        }
    }

    /// Counts a failure (after progress, the count starts again), gives up past the budget,
    /// else waits before the retry.
    async fn failed(&mut self, why: String, progressed: bool) -> Result<(), CopyError> {
        if progressed {
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        if self.in_a_row > self.max {
            return Err(CopyError::new(
                Reason::RetriesExhausted,
                format!(
                    "gave up after {} failures in a row without progress; the last: {why}",
                    self.in_a_row
                ),
            ));
        }
        self.total += 1;
        let delay = self
            .base
            .saturating_mul(1 << (self.in_a_row - 1).min(16))
            .min(MAX_RETRY_DELAY);
        tracing::warn!(
            "{why}: resuming in {delay:?} (failure {} of at most {} in a row)",
            self.in_a_row,
            self.max
        );
        sleep(delay, self.cancel).await
    }
}

/// Sleeps, unless cancelled first.
async fn sleep(duration: Duration, cancel: &CancellationToken) -> Result<(), CopyError> {
    tokio::select! {
        _ = tokio::time::sleep(duration) => Ok(()),
        _ = cancel.cancelled() => Err(CopyError::interrupted()),
    }
}
