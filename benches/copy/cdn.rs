//! The copy benchmark behind a CDN: mux-sim capped at 25 MB/s per connection with 50 ms to
//! the first byte (what a master served over the internet looks like), the copier next to
//! `rclone copyurl` into the same MinIO and `aria2c -x8 -s8` to a file, on the same URL.

use std::time::Duration;

use mux_sim::admin_client::SimAdmin;
use mux_sim::content;
use object_store::aws::AmazonS3;
use testenv::{Minio, MuxSim};

use super::goals::Goal;
use super::tools::{run, tool};
use super::{Row, check_report, copier_command, in_minio, print_table, remove, summary};

/// The CDN's pacing, as mux-sim flags.
pub const RATE: &str = "25MB/s";
pub const FIRST_BYTE: &str = "50ms";

pub struct Cdn<'a> {
    pub size: u64,
    pub minio: &'a Minio,
    pub store: &'a AmazonS3,
    pub runtime: &'a tokio::runtime::Runtime,
    pub smoke: bool,
}

impl Cdn<'_> {
    /// Runs the three rows, prints them, and returns the two goals.
    pub fn run(&self) -> Vec<Goal> {
        let sim = MuxSim::start(
            testenv::bins::mux_sim().expect("mux-sim's binary"),
            &[
                "--master-prepare-delay",
                "0s",
                "--download-rate-per-connection",
                RATE,
                "--download-first-byte",
                FIRST_BYTE,
            ],
        )
        .expect("mux-sim starts");
        let admin = SimAdmin::new(sim.url());
        let master = self
            .runtime
            .block_on(admin.ready_master(self.size, Duration::from_secs(10)))
            .expect("mux-sim seeds a ready master");
        let expected = content::sha256_hex(master.seed, self.size);
        println!(
            "behind a CDN: mux-sim capped at {RATE} per connection, {FIRST_BYTE} to first byte"
        );
        let mut rows = Vec::new();
        let mut notes = Vec::new();

        let key = format!("bench/{}-cdn-copier.mp4", master.id);
        let destination = in_minio(self.minio, &key);
        let mut command = copier_command(self.minio, &master.url, &destination);
        let copier = run(command.args(["--settle-checks", "1"])).expect("the copier runs");
        check_report(&copier, self.size, &expected);
        notes.extend(summary(&copier));
        rows.push(Row::new(
            "mux-master-operator copy",
            "→ MinIO, verified",
            self.size,
            copier,
        ));
        self.runtime.block_on(remove(self.store, &key));

        match tool("rclone", "rclone", !self.smoke) {
            Ok(rclone) => {
                let key = format!("bench/{}-cdn-rclone.mp4", master.id);
                let home = tempfile::tempdir().unwrap();
                let mut command = super::peers::rclone_copyurl(
                    &rclone,
                    &master.url,
                    self.minio,
                    &key,
                    home.path(),
                );
                match run(&mut command) {
                    Ok(run) => rows.push(Row::new("rclone copyurl", "→ MinIO", self.size, run)),
                    Err(e) => println!("rclone: failed ({e})"),
                }
                self.runtime.block_on(remove(self.store, &key));
            }
            Err(why) => println!("rclone: skipped ({why})"),
        }

        match tool("aria2c", "aria2", !self.smoke) {
            Ok(aria2c) => {
                let dir = tempfile::tempdir().unwrap();
                match run(&mut super::peers::aria2c(&aria2c, &master.url, dir.path())) {
                    Ok(run) => {
                        let got = std::fs::metadata(dir.path().join("master.mp4")).map(|m| m.len());
                        assert_eq!(got.ok(), Some(self.size), "aria2c's file");
                        rows.push(Row::new("aria2c -x8 -s8", "→ file", self.size, run));
                    }
                    Err(e) => println!("aria2c: failed ({e})"),
                }
            }
            Err(why) => println!("aria2c: skipped ({why})"),
        }

        print_table(&rows);
        for note in notes {
            println!("{note}");
        }
        let find = |tool: &str| rows.iter().find(|r| r.tool == tool);
        let ours = find("mux-master-operator copy");
        vec![
            Goal::new(
                "behind the CDN, into MinIO",
                "rclone copyurl",
                3.0,
                ours,
                find("rclone copyurl"),
            ),
            Goal::new(
                "behind the CDN, MinIO vs a file",
                "aria2c -x8 -s8",
                0.9,
                ours,
                find("aria2c -x8 -s8"),
            ),
        ]
    }
}
