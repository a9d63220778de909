//! Conditions as kstatus and Flux read them: `Ready` always present; `Reconciling` and
//! `Stalled` present only while true. A condition's `lastTransitionTime` changes only
//! when its status flips, so watchers can tell how long something has been so.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// One condition's wanted state, before bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Wanted {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The summary of a reconcile, from which the three kstatus conditions follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Is the desired state reached (a fresh URL available, or access revoked)?
    pub ready: bool,
    pub reason: String,
    pub message: String,
    /// Still working towards it (requesting, preparing, renewing, retrying).
    pub reconciling: bool,
    /// Cannot progress without a person (bad credentials, asset errored, ...).
    pub stalled: bool,
}

impl Summary {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason: reason.into(),
            message: message.into(),
            reconciling: false,
            stalled: false,
        }
    }
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.into(),
            message: message.into(),
            reconciling: true,
            stalled: false,
        }
    }
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason: reason.into(),
            message: message.into(),
            reconciling: false,
            stalled: true,
        }
    }

    /// The conditions this summary stands for.
    pub fn wanted(&self) -> Vec<Wanted> {
        let mut wanted = vec![Wanted::new(
            READY,
            self.ready,
            &self.reason,
            self.message.clone(),
        )];
        if self.reconciling {
            wanted.push(Wanted::new(
                RECONCILING,
                true,
                &self.reason,
                self.message.clone(),
            ));
        }
        if self.stalled {
            wanted.push(Wanted::new(
                STALLED,
                true,
                &self.reason,
                self.message.clone(),
            ));
        }
        wanted
    }
}

/// The next conditions: the `managed` types as `wanted` says (absent from `wanted` means
/// removed), other types (e.g. `Copied`) kept as they were.
pub fn merge(
    previous: &[Condition],
    wanted: &[Wanted],
    managed: &[&str],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut next: Vec<Condition> = previous
        .iter()
        .filter(|c| {
            !managed.contains(&c.type_.as_str()) || wanted.iter().any(|w| w.type_ == c.type_)
        })
        .cloned()
        .collect();
    for w in wanted {
        let status = if w.status { "True" } else { "False" }.to_string();
        match next.iter_mut().find(|c| c.type_ == w.type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = now.clone();
                }
                existing.status = status;
                existing.reason = w.reason.clone();
                existing.message = w.message.clone();
                existing.observed_generation = generation;
            }
            None => next.push(Condition {
                type_: w.type_.to_string(),
                status,
                reason: w.reason.clone(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time: now.clone(),
            }),
        }
    }
    next.sort_by_key(|c| order(&c.type_));
    next
}

fn order(type_: &str) -> u8 {
    match type_ {
        READY => 0,
        RECONCILING => 1,
        STALLED => 2,
        _ => 3,
    }
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    const MANAGED: &[&str] = &[READY, RECONCILING, STALLED];

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = merge(
            &[],
            &Summary::progressing("Preparing", "m").wanted(),
            MANAGED,
            Some(1),
            &at(10),
        );
        let again = merge(
            &first,
            &Summary::progressing("Preparing", "m2").wanted(),
            MANAGED,
            Some(1),
            &at(20),
        );
        assert_eq!(find(&again, READY).unwrap().last_transition_time, at(10));
        assert_eq!(find(&again, READY).unwrap().message, "m2");
        let ready = merge(
            &again,
            &Summary::ready("UrlReady", "ok").wanted(),
            MANAGED,
            Some(2),
            &at(30),
        );
        let cond = find(&ready, READY).unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.last_transition_time.clone()),
            ("True", at(30))
        );
        assert_eq!(cond.observed_generation, Some(2));
        assert!(
            find(&ready, RECONCILING).is_none(),
            "Reconciling goes away when done"
        );
    }

    #[test]
    fn stalled_is_set_and_unmanaged_conditions_survive() {
        let copied = Condition {
            type_: "Copied".into(),
            status: "True".into(),
            reason: "Verified".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(1),
        };
        let next = merge(
            &[copied],
            &Summary::stalled("AssetErrored", "x").wanted(),
            MANAGED,
            None,
            &at(5),
        );
        assert_eq!(find(&next, STALLED).unwrap().status, "True");
        assert_eq!(find(&next, READY).unwrap().status, "False");
        assert!(find(&next, "Copied").is_some());
    }
}
