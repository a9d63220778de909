//! The copier reads the master in parallel ranges from a CDN that caps each connection
//! (mux-sim's pacing), into MinIO: several ranges in flight, the object exact; and a server
//! that ignores `Range` is read in one stream.

mod copy_support;

use mux_master_operator::copy::Reason;

use copy_support::{
    Copier, MIB, Master, assert_no_staging_left, minio, object_sha256, start_sim, store,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_capped_master_is_read_in_parallel_ranges_and_lands_exact() {
    let sim = start_sim(&["--download-rate-per-connection", "20MB/s"]);
    let master = Master::new(&sim, 24 * MIB).await;
    let key = format!("copy/parallel/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&["--connections", "4", "--range-size", "2MiB"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    // Twelve 2 MiB ranges, each its own ranged GET; none of the whole file.
    assert_eq!(master.downloads(206).await, 12, "{}", outcome.stderr);
    assert_eq!(master.downloads(200).await, 0);
    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    let store = store(minio());
    assert_eq!(object_sha256(&store, &key).await, (24 * MIB, expected));
    assert_no_staging_left(&store, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ignores_range_is_read_in_one_stream() {
    let sim = start_sim(&["--master-ignore-range"]);
    let master = Master::new(&sim, 24 * MIB).await;
    let key = format!("copy/parallel/whole/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio(), &key)
        .args(&["--connections", "4", "--range-size", "2MiB"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    // The first request (one range) got the whole file, streamed in full; then the settle
    // checks, each answered with the whole file again (skipped).
    assert_eq!(master.downloads(206).await, 0);
    assert!(master.downloads(200).await >= 1);
    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        object_sha256(&store(minio()), &key).await,
        (24 * MIB, expected)
    );
}
