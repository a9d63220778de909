//! The copy's flags. Each has an `MMO_*` environment variable, so that a pod template can set
//! everything from Secrets and ConfigMaps; the source URL has no flag at all (see the module
//! documentation).

use std::path::PathBuf;
use std::time::Duration;

use super::units;

fn duration_arg(text: &str) -> Result<Duration, String> {
    mux::duration::parse(text)
}

fn timestamp_arg(text: &str) -> Result<jiff::Timestamp, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time like 2026-12-01T09:00:00Z: {e}"))
}

/// How the verified staging object becomes the final object with its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FinalizeMode {
    /// Straight to the final key on S3, completed once verified; streamed back through the
    /// pod from a staging object on GCS and Azure; a rename on `file://`.
    Auto,
    /// Stream the staging object back through the pod into the final object, hashing it again
    /// (any object store; the default for GCS and Azure).
    Restream,
}

/// What the store checks each part of an S3 upload against, and how the parts are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartChecksum {
    /// `x-amz-checksum-crc64nvme` on every part, unsigned payloads; the completion names the
    /// CRC-64/NVME of the whole stream (taken in the pass that takes its SHA-256) and the
    /// store's combined checksum of the object must equal it. One SHA-256 pass in the copier,
    /// none in the store.
    Crc64nvme,
    /// `x-amz-checksum-sha256` on every part, payloads signed with their SHA-256: a second
    /// SHA-256 pass in the copier (two in the store). Tamper-proof parts on a plain-HTTP path
    /// to the store, where CRCs (and unsigned payloads) are not.
    Sha256,
}

