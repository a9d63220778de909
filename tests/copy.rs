//! The copier, `mux-master-operator copy`, run as a real process against a real mux-sim and a
//! real MinIO: exit statuses, termination messages and peak memory are the real ones.

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mux::types::MasterAccess;
use mux::{Credentials, MuxClient, MuxClients, MuxConfig};
use mux_master_operator::copy::{Reason, Report};
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{Attribute, GetOptions, ObjectStore, ObjectStoreExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use testenv::{Minio, MuxSim};

const COPIER: &str = env!("CARGO_BIN_EXE_mux-master-operator");
const MIB: u64 = 1 << 20;
/// mux-sim's default access token.
const TOKEN_ID: &str = "mux-sim-token-id";
const TOKEN_SECRET: &str = "mux-sim-token-secret";
/// The route mux-sim records master downloads under.
const MASTER_ROUTE: &str = "/{id}/mezzanine.mp4";

// --- mux-sim and its masters ---------------------------------------------------------------

/// mux-sim with masters ready as soon as they are asked for.
fn start_sim(args: &[&str]) -> MuxSim {
    let mut all = vec!["--master-prepare-delay", "0s"];
    all.extend_from_slice(args);
    MuxSim::start(testenv::bins::mux_sim().expect("mux-sim's binary"), &all)
        .expect("mux-sim starts")
}

/// A master in mux-sim, with its signed URL.
struct Master {
    id: String,
    url: String,
    seed: u64,
    size: u64,
    admin: SimAdmin,
    client: MuxClient,
}

impl Master {
    /// Seeds a ready asset of `size` bytes with temporary access and fetches its URL through
    /// the Mux API.
    async fn new(sim: &MuxSim, size: u64) -> Master {
        let admin = SimAdmin::new(sim.url());
        let asset = admin
            .seed_asset(json!({"size": size, "master_access": "temporary"}))
            .await
            .expect("mux-sim seeds an asset");
        let client = MuxClients::new(MuxConfig {
            base_url: sim.url().parse().unwrap(),
            ..Default::default()
        })
        .unwrap()
        .client(Credentials::new(TOKEN_ID, TOKEN_SECRET));
        let url = eventually(Duration::from_secs(10), "the master URL", || async {
            let asset = client.get_asset(&asset.id).await.ok()?;
            asset.master_url().map(|url| url.expose().to_owned())
        })
        .await;
        let view = admin.inspect(&asset.id).await.unwrap();
        Master {
            seed: view["seed"].as_u64().expect("a seed"),
            id: asset.id,
            url,
            size,
            admin,
            client,
        }
    }

    /// The SHA-256 mux-sim's master has, computed without storing it.
    fn sha256(&self) -> String {
        content::sha256_hex(self.seed, self.size)
    }

    /// The URL's signature: it must never appear in the copier's output.
    fn signature(&self) -> String {
        let url = url::Url::parse(&self.url).unwrap();
        let signature = url
            .query_pairs()
            .find(|(k, _)| k == "signature")
            .map(|(_, v)| v.into_owned());
        signature.expect("a signed URL")
    }

    /// How many downloads of this master mux-sim answered with `status`.
    async fn downloads(&self, status: u16) -> u64 {
        self.admin
            .count("GET", MASTER_ROUTE, Some(&self.id), Some(status))
            .await
            .unwrap()
    }
}

/// Asks `probe` until it answers `Some`, at most `timeout`: waiting by asking, not sleeping.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// --- The copier as a process ---------------------------------------------------------------

/// A `mux-master-operator copy` command line and environment (cleared of everything else).
struct Copier {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Strings that must not appear in anything the copier prints.
    secrets: Vec<String>,
}

impl Copier {
    /// A copy of `master` (URL in `MUX_MASTER_URL`) to `destination`, with short settle checks.
    fn new(master: &Master, destination: &str) -> Copier {
        Copier {
            args: ["--destination", destination, "--settle", "200ms"]
                .map(String::from)
                .to_vec(),
            env: vec![
                ("MUX_MASTER_URL".into(), master.url.clone()),
                ("LOG_LEVEL".into(), "info".into()),
            ],
            secrets: vec![master.signature()],
        }
    }

    /// A copy to MinIO, credentials in the standard AWS variables.
    fn to_minio(master: &Master, minio: &Minio, key: &str) -> Copier {
        let destination = format!("s3://{}/{key}", minio.bucket());
        let mut copier = Copier::new(master, &destination).args(&["--endpoint", minio.endpoint()]);
        copier.env.extend([
            ("AWS_ACCESS_KEY_ID".into(), minio.access_key().into()),
            ("AWS_SECRET_ACCESS_KEY".into(), minio.secret_key().into()),
        ]);
        copier.secrets.push(minio.secret_key().into());
        copier
    }

    fn args(mut self, args: &[&str]) -> Copier {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn without_env(mut self, name: &str) -> Copier {
        self.env.retain(|(key, _)| key != name);
        self
    }

    /// Starts the process; its output goes to files in a folder of its own.
    fn spawn(&self) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let termination = dir.path().join("termination-log");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        // Reaped by wait4 in `Running::wait`, which also gives its peak memory.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(COPIER)
            .arg("copy")
            .args(&self.args)
            .arg("--termination-message-path")
            .arg(&termination)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("the copier starts");
        Running {
            pid: child.id() as libc::pid_t,
            dir,
            termination,
            stdout,
            stderr,
            secrets: self.secrets.clone(),
        }
    }

    /// Runs the copy to its end.
    async fn run(&self) -> Outcome {
        self.spawn().wait().await
    }
}

/// A copier process that has not been waited for yet.
struct Running {
    pid: libc::pid_t,
    dir: tempfile::TempDir,
    termination: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    secrets: Vec<String>,
}

impl Running {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the copier's log contains `text`.
    async fn until_logged(&self, text: &str) {
        let what = format!("the copier to log {text:?}");
        eventually(Duration::from_secs(60), &what, || async {
            self.stderr().contains(text).then_some(())
        })
        .await
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(self.pid, signal) }, 0);
    }

    /// Reaps the process with wait4(2), which also gives its peak resident memory.
    async fn wait(self) -> Outcome {
        let pid = self.pid;
        let (status, usage) = tokio::task::spawn_blocking(move || {
            let mut status = 0;
            // SAFETY: rusage is plain data, and wait4 fills it in.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: waits for our own child, writing into the two locals above.
            let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
            (status, usage)
        })
        .await
        .unwrap();
        let stdout = std::fs::read_to_string(&self.stdout).unwrap();
        let stderr = self.stderr();
        assert!(
            libc::WIFEXITED(status),
            "the copier died of signal {}; its log:\n{stderr}",
            libc::WTERMSIG(status)
        );
        let termination = std::fs::read_to_string(&self.termination).unwrap_or_default();
        for secret in &self.secrets {
            for (name, text) in [
                ("stdout", &stdout),
                ("stderr", &stderr),
                ("termination message", &termination),
            ] {
                assert!(
                    !text.contains(secret.as_str()),
                    "the copier's {name} shows a secret:\n{text}"
                );
            }
        }
        let report: Report = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not a report ({e}): {stdout:?}\n{stderr}"));
        let from_file: Report = serde_json::from_str(&termination)
            .unwrap_or_else(|e| panic!("the termination message is not a report ({e})"));
        assert_eq!(
            report, from_file,
            "stdout and the termination message differ"
        );
        drop(self.dir);
        Outcome {
            code: libc::WEXITSTATUS(status),
            report,
            stderr,
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        }
    }
}

