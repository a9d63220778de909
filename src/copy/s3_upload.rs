//! S3: the upload of the final key, completed only once the master is verified and only if
//! the name is free (`If-None-Match: *`, unless `--overwrite`); the SHA-256 sidecar recorded
//! with the object; and the cleanup of uploads a killed run left. The requests object_store
//! has no call for are presigned with its signer and sent with our own client.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};

use super::destination::Destination;
use super::error::{CopyError, Reason};
use super::s3_wire::{xml_element, xml_escape};

/// How long a presigned S3 request stays valid.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts at the completion.
const COMPLETE_ATTEMPTS: u32 = 4;

/// An S3 multipart upload of the final key whose parts are all stored (each checked by the
/// store against its `x-amz-checksum-sha256`): invisible until [`Pending::complete`].
pub struct Pending {
    pub s3: Arc<AmazonS3>,
    pub path: Path,
    pub id: String,
    pub parts: Vec<PartId>,
}

impl Pending {
    /// Completes the upload, on condition that no object has the name unless `overwrite`: a
    /// run that lost a race publishes nothing ([`Publication::Taken`]), and the upload is
    /// aborted. Any failure aborts it too.
    pub async fn complete(self, overwrite: bool) -> Result<Publication, CopyError> {
        let http = store_http();
        let result = complete(
            &self.s3,
            &http,
            &self.path,
            &self.id,
            &self.parts,
            !overwrite,
        )
        .await;
        if !matches!(result, Ok(Publication::Published { .. })) {
            self.abort().await;
        }
        result
    }

    /// Aborts the upload: its parts are deleted, nothing was published.
    pub async fn abort(self) {
        if let Err(e) = self.s3.abort_multipart(&self.path, &self.id).await {
            tracing::debug!("aborting the upload of {}: {e}", self.path);
        }
    }
}

/// How a publication ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// The final object is ours: the store's ETag of it, when it gave one.
    Published { e_tag: Option<String> },
    /// Another object took the final name first (the condition failed): nothing was written.
    Taken,
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
    headers: &[(http::HeaderName, HeaderValue)],
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
        // With checksums, object_store's part ID is its own XML of the ETag and the checksum.
        let e_tag = xml_element(&part.content_id, "e_tag").unwrap_or(part.content_id.clone());
        let checksum = xml_element(&part.content_id, "checksum_sha256")
            .map(|c| format!("<ChecksumSHA256>{}</ChecksumSHA256>", xml_escape(&c)))
            .unwrap_or_default();
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>{checksum}</Part>",
            index + 1,
            xml_escape(&e_tag)
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
    for attempt in 1..=COMPLETE_ATTEMPTS {
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

/// Aborts S3 multipart uploads left by a run that was killed (and so could not abort its own):
/// on the staging key of copiers before issue 13 (no run uses it any more), and on the final
/// key those initiated at least `min_age` ago. A run uploads straight to the final key for as
/// long as its download takes, so a younger upload there may be a live run's (two runs on one
/// key): it is left alone. Best effort; a bucket lifecycle rule aborting incomplete uploads
/// after a day is the backstop (and the only remedy for the per-run staging keys of
/// `--finalize restream`, which stores such as MinIO list by exact key only).
pub async fn abort_leftover_uploads(destination: &Destination, min_age: Duration) {
    let Some(s3) = &destination.s3 else {
        return;
    };
    let legacy = destination.legacy_staging();
    for (key, min_age) in [(&legacy, Duration::ZERO), (&destination.path, min_age)] {
        match abort_uploads_of(s3, key, min_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "aborted {n} multipart upload(s) of {} left by an interrupted run",
                destination.name_of(key)
            ),
            Err(e) => tracing::debug!("could not list leftover multipart uploads: {e}"),
        }
    }
}

/// Whether an upload `initiated` (ListMultipartUploads' `<Initiated>`, RFC 3339) at least
/// `min_age` before `now` is a leftover; one whose time does not parse is not.
fn old_enough(initiated: Option<&str>, min_age: Duration, now: jiff::Timestamp) -> bool {
    let Some(initiated) = initiated.and_then(|t| t.trim().parse::<jiff::Timestamp>().ok()) else {
        return min_age.is_zero();
    };
    jiff::SignedDuration::try_from(min_age)
        .ok()
        .and_then(|age| initiated.checked_add(age).ok())
        .is_some_and(|due| due <= now)
}

/// Lists the multipart uploads of exactly `key` (ListMultipartUploads, presigned) and aborts
/// those initiated at least `min_age` ago.
async fn abort_uploads_of(s3: &AmazonS3, key: &Path, min_age: Duration) -> Result<usize, String> {
    let now = jiff::Timestamp::now();
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
        let initiated = xml_element(upload, "Initiated");
        if upload_key == key.as_ref() && old_enough(initiated.as_deref(), min_age, now) {
            s3.abort_multipart(key, &id)
                .await
                .map_err(|e| e.to_string())?;
            aborted += 1;
        }
    }
    Ok(aborted)
}

/// A client for the requests we send to the store ourselves (presigned), with timeouts (a
/// completion of many parts may take the store a while).
fn store_http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30 * 60))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_old_enough_are_leftovers() {
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let ten_minutes = Duration::from_secs(600);
        assert!(old_enough(Some("2026-12-01T11:49:59.5Z"), ten_minutes, now));
        assert!(!old_enough(
            Some("2026-12-01T11:55:00.000Z"),
            ten_minutes,
            now
        ));
        assert!(!old_enough(None, ten_minutes, now));
        assert!(old_enough(None, Duration::ZERO, now));
        assert!(old_enough(
            Some("2026-12-01T12:00:00Z"),
            Duration::ZERO,
            now
        ));
    }
}
