//! Google Cloud Storage, emulated: `gcs-emulator` (tools/gcs-emulator, fake-gcs-server's storage
//! under the XML API that object_store speaks) on a scratch folder, with a bucket.

use std::path::Path;
use std::process::Command;

use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};

use super::error::{Error, Result};
use super::process::{Process, free_port, retry_on_port_conflict};
use super::ready::{block_on, http_client, http_get_ok, send_expecting_success, until_ready};
use super::scratch::Scratch;
use super::tools::Tool;

/// The bucket created at start.
const BUCKET: &str = "testenv";

/// A running GCS emulator.
#[derive(Debug)]
pub struct GcsEmulator {
    // Fields drop in order: the server before its scratch folder.
    server: Process,
    endpoint: String,
    scratch: Scratch,
}

impl GcsEmulator {
    /// Starts an emulator of its own, with the bucket `testenv`; it stops when dropped. Blocks
    /// until it answers its health check.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts an emulator with extra flags, e.g. `-read-rate BYTES` to hold every download to
    /// that many bytes a second, as a slow link would.
    pub fn start_with(args: &[&str]) -> Result<Self> {
        mux::tls::install_crypto_provider();
        let bin = Tool::GcsEmulator.path()?;
        let mut scratch = Scratch::new("gcs")?;
        let (server, endpoint) = retry_on_port_conflict(|| start_server(&bin, &mut scratch, args))?;
        Ok(GcsEmulator {
            server,
            endpoint,
            scratch,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bucket created at start, `testenv`.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The scratch folder (objects, uploads, log); removed when the emulator stops.
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// The end of the emulator's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// The service-account key a client uses here, as object_store reads it
    /// (`google_service_account_key`): no OAuth, and the emulator as the base URL.
    pub fn service_account_key(&self) -> String {
        serde_json::json!({
            "disable_oauth": true,
            "client_email": "testenv@testenv.iam.gserviceaccount.com",
            "private_key": "",
            "private_key_id": "",
            "gcs_base_url": self.endpoint,
        })
        .to_string()
    }

    /// A GCS client for `bucket`.
    pub fn store(&self, bucket: &str) -> Result<GoogleCloudStorage> {
        mux::tls::install_crypto_provider();
        GoogleCloudStorageBuilder::new()
            .with_service_account_key(self.service_account_key())
            .with_bucket_name(bucket)
            .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
            .build()
            .map_err(|e| Error::Other(format!("building a GCS client for the emulator: {e}")))
    }

    /// Creates a bucket through the JSON API (`POST /storage/v1/b`). Blocks.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let url = format!("{}/storage/v1/b", self.endpoint);
        block_on(async {
            let request = http_client()?
                .post(url.as_str())
                .json(&serde_json::json!({ "name": bucket }));
            send_expecting_success(request, &format!("creating bucket {bucket}: POST {url}")).await
        })?
    }
}

/// Starts the emulator on a fresh port; returns it and its endpoint once it answers.
fn start_server(bin: &Path, scratch: &mut Scratch, args: &[&str]) -> Result<(Process, String)> {
    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(bin);
    command
        .arg("-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-root")
        .arg(scratch.dir().join(format!("data-{port}")))
        .args(["-bucket", BUCKET])
        .args(args);
    let mut server = Process::spawn("gcs-emulator", command, scratch)?;
    let ready = format!("{endpoint}/_internal/healthcheck");
    block_on(async {
        let http = http_client()?;
        let (http, ready) = (&http, ready.as_str());
        until_ready(&mut server, move || async move {
            http_get_ok(http, ready).await.map(drop)
        })
        .await
    })??;
    Ok((server, endpoint))
}
