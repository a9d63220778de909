//! `mux-master-operator copy`: the copy Job's program. Streams a master from its signed URL into
//! object storage, in constant memory, verified by SHA-256. Knows nothing of the controller: it
//! takes everything from flags, environment variables and files, and reports through its exit
//! status and its termination message.
//!
//! # Inputs
//!
//! - The source URL is a bearer credential, so it never comes from the command line (other
//!   processes can read it there, and it would sit in the Job spec): it is read from the file
//!   named by `--source-url-file` / `MMO_SOURCE_URL_FILE` (a Secret mounted as a volume), or else
//!   from the environment variable `MUX_MASTER_URL` (a Secret key through `valueFrom`). Only
//!   `scheme://host/path` is ever logged or reported; the query (the signature) never is, and
//!   HTTP errors are stripped of their URL.
//! - The destination, `--destination` / `MMO_DESTINATION`: `s3://bucket/key` (AWS S3 and
//!   S3-compatible stores: MinIO, Ceph, R2), `gs://bucket/key`, `az://container/path` (the
//!   account comes from the credentials or `AZURE_STORAGE_ACCOUNT_NAME`) or `file:///path` (a
//!   mounted volume). `--endpoint`, `--region`, `--virtual-hosted-style` and `--allow-http`
//!   (implied by an `http://` endpoint) tune S3; `--endpoint` also serves Azure emulators.
//!   A `file://` path with `.` or `..` segments (also percent-encoded) is refused: URL parsing
//!   would resolve them, and they could lead out of the volume; `--file-root` (the volume's
//!   mount path) refuses any path not under it.
//! - Storage credentials: the standard environment variables that `object_store` reads
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...),
//!   and/or `--credentials-dir` / `MMO_STORAGE_CREDENTIALS_DIR`: a folder (a Secret mounted as a
//!   volume) with one file per setting, named like those variables (case does not matter);
//!   files override the environment. Values are never logged.
//!
//! Every flag has an `MMO_*` environment variable (see `--help`), so a pod template can set
//! everything from Secrets and ConfigMaps.
//!
//! # What a copy does
//!
//! 1. **Idempotence.** If the destination already holds an object, it is skipped only when its
//!    recorded digest equals one derived from the source. The object must carry `sha256`
//!    metadata (and `size` metadata equal to its length), and either
//!    - `--expected-sha256` (and `--expected-size`, if given) is set and equal: *skipped*
//!      without contacting the source at all (the controller passes what a previous verified
//!      copy reported, so an expired URL does not matter), or
//!    - no expected digest is given: the master is streamed (to the staging object, as for a
//!      copy) and the object is *skipped* if this run's digest and length are the recorded
//!      ones. A length, or a digest the object merely carries, proves nothing.
//!
//!    Any other existing object is *different*: the copy ends with `DestinationExists` unless
//!    `--overwrite` is set; nothing is written over it (an object without a recorded digest is
//!    refused before anything is downloaded).
//! 2. **Streaming.** The master is fetched in `Range` requests: the first asks for one range
//!    of `--range-size` (3 MiB); once its 206 names the file's length, the rest of that length
//!    is asked for as ranges, `--connections` (16) requests in flight at once (a CDN caps each
//!    connection: several go faster in aggregate), their bodies read within `--read-ahead`
//!    (4 MiB) of the bytes consumed (the others wait in their connections), each held until its turn and then hashed and uploaded in
//!    order (see `download/ranges.rs`). A server that answers with the whole
//!    file (200) is read in one stream. The bytes go, in parts of `--part-size` (5 MiB), at
//!    most `--parts-in-flight` (2) uploading at once while the next one fills, into a
//!    multipart upload: on S3 of the final key itself, left incomplete (invisible) until the
//!    master is verified; elsewhere of a staging object of this run's own,
//!    `<key>.mmo-partial.<run>` (two runs on one key never share one). Memory is about
//!    `read-ahead + part-size × (parts-in-flight + 1)` whatever the master's size. (S3 takes at most 10,000 parts: past about 70 GiB, known from the first answer's
//!    length, parts grow and fewer upload at once, within the same buffers.) SHA-256 is
//!    computed over the bytes in order.
//! 3. **Resuming.** A connection error, a timeout (`--read-timeout` without a byte), a body that
//!    ends early, or a 408/429/5xx answer is transient: the copy waits (`--retry-delay`,
//!    doubling up to 30 s) and resumes with `Range` from the last byte received, into the same
//!    upload and the same hash. At most `--max-retries` failures in a row that made no progress;
//!    a retry that moves forward starts the count again. If the server sent a strong `ETag` or
//!    a `Last-Modified`, resumes carry `If-Range`, and a master that changed under us (a full
//!    200 answer with another validator, as when it grows, or a shorter length) restarts the
//!    copy from byte 0 in a new upload, once it holds still (the same validator and length
//!    `--settle-checks` times, `--settle` apart), at most `--max-restarts` times; past that, the
//!    copy ends `RetriesExhausted` (retryable), never `VerificationFailed`. A server that
//!    ignores `Range` is handled by
//!    skipping the bytes already received.
//! 4. **The final length.** Mux's master can still grow for a while after `ready`, so neither
//!    an early `Content-Length` nor the end of one body proves the end of the file. The rule:
//!    after a body ends, ask at once for `bytes=<done>-`; new bytes are streamed into the same
//!    upload and hash; a `416` (nothing past `<done>`) counts as one quiet check. The copy ends
//!    only after `--settle-checks` (2) quiet checks in a row, spaced by `--settle` (10 s): the
//!    length must have held still for `--settle × (checks − 1)` at least. Once the master has
//!    been seen growing, every check waits `--settle` first (no busy loop on a growing file).
//!    And with `--master-ready-at` (when the master became ready, as the controller saw it),
//!    the length is not final before `--min-age` (1 min) after that time, however quiet.
//!    A length *below* what was received means the file changed: restart.
//!
//!    Time alone cannot tell a finished file from a writer that pauses longer than the settle
//!    checks, so the length is final only when what was streamed is also a whole MP4 (ISO
//!    BMFF): its top-level boxes (32- or 64-bit sizes, `0` meaning "to the end") tile the file
//!    exactly, `ftyp` first, with a `moov`, and every movie fragment has its `mdat` (see
//!    `mp4`). A file that is not is not complete: the checks go on, `--settle` apart, and a
//!    master that neither grows nor becomes whole within `--incomplete-wait` (5 min) ends the
//!    copy with `MasterIncomplete` (retryable). `--skip-mp4-check` turns this off for a
//!    master that is not MP4.
//! 5. **Verification and publication.** `--expected-sha256`/`--expected-size` are checked
//!    against what was streamed. Then the object is published under its final key with its
//!    digest. Object stores take user metadata only when an object is created, before a
//!    streamed master's digest is known, so:
//!    - S3: the upload of the final key (each part sent with `x-amz-checksum-crc64nvme`, which
//!      the store checks against the bytes it received) is completed now, naming the
//!      CRC-64/NVME of the whole stream (taken in the pass that took its SHA-256, over the same
//!      bytes): the store refuses a completion whose parts do not combine to it, and its answer
//!      must name it, or the object is deleted (`VerificationFailed`). One write of the data, no
//!      second pass, one SHA-256 pass in the copier and none in the store (payloads are
//!      unsigned: the CRC covers them). `--part-checksum sha256` sends `x-amz-checksum-sha256`
//!      with signed payloads instead (tamper-proof on a plain-HTTP path to the store, where a
//!      CRC is not; one more SHA-256 pass here, two in the store). The SHA-256 and size go into a sidecar object, `<key>.sha256` (a
//!      `sha256sum -c` line; its metadata name the ETag of the object it describes, and it
//!      counts only for that object; see `sidecar`), and into the object's own metadata too
//!      when `--expected-sha256` gives the digest before the upload starts.
//!    - GCS and Azure: the completed staging object is streamed back through the pod into the
//!      final object created with `sha256`, `size` and `source` metadata, hashing it again: the
//!      digest must match.
//!    - `file://`: the staging file is fsynced, given `user.mmo.sha256`/`user.mmo.size`
//!      extended attributes (where the filesystem has them) and renamed over the final path
//!      (atomic); then `<file>.sha256` is written in `sha256sum -c` format.
//!
//!    Unless `--overwrite`, the final name is taken only if it is free: S3's completion carries
//!    `If-None-Match: *`; `file://` takes the name with a hard link, which fails if it exists. A run
//!    that lost a race to another publishes nothing: the same master there is `Skipped`,
//!    anything else `DestinationExists`. (GCS and Azure, through object_store's unconditional
//!    multipart completion, check the name just before completing: a narrow window, not atomic.)
//!
//!    The final object is read back (`head`, and on S3 its sidecar): its size and recorded
//!    digest must match, or the copy fails with `VerificationFailed`; the object is deleted only
//!    when its ETag proves it is the one this run wrote (never another run's). The staging
//!    object is deleted.
//! 6. **Cleanup.** Every failure aborts the multipart upload and deletes the staging object, so
//!    a failed copy leaves neither a partial object nor a dangling upload; SIGTERM and SIGINT
//!    do the same before exiting. A run killed outright (SIGKILL) cannot clean up; the next run
//!    aborts S3 multipart uploads of the final key initiated at least `--leftover-age` (10 min)
//!    before (a younger one may be a live run's), those of the staging key of copiers before
//!    per-run staging (`<key>.mmo-partial`), and removes that `file://` staging file. A killed
//!    run's own staging upload (GCS, Azure, `--finalize restream`) cannot be found by the next:
//!    a bucket lifecycle rule aborting incomplete multipart uploads after a day is needed.
//!
//! Progress (bytes done, latest known total, rate) is logged to stderr every
//! `--progress-interval` (2 s), through the command line's logging (`--log-level`/`LOG_LEVEL`,
//! `--log-format`/`LOG_FORMAT`). Neither our messages nor the HTTP clients' ever contain the
//! signed URL (reqwest's wire-level tracing, which would, is never enabled).
//!
//! # Result
//!
//! One JSON object, printed on stdout and written to `--termination-message-path`
//! (`/dev/termination-log`, only if its folder exists), which the controller reads from the
//! pod's termination message; see [`Report`]:
//!
//! ```json
//! {"reason":"Copied","object":"s3://archive/media/keynote.mp4","size":131072000,
//!  "sha256":"9f86d0…","resumes":1}
//! ```
//!
//! `message` is set on failures (and on skips, saying why); `size`/`sha256` whenever known;
//! `verified`, on `Copied`, names the checks made (`stream-sha256,parts-crc64nvme,
//! object-crc64nvme,read-back-sidecar` on S3; see `verify::checks_made`).
//!
//! # What a verified copy guarantees
//!
//! `Copied` (or `Skipped`) means: the object under the final key holds the bytes the source
//! served, in full: the file held still over the settle checks (and `--min-age` after
//! `--master-ready-at`), and was a whole MP4 (unless `--skip-mp4-check`); their SHA-256, taken
//! in order as they streamed, is the one reported and recorded with the object (equal to
//! `--expected-sha256` when given). On S3 the store checked every part it received against its
//! checksum, and its checksum of the whole object is the CRC-64/NVME of the very bytes that
//! were SHA-256-hashed (with `--part-checksum sha256`: each part against the SHA-256 of the
//! bytes sent); the object became visible only once complete and verified;
//! on GCS and Azure the staging object was read back and hashed again. The final object was
//! then read back for its size and recorded digest.
//!
//! What it cannot say: the final object's bytes are not SHA-256-hashed again as a whole (on
//! S3 a 64-bit CRC ties them to the hashed stream: proof against accidents, not against an
//! attacker rewriting plain-HTTP traffic to the store, which TLS or `--part-checksum sha256`
//! stops; a local rename is trusted); and the master is Mux's transcode of the
//! upload, not the original file: its SHA-256 is the master's. A run killed between S3's
//! completion and its sidecar leaves an object without a recorded digest: a later run does not
//! skip it (`DestinationExists` unless `--overwrite`).
//!
//! # Exit status
//!
//! | status | reason               | meaning                                                      |
//! |--------|----------------------|--------------------------------------------------------------|
//! | 0      | `Copied`, `Skipped`  | the destination holds the verified master                    |
//! | 1      | `Failed`             | an unexpected error (a bug, a panic in a task)               |
//! | 2      | `BadInput`           | flags, URL, destination or credentials unusable (also clap)  |
//! | 3      | `UrlExpired`         | the URL answered 401/403: refresh it and run again           |
//! | 4      | `DestinationExists`  | a different object is there and `--overwrite` is not set     |
//! | 5      | `VerificationFailed` | size or SHA-256 mismatch (expected, staged or read back)     |
//! | 6      | `RetriesExhausted`   | transient failures past `--max-retries`, or a master that    |
//! |        |                      | kept changing past `--max-restarts`                          |
//! | 7      | `StoreFailed`        | the object store refused or failed (after its own retries)   |
//! | 8      | `SourceFailed`       | the source answered something final: 404, 410, another 4xx   |
//! | 9      | `Interrupted`        | SIGTERM or SIGINT; cleaned up before exiting                 |
//! | 10     | `MasterIncomplete`   | not a whole MP4 within `--incomplete-wait`: retry later      |

