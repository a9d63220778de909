//! The typed Mux API client.
//!
//! [`MuxClients`] is built once per process and hands out a [`MuxClient`] per set of
//! credentials. Clients of the same token share one [`RateLimiter`] (Mux limits per
//! environment, and a token belongs to one environment) and every client shares one
//! HTTP connection pool. Retries happen here, so callers see one typed outcome per call.

//!
//! - `credentials`: the token; `exchange`: one request with its retries;
//! - `deletion`: deleting an asset (204, no body);
//! - `answers`: reading what Mux answered (errors, request IDs, `Retry-After`).

mod answers;
mod credentials;
mod deletion;
mod exchange;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use http::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::MuxError;
use crate::ratelimit::{Rate, RateLimiter};
use crate::types::{
    Asset, CreateAssetRequest, DataEnvelope, ListEnvelope, LiveStream, MasterAccess,
    UpdateMasterAccessRequest,
};

pub use credentials::Credentials;
pub use deletion::Deleted;
pub use exchange::full_jitter;

pub const DEFAULT_BASE_URL: &str = "https://api.mux.com";

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
    /// By [`Credentials::limiter_key`]: the whole token, not its ID.
    limiters: Arc<Mutex<HashMap<[u8; 32], Arc<RateLimiter>>>>,
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
            .entry(credentials.limiter_key())
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
        self.get("get_asset", &path).await
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
        self.get("get_live_stream", &path).await
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

    /// A `GET` of one object, which may always be retried.
    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
    ) -> Result<T, MuxError> {
        let no_body = None::<&()>;
        self.call(endpoint, Method::GET, path, &[], no_body, Idempotent::Yes)
            .await
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
    fn only_clients_of_the_same_whole_token_share_a_rate_limiter() {
        let clients = MuxClients::new(MuxConfig::default()).unwrap();
        let victim = clients.client(Credentials::new("TOKENID", "right"));
        let again = clients.client(Credentials::new("TOKENID", "right"));
        let impostor = clients.client(Credentials::new("TOKENID", "bogus"));
        assert!(Arc::ptr_eq(&victim.limiter, &again.limiter));
        assert!(
            !Arc::ptr_eq(&victim.limiter, &impostor.limiter),
            "a bogus secret with the victim's ID must not spend the victim's budget"
        );
        // Length-prefixed: ("ab", "c") and ("a", "bc") are two tokens.
        assert_ne!(
            Credentials::new("ab", "c").limiter_key(),
            Credentials::new("a", "bc").limiter_key()
        );
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(encode_segment("a/../b"), "a%2F..%2Fb");
    }
}
