//! Which Mux object to read for a resource's source, and what a live stream means now.

use mux::types::{Asset, AssetStatus, LiveStream, LiveStreamStatus};

use crate::resource::{AssetState, MasterExportSpec, MasterExportStatus};

/// The asset part of the status.
pub fn asset_state(asset: &Asset) -> AssetState {
    AssetState {
        id: asset.id.clone(),
        status: Some(
            match asset.status {
                AssetStatus::Preparing => "preparing",
                AssetStatus::Ready => "ready",
                AssetStatus::Errored => "errored",
                AssetStatus::Unknown => "unknown",
            }
            .to_string(),
        ),
        max_resolution_tier: asset.max_resolution_tier.clone(),
    }
}

/// What to read from Mux to find the asset to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLookup {
    /// This asset: the spec's, or the live stream's recording already chosen.
    Asset(String),
    /// This live stream, whose recording is not chosen yet.
    LiveStream(String),
}

/// The source to read. A live stream's recording, once chosen (recorded in `status.asset`),
/// is kept: a later recording of the same stream is not this resource's export.
pub fn source_lookup(spec: &MasterExportSpec, status: &MasterExportStatus) -> SourceLookup {
    if let Some(asset_id) = &spec.source.asset_id {
        return SourceLookup::Asset(asset_id.clone());
    }
    match status.asset.as_ref() {
        Some(chosen) => SourceLookup::Asset(chosen.id.clone()),
        None => SourceLookup::LiveStream(spec.source.live_stream_id.clone().unwrap_or_default()),
    }
}

/// What a live-stream source means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSource {
    /// Export this recording.
    Asset(String),
    /// Nothing to export yet; the message says why.
    Waiting(String),
}

/// Picks the recording to export from a stream whose recording is not chosen yet: the
/// newest recording, once the stream is no longer live.
pub fn resolve_live_stream(stream: &LiveStream) -> LiveSource {
    match stream.status {
        LiveStreamStatus::Active => LiveSource::Waiting(format!(
            "live stream {} is live; its recording is exported once the stream ends",
            stream.id
        )),
        _ => match stream.recent_asset_ids.last() {
            Some(latest) => LiveSource::Asset(latest.clone()),
            None => LiveSource::Waiting(format!("live stream {} has no recording yet", stream.id)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{LocalObjectRef, Source};

    fn spec(asset: Option<&str>, stream: Option<&str>) -> MasterExportSpec {
        MasterExportSpec {
            source: Source {
                asset_id: asset.map(Into::into),
                live_stream_id: stream.map(Into::into),
            },
            access: Default::default(),
            credentials_secret_ref: LocalObjectRef { name: "mux".into() },
            refresh_before: "2h".into(),
            url_secret: None,
            deletion_policy: Default::default(),
            suspend: false,
            destination: None,
            after_copy: None,
        }
    }

    #[test]
    fn the_source_to_read_keeps_the_chosen_recording() {
        let chosen = MasterExportStatus {
            asset: Some(AssetState {
                id: "rec1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let none = MasterExportStatus::default();
        let cases = [
            (
                spec(Some("a1"), None),
                &none,
                SourceLookup::Asset("a1".into()),
            ),
            (
                spec(Some("a1"), None),
                &chosen,
                SourceLookup::Asset("a1".into()),
            ),
            (
                spec(None, Some("ls")),
                &none,
                SourceLookup::LiveStream("ls".into()),
            ),
            (
                spec(None, Some("ls")),
                &chosen,
                SourceLookup::Asset("rec1".into()),
            ),
        ];
        for (spec, status, want) in cases {
            assert_eq!(source_lookup(&spec, status), want, "{:?}", spec.source);
        }
    }

    #[test]
    fn live_streams_resolve_to_their_latest_recording_once_idle() {
        let mut stream = LiveStream {
            id: "ls".into(),
            status: LiveStreamStatus::Active,
            active_asset_id: Some("rec2".into()),
            recent_asset_ids: vec!["rec1".into()],
            new_asset_settings: None,
            reconnect_window: None,
            created_at: None,
        };
        assert!(matches!(
            resolve_live_stream(&stream),
            LiveSource::Waiting(_)
        ));
        stream.status = LiveStreamStatus::Idle;
        stream.recent_asset_ids.push("rec2".into());
        assert_eq!(
            resolve_live_stream(&stream),
            LiveSource::Asset("rec2".into())
        );
        stream.recent_asset_ids.clear();
        assert!(matches!(
            resolve_live_stream(&stream),
            LiveSource::Waiting(_)
        ));
    }
}
