//! After the download: the staging object checked against what was streamed (and what was
//! expected), published under its final name, and read back; the staging object removed.

use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::args::{FinalizeMode, PartChecksum};
use super::destination::{Backend, Destination};
use super::download::Streamed;
use super::error::CopyError;
use super::finalize::{Publication, Verified, publish, publish_pending};
use super::s3_upload::Pending;
use super::source::Source;

/// Checks what was streamed against what was expected, publishes it with its digest (on S3,
/// by completing the pending upload of the final key and recording the sidecar; elsewhere from
/// the checked staging object), and reads the final object back (unless another run took the
/// name first: [`Publication::Taken`]).
pub async fn verify_and_publish(
    destination: &Destination,
    streamed: &Streamed,
    pending: Option<Pending>,
    source: &Source,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Publication, CopyError> {
    if let Err(e) = check_expected(streamed, args) {
        if let Some(pending) = pending {
            pending.abort().await;
        }
        return Err(e);
    }
    let verified = Verified {
        size: streamed.size,
        sha256: streamed.sha256.clone(),
        content_type: streamed.content_type.clone(),
        source: source.url().redacted(),
    };
    let publication = match pending {
        Some(pending) => publish_pending(destination, pending, &verified, args.overwrite).await?,
        None => {
            let staged = match destination.files() {
                Some((_, staging)) => std::fs::metadata(&staging).map(|m| m.len()).ok(),
                None => (destination.object_meta(&destination.staging).await?).map(|s| s.size),
            };
            if staged != Some(streamed.size) {
                return Err(CopyError::verification(format!(
                    "the staging object holds {staged:?} bytes, {} were sent",
                    streamed.size
                )));
            }
            publish(destination, &verified, args, cancel).await?
        }
    };
    let Publication::Published { e_tag } = &publication else {
        return Ok(publication);
    };

    let written = destination.existing().await?;
    let matches = written.as_ref().is_some_and(|w| {
        w.size == streamed.size && w.verified_sha256() == Some(streamed.sha256.as_str())
    });
    if !matches {
        // Deleted only when it is surely the object this run wrote: never another run's.
        let ours =
            e_tag.is_some() && written.as_ref().and_then(|w| w.e_tag.as_ref()) == e_tag.as_ref();
        if ours {
            remove_final(destination).await;
        }
        return Err(CopyError::verification(format!(
            "{} read back as {written:?}, expected {} bytes with SHA-256 {}{}",
            destination.display,
            streamed.size,
            streamed.sha256,
            if ours {
                "; deleted it"
            } else {
                "; left it (it may be another run's)"
            }
        )));
    }
    Ok(publication)
}

/// `--expected-sha256` and `--expected-size` against what was streamed.
fn check_expected(streamed: &Streamed, args: &CopyArgs) -> Result<(), CopyError> {
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
    Ok(())
}

/// Deletes the staging object, whatever happened (it is gone already after a local rename).
pub async fn remove_staging(destination: &Destination) {
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

/// Deletes a final object of this run's that failed its read-back (in a store: `file://`
/// objects have no ETag to prove whose they are, and are left).
async fn remove_final(destination: &Destination) {
    if let Err(e) = destination.store.delete(&destination.path).await {
        tracing::warn!("could not delete {}: {e}", destination.display);
    }
}

/// What a `Copied` copy checked, for its report: the names of the checks, in order.
/// - `stream-sha256`: the SHA-256 of every byte the source served, as it streamed (and with
///   `expected-sha256`, equal to the one expected);
/// - `parts-crc64nvme,object-crc64nvme` (S3, the default `--part-checksum`): the store checked
///   each part it received against its CRC-64/NVME, and its checksum of the whole object,
///   combined from the parts' at the completion, equals the CRC-64/NVME of the stream that was
///   SHA-256-hashed (so the object holds the bytes hashed, to the odds of a 64-bit CRC; the
///   object was deleted otherwise);
/// - `parts-sha256` (S3 with `--part-checksum sha256`): the store checked each part it
///   received against the SHA-256 of the bytes sent (`x-amz-checksum-sha256`) before the
///   upload of the final key was completed;
/// - `staging-rehashed` (restream: GCS, Azure, `--finalize restream`): the staging object read
///   back from the store and hashed again, equal, while it was streamed into the final object;
/// - `fsynced` (`file://`): the file was flushed to the disk before its rename;
/// - `read-back-metadata`: the final object's size and recorded digest read back, equal (on
///   S3, `read-back-sidecar`: the digest recorded in the sidecar naming the object's ETag). Its
///   bytes are not hashed again: after S3's checked parts and a local rename, the store is
///   trusted.
pub fn checks_made(destination: &Destination, args: &CopyArgs) -> String {
    let mut checks = vec!["stream-sha256"];
    if args.expected_sha256.is_some() {
        checks.push("expected-sha256");
    }
    checks.push(match (destination.backend, args.finalize) {
        (Backend::Local, _) => "fsynced",
        (Backend::S3, FinalizeMode::Auto) => match args.part_checksum {
            PartChecksum::Crc64nvme => "parts-crc64nvme,object-crc64nvme",
            PartChecksum::Sha256 => "parts-sha256",
        },
        _ => "staging-rehashed",
    });
    checks.push(match (destination.backend, args.finalize) {
        (Backend::S3, FinalizeMode::Auto) => "read-back-sidecar",
        _ => "read-back-metadata",
    });
    checks.join(",")
}
