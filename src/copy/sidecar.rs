//! The SHA-256 of an S3 object recorded beside it, in `<key>.sha256`.
//!
//! S3 takes user metadata only when an upload is created, before a streamed master's digest
//! is known; writing the object again to add it (the server-side copy of copiers before issue
//! 15) costs a second pass over the data. So the object is uploaded once, under its final key,
//! and its digest goes into a small object beside it once it is published: its body a
//! `sha256sum -c` line (`<hex>  <name>`), its metadata the digest, the size and the ETag of
//! the object it describes. A sidecar counts only for the object whose ETag it names: one left
//! by another run, or by an object since replaced, records nothing (it never lends its digest
//! to an object it did not describe). When the digest is known before the upload
//! (`--expected-sha256`), the object also carries it in its own metadata, as before.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, PutOptions};

use super::records::{META_SHA256, META_SIZE};

/// The metadata key of the ETag of the object a sidecar describes.
pub const META_OBJECT_E_TAG: &str = "object-etag";
/// What the sidecar's name adds to the object's.
pub const SIDECAR_SUFFIX: &str = ".sha256";

/// What a sidecar records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub sha256: String,
    pub size: Option<u64>,
}

/// `<key>.sha256`.
pub fn sidecar_of(path: &Path) -> Path {
    Path::from(format!("{path}{SIDECAR_SUFFIX}"))
}

/// An ETag without its quotes (stores and their answers differ in quoting).
fn bare(e_tag: &str) -> &str {
    e_tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Records `sha256` and `size` for the object at `path` whose ETag is `e_tag`.
pub async fn write_sidecar(
    store: &dyn ObjectStore,
    path: &Path,
    e_tag: &str,
    sha256: &str,
    size: u64,
) -> object_store::Result<()> {
    let name = path.filename().unwrap_or_default();
    let mut attributes = Attributes::new();
    for (key, value) in [
        (META_SHA256, sha256.to_owned()),
        (META_SIZE, size.to_string()),
        (META_OBJECT_E_TAG, bare(e_tag).to_owned()),
    ] {
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    }
    attributes.insert(Attribute::ContentType, "text/plain".into());
    let options = PutOptions {
        attributes,
        ..Default::default()
    };
    let body = Bytes::from(format!("{sha256}  {name}\n"));
    store
        .put_opts(&sidecar_of(path), body.into(), options)
        .await
        .map(|_| ())
}

/// What the sidecar of `path` records for the object whose ETag is `e_tag`: nothing when there
/// is none, or when it describes another object.
pub async fn read_sidecar(
    store: &dyn ObjectStore,
    path: &Path,
    e_tag: Option<&str>,
) -> object_store::Result<Option<Recorded>> {
    let Some(e_tag) = e_tag else {
        return Ok(None);
    };
    let options = GetOptions {
        head: true,
        ..Default::default()
    };
    let found = match store.get_opts(&sidecar_of(path), options).await {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = |key: &'static str| {
        found
            .attributes
            .get(&Attribute::Metadata(key.into()))
            .map(|v| v.as_ref().trim().to_owned())
    };
    Ok(describes(meta(META_OBJECT_E_TAG).as_deref(), e_tag)
        .then(|| meta(META_SHA256))
        .flatten()
        .map(|sha256| Recorded {
            sha256: sha256.to_ascii_lowercase(),
            size: meta(META_SIZE).and_then(|s| s.parse().ok()),
        }))
}

/// Whether a sidecar naming `recorded` describes the object whose ETag is `e_tag`.
fn describes(recorded: Option<&str>, e_tag: &str) -> bool {
    recorded.is_some_and(|recorded| !recorded.is_empty() && bare(recorded) == bare(e_tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[test]
    fn a_sidecar_describes_only_the_object_whose_etag_it_names() {
        assert!(describes(Some("abc-3"), "\"abc-3\""));
        assert!(describes(Some("\"abc-3\""), "abc-3"));
        assert!(!describes(Some("abc-3"), "\"abd-3\""));
        assert!(!describes(Some(""), "\"\""));
        assert!(!describes(None, "abc"));
        assert_eq!(
            sidecar_of(&Path::from("a/b.mp4")).as_ref(),
            "a/b.mp4.sha256"
        );
    }

    #[tokio::test]
    async fn what_is_written_is_read_back_for_that_object_only() {
        let store = InMemory::new();
        let path = Path::from("media/master.mp4");
        let sha = "ab".repeat(32);
        assert_eq!(
            read_sidecar(&store, &path, Some("\"e1\"")).await.unwrap(),
            None
        );
        write_sidecar(&store, &path, "\"e1\"", &sha, 42)
            .await
            .unwrap();
        let recorded = read_sidecar(&store, &path, Some("e1")).await.unwrap();
        assert_eq!(
            recorded,
            Some(Recorded {
                sha256: sha.clone(),
                size: Some(42)
            })
        );
        assert_eq!(read_sidecar(&store, &path, Some("e2")).await.unwrap(), None);
        assert_eq!(read_sidecar(&store, &path, None).await.unwrap(), None);
        let body = store.get(&sidecar_of(&path)).await.unwrap().bytes().await;
        assert_eq!(body.unwrap(), format!("{sha}  master.mp4\n"));
    }
}
