//! The copier against the faults of a master that is not whole yet, or not the same from one
//! request to the next (issue 13), with mux-sim and MinIO: nothing truncated, mixed or foreign
//! is ever published under the final key, nothing is reported verified that is not the master
//! byte for byte, and every failure names its reason.

mod copy_support;

use mux_master_operator::copy::Reason;
use mux_sim::content;

use copy_support::{
    Copier, MIB, Master, assert_nothing_left, minio, object_sha256, start_sim, store,
};

/// The copy reported `Copied` the whole master, and MinIO holds exactly it.
async fn assert_copied_whole(outcome: &copy_support::Outcome, master: &Master, key: &str) {
    outcome.expect(Reason::Copied);
    let expected = master.sha256();
    assert_eq!(
        (outcome.report.size, outcome.report.sha256.as_deref()),
        (Some(master.size), Some(expected.as_str())),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        object_sha256(&store(minio()), key).await,
        (master.size, expected)
    );
}

/// Asserts that mux-sim still serves a prefix of the master (the test would prove nothing
/// otherwise).
async fn assert_still_written(master: &Master) {
    let view = master.admin.inspect(&master.id).await.unwrap();
    let length = view["current_length"].as_u64().unwrap();
    assert!(
        length < master.size,
        "the master should still be written: {view}"
    );
}

// --- (1) The master is a whole MP4 -----------------------------------------------------------

/// The writer holds still at 60% for 5 s, 25 times the settle checks' span: by time alone the
/// file looks final. Its `mdat` is cut and its `moov` missing, so the copy reads on.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_that_pauses_longer_than_the_settle_checks_is_not_archived_truncated() {
    let sim = start_sim(&[
        "--growth-initial-fraction",
        "0.6",
        "--growth-pause",
        "5s",
        "--growth",
        "500ms",
    ]);
    let master = Master::new(&sim, 8 * MIB).await;
    let key = format!("copy/faults/paused/{}.mp4", master.id);
    assert_still_written(&master).await;

    let outcome = Copier::to_minio(&master, minio(), &key).run().await;

    assert_copied_whole(&outcome, &master, &key).await;
    assert!(
        outcome.stderr.contains("is not complete"),
        "the copier said why it read on:\n{}",
        outcome.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_that_stays_truncated_fails_as_incomplete_and_nothing_is_published() {
    // The last 100 bytes (inside the moov) are never written.
    let sim = start_sim(&["--master-truncate", "100"]);
    let master = Master::new(&sim, 8 * MIB).await;
    let key = format!("copy/faults/truncated/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&["--incomplete-wait", "1s"])
        .run()
        .await;

    outcome.expect(Reason::MasterIncomplete);
    assert_eq!(outcome.code, 10);
    let message = outcome.report.message.clone().unwrap_or_default();
    assert!(message.contains("\"moov\""), "{message}");
    assert_nothing_left(&store(minio()), &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_structure_check_can_be_turned_off_for_a_master_that_is_not_mp4() {
    let sim = start_sim(&["--master-truncate", "100"]);
    let master = Master::new(&sim, 8 * MIB).await;
    let key = format!("copy/faults/unchecked/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&["--skip-mp4-check"])
        .run()
        .await;

    // What the server has, as it has it: the check is what refused it above.
    outcome.expect(Reason::Copied);
    let served = master.size - 100;
    let expected = content::prefix_sha256_hex(master.seed, master.size, served);
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        object_sha256(&store(minio()), &key).await,
        (served, expected)
    );
}
