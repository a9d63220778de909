//! The copy from start to end: the idempotence check, the resumable download into the staging
//! upload, the final-length rule, verification and publication. The rules are documented in
//! the module documentation of `copy`; each step has a module of its own (`existing`,
//! `download`, `verify`, `finalize`).

use std::time::{Duration, Instant};

use object_store::PutMultipartOptions;
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::destination::Destination;
use super::download::{Download, Stop};
use super::error::{CopyError, Reason};
use super::existing::decide_on_existing;
use super::finalize::abort_leftover_uploads;
use super::local::remove_local_leftovers;
use super::report::Report;
use super::source::{Source, SourceUrl};
use super::units::human;
use super::upload::PartWriter;
use super::verify::{remove_staging, verify_and_publish};

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

/// What the download produced.
pub struct Streamed {
    pub size: u64,
    pub sha256: String,
    pub content_type: Option<String>,
    pub resumes: u32,
    pub elapsed: Duration,
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
