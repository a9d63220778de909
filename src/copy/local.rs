//! A `file://` destination's own records: the digest and size in extended attributes (where
//! the filesystem has them) and a `<file>.sha256` sidecar; and the leftovers of a killed run.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path as FsPath, PathBuf};

use super::records::{Existing, STAGING_SUFFIX};

/// The extended attributes of a `file://` destination.
const XATTR_SHA256: &str = "user.mmo.sha256";
const XATTR_SIZE: &str = "user.mmo.size";

/// A local file's size and the digest recorded in its extended attributes or, failing that,
/// in its `<file>.sha256` sidecar.
pub fn local_existing(file: &FsPath) -> Option<Existing> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return Some(Existing {
            size: meta.len(),
            sha256: None,
            recorded_size: None,
            e_tag: None,
        });
    }
    let sha256 = get_xattr(file, XATTR_SHA256).or_else(|| read_sidecar(file));
    Some(Existing {
        size: meta.len(),
        sha256: sha256.map(|s| s.to_ascii_lowercase()),
        recorded_size: get_xattr(file, XATTR_SIZE).and_then(|s| s.parse().ok()),
        e_tag: None,
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
    temporary.push(format!("{STAGING_SUFFIX}.{}", std::process::id()));
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
