//! The copier resumes what breaks and waits for what grows: a dropped connection resumes with
//! `Range` into the same upload and hash, failures without progress are bounded, and a master
//! still growing after `ready` is not archived truncated.

mod copy_support;

use mux_master_operator::copy::Reason;

use copy_support::{
    Copier, MIB, Master, assert_no_staging_left, assert_nothing_left, minio, object_sha256,
    start_sim, store,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_midway_resumes_with_range_and_the_object_is_exact() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    // Cut inside the first ranges (the copier reads 2 MiB ranges in parallel).
    master.cut_downloads(2, MIB / 2).await;
    let minio = minio();
    let key = format!("copy/dropped/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--retry-delay", "50ms"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    assert_eq!(outcome.report.resumes, 2, "{}", outcome.stderr);
    // The first request and the two resumes were all range requests (206).
    assert!(master.downloads(206).await >= 3);
    assert_eq!(master.downloads(200).await, 0);
    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    let store = store(minio);
    assert_eq!(object_sha256(&store, &key).await, (48 * MIB, expected));
    assert_no_staging_left(&store, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_without_progress_are_retried_a_bounded_number_of_times() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    // Every download is cut before its first byte.
    master.cut_downloads(1000, 0).await;
    let minio = minio();
    let key = format!("copy/exhausted/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--max-retries", "2", "--retry-delay", "10ms"])
        .run()
        .await;
    outcome.expect(Reason::RetriesExhausted);

    // The first attempt and two retries.
    assert_eq!(master.downloads(206).await, 3);
    assert_nothing_left(&store(minio), &key, &outcome).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_growing_master_is_not_archived_truncated() {
    let sim = start_sim(&["--growth", "5s", "--growth-initial-fraction", "0.9"]);
    let master = Master::new(&sim, 32 * MIB).await;
    let view = master.admin.inspect(&master.id).await.unwrap();
    let early_length = view["current_length"].as_u64().unwrap();
    assert!(
        early_length < master.size,
        "the master should still be growing: {view}"
    );
    let minio = minio();
    let key = format!("copy/growing/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    outcome.expect(Reason::Copied);

    assert!(outcome.stderr.contains("grew past"), "{}", outcome.stderr);
    let expected = master.sha256();
    assert_eq!(outcome.report.size, Some(32 * MIB));
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        object_sha256(&store(minio), &key).await,
        (32 * MIB, expected)
    );
}