/// How a copier process ended.
struct Outcome {
    code: i32,
    report: Report,
    stderr: String,
    peak_rss_bytes: u64,
}

impl Outcome {
    /// Asserts the reason, and that the exit status is that reason's.
    fn expect(&self, reason: Reason) -> &Self {
        assert_eq!(
            (self.report.reason, self.code),
            (reason, i32::from(reason.exit_code())),
            "the copier's report: {:?}; its log:\n{}",
            self.report,
            self.stderr
        );
        self
    }
}

// --- MinIO ---------------------------------------------------------------------------------

fn minio() -> &'static Minio {
    Minio::shared().expect("MinIO starts (run `make tools` first)")
}

fn store(minio: &Minio) -> AmazonS3 {
    minio.store(minio.bucket()).unwrap()
}

/// The object's size and SHA-256, read back from the store.
async fn object_sha256(store: &AmazonS3, key: &str) -> (u64, String) {
    let mut stream = store.get(&Path::from(key)).await.unwrap().into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (size, hex::encode(hasher.finalize()))
}

/// The object's `sha256` and `size` metadata (`x-amz-meta-*`), or `None` if there is none.
async fn object_metadata(store: &AmazonS3, key: &str) -> Option<(String, String)> {
    let head = GetOptions {
        head: true,
        ..Default::default()
    };
    let result = store.get_opts(&Path::from(key), head).await.ok()?;
    let meta = |name: &'static str| {
        result
            .attributes
            .get(&Attribute::Metadata(name.into()))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    Some((meta("sha256"), meta("size")))
}

