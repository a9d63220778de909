//! The destination: parsing `s3://`, `gs://`, `az://` and `file://` URLs into the object store
//! (built in `stores`) and the final and staging names, and reading back what an object records
//! about itself (for `file://`, through `local`).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore};

use super::args::CopyArgs;
use super::error::CopyError;
use super::local::local_existing;
use super::sidecar::read_sidecar;
use super::stores::{azure_store, gcs_store, s3_store};

pub use super::records::{Existing, META_SHA256, META_SIZE, META_SOURCE, STAGING_SUFFIX};

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
    /// The store the staging upload goes to: on S3, the same with per-part SHA-256 checksums
    /// (the store checks each part it receives against the digest of the bytes sent).
    pub staging_store: Arc<dyn ObjectStore>,
    /// The same store, typed, for S3's own requests (presigned).
    pub s3: Option<Arc<AmazonS3>>,
    /// S3 with per-part SHA-256 checksums, typed: the upload of the final key goes through it.
    pub s3_checksummed: Option<Arc<AmazonS3>>,
    /// The bucket (or container).
    pub bucket: String,
    /// The final object.
    pub path: Path,
    /// Where the upload goes until it is verified: this run's own.
    pub staging: Path,
    /// This run's ID, in the staging name.
    pub run: String,
    /// The final file, for `file://`.
    pub file: Option<PathBuf>,
    /// The destination as the user wrote it.
    pub display: String,
}

