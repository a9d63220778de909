//! The object stores behind `s3://`, `gs://` and `az://`: each built from the standard
//! environment variables, then the credentials folder (a mounted Secret), then the flags.

use std::str::FromStr;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::args::{CopyArgs, PartChecksum};
use super::error::CopyError;

/// S3: `AmazonS3Builder::from_env`, then the credentials folder, then the flags. With
/// `checksums`, every part and object uploaded carries the `--part-checksum` (CRC-64/NVME with
/// unsigned payloads, or SHA-256), which the store checks against the bytes it received (the
/// upload of the final key, or of the staging object with `--finalize restream`).
pub fn s3_store(args: &CopyArgs, bucket: &str, checksums: bool) -> Result<AmazonS3, CopyError> {
    let mut builder = AmazonS3Builder::from_env();
    for (key, value) in credential_settings::<AmazonS3ConfigKey>(args)? {
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
    if checksums {
        builder = match args.part_checksum {
            // The body is covered by its CRC, checked by the store, not by the signature: no
            // SHA-256 of every part here, nor in the store.
            PartChecksum::Crc64nvme => builder
                .with_checksum_algorithm(Checksum::CRC64NVME)
                .with_unsigned_payload(true),
            PartChecksum::Sha256 => builder.with_checksum_algorithm(Checksum::SHA256),
        };
    }
    builder
        .build()
        .map_err(|e| CopyError::bad_input(format!("configuring S3: {e}")))
}

pub fn gcs_store(args: &CopyArgs, bucket: &str) -> Result<impl ObjectStore, CopyError> {
    let mut builder = GoogleCloudStorageBuilder::from_env();
    for (key, value) in credential_settings::<GoogleConfigKey>(args)? {
        builder = builder.with_config(key, value);
    }
    builder = builder.with_bucket_name(bucket);
    // A GCS-compatible endpoint (an emulator, a proxy) instead of storage.googleapis.com.
    if let Some(endpoint) = &args.endpoint {
        builder = builder.with_base_url(endpoint.trim_end_matches('/'));
    }
    // (object_store's GCS client allows plain http already: nothing to do for --allow-http.)
    builder
        .build()
        .map_err(|e| CopyError::bad_input(format!("configuring Google Cloud Storage: {e}")))
}

pub fn azure_store(args: &CopyArgs, container: &str) -> Result<impl ObjectStore, CopyError> {
    let mut builder = MicrosoftAzureBuilder::from_env();
    for (key, value) in credential_settings::<AzureConfigKey>(args)? {
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

/// The credentials folder as settings of one store (`K`, its config key type): a file that
/// names no setting of that store is bad input.
fn credential_settings<K: FromStr>(args: &CopyArgs) -> Result<Vec<(K, String)>, CopyError> {
    credential_files(args)?
        .into_iter()
        .map(|(name, value)| match K::from_str(&name) {
            Ok(key) => Ok((key, value)),
            Err(_) => Err(CopyError::bad_input(format!(
                "the credentials folder has a file {name:?} that is not a setting of this object \
                 store"
            ))),
        })
        .collect()
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
