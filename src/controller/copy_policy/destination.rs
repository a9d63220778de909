//! What a destination is: its identity (everything that decides where and how the copy is
//! written: a change of any of it is a new destination) and the object it resolves to (what
//! two resources must not share).

use sha2::Digest;

use crate::resource::{CopyStatus, Destination};

/// The destination's identity: a digest of its URL, endpoint, region, credentials Secret
/// and volume. `overwrite` and `pathStyle` change how the copy writes, not where.
pub fn identity(destination: &Destination) -> String {
    let volume = destination
        .volume
        .as_ref()
        .map(|v| format!("{}:{}", v.claim_name, v.mount_path));
    let credentials = destination
        .credentials_secret_ref
        .as_ref()
        .map(|s| s.name.as_str());
    let parts = [
        Some(destination.url.as_str()),
        destination.endpoint.as_deref(),
        destination.region.as_deref(),
        credentials,
        volume.as_deref(),
    ];
    let text: Vec<String> = parts
        .iter()
        .map(|p| p.map_or_else(|| "-".to_string(), |p| format!("+{p}")))
        .collect();
    hex::encode(&sha2::Sha256::digest(text.join("\n").as_bytes())[..8])
}

/// The object a destination resolves to, for telling whether two resources would write the
/// same one: the store (endpoint, or the provider's own) and the URL; for `file://`, the
/// claim (namespaced) and the path below its mount.
pub fn object_key(namespace: &str, destination: &Destination) -> String {
    match &destination.volume {
        Some(volume) => {
            let path = destination
                .url
                .strip_prefix("file://")
                .and_then(|p| p.strip_prefix(volume.mount_path.as_str()))
                .unwrap_or(&destination.url);
            format!("pvc://{namespace}/{}{path}", volume.claim_name)
        }
        None => format!(
            "{}|{}",
            destination
                .endpoint
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/'),
            destination.url
        ),
    }
}

/// Whether a recorded copy is of `destination`. A copy recorded before identities were kept
/// (none recorded) is matched by its URL, and gets the identity on its next write.
pub fn is_of(copy: &CopyStatus, destination: &Destination) -> bool {
    copy.destination == destination.url
        && copy
            .destination_identity
            .as_deref()
            .is_none_or(|id| id == identity(destination))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{DestinationVolume, LocalObjectRef};

    fn s3() -> Destination {
        Destination {
            url: "s3://archive/k.mp4".into(),
            endpoint: Some("http://minio:9000".into()),
            credentials_secret_ref: Some(LocalObjectRef {
                name: "archive".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_part_of_a_destination_is_its_identity() {
        let base = identity(&s3());
        type Change = Box<dyn Fn(&mut Destination)>;
        let changes: Vec<Change> = vec![
            Box::new(|d| d.url = "s3://archive/other.mp4".into()),
            Box::new(|d| d.endpoint = Some("http://other:9000".into())),
            Box::new(|d| d.endpoint = None),
            Box::new(|d| d.region = Some("eu-west-1".into())),
            Box::new(|d| d.credentials_secret_ref = Some(LocalObjectRef { name: "b".into() })),
            Box::new(|d| {
                d.volume = Some(DestinationVolume {
                    claim_name: "c".into(),
                    mount_path: "/a".into(),
                })
            }),
        ];
        for change in changes {
            let mut d = s3();
            change(&mut d);
            assert_ne!(identity(&d), base, "{d:?}");
        }
        let mut same = s3();
        same.overwrite = true;
        same.path_style = true;
        assert_eq!(identity(&same), base, "how, not where");
    }

    #[test]
    fn the_same_object_is_the_same_key_whatever_else_differs() {
        let mut other = s3();
        other.credentials_secret_ref = None;
        other.region = Some("us-east-1".into());
        other.endpoint = Some("http://minio:9000/".into());
        assert_eq!(object_key("a", &s3()), object_key("b", &other));
        other.endpoint = None;
        assert_ne!(
            object_key("a", &s3()),
            object_key("a", &other),
            "another store"
        );
        let file = |claim: &str, mount: &str, url: &str| Destination {
            url: url.into(),
            volume: Some(DestinationVolume {
                claim_name: claim.into(),
                mount_path: mount.into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            object_key("media", &file("pvc", "/a", "file:///a/x.mp4")),
            object_key("media", &file("pvc", "/b", "file:///b/x.mp4")),
            "one claim, one file, whatever the mount"
        );
        assert_ne!(
            object_key("media", &file("pvc", "/a", "file:///a/x.mp4")),
            object_key("other", &file("pvc", "/a", "file:///a/x.mp4")),
            "claims are namespaced"
        );
    }

    #[test]
    fn a_copy_is_of_a_destination_by_url_and_identity() {
        let d = s3();
        let mut copy = CopyStatus {
            destination: d.url.clone(),
            ..Default::default()
        };
        assert!(is_of(&copy, &d), "a copy recorded without identity: by URL");
        copy.destination_identity = Some(identity(&d));
        assert!(is_of(&copy, &d));
        let mut moved = d.clone();
        moved.endpoint = Some("http://elsewhere:9000".into());
        assert!(!is_of(&copy, &moved), "same URL, another store");
    }
}
