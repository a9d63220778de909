//! Publishing the verified master under its final name, with its digest.
//!
//! Object stores take user metadata only when an object is created, and a streamed upload's
//! digest is known only at its end. On S3 the upload of the final key is completed once the
//! master is verified and the digest goes into a sidecar (see `sidecar`): one write of the data.
//! Elsewhere the data goes to a staging object first and is then streamed back through the pod
//! into the final object created with its metadata (GCS, Azure, or `--finalize restream`), or
//! renamed (`file://`).

use object_store::{Attribute, Attributes, PutMultipartOptions};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::destination::{Backend, Destination, META_SHA256, META_SIZE, META_SOURCE};
use super::error::{CopyError, Reason};
use super::local::{set_local_metadata, write_sidecar};
use super::read_back::ReadBack;
use super::s3_upload::Pending;
use super::sidecar;

pub use super::s3_upload::Publication;
use super::upload::{Finished, PartWriter};

/// What the final object must hold.
pub struct Verified {
    pub size: u64,
    pub sha256: String,
    pub content_type: Option<String>,
    pub source: String,
}

impl Verified {
    pub fn attributes(&self) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(META_SHA256.into()),
            self.sha256.clone().into(),
        );
        attributes.insert(
            Attribute::Metadata(META_SIZE.into()),
            self.size.to_string().into(),
        );
        attributes.insert(
            Attribute::Metadata(META_SOURCE.into()),
            self.source.clone().into(),
        );
        if let Some(content_type) = &self.content_type {
            attributes.insert(Attribute::ContentType, content_type.clone().into());
        }
        attributes
    }
}

/// Publishes the staging object as the final one, with its metadata. Unless `--overwrite`, only
/// where no object has the final name: a run that lost a race publishes nothing
/// ([`Publication::Taken`]), and never replaces what another published. (S3 uploads straight
/// to the final key: [`publish_pending`].)
pub async fn publish(
    destination: &Destination,
    verified: &Verified,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Publication, CopyError> {
    match destination.backend {
        Backend::Local => publish_local(destination, verified, args.overwrite),
        _ => restream(destination, verified, args, cancel).await,
    }
}

/// S3: completes the verified upload of the final key (`If-None-Match: *` unless `overwrite`),
/// then records its digest in the sidecar naming its ETag. The object becomes visible only
/// complete and verified; the sidecar follows it (a run killed in between leaves an object
/// without a recorded digest, which a later run does not skip).
pub async fn publish_pending(
    destination: &Destination,
    pending: Pending,
    verified: &Verified,
    overwrite: bool,
) -> Result<Publication, CopyError> {
    let name = &destination.display;
    let publication = pending.complete(overwrite).await?;
    let Publication::Published { e_tag } = &publication else {
        return Ok(publication);
    };
    let Some(e_tag) = e_tag else {
        return Err(CopyError::new(
            Reason::StoreFailed,
            format!("{name} was completed without an ETag: its digest cannot be recorded"),
        ));
    };
    let (sha256, size) = (&verified.sha256, verified.size);
    sidecar::write_sidecar(
        destination.store.as_ref(),
        &destination.path,
        e_tag,
        sha256,
        size,
    )
    .await
    .map_err(|e| CopyError::store(format!("recording the SHA-256 of {name}"), e))?;
    Ok(publication)
}

/// `file://`: fsync, extended attributes, an atomic rename (or, unless `overwrite`, a hard link,
/// which fails if the name is taken), then the `.sha256` sidecar.
fn publish_local(
    destination: &Destination,
    verified: &Verified,
    overwrite: bool,
) -> Result<Publication, CopyError> {
    let (file, staging) = destination.files().expect("a local destination has files");
    let io =
        |what: &str, e: std::io::Error| CopyError::new(Reason::StoreFailed, format!("{what}: {e}"));
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&format!("syncing {}", staging.display()), e))?;
    if !set_local_metadata(&staging, &verified.sha256, verified.size) {
        tracing::info!(
            "the filesystem of {} keeps no extended attributes: the digest is recorded in {}.sha256 only",
            file.display(),
            file.display()
        );
    }
    if overwrite {
        std::fs::rename(&staging, &file)
            .map_err(|e| io(&format!("renaming to {}", file.display()), e))?;
    } else {
        match std::fs::hard_link(&staging, &file) {
            Ok(()) => {
                let _ = std::fs::remove_file(&staging);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Publication::Taken);
            }
            Err(e) => return Err(io(&format!("linking {}", file.display()), e)),
        }
    }
    if let Some(dir) = file.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    write_sidecar(&file, &verified.sha256)
        .map_err(|e| io(&format!("writing {}.sha256", file.display()), e))?;
    Ok(Publication::Published { e_tag: None })
}

/// Any store: stream the staging object back through the pod into the final object, created
/// with its metadata, hashing it again. The digest must match before the upload completes.
/// object_store completes a multipart upload without conditions, so the "name not taken" check
/// (unless `--overwrite`) is a read just before the completion: a narrow window, not atomic.
async fn restream(
    destination: &Destination,
    verified: &Verified,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Publication, CopyError> {
    let store = &destination.store;
    let final_name = destination.name_of(&destination.path);
    tracing::info!("publishing {final_name} by streaming the staging object back");
    let options = PutMultipartOptions {
        attributes: verified.attributes(),
        ..Default::default()
    };
    let mut writer = PartWriter::create(
        store,
        &destination.path,
        options,
        args.part_size,
        args.parts_in_flight,
    )
    .await
    .map_err(|e| CopyError::store(format!("starting the upload of {final_name}"), e))?;
    writer.fit(verified.size);
    let result = async {
        let mut reader = ReadBack::new(
            store.as_ref(),
            &destination.staging,
            verified.size,
            args.max_retries,
            args.retry_delay,
        );
        let mut hasher = Sha256::new();
        loop {
            let chunk = tokio::select! {
                chunk = reader.next_chunk() => chunk,
                _ = cancel.cancelled() => return Err(CopyError::interrupted()),
            };
            let Some(chunk) =
                chunk.map_err(|e| CopyError::store("reading the staging object back", e))?
            else {
                break;
            };
            hasher.update(&chunk);
            writer
                .write(&chunk)
                .await
                .map_err(|e| CopyError::store(format!("uploading {final_name}"), e))?;
        }
        let sha256 = hex::encode(hasher.finalize());
        if writer.written() != verified.size || sha256 != verified.sha256 {
            return Err(CopyError::verification(format!(
                "the staging object read back holds {} bytes with SHA-256 {sha256}, \
                 the source had {} bytes with SHA-256 {}",
                writer.written(),
                verified.size,
                verified.sha256
            )));
        }
        if !args.overwrite && destination.object_meta(&destination.path).await?.is_some() {
            return Ok(Publication::Taken);
        }
        Ok(Publication::Published { e_tag: None })
    }
    .await;
    match result {
        Ok(Publication::Published { .. }) => writer
            .finish()
            .await
            .map(|finished| match finished {
                Finished::Completed(put) => Publication::Published { e_tag: put.e_tag },
                Finished::Pending(_) => unreachable!("object_store's uploads complete"),
            })
            .map_err(|e| CopyError::store(format!("completing {final_name}"), e)),
        other => {
            writer.abort().await;
            other
        }
    }
}
