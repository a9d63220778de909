//! The result of a copy, for the controller: printed on stdout and written to the container's
//! termination message.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{CopyError, Reason};

/// Kubernetes keeps at most 4096 bytes of a termination message.
const MAX_MESSAGE: usize = 1024;

/// What the copy reports, as JSON: `{"reason":"Copied","object":"s3://b/k","size":N,
/// "sha256":"…","resumes":0}`. The controller parses it with `serde_json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub reason: Reason,
    /// Why it failed, or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The destination, as given: `s3://bucket/key`, `file:///path`, ...
    pub object: String,
    /// The master's size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The master's SHA-256 (lowercase hex), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How many times the download resumed after a transient failure.
    #[serde(default)]
    pub resumes: u32,
    /// For `Copied`: what was checked, comma-separated (see the `copy` module's "What a
    /// verified copy guarantees"), e.g. `stream-sha256,parts-crc64nvme,object-crc64nvme,
    /// read-back-sidecar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
}

impl Report {
    pub fn failure(error: &CopyError, object: String) -> Self {
        Report {
            reason: error.reason,
            message: Some(truncate(&error.message)),
            object,
            size: None,
            sha256: None,
            resumes: 0,
            verified: None,
        }
    }

    /// Prints the report on stdout and writes it to `termination_path` if that folder exists.
    pub fn emit(&self, termination_path: &Path) {
        let json = serde_json::to_string(self).expect("a report serialises");
        println!("{json}");
        let folder_exists = termination_path
            .parent()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir());
        if folder_exists && let Err(e) = std::fs::write(termination_path, &json) {
            tracing::warn!(
                "could not write the termination message to {}: {e}",
                termination_path.display()
            );
        }
    }
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_compact_json_that_round_trips() {
        let report = Report {
            reason: Reason::Copied,
            message: None,
            object: "s3://b/k".into(),
            size: Some(3),
            sha256: Some("ab".into()),
            resumes: 1,
            verified: None,
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            r#"{"reason":"Copied","object":"s3://b/k","size":3,"sha256":"ab","resumes":1}"#
        );
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }

    #[test]
    fn failures_carry_a_bounded_message() {
        let error = CopyError::new(Reason::UrlExpired, "é".repeat(2000));
        let report = Report::failure(&error, "gs://b/k".into());
        assert!(report.message.as_ref().unwrap().len() <= MAX_MESSAGE + 3);
        assert_eq!(report.reason, Reason::UrlExpired);
    }
}
