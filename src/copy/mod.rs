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
//! 1. **Idempotence.** If the destination already holds an object, it is ours and current when
//!    it carries `sha256` metadata (and `size` metadata equal to its length) and either
//!    - `--expected-sha256` (and `--expected-size`, if given) is set and equal: *skipped* without
//!      contacting the source at all (the controller passes what a previous verified copy
//!      reported, so an expired URL does not matter), or
//!    - no expected digest is given and the source's *settled* length (below) equals the
//!      object's size: *skipped*. Mux masters do not change once final, and the destination key
//!      belongs to one resource, so equal length plus a digest we recorded after verifying is
//!      taken as "the same master" without downloading it again.
//!
//!    Any other existing object is *different*: the copy ends with `DestinationExists` unless
//!    `--overwrite` is set, and nothing is downloaded or written.
//! 2. **Streaming.** The master is fetched with `Range: bytes=<done>-` requests and written as a
//!    multipart upload to a staging object, `<key>.mmo-partial`, in parts of `--part-size`
//!    (8 MiB), at most `--parts-in-flight` (2) uploading at once while the next one fills:
//!    memory is about `part-size × (parts-in-flight + 1)` whatever the master's size. (S3 takes
//!    at most 10,000 parts: past about 70 GiB, known from the first answer's length, parts grow
//!    and fewer upload at once, within the same buffers.) SHA-256 is computed over the bytes
//!    as they stream.
//! 3. **Resuming.** A connection error, a timeout (`--read-timeout` without a byte), a body that
//!    ends early, or a 408/429/5xx answer is transient: the copy waits (`--retry-delay`,
//!    doubling up to 30 s) and resumes with `Range` from the last byte received, into the same
//!    upload and the same hash. At most `--max-retries` failures in a row that made no progress;
//!    a retry that moves forward starts the count again. If the server sent a strong `ETag` or
//!    a `Last-Modified`, resumes carry `If-Range`, and a master that changed under us (a full
//!    200 answer with another validator, or a shorter length) restarts the copy from byte 0 in
//!    a new upload, at most `--max-restarts` times. A server that ignores `Range` is handled by
//!    skipping the bytes already received.
//! 4. **The final length.** Mux's master can still grow for a while after `ready`, so neither
//!    an early `Content-Length` nor the end of one body proves the end of the file. The rule:
//!    after a body ends, ask at once for `bytes=<done>-`; new bytes are streamed into the same
//!    upload and hash; a `416` (nothing past `<done>`) counts as one quiet check. The copy ends
//!    only after `--settle-checks` (2) quiet checks in a row, spaced by `--settle` (10 s): the
//!    length must have held still for `--settle × (checks − 1)` at least. Once the master has
//!    been seen growing, every check waits `--settle` first (no busy loop on a growing file).
//!    A length *below* what was received means the file changed: restart. The same rule
//!    (probes of `bytes=0-0`) gives the settled length that the idempotence check compares.
//! 5. **Verification and publication.** The staging upload is completed and its size read back;
//!    `--expected-sha256`/`--expected-size` are checked. Then the object is published under its
//!    final key *with* `sha256`, `size` and `source` (the redacted URL) metadata, which S3, GCS
//!    and Azure only accept when an object is created, i.e. before the digest of a streamed
//!    upload is known, hence the staging object:
//!    - S3: a server-side multipart copy (`UploadPartCopy`, `--copy-part-size` ranges) into a
//!      multipart upload created with the metadata (`x-amz-meta-sha256`, `x-amz-meta-size`); no
//!      byte goes through the pod again, and objects of any size work.
//!    - GCS and Azure: the staging object is streamed back through the pod into the final
//!      object created with its metadata, hashing it again: the digest must match.
//!    - `file://`: the staging file is fsynced, given `user.mmo.sha256`/`user.mmo.size`
//!      extended attributes (where the filesystem has them) and renamed over the final path
//!      (atomic); then `<file>.sha256` is written in `sha256sum -c` format.
//!
//!    The final object is read back (`head`): its size and recorded digest must match, or it is
//!    deleted and the copy fails with `VerificationFailed`. The staging object is deleted.
//! 6. **Cleanup.** Every failure aborts the multipart upload and deletes the staging object, so
//!    a failed copy leaves neither a partial object nor a dangling upload; SIGTERM and SIGINT
//!    do the same before exiting. A run killed outright (SIGKILL) cannot clean up; the next run
//!    aborts S3 multipart uploads left on the staging key and removes `file://` staging files.
//!    (A bucket lifecycle rule aborting incomplete multipart uploads is still good practice.)
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
//! `message` is set on failures (and on skips, saying why); `size`/`sha256` whenever known.
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
//! | 5      | `VerificationFailed` | size or SHA-256 mismatch, or the source kept changing        |
//! | 6      | `RetriesExhausted`   | transient failures went on past `--max-retries`              |
//! | 7      | `StoreFailed`        | the object store refused or failed (after its own retries)   |
//! | 8      | `SourceFailed`       | the source answered something final: 404, 410, another 4xx   |
//! | 9      | `Interrupted`        | SIGTERM or SIGINT; cleaned up before exiting                 |

mod args;
mod destination;
mod download;
mod error;
mod existing;
mod finalize;
mod local;
mod progress;
mod read_back;
mod report;
mod retries;
mod source;
mod stores;
mod transfer;
mod units;
mod upload;
mod verify;

use std::process::ExitCode;

pub use args::{CopyArgs, FinalizeMode};
pub use error::{CopyError, Reason};
pub use report::Report;

use tokio_util::sync::CancellationToken;

/// Runs a copy; the process exits with the code returned.
pub async fn run(args: CopyArgs) -> ExitCode {
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
