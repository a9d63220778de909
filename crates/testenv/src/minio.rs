//! MinIO: a real S3 server on a scratch folder, with known credentials and a bucket.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};

use super::error::{Error, Result};
use super::process::{Process, free_port, retry_on_port_conflict};
use super::ready::{block_on, http_client, http_get_ok, send_expecting_success, until_ready};
use super::scratch::Scratch;
use super::tools::Tool;

/// The root user's access key.
const ACCESS_KEY: &str = "testenv-access";
/// The root user's secret key.
const SECRET_KEY: &str = "testenv-secret-key";
/// The bucket created at start.
const BUCKET: &str = "testenv";
/// The region MinIO answers for (its default).
const REGION: &str = "us-east-1";

/// A running MinIO server.
#[derive(Debug)]
pub struct Minio {
    // Fields drop in order: the server before its scratch folder.
    server: Process,
    endpoint: String,
    scratch: Scratch,
}

impl Minio {
    /// The MinIO server shared by every test of this process, started by the first caller.
    /// Tests that share it should use keys under a prefix of their own, or their own bucket
    /// ([`Minio::create_bucket`]).
    pub fn shared() -> Result<&'static Minio> {
        static SHARED: OnceLock<std::result::Result<Minio, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Minio::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| Error::Shared {
                component: "MinIO",
                message: message.clone(),
            })
    }

    /// Starts a MinIO server of its own, with the bucket `testenv`; it stops when dropped.
    /// Blocks until it is ready.
    pub fn start() -> Result<Self> {
        Self::start_with(Scratch::new("minio")?)
    }

    /// Like [`Minio::start`], its data under `base` (a benchmark puts it in memory, so that
    /// the disk's write speed is not what it measures).
    pub fn start_in(base: &Path) -> Result<Self> {
        Self::start_with(Scratch::new_in("minio", base)?)
    }

    fn start_with(mut scratch: Scratch) -> Result<Self> {
        mux::tls::install_crypto_provider();
        let bin = Tool::Minio.path()?;
        let (server, endpoint) = retry_on_port_conflict(|| start_server(&bin, &mut scratch))?;
        let minio = Minio {
            server,
            endpoint,
            scratch,
        };
        minio.create_bucket(BUCKET)?;
        Ok(minio)
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The root user's access key.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The root user's secret key.
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The bucket created at start, `testenv`.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The scratch folder (data, log); removed when the server stops.
    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// The end of MinIO's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }

    /// An S3 client for `bucket`.
    pub fn store(&self, bucket: &str) -> Result<AmazonS3> {
        mux::tls::install_crypto_provider();
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| Error::Other(format!("building an S3 client for MinIO: {e}")))
    }

    /// Creates a bucket through the S3 API (`PUT /<bucket>`, signed with SigV4). Blocks.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let url = format!("{}/{bucket}", self.endpoint);
        block_on(async {
            // object_store has no "create bucket", but it exports its SigV4 signer.
            let credential = AwsCredential {
                key_id: ACCESS_KEY.to_owned(),
                secret_key: SECRET_KEY.to_owned(),
                token: None,
            };
            let mut request = http::Request::put(url.as_str())
                .body(bytes::Bytes::new().into())
                .map_err(|e| Error::Other(format!("PUT {url}: {e}")))?;
            AwsAuthorizer::new(&credential, "s3", REGION)
                .try_authorize(&mut request, None)
                .map_err(|e| Error::Other(format!("signing PUT {url}: {e}")))?;
            let put = http_client()?
                .put(url.as_str())
                .headers(request.headers().clone());
            send_expecting_success(put, &format!("creating bucket {bucket}: PUT {url}")).await
        })?
    }
}

/// Starts MinIO on a fresh port; returns it and its endpoint once it reports ready.
fn start_server(bin: &Path, scratch: &mut Scratch) -> Result<(Process, String)> {
    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let data = scratch.dir().join(format!("data-{port}"));
    let mut command = Command::new(bin);
    command
        .arg("server")
        .arg(&data)
        .arg(format!("--address=127.0.0.1:{port}"))
        .env("MINIO_ROOT_USER", ACCESS_KEY)
        .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
        // No web console (it would need a port of its own), no update checks, and no refusal to
        // use a folder on the root disk (a check meant for production drives).
        .env("MINIO_BROWSER", "off")
        .env("MINIO_UPDATE", "off")
        .env("MINIO_CI_CD", "on")
        // MinIO keeps its config and temporary files under the data folder, but reads HOME for
        // its certificates folder: keep it in the scratch folder too.
        .env("HOME", scratch.dir());
    let mut server = Process::spawn("minio", command, scratch)?;
    // Not /minio/health/ready: under load it answers 200 while the object layer is still
    // starting, and the first bucket PUT then gets 503 XMinioServerNotInitialized. The cluster
    // check answers 200 only once the object layer is up (it has write quorum).
    let ready = format!("{endpoint}/minio/health/cluster");
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
