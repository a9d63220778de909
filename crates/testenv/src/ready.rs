//! Waiting until a component is ready, by asking it.
//!
//! Starting is synchronous (a shared instance starts inside `OnceLock::get_or_init`), but the
//! probes are async HTTP. They run on a private runtime on a thread of their own, which works
//! whether or not the caller is itself on a tokio runtime, and leaves nothing (no client, no
//! task) tied to a runtime that outlives the call.

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::process::Process;

/// How long a component may take to become ready. Generous: CI has two cores, and the Rust
/// tests compete with the component for them.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often to ask again. Only a polling interval: readiness is what the probe answers.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `future` to completion on a private current-thread runtime on its own thread.
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::io("building the test environment's private runtime"))?;
                Ok(runtime.block_on(future))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Asks `probe` until it returns `Ok`, the process exits, or [`READY_TIMEOUT`] passes. The
/// probe's `Err` says what it saw, for the timeout's message.
pub(crate) async fn until_ready<T, F, Fut>(process: &mut Process, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = process.exited() {
            return Err(process.exited_error(status));
        }
        let last = match tokio::time::timeout(POLL_INTERVAL * 20, probe()).await {
            Ok(Ok(ready)) => return Ok(ready),
            Ok(Err(answer)) => answer,
            Err(_) => "the probe itself timed out".to_owned(),
        };
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                component: process.name().to_owned(),
                timeout: READY_TIMEOUT,
                last,
                log_tail: process.log_tail(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A plain HTTP client for the probes (no proxy: everything is on loopback).
pub(crate) fn http_client() -> Result<reqwest::Client> {
    mux::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Other(format!("building an HTTP client: {e}")))
}

/// Probes `url` with a GET: `Ok` on a 2xx answer, else what came back.
pub(crate) async fn http_get_ok(
    client: &reqwest::Client,
    url: &str,
) -> std::result::Result<String, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

/// Sends `request`; an error naming `what` and the answer's status and body unless it is 2xx.
pub(crate) async fn send_expecting_success(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<()> {
    let response = request
        .send()
        .await
        .map_err(|e| Error::Other(format!("{what}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(Error::Other(format!("{what}: {status}: {body}")))
}