async fn exists(store: &AmazonS3, key: &str) -> bool {
    match store.head(&Path::from(key)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("HEAD {key}: {e}"),
    }
}

/// The multipart uploads in progress on `key` (S3 ListMultipartUploads, signed by
/// object_store's signer; MinIO lists the uploads of exactly the key given as prefix).
async fn uploads_in_progress(store: &AmazonS3, key: &str) -> usize {
    let options = SignedUrlOptions::default().with_query([("uploads", ""), ("prefix", key)]);
    let url = store
        .signed_url_opts(
            http::Method::GET,
            &Path::default(),
            Duration::from_secs(60),
            &options,
        )
        .await
        .unwrap();
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.text().await.unwrap();
    body.matches("<UploadId>").count()
}

/// Asserts that neither the object, nor its staging object, nor an upload of either is left.
async fn assert_nothing_left(store: &AmazonS3, key: &str) {
    let staging = format!("{key}.mmo-partial");
    assert!(!exists(store, key).await, "{key} was left behind");
    assert!(!exists(store, &staging).await, "{staging} was left behind");
    assert_eq!(uploads_in_progress(store, key).await, 0, "uploads on {key}");
    assert_eq!(
        uploads_in_progress(store, &staging).await,
        0,
        "uploads on {staging}"
    );
}

