//! One request to Mux as the caller sees it: through the rate limiter, retried while it may
//! be, observed for metrics, and turned into one typed outcome.

use std::time::Duration;

use http::{Method, StatusCode};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::answers::{
    client_error, describe_transport_error, error_message, rate_limit_remaining, request_id,
    retry_after,
};
use super::{Idempotent, MuxClient, RequestRecord};
use crate::error::MuxError;

impl MuxClient {
    /// Sends one request through the limiter, retrying what may be retried.
    pub(super) async fn exchange<T: DeserializeOwned>(
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
                    if let Some(remaining) = rate_limit_remaining(&response) {
                        bucket.mux_remaining(remaining);
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
                        // A 204 has no body: read as `null` (what `()` parses from).
                        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
                        match serde_json::from_slice::<T>(body) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_cap() {
        for attempt in 0..40 {
            let d = full_jitter(Duration::from_millis(100), Duration::from_secs(2), attempt);
            assert!(d <= Duration::from_secs(2));
        }
    }
}
