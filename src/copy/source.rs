//! The master at its signed URL: reading the URL without ever showing it, and `Range` requests
//! classified into what the copy does next.

use std::fmt;
use std::path::Path;

use http::{HeaderMap, StatusCode, header};
use reqwest::Response;

use super::args::CopyArgs;
use super::error::{CopyError, Reason};

/// The environment variable holding the URL when no file is named.
pub const URL_ENV: &str = "MUX_MASTER_URL";

/// The signed URL. `Display` and `Debug` show `scheme://host/path` only: the query holds the
/// signature.
#[derive(Clone)]
pub struct SourceUrl(url::Url);

impl SourceUrl {
    /// Parses an http(s) URL. The error never quotes it.
    pub fn parse(text: &str) -> Result<Self, CopyError> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| CopyError::bad_input(format!("the source URL does not parse ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(CopyError::bad_input(
                "the source URL must be an http(s) URL with a host",
            ));
        }
        Ok(SourceUrl(url))
    }

    /// Reads the URL from `--source-url-file`, else from `MUX_MASTER_URL`.
    pub fn from_args(args: &CopyArgs) -> Result<Self, CopyError> {
        match &args.source_url_file {
            Some(path) => Self::from_file(path),
            None => match std::env::var(URL_ENV) {
                Ok(text) if !text.trim().is_empty() => Self::parse(&text),
                _ => Err(CopyError::bad_input(format!(
                    "no source URL: set --source-url-file (MMO_SOURCE_URL_FILE) or {URL_ENV}"
                ))),
            },
        }
    }

    fn from_file(path: &Path) -> Result<Self, CopyError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CopyError::bad_input(format!(
                "reading the source URL from {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text)
    }

    /// The whole URL, signature included: for the request only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// `scheme://host[:port]/path`, without query or fragment (or user info).
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let host = url.host_str().unwrap_or("");
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let query = if url.query().is_some() {
            "?<redacted>"
        } else {
            ""
        };
        format!("{}://{host}{port}{}{query}", url.scheme(), url.path())
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({})", self.redacted())
    }
}

/// What identifies one version of the file: a strong `ETag`, else `Last-Modified`. Sent as
/// `If-Range` when resuming, so that a changed file comes back whole instead of spliced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator(String);

impl Validator {
    pub fn from_headers(headers: &HeaderMap) -> Option<Validator> {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        text(header::ETAG)
            .filter(|etag| !etag.starts_with("W/"))
            .or_else(|| text(header::LAST_MODIFIED))
            .map(Validator)
    }
}

/// One version of the file, as far as the server tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub validator: Option<Validator>,
    pub length: Option<u64>,
}

/// What a `Range: bytes=<from>-` request found.
pub enum Fetched {
    /// A body to stream. Its first byte is at offset `body_start`; bytes before `from` must be
    /// skipped (a server ignoring `Range` sends the whole file). `end` is the offset where the
    /// body should end, `total` the file's length as the server said it.
    Body {
        response: Response,
        body_start: u64,
        end: Option<u64>,
        total: Option<u64>,
        validator: Option<Validator>,
    },
    /// Nothing at or past `from`: the file is `total` bytes long.
    End { total: u64 },
    /// The file is not the one we were reading (a different validator, or shorter than `from`).
    Changed { why: String },
}

/// A request that failed in a way a retry may cure, or for good.
pub enum FetchError {
    Transient(String),
    Fatal(CopyError),
}

impl From<CopyError> for FetchError {
    fn from(e: CopyError) -> Self {
        FetchError::Fatal(e)
    }
}

/// The master's server, through one HTTP client (cloned for each range fetched in parallel:
/// the clones share its connection pool).
#[derive(Clone)]
pub struct Source {
    http: reqwest::Client,
    url: SourceUrl,
}

