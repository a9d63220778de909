//! MinIO and local files as the tests read them back: the bytes' SHA-256, the recorded
//! metadata, what exists, and the multipart uploads still in progress.

use std::fs::File;
use std::path::Path as FsPath;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{Attribute, GetOptions, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use testenv::Minio;

use super::copier::Outcome;

pub fn minio() -> &'static Minio {
    Minio::shared().expect("MinIO starts (run `make tools` first)")
}

pub fn store(minio: &Minio) -> AmazonS3 {
    minio.store(minio.bucket()).unwrap()
}

/// The object's size and SHA-256, read back from the store.
pub async fn object_sha256(store: &AmazonS3, key: &str) -> (u64, String) {
    let mut stream = store.get(&Path::from(key)).await.unwrap().into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (size, hex::encode(hasher.finalize()))
}

/// The object's `sha256` and `size` metadata (`x-amz-meta-*`), or `None` if there is none.
pub async fn object_metadata(store: &AmazonS3, key: &str) -> Option<(String, String)> {
    let head = GetOptions {
        head: true,
        ..Default::default()
    };
    let result = store.get_opts(&Path::from(key), head).await.ok()?;
    let meta = |name: &'static str| {
        result
            .attributes
            .get(&Attribute::Metadata(name.into()))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    Some((meta("sha256"), meta("size")))
}

pub async fn exists(store: &AmazonS3, key: &str) -> bool {
    match store.head(&Path::from(key)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("HEAD {key}: {e}"),
    }
}

/// The multipart uploads in progress on `key` (S3 ListMultipartUploads, signed by
/// object_store's signer; MinIO lists the uploads of exactly the key given as prefix).
pub async fn uploads_in_progress(store: &AmazonS3, key: &str) -> usize {
    let options = SignedUrlOptions::default().with_query([("uploads", ""), ("prefix", key)]);
    let url = store
        .signed_url_opts(
            http::Method::GET,
            &Path::default(),
            Duration::from_secs(60),
            &options,
        )
        .await
        .unwrap();
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.text().await.unwrap();
    body.matches("<UploadId>").count()
}

/// The names of the objects whose names start with `prefix`, sorted.
pub async fn keys_under(store: &AmazonS3, prefix: &str) -> Vec<String> {
    let folder = prefix
        .rsplit_once('/')
        .map(|(folder, _)| Path::from(folder));
    let listed: Vec<_> = store
        .list(folder.as_ref())
        .try_collect()
        .await
        .expect("the bucket lists");
    let mut keys: Vec<String> = listed
        .into_iter()
        .map(|meta| meta.location.to_string())
        .filter(|name| name.starts_with(prefix))
        .collect();
    keys.sort();
    keys
}

/// Asserts that the object is there and no staging object of any run beside it.
pub async fn assert_no_staging_left(store: &AmazonS3, key: &str) {
    let keys = keys_under(store, key).await;
    assert_eq!(
        keys,
        std::slice::from_ref(&key.to_owned()),
        "no staging object is left"
    );
}

/// Asserts that neither the object, nor a staging object of any run, nor an upload of the
/// object or of the copy's staging object (named in its log) is left.
pub async fn assert_nothing_left(store: &AmazonS3, key: &str, outcome: &Outcome) {
    assert_eq!(
        keys_under(store, key).await,
        Vec::<String>::new(),
        "left behind"
    );
    let staging = outcome
        .staging_key()
        .expect("the copy named its staging object");
    for name in [key, staging.as_str(), &format!("{key}.mmo-partial")] {
        assert_eq!(
            uploads_in_progress(store, name).await,
            0,
            "uploads on {name}"
        );
    }
}

/// A local file's size and SHA-256.
pub fn file_sha256(path: &FsPath) -> (u64, String) {
    let mut file = File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).unwrap();
    (size, hex::encode(hasher.finalize()))
}
