//! The copy from start to end: the idempotence check, the resumable download into the staging
//! upload, the final-length rule, verification and publication. The rules are documented in
//! the module documentation of `copy`; each step has a module of its own (`existing`,
//! `download`, `verify`, `finalize`).

use std::time::Instant;

use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::{Attribute, Attributes, PutMultipartOptions};
use tokio_util::sync::CancellationToken;

use super::args::{CopyArgs, FinalizeMode, PartChecksum};
use super::destination::{
    Backend, Destination, META_SHA256, META_SIZE, META_SOURCE, STAGING_SUFFIX, with_suffix,
};
use super::download::{Download, Stop, Streamed, wait_until_unchanged};
use super::error::{CopyError, Reason};
use super::existing::{Expected, OnExisting, after_streaming, before_streaming};
use super::finalize::Publication;
use super::local::remove_local_leftovers;
use super::report::Report;
use super::s3_upload::abort_leftover_uploads;
use super::source::{Source, SourceUrl};
use super::units::human;
use super::upload::{Finished, PartWriter};
use super::verify::{checks_made, remove_staging, verify_and_publish};

/// Runs one copy and says how it went.
pub async fn copy(args: &CopyArgs, cancel: &CancellationToken) -> Result<Report, CopyError> {
    args.validate().map_err(CopyError::bad_input)?;
    let url = SourceUrl::from_args(args)?;
    let destination = Destination::open(args)?;
    let source = Source::new(url, args)?;
    tracing::info!(
        "copying {} to {} ({} ranges of {} at once; parts of {}, {} in flight)",
        source.url(),
        destination.display,
        args.connections,
        human(args.range_size),
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
        None => abort_leftover_uploads(&destination, args.leftover_age).await,
    }
    match direct_s3(&destination, args) {
        Some(_) => {
            tracing::info!("uploading to {name}, completed only once the master is verified")
        }
        None => {
            let staging_name = destination.name_of(&destination.staging);
            tracing::info!("staging the copy as {staging_name}");
        }
    }
    let mut streamed = stream_to_staging(&source, &destination, args, cancel).await?;
    let pending = streamed.pending.take();
    if let Some(OnExisting::CompareWith { sha256, size }) = &on_existing {
        let recorded = (sha256.as_str(), *size);
        let streamed_as = (streamed.sha256.as_str(), streamed.size);
        let decided = after_streaming(name, recorded, streamed_as, args.overwrite);
        if !matches!(decided, Ok(None)) {
            match pending {
                Some(pending) => pending.abort().await,
                None => remove_staging(&destination).await,
            }
            return decided.map(|skipped| skipped.expect("a skip or a refusal"));
        }
    }
    let publishing = Instant::now();
    let direct = pending.is_some();
    let published =
        verify_and_publish(&destination, &streamed, pending, &source, args, cancel).await;
    if !direct {
        remove_staging(&destination).await;
    }
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

/// The checksummed S3 store when the master is uploaded straight to its final key (S3 unless
/// `--finalize restream`).
fn direct_s3(destination: &Destination, args: &CopyArgs) -> Option<Arc<AmazonS3>> {
    (destination.backend == Backend::S3 && args.finalize == FinalizeMode::Auto)
        .then(|| destination.s3_checksummed.clone())
        .flatten()
}

/// The metadata the final object is created with before its digest is known: its source, and
/// the digest and size when they are known in advance (`--expected-sha256`, `--expected-size`:
/// the upload is completed only if the stream has them). The digest of every copy is also
/// recorded in its sidecar (see `sidecar`).
fn initial_options(source: &Source, args: &CopyArgs) -> PutMultipartOptions {
    let mut attributes = Attributes::new();
    let mut meta = |key: &'static str, value: String| {
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    };
    meta(META_SOURCE, source.url().redacted());
    if let Some(sha256) = args.expected_sha256() {
        meta(META_SHA256, sha256);
        if let Some(size) = args.expected_size {
            meta(META_SIZE, size.to_string());
        }
    }
    PutMultipartOptions {
        attributes,
        ..Default::default()
    }
}

/// Downloads the master into a multipart upload and stores every part: on S3, an upload of the
/// final key left pending until the master is verified (no second write to publish it);
/// elsewhere, the staging object, completed. Starts over (in a new upload) when the master
/// changes under it.
async fn stream_to_staging(
    source: &Source,
    destination: &Destination,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Streamed, CopyError> {
    let direct = direct_s3(destination, args);
    let upload_name = match direct {
        Some(_) => destination.name_of(&destination.path),
        None => destination.name_of(&destination.staging),
    };
    let mut restarts = 0;
    loop {
        let mut writer = match &direct {
            Some(s3) => PartWriter::pending_s3(
                s3.clone(),
                &destination.path,
                initial_options(source, args),
                args.part_size,
                args.parts_in_flight,
            ),
            None => PartWriter::create(
                &destination.staging_store,
                &destination.staging,
                PutMultipartOptions::default(),
                args.part_size,
                args.parts_in_flight,
            )
            .await
            .map_err(|e| CopyError::store(format!("starting the upload of {upload_name}"), e))?,
        };
        let mut download = Download::new(source, args, cancel);
        match download.run(&mut writer).await {
            Ok(()) => {
                let finished = writer
                    .finish()
                    .await
                    .map_err(|e| CopyError::store(format!("uploading {upload_name}"), e))?;
                let mut streamed = download.into_streamed();
                if let Finished::Pending(mut pending) = finished {
                    // The object's full checksum the store must confirm at its completion.
                    pending.whole_crc64nvme = (args.part_checksum == PartChecksum::Crc64nvme)
                        .then_some(streamed.crc64nvme);
                    streamed.pending = Some(pending);
                }
                return Ok(streamed);
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
