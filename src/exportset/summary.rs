//! What the set's conditions say, from its plan (pure).

use crate::controller::conditions::Summary;

use super::plan::Plan;

/// Failed children named in a message; the rest are counted.
const NAMED: usize = 10;

/// Why the set cannot plan at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// The template is refused (a person must fix the spec).
    InvalidTemplate(String),
    /// The credentials are missing or refused by Mux (a person must fix them).
    Credentials(String),
    /// Listing the environment failed for now; retried.
    ScanFailed(String),
}

pub fn blocked(reason: &Blocked) -> Summary {
    match reason {
        Blocked::InvalidTemplate(m) => Summary::stalled("InvalidTemplate", m.clone()),
        Blocked::Credentials(m) => Summary::stalled("CredentialsInvalid", m.clone()),
        Blocked::ScanFailed(m) => {
            Summary::progressing("ScanFailed", format!("listing the assets failed: {m}"))
        }
    }
}

/// Ready when nothing selected is left to export, nothing failed, and the manifest (if any)
/// is current; Stalled (naming the failed children) while any failed, Reconciling while
/// children are waiting or at work or the manifest is not yet written (`manifest_pending`).
pub fn summarize(
    plan: &Plan,
    has_destination: bool,
    suspended: bool,
    manifest_pending: Option<&str>,
) -> Summary {
    let c = &plan.counts;
    let verb = if has_destination {
        "archived and verified"
    } else {
        "exported"
    };
    let mut message = format!("{}/{} {verb}", c.done, c.total);
    for (n, what) in [
        (c.in_flight, "in flight"),
        (c.waiting, "waiting"),
        (c.failed, "failed"),
        (c.skipped, "skipped (errored in Mux)"),
        (c.deleted, "deleted from Mux (kept)"),
    ] {
        if n > 0 {
            message.push_str(&format!(", {n} {what}"));
        }
    }
    let working = c.in_flight + c.waiting > 0;
    if c.failed > 0 {
        let mut names = plan
            .failed
            .iter()
            .take(NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if plan.failed.len() > NAMED {
            names.push_str(&format!(" and {} more", plan.failed.len() - NAMED));
        }
        return Summary {
            ready: false,
            reason: "ChildrenFailed".into(),
            message: format!("{message}; failed: {names}"),
            reconciling: working && !suspended,
            stalled: true,
        };
    }
    if !working {
        if let Some(why) = manifest_pending {
            return Summary::progressing("ManifestPending", format!("{message}; {why}"));
        }
        return Summary::ready(
            if has_destination {
                "Archived"
            } else {
                "Exported"
            },
            message,
        );
    }
    if suspended {
        return Summary {
            ready: false,
            reason: "Suspended".into(),
            message,
            reconciling: false,
            stalled: false,
        };
    }
    Summary::progressing("Exporting", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exportset::resource::SetCounts;

    fn plan(counts: SetCounts, failed: &[&str]) -> Plan {
        Plan {
            counts,
            failed: failed.iter().map(|s| s.to_string()).collect(),
            ..Plan::default()
        }
    }

    fn counts(total: u32, waiting: u32, in_flight: u32, done: u32, failed: u32) -> SetCounts {
        SetCounts {
            total,
            waiting,
            in_flight,
            done,
            failed,
            discovered: total,
            ..SetCounts::default()
        }
    }

    #[test]
    fn ready_only_when_every_selected_asset_is_done() {
        let cases = [
            (counts(3, 0, 0, 3, 0), true, "Archived", false, false),
            (counts(3, 1, 0, 2, 0), false, "Exporting", true, false),
            (counts(3, 0, 1, 2, 0), false, "Exporting", true, false),
            (counts(3, 0, 0, 2, 1), false, "ChildrenFailed", false, true),
            (counts(3, 0, 1, 1, 1), false, "ChildrenFailed", true, true),
            (counts(0, 0, 0, 0, 0), true, "Archived", false, false),
        ];
        for (c, ready, reason, reconciling, stalled) in cases {
            let s = summarize(
                &plan(c.clone(), &["x"; 1][..c.failed as usize]),
                true,
                false,
                None,
            );
            assert_eq!(
                (s.ready, s.reason.as_str(), s.reconciling, s.stalled),
                (ready, reason, reconciling, stalled),
                "{c:?}"
            );
        }
    }

    #[test]
    fn the_message_counts_and_names_the_failed_children() {
        let names: Vec<String> = (0..12).map(|i| format!("set-{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut c = counts(20, 0, 0, 8, 12);
        c.skipped = 2;
        let s = summarize(&plan(c, &refs), true, false, None);
        assert_eq!(
            s.message,
            "8/20 archived and verified, 12 failed, 2 skipped (errored in Mux); failed: \
             set-00, set-01, set-02, set-03, set-04, set-05, set-06, set-07, set-08, set-09 and 2 more"
        );
    }

    #[test]
    fn without_a_destination_done_means_exported() {
        let s = summarize(&plan(counts(2, 0, 0, 2, 0), &[]), false, false, None);
        assert_eq!(
            (s.reason.as_str(), s.message.as_str()),
            ("Exported", "2/2 exported")
        );
    }

    #[test]
    fn an_unwritten_manifest_keeps_a_done_set_reconciling() {
        let s = summarize(
            &plan(counts(2, 0, 0, 2, 0), &[]),
            true,
            false,
            Some("writing s3://b/m: 503"),
        );
        assert_eq!(
            (s.ready, s.reconciling, s.reason.as_str()),
            (false, true, "ManifestPending")
        );
        assert!(
            s.message.ends_with("writing s3://b/m: 503"),
            "{}",
            s.message
        );
    }

    #[test]
    fn a_suspended_set_is_neither_ready_nor_reconciling() {
        let s = summarize(&plan(counts(2, 2, 0, 0, 0), &[]), false, true, None);
        assert_eq!(
            (s.ready, s.reconciling, s.reason.as_str()),
            (false, false, "Suspended")
        );
    }

    #[test]
    fn credentials_stall_and_a_failed_scan_retries() {
        assert!(blocked(&Blocked::Credentials("401".into())).stalled);
        assert!(blocked(&Blocked::InvalidTemplate("x".into())).stalled);
        let s = blocked(&Blocked::ScanFailed("timed out".into()));
        assert!(s.reconciling && !s.stalled);
    }
}
