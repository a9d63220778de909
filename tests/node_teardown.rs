//! A node leaves the machine as it found it: no process, mount, cgroup, iptables chain or file
//! outside its folders, and the sysctls the kubelet set put back. Both when it is stopped and
//! when the test process dies without stopping it (then its watchdog tears it down).
//!
//! Each case runs the node in a child test process (one node per machine at a time, so not in a
//! process that may hold the shared one) with a pod running, and compares the machine before the
//! child with the machine after it. The child reports how much the running node had changed, so
//! that the comparison is known to look at something.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use testenv::ControlPlane;
use testenv::leftovers::processes_mentioning;
use testenv::node::{
    MachineState, Node, REQUIRE_ENV, pause_image_name, wait_for_default_service_account,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long the watchdog may take to clean up after a dead child.
const CLEANUP: Duration = Duration::from_secs(60);

/// Set in the child: `drop` or `die`.
const CHILD_ENV: &str = "MMO_NODE_TEARDOWN_CHILD";

#[test]
fn stopping_a_node_leaves_the_machine_as_it_was() -> TestResult {
    machine_is_restored_after("drop", 0)
}

#[test]
fn a_test_process_that_dies_with_a_node_leaves_the_machine_as_it_was() -> TestResult {
    machine_is_restored_after("die", 3)
}

/// The two cases compare the whole machine before and after their node: they run one at a time,
/// or one would see the other's node (the node lock lets the second start as the first stops).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn machine_is_restored_after(how: &str, exit_code: i32) -> TestResult {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(reason) = Node::unavailable() {
        if std::env::var_os(REQUIRE_ENV).is_some() {
            return Err(format!("{REQUIRE_ENV} is set, but no node can run here: {reason}").into());
        }
        eprintln!("node: not tested, no node can run here: {reason}");
        return Ok(());
    }
    // The previous test binary's node may still be tearing down (its watchdog runs after the
    // process has gone): capturing now would record that node's sysctls as the machine's own.
    Node::wait_until_none_runs()?;
    let before = MachineState::capture();
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "run_a_node_with_a_pod",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, how)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.split_once(name).map(|(_, v)| v.trim().to_owned()))
            .ok_or_else(|| format!("the child printed no {name:?}: {output:?}"))
    };
    let dir = PathBuf::from(field("node dir: ")?);
    let changed: usize = field("changes while running: ")?.parse()?;
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "the child was meant to exit({exit_code}): {output:?}"
    );
    assert!(
        changed > 0,
        "the running node changed nothing the comparison looks at: {stdout}"
    );

    // After a drop the machine is clean at once; after a death the watchdog cleans up.
    let deadline = Instant::now() + CLEANUP;
    while (dir.exists() || !processes_mentioning(&dir).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    // The watchdog holds the lock until its last step (the sysctls come before the folder, but
    // the lock is the signal that it is all done).
    Node::wait_until_none_runs()?;
    assert_eq!(
        MachineState::capture().differences_from(&before),
        Vec::<String>::new()
    );
    Ok(())
}

#[test]
#[ignore = "run by the two tests above, in a child process"]
fn run_a_node_with_a_pod() -> TestResult {
    let Some(how) = std::env::var_os(CHILD_ENV) else {
        return Ok(());
    };
    let before = MachineState::capture();
    let control_plane = ControlPlane::start()?;
    let node = Node::start(&control_plane)?;
    println!("node dir: {}", node.dir().display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_a_pod(&control_plane))?;
    let changes = MachineState::capture().differences_from(&before);
    println!("changes while running: {}", changes.len());
    for change in &changes {
        println!("  {change}");
    }
    if how == "die" {
        // Like a test binary ending with a shared node in a `static`: no destructor runs.
        std::process::exit(3);
    }
    drop(node);
    drop(control_plane);
    Ok(())
}

/// Runs a pod (the pause image: the one image every node has) until it is Running. Not on the
/// host network, so that containerd also makes (and teardown also removes) a network namespace.
async fn run_a_pod(control_plane: &ControlPlane) -> TestResult {
    let client = control_plane.client()?;
    let namespace = control_plane.fresh_namespace("teardown").await?;
    wait_for_default_service_account(&client, &namespace).await?;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sleeper"},
        "spec": {
            "containers": [{"name": "pause", "image": pause_image_name()?,
                            "imagePullPolicy": "Never"}],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let phase = pods.get("sleeper").await?.status.and_then(|s| s.phase);
        if phase.as_deref() == Some("Running") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the pod is {phase:?} after 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
