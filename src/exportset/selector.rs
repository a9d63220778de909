//! Which assets of the environment a set selects, and what becomes of each selected one.

use mux::types::{Asset, AssetStatus};

use super::resource::AssetSelector;

/// What the set does with a selected asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Ready in Mux: exported.
    Export,
    /// Still preparing (or a recording still live): exported once ready.
    Wait,
    /// Errored in Mux: counted, never exported nor retried.
    Skip,
}

/// Does `selector` select `asset`? Every field set must match; an empty selector selects all.
pub fn selects(selector: &AssetSelector, asset: &Asset) -> bool {
    let listed = |ids: &[String], id: Option<&str>| {
        ids.is_empty() || id.is_some_and(|id| ids.iter().any(|i| i == id))
    };
    let within = |bound: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
                  keep: fn(i64, i64) -> bool| {
        match bound {
            None => true,
            // An asset without a creation time cannot be shown to be in the window.
            Some(bound) => asset
                .created_at
                .is_some_and(|created| keep(created, bound.0.as_second())),
        }
    };
    listed(&selector.asset_ids, Some(&asset.id))
        && listed(&selector.live_stream_ids, asset.live_stream_id.as_deref())
        && within(&selector.created_after, |created, bound| created >= bound)
        && within(&selector.created_before, |created, bound| created < bound)
        && selector.passthrough.as_ref().is_none_or(|m| {
            let Some(passthrough) = asset.passthrough.as_deref() else {
                return false;
            };
            match (&m.prefix, &m.pattern) {
                (Some(prefix), _) => passthrough.starts_with(prefix.as_str()),
                (None, Some(pattern)) => glob(pattern, passthrough),
                (None, None) => true,
            }
        })
}

pub fn disposition(asset: &Asset) -> Disposition {
    match asset.status {
        AssetStatus::Errored => Disposition::Skip,
        AssetStatus::Ready if asset.is_live != Some(true) => Disposition::Export,
        _ => Disposition::Wait,
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else itself. The whole text
/// must match. Linear backtracking on the last `*` only, so no pattern is exponential.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exportset::resource::PassthroughMatch;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn asset(fields: serde_json::Value) -> Asset {
        let mut base = json!({"id": "A1", "status": "ready", "created_at": "1000"});
        base.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn at(second: i64) -> Option<Time> {
        Some(Time(jiff::Timestamp::from_second(second).unwrap()))
    }

    fn prefix(p: &str) -> Option<PassthroughMatch> {
        Some(PassthroughMatch {
            prefix: Some(p.into()),
            pattern: None,
        })
    }

    fn pattern(p: &str) -> Option<PassthroughMatch> {
        Some(PassthroughMatch {
            prefix: None,
            pattern: Some(p.into()),
        })
    }

    #[test]
    fn each_field_selects_as_documented() {
        let plain = asset(json!({}));
        let recording = asset(json!({"id": "R1", "live_stream_id": "LS1"}));
        let tagged = asset(json!({"passthrough": "show-42/ep-1"}));
        let undated = asset(json!({"created_at": null}));
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, AssetSelector, &Asset, bool)> = vec![
            ("empty selects all", AssetSelector::default(), &plain, true),
            (
                "listed id",
                AssetSelector {
                    asset_ids: ids(&["X", "A1"]),
                    ..Default::default()
                },
                &plain,
                true,
            ),
            (
                "unlisted id",
                AssetSelector {
                    asset_ids: ids(&["X"]),
                    ..Default::default()
                },
                &plain,
                false,
            ),
            (
                "recording of a listed stream",
                AssetSelector {
                    live_stream_ids: ids(&["LS1"]),
                    ..Default::default()
                },
                &recording,
                true,
            ),
            (
                "not a recording",
                AssetSelector {
                    live_stream_ids: ids(&["LS1"]),
                    ..Default::default()
                },
                &plain,
                false,
            ),
            (
                "created exactly at createdAfter",
                AssetSelector {
                    created_after: at(1000),
                    ..Default::default()
                },
                &plain,
                true,
            ),
            (
                "created before createdAfter",
                AssetSelector {
                    created_after: at(1001),
                    ..Default::default()
                },
                &plain,
                false,
            ),
            (
                "createdBefore is exclusive",
                AssetSelector {
                    created_before: at(1000),
                    ..Default::default()
                },
                &plain,
                false,
            ),
            (
                "inside the window",
                AssetSelector {
                    created_after: at(999),
                    created_before: at(1001),
                    ..Default::default()
                },
                &plain,
                true,
            ),
            (
                "no creation time, a window",
                AssetSelector {
                    created_after: at(0),
                    ..Default::default()
                },
                &undated,
                false,
            ),
            (
                "passthrough prefix",
                AssetSelector {
                    passthrough: prefix("show-42/"),
                    ..Default::default()
                },
                &tagged,
                true,
            ),
            (
                "passthrough prefix, other",
                AssetSelector {
                    passthrough: prefix("show-43/"),
                    ..Default::default()
                },
                &tagged,
                false,
            ),
            (
                "passthrough pattern",
                AssetSelector {
                    passthrough: pattern("show-*/ep-?"),
                    ..Default::default()
                },
                &tagged,
                true,
            ),
            (
                "passthrough pattern is anchored",
                AssetSelector {
                    passthrough: pattern("ep-1"),
                    ..Default::default()
                },
                &tagged,
                false,
            ),
            (
                "no passthrough, a passthrough match",
                AssetSelector {
                    passthrough: pattern("*"),
                    ..Default::default()
                },
                &plain,
                false,
            ),
            (
                "all fields must match",
                AssetSelector {
                    asset_ids: ids(&["A1"]),
                    passthrough: prefix("show-42"),
                    ..Default::default()
                },
                &plain,
                false,
            ),
        ];
        for (what, selector, asset, want) in cases {
            assert_eq!(selects(&selector, asset), want, "{what}");
        }
    }

    #[test]
    fn only_ready_assets_are_exported_and_errored_ones_skipped() {
        let cases = [
            (json!({"status": "ready"}), Disposition::Export),
            (json!({"status": "preparing"}), Disposition::Wait),
            (
                json!({"status": "ready", "is_live": true}),
                Disposition::Wait,
            ),
            (json!({"status": "errored"}), Disposition::Skip),
            (json!({"status": "something_new"}), Disposition::Wait),
        ];
        for (fields, want) in cases {
            assert_eq!(disposition(&asset(fields.clone())), want, "{fields}");
        }
    }

    #[test]
    fn glob_matches_whole_texts() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*b*", "abc", true),
            ("a**", "a", true),
            ("", "", true),
            ("", "a", false),
            ("ééé?", "éééx", true),
            ("*a*a*a*a*a*b", &"a".repeat(200), false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob(pattern, text), want, "{pattern} ~ {text}");
        }
    }
}
