//! A copy that fails or is stopped leaves nothing behind: no object, no staging object, no
//! multipart upload, each failure with its own exit status; and the leftovers of a run killed
//! outright are cleaned up by the next run.

mod copy_support;

use mux::types::MasterAccess;
use mux_master_operator::copy::Reason;
use object_store::path::Path;
use std::time::Duration;
use testenv::Minio;
use testenv::fixtures::eventually;

use copy_support::{
    Copier, MIB, Master, Running, assert_nothing_left, minio, object_sha256, start_sim, store,
    uploads_in_progress,
};

/// A copy to MinIO whose download was cut after 20 MiB (two parts uploaded), once it waits
/// `retry_delay` to resume. (In one stream: parallel ranges are smaller than the cut.)
async fn waiting_to_resume(
    master: &Master,
    minio: &Minio,
    key: &str,
    retry_delay: &str,
) -> Running {
    master.cut_downloads(1, 20 * MIB).await;
    let running = Copier::to_minio(master, minio, key)
        .args(&["--retry-delay", retry_delay, "--connections", "1"])
        .spawn();
    running.until_logged("resuming in").await;
    running
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_url_ends_with_its_own_exit_status_and_leaves_no_object() {
    let sim = start_sim(&["--url-lifetime", "2s"]);
    let master = Master::new(&sim, 8 * MIB).await;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(10), "the URL to expire", || async {
        let response = http.head(&master.url).send().await.ok()?;
        (response.status() == 403).then_some(())
    })
    .await;
    let minio = minio();
    let key = format!("copy/expired/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    outcome.expect(Reason::UrlExpired);
    assert_eq!(outcome.code, 3);

    assert_nothing_left(&store(minio), &key, &outcome).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_revoked_mid_copy_ends_as_expired_with_no_object_and_no_upload() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    let minio = minio();
    let key = format!("copy/revoked/{}.mp4", master.id);

    // While the copier waits to resume, access is turned off.
    let running = waiting_to_resume(&master, minio, &key, "3s").await;
    master
        .client
        .update_master_access(&master.id, MasterAccess::None)
        .await
        .unwrap();
    let outcome = running.wait().await;
    outcome.expect(Reason::UrlExpired);

    assert_nothing_left(&store(minio), &key, &outcome).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_copy_and_cleans_up() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 48 * MIB).await;
    let minio = minio();
    let key = format!("copy/sigterm/{}.mp4", master.id);

    let running = waiting_to_resume(&master, minio, &key, "20s").await;
    running.signal(libc::SIGTERM);
    let outcome = running.wait().await;
    outcome.expect(Reason::Interrupted);

    assert_nothing_left(&store(minio), &key, &outcome).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_left_by_a_killed_run_are_aborted_by_the_next_run() {
    use object_store::multipart::MultipartStore;
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/leftovers/{}.mp4", master.id);
    // What a SIGKILL leaves: an upload of the staging object, and one of the final object.
    for name in [format!("{key}.mmo-partial"), key.clone()] {
        store.create_multipart(&Path::from(name)).await.unwrap();
    }
    let staging = format!("{key}.mmo-partial");
    assert_eq!(uploads_in_progress(&store, &key).await, 1);
    assert_eq!(uploads_in_progress(&store, &staging).await, 1);

    // Uploads of the final key this young could be a live run's: aborted only past
    // --leftover-age (10 minutes unless told).
    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--leftover-age", "0s"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    assert_eq!(uploads_in_progress(&store, &key).await, 0);
    assert_eq!(uploads_in_progress(&store, &staging).await, 0);
    assert_eq!(
        object_sha256(&store, &key).await,
        (8 * MIB, master.sha256())
    );
}
