//! An object is already at the destination: skip it, replace it, or refuse.

use tokio_util::sync::CancellationToken;

use super::args::CopyArgs;
use super::destination::{Destination, Existing};
use super::error::{CopyError, Reason};
use super::report::Report;
use super::retries::{Retries, sleep};
use super::source::{FetchError, Source};

/// An object is already there: `Some(report)` to skip, `None` to overwrite it, or
/// `DestinationExists`.
pub async fn decide_on_existing(
    destination: &Destination,
    existing: &Existing,
    source: &Source,
    args: &CopyArgs,
    cancel: &CancellationToken,
) -> Result<Option<Report>, CopyError> {
    let name = &destination.display;
    let skipped = |sha256: &str, message: String| Report {
        reason: Reason::Skipped,
        message: Some(message),
        object: name.clone(),
        size: Some(existing.size),
        sha256: Some(sha256.to_owned()),
        resumes: 0,
    };
    let size_ok = |size: u64| args.expected_size.is_none_or(|expected| expected == size);
    let verdict = match existing.verified_sha256() {
        None => Err(format!(
            "{name} already holds an object of {} bytes without a recorded SHA-256",
            existing.size
        )),
        Some(sha256) => match args.expected_sha256() {
            Some(expected) if expected == sha256 && size_ok(existing.size) => Ok(skipped(
                sha256,
                "the destination already holds the expected SHA-256".into(),
            )),
            Some(expected) => Err(format!(
                "{name} already holds {} bytes with SHA-256 {sha256}, not the expected {expected}",
                existing.size
            )),
            None => {
                let mut retries = Retries::new(args, cancel);
                let length = settled_length(source, args, &mut retries, cancel).await?;
                if length == existing.size && size_ok(length) {
                    Ok(skipped(
                        sha256,
                        format!(
                            "the destination already holds a verified copy of the same length \
                             ({length} bytes)"
                        ),
                    ))
                } else {
                    Err(format!(
                        "{name} already holds {} bytes with SHA-256 {sha256}; the master has \
                         {length} bytes",
                        existing.size
                    ))
                }
            }
        },
    };
    match verdict {
        Ok(report) => {
            tracing::info!("skipped: {}", report.message.as_deref().unwrap_or_default());
            Ok(Some(report))
        }
        Err(why) if args.overwrite => {
            tracing::warn!("{why}: replacing it (--overwrite)");
            Ok(None)
        }
        Err(why) => Err(CopyError::new(
            Reason::DestinationExists,
            format!("{why}; not replacing it without --overwrite"),
        )),
    }
}

/// The source's length once `--settle-checks` probes in a row, `--settle` apart, agree.
async fn settled_length(
    source: &Source,
    args: &CopyArgs,
    retries: &mut Retries<'_>,
    cancel: &CancellationToken,
) -> Result<u64, CopyError> {
    let mut last = None;
    let mut agreeing = 0;
    loop {
        let length = loop {
            let probe = tokio::select! {
                probe = source.length() => probe,
                _ = cancel.cancelled() => return Err(CopyError::interrupted()),
            };
            match probe {
                Ok(length) => break length,
                Err(FetchError::Transient(why)) => retries.failed(why, false).await?,
                Err(FetchError::Fatal(e)) => return Err(e),
            }
        };
        if last == Some(length) {
            agreeing += 1;
        } else {
            last = Some(length);
            agreeing = 1;
        }
        if agreeing >= args.settle_checks {
            return Ok(length);
        }
        sleep(args.settle, cancel).await?;
    }
}
