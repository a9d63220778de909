//! S3's publication by server-side copy, and the cleanup of uploads a killed run left. The
//! requests object_store has no call for are presigned with its signer and sent with our own
//! client.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Method};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::PutMultipartOptions;
use tokio_util::sync::CancellationToken;

use super::destination::Destination;
use super::error::{CopyError, Reason};
use super::finalize::Verified;
use super::s3_wire::{encode_key, xml_element};

/// How long a presigned S3 request stays valid: one part copy at most.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts at each server-side part copy.
const PART_COPY_ATTEMPTS: u32 = 4;
/// Server-side part copies running at once.
const PART_COPIES_AT_ONCE: usize = 4;

/// S3: a multipart upload of the final key, created with the metadata, whose parts are copied
/// server-side from the staging object (`UploadPartCopy`): no byte goes through the pod, and
/// any size works (a single `CopyObject` stops at 5 GiB). The part copies are presigned with
/// object_store's signer and sent with our own client; object_store creates, completes and
/// aborts the upload.
pub async fn server_side_copy(
    destination: &Destination,
    s3: &Arc<AmazonS3>,
    verified: &Verified,
    part_size: u64,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    let to = &destination.path;
    let final_name = destination.name_of(to);
    if verified.size == 0 {
        // Nothing to copy: a plain put carries the metadata.
        return destination
            .store
            .put_opts(to, Vec::new().into(), verified.attributes().into())
            .await
            .map(drop)
            .map_err(|e| CopyError::store(format!("writing {final_name}"), e));
    }
    tracing::info!("publishing {final_name} by a server-side copy");
    let options = PutMultipartOptions {
        attributes: verified.attributes(),
        ..Default::default()
    };
    let id = s3
        .create_multipart_opts(to, options)
        .await
        .map_err(|e| CopyError::store(format!("starting the upload of {final_name}"), e))?;
    let copy_source = format!(
        "{}/{}",
        destination.bucket,
        encode_key(destination.staging.as_ref())
    );
    let http = store_http();
    let result = async {
        let ranges: Vec<_> = (0..verified.size)
            .step_by(part_size as usize)
            .map(|start| start..(start + part_size).min(verified.size))
            .collect();
        // A few ranges at once: the store copies them in parallel; `buffered` keeps the order.
        let copies = futures::stream::iter(ranges.into_iter().enumerate())
            .map(|(index, range)| copy_part(s3, &http, to, &id, index + 1, &copy_source, range))
            .buffered(PART_COPIES_AT_ONCE)
            .map_ok(|content_id| PartId { content_id })
            .try_collect::<Vec<_>>();
        let parts = tokio::select! {
            parts = copies => parts?,
            _ = cancel.cancelled() => return Err(CopyError::interrupted()),
        };
        s3.complete_multipart(to, &id, parts)
            .await
            .map_err(|e| CopyError::store(format!("completing {final_name}"), e))
    }
    .await;
    if result.is_err()
        && let Err(e) = s3.abort_multipart(to, &id).await
    {
        tracing::warn!("aborting the upload of {final_name}: {e}");
    }
    result.map(drop)
}

/// One `UploadPartCopy`, retried on transport errors and 5xx; returns the part's ETag.
async fn copy_part(
    s3: &AmazonS3,
    http: &reqwest::Client,
    to: &Path,
    upload_id: &str,
    part_number: usize,
    copy_source: &str,
    range: std::ops::Range<u64>,
) -> Result<String, CopyError> {
    let source_header = HeaderValue::from_str(copy_source)
        .map_err(|e| CopyError::bad_input(format!("the object name: {e}")))?;
    let range_header = HeaderValue::from_str(&format!("bytes={}-{}", range.start, range.end - 1))
        .expect("a valid header");
    let mut last_error = String::new();
    for attempt in 1..=PART_COPY_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let options = SignedUrlOptions::default()
            .with_query([
                ("partNumber", part_number.to_string()),
                ("uploadId", upload_id.to_owned()),
            ])
            .with_signed_header(
                http::HeaderName::from_static("x-amz-copy-source"),
                source_header.clone(),
            )
            .with_signed_header(
                http::HeaderName::from_static("x-amz-copy-source-range"),
                range_header.clone(),
            );
        let url = s3
            .signed_url_opts(Method::PUT, to, PRESIGN_FOR, &options)
            .await
            .map_err(|e| CopyError::store("signing a part copy", e))?;
        let response = http
            .put(url)
            .header("x-amz-copy-source", source_header.clone())
            .header("x-amz-copy-source-range", range_header.clone())
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                last_error = super::source::describe(e);
                continue;
            }
        };
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        // S3 can answer 200 with an error in the body.
        let etag = xml_element(&body, "ETag").filter(|_| !body.contains("<Error>"));
        match etag {
            Some(etag) if status.is_success() => return Ok(etag),
            _ if status.is_server_error() || status.is_success() => {
                last_error = format!(
                    "{status}: {}",
                    xml_element(&body, "Message").unwrap_or(body)
                );
            }
            _ => {
                return Err(CopyError::new(
                    Reason::StoreFailed,
                    format!(
                        "copying part {part_number} server-side: {status}: {}",
                        xml_element(&body, "Message").unwrap_or(body)
                    ),
                ));
            }
        }
    }
    Err(CopyError::new(
        Reason::StoreFailed,
        format!("copying part {part_number} server-side: {last_error}"),
    ))
}

/// Aborts S3 multipart uploads left on the staging or the final key by a run that was killed
/// (and so could not abort its own). Best effort. (The destination key belongs to one resource,
/// whose controller never runs two copies at once.)
pub async fn abort_leftover_uploads(destination: &Destination) {
    let Some(s3) = &destination.s3 else {
        return;
    };
    for key in [&destination.staging, &destination.path] {
        match abort_uploads_of(s3, key).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "aborted {n} multipart upload(s) of {} left by an interrupted run",
                destination.name_of(key)
            ),
            Err(e) => tracing::debug!("could not list leftover multipart uploads: {e}"),
        }
    }
}

/// Lists the multipart uploads of exactly `key` (ListMultipartUploads, presigned) and aborts
/// them.
async fn abort_uploads_of(s3: &AmazonS3, key: &Path) -> Result<usize, String> {
    let options =
        SignedUrlOptions::default().with_query([("uploads", ""), ("prefix", key.as_ref())]);
    // ListMultipartUploads is a bucket request: sign the bucket's root.
    let url = s3
        .signed_url_opts(Method::GET, &Path::default(), PRESIGN_FOR, &options)
        .await
        .map_err(|e| e.to_string())?;
    let response = store_http()
        .get(url)
        .send()
        .await
        .map_err(super::source::describe)?;
    let status = response.status();
    let body = response.text().await.map_err(super::source::describe)?;
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            xml_element(&body, "Message").unwrap_or(body)
        ));
    }
    let mut aborted = 0;
    for upload in body.split("<Upload>").skip(1) {
        let (Some(upload_key), Some(id)) =
            (xml_element(upload, "Key"), xml_element(upload, "UploadId"))
        else {
            continue;
        };
        if upload_key == key.as_ref() {
            s3.abort_multipart(key, &id)
                .await
                .map_err(|e| e.to_string())?;
            aborted += 1;
        }
    }
    Ok(aborted)
}

/// A client for the requests we send to the store ourselves (presigned), with timeouts: a
/// server-side part copy of `--copy-part-size` bytes must finish within the overall one.
fn store_http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30 * 60))
        .build()
        .unwrap_or_default()
}
