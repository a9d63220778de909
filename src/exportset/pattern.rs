//! The destination pattern of a set: a URL with placeholders filled from each asset.
//!
//! `{assetId}`, `{passthrough}`, `{liveStreamId}`, `{createdAt}` (`%Y-%m-%d`) and
//! `{createdAt:FORMAT}` (strftime, UTC). A pattern is refused unless the asset ID can be read
//! back from every key it gives: `{assetId}` must come after every other placeholder and
//! share its path segment with none (`.../{passthrough}/{assetId}.mp4` is fine,
//! `.../{passthrough}-{assetId}.mp4` is not: `a` + `b-c` and `a-b` + `c` would meet). Since
//! the segment holding it is then literal but for an ID of letters and digits, and nothing
//! after it varies, two assets can never share a key.

use jiff::Timestamp;
use mux::types::Asset;

/// One piece of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    AssetId,
    Passthrough,
    LiveStreamId,
    /// A strftime format.
    CreatedAt(String),
}

/// A validated destination pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// Why a pattern is refused (the message a person reads in the `Stalled` condition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("'{{' at {0} is not closed by '}}'")]
    Unclosed(usize),
    #[error("'}}' at {0} closes nothing")]
    Unopened(usize),
    #[error(
        "unknown placeholder {{{0}}}; use {{assetId}}, {{passthrough}}, {{liveStreamId}}, {{createdAt}} or {{createdAt:FORMAT}}"
    )]
    Unknown(String),
    #[error("{{createdAt:{0}}}: not a strftime format this operator can write into a key")]
    BadTimeFormat(String),
    #[error("the pattern must contain {{assetId}}: without it two assets could get one key")]
    NoAssetId,
    #[error(
        "{{assetId}} must be the last placeholder and alone in its path segment, or two assets could get one key"
    )]
    AmbiguousAssetId,
}

/// The format of a bare `{createdAt}`.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d";
/// What a missing `{passthrough}` or `{liveStreamId}` becomes.
pub const MISSING: &str = "none";
/// The longest a `{passthrough}` becomes in a key.
const MAX_PASSTHROUGH: usize = 100;

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let pieces = split(text)?;
        check_unique(&pieces)?;
        Ok(Pattern { pieces })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The pattern filled in for `asset`.
    pub fn render(&self, asset: &Asset) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::AssetId => out.push_str(&key_safe(&asset.id, usize::MAX)),
                Piece::Passthrough => out.push_str(&optional(asset.passthrough.as_deref())),
                Piece::LiveStreamId => out.push_str(&optional(asset.live_stream_id.as_deref())),
                Piece::CreatedAt(format) => out.push_str(&created_at(format, asset.created_at)),
            }
        }
        out
    }
}

