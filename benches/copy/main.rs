//! `make bench` (`cargo bench --bench copy`): the copier's throughput and peak memory next to
//! the tools people use, in one run, with the ratios and the goals of issue 15:
//! - unthrottled (mux-sim on loopback): `curl` to /dev/null (the floor), the copier into MinIO,
//!   a local folder, the GCS emulator and Azurite, and `rclone copyurl` into the same MinIO
//!   (goal: the copier ≥ 1.3× rclone);
//! - behind a CDN (mux-sim capped at 25 MB/s per connection, 50 ms to first byte): the copier
//!   into MinIO, `rclone copyurl` into MinIO (goal ≥ 3×) and `aria2c -x8 -s8` to a file
//!   (goal ≥ 0.9×);
//! - then a 4 GiB master, which must stay under 64 MiB.
//!
//! MinIO keeps its data in memory (`/dev/shm`, when there is one), and so does the local folder:
//! a store syncs what it writes, and this machine's disk is shared, its synced writes measured
//! anywhere from 260 to 1,500 MB/s from one minute to the next (`dd conv=fdatasync`; the bench
//! prints one such figure): on it, a row measures the disk's moment more than the tool.
//!
//! Everything is real: mux-sim and MinIO as processes (release builds), each tool as a child
//! process whose peak resident memory comes from wait4(2). Throughput is the master's size over
//! the process's wall time, start to exit (for the copier that includes its verification and
//! the publication of the object with its digest).
//!
//! Knobs: `MMO_BENCH_SIZE` (default 1GiB), `MMO_BENCH_BIG_SIZE` (default 4GiB, `0` skips it);
//! `MMO_CONNECTIONS`, `MMO_RANGE_SIZE`, `MMO_READ_AHEAD`, `MMO_PART_SIZE`, `MMO_PARTS_IN_FLIGHT`
//! pass through to the copier (to explore; the figures are the defaults'). Under `cargo test
//! --all-targets` (no `--bench` argument) it makes a 16 MiB smoke run instead. rclone and aria2 are installed with
//! `apt-get install -y rclone aria2` when missing and the bench runs as root (not in the smoke
//! run); otherwise their rows are skipped with a message.

mod cdn;
mod clouds;
mod goals;
mod peers;
mod tools;

use std::process::{Command, ExitCode};
use std::time::Duration;

use mux_master_operator::copy::Report;
use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use testenv::{Minio, MuxSim};

use clouds::{Cloud, cloud_destination};
use goals::Goal;
use tools::{Run, run, tool};

const COPIER: &str = env!("CARGO_BIN_EXE_mux-master-operator");
pub const MIB: u64 = 1 << 20;
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
    let memory = memory_folder();
    let minio = match &memory {
        Some(folder) => Minio::start_in(folder),
        None => Minio::start(),
    }
    .expect("MinIO starts (run `make tools` first)");
    let store = minio.store(minio.bucket()).unwrap();

    println!(
        "copy benchmark: a {} master from mux-sim, MinIO as the object store",
        human(size)
    );
    match &memory {
        Some(folder) => println!(
            "MinIO's data and the local folder in memory ({}); the disk took 256 MiB synced at {} just now",
            folder.display(),
            disk_sync_rate()
        ),
        None => println!("MinIO's data and the local folder on disk (no /dev/shm here)"),
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
    let volume = match &memory {
        Some(folder) => tempfile::tempdir_in(folder),
        None => tempfile::tempdir(),
    }
    .unwrap();
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
    match tool("rclone", "rclone", !smoke) {
        Ok(rclone) => {
            let key = format!("bench/{}-rclone.mp4", master.id);
            let home = tempfile::tempdir().unwrap();
            let mut command =
                peers::rclone_copyurl(&rclone, &master.url, &minio, &key, home.path());
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
    let mut goals = vec![Goal::new(
        "into MinIO, unthrottled",
        "rclone copyurl",
        1.3,
        find(&rows, "mux-master-operator copy", "→ MinIO, verified"),
        find(&rows, "rclone copyurl", "→ MinIO"),
    )];

    println!();
    let cdn = cdn::Cdn {
        size,
        minio: &minio,
        store: &store,
        runtime: &runtime,
        smoke,
    };
    goals.extend(cdn.run());

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
    println!();
    if smoke {
        println!("(a smoke run: debug builds and 16 MiB, so the ratios below say nothing)");
    }
    goals::print(&goals);
    if !smoke {
        println!(
            "reproduce with: make bench   (or: MMO_BENCH_SIZE={}MiB MMO_BENCH_BIG_SIZE={}MiB \
             cargo bench --bench copy)",
            size / MIB,
            big / MIB
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `mux-master-operator copy` of `url` to `destination`, MinIO's endpoint and credentials in
/// its environment, the URL too (never on the command line).
/// A memory-backed folder to keep the stores' data in (`/dev/shm`, when it takes a file).
fn memory_folder() -> Option<std::path::PathBuf> {
    let folder = std::path::PathBuf::from("/dev/shm");
    tempfile::tempfile_in(&folder).ok().map(|_| folder)
}

/// How fast the disk under `$TMPDIR` takes 256 MiB written and synced, as MinIO stores an
/// object: what would cap every tool if the store's data were there.
fn disk_sync_rate() -> String {
    use std::io::Write;
    let measure = || -> std::io::Result<f64> {
        let mut file = tempfile::tempfile()?;
        let block = vec![0x5au8; MIB as usize];
        let started = std::time::Instant::now();
        for _ in 0..256 {
            file.write_all(&block)?;
        }
        file.sync_data()?;
        Ok(256.0 * MIB as f64 / started.elapsed().as_secs_f64() / 1e6)
    };
    match measure() {
        Ok(rate) => format!("{rate:.0} MB/s"),
        Err(e) => format!("? ({e})"),
    }
}

pub fn copier_command(minio: &Minio, url: &str, destination: &str) -> Command {
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
    for knob in [
        "MMO_CONNECTIONS",
        "MMO_RANGE_SIZE",
        "MMO_READ_AHEAD",
        "MMO_PART_SIZE",
        "MMO_PARTS_IN_FLIGHT",
    ] {
        if let Some(value) = std::env::var_os(knob) {
            command.env(knob, value);
        }
    }
    command
}

/// The row of `tool` `what`, if it ran.
fn find<'a>(rows: &'a [Row], tool: &str, what: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.tool == tool && r.what == what)
}

/// `s3://<bucket>/<key>` in MinIO.
pub fn in_minio(minio: &Minio, key: &str) -> String {
    format!("s3://{}/{key}", minio.bucket())
}

/// The copier's own account of its time (its last log line), for the table's footnote.
pub fn summary(run: &Run) -> Option<String> {
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

pub fn check_report(run: &Run, size: u64, expected: &str) {
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

pub async fn remove(store: &object_store::aws::AmazonS3, key: &str) {
    let _ = store.delete(&Path::from(key)).await;
}

pub struct Row {
    pub tool: &'static str,
    pub what: &'static str,
    pub size: u64,
    pub run: Run,
}

impl Row {
    pub fn new(tool: &'static str, what: &'static str, size: u64, run: Run) -> Row {
        Row {
            tool,
            what,
            size,
            run,
        }
    }

    pub fn mb_s(&self) -> f64 {
        self.size as f64 / self.run.wall.as_secs_f64() / 1e6
    }
}

pub fn print_table(rows: &[Row]) {
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

pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}
