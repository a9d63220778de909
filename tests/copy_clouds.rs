//! The copier to `gs://` and `az://`, against the GCS emulator (fake-gcs-server's storage under
//! the XML API) and Azurite, through object_store's own clients as in production: a verified copy
//! in several parts with its SHA-256 recorded, a resume after a cut, a verified object skipped and
//! a different one refused, and a failed copy that leaves nothing under the key.

mod copy_support;

use mux_master_operator::copy::Reason;
use object_store::ObjectStoreExt;
use testenv::{Azurite, GcsEmulator};

use copy_support::{Cloud, MIB, Master, start_sim};

/// Both cloud destinations, each on an emulator of its own.
fn clouds() -> (GcsEmulator, Azurite) {
    let gcs = GcsEmulator::start().expect("the GCS emulator starts (run `make tools` first)");
    let azurite = Azurite::start().expect("Azurite starts (run `make tools` first)");
    (gcs, azurite)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_lands_verified_in_gcs_and_azure_in_several_parts() {
    let sim = start_sim(&[]);
    let (gcs, azurite) = clouds();
    for cloud in [
        Cloud::gcs(&gcs),
        Cloud::gcs_at_endpoint(&gcs),
        Cloud::azure(&azurite),
    ] {
        let master = Master::new(&sim, 20 * MIB).await;
        let dir = format!("copy/verified/{}", master.id);
        let key = format!("{dir}/master.mp4");

        // 8 MiB parts: three of them.
        let outcome = cloud
            .copier(&master, &key)
            .args(&["--part-size", "8MiB"])
            .run()
            .await;
        outcome.expect(Reason::Copied);

        let expected = master.sha256();
        assert_eq!(
            cloud.sha256(&key).await,
            (20 * MIB, expected.clone()),
            "{}: the object is the master",
            cloud.name
        );
        assert_eq!(
            cloud.metadata(&key).await,
            (Some(expected.clone()), Some((20 * MIB).to_string())),
            "{}: the SHA-256 and size are recorded with the object",
            cloud.name
        );
        assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
        assert_eq!(
            cloud.keys(&dir).await,
            std::slice::from_ref(&key),
            "{}: no staging object is left beside it",
            cloud.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_download_resumes_into_gcs_and_azure() {
    let sim = start_sim(&[]);
    let (gcs, azurite) = clouds();
    for cloud in [Cloud::gcs(&gcs), Cloud::azure(&azurite)] {
        let master = Master::new(&sim, 24 * MIB).await;
        // Inside the first of the parallel ranges (2 MiB).
        master.cut_downloads(1, MIB / 2).await;
        let key = format!("copy/resumed/{}.mp4", master.id);

        let outcome = cloud
            .copier(&master, &key)
            .args(&["--retry-delay", "10ms"])
            .run()
            .await;
        outcome.expect(Reason::Copied);
        assert!(
            outcome.report.resumes >= 1,
            "{}: the copy resumed after the cut: {:?}",
            cloud.name,
            outcome.report
        );
        assert_eq!(
            cloud.sha256(&key).await,
            (24 * MIB, master.sha256()),
            "{}: the resumed object is the master, whole",
            cloud.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_object_is_skipped_and_a_different_one_refused_in_gcs_and_azure() {
    let sim = start_sim(&[]);
    let (gcs, azurite) = clouds();
    for cloud in [Cloud::gcs(&gcs), Cloud::azure(&azurite)] {
        let master = Master::new(&sim, 8 * MIB).await;
        let key = format!("copy/existing/{}.mp4", master.id);
        cloud
            .copier(&master, &key)
            .run()
            .await
            .expect(Reason::Copied);
        let again = cloud.copier(&master, &key).run().await;
        again.expect(Reason::Skipped);
        assert_eq!(again.report.sha256, Some(master.sha256()), "{}", cloud.name);

        let other = format!("copy/existing/{}-other.mp4", master.id);
        cloud
            .store
            .put(&other.as_str().into(), "someone else's file".into())
            .await
            .unwrap();
        let refused = cloud.copier(&master, &other).run().await;
        refused.expect(Reason::DestinationExists);
        let kept = cloud.store.get(&other.as_str().into()).await.unwrap();
        assert_eq!(
            &kept.bytes().await.unwrap()[..],
            b"someone else's file",
            "{}: the other object is kept",
            cloud.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_copy_leaves_nothing_in_gcs_or_azure() {
    let sim = start_sim(&[]);
    let (gcs, azurite) = clouds();
    for cloud in [Cloud::gcs(&gcs), Cloud::azure(&azurite)] {
        let master = Master::new(&sim, 16 * MIB).await;
        let dir = format!("copy/failed/{}", master.id);
        let key = format!("{dir}/master.mp4");
        // The first download (one stream) is cut 9 MiB in, once a part is uploaded; while the
        // copier waits to resume, every later download is cut before its first byte, until the
        // retries run out.
        master.cut_downloads(1, 9 * MIB).await;
        let running = cloud
            .copier(&master, &key)
            .args(&[
                "--max-retries",
                "1",
                "--retry-delay",
                "1s",
                "--connections",
                "1",
            ])
            .spawn();
        running.until_logged("resuming in").await;
        master.cut_downloads(1000, 0).await;
        let outcome = running.wait().await;
        outcome.expect(Reason::RetriesExhausted);
        assert!(
            cloud.keys(&dir).await.is_empty(),
            "{}: neither the object nor its staging is left",
            cloud.name
        );
        master.cut_downloads(0, 0).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_longer_to_read_back_than_the_clients_budget_is_still_published_to_gcs() {
    // GCS publication reads the staging object back through the pod. object_store gives one read
    // a budget: its request timeout, resumed ten times (and three minutes in all), which a
    // multi-GiB master on a slow link outlasts. Here the same, small: downloads held to 1 MiB/s,
    // requests cut at 1 s, so 12 MiB take a dozen requests.
    let sim = start_sim(&[]);
    let gcs = GcsEmulator::start_with(&["-read-rate", &MIB.to_string()])
        .expect("the GCS emulator starts (run `make tools` first)");
    let cloud = Cloud::gcs_with(&gcs, &[("timeout", "1s")]);
    let master = Master::new(&sim, 12 * MIB).await;
    let key = format!("copy/long/{}.mp4", master.id);

    let outcome = cloud
        .copier(&master, &key)
        .args(&["--retry-delay", "10ms"])
        .run()
        .await;
    outcome.expect(Reason::Copied);
    assert_eq!(cloud.sha256(&key).await, (12 * MIB, master.sha256()));
}