/// The size and recorded digest (`sha256`, `size`) of the object at `path`, `None` if there is
/// none: in its metadata or, where it has none (S3 objects are published without, see
/// `sidecar`), in the sidecar `<path>.sha256` naming its ETag. What a copy reads back, and what
/// the operator checks again just before it deletes an archived asset from Mux.
pub async fn recorded_object(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<Option<Existing>, object_store::Error> {
    let options = GetOptions {
        head: true,
        ..Default::default()
    };
    let mut existing = match store.get_opts(path, options).await {
        Ok(result) => {
            let meta = |key: &'static str| {
                result
                    .attributes
                    .get(&Attribute::Metadata(key.into()))
                    .map(|v| v.as_ref().trim().to_owned())
            };
            Existing {
                size: result.meta.size,
                sha256: meta(META_SHA256).map(|s| s.to_ascii_lowercase()),
                recorded_size: meta(META_SIZE).and_then(|s| s.parse().ok()),
                e_tag: result.meta.e_tag.clone(),
            }
        }
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if existing.sha256.is_none()
        && let Some(recorded) = read_sidecar(store, path, existing.e_tag.as_deref()).await?
    {
        existing.sha256 = Some(recorded.sha256);
        existing.recorded_size = recorded.size;
    }
    Ok(Some(existing))
}

/// `.` or `..`, also percent-encoded (`%2e`), which URL parsing resolves away.
fn is_dot_segment(segment: &str) -> bool {
    let lowered = segment.to_ascii_lowercase().replace("%2e", ".");
    lowered == "." || lowered == ".."
}

/// `path` with `suffix` added to its file name.
pub fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The destination as it should appear in reports: as given, trimmed.
pub fn display_name(destination: &str) -> String {
    destination.trim().to_owned()
}

impl Destination {
    pub fn open(args: &CopyArgs) -> Result<Self, CopyError> {
        let display = display_name(&args.destination);
        let run = format!("{:012x}", rand::random::<u64>() >> 16);
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
                let staging = Path::parse(format!("{key}{STAGING_SUFFIX}.{run}"))
                    .map_err(|e| CopyError::bad_input(e.to_string()))?;
                let (backend, store, s3): (_, Arc<dyn ObjectStore>, _) = match scheme {
                    "s3" => {
                        let s3 = Arc::new(s3_store(args, bucket, false)?);
                        (Backend::S3, s3.clone(), Some(s3))
                    }
                    "gs" => (Backend::Gcs, Arc::new(gcs_store(args, bucket)?), None),
                    _ => (Backend::Azure, Arc::new(azure_store(args, bucket)?), None),
                };
                let s3_checksummed = match backend {
                    Backend::S3 => Some(Arc::new(s3_store(args, bucket, true)?)),
                    _ => None,
                };
                let staging_store: Arc<dyn ObjectStore> = match &s3_checksummed {
                    Some(s3) => s3.clone(),
                    None => store.clone(),
                };
                Ok(Destination {
                    backend,
                    store,
                    staging_store,
                    s3,
                    s3_checksummed,
                    bucket: bucket.to_owned(),
                    path,
                    staging,
                    run,
                    file: None,
                    display,
                })
            }
            "file" => {
                let raw_path = rest.split(['?', '#']).next().unwrap_or_default();
                if raw_path.split('/').any(is_dot_segment) {
                    return Err(CopyError::bad_input(format!(
                        "{display:?} has \".\" or \"..\" segments: refused, as they could lead \
                         out of the volume"
                    )));
                }
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
                if let Some(root) = &args.file_root
                    && !file.starts_with(root)
                {
                    return Err(CopyError::bad_input(format!(
                        "{display:?} is not under {} (--file-root)",
                        root.display()
                    )));
                }
                let staging_file = with_suffix(&file, &format!("{STAGING_SUFFIX}.{run}"));
                let path = Path::from_absolute_path(&file)
                    .map_err(|e| CopyError::bad_input(format!("{display:?}: {e}")))?;
                let staging = Path::from_absolute_path(&staging_file)
                    .map_err(|e| CopyError::bad_input(format!("{display:?}: {e}")))?;
                let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new().with_fsync(true));
                Ok(Destination {
                    backend: Backend::Local,
                    staging_store: store.clone(),
                    store,
                    s3: None,
                    s3_checksummed: None,
                    bucket: String::new(),
                    path,
                    staging,
                    run,
                    file: Some(file),
                    display,
                })
            }
            other => Err(CopyError::bad_input(format!(
                "unknown destination scheme {other:?}: use s3, gs, az or file"
            ))),
        }
    }

    /// The final file (for `file://`) and this run's staging file.
    pub fn files(&self) -> Option<(PathBuf, PathBuf)> {
        let file = self.file.clone()?;
        let staging = with_suffix(&file, &format!("{STAGING_SUFFIX}.{}", self.run));
        Some((file, staging))
    }

    /// The staging name of copiers before issue 13 (one for every run), whose leftovers a run
    /// still cleans up: no run uses it any more.
    pub fn legacy_staging(&self) -> Path {
        Path::from(format!("{}{STAGING_SUFFIX}", self.path))
    }

    /// What is at the final name now, if anything, with the digest recorded for it: in its
    /// metadata, or (S3) in the sidecar that names its ETag.
    pub async fn existing(&self) -> Result<Option<Existing>, CopyError> {
        if let Some(file) = &self.file {
            return Ok(local_existing(file));
        }
        self.object_meta(&self.path).await
    }

    /// The size and recorded metadata of an object in the store.
    pub async fn object_meta(&self, path: &Path) -> Result<Option<Existing>, CopyError> {
        recorded_object(self.store.as_ref(), path)
            .await
            .map_err(|e| CopyError::store(format!("reading {}", self.name_of(path)), e))
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
        let staging = format!("media/keynote.mp4.mmo-partial.{}", s3.run);
        assert_eq!((s3.staging.as_ref(), s3.run.len()), (staging.as_str(), 12));
        let again = open("s3://archive/media/keynote.mp4").unwrap();
        assert_ne!(
            again.staging, s3.staging,
            "each run stages under its own name"
        );
        assert_eq!(
            again.legacy_staging().as_ref(),
            "media/keynote.mp4.mmo-partial"
        );
        assert_eq!(s3.name_of(&s3.path), "s3://archive/media/keynote.mp4");
        let file = open("file:///data/masters/a%20b.mp4").unwrap();
        assert_eq!(file.backend, Backend::Local);
        assert_eq!(
            file.file.as_deref(),
            Some(FsPath::new("/data/masters/a b.mp4"))
        );
        let staging = format!("/data/masters/a b.mp4.mmo-partial.{}", file.run);
        assert_eq!(file.files().unwrap().1, PathBuf::from(staging));
        assert_eq!(
            file.staging,
            Path::from_absolute_path(file.files().unwrap().1).unwrap()
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
            "file:///data/../etc/passwd",
            "file:///data/./master.mp4",
            "file:///data/%2E%2e/etc/passwd",
            "file:///data/.%2e/x.mp4",
        ] {
            let err = open(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"));
            assert_eq!(err.reason, super::super::Reason::BadInput, "{bad}");
        }
    }

    #[test]
    fn a_file_root_keeps_local_destinations_on_the_volume() {
        let with_root = |destination: &str| {
            let flags = ["--destination", destination, "--file-root", "/archive"];
            Destination::open(&super::super::args::parse_flags(&flags).unwrap())
        };
        assert!(with_root("file:///archive/media/master.mp4").is_ok());
        assert!(with_root("file:///archive..x/master.mp4").is_err());
        assert!(with_root("file:///etc/master.mp4").is_err());
        // Dots inside names are names, not segments.
        assert!(with_root("file:///archive/a..b/master.v2.mp4").is_ok());
    }

    #[test]
    fn only_a_recorded_and_consistent_digest_counts() {
        let sha = "a".repeat(64);
        let mut existing = Existing {
            size: 10,
            sha256: Some(sha.clone()),
            recorded_size: Some(10),
            e_tag: None,
        };
        assert_eq!(existing.verified_sha256(), Some(sha.as_str()));
        existing.recorded_size = Some(11);
        assert_eq!(existing.verified_sha256(), None);
        existing.recorded_size = None;
        existing.sha256 = Some("not-a-digest".into());
        assert_eq!(existing.verified_sha256(), None);
    }
}
