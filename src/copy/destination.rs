//! The destination: parsing `s3://`, `gs://`, `az://` and `file://` URLs, building the object
//! store with credentials from the environment and a Secret's folder, and reading back what an
//! object records about itself.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{Attribute, GetOptions, ObjectStore};

use super::args::{CopyArgs, is_sha256_hex};
use super::error::CopyError;

/// The metadata keys the copy records (`x-amz-meta-sha256`, `x-goog-meta-sha256`, ...).
pub const META_SHA256: &str = "sha256";
pub const META_SIZE: &str = "size";
pub const META_SOURCE: &str = "source";
/// The extended attributes of a `file://` destination.
const XATTR_SHA256: &str = "user.mmo.sha256";
const XATTR_SIZE: &str = "user.mmo.size";
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

/// S3: `AmazonS3Builder::from_env`, then the credentials folder, then the flags.
fn s3_store(args: &CopyArgs, bucket: &str) -> Result<AmazonS3, CopyError> {
    let mut builder = AmazonS3Builder::from_env();
    for (name, value) in credential_files(args)? {
        let key = AmazonS3ConfigKey::from_str(&name).map_err(|_| unknown_setting(&name))?;
        builder = builder.with_config(key, value);
    }
    builder = builder.with_bucket_name(bucket);
    if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    if let Some(region) = &args.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &args.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
    }
    let plain_http = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .is_some_and(|e| e.starts_with("http://"));
    if args.allow_http || plain_http {
        builder = builder.with_allow_http(true);
    }
    if args.virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(true);
    }
    builder
        .build()
        .map_err(|e| CopyError::bad_input(format!("configuring S3: {e}")))
}

fn gcs_store(args: &CopyArgs, bucket: &str) -> Result<impl ObjectStore, CopyError> {
    let mut builder = GoogleCloudStorageBuilder::from_env();
    for (name, value) in credential_files(args)? {
        let key = GoogleConfigKey::from_str(&name).map_err(|_| unknown_setting(&name))?;
        builder = builder.with_config(key, value);
    }
    builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| CopyError::bad_input(format!("configuring Google Cloud Storage: {e}")))
}

fn azure_store(args: &CopyArgs, container: &str) -> Result<impl ObjectStore, CopyError> {
    let mut builder = MicrosoftAzureBuilder::from_env();
    for (name, value) in credential_files(args)? {
        let key = AzureConfigKey::from_str(&name).map_err(|_| unknown_setting(&name))?;
        builder = builder.with_config(key, value);
    }
    builder = builder.with_container_name(container);
    if let Some(endpoint) = &args.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    if args.allow_http
        || args
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    {
        builder = builder.with_allow_http(true);
    }
    builder
        .build()
        .map_err(|e| CopyError::bad_input(format!("configuring Azure Blob Storage: {e}")))
}

fn unknown_setting(name: &str) -> CopyError {
    CopyError::bad_input(format!(
        "the credentials folder has a file {name:?} that is not a setting of this object store"
    ))
}

/// The files of `--credentials-dir` as `(lowercase name, trimmed content)`. Kubernetes' own
/// entries of a mounted Secret (`..data`, `..2024_…`) are skipped. Contents are never shown.
fn credential_files(args: &CopyArgs) -> Result<Vec<(String, String)>, CopyError> {
    let Some(dir) = &args.credentials_dir else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CopyError::bad_input(format!(
            "reading the credentials folder {}: {e}",
            dir.display()
        ))
    })?;
    let mut settings = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            CopyError::bad_input(format!(
                "reading the credentials folder {}: {e}",
                dir.display()
            ))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| CopyError::bad_input(format!("reading {}: {e}", path.display())))?;
        settings.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    settings.sort();
    Ok(settings)
}

