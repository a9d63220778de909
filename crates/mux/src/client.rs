//! The typed Mux API client.
//!
//! [`MuxClients`] is built once per process and hands out a [`MuxClient`] per set of
//! credentials. Clients of the same token share one [`RateLimiter`] (Mux limits per
//! environment, and a token belongs to one environment) and every client shares one
//! HTTP connection pool. Retries happen here, so callers see one typed outcome per call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use http::{Method, StatusCode};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;
use url::Url;

use super::error::MuxError;
use super::ratelimit::{Rate, RateLimiter};
use super::types::{
    Asset, CreateAssetRequest, DataEnvelope, ErrorEnvelope, ListEnvelope, LiveStream, MasterAccess,
    UpdateMasterAccessRequest,
};

pub const DEFAULT_BASE_URL: &str = "https://api.mux.com";

/// A Mux access token. Neither half ever shows in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    token_id: String,
    token_secret: SecretString,
}

impl Credentials {
    pub fn new(token_id: impl Into<String>, token_secret: impl Into<String>) -> Self {
        Self {
            token_id: token_id.into(),
            token_secret: SecretString::from(token_secret.into()),
        }
    }

    /// A short, stable, non-reversible tag for the token: lets logs and metrics tell two
    /// environments apart without naming the token.
    pub fn fingerprint(&self) -> String {
        let digest = sha2::Sha256::digest(self.token_id.as_bytes());
        hex::encode(&digest[..4])
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials(fingerprint {})", self.fingerprint())
    }
}

/// How the client talks to Mux.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    pub base_url: Url,
    /// POST to `/video/*`: Mux allows about 1 request/s.
    pub post_rate: Rate,
    /// Every other method: Mux allows about 5 requests/s.
    pub other_rate: Rate,
    /// Attempts after the first for 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Attempts after the first for 429s (the limiter slows down meanwhile).
    pub max_rate_limited_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub request_timeout: Duration,
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            base_url: Url::parse(DEFAULT_BASE_URL).expect("valid default URL"),
            post_rate: Rate::new(1.0, 1),
            other_rate: Rate::new(5.0, 5),
            max_retries: 4,
            max_rate_limited_retries: 20,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// What one HTTP exchange with Mux gave, for metrics.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// A stable name of the endpoint, e.g. `get_asset`.
    pub endpoint: &'static str,
    /// The HTTP status, or `None` when no response came (timeout, connection error).
    pub status: Option<u16>,
    pub elapsed: Duration,
}

pub type RequestObserver = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// The process-wide factory of Mux clients: one connection pool, one limiter per token.
#[derive(Clone)]
pub struct MuxClients {
    http: reqwest::Client,
    config: Arc<MuxConfig>,
    limiters: Arc<Mutex<HashMap<String, Arc<RateLimiter>>>>,
    observer: Option<RequestObserver>,
}