mod args;
mod buffers;
mod destination;
mod download;
mod error;
mod existing;
mod finalize;
mod local;
mod mp4;
mod progress;
mod progress_line;
mod read_back;
mod records;
mod report;
mod retries;
mod s3_upload;
mod s3_wire;
mod sidecar;
mod source;
mod stores;
mod transfer;
mod units;
mod upload;
mod verify;

use std::process::ExitCode;

pub use args::{CopyArgs, FinalizeMode, PartChecksum};
pub use destination::{Existing, recorded_object};
pub use error::{CopyError, Reason};
pub use progress_line::ProgressLine;
pub use report::Report;

use tokio_util::sync::CancellationToken;

/// Runs a copy; the process exits with the code returned.
pub async fn run(args: CopyArgs) -> ExitCode {
    bound_the_heap();
    mux::tls::install_crypto_provider();
    let cancel = CancellationToken::new();
    watch_signals(cancel.clone());

    let object = destination::display_name(&args.destination);
    let report = match transfer::copy(&args, &cancel).await {
        Ok(report) => report,
        Err(error) => {
            tracing::error!(reason = ?error.reason, "copy failed: {}", error.message);
            Report::failure(&error, object)
        }
    };
    report.emit(&args.termination_message_path);
    ExitCode::from(report.reason.exit_code())
}

/// The copier's buffers are large (ranges, parts) and short-lived: glibc's malloc would raise
/// its mmap threshold after the first are freed and serve the next from its arenas, one per
/// thread, where freed memory is kept and fragments (tens of MiB over the buffers themselves).
/// A fixed threshold of 256 KiB keeps every large buffer an mmap of its own, returned to the
/// system when freed; at most two arenas for the rest.
fn bound_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the buffers exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Cancels `cancel` on SIGTERM (Kubernetes stopping the pod) or SIGINT.
fn watch_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM: stopping and cleaning up"),
            _ = int.recv() => tracing::warn!("SIGINT: stopping and cleaning up"),
        }
        cancel.cancel();
    });
}
