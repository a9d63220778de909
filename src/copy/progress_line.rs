//! The copier's progress as the controller reads it: one JSON line on stderr, in the pod's
//! log, every `--progress-interval` while bytes flow:
//!
//! ```json
//! {"mmoCopyProgress":{"done":1048576,"total":131072000,"bytesPerSecond":2500000}}
//! ```
//!
//! Independent of the log format and level (the controller reads the last such line of the
//! log's tail, `pods/log`): the copy pod gets no API token and writes nothing itself. Stdout
//! stays for the report alone.

use serde::{Deserialize, Serialize};

/// The key the line is known by.
const KEY: &str = "mmoCopyProgress";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressLine {
    /// Bytes received (and hashed) so far.
    pub done: u64,
    /// The master's length, when the source said it (it may still grow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Since the previous line.
    pub bytes_per_second: u64,
}

impl ProgressLine {
    /// The line, as printed.
    pub fn render(&self) -> String {
        serde_json::json!({ KEY: self }).to_string()
    }

    /// Prints the line on stderr (the hook `Progress::log` calls).
    pub fn emit(&self) {
        eprintln!("{}", self.render());
    }

    /// The last progress line in a log's text, if any (other lines are skipped).
    pub fn last_in(log: &str) -> Option<ProgressLine> {
        log.lines().rev().find_map(|line| {
            let line = line.trim();
            if !line.starts_with('{') || !line.contains(KEY) {
                return None;
            }
            let mut value: serde_json::Value = serde_json::from_str(line).ok()?;
            serde_json::from_value(value.get_mut(KEY)?.take()).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_read_back_among_other_logs() {
        let early = ProgressLine {
            done: 10,
            total: Some(100),
            bytes_per_second: 5,
        };
        let late = ProgressLine {
            done: 60,
            total: None,
            bytes_per_second: 25,
        };
        let log = format!(
            "{{\"level\":\"INFO\",\"fields\":{{\"message\":\"copied\"}}}}\n{}\nnot json\n{}\n{{\"mmoCopyProgress\":\"garbled\"}}\n",
            early.render(),
            late.render()
        );
        assert_eq!(ProgressLine::last_in(&log), Some(late));
        assert_eq!(ProgressLine::last_in("nothing here\n"), None);
        assert!(
            !late.render().contains("total"),
            "an unknown total is left out"
        );
    }
}
