//! The copier against the faults of a master that is not whole yet, or not the same from one
//! request to the next (issue 13), with mux-sim and MinIO: nothing truncated, mixed or foreign
//! is ever published under the final key, nothing is reported verified that is not the master
//! byte for byte, and every failure names its reason.

mod copy_support;

use mux_master_operator::copy::Reason;
use mux_sim::content;

use testenv::MuxSim;

use copy_support::{
    Copier, MIB, Master, Outcome, assert_no_staging_left, assert_nothing_left, file_sha256, minio,
    object_sha256, recorded_digest, start_sim, store,
};

/// The copy reported `Copied` the whole master, and MinIO holds exactly it.
async fn assert_copied_whole(outcome: &Outcome, master: &Master, key: &str) {
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

/// A master of 8 MiB from a mux-sim started with `switches`, copied to MinIO (with `args`)
/// while it is still written: the sim (to keep it running), the master, its key, the outcome.
async fn copy_while_written(
    switches: &[&str],
    name: &str,
    args: &[&str],
) -> (MuxSim, Master, String, Outcome) {
    let sim = start_sim(switches);
    let master = Master::new(&sim, 8 * MIB).await;
    let key = format!("copy/faults/{name}/{}.mp4", master.id);
    assert_still_written(&master).await;
    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(args)
        .run()
        .await;
    (sim, master, key, outcome)
}

/// Asserts that the copier's log says `text` (why it waited, restarted, ...).
fn assert_logged(outcome: &Outcome, text: &str) {
    assert!(
        outcome.stderr.contains(text),
        "the copier's log lacks {text:?}:\n{}",
        outcome.stderr
    );
}

// --- (1) The master is a whole MP4 -----------------------------------------------------------

/// The writer holds still at 60% for 5 s, 25 times the settle checks' span: by time alone the
/// file looks final. Its `mdat` is cut and its `moov` missing, so the copy reads on.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_that_pauses_longer_than_the_settle_checks_is_not_archived_truncated() {
    let pause = [
        "--growth-initial-fraction",
        "0.6",
        "--growth-pause",
        "5s",
        "--growth",
        "500ms",
    ];
    let (_sim, master, key, outcome) = copy_while_written(&pause, "paused", &[]).await;

    assert_copied_whole(&outcome, &master, &key).await;
    assert_logged(&outcome, "is not complete");
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
    assert_nothing_left(&store(minio()), &key, &outcome).await;
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

// --- (3) Two runs on one key -------------------------------------------------------------------

/// Two runs copy two different masters of one size to one key at the same time. They used to
/// share `<key>.mmo-partial`: one run's bytes were published under the other's digest, and the
/// loser's read-back deleted the winner's object. Now each stages under its own name, the
/// first to publish wins, and the other publishes nothing and deletes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_on_one_key_never_mix_and_the_loser_deletes_nothing() {
    let sim = start_sim(&[]);
    let a = Master::new(&sim, 16 * MIB).await;
    let b = Master::new(&sim, 16 * MIB).await;
    let key = format!("copy/faults/race/{}.mp4", a.id);

    let (copy_a, copy_b) = (
        Copier::to_minio(&a, minio(), &key),
        Copier::to_minio(&b, minio(), &key),
    );
    let (ran_a, ran_b) = tokio::join!(copy_a.run(), copy_b.run());

    let reasons = (ran_a.report.reason, ran_b.report.reason);
    let (winner, won, lost) = match reasons {
        (Reason::Copied, _) => (&a, &ran_a, &ran_b),
        (_, Reason::Copied) => (&b, &ran_b, &ran_a),
        _ => panic!(
            "one run should win: {reasons:?}\n{}\n{}",
            ran_a.stderr, ran_b.stderr
        ),
    };
    lost.expect(Reason::DestinationExists);
    assert_copied_whole(won, winner, &key).await;
    let store = store(minio());
    assert_eq!(
        recorded_digest(&store, &key).await,
        Some((winner.sha256(), (16 * MIB).to_string())),
        "the digest recorded is the one of the bytes stored"
    );
    assert_no_staging_left(&store, &key).await;
}

