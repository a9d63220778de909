//! The copier's gs:// and az:// destinations, against the emulators `make tools` provides: the
//! command line and credentials folder a copy Job would give, and reading the object back through
//! object_store's own clients.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use testenv::{Azurite, GcsEmulator};

use super::copier::Copier;
use super::master::Master;

/// Writes `settings` as a credentials folder (a file a setting, as a Secret mounted as files is)
/// and returns it; it lives as long as the returned guard.
fn credentials_dir(settings: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in settings {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    dir
}

/// One cloud destination of a copy: its URL, the copier's flags for it, and a client.
pub struct Cloud {
    pub name: &'static str,
    pub store: Box<dyn ObjectStore>,
    scheme: &'static str,
    bucket: String,
    flags: Vec<String>,
    credentials: tempfile::TempDir,
}

impl Cloud {
    /// GCS: the emulator's service-account key (no OAuth, its base URL) under the key
    /// object_store reads, `google_service_account_key`.
    pub fn gcs(gcs: &GcsEmulator) -> Cloud {
        let key = gcs.service_account_key();
        Cloud {
            name: "gcs",
            store: Box::new(gcs.store(gcs.bucket()).unwrap()),
            scheme: "gs",
            bucket: gcs.bucket().to_owned(),
            flags: vec!["--allow-http".into()],
            credentials: credentials_dir(&[("google_service_account_key", &key)]),
        }
    }

    /// GCS as a user of a GCS-compatible endpoint configures it: a key without a base URL, and
    /// the endpoint given to the copier (`destination.endpoint`).
    pub fn gcs_at_endpoint(gcs: &GcsEmulator) -> Cloud {
        let mut key: serde_json::Value = serde_json::from_str(&gcs.service_account_key()).unwrap();
        key.as_object_mut().unwrap().remove("gcs_base_url");
        let mut cloud = Cloud::gcs(gcs);
        cloud.credentials = credentials_dir(&[("google_service_account_key", &key.to_string())]);
        cloud.flags = vec!["--endpoint".into(), gcs.endpoint().into()];
        cloud
    }

    /// GCS, with more settings of object_store's client in the credentials folder (a user can
    /// set any of them there, e.g. `timeout`).
    pub fn gcs_with(gcs: &GcsEmulator, settings: &[(&str, &str)]) -> Cloud {
        let cloud = Cloud::gcs(gcs);
        for (name, value) in settings {
            std::fs::write(cloud.credentials.path().join(name), value).unwrap();
        }
        cloud
    }

    /// Azure: the account and its key under object_store's names, the account's endpoint.
    pub fn azure(azurite: &Azurite) -> Cloud {
        Cloud {
            name: "azure",
            store: Box::new(azurite.store(azurite.container()).unwrap()),
            scheme: "az",
            bucket: azurite.container().to_owned(),
            flags: vec!["--endpoint".into(), azurite.endpoint().into()],
            credentials: credentials_dir(&[
                ("azure_storage_account_name", testenv::azurite::ACCOUNT),
                ("azure_storage_account_key", testenv::azurite::ACCOUNT_KEY),
            ]),
        }
    }

    /// The copier, copying `master` to `key` here.
    pub fn copier(&self, master: &Master, key: &str) -> Copier {
        let destination = format!("{}://{}/{key}", self.scheme, self.bucket);
        let dir = self.credentials.path().to_str().unwrap().to_owned();
        let mut copier = Copier::new(master, &destination).args(&["--credentials-dir", &dir]);
        copier.args.extend(self.flags.iter().cloned());
        copier
    }

    /// The object's size and SHA-256, read back.
    pub async fn sha256(&self, key: &str) -> (u64, String) {
        let mut stream = self
            .store
            .get(&Path::from(key))
            .await
            .unwrap()
            .into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0;
        while let Some(chunk) = stream.try_next().await.unwrap() {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        (size, hex::encode(hasher.finalize()))
    }

    /// The object's recorded `sha256` and `size` metadata.
    pub async fn metadata(&self, key: &str) -> (Option<String>, Option<String>) {
        let got = self.store.get(&Path::from(key)).await.unwrap();
        let read = |name: &str| {
            got.attributes
                .get(&Attribute::Metadata(name.to_owned().into()))
                .map(|v| v.to_string())
        };
        (read("sha256"), read("size"))
    }

    /// Every object whose key starts with `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.store
            .list(Some(&Path::from(prefix)))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap()
    }
}
