//! `make bench` (`cargo bench --bench copy`): the copier's throughput and peak memory next to
//! `curl` downloading the same URL to /dev/null and `rclone copyurl` (Debian's rclone) copying it
//! into the same MinIO, in one run; then a 4 GiB master, which must stay under 64 MiB.
//!
//! Everything is real: mux-sim and MinIO as processes (release builds), each tool as a child
//! process whose peak resident memory comes from wait4(2). Throughput is the master's size over
//! the process's wall time, start to exit (for the copier that includes its verification and
//! the publication of the object with its metadata).
//!
//! Knobs: `MMO_BENCH_SIZE` (default 1GiB), `MMO_BENCH_BIG_SIZE` (default 4GiB, `0` skips it).
//! Under `cargo test --all-targets` (no `--bench` argument) it makes a 16 MiB smoke run instead.
//! rclone is installed with `apt-get install -y rclone` when it is missing and the bench runs
//! as root; otherwise its row is skipped with a message.

mod clouds;

use std::fs::File;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use mux_master_operator::copy::Report;
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use testenv::{Minio, MuxSim};

use clouds::{Cloud, cloud_destination};

const COPIER: &str = env!("CARGO_BIN_EXE_mux-master-operator");
const MIB: u64 = 1 << 20;
const MEMORY_BOUND: u64 = 64 * MIB;

