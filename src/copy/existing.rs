//! An object is already at the destination: skip it, replace it, or refuse. Pure decisions.
//!
//! It is skipped only when its recorded digest equals one derived from the source: the
//! `--expected-sha256` of a previous verified copy (then without contacting the source), or
//! the digest of this run's own stream of the master. A length, or a digest the object merely
//! carries, proves nothing: anything else is a different object, `DestinationExists` unless
//! `--overwrite`.

use super::error::{CopyError, Reason};
use super::records::Existing;
use super::report::Report;

/// What to do about the object already at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnExisting {
    /// It is the expected master: skip, with this report.
    Skip(Report),
    /// A different object, to be replaced (`--overwrite`).
    Replace,
    /// An object we verified once: stream the master, then compare its digest with this
    /// (see [`after_streaming`]).
    CompareWith { sha256: String, size: u64 },
}

/// What the copy knows of the source before streaming it.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub sha256: Option<&'a str>,
    pub size: Option<u64>,
    pub overwrite: bool,
}

/// The decision before anything is downloaded.
pub fn before_streaming(
    name: &str,
    existing: &Existing,
    expected: Expected<'_>,
) -> Result<OnExisting, CopyError> {
    let Some(sha256) = existing.verified_sha256() else {
        return different(
            format!(
                "{name} already holds an object of {} bytes without a recorded SHA-256",
                existing.size
            ),
            expected.overwrite,
        );
    };
    let size_ok = expected.size.is_none_or(|size| size == existing.size);
    match expected.sha256 {
        Some(wanted) if wanted == sha256 && size_ok => Ok(OnExisting::Skip(skipped(
            name,
            existing,
            "the destination already holds the expected SHA-256",
        ))),
        Some(wanted) => different(
            format!(
                "{name} already holds {} bytes with SHA-256 {sha256}, not the expected {wanted}",
                existing.size
            ),
            expected.overwrite,
        ),
        None => Ok(OnExisting::CompareWith {
            sha256: sha256.to_owned(),
            size: existing.size,
        }),
    }
}

/// The decision once this run streamed the master (`size` bytes, `sha256`), for an object
/// that was to be compared: `Some(report)` to skip, `None` to publish over it.
pub fn after_streaming(
    name: &str,
    recorded: (&str, u64),
    streamed: (&str, u64),
    overwrite: bool,
) -> Result<Option<Report>, CopyError> {
    let ((recorded_sha, recorded_size), (sha256, size)) = (recorded, streamed);
    if recorded_sha == sha256 && recorded_size == size {
        let existing = Existing {
            size,
            sha256: Some(sha256.to_owned()),
            recorded_size: Some(size),
            e_tag: None,
        };
        return Ok(Some(skipped(
            name,
            &existing,
            "the destination already holds this master (its SHA-256 is this run's stream's)",
        )));
    }
    let why = format!(
        "{name} already holds {recorded_size} bytes with SHA-256 {recorded_sha}; the master has \
         {size} bytes with SHA-256 {sha256}"
    );
    replace_or_refuse(why, overwrite).map(|()| None)
}

fn skipped(name: &str, existing: &Existing, why: &str) -> Report {
    tracing::info!("skipped: {why}");
    Report {
        reason: Reason::Skipped,
        message: Some(why.to_owned()),
        object: name.to_owned(),
        size: Some(existing.size),
        sha256: existing.sha256.clone(),
        resumes: 0,
        verified: None,
    }
}

/// A different object: replaced with `--overwrite` (`Ok`), else `DestinationExists`.
fn replace_or_refuse(why: String, overwrite: bool) -> Result<(), CopyError> {
    if overwrite {
        tracing::warn!("{why}: replacing it (--overwrite)");
        return Ok(());
    }
    Err(CopyError::new(
        Reason::DestinationExists,
        format!("{why}; not replacing it without --overwrite"),
    ))
}

fn different(why: String, overwrite: bool) -> Result<OnExisting, CopyError> {
    replace_or_refuse(why, overwrite).map(|()| OnExisting::Replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(sha: &str, size: u64) -> Existing {
        Existing {
            size,
            sha256: Some(sha.to_owned()),
            recorded_size: Some(size),
            e_tag: None,
        }
    }

    fn expected(sha256: Option<&str>, overwrite: bool) -> Expected<'_> {
        Expected {
            sha256,
            size: None,
            overwrite,
        }
    }

    #[test]
    fn the_expected_digest_skips_without_streaming_and_another_is_refused() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let decision = before_streaming("s3://b/k", &ours(&a, 10), expected(Some(&a), false));
        assert!(matches!(decision, Ok(OnExisting::Skip(r)) if r.sha256.as_deref() == Some(&*a)));
        let refused = before_streaming("s3://b/k", &ours(&a, 10), expected(Some(&b), false));
        assert_eq!(refused.unwrap_err().reason, Reason::DestinationExists);
        let replaced = before_streaming("s3://b/k", &ours(&a, 10), expected(Some(&b), true));
        assert_eq!(replaced.unwrap(), OnExisting::Replace);
        let wrong_size = Expected {
            size: Some(11),
            ..expected(Some(&a), false)
        };
        let refused = before_streaming("s3://b/k", &ours(&a, 10), wrong_size);
        assert_eq!(refused.unwrap_err().reason, Reason::DestinationExists);
    }

    #[test]
    fn without_an_expected_digest_a_recorded_one_is_only_compared_after_streaming() {
        let a = "a".repeat(64);
        let decision = before_streaming("s3://b/k", &ours(&a, 10), expected(None, false));
        assert_eq!(
            decision.unwrap(),
            OnExisting::CompareWith {
                sha256: a.clone(),
                size: 10
            }
        );
        let foreign = Existing {
            size: 10,
            sha256: None,
            recorded_size: None,
            e_tag: None,
        };
        let refused = before_streaming("s3://b/k", &foreign, expected(None, false));
        assert_eq!(refused.unwrap_err().reason, Reason::DestinationExists);
    }

    #[test]
    fn after_streaming_only_the_same_digest_and_size_skip() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let same = after_streaming("s3://b/k", (&a, 10), (&a, 10), false).unwrap();
        assert_eq!(same.unwrap().reason, Reason::Skipped);
        // Same length, another digest: a different object, whatever it carries.
        let other = after_streaming("s3://b/k", (&b, 10), (&a, 10), false);
        assert_eq!(other.unwrap_err().reason, Reason::DestinationExists);
        let longer = after_streaming("s3://b/k", (&a, 10), (&a, 11), false);
        assert_eq!(longer.unwrap_err().reason, Reason::DestinationExists);
        assert_eq!(
            after_streaming("s3://b/k", (&b, 10), (&a, 10), true).unwrap(),
            None
        );
    }
}
