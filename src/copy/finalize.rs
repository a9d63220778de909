//! Publishing the verified staging object under its final name, with its metadata.
//!
//! Object stores take user metadata only when an object is created, and a streamed upload's
//! digest is known only at its end, so the data goes to a staging object first and is then:
//! copied server-side into a multipart upload created with the metadata (S3), streamed back
//! through the pod (GCS, Azure, or `--finalize restream`), or renamed (`file://`).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, Method};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{Attribute, Attributes, PutMultipartOptions};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::args::{CopyArgs, FinalizeMode};
use super::destination::{Backend, Destination, META_SHA256, META_SIZE, META_SOURCE};
use super::error::{CopyError, Reason};
use super::local::{set_local_metadata, write_sidecar};
use super::read_back::ReadBack;
use super::upload::PartWriter;

/// How long a presigned S3 request stays valid: one part copy at most.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts at each server-side part copy.
const PART_COPY_ATTEMPTS: u32 = 4;
/// Server-side part copies running at once.
const PART_COPIES_AT_ONCE: usize = 4;

/// What the final object must hold.
pub struct Verified {
    pub size: u64,
    pub sha256: String,
    pub content_type: Option<String>,
    pub source: String,
}

impl Verified {
    fn attributes(&self) -> Attributes {
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

/// Publishes the staging object as the final one, with its metadata.
pub async fn publish(
    destination: &Destination,
    verified: &Verified,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    match (destination.backend, args.finalize) {
        (Backend::Local, _) => publish_local(destination, verified),
        (Backend::S3, FinalizeMode::Auto) => {
            let s3 = destination
                .s3
                .as_ref()
                .expect("an S3 destination has its store");
            server_side_copy(destination, s3, verified, args.copy_part_size, cancel).await
        }
        _ => restream(destination, verified, args, cancel).await,
    }
}

/// `file://`: fsync, extended attributes, an atomic rename, then the `.sha256` sidecar.
fn publish_local(destination: &Destination, verified: &Verified) -> Result<(), CopyError> {
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
    std::fs::rename(&staging, &file)
        .map_err(|e| io(&format!("renaming to {}", file.display()), e))?;
    if let Some(dir) = file.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    write_sidecar(&file, &verified.sha256)
        .map_err(|e| io(&format!("writing {}.sha256", file.display()), e))
}

/// Any store: stream the staging object back through the pod into the final object, created
/// with its metadata, hashing it again. The digest must match before the upload completes.
async fn restream(
    destination: &Destination,
    verified: &Verified,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
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
        Ok(())
    }
    .await;
    match result {
        Ok(()) => writer
            .finish()
            .await
            .map(drop)
            .map_err(|e| CopyError::store(format!("completing {final_name}"), e)),
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

/// S3: a multipart upload of the final key, created with the metadata, whose parts are copied
/// server-side from the staging object (`UploadPartCopy`): no byte goes through the pod, and
/// any size works (a single `CopyObject` stops at 5 GiB). The part copies are presigned with
/// object_store's signer and sent with our own client; object_store creates, completes and
/// aborts the upload.
async fn server_side_copy(
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

/// The text of the first `<name>…</name>` in `xml`, unescaped.
fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml_unescape(&xml[start..end]))
}

/// Resolves XML's five named entities and numeric references (`&#34;`, `&#x22;`).
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..semi];
        let resolved = match entity {
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match resolved {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An object key percent-encoded for `x-amz-copy-source` (`/` kept).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_elements_are_found_and_unescaped() {
        let xml = "<CopyPartResult><LastModified>x</LastModified><ETag>&quot;abc&quot;</ETag></CopyPartResult>";
        assert_eq!(xml_element(xml, "ETag").as_deref(), Some("\"abc\""));
        assert_eq!(xml_element(xml, "Nope"), None);
        let minio = "<ETag>&#34;dd2a&#x22;</ETag>";
        assert_eq!(xml_element(minio, "ETag").as_deref(), Some("\"dd2a\""));
        assert_eq!(
            xml_unescape("a &amp; b &bogus; &#9999999999;"),
            "a & b &bogus; &#9999999999;"
        );
    }

    #[test]
    fn keys_are_encoded_for_copy_source() {
        assert_eq!(encode_key("media/a b+c.mp4"), "media/a%20b%2Bc.mp4");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
