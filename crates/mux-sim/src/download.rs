//! The master file at its signed URL: GET (whole or `Range`) and HEAD, 403 once the URL
//! has expired or access was turned off. Stands in for mezzanine.mux.com.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::time::Instant;

use super::Sim;
use super::content;

/// How much the server generates per chunk of the body.
const CHUNK: usize = 256 * 1024;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/{id}/mezzanine.mp4", get(master_file))
}

#[derive(serde::Deserialize)]
struct UrlQuery {
    skid: Option<String>,
    signature: Option<String>,
    download: Option<String>,
}

async fn master_file(
    State(sim): State<Arc<Sim>>,
    method: Method,
    Path(id): Path<String>,
    Query(query): Query<UrlQuery>,
    headers: HeaderMap,
) -> Response {
    let route = "/{id}/mezzanine.mp4";
    let pace = Pace::from(&sim.switches());
    if !pace.first_byte.is_zero() {
        tokio::time::sleep(pace.first_byte).await;
    }
    let (skid, signature) = (
        query.skid.unwrap_or_default(),
        query.signature.unwrap_or_default(),
    );
    let authorized = sim.with_world(|w, now, sw| {
        let events = w.advance(now, sw);
        (
            w.authorize_download(&id, &skid, &signature, now, sw),
            events,
        )
    });
    let Some(served) = authorized else {
        sim.stats.record(method.as_str(), route, Some(&id), 403);
        return (
            StatusCode::FORBIDDEN,
            "403 Forbidden: this URL is invalid or has expired\n",
        )
            .into_response();
    };
    let length = served.length;
    // `If-Range` with a validator that is no longer current: the whole file (RFC 9110 13.1.5).
    let stale = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            served
                .validators
                .as_ref()
                .is_none_or(|now| v != now.etag && v != now.last_modified)
        });
    let ignore_range = sim.switches().master_ignore_range;
    let range = match headers
        .get(header::RANGE)
        .filter(|_| !stale && !ignore_range)
        .map(|v| parse_range(v.to_str().unwrap_or(""), length))
    {
        None => None,
        Some(Some(range)) => Some(range),
        Some(None) => {
            sim.stats.record(method.as_str(), route, Some(&id), 416);
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{length}")));
            return response;
        }
    };
    let (start, end) = range.unwrap_or((0, length));

    // A test can ask for the next downloads to fail, be cut short, or stall.
    let fault = if method == Method::GET {
        next_fault(&mut sim.switches.write().expect("switches lock"))
    } else {
        Fault::default()
    };
    if let Some(status) = fault.status {
        sim.stats
            .record(method.as_str(), route, Some(&id), status.as_u16());
        return (status, "mux-sim failed the download\n").into_response();
    }
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    sim.stats
        .record(method.as_str(), route, Some(&id), status.as_u16());

    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        stream_body(served.seed, served.size, start, end, fault, pace.rate)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if let Some(validators) = &served.validators {
        h.insert(header::ETAG, value(&validators.etag));
        h.insert(header::LAST_MODIFIED, value(&validators.last_modified));
    }
    if range.is_some() {
        h.insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {start}-{}/{length}", end.saturating_sub(1))),
        );
    }
    if let Some(name) = query.download.filter(|n| !n.contains('"')) {
        h.insert(
            header::CONTENT_DISPOSITION,
            value(&format!("attachment; filename=\"{name}\"")),
        );
    }
    response
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// How a CDN paces master downloads: a time to first byte, and a cap on each connection.
#[derive(Debug, Clone, Copy)]
struct Pace {
    first_byte: std::time::Duration,
    /// Bytes per second of one response (0: unlimited).
    rate: u64,
}

impl From<&super::Switches> for Pace {
    fn from(sw: &super::Switches) -> Self {
        Pace {
            first_byte: sw.download_first_byte,
            rate: sw.download_rate_per_connection,
        }
    }
}

/// When `n` more bytes of a body paced at `rate` bytes per second may leave, the previous ones
/// having been allowed at `ready`: never before `n / rate` after the later of `ready` and
/// `now`, so that no connection beats its cap, nor saves up time it was not read.
fn paced_until(ready: Instant, now: Instant, n: u64, rate: u64) -> Option<Instant> {
    (rate > 0).then(|| ready.max(now) + std::time::Duration::from_secs_f64(n as f64 / rate as f64))
}