/// A local file's size and the digest recorded in its extended attributes or, failing that,
/// in its `<file>.sha256` sidecar.
fn local_existing(file: &FsPath) -> Option<Existing> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return Some(Existing {
            size: meta.len(),
            sha256: None,
            recorded_size: None,
        });
    }
    let sha256 = get_xattr(file, XATTR_SHA256).or_else(|| read_sidecar(file));
    Some(Existing {
        size: meta.len(),
        sha256: sha256.map(|s| s.to_ascii_lowercase()),
        recorded_size: get_xattr(file, XATTR_SIZE).and_then(|s| s.parse().ok()),
    })
}

/// `<file>.sha256`.
pub fn sidecar_path(file: &FsPath) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    name.into()
}

/// The digest in a `sha256sum` line naming `file`.
fn read_sidecar(file: &FsPath) -> Option<String> {
    let text = std::fs::read_to_string(sidecar_path(file)).ok()?;
    let line = text.lines().next()?;
    let (sha, name) = line.split_once(char::is_whitespace)?;
    let name = name.trim_start().trim_start_matches('*');
    let file_name = file.file_name()?.to_string_lossy();
    (name == file_name).then(|| sha.to_owned())
}

/// Writes `<file>.sha256` (through a temporary file and a rename).
pub fn write_sidecar(file: &FsPath, sha256: &str) -> std::io::Result<()> {
    let sidecar = sidecar_path(file);
    let mut temporary = sidecar.clone().into_os_string();
    temporary.push(STAGING_SUFFIX);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(&temporary, format!("{sha256}  {name}\n"))?;
    std::fs::rename(&temporary, &sidecar)
}

/// Records the digest and size as extended attributes; false where the filesystem has none.
pub fn set_local_metadata(file: &FsPath, sha256: &str, size: u64) -> bool {
    set_xattr(file, XATTR_SHA256, sha256) && set_xattr(file, XATTR_SIZE, &size.to_string())
}

fn c_path(path: &FsPath) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

fn set_xattr(file: &FsPath, name: &str, value: &str) -> bool {
    let (Some(path), Ok(name)) = (c_path(file), CString::new(name)) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is a valid slice.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    rc == 0
}

fn get_xattr(file: &FsPath, name: &str) -> Option<String> {
    let (path, name) = (c_path(file)?, CString::new(name).ok()?);
    let mut buf = [0u8; 128];
    // SAFETY: the strings are NUL-terminated; the buffer is writable for its whole length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    String::from_utf8(buf[..n as usize].to_vec()).ok()
}

/// Removes `<staging>#N` files that `LocalFileSystem` leaves when a run is killed mid-upload,
/// and the staging file itself.
pub fn remove_local_leftovers(staging: &FsPath) {
    let (Some(dir), Some(name)) = (staging.parent(), staging.file_name()) else {
        return;
    };
    let prefix = format!("{}#", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let leftover = entry_name
            .strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if leftover {
            tracing::info!("removing {} left by an interrupted run", entry_name);
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_file(staging);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CopyArgs,
    }

    fn open(destination: &str) -> Result<Destination, CopyError> {
        let args = Cli::try_parse_from([
            "copy",
            "--destination",
            destination,
            "--endpoint",
            "http://127.0.0.1:9",
        ])
        .unwrap()
        .args;
        Destination::open(&args)
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

    #[test]
    fn local_metadata_lives_in_xattrs_or_a_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.mp4");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(local_existing(&file).unwrap().sha256, None);
        let sha = "b".repeat(64);
        write_sidecar(&file, &sha).unwrap();
        let sidecar = std::fs::read_to_string(sidecar_path(&file)).unwrap();
        assert_eq!(sidecar, format!("{sha}  master.mp4\n"));
        assert_eq!(local_existing(&file).unwrap().sha256, Some(sha.clone()));
        if set_local_metadata(&file, &"c".repeat(64), 5) {
            let existing = local_existing(&file).unwrap();
            assert_eq!(existing.sha256, Some("c".repeat(64)));
            assert_eq!(existing.recorded_size, Some(5));
        }
    }
}