/// The same race on a `file://` destination: the name is taken by a hard link, which fails
/// when another run's file is already there.
#[tokio::test(flavor = "multi_thread")]
async fn two_runs_on_one_file_never_mix() {
    let sim = start_sim(&[]);
    let a = Master::new(&sim, 8 * MIB).await;
    let b = Master::new(&sim, 8 * MIB).await;
    let volume = tempfile::tempdir().unwrap();
    let file = volume.path().join("master.mp4");
    let destination = url::Url::from_file_path(&file).unwrap().to_string();

    let (copy_a, copy_b) = (Copier::new(&a, &destination), Copier::new(&b, &destination));
    let (ran_a, ran_b) = tokio::join!(copy_a.run(), copy_b.run());

    let reasons = (ran_a.report.reason, ran_b.report.reason);
    let (winner, lost) = match reasons {
        (Reason::Copied, _) => (&a, &ran_b),
        (_, Reason::Copied) => (&b, &ran_a),
        _ => panic!(
            "one run should win: {reasons:?}\n{}\n{}",
            ran_a.stderr, ran_b.stderr
        ),
    };
    lost.expect(Reason::DestinationExists);
    assert_eq!(file_sha256(&file), (8 * MIB, winner.sha256()));
    let mut names: Vec<String> = std::fs::read_dir(volume.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["master.mp4", "master.mp4.sha256"]);
}

// --- (4) A validator that changes as the master grows -----------------------------------------

/// A master that grows for 3 s from half its size, with validators that change as it grows.
const GROWING_WITH_VALIDATORS: [&str; 5] = [
    "--master-validators",
    "--growth",
    "3s",
    "--growth-initial-fraction",
    "0.5",
];

/// Each growth changes the strong `ETag` (and `Last-Modified`), so a resume with `If-Range` gets
/// the whole new file: a restart. It used to end as `VerificationFailed` (exit 5, permanent)
/// once the restarts ran out; the copy now waits for the file to hold still, then restarts.
#[tokio::test(flavor = "multi_thread")]
async fn a_validator_that_changes_as_the_master_grows_restarts_the_copy_which_ends_whole() {
    let (_sim, master, key, outcome) =
        copy_while_written(&GROWING_WITH_VALIDATORS, "validators", &[]).await;

    assert_copied_whole(&outcome, &master, &key).await;
    assert_logged(&outcome, "starting over");
    assert!(
        master.downloads(200).await >= 1,
        "a stale If-Range got the whole file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_that_changes_past_the_restart_budget_ends_retryable_with_nothing_published() {
    let no_restart = ["--max-restarts", "0"];
    let (_sim, _master, key, outcome) =
        copy_while_written(&GROWING_WITH_VALIDATORS, "changing", &no_restart).await;

    // Retryable (a later run finds the master done), not a permanent verification failure.
    outcome.expect(Reason::RetriesExhausted);
    let message = outcome.report.message.clone().unwrap_or_default();
    assert!(message.contains("kept changing"), "{message}");
    assert_nothing_left(&store(minio()), &key, &outcome).await;
}

// --- (5) The growth checks as a second guard: a minimum age after ready --------------------------

/// With the structure check off (a master that is not MP4), only time can tell: the copy calls
/// the length final no sooner than `--min-age` after the time the master became ready. The
/// writer pauses for 3 s at 60%; by the settle checks alone, that prefix was archived.
#[tokio::test(flavor = "multi_thread")]
async fn the_length_is_final_only_a_minimum_age_after_the_master_became_ready() {
    let sim = start_sim(&[
        "--growth-initial-fraction",
        "0.6",
        "--growth-pause",
        "3s",
        "--growth",
        "500ms",
    ]);
    let master = Master::new(&sim, 8 * MIB).await;
    let key = format!("copy/faults/min-age/{}.mp4", master.id);
    let view = master.admin.inspect(&master.id).await.unwrap();
    let ready_ms = view["master_ready_unix_ms"].as_i64().expect("a ready time");
    let ready_at = jiff::Timestamp::from_millisecond(ready_ms)
        .unwrap()
        .to_string();
    assert_still_written(&master).await;

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&[
            "--skip-mp4-check",
            "--master-ready-at",
            &ready_at,
            "--min-age",
            "5s",
        ])
        .run()
        .await;

    assert_copied_whole(&outcome, &master, &key).await;
    assert_logged(&outcome, "became ready less than");
}

