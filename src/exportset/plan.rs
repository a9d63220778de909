//! The set's decision, pure: from the last scan and the children, which children to create
//! now (at most `maxInFlight` at work), and the counts the status shows.

use std::collections::{BTreeMap, HashSet};

use super::resource::SetCounts;
use super::selector::Disposition;

/// A selected asset of the last scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub asset_id: String,
    pub created_at: Option<i64>,
    pub disposition: Disposition,
}

/// Where a child MasterExport stands, as the set counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Between "access requested" and done: holds one of the `maxInFlight` slots.
    InFlight,
    /// Master available (no destination) or archived and verified.
    Done,
    /// Needs a person; holds no slot, is never retried by the set.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: String,
    pub asset_id: String,
    pub state: ChildState,
    /// The verified archive's size, once done.
    pub archived_bytes: Option<u64>,
}

/// What the last scan saw.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The selected assets.
    pub selected: Vec<Candidate>,
    /// Every asset ID the environment listed, selected or not (to tell a deleted asset).
    pub present: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Asset IDs to create a child for now, oldest asset first.
    pub create: Vec<String>,
    /// Counts after the creations.
    pub counts: SetCounts,
    pub bytes_archived: u64,
    /// Failed children, by name (sorted).
    pub failed: Vec<String>,
    /// Children whose asset is gone from Mux (sorted): kept, and marked.
    pub gone: Vec<String>,
}