// --- The tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_1gib_master_is_copied_with_the_right_sha256_in_under_64_mib_of_memory() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 1024 * MIB).await;
    let (seed, size) = (master.seed, master.size);
    let expected = tokio::task::spawn_blocking(move || content::sha256_hex(seed, size));
    let minio = minio();
    let key = format!("copy/1gib/{}.mp4", master.id);

    let started = Instant::now();
    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    let elapsed = started.elapsed();
    outcome.expect(Reason::Copied);
    let expected = expected.await.unwrap();

    let report = &outcome.report;
    assert_eq!(report.size, Some(1024 * MIB));
    assert_eq!(report.sha256.as_deref(), Some(expected.as_str()));
    let store = store(minio);
    assert_eq!(
        object_metadata(&store, &key).await,
        Some((expected.clone(), (1024 * MIB).to_string()))
    );
    assert_eq!(object_sha256(&store, &key).await, (1024 * MIB, expected));
    eprintln!(
        "1 GiB copied in {:.1}s ({:.1} MB/s), peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        (1024 * MIB) as f64 / elapsed.as_secs_f64() / 1e6,
        outcome.peak_rss_bytes as f64 / MIB as f64
    );
    assert!(
        outcome.peak_rss_bytes < 64 * MIB,
        "peak RSS {} bytes",
        outcome.peak_rss_bytes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_midway_resumes_with_range_and_the_object_is_exact() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    master
        .admin
        .configure(json!({"master_drops": 2, "master_drop_after": 10 * MIB}))
        .await
        .unwrap();
    let minio = minio();
    let key = format!("copy/dropped/{}.mp4", master.id);

    // Small server-side copy ranges, so that publishing takes several UploadPartCopy parts.
    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--retry-delay", "50ms", "--copy-part-size", "16MiB"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    assert_eq!(outcome.report.resumes, 2, "{}", outcome.stderr);
    // The first request and the two resumes were all range requests (206).
    assert!(master.downloads(206).await >= 3);
    assert_eq!(master.downloads(200).await, 0);
    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    let store = store(minio);
    assert_eq!(object_sha256(&store, &key).await, (48 * MIB, expected));
    assert!(!exists(&store, &format!("{key}.mmo-partial")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_url_ends_with_its_own_exit_status_and_leaves_no_object() {
    let sim = start_sim(&["--url-lifetime", "2s"]);
    let master = Master::new(&sim, 8 * MIB).await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(10), "the URL to expire", || async {
        let response = http.head(&master.url).send().await.ok()?;
        (response.status() == 403).then_some(())
    })
    .await;
    let minio = minio();
    let key = format!("copy/expired/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    outcome.expect(Reason::UrlExpired);
    assert_eq!(outcome.code, 3);

    assert_nothing_left(&store(minio), &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_revoked_mid_copy_ends_as_expired_with_no_object_and_no_upload() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    master
        .admin
        .configure(json!({"master_drops": 1, "master_drop_after": 20 * MIB}))
        .await
        .unwrap();
    let minio = minio();
    let key = format!("copy/revoked/{}.mp4", master.id);

    let running = Copier::to_minio(&master, minio, &key)
        .args(&["--retry-delay", "3s"])
        .spawn();
    // The download was cut after 20 MiB (two parts uploaded); while the copier waits to
    // resume, access is turned off.
    running.until_logged("resuming in").await;
    master
        .client
        .update_master_access(&master.id, MasterAccess::None)
        .await
        .unwrap();
    let outcome = running.wait().await;
    outcome.expect(Reason::UrlExpired);

    assert_nothing_left(&store(minio), &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_copy_and_cleans_up() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    master
        .admin
        .configure(json!({"master_drops": 1, "master_drop_after": 20 * MIB}))
        .await
        .unwrap();
    let minio = minio();
    let key = format!("copy/sigterm/{}.mp4", master.id);

    let running = Copier::to_minio(&master, minio, &key)
        .args(&["--retry-delay", "20s"])
        .spawn();
    running.until_logged("resuming in").await;
    running.signal(libc::SIGTERM);
    let outcome = running.wait().await;
    outcome.expect(Reason::Interrupted);

    assert_nothing_left(&store(minio), &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_left_by_a_killed_run_are_aborted_by_the_next_run() {
    use object_store::multipart::MultipartStore;
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/leftovers/{}.mp4", master.id);
    // What a SIGKILL leaves: an upload of the staging object, and one of the final object.
    for name in [format!("{key}.mmo-partial"), key.clone()] {
        store.create_multipart(&Path::from(name)).await.unwrap();
    }
    let staging = format!("{key}.mmo-partial");
    assert_eq!(uploads_in_progress(&store, &key).await, 1);
    assert_eq!(uploads_in_progress(&store, &staging).await, 1);

    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    outcome.expect(Reason::Copied);

    assert_eq!(uploads_in_progress(&store, &key).await, 0);
    assert_eq!(uploads_in_progress(&store, &staging).await, 0);
    assert_eq!(
        object_sha256(&store, &key).await,
        (8 * MIB, master.sha256())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_without_progress_are_retried_a_bounded_number_of_times() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    // Every download is cut before its first byte.
    master
        .admin
        .configure(json!({"master_drops": 1000, "master_drop_after": 0}))
        .await
        .unwrap();
    let minio = minio();
    let key = format!("copy/exhausted/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--max-retries", "2", "--retry-delay", "10ms"])
        .run()
        .await;
    outcome.expect(Reason::RetriesExhausted);

    // The first attempt and two retries.
    assert_eq!(master.downloads(206).await, 3);
    assert_nothing_left(&store(minio), &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_growing_master_is_not_archived_truncated() {
    let sim = start_sim(&["--growth", "5s", "--growth-initial-fraction", "0.9"]);
    let master = Master::new(&sim, 32 * MIB).await;
    let view = master.admin.inspect(&master.id).await.unwrap();
    let early_length = view["current_length"].as_u64().unwrap();
    assert!(
        early_length < master.size,
        "the master should still be growing: {view}"
    );
    let minio = minio();
    let key = format!("copy/growing/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    outcome.expect(Reason::Copied);

    assert!(outcome.stderr.contains("grew past"), "{}", outcome.stderr);
    let expected = master.sha256();
    assert_eq!(outcome.report.size, Some(32 * MIB));
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        object_sha256(&store(minio), &key).await,
        (32 * MIB, expected)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_skips_without_copying_again() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 16 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/second-run/{}.mp4", master.id);
    let copier = Copier::to_minio(&master, minio, &key);

    let first = copier.run().await;
    first.expect(Reason::Copied);
    let written = store.head(&Path::from(key.as_str())).await.unwrap();

    // The source's settled length equals the recorded object's: skipped.
    let second = copier.run().await;
    second.expect(Reason::Skipped);
    assert_eq!(second.report.sha256, first.report.sha256);
    assert_eq!(second.report.size, Some(16 * MIB));
    let after = store.head(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(
        (after.e_tag, after.last_modified),
        (written.e_tag.clone(), written.last_modified)
    );

    // With the digest of the previous copy, the source is not even asked.
    let downloads = master.downloads(206).await;
    let sha = first.report.sha256.clone().unwrap();
    let third = Copier::to_minio(&master, minio, &key)
        .args(&["--expected-sha256", &sha])
        .run()
        .await;
    third.expect(Reason::Skipped);
    assert_eq!(master.downloads(206).await, downloads);
    let after = store.head(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(after.e_tag, written.e_tag);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_existing_object_is_not_overwritten_without_the_flag() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/different/{}.mp4", master.id);
    store
        .put(&Path::from(key.as_str()), "someone else's file".into())
        .await
        .unwrap();

    let refused = Copier::to_minio(&master, minio, &key).run().await;
    refused.expect(Reason::DestinationExists);
    assert_eq!(refused.code, 4);
    let kept = store.get(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(&kept.bytes().await.unwrap()[..], b"someone else's file");
    assert_eq!(master.downloads(206).await, 0, "nothing was downloaded");

    let replaced = Copier::to_minio(&master, minio, &key)
        .args(&["--overwrite"])
        .run()
        .await;
    replaced.expect(Reason::Copied);
    let expected = master.sha256();
    assert_eq!(object_sha256(&store, &key).await, (8 * MIB, expected));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_path_destination_works() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 24 * MIB).await;
    let volume = tempfile::tempdir().unwrap();
    let file = volume.path().join("masters/keynote/master.mp4");
    let destination = url::Url::from_file_path(&file).unwrap().to_string();

    let outcome = Copier::new(&master, &destination).run().await;
    outcome.expect(Reason::Copied);

    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(file_sha256(&file), (24 * MIB, expected.clone()));
    assert_eq!(
        std::fs::read_to_string(file.with_extension("mp4.sha256")).unwrap(),
        format!("{expected}  master.mp4\n")
    );
    let mut names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["master.mp4", "master.mp4.sha256"]);

    let again = Copier::new(&master, &destination).run().await;
    again.expect(Reason::Skipped);
    assert_eq!(again.report.sha256.as_deref(), Some(expected.as_str()));
}

/// What a Job's pod template gives: flags as `MMO_*` variables, the URL and the storage
/// credentials as files of mounted Secrets, nothing on the command line.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_environment_with_secret_files_works_and_the_streamed_publication_records_metadata() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 12 * MIB).await;
    let minio = minio();
    let key = format!("copy/job-env/{}.mp4", master.id);
    let secrets = tempfile::tempdir().unwrap();
    let url_file = secrets.path().join("url");
    std::fs::write(&url_file, format!("{}\n", master.url)).unwrap();
    let credentials = secrets.path().join("storage");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("AWS_ACCESS_KEY_ID"), minio.access_key()).unwrap();
    std::fs::write(
        credentials.join("AWS_SECRET_ACCESS_KEY"),
        minio.secret_key(),
    )
    .unwrap();
    let env = [
        ("MMO_DESTINATION", format!("s3://{}/{key}", minio.bucket())),
        ("MMO_ENDPOINT", minio.endpoint().to_owned()),
        ("MMO_SOURCE_URL_FILE", url_file.display().to_string()),
        (
            "MMO_STORAGE_CREDENTIALS_DIR",
            credentials.display().to_string(),
        ),
        ("MMO_SETTLE", "200ms".to_owned()),
        // Publish by streaming the staging object back, as on GCS and Azure.
        ("MMO_FINALIZE", "restream".to_owned()),
    ];
    let copier = Copier {
        args: Vec::new(),
        env: env.map(|(k, v)| (k.to_owned(), v)).to_vec(),
        secrets: vec![master.signature(), minio.secret_key().to_owned()],
    };

    let outcome = copier.run().await;
    outcome.expect(Reason::Copied);

    let expected = master.sha256();
    let store = store(minio);
    assert_eq!(
        object_metadata(&store, &key).await,
        Some((expected.clone(), (12 * MIB).to_string()))
    );
    assert_eq!(object_sha256(&store, &key).await, (12 * MIB, expected));
    assert!(!exists(&store, &format!("{key}.mmo-partial")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_has_its_own_exit_status() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, MIB).await;
    let outcome = Copier::new(&master, "ftp://archive/master.mp4").run().await;
    outcome.expect(Reason::BadInput);
    let outcome = Copier::new(&master, "s3://bucket/key")
        .without_env("MUX_MASTER_URL")
        .run()
        .await;
    outcome.expect(Reason::BadInput);
    assert!(
        outcome.report.message.unwrap().contains("MUX_MASTER_URL"),
        "the message says where the URL is expected"
    );
}

/// A local file's size and SHA-256.
fn file_sha256(path: &FsPath) -> (u64, String) {
    let mut file = File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).unwrap();
    (size, hex::encode(hasher.finalize()))
}
