//! Azure Blob Storage, emulated: Azurite's blob service (from npm, `make tools`) on a scratch
//! folder, with the well-known development account and a container.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use sha2::Sha256;

use super::error::{Error, Result};
use super::process::{Process, free_port, retry_on_port_conflict};
use super::ready::{block_on, http_client, send_expecting_success, until_ready};
use super::scratch::Scratch;
use super::tools::Tool;

/// Azurite's development account and its published key (not a secret: every Azurite has it).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The container created at start.
const CONTAINER: &str = "testenv";
/// The REST API version the container creation speaks.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite blob service.
#[derive(Debug)]
pub struct Azurite {
    // Fields drop in order: the server before its scratch folder.
    server: Process,
    endpoint: String,
    scratch: Scratch,
}

impl Azurite {
    /// Starts Azurite's blob service, with the container `testenv`; it stops when dropped.
    /// Blocks until it answers.
    pub fn start() -> Result<Self> {
        mux::tls::install_crypto_provider();
        let bin = Tool::Azurite.path()?;
        let mut scratch = Scratch::new("azurite")?;
        let (server, endpoint) = retry_on_port_conflict(|| start_server(&bin, &mut scratch))?;
        let azurite = Azurite {
            server,
            endpoint,
            scratch,
        };
        azurite.create_container(CONTAINER)?;
        Ok(azurite)
    }

    /// The account's blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1` (path style).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The container created at start, `testenv`.
    pub fn container(&self) -> &str {
        CONTAINER
    }

    /// The scratch folder (blobs, log); removed when Azurite stops.
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// The end of Azurite's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// An Azure Blob client for `container`, with the account key as a user configures it.
    pub fn store(&self, container: &str) -> Result<MicrosoftAzure> {
        mux::tls::install_crypto_provider();
        MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_endpoint(self.endpoint.clone())
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .map_err(|e| Error::Other(format!("building an Azure client for Azurite: {e}")))
    }

    /// Creates a container (`PUT ?restype=container`, signed with SharedKey): object_store has
    /// no "create container". Blocks.
    pub fn create_container(&self, container: &str) -> Result<()> {
        let url = format!("{}/{container}?restype=container", self.endpoint);
        let date = jiff::Timestamp::now()
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let authorization = shared_key(container, &date)?;
        block_on(async {
            let request = http_client()?
                .put(url.as_str())
                .header("x-ms-date", &date)
                .header("x-ms-version", API_VERSION)
                .header("content-length", "0")
                .header("authorization", authorization);
            send_expecting_success(
                request,
                &format!("creating container {container}: PUT {url}"),
            )
            .await
        })?
    }
}

/// The SharedKey `Authorization` of a bodiless `PUT /<account>/<container>?restype=container`:
/// the string to sign of Azure Storage's documented scheme (path style: the account is both the
/// signer and the first path segment).
fn shared_key(container: &str, date: &str) -> Result<String> {
    let headers = format!("x-ms-date:{date}\nx-ms-version:{API_VERSION}\n");
    let resource = format!("/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container");
    // VERB, then Content-Encoding .. Range (11 standard headers; Content-Length empty for 0).
    let to_sign = format!("PUT\n\n\n\n\n\n\n\n\n\n\n\n{headers}{resource}");
    let key = BASE64
        .decode(ACCOUNT_KEY)
        .map_err(|e| Error::Other(format!("Azurite's account key: {e}")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| Error::Other(format!("Azurite's account key: {e}")))?;
    mac.update(to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {ACCOUNT}:{signature}"))
}

/// Starts Azurite's blob service on a fresh port; returns it and the account's endpoint once it
/// answers HTTP (any status: an unsigned request is refused, which proves it is serving).
fn start_server(bin: &Path, scratch: &mut Scratch) -> Result<(Process, String)> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(bin);
    command
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .arg("--location")
        .arg(scratch.dir().join(format!("data-{port}")))
        .args([
            "--skipApiVersionCheck",
            "--loose",
            "--disableProductStyleUrl",
        ])
        // Only the well-known development account, whatever the caller's environment says.
        .env_remove("AZURITE_ACCOUNTS");
    let mut server = Process::spawn("azurite", command, scratch)?;
    block_on(async {
        let http = http_client()?;
        let (http, base) = (&http, base.as_str());
        until_ready(&mut server, move || async move {
            http.get(base)
                .send()
                .await
                .map(drop)
                .map_err(|e| format!("GET {base}: {e}"))
        })
        .await
    })??;
    Ok((server, format!("{base}/{ACCOUNT}")))
}
