//! S3: the upload of the final key, completed only once the master is verified and only if
//! the name is free (`If-None-Match: *`, unless `--overwrite`); the SHA-256 sidecar recorded
//! with the object; and the cleanup of uploads a killed run left. The requests object_store
//! has no call for are presigned with its signer and sent with our own client.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use object_store::ObjectStoreExt;
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
/// store against its checksum, `--part-checksum`): invisible until [`Pending::complete`].
pub struct Pending {
    pub s3: Arc<AmazonS3>,
    pub path: Path,
    pub id: String,
    pub parts: Vec<PartId>,
    /// With CRC-64/NVME parts: the CRC-64/NVME of the stream that was hashed, which the
    /// completion names and the store's checksum of the whole object must equal.
    pub whole_crc64nvme: Option<u64>,
}

impl Pending {
    /// Completes the upload, on condition that no object has the name unless `overwrite`: a
    /// run that lost a race publishes nothing ([`Publication::Taken`]), and the upload is
    /// aborted. Any failure aborts it too.
    pub async fn complete(self, overwrite: bool) -> Result<Publication, CopyError> {
        let http = store_http();
        let upload = (self.path.clone(), self.id.as_str(), self.parts.as_slice());
        let result = complete(&self.s3, &http, upload, self.whole_crc64nvme, !overwrite).await;
        match result {
            Ok(Completed::Published { e_tag }) => Ok(Publication::Published { e_tag }),
            Ok(Completed::Unconfirmed(why)) => {
                // Visible, and not the bytes hashed (or not shown to be): this run's object
                // (just completed under the name), removed before any digest is recorded.
                if let Err(e) = self.s3.delete(&self.path).await {
                    tracing::warn!("could not delete {}: {e}", self.path);
                }
                Err(CopyError::verification(format!(
                    "the store's checksum of the completed object {why}; deleted it"
                )))
            }
            other => {
                self.abort().await;
                other.map(|_| Publication::Taken)
            }
        }
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

/// How a completion ended, before the checksum's verdict is acted on.
enum Completed {
    Published {
        e_tag: Option<String>,
    },
    Taken,
    /// Completed, but the store's checksum of the object is not the stream's.
    Unconfirmed(String),
}

/// Whether the store's CRC-64/NVME of the completed object (`<ChecksumCRC64NVME>` of its
/// answer, base64 of 8 big-endian bytes) is `expected`; why not, if not.
fn confirm_crc64nvme(answer: &str, expected: u64) -> Result<(), String> {
    use base64::Engine;
    let Some(text) = xml_element(answer, "ChecksumCRC64NVME") else {
        return Err(
            "is missing from its answer (a store without CRC-64/NVME checksums: \
                    use --part-checksum sha256)"
                .into(),
        );
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim());
    match decoded.ok().and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(bytes) if u64::from_be_bytes(bytes) == expected => Ok(()),
        Some(bytes) => Err(format!(
            "is {:016x}, the stream's CRC-64/NVME {expected:016x}",
            u64::from_be_bytes(bytes)
        )),
        None => Err(format!("{text:?} is not a CRC-64/NVME")),
    }
}

/// A CRC-64/NVME as S3 writes it: base64 of its 8 big-endian bytes.
fn crc64nvme_header(crc: u64) -> HeaderValue {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    HeaderValue::from_str(&text).expect("base64 is a header value")
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
        match xml_element(&self.body, "Code") {
            Some(code) => format!("{} ({code}): {message}", self.status),
            None => format!("{}: {message}", self.status),
        }
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

/// The body of `CompleteMultipartUpload`: every part's number, ETag and checksum.
fn completion_body(parts: &[PartId]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (index, part) in parts.iter().enumerate() {
        // With checksums, object_store's part ID is its own XML of the ETag and the checksum.
        let e_tag = xml_element(&part.content_id, "e_tag").unwrap_or(part.content_id.clone());
        let mut checksums = String::new();
        for (ours, theirs) in [
            ("checksum_sha256", "ChecksumSHA256"),
            ("checksum_crc64nvme", "ChecksumCRC64NVME"),
        ] {
            if let Some(c) = xml_element(&part.content_id, ours) {
                checksums.push_str(&format!("<{theirs}>{}</{theirs}>", xml_escape(&c)));
            }
        }
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>{checksums}</Part>",
            index + 1,
            xml_escape(&e_tag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// `CompleteMultipartUpload`, with `If-None-Match: *` when `create_only`, and with the
/// stream's CRC-64/NVME as the object's full checksum when given (the store refuses a
/// completion whose parts do not combine to it; its answer must name it too). Retried on
/// transport errors and 5xx (and 409, a conditional write racing another).
async fn complete(
    s3: &AmazonS3,
    http: &reqwest::Client,
    (to, upload_id, parts): (Path, &str, &[PartId]),
    whole_crc64nvme: Option<u64>,
    create_only: bool,
) -> Result<Completed, CopyError> {
    let to = &to;
    let body = completion_body(parts);
    let mut headers = Vec::new();
    if create_only {
        headers.push((http::header::IF_NONE_MATCH, HeaderValue::from_static("*")));
    }
    if let Some(crc) = whole_crc64nvme {
        let name = http::HeaderName::from_static("x-amz-checksum-crc64nvme");
        headers.push((name, crc64nvme_header(crc)));
        let kind = http::HeaderName::from_static("x-amz-checksum-type");
        headers.push((kind, HeaderValue::from_static("FULL_OBJECT")));
    }
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
                if let Some(expected) = whole_crc64nvme
                    && let Err(why) = confirm_crc64nvme(&answer.body, expected)
                {
                    return Ok(Completed::Unconfirmed(why));
                }
                let e_tag = xml_element(&answer.body, "ETag");
                return Ok(Completed::Published { e_tag });
            }
            Some("PreconditionFailed") => return Ok(Completed::Taken),
            // A retry of a completion that went through: unconfirmed, when its checksum was
            // to be shown (the first answer was lost); else the read-back decides.
            Some("NoSuchUpload") if attempt > 1 => {
                return Ok(match whole_crc64nvme {
                    Some(_) => Completed::Unconfirmed("was lost with its answer".into()),
                    None => Completed::Published { e_tag: None },
                });
            }
            Some(_) if answer.status.is_server_error() || answer.status.as_u16() == 409 => {
                last_error = answer.describe();
            }
            Some(_) if answer.status.as_u16() == 412 => return Ok(Completed::Taken),
            // The parts the store holds do not combine to the stream's checksum (S3 says
            // BadDigest, MinIO XAmzContentChecksumMismatch): nothing was published.
            Some("BadDigest" | "XAmzContentChecksumMismatch") if whole_crc64nvme.is_some() => {
                return Err(CopyError::verification(format!(
                    "the store refused the completion: its checksum of the parts is not the \
                     stream's CRC-64/NVME ({})",
                    answer.describe()
                )));
            }
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
mod minio_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_checksum_of_the_object_must_be_the_streams() {
        // S3 writes a CRC-64/NVME as base64 of its 8 big-endian bytes.
        let answer = |crc: u64| {
            format!(
                "<CompleteMultipartUploadResult><ETag>\"e-1\"</ETag><ChecksumCRC64NVME>{}\
                 </ChecksumCRC64NVME><ChecksumType>FULL_OBJECT</ChecksumType>\
                 </CompleteMultipartUploadResult>",
                crc64nvme_header(crc).to_str().unwrap()
            )
        };
        let crc = 0xae8b_1486_0a79_9888;
        assert_eq!(confirm_crc64nvme(&answer(crc), crc), Ok(()));
        assert!(confirm_crc64nvme(&answer(crc ^ 1), crc).is_err());
        let without =
            "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>";
        assert!(confirm_crc64nvme(without, crc).is_err());
        let garbled = "<ChecksumCRC64NVME>abc</ChecksumCRC64NVME>";
        assert!(confirm_crc64nvme(garbled, crc).is_err());
    }

    #[test]
    fn the_completion_names_every_parts_checksum() {
        let part = |e_tag: &str, checksum: &str| PartId {
            content_id: format!(
                "<PartMetadata><e_tag>{e_tag}</e_tag><checksum_crc64nvme>{checksum}\
                 </checksum_crc64nvme></PartMetadata>"
            ),
        };
        let body = completion_body(&[part("\"a\"", "AAAAAAAAAAE="), part("\"b\"", "AAAAAAAAAAI=")]);
        assert_eq!(
            body,
            "<CompleteMultipartUpload>\
             <Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag>\
             <ChecksumCRC64NVME>AAAAAAAAAAE=</ChecksumCRC64NVME></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag>\
             <ChecksumCRC64NVME>AAAAAAAAAAI=</ChecksumCRC64NVME></Part>\
             </CompleteMultipartUpload>"
        );
    }

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
