//! What is already at the destination: a verified copy of the master is skipped without copying
//! it again, and a different object (whatever digest it carries) is not replaced without
//! `--overwrite`.

mod copy_support;

use mux_master_operator::copy::Reason;
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt};

use copy_support::{
    Copier, MIB, Master, assert_no_staging_left, minio, object_sha256, start_sim, store,
};

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

    // This run's stream of the master has the recorded digest: skipped, the object untouched.
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

/// An object of the master's length that records a well-formed SHA-256, just not the master's:
/// reported `Skipped` with the old object's digest before (issue 13).
#[tokio::test(flavor = "multi_thread")]
async fn an_object_of_the_same_length_with_another_recorded_digest_is_not_skipped() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 8 * MIB).await;
    let minio = minio();
    let store = store(minio);
    let key = format!("copy/same-length/{}.mp4", master.id);
    let foreign_sha = "f".repeat(64);
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::Metadata("sha256".into()),
        foreign_sha.clone().into(),
    );
    let size = (8 * MIB).to_string();
    attributes.insert(Attribute::Metadata("size".into()), size.into());
    let foreign = vec![0u8; 8 * MIB as usize];
    store
        .put_opts(&Path::from(key.as_str()), foreign.into(), attributes.into())
        .await
        .unwrap();

    let refused = Copier::to_minio(&master, minio, &key).run().await;
    refused.expect(Reason::DestinationExists);
    assert_ne!(refused.report.sha256.as_deref(), Some(foreign_sha.as_str()));
    let message = refused.report.message.clone().unwrap_or_default();
    assert!(message.contains(&master.sha256()), "{message}");
    let kept = object_sha256(&store, &key).await;
    assert_eq!(
        kept.1,
        hex_sha256_of_zeros(8 * MIB),
        "the object is left as it was"
    );
    assert_no_staging_left(&store, &key).await;

    let replaced = Copier::to_minio(&master, minio, &key)
        .args(&["--overwrite"])
        .run()
        .await;
    replaced.expect(Reason::Copied);
    assert_eq!(
        object_sha256(&store, &key).await,
        (8 * MIB, master.sha256())
    );
}

fn hex_sha256_of_zeros(len: u64) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(vec![0u8; len as usize]))
}
