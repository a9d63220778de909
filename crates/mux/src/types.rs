//! The wire types of the Mux Video API, as far as master access goes.
//!
//! Shared by the client and by `mux-sim`, so both speak exactly one format. Every type
//! tolerates what Mux may add later: unknown fields are ignored and unknown enum values
//! land in an `Unknown` variant instead of failing the whole response.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// `{"data": {...}}`: how Mux wraps one object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataEnvelope<T> {
    pub data: T,
}

/// `{"data": [...], "next_cursor": "..."}`: how Mux wraps a page of a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListEnvelope<T> {
    pub data: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `{"error": {"type": "not_found", "messages": ["..."]}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub messages: Vec<String>,
}

impl ErrorEnvelope {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                kind: kind.to_string(),
                messages: vec![message.into()],
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    Preparing,
    Ready,
    Errored,
    #[serde(other)]
    Unknown,
}

/// The asset's `master_access` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MasterAccess {
    Temporary,
    #[default]
    None,
    #[serde(other)]
    Unknown,
}

impl MasterAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MasterAccess::Temporary => "temporary",
            MasterAccess::None => "none",
            MasterAccess::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterStatus {
    Preparing,
    Ready,
    Errored,
    #[serde(other)]
    Unknown,
}

/// The master download URL: a bearer credential for 24 hours.
///
/// `Debug` and `Display` show where it points (host and path, which carry the asset ID)
/// but never the query string, which carries the signature. Use [`MasterUrl::expose`]
/// where the real value is needed (a Secret, an HTTP request).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MasterUrl(String);

impl MasterUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, signature included. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with `download=<filename>` appended: the only change Mux allows a client
    /// to make, which makes browsers save the file under that name.
    pub fn with_download(&self, filename: &str) -> MasterUrl {
        let mut url = match url::Url::parse(&self.0) {
            Ok(url) => url,
            Err(_) => return self.clone(),
        };
        url.query_pairs_mut().append_pair("download", filename);
        MasterUrl(url.into())
    }

    /// The URL without its query: safe to show.
    pub fn redacted(&self) -> String {
        match self.0.split_once('?') {
            Some((base, _)) => format!("{base}?<redacted>"),
            None => self.0.clone(),
        }
    }
}

impl fmt::Debug for MasterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterUrl({})", self.redacted())
    }
}

impl fmt::Display for MasterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `master`: present while master access is on, absent once it is `none` or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Master {
    pub status: MasterStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<MasterUrl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AssetErrors {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub messages: Vec<String>,
}

/// A Mux asset, with the fields that matter for master access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub id: String,
    /// Unix seconds. The REST API sends a string, webhooks may send a number: both parse.
    #[serde(
        default,
        deserialize_with = "unix_seconds_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    pub status: AssetStatus,
    #[serde(default)]
    pub master_access: MasterAccess,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<Master>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resolution_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_stream_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_live: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<AssetErrors>,
}

impl Asset {
    /// The master's status, `None` when there is no `master` object.
    pub fn master_status(&self) -> Option<MasterStatus> {
        self.master.as_ref().map(|m| m.status)
    }

    /// The master URL, once the master is ready.
    pub fn master_url(&self) -> Option<&MasterUrl> {
        self.master
            .as_ref()
            .filter(|m| m.status == MasterStatus::Ready)
            .and_then(|m| m.url.as_ref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveStreamStatus {
    Idle,
    Active,
    Disabled,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStream {
    pub id: String,
    pub status: LiveStreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_asset_id: Option<String>,
    /// Newest last.
    #[serde(default)]
    pub recent_asset_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_asset_settings: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_window: Option<f64>,
    #[serde(
        default,
        deserialize_with = "unix_seconds_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
}

/// `POST /video/v1/assets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateAssetRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<AssetInput>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playback_policy: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_access: Option<MasterAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resolution_tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetInput {
    pub url: String,
}

/// `PUT /video/v1/assets/{id}/master-access`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UpdateMasterAccessRequest {
    pub master_access: MasterAccess,
}

