//! The destination: parsing `s3://`, `gs://`, `az://` and `file://` URLs into the object store
//! (built in `stores`) and the final and staging names, and reading back what an object records
//! about itself (for `file://`, through `local`).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore};

use super::args::{CopyArgs, is_sha256_hex};
use super::error::CopyError;
use super::local::local_existing;
use super::stores::{azure_store, gcs_store, s3_store};

/// The metadata keys the copy records (`x-amz-meta-sha256`, `x-goog-meta-sha256`, ...).
pub const META_SHA256: &str = "sha256";
pub const META_SIZE: &str = "size";
pub const META_SOURCE: &str = "source";
/// What the staging object's name adds to the final one.
pub const STAGING_SUFFIX: &str = ".mmo-partial";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    S3,
    Gcs,
    Azure,
    Local,
}

/// An opened destination.
pub struct Destination {
    pub backend: Backend,
    pub store: Arc<dyn ObjectStore>,
    /// The same store, typed, for S3's server-side copy.
    pub s3: Option<Arc<AmazonS3>>,
    /// The bucket (or container).
    pub bucket: String,
    /// The final object.
    pub path: Path,
    /// Where the upload goes until it is verified.
    pub staging: Path,
    /// The final file, for `file://`.
    pub file: Option<PathBuf>,
    /// The destination as the user wrote it.
    pub display: String,
}

/// What an existing object says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub size: u64,
    /// The `sha256` we recorded, if any (lowercase hex).
    pub sha256: Option<String>,
    /// The `size` we recorded, if any.
    pub recorded_size: Option<u64>,
}

impl Existing {
    /// The recorded digest if this object is one we wrote and verified: a well-formed `sha256`
    /// and a recorded size (if any) equal to its real size.
    pub fn verified_sha256(&self) -> Option<&str> {
        let sha = self.sha256.as_deref().filter(|s| is_sha256_hex(s))?;
        match self.recorded_size {
            Some(size) if size != self.size => None,
            _ => Some(sha),
        }
    }
}

/// The destination as it should appear in reports: as given, trimmed.
pub fn display_name(destination: &str) -> String {
    destination.trim().to_owned()
}