impl Source {
    pub fn new(url: SourceUrl, args: &CopyArgs) -> Result<Self, CopyError> {
        let http = reqwest::Client::builder()
            .connect_timeout(args.connect_timeout)
            .read_timeout(args.read_timeout)
            .user_agent(concat!("mux-master-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CopyError::new(Reason::Failed, describe(e)))?;
        Ok(Source { http, url })
    }

    pub fn url(&self) -> &SourceUrl {
        &self.url
    }

    /// `GET` with `Range` (and `If-Range`), its status sorted into what ends or retries a copy.
    pub(super) async fn get(
        &self,
        range: &str,
        if_range: Option<&Validator>,
    ) -> Result<Response, FetchError> {
        let mut request = self
            .http
            .get(self.url.expose())
            .header(header::RANGE, range);
        if let Some(validator) = if_range {
            request = request.header(header::IF_RANGE, validator.0.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| FetchError::Transient(describe(e)))?;
        check_status(response.status())?;
        Ok(response)
    }

    /// Which version of the file is there now: its validator and length, from
    /// `Range: bytes=0-0`, without reading the body.
    pub async fn version(&self) -> Result<Version, FetchError> {
        let response = self.get("bytes=0-0", None).await?;
        let headers = response.headers();
        let length = match response.status() {
            StatusCode::PARTIAL_CONTENT => content_range(headers).and_then(|(_, _, total)| total),
            StatusCode::OK => response.content_length(),
            _ => unsatisfied_length(headers),
        };
        Ok(Version {
            validator: Validator::from_headers(headers),
            length,
        })
    }

    /// `GET` with `Range: bytes=<from>-` (and `If-Range` when resuming a known version); with
    /// `limit`, `bytes=<from>-<from + limit - 1>`: the first range of a parallel download,
    /// whose answer also says whether the server honours `Range` and how long the file is.
    pub async fn fetch(
        &self,
        from: u64,
        validator: Option<&Validator>,
        limit: Option<u64>,
    ) -> Result<Fetched, FetchError> {
        let if_range = validator.filter(|_| from > 0);
        let range = match limit {
            Some(limit) => format!("bytes={from}-{}", from + limit.max(1) - 1),
            None => format!("bytes={from}-"),
        };
        let response = self.get(&range, if_range).await?;
        let status = response.status();
        let headers = response.headers();
        let new_validator = Validator::from_headers(headers);
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let (start, last, total) = content_range(headers).ok_or_else(|| {
                    CopyError::new(
                        Reason::SourceFailed,
                        "a 206 answer without a usable Content-Range",
                    )
                })?;
                if start > from {
                    return Err(CopyError::new(
                        Reason::SourceFailed,
                        format!("asked for bytes from {from}, the server sent from {start}"),
                    )
                    .into());
                }
                if let Some(changed) = changed(validator, new_validator.as_ref()) {
                    return Ok(changed);
                }
                Ok(Fetched::Body {
                    response,
                    body_start: start,
                    end: Some(last + 1),
                    total,
                    validator: new_validator,
                })
            }
            StatusCode::OK => {
                let length = response.content_length();
                if from > 0 {
                    if let Some(changed) = changed(validator, new_validator.as_ref()) {
                        return Ok(changed);
                    }
                    match length {
                        Some(length) if length < from => {
                            return Ok(Fetched::Changed {
                                why: format!("it is now {length} bytes long, we had {from}"),
                            });
                        }
                        Some(length) if length == from => {
                            return Ok(Fetched::End { total: length });
                        }
                        _ => {}
                    }
                    tracing::warn!(
                        "the server ignored Range: reading again the {from} bytes already copied"
                    );
                }
                Ok(Fetched::Body {
                    response,
                    body_start: 0,
                    end: length,
                    total: length,
                    validator: new_validator,
                })
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = unsatisfied_length(headers).unwrap_or(from);
                if total < from {
                    Ok(Fetched::Changed {
                        why: format!("it is now {total} bytes long, we had {from}"),
                    })
                } else {
                    Ok(Fetched::End { total })
                }
            }
            other => Err(CopyError::new(
                Reason::SourceFailed,
                format!("the source answered {other}"),
            )
            .into()),
        }
    }
}

/// `Changed` when the server names another version of the file than the one we were reading.
fn changed(old: Option<&Validator>, new: Option<&Validator>) -> Option<Fetched> {
    validator_changed(old, new).map(|why| Fetched::Changed { why })
}

/// Why the server's validator says this is another version of the file, if it does.
pub(super) fn validator_changed(
    old: Option<&Validator>,
    new: Option<&Validator>,
) -> Option<String> {
    match (old, new) {
        (Some(old), Some(new)) if old != new => {
            Some(format!("its validator changed from {} to {}", old.0, new.0))
        }
        _ => None,
    }
}

/// Statuses that end or retry the copy whatever was asked.
fn check_status(status: StatusCode) -> Result<(), FetchError> {
    match status.as_u16() {
        200 | 206 | 416 => Ok(()),
        401 | 403 => Err(FetchError::Fatal(CopyError::new(
            Reason::UrlExpired,
            format!("the source URL was refused ({status}): it has expired or access was revoked"),
        ))),
        404 | 410 => Err(FetchError::Fatal(CopyError::new(
            Reason::SourceFailed,
            format!("the master is not there ({status})"),
        ))),
        408 | 425 | 429 | 500..=599 => Err(FetchError::Transient(format!(
            "the source answered {status}"
        ))),
        _ => Err(FetchError::Fatal(CopyError::new(
            Reason::SourceFailed,
            format!("the source answered {status}"),
        ))),
    }
}

/// A 206's `Content-Range`, parsed.
pub(super) fn content_range(headers: &HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    parse_content_range(value)
}

/// The length a 416 names in `Content-Range: bytes */<length>`.
fn unsatisfied_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    value.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// `bytes <first>-<last>/<total or *>` as `(first, last, total)`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    if last < first {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((first, last, total))
}