/// What the switches ask of the next download.
#[derive(Debug, Default, Clone, Copy)]
struct Fault {
    /// Answer with this status instead.
    status: Option<StatusCode>,
    /// Cut the connection after this many bytes of the body.
    cut_after: Option<u64>,
    /// Send this many bytes of the body, then nothing, without closing.
    stall_after: Option<u64>,
}

/// Takes one fault from the switches' counters, errors first.
fn next_fault(sw: &mut super::Switches) -> Fault {
    let take = |count: &mut u32| (*count > 0).then(|| *count -= 1).is_some();
    if take(&mut sw.master_errors) {
        let status = StatusCode::from_u16(sw.master_error_status);
        return Fault {
            status: Some(status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
            ..Fault::default()
        };
    }
    if take(&mut sw.master_drops) {
        return Fault {
            cut_after: Some(sw.master_drop_after),
            ..Fault::default()
        };
    }
    if take(&mut sw.master_stalls) {
        return Fault {
            stall_after: Some(sw.master_stall_after),
            ..Fault::default()
        };
    }
    Fault::default()
}

/// Bytes `[start, end)` of the master (`seed`, `size`), generated chunk by chunk, each sent no
/// earlier than `rate` (bytes per second, 0: unlimited) allows; cut with a connection error, or
/// stalled, after the number of bytes the fault says.
fn stream_body(seed: u64, size: u64, start: u64, end: u64, fault: Fault, rate: u64) -> Body {
    let limit = fault.cut_after.or(fault.stall_after);
    let stop = limit.map(|n| (start + n).min(end)).unwrap_or(end);
    let (cut, stall) = (
        fault.cut_after.is_some() && stop < end,
        fault.stall_after.is_some() && stop < end,
    );
    // Paced in chunks of 10 ms of the rate at most, so the cap holds over short spans too.
    let chunk = match rate {
        0 => CHUNK,
        rate => (rate as usize / 100).clamp(4096, CHUNK),
    };
    let stream =
        futures::stream::unfold((start, Instant::now()), move |(offset, ready)| async move {
            if offset >= stop {
                if stall {
                    // The connection stays open and sends nothing more, until the client leaves.
                    futures::future::pending::<()>().await;
                }
                return cut.then(|| {
                    let err = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "mux-sim cut the download",
                    );
                    (Err(err), (u64::MAX, ready))
                });
            }
            let n = ((stop - offset) as usize).min(chunk);
            let mut buf = vec![0u8; n];
            content::fill(seed, size, offset, &mut buf);
            let ready = match paced_until(ready, Instant::now(), n as u64, rate) {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    at
                }
                None => ready,
            };
            Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                (offset + n as u64, ready),
            ))
        });
    Body::from_stream(stream)
}

/// One `bytes=` range as `[start, end)`; `None` when it cannot be satisfied.
fn parse_range(header: &str, length: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // Several ranges: not something a downloader needs.
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        (length.saturating_sub(suffix), length)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            length
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(length)
        };
        (start, end)
    };
    (start < end && start < length).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::{Instant, paced_until, parse_range};
    use std::time::Duration;

    #[test]
    fn a_paced_body_sends_no_byte_before_the_rate_allows_nor_saves_up_time() {
        let t0 = Instant::now();
        assert_eq!(paced_until(t0, t0, 1_000_000, 0), None);
        let second = Duration::from_secs(1);
        // 2.5 MB at 1 MB/s: 2.5 s after the previous bytes were allowed.
        assert_eq!(
            paced_until(t0, t0, 2_500_000, 1_000_000),
            Some(t0 + Duration::from_millis(2500))
        );
        // A client that read nothing for 10 s gets no burst for it: the time counts from now.
        let later = t0 + 10 * second;
        assert_eq!(
            paced_until(t0 + second, later, 1_000_000, 1_000_000),
            Some(later + second)
        );
    }

    #[test]
    fn ranges_parse_as_http_defines_them() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=950-5000", 1000), Some((950, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
