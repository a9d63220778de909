//! `make demo`: the operator's main job, end to end, on this machine, with nothing but this repo
//! (and what `make tools` builds into .tools/).
//!
//! It starts a real Kubernetes control plane (etcd + kube-apiserver, from `testenv`), mux-sim as
//! Mux (with the asset and the live stream that `examples/` name) and MinIO as S3; installs the
//! CRD; installs the operator with its Helm chart from the image `make image` built, on a real
//! node (containerd, a kubelet, the Job controller: `testenv::node`); applies two examples
//! unchanged, and shows them going Pending → Preparing → Ready with `kubectl get mexp`, their
//! Events and the URL Secret; archives a third with a copy Job whose pod the kubelet runs, shown
//! with `kubectl get pods`; then stops everything and says what to try next.
//!
//! Where no node can run (not root, no containerd; or `MMO_DEMO_PLAYED` set), it says so in one
//! line and falls back: the operator runs as a local process with the API access its pod would
//! have, and the demo plays the kubelet's part for the copy Job.
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

mod archive;
mod hold;
mod kubectl;
mod node;
mod operator;
mod watch;

use archive::{Parts, archive};
use hold::{hold_until_interrupted, next_steps};
use kubectl::{Kubectl, wait_for_crd};
use node::{Pods, chart_values, wait_for_job};
use operator::Operator;
use watch::{Watch, phase, reason, show_download};

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

    step(
        1,
        "a Kubernetes control plane (etcd and kube-apiserver) and a node",
    );
    let t = Instant::now();
    let cp = tokio::task::block_in_place(ControlPlane::start)?;
    println!(
        "      kube-apiserver {} at {} (ready in {:.1} s)\n      kubeconfig: {}",
        Tool::KubeApiserver.version(),
        cp.url(),
        t.elapsed().as_secs_f64(),
        cp.kubeconfig().display()
    );
    let client = cp.client()?;
    let kubectl = Kubectl::new(&cp);
    let t = Instant::now();
    // Stopped before the control plane it registered with (see the clean-up below).
    let pods = Pods::start(&cp)?;
    match &pods {
        Pods::Node(_) => {
            println!(
                "      node {} Ready in {:.1} s: containerd, a kubelet, the Job controller and the scheduler",
                testenv::node::NODE_NAME,
                t.elapsed().as_secs_f64()
            );
            kubectl.show(&["get", "nodes"])?;
        }
        Pods::Played(reason) => println!(
            "      NO NODE ({reason}): the operator runs as a local process and the demo plays the kubelet."
        ),
    }

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

    let mut operator = if pods.is_real() {
        step(
            5,
            "the operator, installed with its Helm chart from the image `make image` built",
        );
        let operator = Operator::install(&kubectl, &chart_values(&cp, sim.url())?)?;
        kubectl.show(&[
            "-n",
            operator::RELEASE_NAMESPACE,
            "get",
            "pods",
            "-o",
            "wide",
        ])?;
        operator
    } else {
        step(5, "the operator, as a local process");
        let operator = Operator::start(&bins.operator, &cp, sim.url())?;
        println!("      $ {}", operator.command_line);
        operator
    };
    println!("      {}", operator.describe());

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
    if pods.is_real() {
        kubectl.show(&["get", "pods", "--all-namespaces", "-o", "wide"])?;
    }
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
        pods: &pods,
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

    let real_node = pods.is_real();
    println!(
        "\nCleaning up: stopping the operator, {}MinIO, mux-sim and the control plane.",
        if real_node { "the node, " } else { "" }
    );
    drop(operator);
    drop(pods);
    drop(minio);
    drop(sim);
    drop(cp);
    next_steps(real_node);
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
