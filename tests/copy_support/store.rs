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

/// The `sha256` and `size` recorded for the object: its metadata (`x-amz-meta-*`) or, where it
/// has none, the sidecar `<key>.sha256` whose `object-etag` names the object's ETag (the body a
/// `sha256sum` line of the same digest). `None` if there is no object.
pub async fn recorded_digest(store: &AmazonS3, key: &str) -> Option<(String, String)> {
    let head = GetOptions {
        head: true,
        ..Default::default()
    };
    let result = store.get_opts(&Path::from(key), head).await.ok()?;
    let meta = |result: &object_store::GetResult, name: &'static str| {
        result
            .attributes
            .get(&Attribute::Metadata(name.into()))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    if !meta(&result, "sha256").is_empty() {
        return Some((meta(&result, "sha256"), meta(&result, "size")));
    }
    let sidecar = Path::from(format!("{key}.sha256"));
    let Ok(found) = store.get(&sidecar).await else {
        return Some((String::new(), String::new()));
    };
    let bare = |e_tag: &str| e_tag.trim_matches('"').to_owned();
    let object_e_tag = result.meta.e_tag.as_deref().map(bare);
    let names_it = Some(bare(&meta(&found, "object-etag"))) == object_e_tag;
    let (sha256, size) = (meta(&found, "sha256"), meta(&found, "size"));
    let body = String::from_utf8(found.bytes().await.unwrap().to_vec()).unwrap();
    let name = key.rsplit('/').next().unwrap();
    assert_eq!(body, format!("{sha256}  {name}\n"), "the sidecar's body");
    Some(if names_it {
        (sha256, size)
    } else {
        (String::new(), String::new())
    })
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

/// Asserts that the object is there and no staging object of any run beside it (its sidecar,
/// `<key>.sha256`, is no staging object).
pub async fn assert_no_staging_left(store: &AmazonS3, key: &str) {
    let sidecar = format!("{key}.sha256");
    let mut keys = keys_under(store, key).await;
    keys.retain(|k| *k != sidecar);
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
    // (S3 uploads straight to the final key: a staging object only with `--finalize restream`.)
    let staging = outcome.staging_key();
    let legacy = format!("{key}.mmo-partial");
    for name in [Some(key), staging.as_deref(), Some(legacy.as_str())]
        .into_iter()
        .flatten()
    {
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
