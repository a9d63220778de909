//! The copy from start to end: the idempotence check, the resumable download into the staging
//! upload, the final-length rule, verification and publication. The rules are documented in
//! the module documentation of `copy`; each step has a module of its own (`existing`,
//! `download`, `verify`, `finalize`).

use std::time::{Duration, Instant};

use object_store::PutMultipartOptions;
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::destination::{Destination, STAGING_SUFFIX, with_suffix};
use super::download::{Download, Stop, wait_until_unchanged};
use super::error::{CopyError, Reason};
use super::existing::{Expected, OnExisting, after_streaming, before_streaming};
use super::finalize::Publication;
use super::local::remove_local_leftovers;
use super::report::Report;
use super::s3_copy::abort_leftover_uploads;
use super::source::{Source, SourceUrl};
use super::units::human;
use super::upload::PartWriter;
use super::verify::{checks_made, remove_staging, verify_and_publish};

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

    let expected_sha256 = args.expected_sha256();
    let expected = Expected {
        sha256: expected_sha256.as_deref(),
        size: args.expected_size,
        overwrite: args.overwrite,
    };
    let name = &destination.display;
    let on_existing = match destination.existing().await? {
        Some(existing) => Some(before_streaming(name, &existing, expected)?),
        None => None,
    };
    if let Some(OnExisting::Skip(report)) = on_existing {
        return Ok(report);
    }

    match destination.files() {
        Some((file, _)) => remove_local_leftovers(&with_suffix(&file, STAGING_SUFFIX)),
        None => abort_leftover_uploads(&destination).await,
    }
    let staging_name = destination.name_of(&destination.staging);
    tracing::info!("staging the copy as {staging_name}");
    let streamed = stream_to_staging(&source, &destination, args, cancel).await?;
    if let Some(OnExisting::CompareWith { sha256, size }) = &on_existing {
        let recorded = (sha256.as_str(), *size);
        let streamed_as = (streamed.sha256.as_str(), streamed.size);
        let decided = after_streaming(name, recorded, streamed_as, args.overwrite);
        if !matches!(decided, Ok(None)) {
            remove_staging(&destination).await;
        }
        match decided {
            Ok(Some(skipped)) => return Ok(skipped),
            Err(refused) => return Err(refused),
            Ok(None) => {}
        }
    }
    let publishing = Instant::now();
    let published = verify_and_publish(&destination, &streamed, &source, args, cancel).await;
    remove_staging(&destination).await;
    if published? == Publication::Taken {
        return lost_the_race(&destination, &streamed).await;
    }

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
        verified: Some(checks_made(&destination, args)),
    })
}

/// Another run published under the final name while this one streamed: nothing was written
/// over it. The same master is a skip; anything else, `DestinationExists`.
async fn lost_the_race(
    destination: &Destination,
    streamed: &Streamed,
) -> Result<Report, CopyError> {
    let name = &destination.display;
    let why = "another object was published there while this run copied";
    let Some(existing) = destination.existing().await? else {
        return Err(CopyError::new(
            Reason::DestinationExists,
            format!("{name}: {why}, then removed"),
        ));
    };
    let Some(recorded) = existing.verified_sha256() else {
        return Err(CopyError::new(
            Reason::DestinationExists,
            format!(
                "{name}: {why}, without a recorded SHA-256; not replacing it without --overwrite"
            ),
        ));
    };
    tracing::info!("{name}: {why}");
    let streamed_as = (streamed.sha256.as_str(), streamed.size);
    let decided = after_streaming(name, (recorded, existing.size), streamed_as, false)?;
    Ok(decided.expect("without --overwrite, a different object is refused"))
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
            &destination.staging_store,
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
                // A new version of the master (it grew, or was replaced): a restart, never a
                // verification failure on its own; past --max-restarts, a retryable end.
                writer.abort().await;
                restarts += 1;
                if restarts > args.max_restarts {
                    return Err(CopyError::new(
                        Reason::RetriesExhausted,
                        format!(
                            "the master kept changing while it was copied: {} restarts \
                             (--max-restarts); the last: {why}",
                            args.max_restarts
                        ),
                    ));
                }
                tracing::warn!(
                    "the master changed while it was copied ({why}): starting over once it \
                     holds still ({restarts}/{})",
                    args.max_restarts
                );
                wait_until_unchanged(source, args, cancel).await?;
            }
            Err(Stop::Failed(e)) => {
                writer.abort().await;
                return Err(e);
            }
        }
    }
}