/// `mux-master-operator copy` flags.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// A file holding the master's signed URL (a Secret mounted as a volume). Without it, the
    /// URL is read from the environment variable MUX_MASTER_URL; it is never taken from the
    /// command line.
    #[arg(long, env = "MMO_SOURCE_URL_FILE", value_name = "PATH")]
    pub source_url_file: Option<PathBuf>,

    /// Where to store the master: s3://bucket/key, gs://bucket/key, az://container/path or
    /// file:///absolute/path.
    #[arg(long, env = "MMO_DESTINATION", value_name = "URL")]
    pub destination: String,

    /// For `file://`: the folder the destination must be under (the volume's mount path);
    /// anything else is refused. (`.` and `..` segments are refused in any case.)
    #[arg(long, env = "MMO_FILE_ROOT", value_name = "DIR")]
    pub file_root: Option<PathBuf>,

    /// The object store's endpoint, for S3-compatible stores (MinIO, Ceph, R2) or an Azure
    /// emulator. Default: the provider's own (or AWS_ENDPOINT_URL and the like).
    #[arg(long, env = "MMO_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// The S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "MMO_REGION")]
    pub region: Option<String>,

    /// Address S3 buckets virtual-hosted style (https://bucket.host/key) rather than path style
    /// (https://host/bucket/key).
    #[arg(long, env = "MMO_VIRTUAL_HOSTED_STYLE")]
    pub virtual_hosted_style: bool,

    /// Allow a plain-HTTP endpoint (implied when --endpoint starts with http://).
    #[arg(long, env = "MMO_ALLOW_HTTP")]
    pub allow_http: bool,

    /// A folder of storage credentials and settings, one file per setting, named like the
    /// environment variables object_store reads (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// GOOGLE_SERVICE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_KEY, ...): a Secret mounted as a volume.
    #[arg(long, env = "MMO_STORAGE_CREDENTIALS_DIR", value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,

    /// Replace a different object already at the destination.
    #[arg(long, env = "MMO_OVERWRITE")]
    pub overwrite: bool,

    /// The SHA-256 (hex) the master must have, e.g. from a previous verified copy: an existing
    /// object recorded with it is skipped without contacting the source, and a copy whose digest
    /// differs fails.
    #[arg(long, env = "MMO_EXPECTED_SHA256", value_name = "HEX")]
    pub expected_sha256: Option<String>,

    /// The size in bytes the master must have (checked like --expected-sha256).
    #[arg(long, env = "MMO_EXPECTED_SIZE", value_name = "BYTES")]
    pub expected_size: Option<u64>,

    /// The multipart upload's part size (5MiB to 1GiB).
    #[arg(long, env = "MMO_PART_SIZE", default_value = "5MiB", value_parser = units::parse_size)]
    pub part_size: u64,

    /// How many parts may upload at once while the next one fills. (2: with CRC-checked
    /// parts the store keeps up, and behind a CDN 3 measured no faster, for 5 MiB more.)
    #[arg(long, env = "MMO_PARTS_IN_FLIGHT", default_value_t = 2)]
    pub parts_in_flight: usize,

    /// How many `Range` requests of the master may be in flight at once. A CDN caps each
    /// connection; several ranges at once go faster in aggregate. 1: one stream. A server that
    /// ignores `Range` is read in one stream whatever this says.
    #[arg(long, env = "MMO_CONNECTIONS", default_value_t = 16)]
    pub connections: usize,

    /// The size of each `Range` request when `--connections` is above 1. (3MiB: measured, to
    /// a local file behind a CDN capping each connection at 25 MB/s, 177 → 207 MB/s against
    /// 2MiB, in the same memory (about 380 → 400 MB/s on loopback). 4MiB ranges, or 8MiB read
    /// ahead, went faster on loopback (500 MB/s) for 2 to 6 MiB more: the debug build, which
    /// the tests hold to the 64 MiB bound, then reached 63 to 67 MiB.)
    #[arg(long, env = "MMO_RANGE_SIZE", default_value = "3MiB", value_parser = units::parse_size)]
    pub range_size: u64,

    /// How far past the bytes already hashed and uploaded the ranges' bodies may be read: the
    /// download's memory (a range waits in its connection until it fits).
    #[arg(long, env = "MMO_READ_AHEAD", default_value = "4MiB", value_parser = units::parse_size)]
    pub read_ahead: u64,

    /// Transient failures in a row (without progress) before giving up.
    #[arg(long, env = "MMO_MAX_RETRIES", default_value_t = 10)]
    pub max_retries: u32,

    /// The first wait before a retry; it doubles with each failure in a row, up to 30s.
    #[arg(long, env = "MMO_RETRY_DELAY", default_value = "1s", value_parser = duration_arg)]
    pub retry_delay: Duration,

    /// How many times the copy may start over because the master changed under it.
    #[arg(long, env = "MMO_MAX_RESTARTS", default_value_t = 3)]
    pub max_restarts: u32,

    /// Give up on a connection that sends nothing for this long (and resume).
    #[arg(long, env = "MMO_READ_TIMEOUT", default_value = "30s", value_parser = duration_arg)]
    pub read_timeout: Duration,

    /// Give up connecting after this long (and retry).
    #[arg(long, env = "MMO_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration_arg)]
    pub connect_timeout: Duration,

    /// The spacing of the checks that the master's length has stopped growing.
    #[arg(long, env = "MMO_SETTLE", default_value = "10s", value_parser = duration_arg)]
    pub settle: Duration,

    /// How many checks in a row must find no new bytes before the length is final.
    #[arg(long, env = "MMO_SETTLE_CHECKS", default_value_t = 2)]
    pub settle_checks: u32,

    /// When the master became ready (RFC 3339, e.g. 2026-12-01T09:00:00Z), as the controller
    /// saw it: the length is not called final before `--min-age` after it, whatever the settle
    /// checks say (Mux's files have been seen to grow after `ready`).
    #[arg(long, env = "MMO_MASTER_READY_AT", value_name = "TIME", value_parser = timestamp_arg)]
    pub master_ready_at: Option<jiff::Timestamp>,

    /// The age the master must have (after `--master-ready-at`) before its length is final.
    #[arg(long, env = "MMO_MIN_AGE", default_value = "1m", value_parser = duration_arg)]
    pub min_age: Duration,

    /// Do not check that the master is a whole MP4 (ISO BMFF) file before publishing it: for
    /// a master that is not MP4. Without it, a file whose top-level boxes do not tile it
    /// exactly, or that has no `moov`, is not complete yet, whatever its length does.
    #[arg(long, env = "MMO_SKIP_MP4_CHECK")]
    pub skip_mp4_check: bool,

    /// How long a master may stay incomplete (its MP4 structure not whole) without growing
    /// before the copy gives up with MasterIncomplete (a retry may find it whole).
    #[arg(long, env = "MMO_INCOMPLETE_WAIT", default_value = "5m", value_parser = duration_arg)]
    pub incomplete_wait: Duration,

    /// How often progress is logged.
    #[arg(long, env = "MMO_PROGRESS_INTERVAL", default_value = "2s", value_parser = duration_arg)]
    pub progress_interval: Duration,

    /// Where to write the result for Kubernetes (the container's terminationMessagePath);
    /// written only if its folder exists.
    #[arg(
        long,
        env = "MMO_TERMINATION_MESSAGE_PATH",
        default_value = "/dev/termination-log",
        value_name = "PATH"
    )]
    pub termination_message_path: PathBuf,

    /// How the verified upload is published with its metadata.
    #[arg(
        long,
        env = "MMO_FINALIZE",
        value_enum,
        default_value = "auto",
        hide = true
    )]
    pub finalize: FinalizeMode,

    /// S3: what the store checks every part against (see the module documentation).
    #[arg(
        long,
        env = "MMO_PART_CHECKSUM",
        value_enum,
        default_value = "crc64nvme"
    )]
    pub part_checksum: PartChecksum,

    /// S3: a multipart upload of the final key initiated at least this long ago is a killed
    /// run's leftover, aborted when a copy starts; a younger one may be a live run's.
    #[arg(long, env = "MMO_LEFTOVER_AGE", default_value = "10m", value_parser = duration_arg)]
    pub leftover_age: Duration,
}

