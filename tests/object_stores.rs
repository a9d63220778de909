//! The object-store emulators the gs:// and az:// copies run against, through object_store's own
//! GCS and Azure clients (the ones the copier uses): every call the copier makes works, with the
//! answers the real services give. If an emulator lacked one, a copier test would fail for the
//! emulator's sake; these tests say which call it is.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions,
    PutPayload,
};
use testenv::{Azurite, GcsEmulator};

const MIB: usize = 1 << 20;

/// What the copier asks of a store: a multipart upload of more than one part carrying metadata,
/// a ranged read, a HEAD that returns the metadata, a listing, a copy, a refused second create,
/// and a delete that leaves nothing.
async fn the_calls_the_copier_makes(store: &dyn ObjectStore) {
    let staging = Path::from("media/keynote.mp4.staging");
    let final_key = Path::from("media/keynote.mp4");
    let parts: Vec<Vec<u8>> = (0u8..3).map(|i| vec![i + 1; 5 * MIB]).collect();

    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("sha256".into()), "cafe".into());
    let mut upload = store
        .put_multipart_opts(
            &staging,
            PutMultipartOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .expect("a multipart upload starts");
    for part in &parts {
        upload
            .put_part(PutPayload::from(part.clone()))
            .await
            .expect("a part uploads");
    }
    upload.complete().await.expect("the upload completes");

    let head = store.head(&staging).await.expect("HEAD finds the object");
    assert_eq!(head.size, 15 * MIB as u64, "the parts are joined in order");
    let got = store.get(&staging).await.expect("GET");
    assert_eq!(
        got.attributes.get(&Attribute::Metadata("sha256".into())),
        Some(&"cafe".into()),
        "the metadata given at initiation is kept and returned"
    );
    let range = store
        .get_range(&staging, (5 * MIB as u64 - 2)..(5 * MIB as u64 + 2))
        .await
        .expect("a ranged GET");
    assert_eq!(range.as_ref(), &[1, 1, 2, 2], "the range spans two parts");

    store
        .copy(&staging, &final_key)
        .await
        .expect("a server-side copy");
    let copied = store.get(&final_key).await.expect("the copy is there");
    assert_eq!(
        copied.attributes.get(&Attribute::Metadata("sha256".into())),
        Some(&"cafe".into()),
        "a copy keeps the metadata"
    );
    assert_eq!(copied.bytes().await.unwrap().len(), 15 * MIB);

    let refused = store
        .put_opts(
            &final_key,
            PutPayload::from_static(b"other"),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(object_store::Error::AlreadyExists { .. })),
        "a create over an existing object is refused: {refused:?}"
    );

    let listed: Vec<String> = store
        .list(Some(&Path::from("media")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("a listing");
    assert_eq!(
        listed,
        ["media/keynote.mp4", "media/keynote.mp4.staging"],
        "the listing has both objects, in order"
    );

    store.delete(&staging).await.expect("a delete");
    store.delete(&final_key).await.expect("a delete");
    let gone = store.head(&final_key).await;
    assert!(
        matches!(gone, Err(object_store::Error::NotFound { .. })),
        "a deleted object is not found: {gone:?}"
    );
    // An upload never completed is no object: nothing of it is listed.
    let unfinished = store.put_multipart(&staging).await.unwrap();
    drop(unfinished);
    let empty: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(empty.is_empty(), "nothing is left in the bucket: {empty:?}");
}

#[tokio::test]
async fn the_gcs_emulator_answers_every_call_the_copier_makes() {
    let gcs = GcsEmulator::start().expect("the GCS emulator starts");
    let store = gcs.store(gcs.bucket()).expect("a GCS client");
    the_calls_the_copier_makes(&store).await;
}

#[tokio::test]
async fn azurite_answers_every_call_the_copier_makes() {
    let azurite = Azurite::start().expect("Azurite starts");
    let store = azurite.store(azurite.container()).expect("an Azure client");
    the_calls_the_copier_makes(&store).await;
}
