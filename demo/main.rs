//! `make demo`: the operator's main job, end to end, on this machine, with nothing but this repo
//! (and what `make tools` builds into .tools/).
//!
//! It starts a real Kubernetes control plane (etcd + kube-apiserver, from `testenv`), mux-sim as
//! Mux (with the asset and the live stream that `examples/` name) and MinIO as S3; installs the
//! CRD; runs the operator as a process, as it would run in its pod; applies two examples
//! unchanged, and shows them going Pending → Preparing → Ready with `kubectl get mexp`, their
//! Events and the URL Secret; then stops everything and says what to try next.
//!
//! Bounded: every wait has a deadline, and the whole run has one. Ctrl-C stops it cleanly, and
//! if the demo dies anyway, every process it started dies with it (testenv's watchdogs; the
//! operator by PR_SET_PDEATHSIG). `MMO_DEMO_HOLD=1` keeps everything running at the end, until
//! Ctrl-C, to try things by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, CustomResourceExt};
use mux_master_operator::resource::MasterExport;
use mux_sim::admin_client::SimAdmin;
use object_store::ObjectStore;
use serde_json::{Value, json};
use testenv::{ControlPlane, Minio, MuxSim, Tool};

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const NAMESPACE: &str = "media";
/// The whole demo, start to clean-up, takes far less; past this something is wrong.
const DEADLINE: Duration = Duration::from_secs(300);
/// How long the exports may take to become Ready (seconds of mux-sim delays, plus polling).
const READY_DEADLINE: Duration = Duration::from_secs(90);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::main]
async fn main() -> ExitCode {
    mux::tls::install_crypto_provider();
    let started = Instant::now();
    let hold = std::env::var_os("MMO_DEMO_HOLD").is_some();
    // Holding, the person decides when it ends (Ctrl-C ends the hold, then the demo cleans up).
    let deadline = if hold {
        Duration::from_secs(7 * 24 * 3600)
    } else {
        DEADLINE
    };
    let interrupted = async {
        tokio::signal::ctrl_c().await.ok();
        if hold {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(deadline, demo(hold)) => match outcome {
            Ok(result) => result,
            Err(_) => Err(format!("the demo did not finish within {deadline:?}").into()),
        },
        _ = interrupted => Err("interrupted".into()),
    };
    // Everything demo() started has been stopped by now: its values were dropped on the way out.
    match outcome {
        Ok(()) => {
            println!(
                "\nDone in {:.0} s; everything it started is stopped and its files removed.",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(hold: bool) -> Result<()> {
    println!("mux-master-operator demo: the operator's main job, end to end, on this machine.");
    let bins = Binaries::find()?;

    step(1, "a Kubernetes control plane: etcd and kube-apiserver");
    let t = Instant::now();
    let cp = tokio::task::block_in_place(ControlPlane::start)?;
    println!(
        "      kube-apiserver {} at {} (ready in {:.1} s)\n      kubeconfig: {}\n      \
         No kubelet and no nodes: pods never run here, so the operator runs as a local process\n      \
         with the API access its pod would have.",
        Tool::KubeApiserver.version(),
        cp.url(),
        t.elapsed().as_secs_f64(),
        cp.kubeconfig().display()
    );
    let client = cp.client()?;
    let kubectl = Kubectl::new(&cp);

    step(
        2,
        "mux-sim, the Mux emulator, with the asset and live stream the examples name",
    );
    let sim = tokio::task::block_in_place(|| {
        MuxSim::start(
            &bins.sim,
            &[
                "--asset-prepare-delay",
                "2s",
                "--master-prepare-delay",
                "3s",
            ],
        )
    })?;
    let admin = SimAdmin::new(sim.url());
    let asset_example = yaml(&example("asset.yaml"))?;
    let live_example = yaml(&example("live-stream.yaml"))?;
    let archive_example = yaml(&example("s3-archive.yaml"))?;
    let asset_id = str_at(&asset_example, "/spec/source/assetId")?;
    let stream_id = str_at(&live_example, "/spec/source/liveStreamId")?;
    let archived_id = str_at(&archive_example, "/spec/source/assetId")?;
    admin
        .seed_asset(json!({"id": asset_id, "size": 8 << 20, "max_resolution_tier": "1080p"}))
        .await?;
    admin
        .seed_asset(json!({"id": archived_id, "size": 8 << 20, "max_resolution_tier": "2160p"}))
        .await?;
    admin
        .seed_live_stream(json!({"id": stream_id, "asset_size": 4 << 20}))
        .await?;
    admin.start_live_stream(&stream_id).await?;
    println!(
        "      Mux API at {} (token mux-sim-token-id / mux-sim-token-secret)\n      \
         asset {asset_id}: ready, 8 MiB, 1080p; its master takes 3 s to prepare\n      \
         live stream {stream_id}: live now (broadcasting)\n      \
         asset {archived_id}: ready, 8 MiB, 2160p (for the archive)",
        sim.url(),
    );

    step(3, "MinIO, an S3 server, for archives");
    let minio = tokio::task::block_in_place(Minio::start)?;
    println!(
        "      S3 endpoint {} (bucket {}, access key {})",
        minio.endpoint(),
        minio.bucket(),
        minio.access_key()
    );

    step(4, "the MasterExport CRD");
    kubectl.show(&[
        "apply",
        "--server-side",
        "-f",
        &format!("{ROOT}/crds/masterexport.yaml"),
    ])?;
    wait_for_crd(&client).await?;

    step(5, "the operator");
    let mut operator = Operator::start(&bins.operator, &cp, sim.url())?;
    println!(
        "      $ {}\n      (pid {}, log: {})",
        operator.command_line,
        operator.child.id(),
        operator.log.display()
    );

    step(
        6,
        "the examples, unchanged: examples/asset.yaml and examples/live-stream.yaml",
    );
    kubectl.show(&["create", "namespace", NAMESPACE])?;
    println!("      (the Mux token, here mux-sim's, in the Secret the examples name:)");
    kubectl.show(&[
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "mux",
        "--from-literal=tokenId=mux-sim-token-id",
        "--from-literal=tokenSecret=mux-sim-token-secret",
    ])?;
    kubectl.show(&[
        "-n",
        NAMESPACE,
        "apply",
        "-f",
        &example("asset.yaml").display().to_string(),
        "-f",
        &example("live-stream.yaml").display().to_string(),
    ])?;

    let asset_name = str_at(&asset_example, "/metadata/name")?;
    let live_name = str_at(&live_example, "/metadata/name")?;
    println!("\n      Watching status.phase and the Ready condition's reason:");
    let api: Api<MasterExport> = Api::namespaced(client.clone(), NAMESPACE);
    let mut watch = Watch::new(api);
    watch
        .until(&[asset_name.as_str()], &mut operator, |o| {
            phase(o) == "Ready"
        })
        .await?;
    watch
        .until(&[live_name.as_str()], &mut operator, |o| {
            reason(o) == "WaitingForRecording"
        })
        .await?;
    println!(
        "      ... the live stream is still live: nothing is asked of Mux for it. Ending the broadcast:"
    );
    admin.end_live_stream(&stream_id).await?;
    watch
        .until(&[live_name.as_str()], &mut operator, |o| {
            phase(o) == "Ready"
        })
        .await?;

    println!();
    kubectl.show(&["-n", NAMESPACE, "get", "mexp", "-o", "wide"])?;
    println!();
    kubectl.show(&[
        "-n",
        NAMESPACE,
        "events",
        "--for",
        &format!("masterexport/{asset_name}"),
    ])?;
    println!();
    let secret_name = format!("{asset_name}-master");
    kubectl.show(&["-n", NAMESPACE, "get", "secret", &secret_name])?;
    show_download(&client, &secret_name).await?;

    step(
        7,
        "an archive: examples/s3-archive.yaml, copied into MinIO by a Job",
    );
    let parts = Parts {
        kubectl: &kubectl,
        client: &client,
        minio: &minio,
        admin: &admin,
        bins: &bins,
    };
    archive(&parts, &mut watch, &mut operator, &archive_example).await?;

    let calls: u64 = admin
        .stats()
        .await?
        .iter()
        .filter(|r| r.route.starts_with("/video/"))
        .map(|r| r.count)
        .sum();
    println!(
        "\nMux API calls the operator made for the three exports: {calls} (rate limited per token; a Ready \
         export costs none until its refresh time)."
    );

    if hold {
        hold_until_interrupted(&cp, &sim, &minio, &operator).await;
    }

    println!("\nCleaning up: stopping the operator, MinIO, mux-sim and the control plane.");
    drop(operator);
    drop(minio);
    drop(sim);
    drop(cp);
    next_steps();
    Ok(())
}

fn step(n: u32, what: &str) {
    println!("\n[{n}/7] {what}");
}

fn example(name: &str) -> PathBuf {
    Path::new(ROOT).join("examples").join(name)
}

fn yaml(path: &Path) -> Result<Value> {
    Ok(serde_yaml::from_str(
        &std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    )?)
}

fn str_at(value: &Value, pointer: &str) -> Result<String> {
    Ok(value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {pointer} in the example"))?
        .to_owned())
}

/// The operator and mux-sim binaries: `testenv::bins` finds them (the operator built next to
/// this example by `make demo`, mux-sim built on demand), or MMO_OPERATOR_BIN and MMO_SIM_BIN.
struct Binaries {
    operator: PathBuf,
    sim: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self> {
        Ok(Binaries {
            operator: testenv::bins::operator()?,
            sim: testenv::bins::mux_sim()?,
        })
    }
}

/// kubectl of the tested Kubernetes release, as `make tools` builds it, pointed at the local
/// control plane. Each command is printed as a person would type it, then its output.
struct Kubectl {
    path: Option<PathBuf>,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(cp: &ControlPlane) -> Self {
        let tools = std::env::var_os("MMO_TOOLS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(ROOT).join(".tools"));
        let path = tools
            .join(format!("kubectl-{}", Tool::KubeApiserver.version()))
            .join("kubectl");
        let path = path.is_file().then_some(path);
        if path.is_none() {
            println!("      (kubectl is not built: `make tools` builds it; showing less)");
        }
        Kubectl {
            path,
            kubeconfig: cp.kubeconfig().to_path_buf(),
        }
    }

    fn show(&self, args: &[&str]) -> Result<()> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                a.strip_prefix(ROOT)
                    .map_or(a.to_string(), |r| r[1..].to_owned())
            })
            .collect();
        println!("      $ kubectl {}", shown.join(" "));
        let Some(path) = &self.path else {
            return Ok(());
        };
        let out = Command::new(path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(ROOT)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        for line in text.lines() {
            println!("      {line}");
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("kubectl {} failed", shown.join(" ")).into())
        }
    }
}

async fn wait_for_crd(client: &Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = MasterExport::crd_name();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| "the CRD was not established within 30 s")??;
    Ok(())
}

/// The operator, as a child process with the admin's kubeconfig (in a cluster it would run as the
/// chart's ServiceAccount: tests/chart.rs proves that is enough).
struct Operator {
    child: Child,
    log: PathBuf,
    command_line: String,
    dir: tempfile::TempDir,
}

impl Operator {
    fn start(bin: &Path, cp: &ControlPlane, mux_url: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("mmo-demo-").tempdir()?;
        let log = dir.path().join("operator.log");
        let out = std::fs::File::create(&log)?;
        // Polling stands in for webhooks here, so a short poll keeps the demo brisk.
        let args = [
            "run",
            "--mux-base-url",
            mux_url,
            "--namespaces",
            NAMESPACE,
            "--metrics-addr",
            "127.0.0.1:0",
            "--poll-min",
            "500ms",
            "--poll-max",
            "2s",
        ];
        let mut command = Command::new(bin);
        command
            .args(args)
            .env("KUBECONFIG", cp.kubeconfig())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // The one spawner of testenv: the kernel kills the operator when the demo dies, however
        // it dies, so that no operator outlives it.
        let child = testenv::spawner::spawn(command)?;
        let shown = bin
            .strip_prefix(ROOT)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| bin.display().to_string());
        Ok(Operator {
            child,
            log,
            command_line: format!("KUBECONFIG=... {shown} {}", args.join(" ")),
            dir,
        })
    }

    /// The demo's scratch folder (the operator's log is in it); removed when the operator stops.
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The end of the operator's log, for a failure's message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!(
                "the operator exited ({status}); its log:\n{}",
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn phase(o: &MasterExport) -> String {
    o.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "-".into())
}

fn ready_condition(
    o: &MasterExport,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn reason(o: &MasterExport) -> String {
    ready_condition(o).map_or_else(|| "-".into(), |c| c.reason.clone())
}

/// Prints each change of phase or reason of the watched resources, as it happens.
struct Watch {
    api: Api<MasterExport>,
    started: Instant,
    seen: BTreeMap<String, (String, String)>,
}

impl Watch {
    fn new(api: Api<MasterExport>) -> Self {
        Watch {
            api,
            started: Instant::now(),
            seen: BTreeMap::new(),
        }
    }

    /// Polls every resource until those in `names` satisfy `done`, printing transitions.
    async fn until(
        &mut self,
        names: &[&str],
        operator: &mut Operator,
        done: impl Fn(&MasterExport) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            operator.check_alive()?;
            let list = self.api.list(&Default::default()).await?;
            let mut finished = true;
            for o in &list.items {
                let name = o.metadata.name.clone().unwrap_or_default();
                let now = (phase(o), reason(o));
                if self.seen.get(&name) != Some(&now) {
                    let message = ready_condition(o)
                        .map(|c| c.message.as_str())
                        .unwrap_or("created; the operator has not written a status yet");
                    println!(
                        "      +{:>4.1}s  {name:<20} {:<10} {:<20} {message}",
                        self.started.elapsed().as_secs_f64(),
                        now.0,
                        now.1
                    );
                    self.seen.insert(name.clone(), now);
                }
                if names.contains(&name.as_str()) && !done(o) {
                    finished = false;
                }
            }
            let listed = names.iter().all(|n| {
                list.items
                    .iter()
                    .any(|o| o.metadata.name.as_deref() == Some(*n))
            });
            if finished && listed {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{names:?} did not get there within {READY_DEADLINE:?}; the operator's log:\n{}",
                    operator.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Shows that the published URL downloads the master, without printing it: it is a bearer
/// credential until it expires.
async fn show_download(client: &Client, secret_name: &str) -> Result<()> {
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(secret_name)
        .await?;
    let url = secret
        .data
        .as_ref()
        .and_then(|d| d.get("url"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or("the URL Secret has no `url` key")?;
    let response = reqwest::Client::new().head(&url).send().await?;
    let length = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    println!(
        "      HEAD <the URL in Secret {secret_name}, key url>: {} ({length} bytes). Workloads mount \
         that Secret;\n      the URL itself is never logged or put in Events.",
        response.status()
    );
    Ok(())
}

/// The archive: examples/s3-archive.yaml with one change, its endpoint pointed at the local
/// MinIO. The operator publishes the URL, then creates a copy Job; with no kubelet here, the demo
/// plays its part (see `run_copy_job`); the operator reads the copier's report, checks it, marks
/// the resource Copied, and only then turns master access off (afterCopy.revokeAccess).
/// What the archive step uses of the running demo.
struct Parts<'a> {
    kubectl: &'a Kubectl,
    client: &'a Client,
    minio: &'a Minio,
    admin: &'a SimAdmin,
    bins: &'a Binaries,
}

async fn archive(
    parts: &Parts<'_>,
    watch: &mut Watch,
    operator: &mut Operator,
    example: &Value,
) -> Result<()> {
    let Parts {
        kubectl,
        client,
        minio,
        admin,
        bins,
    } = *parts;
    let url = str_at(example, "/spec/destination/url")?;
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or("the example's destination is not s3://bucket/key")?;
    tokio::task::block_in_place(|| minio.create_bucket(bucket))?;
    println!(
        "      (MinIO has a bucket `{bucket}` now; its credentials go in the Secret the example names:)"
    );
    kubectl.show(&[
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "archive",
        &format!("--from-literal=AWS_ACCESS_KEY_ID={}", minio.access_key()),
        &format!(
            "--from-literal=AWS_SECRET_ACCESS_KEY={}",
            minio.secret_key()
        ),
    ])?;
    let mut local = example.clone();
    local["spec"]["destination"]["endpoint"] = json!(minio.endpoint());
    let file = operator.dir().join("s3-archive.yaml");
    std::fs::write(&file, serde_yaml::to_string(&local)?)?;
    println!(
        "      (examples/s3-archive.yaml, with spec.destination.endpoint: {})",
        minio.endpoint()
    );
    kubectl.show(&["-n", NAMESPACE, "apply", "-f", &file.display().to_string()])?;

    let name = str_at(example, "/metadata/name")?;
    let api: Api<MasterExport> = Api::namespaced(client.clone(), NAMESPACE);
    watch
        .until(&[name.as_str()], operator, |o| phase(o) == "Copying")
        .await?;
    let job = api
        .get(&name)
        .await?
        .status
        .and_then(|s| s.copy)
        .and_then(|c| c.job)
        .ok_or("Copying, but no Job in status.copy")?;
    kubectl.show(&["-n", NAMESPACE, "get", "jobs"])?;
    println!(
        "      (no kubelet here: the demo runs the Job's container, `mux-master-operator copy`, as a\n      \
         local process with the environment its pod template gives, then records the Pod and the\n      \
         Job's status as the kubelet and the Job controller would)"
    );
    let copied = run_copy_job(client, &job, &bins.operator).await?;
    println!("      copy finished: {copied}");
    watch
        .until(&[name.as_str()], operator, |o| {
            phase(o) == "Copied" && reason(o) != "-"
        })
        .await?;
    println!();
    kubectl.show(&["-n", NAMESPACE, "get", "mexp", "-o", "wide"])?;
    let status = api.get(&name).await?.status.unwrap_or_default();
    if let Some(copy) = status.copy {
        println!(
            "      status.copy: object {}, {} bytes, sha256 {}",
            copy.object.as_deref().unwrap_or("-"),
            copy.size.map_or("-".into(), |s| s.to_string()),
            copy.sha256.as_deref().unwrap_or("-"),
        );
    }
    // mux-sim's content is deterministic: it knows the master's SHA-256 without storing it.
    let asset_id = str_at(example, "/spec/source/assetId")?;
    let inspected = admin.inspect(&asset_id).await?;
    let (seed, size) = (
        inspected["seed"].as_u64().ok_or("mux-sim gave no seed")?,
        inspected["size"].as_u64().ok_or("mux-sim gave no size")?,
    );
    let truth = mux_sim::content::sha256_hex(seed, size);
    let recorded = api
        .get(&name)
        .await?
        .status
        .and_then(|s| s.copy)
        .and_then(|c| c.sha256);
    if recorded.as_deref() != Some(truth.as_str()) {
        return Err(
            format!("the recorded SHA-256 {recorded:?} is not the master's {truth}").into(),
        );
    }
    println!("      (the master's own SHA-256, as mux-sim computes it: the same)");
    let store = minio.store(bucket)?;
    let objects: Vec<_> = store.list(None).try_collect().await?;
    println!(
        "      In MinIO, bucket {bucket} ({} object(s)):",
        objects.len()
    );
    for object in objects {
        println!("        {}  {} bytes", object.location, object.size);
    }
    let expected = object_store::path::Path::from(key);
    if !store
        .list(None)
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .any(|o| o.location == expected)
    {
        return Err(format!("{key} is not in bucket {bucket}").into());
    }
    // afterCopy.revokeAccess: the operator turns access off once the copy is verified; ask Mux.
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let access = admin.inspect(&asset_id).await?["asset"]["master_access"].clone();
        if access == "none" {
            break;
        }
        operator.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("master access of {asset_id} is still {access}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch
        .until(&[name.as_str()], operator, |o| {
            reason(o) != "RevokingAfterCopy"
        })
        .await?;
    println!(
        "      Mux now says master_access: none for {asset_id} (afterCopy.revokeAccess): turned off only\n      \
         after the copy's size and SHA-256 were verified."
    );
    Ok(())
}

/// What a kubelet and the Job controller would do for copy Job `name`: `testenv::kubelet`
/// runs its container's command as a local process with the pod template's environment and
/// records the Pod and the Job's status. Returns what the copy said.
async fn run_copy_job(client: &Client, name: &str, operator_bin: &Path) -> Result<String> {
    let run = testenv::kubelet::run_job(client, NAMESPACE, name, operator_bin).await?;
    if run.exit_code == 0 {
        Ok(format!("exit 0, in {:.1} s", run.elapsed.as_secs_f64()))
    } else {
        Err(format!("the copy exited with {}: {}", run.exit_code, run.stderr).into())
    }
}

/// MMO_DEMO_HOLD=1: leave everything running and say how to reach it, until Ctrl-C.
async fn hold_until_interrupted(
    cp: &ControlPlane,
    sim: &MuxSim,
    minio: &Minio,
    operator: &Operator,
) {
    println!(
        "\nMMO_DEMO_HOLD is set: everything keeps running until Ctrl-C. In another terminal:\n  \
         export KUBECONFIG={}\n  .tools/kubectl-{}/kubectl -n {NAMESPACE} get mexp -w\n  \
         .tools/kubectl-{}/kubectl -n {NAMESPACE} patch mexp keynote-2026 --type merge -p '{{\"spec\":{{\"access\":\"none\"}}}}'\n  \
         curl -s {}/_sim/stats     # the Mux calls made\n  tail -f {}\nMinIO: {}",
        cp.kubeconfig().display(),
        Tool::KubeApiserver.version(),
        Tool::KubeApiserver.version(),
        sim.url(),
        operator.log.display(),
        minio.endpoint(),
    );
    let _ = tokio::signal::ctrl_c().await;
}

fn next_steps() {
    println!(
        "
What ran where (all on this machine, all stopped now):
  - etcd and kube-apiserver: a real Kubernetes API, without nodes (src/testenv)
  - mux-sim: the Mux API, on the wire, with master URLs it serves itself (src/sim)
  - MinIO: an S3 server, where the archive landed
  - the operator: target/debug/mux-master-operator run, as its Deployment would run it

What to try next:
  - MMO_DEMO_HOLD=1 make demo     keep it all running and poke at it with kubectl
  - make test                     every test, against the same real components
  - helm install mux-master-operator charts/mux-master-operator -n mux-system --create-namespace
                                  on a real cluster (build the image from the Dockerfile); then
                                  kubectl -n media apply -k examples/ with your Mux token and IDs
  - deploy/argocd/                Argo CD health for MasterExports"
    );
}
