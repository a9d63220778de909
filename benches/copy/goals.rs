//! Issue 15's goals: the copier's throughput over a peer's, from rows of the same run.

use super::Row;

/// One goal: the copier at least `target` times as fast as `peer`, in one setting.
pub struct Goal {
    setting: &'static str,
    peer: &'static str,
    target: f64,
    /// MB/s of the copier and of the peer, when both ran.
    figures: Option<(f64, f64)>,
}

impl Goal {
    pub fn new(
        setting: &'static str,
        peer: &'static str,
        target: f64,
        ours: Option<&Row>,
        theirs: Option<&Row>,
    ) -> Goal {
        Goal {
            setting,
            peer,
            target,
            figures: ours.zip(theirs).map(|(o, t)| (o.mb_s(), t.mb_s())),
        }
    }

    /// The ratio, if measured.
    fn ratio(&self) -> Option<f64> {
        self.figures.map(|(ours, theirs)| ours / theirs)
    }
}

/// One line per goal: the figures, the ratio, met or not.
pub fn print(goals: &[Goal]) {
    println!("goals (issue 15), each ratio from this run:");
    for goal in goals {
        let wanted = format!(
            "{}: the copier ≥ {}× {}",
            goal.setting, goal.target, goal.peer
        );
        match (goal.figures, goal.ratio()) {
            (Some((ours, theirs)), Some(ratio)) => println!(
                "  {wanted}: {ours:.1} MB/s vs {theirs:.1} MB/s = {ratio:.2}× — {}",
                if ratio >= goal.target {
                    "met"
                } else {
                    "NOT met"
                }
            ),
            _ => println!("  {wanted}: not measured (a row is missing above)"),
        }
    }
}
