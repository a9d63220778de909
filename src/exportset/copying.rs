//! The copies a set's children run now, summed: what `status.copying` shows (each child's
//! `status.copy.progress`, as its controller read it from the copier's log).

use crate::resource::{CopyPhase, MasterExport};

use super::resource::SetCopying;

/// The sum over the children whose copy runs and has reported; `None` when none has.
pub fn sum(children: &[MasterExport]) -> Option<SetCopying> {
    let mut total = SetCopying {
        bytes_total: Some(0),
        ..SetCopying::default()
    };
    for child in children {
        let Some(copy) = child.status.as_ref().and_then(|s| s.copy.as_ref()) else {
            continue;
        };
        let Some(progress) = copy
            .progress
            .as_ref()
            .filter(|_| copy.phase == CopyPhase::Running)
        else {
            continue;
        };
        total.copies += 1;
        total.bytes_done += progress.bytes_done;
        total.bytes_per_second += progress.bytes_per_second;
        // Known only if every running copy knows its own.
        total.bytes_total = total
            .bytes_total
            .zip(progress.bytes_total)
            .map(|(a, b)| a + b);
    }
    (total.copies > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn child(phase: &str, progress: Option<serde_json::Value>) -> MasterExport {
        serde_json::from_value(json!({
            "apiVersion": "masterexport.io/v1alpha1", "kind": "MasterExport",
            "metadata": {"name": "c"},
            "spec": {"source": {"assetId": "a"}, "credentialsSecretRef": {"name": "mux"}},
            "status": {"copy": {"phase": phase, "destination": "s3://b/a", "progress": progress}},
        }))
        .unwrap()
    }

    #[test]
    fn running_copies_are_summed_and_a_total_is_known_only_if_each_is() {
        let a = child(
            "Running",
            Some(json!({"bytesDone": 10, "bytesTotal": 100, "bytesPerSecond": 5})),
        );
        let b = child(
            "Running",
            Some(json!({"bytesDone": 30, "bytesTotal": 50, "bytesPerSecond": 7})),
        );
        let done = child(
            "Succeeded",
            Some(json!({"bytesDone": 999, "bytesPerSecond": 999})),
        );
        let silent = child("Running", None);
        let summed = sum(&[a.clone(), b, done.clone(), silent]).unwrap();
        assert_eq!(
            (
                summed.copies,
                summed.bytes_done,
                summed.bytes_total,
                summed.bytes_per_second
            ),
            (2, 40, Some(150), 12)
        );
        let unknown = child(
            "Running",
            Some(json!({"bytesDone": 1, "bytesPerSecond": 1})),
        );
        assert_eq!(sum(&[a, unknown]).unwrap().bytes_total, None);
        assert_eq!(sum(&[done]), None);
    }
}