impl Destination {
    pub fn open(args: &CopyArgs) -> Result<Self, CopyError> {
        let display = display_name(&args.destination);
        let (scheme, rest) = display.split_once("://").ok_or_else(|| {
            CopyError::bad_input(format!(
                "the destination {display:?} is not a URL like s3://bucket/key, gs://bucket/key, \
                 az://container/path or file:///path"
            ))
        })?;
        match scheme {
            "s3" | "gs" | "az" => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                    return Err(CopyError::bad_input(format!(
                        "the destination {display:?} needs a bucket (or container) and an object \
                         name: {scheme}://bucket/path/to/object"
                    )));
                }
                let path = Path::parse(key).map_err(|e| {
                    CopyError::bad_input(format!("the object name {key:?} is not usable: {e}"))
                })?;
                let staging = Path::parse(format!("{key}{STAGING_SUFFIX}"))
                    .map_err(|e| CopyError::bad_input(e.to_string()))?;
                let (backend, store, s3): (_, Arc<dyn ObjectStore>, _) = match scheme {
                    "s3" => {
                        let s3 = Arc::new(s3_store(args, bucket)?);
                        (Backend::S3, s3.clone(), Some(s3))
                    }
                    "gs" => (Backend::Gcs, Arc::new(gcs_store(args, bucket)?), None),
                    _ => (Backend::Azure, Arc::new(azure_store(args, bucket)?), None),
                };
                Ok(Destination {
                    backend,
                    store,
                    s3,
                    bucket: bucket.to_owned(),
                    path,
                    staging,
                    file: None,
                    display,
                })
            }
            "file" => {
                let url = url::Url::parse(&display)
                    .map_err(|e| CopyError::bad_input(format!("{display:?}: {e}")))?;
                let file = url.to_file_path().map_err(|()| {
                    CopyError::bad_input(format!(
                        "{display:?} is not an absolute local path like file:///data/master.mp4"
                    ))
                })?;
                if display.ends_with('/') || file.file_name().is_none() {
                    return Err(CopyError::bad_input(format!(
                        "{display:?} names a folder, not a file"
                    )));
                }
                let mut staging_file = file.clone().into_os_string();
                staging_file.push(STAGING_SUFFIX);
                let path = Path::from_absolute_path(&file)
                    .map_err(|e| CopyError::bad_input(format!("{display:?}: {e}")))?;
                let staging = Path::from_absolute_path(&staging_file)
                    .map_err(|e| CopyError::bad_input(format!("{display:?}: {e}")))?;
                Ok(Destination {
                    backend: Backend::Local,
                    store: Arc::new(LocalFileSystem::new().with_fsync(true)),
                    s3: None,
                    bucket: String::new(),
                    path,
                    staging,
                    file: Some(file),
                    display,
                })
            }
            other => Err(CopyError::bad_input(format!(
                "unknown destination scheme {other:?}: use s3, gs, az or file"
            ))),
        }
    }

    /// The final file (for `file://`) and its staging file.
    pub fn files(&self) -> Option<(PathBuf, PathBuf)> {
        let file = self.file.clone()?;
        let mut staging = file.clone().into_os_string();
        staging.push(STAGING_SUFFIX);
        Some((file, staging.into()))
    }

    /// What is at the final name now, if anything.
    pub async fn existing(&self) -> Result<Option<Existing>, CopyError> {
        if let Some(file) = &self.file {
            return Ok(local_existing(file));
        }
        self.object_meta(&self.path).await
    }

    /// The size and recorded metadata of an object in the store.
    pub async fn object_meta(&self, path: &Path) -> Result<Option<Existing>, CopyError> {
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.store.get_opts(path, options).await {
            Ok(result) => {
                let meta = |key: &'static str| {
                    result
                        .attributes
                        .get(&Attribute::Metadata(key.into()))
                        .map(|v| v.as_ref().trim().to_owned())
                };
                Ok(Some(Existing {
                    size: result.meta.size,
                    sha256: meta(META_SHA256).map(|s| s.to_ascii_lowercase()),
                    recorded_size: meta(META_SIZE).and_then(|s| s.parse().ok()),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(CopyError::store(
                format!("reading {}", self.name_of(path)),
                e,
            )),
        }
    }

    /// `scheme://bucket/path` for an object of this destination.
    pub fn name_of(&self, path: &Path) -> String {
        match self.backend {
            Backend::S3 => format!("s3://{}/{path}", self.bucket),
            Backend::Gcs => format!("gs://{}/{path}", self.bucket),
            Backend::Azure => format!("az://{}/{path}", self.bucket),
            Backend::Local => format!("file:///{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path as FsPath;

    fn open(destination: &str) -> Result<Destination, CopyError> {
        let flags = [
            "--destination",
            destination,
            "--endpoint",
            "http://127.0.0.1:9",
        ];
        Destination::open(&super::super::args::parse_flags(&flags).unwrap())
    }

    #[test]
    fn destinations_parse() {
        let s3 = open("s3://archive/media/keynote.mp4").unwrap();
        assert_eq!(s3.backend, Backend::S3);
        assert_eq!(s3.bucket, "archive");
        assert_eq!(s3.path.as_ref(), "media/keynote.mp4");
        assert_eq!(s3.staging.as_ref(), "media/keynote.mp4.mmo-partial");
        assert_eq!(s3.name_of(&s3.path), "s3://archive/media/keynote.mp4");
        let file = open("file:///data/masters/a%20b.mp4").unwrap();
        assert_eq!(file.backend, Backend::Local);
        assert_eq!(
            file.file.as_deref(),
            Some(FsPath::new("/data/masters/a b.mp4"))
        );
        assert_eq!(
            file.files().unwrap().1,
            PathBuf::from("/data/masters/a b.mp4.mmo-partial")
        );
    }

    #[test]
    fn bad_destinations_are_bad_input() {
        for bad in [
            "archive/key",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://bucket/dir/",
            "ftp://host/file",
            "file://relative/path",
            "file:///data/",
        ] {
            let err = open(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"));
            assert_eq!(err.reason, super::super::Reason::BadInput, "{bad}");
        }
    }

    #[test]
    fn only_a_recorded_and_consistent_digest_counts() {
        let sha = "a".repeat(64);
        let mut existing = Existing {
            size: 10,
            sha256: Some(sha.clone()),
            recorded_size: Some(10),
        };
        assert_eq!(existing.verified_sha256(), Some(sha.as_str()));
        existing.recorded_size = Some(11);
        assert_eq!(existing.verified_sha256(), None);
        existing.recorded_size = None;
        existing.sha256 = Some("not-a-digest".into());
        assert_eq!(existing.verified_sha256(), None);
    }
}
