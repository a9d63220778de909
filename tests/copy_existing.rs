//! What is already at the destination: a verified copy of the master is skipped without copying
//! again, and a different object is not replaced without `--overwrite`.

mod copy_support;

use mux_master_operator::copy::Reason;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use copy_support::{Copier, MIB, Master, minio, object_sha256, start_sim, store};

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_skips_without_copying_again() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 16 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/second-run/{}.mp4", master.id);
    let copier = Copier::to_minio(&master, minio, &key);

    let first = copier.run().await;
    first.expect(Reason::Copied);
    let written = store.head(&Path::from(key.as_str())).await.unwrap();

    // The source's settled length equals the recorded object's: skipped.
    let second = copier.run().await;
    second.expect(Reason::Skipped);
    assert_eq!(second.report.sha256, first.report.sha256);
    assert_eq!(second.report.size, Some(16 * MIB));
    let after = store.head(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(
        (after.e_tag, after.last_modified),
        (written.e_tag.clone(), written.last_modified)
    );

    // With the digest of the previous copy, the source is not even asked.
    let downloads = master.downloads(206).await;
    let sha = first.report.sha256.clone().unwrap();
    let third = Copier::to_minio(&master, minio, &key)
        .args(&["--expected-sha256", &sha])
        .run()
        .await;
    third.expect(Reason::Skipped);
    assert_eq!(master.downloads(206).await, downloads);
    let after = store.head(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(after.e_tag, written.e_tag);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_existing_object_is_not_overwritten_without_the_flag() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/different/{}.mp4", master.id);
    store
        .put(&Path::from(key.as_str()), "someone else's file".into())
        .await
        .unwrap();

    let refused = Copier::to_minio(&master, minio, &key).run().await;
    refused.expect(Reason::DestinationExists);
    assert_eq!(refused.code, 4);
    let kept = store.get(&Path::from(key.as_str())).await.unwrap();
    assert_eq!(&kept.bytes().await.unwrap()[..], b"someone else's file");
    assert_eq!(master.downloads(206).await, 0, "nothing was downloaded");

    let replaced = Copier::to_minio(&master, minio, &key)
        .args(&["--overwrite"])
        .run()
        .await;
    replaced.expect(Reason::Copied);
    let expected = master.sha256();
    assert_eq!(object_sha256(&store, &key).await, (8 * MIB, expected));
}