impl MuxClients {
    pub fn new(config: MuxConfig) -> Result<Self, MuxError> {
        crate::tls::install_crypto_provider();
        if !matches!(config.base_url.scheme(), "http" | "https") {
            return Err(MuxError::Config(format!(
                "the Mux base URL must be http(s), not {}",
                config.base_url
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("mux-master-operator/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| MuxError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config: Arc::new(config),
            limiters: Arc::default(),
            observer: None,
        })
    }

    /// Calls `observer` after every HTTP exchange (for metrics).
    pub fn with_observer(mut self, observer: RequestObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// The client for these credentials; clients of the same token share a rate limiter.
    pub fn client(&self, credentials: Credentials) -> MuxClient {
        let limiter = self
            .limiters
            .lock()
            .expect("limiter registry lock")
            .entry(credentials.token_id.clone())
            .or_insert_with(|| {
                Arc::new(RateLimiter::new(
                    self.config.post_rate,
                    self.config.other_rate,
                ))
            })
            .clone();
        MuxClient {
            http: self.http.clone(),
            config: self.config.clone(),
            credentials: Arc::new(credentials),
            limiter,
            observer: self.observer.clone(),
        }
    }
}

/// A Mux API client for one token. Cheap to clone.
#[derive(Clone)]
pub struct MuxClient {
    http: reqwest::Client,
    config: Arc<MuxConfig>,
    credentials: Arc<Credentials>,
    limiter: Arc<RateLimiter>,
    observer: Option<RequestObserver>,
}

impl fmt::Debug for MuxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxClient")
            .field("base_url", &self.config.base_url.as_str())
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Whether a request may be sent again when its fate is unknown (timeout, 5xx).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    /// Retried only when Mux surely did not act on it (429, connection refused).
    No,
}

impl MuxClient {
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// `GET /video/v1/assets/{id}`.
    pub async fn get_asset(&self, asset_id: &str) -> Result<Asset, MuxError> {
        let path = format!("/video/v1/assets/{}", encode_segment(asset_id));
        self.call(
            "get_asset",
            Method::GET,
            &path,
            &[],
            None::<&()>,
            Idempotent::Yes,
        )
        .await
    }

    /// `PUT /video/v1/assets/{id}/master-access`: the whole asset comes back.
    pub async fn update_master_access(
        &self,
        asset_id: &str,
        access: MasterAccess,
    ) -> Result<Asset, MuxError> {
        let path = format!(
            "/video/v1/assets/{}/master-access",
            encode_segment(asset_id)
        );
        let body = UpdateMasterAccessRequest {
            master_access: access,
        };
        self.call(
            "update_master_access",
            Method::PUT,
            &path,
            &[],
            Some(&body),
            Idempotent::Yes,
        )
        .await
    }

    /// `POST /video/v1/assets`.
    pub async fn create_asset(&self, request: &CreateAssetRequest) -> Result<Asset, MuxError> {
        self.call(
            "create_asset",
            Method::POST,
            "/video/v1/assets",
            &[],
            Some(request),
            Idempotent::No,
        )
        .await
    }

    /// `GET /video/v1/live-streams/{id}`.
    pub async fn get_live_stream(&self, live_stream_id: &str) -> Result<LiveStream, MuxError> {
        let path = format!("/video/v1/live-streams/{}", encode_segment(live_stream_id));
        self.call(
            "get_live_stream",
            Method::GET,
            &path,
            &[],
            None::<&()>,
            Idempotent::Yes,
        )
        .await
    }

    /// One page of `GET /video/v1/assets`.
    pub async fn list_assets_page(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ListEnvelope<Asset>, MuxError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_string()));
        }
        self.exchange(
            "list_assets",
            Method::GET,
            "/video/v1/assets",
            &query,
            None::<&()>,
            Idempotent::Yes,
        )
        .await
    }