/// A reqwest error without its URL (which holds the signature), with its causes.
pub fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out: "
    } else if error.is_connect() {
        "could not connect: "
    } else {
        ""
    };
    let error = error.without_url();
    let mut text = format!("{kind}{error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_shows_without_its_signature() {
        let url = SourceUrl::parse(
            "https://mezzanine.mux.com/abc/mezzanine.mp4?skid=k&signature=s3cr3t\n",
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "https://mezzanine.mux.com/abc/mezzanine.mp4?<redacted>"
        );
        assert!(!format!("{url:?}").contains("s3cr3t"));
        let with_port = SourceUrl::parse("http://u:p@127.0.0.1:8080/x?y=z").unwrap();
        assert_eq!(with_port.redacted(), "http://127.0.0.1:8080/x?<redacted>");
    }

    #[test]
    fn a_bad_url_is_refused_without_being_quoted() {
        let err = SourceUrl::parse("ftp://host/file?signature=s3cr3t").unwrap_err();
        assert_eq!(err.reason, Reason::BadInput);
        assert!(!err.message.contains("s3cr3t"));
        let err = SourceUrl::parse("not a url s3cr3t").unwrap_err();
        assert!(!err.message.contains("s3cr3t"));
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((0, 99, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
    }

    #[test]
    fn weak_etags_are_not_validators() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, "W/\"x\"".parse().unwrap());
        assert_eq!(Validator::from_headers(&headers), None);
        headers.insert(
            header::LAST_MODIFIED,
            "Tue, 01 Jan 2030 00:00:00 GMT".parse().unwrap(),
        );
        assert!(Validator::from_headers(&headers).is_some());
        headers.insert(header::ETAG, "\"strong\"".parse().unwrap());
        assert_eq!(
            Validator::from_headers(&headers),
            Some(Validator("\"strong\"".into()))
        );
    }
}