// --- A file:// destination stays on its volume -------------------------------------------------

/// `file:///<volume>/in/../../escaped.mp4` passed a prefix check on the volume's path and was
/// written outside it, reported `Copied`.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_destination_that_leaves_its_volume_is_refused_and_nothing_is_written() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, MIB).await;
    let outside = tempfile::tempdir().unwrap();
    let volume = outside.path().join("volume");
    std::fs::create_dir_all(volume.join("in")).unwrap();
    let escaping = format!("file://{}/in/../../escaped.mp4", volume.display());

    let refused = Copier::new(&master, &escaping).run().await;
    refused.expect(Reason::BadInput);
    let encoded = format!("file://{}/in/%2e%2e/%2E%2E/escaped.mp4", volume.display());
    Copier::new(&master, &encoded)
        .run()
        .await
        .expect(Reason::BadInput);
    let elsewhere = format!("file://{}/escaped.mp4", outside.path().display());
    let root = volume.display().to_string();
    Copier::new(&master, &elsewhere)
        .args(&["--file-root", &root])
        .run()
        .await
        .expect(Reason::BadInput);

    assert!(!outside.path().join("escaped.mp4").exists());
    assert_eq!(master.downloads(206).await, 0, "nothing was downloaded");
    let inside = format!("file://{}/in/master.mp4", volume.display());
    Copier::new(&master, &inside)
        .args(&["--file-root", &root])
        .run()
        .await
        .expect(Reason::Copied);
}

// --- Faults of the download itself ----------------------------------------------------------

/// A download that stops sending without closing: the read timeout gives up on it, and the copy
/// resumes with `Range` where it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_download_that_stalls_without_closing_is_resumed_after_the_read_timeout() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let stall = serde_json::json!({"master_stalls": 1, "master_stall_after": MIB});
    master.admin.configure(stall).await.unwrap();
    let key = format!("copy/faults/stalled/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&["--read-timeout", "1s", "--retry-delay", "50ms"])
        .run()
        .await;

    assert_copied_whole(&outcome, &master, &key).await;
    assert_eq!(outcome.report.resumes, 1, "{}", outcome.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_errors_on_the_download_are_retried_and_a_403_ends_as_expired() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 4 * MIB).await;
    for status in [502, 503, 504] {
        let errors = serde_json::json!({"master_errors": 1, "master_error_status": status});
        master.admin.configure(errors).await.unwrap();
        let key = format!("copy/faults/gateway-{status}/{}.mp4", master.id);
        let outcome = Copier::to_minio(&master, minio(), &key)
            .args(&["--retry-delay", "50ms"])
            .run()
            .await;
        assert_copied_whole(&outcome, &master, &key).await;
        assert_eq!(master.downloads(status).await, 1);
    }
    let forbidden = serde_json::json!({"master_errors": 1, "master_error_status": 403});
    master.admin.configure(forbidden).await.unwrap();
    let key = format!("copy/faults/forbidden/{}.mp4", master.id);
    let outcome = Copier::to_minio(&master, minio(), &key).run().await;
    outcome.expect(Reason::UrlExpired);
    assert_nothing_left(&store(minio()), &key, &outcome).await;
}