    /// Every asset of the environment, page after page (cursor pagination), as a stream.
    pub fn list_assets(&self, page_size: u32) -> impl Stream<Item = Result<Asset, MuxError>> {
        enum Next {
            Start,
            Cursor(String),
            Done,
        }
        let client = self.clone();
        futures::stream::try_unfold(Next::Start, move |next| {
            let client = client.clone();
            async move {
                let cursor = match next {
                    Next::Done => return Ok(None),
                    Next::Start => None,
                    Next::Cursor(cursor) => Some(cursor),
                };
                let page = client
                    .list_assets_page(page_size, cursor.as_deref())
                    .await?;
                // An empty page ends the list even if a cursor came with it.
                let next = match page.next_cursor {
                    Some(cursor) if !cursor.is_empty() && !page.data.is_empty() => {
                        Next::Cursor(cursor)
                    }
                    _ => Next::Done,
                };
                Ok(Some((page.data, next)))
            }
        })
        .map_ok(|page| futures::stream::iter(page.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
        idempotent: Idempotent,
    ) -> Result<T, MuxError> {
        let envelope: DataEnvelope<T> = self
            .exchange(endpoint, method, path, query, body, idempotent)
            .await?;
        Ok(envelope.data)
    }

    /// Sends one request through the limiter, retrying what may be retried.
    async fn exchange<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
        idempotent: Idempotent,
    ) -> Result<T, MuxError> {
        let mut url = self.config.base_url.clone();
        url.set_path(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let bucket = self.limiter.bucket(&method);
        let mut transient_failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            bucket.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .basic_auth(
                    &self.credentials.token_id,
                    Some(self.credentials.token_secret.expose_secret()),
                )
                .header(http::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = std::time::Instant::now();
            let outcome = request.send().await;
            let status = outcome.as_ref().ok().map(|r| r.status().as_u16());
            self.observe(endpoint, status, started.elapsed());

            let failure = match outcome {
                Err(err) => {
                    // Connection refused: Mux never saw it, so even a POST may go again.
                    let unseen = err.is_connect();
                    Transient {
                        message: describe_transport_error(&err),
                        retry: idempotent == Idempotent::Yes || unseen,
                    }
                }
                Ok(response) => {
                    let status = response.status();
                    let request_id = request_id(&response);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let retry_after = retry_after(&response);
                        bucket.throttled(retry_after);
                        rate_limited += 1;
                        tracing::debug!(endpoint, rate_limited, ?retry_after, "Mux answered 429");
                        if rate_limited > self.config.max_rate_limited_retries {
                            return Err(MuxError::RateLimited {
                                attempts: rate_limited,
                                retry_after,
                            });
                        }
                        continue;
                    }
                    let bytes = match response.bytes().await {
                        Ok(bytes) => bytes,
                        Err(err) => {
                            let message = describe_transport_error(&err);
                            self.backoff_or_fail(
                                &mut transient_failures,
                                Transient {
                                    message,
                                    retry: idempotent == Idempotent::Yes,
                                },
                            )
                            .await?;
                            continue;
                        }
                    };
                    if status.is_success() {
                        match serde_json::from_slice::<T>(&bytes) {
                            Ok(value) => return Ok(value),
                            Err(err) if idempotent == Idempotent::Yes => Transient {
                                message: format!("malformed body ({err}) [request {request_id}]"),
                                retry: true,
                            },
                            Err(err) => {
                                return Err(MuxError::Decode {
                                    message: err.to_string(),
                                    request_id,
                                });
                            }
                        }
                    } else if status.is_server_error() {
                        Transient {
                            message: format!(
                                "HTTP {} {} [request {request_id}]",
                                status.as_u16(),
                                error_message(&bytes)
                            ),
                            retry: idempotent == Idempotent::Yes,
                        }
                    } else {
                        return Err(client_error(status, &bytes, request_id));
                    }
                }
            };
            self.backoff_or_fail(&mut transient_failures, failure)
                .await?;
        }
    }

    /// Sleeps before the next attempt, or gives up when the retries are spent.
    async fn backoff_or_fail(
        &self,
        failures: &mut u32,
        failure: Transient,
    ) -> Result<(), MuxError> {
        *failures += 1;
        if !failure.retry || *failures > self.config.max_retries {
            return Err(MuxError::Unavailable {
                message: failure.message,
                attempts: *failures,
            });
        }
        let delay = full_jitter(
            self.config.backoff_base,
            self.config.backoff_cap,
            *failures - 1,
        );
        tracing::debug!(failures, ?delay, message = %failure.message, "retrying a Mux request");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn observe(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
        if let Some(observer) = &self.observer {
            observer(&RequestRecord {
                endpoint,
                status,
                elapsed,
            });
        }
    }
}

struct Transient {
    message: String,
    retry: bool,
}

/// "Full jitter" exponential backoff: uniform in `[0, min(cap, base * 2^attempt)]`, which
/// spreads retrying callers out instead of synchronising them.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cap);
    let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

fn client_error(status: StatusCode, body: &[u8], request_id: String) -> MuxError {
    let message = error_message(body);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => MuxError::Credentials {
            status: status.as_u16(),
            message,
            request_id,
        },
        StatusCode::NOT_FOUND => MuxError::NotFound {
            message,
            request_id,
        },
        _ => MuxError::BadRequest {
            status: status.as_u16(),
            kind: serde_json::from_slice::<ErrorEnvelope>(body)
                .map(|e| e.error.kind)
                .unwrap_or_else(|_| "unknown".into()),
            message,
            request_id,
        },
    }
}

/// The messages of Mux's error body, or a bounded excerpt of whatever came instead.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) if !envelope.error.messages.is_empty() => envelope.error.messages.join("; "),
        Ok(envelope) => envelope.error.kind,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// `Retry-After` in seconds (Mux does not document it; honoured when present).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(http::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(300.0)))
}

/// reqwest's error text can carry the URL; ours never has secrets in it (auth is in a
/// header), but say what happened without it anyway.
fn describe_transport_error(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "response body interrupted"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// IDs go into paths: keep them to one segment whatever they hold.
fn encode_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_shows_neither_half() {
        let creds = Credentials::new("TOKENID123", "TOPSECRET");
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("TOKENID123") && !shown.contains("TOPSECRET"),
            "{shown}"
        );
    }

    #[test]
    fn full_jitter_stays_under_the_cap() {
        for attempt in 0..40 {
            let d = full_jitter(Duration::from_millis(100), Duration::from_secs(2), attempt);
            assert!(d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn client_errors_are_sorted_by_what_to_do() {
        use super::super::error::ErrorKind;
        let body = br#"{"error":{"type":"not_found","messages":["Asset not found"]}}"#;
        let kind = |s: u16| client_error(StatusCode::from_u16(s).unwrap(), body, "r".into()).kind();
        assert_eq!(kind(401), ErrorKind::Credentials);
        assert_eq!(kind(403), ErrorKind::Credentials);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(400), ErrorKind::BadRequest);
        assert_eq!(kind(422), ErrorKind::BadRequest);
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(encode_segment("a/../b"), "a%2F..%2Fb");
    }
}