fn split(text: &str) -> Result<Vec<Piece>, PatternError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text.char_indices();
    while let Some((at, c)) = rest.next() {
        match c {
            '{' => {
                let body: String = rest
                    .by_ref()
                    .map(|(_, c)| c)
                    .take_while(|c| *c != '}')
                    .collect();
                let closed = text[at + 1..].starts_with(&format!("{body}}}"));
                if !closed || body.contains('{') {
                    return Err(PatternError::Unclosed(at));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(placeholder(&body)?);
            }
            '}' => return Err(PatternError::Unopened(at)),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn placeholder(body: &str) -> Result<Piece, PatternError> {
    match body {
        "assetId" => Ok(Piece::AssetId),
        "passthrough" => Ok(Piece::Passthrough),
        "liveStreamId" => Ok(Piece::LiveStreamId),
        "createdAt" => Ok(Piece::CreatedAt(DEFAULT_TIME_FORMAT.into())),
        _ => match body.strip_prefix("createdAt:") {
            Some(format) => time_format(format).map(Piece::CreatedAt),
            None => Err(PatternError::Unknown(body.into())),
        },
    }
}

/// A strftime format whose output is always key-safe (the CRD allows the same characters).
fn time_format(format: &str) -> Result<String, PatternError> {
    let refuse = || PatternError::BadTimeFormat(format.into());
    let allowed = |c: char| c.is_ascii_alphanumeric() || "%/_.-".contains(c);
    if format.is_empty() || !format.chars().all(allowed) {
        return Err(refuse());
    }
    let sample = jiff::fmt::strtime::format(format, Timestamp::UNIX_EPOCH).map_err(|_| refuse())?;
    // `%Z`, `%c` and friends write spaces or names: keep keys to what the format spelled.
    if !sample.chars().all(allowed) || sample.is_empty() {
        return Err(refuse());
    }
    Ok(format.into())
}

fn check_unique(pieces: &[Piece]) -> Result<(), PatternError> {
    let at = pieces
        .iter()
        .position(|p| *p == Piece::AssetId)
        .ok_or(PatternError::NoAssetId)?;
    let after_is_literal = pieces[at + 1..]
        .iter()
        .all(|p| matches!(p, Piece::Literal(_)));
    // Between the previous placeholder and {assetId} there must be a '/'.
    let segment_is_its_own = match pieces[..at].last() {
        None => true,
        Some(Piece::Literal(text)) => text.contains('/') || at == 1,
        Some(_) => false,
    };
    if after_is_literal && segment_is_its_own {
        Ok(())
    } else {
        Err(PatternError::AmbiguousAssetId)
    }
}

/// Letters, digits, `-` and `_` as they are; anything else (`/`, `.`, spaces) becomes `_`,
/// so a value can neither add a path segment nor spell `..`.
fn key_safe(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn optional(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => key_safe(v, MAX_PASSTHROUGH),
        _ => MISSING.into(),
    }
}

fn created_at(format: &str, unix: Option<i64>) -> String {
    unix.and_then(|s| Timestamp::from_second(s).ok())
        .and_then(|t| jiff::fmt::strtime::format(format, t).ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(id: &str, passthrough: Option<&str>, live: Option<&str>, created: i64) -> Asset {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "status": "ready",
            "created_at": created.to_string(),
            "passthrough": passthrough,
            "live_stream_id": live,
        }))
        .unwrap()
    }

    #[test]
    fn placeholders_are_filled_from_the_asset() {
        // 2024-03-05T10:00:00Z
        let a = asset("Abc123", Some("show/ep 1"), Some("LS9"), 1_709_632_800);
        let cases = [
            (
                "s3://archive/mux/{assetId}.mp4",
                "s3://archive/mux/Abc123.mp4",
            ),
            (
                "s3://a/{createdAt:%Y/%m}/{assetId}.mp4",
                "s3://a/2024/03/Abc123.mp4",
            ),
            ("s3://a/{createdAt}/{assetId}", "s3://a/2024-03-05/Abc123"),
            (
                "s3://a/{passthrough}/{liveStreamId}/{assetId}.mp4",
                "s3://a/show_ep_1/LS9/Abc123.mp4",
            ),
            ("gs://b/{assetId}/master.mp4", "gs://b/Abc123/master.mp4"),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                Pattern::parse(pattern).unwrap().render(&a),
                want,
                "{pattern}"
            );
        }
    }

    #[test]
    fn missing_values_and_hostile_passthroughs_stay_inside_their_segment() {
        let pattern =
            Pattern::parse("file:///archive/{passthrough}/{liveStreamId}/{assetId}").unwrap();
        let cases = [
            (None, "file:///archive/none/none/X1"),
            (Some(""), "file:///archive/none/none/X1"),
            (Some(".."), "file:///archive/__/none/X1"),
            (Some("../../etc"), "file:///archive/______etc/none/X1"),
        ];
        for (passthrough, want) in cases {
            assert_eq!(pattern.render(&asset("X1", passthrough, None, 0)), want);
        }
        let long = "p".repeat(300);
        let rendered = pattern.render(&asset("X1", Some(&long), None, 0));
        assert_eq!(
            rendered.len(),
            "file:///archive//none/X1".len() + MAX_PASSTHROUGH
        );
    }

    #[test]
    fn unknown_or_malformed_placeholders_are_refused() {
        let cases = [
            ("s3://a/{assetID}", PatternError::Unknown("assetID".into())),
            ("s3://a/{x}/{assetId}", PatternError::Unknown("x".into())),
            ("s3://a/{assetId", PatternError::Unclosed(7)),
            ("s3://a/{as{assetId}}", PatternError::Unclosed(7)),
            ("s3://a/assetId}", PatternError::Unopened(14)),
            (
                "s3://a/{createdAt:%Y %m}/{assetId}",
                PatternError::BadTimeFormat("%Y %m".into()),
            ),
            (
                "s3://a/{createdAt:%Z}/{assetId}",
                PatternError::BadTimeFormat("%Z".into()),
            ),
            (
                "s3://a/{createdAt:%Q}/{assetId}",
                PatternError::BadTimeFormat("%Q".into()),
            ),
        ];
        for (pattern, want) in cases {
            assert_eq!(Pattern::parse(pattern), Err(want), "{pattern}");
        }
    }

    #[test]
    fn patterns_that_could_give_two_assets_one_key_are_refused() {
        let refused = [
            ("s3://a/{passthrough}.mp4", PatternError::NoAssetId),
            ("s3://a/master.mp4", PatternError::NoAssetId),
            (
                "s3://a/{passthrough}-{assetId}.mp4",
                PatternError::AmbiguousAssetId,
            ),
            (
                "s3://a/{assetId}{passthrough}",
                PatternError::AmbiguousAssetId,
            ),
            (
                "s3://a/{assetId}/{passthrough}.mp4",
                PatternError::AmbiguousAssetId,
            ),
            ("s3://a/{assetId}/{assetId}", PatternError::AmbiguousAssetId),
            (
                "s3://a/{createdAt}{assetId}",
                PatternError::AmbiguousAssetId,
            ),
        ];
        for (pattern, want) in refused {
            assert_eq!(Pattern::parse(pattern), Err(want), "{pattern}");
        }
        // Why, concretely: unchecked, `{assetId}{passthrough}` gives `a` + `bc` and `ab` + `c`
        // the same key.
        let unchecked = Pattern {
            pieces: split("s3://a/{assetId}{passthrough}").unwrap(),
        };
        assert_eq!(
            unchecked.render(&asset("a", Some("bc"), None, 0)),
            unchecked.render(&asset("ab", Some("c"), None, 0))
        );
    }

    #[test]
    fn accepted_patterns_give_distinct_assets_distinct_keys() {
        let pattern =
            Pattern::parse("s3://a/{passthrough}/{createdAt:%Y/%m}/{assetId}.mp4").unwrap();
        let assets = [
            asset("a", Some("x/y"), None, 0),
            asset("ab", Some("x"), None, 0),
            asset("b", Some("x_y"), None, 0),
            asset("A", Some("x/y"), None, 0),
            asset("a1", None, None, 86_400 * 40),
        ];
        let keys: std::collections::BTreeSet<String> =
            assets.iter().map(|a| pattern.render(a)).collect();
        assert_eq!(keys.len(), assets.len(), "{keys:?}");
    }
}