/// A webhook delivery's envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: WebhookObject,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<WebhookEnvironment>,
    /// The object the event is about (an asset for `video.asset.*`). Kept as JSON because
    /// each event type carries its own object; [`WebhookEvent::asset`] parses an asset.
    #[serde(default)]
    pub data: serde_json::Value,
    #[serde(default)]
    pub created_at: serde_json::Value,
    #[serde(default)]
    pub attempts: Vec<serde_json::Value>,
}

impl WebhookEvent {
    /// The asset carried in `data`, for `video.asset.*` events.
    pub fn asset(&self) -> Option<Asset> {
        serde_json::from_value(self.data.clone()).ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookObject {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEnvironment {
    pub name: String,
    pub id: String,
}

/// Accepts Unix seconds as `"1609868768"`, `1609868768` or `1609868768.0`.
fn unix_seconds_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Int(n)) => Ok(Some(n)),
        Some(Raw::Float(f)) => Ok(Some(f as i64)),
        Some(Raw::Text(s)) => {
            s.trim().parse::<i64>().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("created_at {s:?} is not Unix seconds"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_parses_string_created_at_and_ignores_unknown_fields() {
        let json = r#"{"data":{"id":"a1","created_at":"1609868768","status":"ready",
            "master_access":"temporary","master":{"status":"ready","url":"https://mezzanine.mux.com/a1/mezzanine.mp4?skid=k&signature=s"},
            "max_resolution_tier":"2160p","brand_new_field":{"x":1},"tracks":[]}}"#;
        let asset: DataEnvelope<Asset> = serde_json::from_str(json).unwrap();
        assert_eq!(asset.data.created_at, Some(1609868768));
        assert_eq!(asset.data.master_status(), Some(MasterStatus::Ready));
        assert!(asset.data.master_url().is_some());
    }

    #[test]
    fn asset_parses_numeric_created_at_and_missing_master() {
        let json = r#"{"id":"a1","created_at":1609868768,"status":"preparing"}"#;
        let asset: Asset = serde_json::from_str(json).unwrap();
        assert_eq!(asset.created_at, Some(1609868768));
        assert_eq!(asset.master, None);
        assert_eq!(asset.master_access, MasterAccess::None);
    }

    #[test]
    fn unknown_enum_values_do_not_fail_the_parse() {
        let json = r#"{"id":"a1","status":"archived","master_access":"permanent",
            "master":{"status":"shrinking"}}"#;
        let asset: Asset = serde_json::from_str(json).unwrap();
        assert_eq!(asset.status, AssetStatus::Unknown);
        assert_eq!(asset.master_access, MasterAccess::Unknown);
        assert_eq!(asset.master_status(), Some(MasterStatus::Unknown));
    }

    #[test]
    fn master_url_debug_and_display_hide_the_signature() {
        let url =
            MasterUrl::new("https://mezzanine.mux.com/a1/mezzanine.mp4?skid=k&signature=SECRET");
        for shown in [format!("{url:?}"), format!("{url}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("a1/mezzanine.mp4"), "{shown}");
        }
    }

    #[test]
    fn with_download_appends_the_filename() {
        let url = MasterUrl::new("https://mezzanine.mux.com/a1/mezzanine.mp4?skid=k&signature=s");
        assert_eq!(
            url.with_download("key note.mp4").expose(),
            "https://mezzanine.mux.com/a1/mezzanine.mp4?skid=k&signature=s&download=key+note.mp4"
        );
    }

    #[test]
    fn webhook_event_carries_an_asset() {
        let json = r#"{"type":"video.asset.master.ready","object":{"type":"asset","id":"a1"},
            "id":"3a56ac3d-33da-4366-855b-f592d898409d","environment":{"name":"Production","id":"j0863n"},
            "data":{"id":"a1","status":"ready","created_at":1609868768,"master_access":"temporary",
            "master":{"status":"ready","url":"https://x/a1/mezzanine.mp4?s=1"}},
            "created_at":"2021-01-05T17:46:15.000000Z","attempts":[]}"#;
        let event: WebhookEvent = serde_json::from_str(json).unwrap();
        assert_eq!(event.object.id, "a1");
        assert_eq!(
            event.asset().unwrap().master_status(),
            Some(MasterStatus::Ready)
        );
    }
}