fn main() -> ExitCode {
    mux::tls::install_crypto_provider();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it:
    // then a quick smoke run (16 MiB, no 4 GiB master, rclone only if already installed)
    // checks that the benchmark still works without costing a test run a minute.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let (size, big) = if smoke {
        println!("(smoke run under cargo test: `make bench` runs the real one)");
        (16 * MIB, 0)
    } else {
        (
            size_from_env("MMO_BENCH_SIZE", 1024 * MIB),
            size_from_env("MMO_BENCH_BIG_SIZE", 4096 * MIB),
        )
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let sim = MuxSim::start(
        testenv::bins::mux_sim().expect("mux-sim's binary"),
        &["--master-prepare-delay", "0s"],
    )
    .expect("mux-sim starts");
    let minio = Minio::start().expect("MinIO starts (run `make tools` first)");
    let store = minio.store(minio.bucket()).unwrap();

    println!(
        "copy benchmark: a {} master from mux-sim, MinIO as the object store",
        human(size)
    );
    if !smoke {
        println!(
            "reproduce with: make bench   (or: MMO_BENCH_SIZE={}MiB MMO_BENCH_BIG_SIZE={}MiB \
             cargo bench --bench copy)",
            size / MIB,
            big / MIB
        );
    }
    println!();

    let admin = SimAdmin::new(sim.url());
    let master = runtime
        .block_on(admin.ready_master(size, Duration::from_secs(10)))
        .expect("mux-sim seeds a ready master");
    let expected = content::sha256_hex(master.seed, size);
    let mut rows = Vec::new();

    // curl: the download alone, the floor any copy stands on.
    let curl = run(Command::new("curl")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--output",
            "/dev/null",
        ])
        .arg(&master.url));
    match curl {
        Ok(run) => rows.push(Row::new("curl → /dev/null", "download only", size, run)),
        Err(e) => println!("curl: skipped ({e})"),
    }

    // Our copier: download, SHA-256, multipart upload, verify, publish with metadata.
    let key = format!("bench/{}-copier.mp4", master.id);
    let copier =
        run(copier_command(&minio, &master.url, &in_minio(&minio, &key))
            .args(["--settle-checks", "1"]));
    let mut notes = Vec::new();
    match copier {
        Ok(run) => {
            check_report(&run, size, &expected);
            notes.extend(summary(&run));
            rows.push(Row::new(
                "mux-master-operator copy",
                "→ MinIO, verified",
                size,
                run,
            ));
        }
        Err(e) => panic!("the copier did not run: {e}"),
    }
    runtime.block_on(remove(&store, &key));

    // The copier into a local folder: its own pipeline, without MinIO in the way.
    let volume = tempfile::tempdir().unwrap();
    let file = volume.path().join("master.mp4");
    let destination = format!("file://{}", file.display());
    match run(copier_command(&minio, &master.url, &destination).args(["--settle-checks", "1"])) {
        Ok(run) => {
            check_report(&run, size, &expected);
            rows.push(Row::new(
                "mux-master-operator copy",
                "→ file://, verified",
                size,
                run,
            ));
        }
        Err(e) => panic!("the copier did not run: {e}"),
    }
    drop(volume);

    // The copier into the GCS emulator and into Azurite: so a regression of gs:// or az:// shows.
    for (what, cloud) in [
        (
            "→ GCS emu, verified",
            cloud_destination(Cloud::Gcs, &master.id),
        ),
        (
            "→ Azurite, verified",
            cloud_destination(Cloud::Azure, &master.id),
        ),
    ] {
        let cloud = match cloud {
            Ok(cloud) => cloud,
            Err(e) => {
                println!("{what}: skipped ({e})");
                continue;
            }
        };
        let mut command = copier_command(&minio, &master.url, &cloud.url);
        command
            .args(["--settle-checks", "1"])
            .envs(cloud.env.iter().cloned());
        match run(&mut command) {
            Ok(run) => {
                check_report(&run, size, &expected);
                rows.push(Row::new("mux-master-operator copy", what, size, run));
            }
            Err(e) => panic!("the copier did not run: {e}"),
        }
    }

    // rclone copyurl: download and multipart upload into the same MinIO.
    match rclone(!smoke) {
        Ok(rclone) => {
            let key = format!("bench/{}-rclone.mp4", master.id);
            let home = tempfile::tempdir().unwrap();
            let mut command = Command::new(rclone);
            // A clean environment: no AWS_* variable of the caller's (AWS_CA_BUNDLE makes this
            // rclone refuse to start), no rclone.conf; the remote is defined by variables.
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", home.path())
                .args([
                    "copyurl",
                    &master.url,
                    &format!("bench:{}/{key}", minio.bucket()),
                ])
                .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
                .env("RCLONE_CONFIG_BENCH_PROVIDER", "Minio")
                .env("RCLONE_CONFIG_BENCH_ENDPOINT", minio.endpoint())
                .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", minio.access_key())
                .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", minio.secret_key())
                .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1");
            match run(&mut command) {
                Ok(run) => rows.push(Row::new("rclone copyurl", "→ MinIO", size, run)),
                Err(e) => println!("rclone: failed ({e})"),
            }
            runtime.block_on(remove(&store, &key));
        }
        Err(why) => println!("rclone: skipped ({why})"),
    }

    print_table(&rows);
    for note in notes {
        println!("{note}");
    }
    let mut ok = rows.iter().all(|r| r.run.code == 0);

    if big > 0 {
        println!();
        println!(
            "a {} master through the copier (memory bound {}):",
            human(big),
            human(MEMORY_BOUND)
        );
        let master = runtime
            .block_on(admin.ready_master(big, Duration::from_secs(10)))
            .expect("mux-sim seeds a ready master");
        let key = format!("bench/{}-big.mp4", master.id);
        let run =
            run(copier_command(&minio, &master.url, &in_minio(&minio, &key))
                .args(["--settle", "1s"]))
            .expect("the copier runs");
        let expected = content::sha256_hex(master.seed, big);
        check_report(&run, big, &expected);
        let note = summary(&run);
        let row = Row::new("mux-master-operator copy", "→ MinIO, verified", big, run);
        print_table(std::slice::from_ref(&row));
        if let Some(note) = note {
            println!("{note}");
        }
        runtime.block_on(remove(&store, &key));
        if row.run.peak_rss > MEMORY_BOUND {
            println!(
                "FAIL: peak RSS {} is over the {} bound",
                human(row.run.peak_rss),
                human(MEMORY_BOUND)
            );
            ok = false;
        } else {
            println!(
                "ok: peak RSS {} for a {} master, under the {} bound",
                human(row.run.peak_rss),
                human(big),
                human(MEMORY_BOUND)
            );
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `mux-master-operator copy` of `url` to `destination`, MinIO's endpoint and credentials in
/// its environment, the URL too (never on the command line).
fn copier_command(minio: &Minio, url: &str, destination: &str) -> Command {
    let mut command = Command::new(COPIER);
    command
        .env_clear()
        .args(["copy", "--destination", destination])
        .args(["--termination-message-path", "/nonexistent/log"])
        .env("MMO_ENDPOINT", minio.endpoint())
        .env("MUX_MASTER_URL", url)
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key())
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json");
    command
}

/// `s3://<bucket>/<key>` in MinIO.
fn in_minio(minio: &Minio, key: &str) -> String {
    format!("s3://{}/{key}", minio.bucket())
}

/// The copier's own account of its time (its last log line), for the table's footnote.
fn summary(run: &Run) -> Option<String> {
    let line = run
        .stderr
        .lines()
        .rev()
        .find(|l| l.contains("streamed in"))?;
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = event["fields"]["message"].as_str()?;
    let (_, timing) = message.split_once(" in ")?;
    let timing = timing.split("; SHA-256").next()?;
    Some(format!("  the copier to MinIO, by its log: {timing}"))
}

fn check_report(run: &Run, size: u64, expected: &str) {
    let report: Report = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("the copier's report ({e}): {:?}", run.stdout));
    assert_eq!(run.code, 0, "{report:?}");
    assert_eq!(report.size, Some(size));
    assert_eq!(
        report.sha256.as_deref(),
        Some(expected),
        "the copy's SHA-256"
    );
}