impl CopyArgs {
    /// Checks what clap cannot: ranges and combinations.
    pub(crate) fn validate(&self) -> Result<(), String> {
        const MIB: u64 = 1 << 20;
        if !(5 * MIB..=1024 * MIB).contains(&self.part_size) {
            return Err(format!(
                "--part-size must be between 5MiB and 1GiB (S3's limits), not {}",
                units::human(self.part_size)
            ));
        }
        if !(1..=16).contains(&self.parts_in_flight) {
            return Err("--parts-in-flight must be between 1 and 16".into());
        }
        if !(1..=32).contains(&self.connections) {
            return Err("--connections must be between 1 and 32".into());
        }
        if !(256 << 10..=64 * MIB).contains(&self.range_size) {
            return Err("--range-size must be between 256KiB and 64MiB".into());
        }
        if !(self.range_size..=1024 * MIB).contains(&self.read_ahead) {
            return Err("--read-ahead must be at least --range-size (and at most 1GiB)".into());
        }
        if self.settle_checks == 0 {
            return Err("--settle-checks must be at least 1".into());
        }
        if let Some(sha) = &self.expected_sha256
            && !is_sha256_hex(sha)
        {
            return Err("--expected-sha256 must be 64 hexadecimal digits".into());
        }
        if self.read_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("timeouts must be longer than zero".into());
        }
        Ok(())
    }

    /// When the master is old enough for its length to be final, if the ready time is known.
    pub(crate) fn earliest_final(&self) -> Option<jiff::Timestamp> {
        let min_age = jiff::SignedDuration::try_from(self.min_age).ok()?;
        self.master_ready_at?.checked_add(min_age).ok()
    }

    /// The expected digest, lowercased.
    pub(crate) fn expected_sha256(&self) -> Option<String> {
        self.expected_sha256
            .as_ref()
            .map(|s| s.to_ascii_lowercase())
    }
}

/// Whether `text` is a SHA-256 in hex.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses the flags of a `copy` command line, for this crate's unit tests.
#[cfg(test)]
pub(crate) fn parse_flags(flags: &[&str]) -> Result<CopyArgs, clap::Error> {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CopyArgs,
    }
    let command_line = std::iter::once("copy").chain(flags.iter().copied());
    Cli::try_parse_from(command_line).map(|cli| cli.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> CopyArgs {
        let mut all = vec!["--destination", "s3://b/k"];
        all.extend_from_slice(args);
        parse_flags(&all).expect("parses")
    }

    #[test]
    fn the_defaults_are_valid_and_bounded() {
        let args = parse(&[]);
        args.validate().unwrap();
        assert_eq!(args.part_size, 5 << 20);
        assert_eq!(args.parts_in_flight, 2);
        assert_eq!(args.settle, Duration::from_secs(10));
        assert_eq!(args.finalize, FinalizeMode::Auto);
        assert_eq!(args.part_checksum, PartChecksum::Crc64nvme);
        let sha = parse(&["--part-checksum", "sha256"]);
        assert_eq!(sha.part_checksum, PartChecksum::Sha256);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(parse(&["--part-size", "1MiB"]).validate().is_err());
        assert!(parse(&["--parts-in-flight", "0"]).validate().is_err());
        assert!(parse(&["--connections", "0"]).validate().is_err());
        assert!(parse(&["--connections", "33"]).validate().is_err());
        assert!(parse(&["--range-size", "100KiB"]).validate().is_err());
        assert!(parse(&["--read-ahead", "1MiB"]).validate().is_err());
        assert!(parse(&["--settle-checks", "0"]).validate().is_err());
        assert!(parse(&["--expected-sha256", "abc"]).validate().is_err());
        assert!(
            parse(&["--expected-sha256", &"A".repeat(64)])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn the_earliest_final_time_is_the_ready_time_plus_the_minimum_age() {
        assert_eq!(parse(&[]).earliest_final(), None);
        let args = parse(&[
            "--master-ready-at",
            "2026-12-01T09:00:00Z",
            "--min-age",
            "90s",
        ]);
        assert_eq!(
            args.earliest_final(),
            Some("2026-12-01T09:01:30Z".parse().unwrap())
        );
        let bad = [
            "--destination",
            "s3://b/k",
            "--master-ready-at",
            "yesterday",
        ];
        assert!(parse_flags(&bad).is_err());
    }
}