/// Plans one reconcile. `admit` is false while the set is suspended.
pub fn plan(scan: &Scan, children: &[Child], max_in_flight: u32, admit: bool) -> Plan {
    let mut plan = Plan::default();
    let mut has_child: HashSet<&str> = HashSet::new();
    for child in children {
        has_child.insert(&child.asset_id);
        if child.state == ChildState::Done {
            plan.bytes_archived += child.archived_bytes.unwrap_or(0);
        }
        if !scan.present.contains(&child.asset_id) {
            plan.gone.push(child.name.clone());
            plan.counts.deleted += 1;
            continue;
        }
        match child.state {
            ChildState::InFlight => plan.counts.in_flight += 1,
            ChildState::Done => plan.counts.done += 1,
            ChildState::Failed => {
                plan.counts.failed += 1;
                plan.failed.push(child.name.clone());
            }
        }
    }
    // Oldest first, then by ID: a deterministic order that a restart repeats.
    let mut ready: BTreeMap<(i64, &str), &Candidate> = BTreeMap::new();
    for candidate in &scan.selected {
        plan.counts.discovered += 1;
        if has_child.contains(candidate.asset_id.as_str()) {
            continue;
        }
        match candidate.disposition {
            Disposition::Skip => plan.counts.skipped += 1,
            Disposition::Wait => plan.counts.waiting += 1,
            Disposition::Export => {
                plan.counts.waiting += 1;
                let created = candidate.created_at.unwrap_or(i64::MAX);
                ready.insert((created, &candidate.asset_id), candidate);
            }
        }
    }
    let free = max_in_flight.saturating_sub(plan.counts.in_flight) as usize;
    if admit {
        plan.create = ready
            .values()
            .take(free)
            .map(|c| c.asset_id.clone())
            .collect();
    }
    let created = plan.create.len() as u32;
    plan.counts.waiting -= created;
    plan.counts.in_flight += created;
    let c = &plan.counts;
    plan.counts.total = c.waiting + c.in_flight + c.done + c.failed;
    plan.failed.sort();
    plan.gone.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, created: i64, disposition: Disposition) -> Candidate {
        Candidate {
            asset_id: id.into(),
            created_at: Some(created),
            disposition,
        }
    }

    fn child(id: &str, state: ChildState) -> Child {
        Child {
            name: format!("set-{}", id.to_lowercase()),
            asset_id: id.into(),
            state,
            archived_bytes: (state == ChildState::Done).then_some(100),
        }
    }

    fn scan(selected: Vec<Candidate>, extra_present: &[&str]) -> Scan {
        let mut present: HashSet<String> = selected.iter().map(|c| c.asset_id.clone()).collect();
        present.extend(extra_present.iter().map(|s| s.to_string()));
        Scan { selected, present }
    }

    fn ready(n: usize) -> Vec<Candidate> {
        // Created in reverse order of their IDs, to show the age decides.
        (0..n)
            .map(|i| candidate(&format!("A{i:03}"), 1000 - i as i64, Disposition::Export))
            .collect()
    }

    #[test]
    fn admits_only_up_to_max_in_flight_oldest_first() {
        let plan = plan(&scan(ready(10), &[]), &[], 3, true);
        assert_eq!(plan.create, vec!["A009", "A008", "A007"]);
        assert_eq!(plan.counts.in_flight, 3);
        assert_eq!(plan.counts.waiting, 7);
        assert_eq!(plan.counts.total, 10);
    }

    #[test]
    fn in_flight_children_hold_their_slots_and_done_or_failed_ones_free_them() {
        let s = scan(ready(10), &[]);
        let cases = [
            (vec![child("A009", ChildState::InFlight)], 2),
            (
                vec![
                    child("A009", ChildState::InFlight),
                    child("A008", ChildState::InFlight),
                    child("A007", ChildState::InFlight),
                ],
                0,
            ),
            (
                vec![
                    child("A009", ChildState::Done),
                    child("A008", ChildState::Failed),
                ],
                3,
            ),
        ];
        for (children, want) in cases {
            let p = plan(&s, &children, 3, true);
            assert_eq!(p.create.len(), want, "{children:?}");
            assert!(p.counts.in_flight <= 3);
            assert!(
                !p.create
                    .iter()
                    .any(|id| children.iter().any(|c| &c.asset_id == id))
            );
        }
    }

    #[test]
    fn more_in_flight_than_allowed_admits_nothing() {
        // maxInFlight lowered while 5 are at work.
        let children: Vec<Child> = ["A009", "A008", "A007", "A006", "A005"]
            .iter()
            .map(|id| child(id, ChildState::InFlight))
            .collect();
        let p = plan(&scan(ready(10), &[]), &children, 2, true);
        assert!(p.create.is_empty());
        assert_eq!(p.counts.in_flight, 5);
    }

    #[test]
    fn a_suspended_set_creates_nothing_but_counts() {
        let p = plan(&scan(ready(4), &[]), &[], 3, false);
        assert!(p.create.is_empty());
        assert_eq!((p.counts.waiting, p.counts.total), (4, 4));
    }

    #[test]
    fn errored_assets_are_skipped_and_preparing_ones_wait_without_a_slot() {
        let s = scan(
            vec![
                candidate("E1", 1, Disposition::Skip),
                candidate("P1", 2, Disposition::Wait),
                candidate("R1", 3, Disposition::Export),
            ],
            &[],
        );
        let p = plan(&s, &[], 10, true);
        assert_eq!(p.create, vec!["R1"]);
        assert_eq!(p.counts.skipped, 1);
        assert_eq!(p.counts.waiting, 1);
        assert_eq!(p.counts.discovered, 3);
        assert_eq!(p.counts.total, 2, "skipped assets are not in the total");
    }

    #[test]
    fn a_deleted_assets_child_is_kept_counted_apart_and_its_bytes_stay() {
        let s = scan(vec![candidate("A1", 1, Disposition::Export)], &[]);
        let children = [
            child("A1", ChildState::Done),
            child("GONE", ChildState::Done),
            child("GONE2", ChildState::Failed),
        ];
        let p = plan(&s, &children, 10, true);
        assert_eq!(p.gone, vec!["set-gone", "set-gone2"]);
        assert_eq!(p.counts.deleted, 2);
        assert_eq!((p.counts.done, p.counts.failed, p.counts.total), (1, 0, 1));
        assert_eq!(p.bytes_archived, 200);
        assert!(
            p.failed.is_empty(),
            "a deleted asset's child is not a failure of the set"
        );
    }

    #[test]
    fn a_child_outside_the_selector_but_still_in_mux_is_counted_not_gone() {
        let s = scan(vec![], &["OLD"]);
        let p = plan(&s, &[child("OLD", ChildState::InFlight)], 1, true);
        assert!(p.gone.is_empty());
        assert_eq!(p.counts.in_flight, 1);
    }

    #[test]
    fn failed_children_are_named_in_order() {
        let s = scan(ready(3), &[]);
        let children = [
            child("A002", ChildState::Failed),
            child("A000", ChildState::Failed),
        ];
        let p = plan(&s, &children, 1, true);
        assert_eq!(p.failed, vec!["set-a000", "set-a002"]);
        assert_eq!(p.create, vec!["A001"]);
    }
}
