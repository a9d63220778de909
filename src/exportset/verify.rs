//! `mux-master-operator verify-manifest URL`: re-hashes every object a set's manifest lists and
//! says which still match (size and SHA-256), without the cluster. Streams each object (memory
//! stays flat whatever the sizes), `--parallel` at once, and appends one JSON line per result to
//! `--output`: run again with the same file and what it already holds is not read again.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::manifest::Entry;

/// `verify-manifest` flags. Storage credentials come from the environment, under the names
/// object_store reads (AWS_ACCESS_KEY_ID, GOOGLE_SERVICE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_KEY..).
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyManifestArgs {
    /// The manifest, e.g. s3://archive/mux/manifest-media.environment-archive.jsonl.
    pub url: String,
    /// An S3-compatible endpoint (MinIO, Ceph, R2).
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    /// Path-style S3 addressing.
    #[arg(long)]
    pub path_style: bool,
    /// Objects read at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Results, one JSON line per object, appended; entries already there are skipped.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
}

/// One object's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub asset_id: String,
    pub object: String,
    /// `ok`, `missing`, `size` (differs), `sha256` (differs) or `error`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The verdict for an object read back as `found` (`None`: not there).
pub fn judge(entry: &Entry, found: Option<(u64, String)>) -> Verdict {
    let (result, detail) = match found {
        None => ("missing", None),
        Some((size, _)) if size != entry.size => (
            "size",
            Some(format!("{size} bytes, the manifest says {}", entry.size)),
        ),
        Some((_, sha)) if sha != entry.sha256 => (
            "sha256",
            Some(format!("{sha}, the manifest says {}", entry.sha256)),
        ),
        Some(_) => ("ok", None),
    };
    Verdict {
        asset_id: entry.asset_id.clone(),
        object: entry.object.clone(),
        result: result.into(),
        detail,
    }
}

/// Store options from the flags and the environment.
fn options(args: &VerifyManifestArgs, url: &str) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .collect();
    if url.starts_with("s3://") {
        if let Some(endpoint) = &args.endpoint {
            options.push(("aws_endpoint".into(), endpoint.clone()));
            if endpoint.starts_with("http://") {
                options.push(("allow_http".into(), "true".into()));
            }
        }
        if let Some(region) = &args.region {
            options.push(("aws_region".into(), region.clone()));
        }
        let virtual_hosted = !args.path_style && args.endpoint.is_none();
        options.push((
            "aws_virtual_hosted_style_request".into(),
            virtual_hosted.to_string(),
        ));
    }
    options
}

/// Stores by `scheme://bucket`, made once each.
struct Stores {
    args: VerifyManifestArgs,
    made: std::sync::Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    fn open(&self, url: &str) -> Result<(Arc<dyn ObjectStore>, object_store::path::Path), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let root = format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        );
        let path = object_store::path::Path::parse(parsed.path().trim_start_matches('/'))
            .map_err(|e| format!("{url}: {e}"))?;
        let mut made = self.made.lock().expect("stores lock");
        if let Some(store) = made.get(&root) {
            return Ok((store.clone(), path));
        }
        let root_url = url::Url::parse(&format!("{root}/")).map_err(|e| e.to_string())?;
        let (store, _) = object_store::parse_url_opts(&root_url, options(&self.args, url))
            .map_err(|e| format!("{url}: {e}"))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        made.insert(root, store.clone());
        Ok((store, path))
    }
}

async fn read_back(stores: &Stores, object: &str) -> Result<Option<(u64, String)>, String> {
    let (store, path) = stores.open(object)?;
    let got = match store.get(&path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut chunks = got.into_stream();
    while let Some(chunk) = chunks.try_next().await.map_err(|e| e.to_string())? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Some((size, hex::encode(hasher.finalize()))))
}

pub async fn run(args: VerifyManifestArgs) -> ExitCode {
    let stores = Stores {
        args: args.clone(),
        made: Default::default(),
    };
    let body = match read_whole(&stores, &args.url).await {
        Ok(body) => body,
        Err(e) => {
            eprintln!("reading the manifest: {e}");
            return ExitCode::from(2);
        }
    };
    let mut entries = Vec::new();
    for (n, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Entry>(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                eprintln!("{}: line {}: {e}", args.url, n + 1);
                return ExitCode::from(2);
            }
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut previous_failures = 0usize;
    if let Some(path) = &args.output
        && let Ok(text) = std::fs::read_to_string(path)
    {
        for verdict in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Verdict>(l).ok())
        {
            previous_failures += usize::from(verdict.result != "ok");
            done.insert(verdict.object);
        }
    }
    let mut output = match &args.output {
        None => None,
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let todo: Vec<&Entry> = entries
        .iter()
        .filter(|e| !done.contains(&e.object))
        .collect();
    let skipped = entries.len() - todo.len();
    let mut verdicts = futures::stream::iter(todo)
        .map(|entry| {
            let stores = &stores;
            async move {
                match read_back(stores, &entry.object).await {
                    Ok(found) => judge(entry, found),
                    Err(e) => Verdict {
                        asset_id: entry.asset_id.clone(),
                        object: entry.object.clone(),
                        result: "error".into(),
                        detail: Some(e),
                    },
                }
            }
        })
        .buffer_unordered(args.parallel.max(1));
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    while let Some(verdict) = verdicts.next().await {
        *counts.entry(verdict.result.clone()).or_default() += 1;
        let line = serde_json::to_string(&verdict).expect("a verdict serialises");
        match &mut output {
            Some(file) => {
                let _ = writeln!(file, "{line}");
            }
            None if verdict.result != "ok" => println!("{line}"),
            None => {}
        }
    }
    let failed: usize = counts
        .iter()
        .filter(|(k, _)| *k != "ok")
        .map(|(_, n)| n)
        .sum();
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprintln!(
        "{} entries: {}{}",
        entries.len(),
        if summary.is_empty() {
            "nothing new read".into()
        } else {
            summary.join(", ")
        },
        if skipped > 0 {
            format!(" ({skipped} already in the output)")
        } else {
            String::new()
        }
    );
    if failed + previous_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn read_whole(stores: &Stores, url: &str) -> Result<String, String> {
    let (store, path) = stores.open(url)?;
    let bytes = store
        .get(&path)
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            asset_id: "A1".into(),
            live_stream_id: None,
            passthrough: None,
            object: "s3://b/A1.mp4".into(),
            size: 5,
            sha256: "ab".into(),
            copied_at: None,
            deleted_from_mux_at: None,
        }
    }

    #[test]
    fn each_object_is_judged_by_presence_size_then_digest() {
        let cases = [
            (None, "missing"),
            (Some((4, "ab".to_string())), "size"),
            (Some((5, "cd".to_string())), "sha256"),
            (Some((5, "ab".to_string())), "ok"),
        ];
        for (found, want) in cases {
            assert_eq!(judge(&entry(), found.clone()).result, want, "{found:?}");
        }
    }
}
