//! S3's publication by server-side copy, and the cleanup of uploads a killed run left. The
//! requests object_store has no call for are presigned with its signer and sent with our own
//! client.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use http::{HeaderName, HeaderValue, Method};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{PutMode, PutMultipartOptions, PutOptions};
use tokio_util::sync::CancellationToken;

use super::destination::Destination;
use super::error::{CopyError, Reason};
use super::finalize::Verified;
use super::s3_wire::{encode_key, xml_element, xml_escape};

/// How long a presigned S3 request stays valid: one part copy at most.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts at each server-side part copy.
const PART_COPY_ATTEMPTS: u32 = 4;
/// Server-side part copies running at once.
const PART_COPIES_AT_ONCE: usize = 4;

/// S3: a multipart upload of the final key, created with the metadata, whose parts are copied
/// server-side from the staging object (`UploadPartCopy`, each on condition that the staging
/// object is still the one verified: `x-amz-copy-source-if-match`): no byte goes through the
/// pod, and any size works (a single `CopyObject` stops at 5 GiB). The upload is completed on
/// condition that no object has the final name (`If-None-Match: *`) unless `overwrite`: a run
/// that lost a race to another publishes nothing ([`Publication::Taken`]). object_store creates
/// and aborts the upload; the part copies and the completion are presigned with its signer and
/// sent with our own client.
pub async fn server_side_copy(
    destination: &Destination,
    s3: &Arc<AmazonS3>,
    verified: &Verified,
    part_size: u64,
    overwrite: bool,
    cancel: &CancellationToken,
) -> Result<Publication, CopyError> {
    let to = &destination.path;
    let final_name = destination.name_of(to);
    if verified.size == 0 {
        // Nothing to copy: a plain put carries the metadata.
        let mode = if overwrite {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        let options = PutOptions {
            mode,
            attributes: verified.attributes(),
            ..Default::default()
        };
        return match destination
            .store
            .put_opts(to, Vec::new().into(), options)
            .await
        {
            Ok(put) => Ok(Publication::Published { e_tag: put.e_tag }),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Publication::Taken),
            Err(e) => Err(CopyError::store(format!("writing {final_name}"), e)),
        };
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
    let mut source_headers = vec![(COPY_SOURCE, header_value(&copy_source)?)];
    if let Some(e_tag) = &verified.staging_e_tag {
        source_headers.push((COPY_SOURCE_IF_MATCH, header_value(e_tag)?));
    }
    let http = store_http();
    let result = async {
        let ranges: Vec<_> = (0..verified.size)
            .step_by(part_size as usize)
            .map(|start| start..(start + part_size).min(verified.size))
            .collect();
        // A few ranges at once: the store copies them in parallel; `buffered` keeps the order.
        let copies = futures::stream::iter(ranges.into_iter().enumerate())
            .map(|(index, range)| copy_part(s3, &http, to, &id, index + 1, &source_headers, range))
            .buffered(PART_COPIES_AT_ONCE)
            .try_collect::<Vec<_>>();
        let parts = tokio::select! {
            parts = copies => parts?,
            _ = cancel.cancelled() => return Err(CopyError::interrupted()),
        };
        complete(s3, &http, to, &id, &parts, !overwrite).await
    }
    .await;
    if !matches!(result, Ok(Publication::Published { .. }))
        && let Err(e) = s3.abort_multipart(to, &id).await
    {
        tracing::debug!("aborting the upload of {final_name}: {e}");
    }
    result
}

/// How a publication ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// The final object is ours: the store's ETag of it, when it gave one.
    Published { e_tag: Option<String> },
    /// Another object took the final name first (the condition failed): nothing was written.
    Taken,
}

const COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");
const COPY_SOURCE_IF_MATCH: HeaderName = HeaderName::from_static("x-amz-copy-source-if-match");

fn header_value(text: &str) -> Result<HeaderValue, CopyError> {
    HeaderValue::from_str(text).map_err(|e| CopyError::bad_input(format!("a header value: {e}")))
}

/// What S3 answered a request we sent ourselves.
struct Answer {
    status: http::StatusCode,
    body: String,
}

impl Answer {
    /// The error S3 named (`<Code>`), also in a 200 answer that carries one.
    fn error_code(&self) -> Option<String> {
        let failed = !self.status.is_success() || self.body.contains("<Error>");
        failed.then(|| xml_element(&self.body, "Code").unwrap_or_default())
    }

    fn describe(&self) -> String {
        let message = xml_element(&self.body, "Message").unwrap_or_else(|| self.body.clone());
        format!("{}: {message}", self.status)
    }
}