async fn remove(store: &object_store::aws::AmazonS3, key: &str) {
    let _ = store.delete(&Path::from(key)).await;
}

/// One finished process.
struct Run {
    code: i32,
    wall: Duration,
    peak_rss: u64,
    stdout: String,
    stderr: String,
}

/// Runs `command` to its end, its output in a scratch file, measuring wall time and peak RSS.
fn run(command: &mut Command) -> Result<Run, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).map_err(|e| e.to_string())?)
        .stderr(File::create(&stderr_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, and wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals above.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if code != 0 {
        return Err(format!(
            "{:?} exited with {code}: {}",
            command.get_program(),
            stderr.trim()
        ));
    }
    Ok(Run {
        code,
        wall,
        peak_rss: usage.ru_maxrss as u64 * 1024,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr,
    })
}

/// rclone's path, installing Debian's package (if `install`) when it is missing and we are root.
fn rclone(install: bool) -> Result<String, String> {
    let found = |name: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    if let Some(path) = found("rclone") {
        return Ok(path);
    }
    if !install {
        return Err("rclone is not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || found("apt-get").is_none() {
        return Err(
            "rclone is not installed; `apt-get install -y rclone` (as root) adds it".into(),
        );
    }
    println!("rclone is missing: apt-get install -y rclone");
    let apt_get = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // The package lists may be missing (a fresh image) or stale: update once on failure.
    let installed = apt_get(&["install", "-y", "-q", "rclone"])
        || (apt_get(&["update", "-q"]) && apt_get(&["install", "-y", "-q", "rclone"]));
    if !installed {
        return Err("apt-get install rclone failed".into());
    }
    found("rclone").ok_or_else(|| "rclone is still not on PATH after installing it".into())
}

struct Row {
    tool: &'static str,
    what: &'static str,
    size: u64,
    run: Run,
}

impl Row {
    fn new(tool: &'static str, what: &'static str, size: u64, run: Run) -> Row {
        Row {
            tool,
            what,
            size,
            run,
        }
    }

    fn mb_s(&self) -> f64 {
        self.size as f64 / self.run.wall.as_secs_f64() / 1e6
    }
}

fn print_table(rows: &[Row]) {
    let curl = rows
        .iter()
        .find(|r| r.tool.starts_with("curl"))
        .map(Row::mb_s);
    println!(
        "{:<26} {:<20} {:>9} {:>9} {:>9} {:>12}",
        "tool", "", "seconds", "MB/s", "vs curl", "peak RSS"
    );
    for row in rows {
        let ratio = curl
            .map(|c| format!("{:.2}×", row.mb_s() / c))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<26} {:<20} {:>9.2} {:>9.1} {:>9} {:>12}",
            row.tool,
            row.what,
            row.run.wall.as_secs_f64(),
            row.mb_s(),
            ratio,
            human(row.run.peak_rss)
        );
    }
}

fn size_from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => parse_size(&text).unwrap_or_else(|| panic!("{name}={text:?} is not a size")),
        Err(_) => default,
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = match &text[digits..] {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}
