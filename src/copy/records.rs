//! What the copy records with an object it publishes (the metadata keys) and what an existing
//! object says about itself: the bottom of the destination modules, which the stores' readers
//! (`destination`, `local`, `sidecar`) and the skip rules (`existing`) all use.

use super::args::is_sha256_hex;

/// The metadata keys the copy records (`x-amz-meta-sha256`, `x-goog-meta-sha256`, ...).
pub const META_SHA256: &str = "sha256";
pub const META_SIZE: &str = "size";
pub const META_SOURCE: &str = "source";
/// What the staging object's name adds to the final one, before the run's own ID: two runs
/// on one key never share a staging object (`<key>.mmo-partial.<run>`). Copiers before
/// issue 13 used `<key>.mmo-partial` alone; leftovers there are still cleaned up.
pub const STAGING_SUFFIX: &str = ".mmo-partial";

/// What an existing object says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub size: u64,
    /// The `sha256` we recorded, if any (lowercase hex).
    pub sha256: Option<String>,
    /// The `size` we recorded, if any.
    pub recorded_size: Option<u64>,
    /// The store's ETag of it (none for `file://`): which version of the object this is.
    pub e_tag: Option<String>,
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