/// Sends one presigned request: `method` on `path` with `query`, `headers` signed with it.
async fn presigned(
    s3: &AmazonS3,
    http: &reqwest::Client,
    (method, path): (Method, &Path),
    query: Vec<(&'static str, String)>,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<String>,
) -> Result<Answer, String> {
    let mut options = SignedUrlOptions::default().with_query(query);
    for (name, value) in headers {
        options = options.with_signed_header(name.clone(), value.clone());
    }
    let url = s3
        .signed_url_opts(method.clone(), path, PRESIGN_FOR, &options)
        .await
        .map_err(|e| format!("signing a request: {e}"))?;
    let mut request = http.request(method, url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.map_err(super::source::describe)?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok(Answer { status, body })
}

/// One `UploadPartCopy`, retried on transport errors and 5xx; returns the part's ETag.
async fn copy_part(
    s3: &AmazonS3,
    http: &reqwest::Client,
    to: &Path,
    upload_id: &str,
    part_number: usize,
    source_headers: &[(HeaderName, HeaderValue)],
    range: std::ops::Range<u64>,
) -> Result<PartId, CopyError> {
    let range = format!("bytes={}-{}", range.start, range.end - 1);
    let mut headers = source_headers.to_vec();
    headers.push((
        HeaderName::from_static("x-amz-copy-source-range"),
        header_value(&range)?,
    ));
    let query = || {
        vec![
            ("partNumber", part_number.to_string()),
            ("uploadId", upload_id.to_owned()),
        ]
    };
    let mut last_error = String::new();
    for attempt in 1..=PART_COPY_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let answer = match presigned(s3, http, (Method::PUT, to), query(), &headers, None).await {
            Ok(answer) => answer,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        match (answer.error_code(), xml_element(&answer.body, "ETag")) {
            (None, Some(content_id)) => return Ok(PartId { content_id }),
            _ if answer.status.is_server_error() || answer.status.is_success() => {
                last_error = answer.describe();
            }
            _ => {
                return Err(CopyError::new(
                    Reason::StoreFailed,
                    format!(
                        "copying part {part_number} server-side: {}",
                        answer.describe()
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

/// `CompleteMultipartUpload`, with `If-None-Match: *` when `create_only`; retried on transport
/// errors and 5xx (and 409, a conditional write racing another).
async fn complete(
    s3: &AmazonS3,
    http: &reqwest::Client,
    to: &Path,
    upload_id: &str,
    parts: &[PartId],
    create_only: bool,
) -> Result<Publication, CopyError> {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (index, part) in parts.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            index + 1,
            xml_escape(&part.content_id)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    let headers = if create_only {
        vec![(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"))]
    } else {
        Vec::new()
    };
    let query = || vec![("uploadId", upload_id.to_owned())];
    let mut last_error = String::new();
    for attempt in 1..=PART_COPY_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let sent = presigned(
            s3,
            http,
            (Method::POST, to),
            query(),
            &headers,
            Some(body.clone()),
        );
        let answer = match sent.await {
            Ok(answer) => answer,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        match answer.error_code().as_deref() {
            None => {
                let e_tag = xml_element(&answer.body, "ETag");
                return Ok(Publication::Published { e_tag });
            }
            Some("PreconditionFailed") => return Ok(Publication::Taken),
            // A retry of a completion that went through: the read-back decides.
            Some("NoSuchUpload") if attempt > 1 => {
                return Ok(Publication::Published { e_tag: None });
            }
            Some(_) if answer.status.is_server_error() || answer.status.as_u16() == 409 => {
                last_error = answer.describe();
            }
            Some(_) if answer.status.as_u16() == 412 => return Ok(Publication::Taken),
            Some(_) => {
                return Err(CopyError::new(
                    Reason::StoreFailed,
                    format!("completing the upload: {}", answer.describe()),
                ));
            }
        }
    }
    Err(CopyError::new(
        Reason::StoreFailed,
        format!("completing the upload: {last_error}"),
    ))
}

/// Aborts S3 multipart uploads left on the final key, or on the staging key of copiers before
/// issue 13, by a run that was killed (and so could not abort its own). Best effort. (Each run
/// now stages under a name of its own, which no other run can find on stores that list
/// uploads only by exact key, as MinIO does: those are left to the bucket's lifecycle rule.)
pub async fn abort_leftover_uploads(destination: &Destination) {
    let Some(s3) = &destination.s3 else {
        return;
    };
    for key in [&destination.legacy_staging(), &destination.path] {
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
