//! `mux-master-operator export-manifests`: the environment's assets as one MasterExport each
//! (YAML, deterministic names, the destination pattern applied), for teams that keep every
//! export as a file in Git rather than a MasterExportSet. The same selector and pattern rules
//! as a set, from flags; the Mux token from the environment (never a flag: shells log them).

use std::process::ExitCode;

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use mux::types::Asset;
use mux::{Credentials, MuxClients, MuxConfig};

use super::children::{self, ASSET_ANNOTATION};
use super::discovery::PAGE_SIZE;
use super::pattern::Pattern;
use super::resource::{
    AssetSelector, ExportTemplate, MasterExportSet, MasterExportSetSpec, PassthroughMatch,
};
use super::selector::{Disposition, disposition, selects};
use crate::resource::{Destination, LocalObjectRef, MasterExport};

/// `export-manifests` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportManifestsArgs {
    #[arg(long, env = "MUX_BASE_URL", default_value = "https://api.mux.com")]
    pub mux_base_url: url::Url,
    /// The Mux token's ID (environment only).
    #[arg(
        long = "token-id-from-env",
        env = "MUX_TOKEN_ID",
        hide_env_values = true,
        hide = true
    )]
    pub token_id: String,
    /// The Mux token's secret (environment only).
    #[arg(
        long = "token-secret-from-env",
        env = "MUX_TOKEN_SECRET",
        hide_env_values = true,
        hide = true
    )]
    pub token_secret: String,
    /// The names' prefix: each MasterExport is `<prefix>-<12 hex digits of the asset>`.
    #[arg(long, default_value = "archive")]
    pub name_prefix: String,
    /// The Secret (in the namespace the files are applied to) the MasterExports read the token
    /// from.
    #[arg(long, default_value = "mux")]
    pub credentials_secret: String,
    /// Only these assets (repeat the flag).
    #[arg(long = "asset-id")]
    pub asset_ids: Vec<String>,
    /// Only the recordings of these live streams (repeat the flag).
    #[arg(long = "live-stream-id")]
    pub live_stream_ids: Vec<String>,
    /// Only assets created at or after this instant (RFC 3339).
    #[arg(long)]
    pub created_after: Option<Timestamp>,
    /// Only assets created before this instant (RFC 3339).
    #[arg(long)]
    pub created_before: Option<Timestamp>,
    #[arg(long, conflicts_with = "passthrough_pattern")]
    pub passthrough_prefix: Option<String>,
    /// A glob over the whole passthrough (`*`, `?`).
    #[arg(long)]
    pub passthrough_pattern: Option<String>,
    /// The destination pattern, e.g. `s3://archive/mux/{assetId}.mp4`; none: no archive.
    #[arg(long)]
    pub destination: Option<String>,
    #[arg(long, requires = "destination")]
    pub endpoint: Option<String>,
    #[arg(long, requires = "destination")]
    pub region: Option<String>,
    #[arg(long, requires = "destination")]
    pub path_style: bool,
    /// The Secret with the object store's credentials.
    #[arg(long, requires = "destination")]
    pub destination_secret: Option<String>,
    /// Turn master access off once each copy is verified.
    #[arg(long, requires = "destination")]
    pub revoke_after_copy: bool,
}

impl ExportManifestsArgs {
    /// The set these flags describe (never applied: it only drives the children's making).
    pub fn as_set(&self) -> MasterExportSet {
        let passthrough = match (&self.passthrough_prefix, &self.passthrough_pattern) {
            (None, None) => None,
            (prefix, pattern) => Some(PassthroughMatch {
                prefix: prefix.clone(),
                pattern: pattern.clone(),
            }),
        };
        let destination = self.destination.as_ref().map(|url| Destination {
            url: url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            credentials_secret_ref: self
                .destination_secret
                .clone()
                .map(|name| LocalObjectRef { name }),
            ..Destination::default()
        });
        let spec = MasterExportSetSpec {
            credentials_secret_ref: LocalObjectRef {
                name: self.credentials_secret.clone(),
            },
            selector: AssetSelector {
                asset_ids: self.asset_ids.clone(),
                live_stream_ids: self.live_stream_ids.clone(),
                created_after: self.created_after.map(Time),
                created_before: self.created_before.map(Time),
                passthrough,
            },
            template: ExportTemplate {
                destination,
                after_copy: self
                    .revoke_after_copy
                    .then_some(crate::resource::AfterCopy {
                        revoke_access: true,
                        ..Default::default()
                    }),
                ..ExportTemplate::default()
            },
            max_in_flight: super::resource::default_max_in_flight(),
            rescan_interval: "10m".into(),
            suspend: false,
        };
        let mut set = MasterExportSet::new(&self.name_prefix, spec);
        set.metadata.namespace = None;
        set
    }
}

/// The MasterExports for `assets` (the environment's listing), as one YAML stream: selected
/// and ready assets only, oldest first, each without owner or set label (they stand alone).
/// Also returns how many selected assets were left out, as (waiting, errored).
pub fn manifests(
    set: &MasterExportSet,
    pattern: Option<&Pattern>,
    assets: &[Asset],
) -> (String, (usize, usize)) {
    let mut chosen: Vec<&Asset> = Vec::new();
    let (mut waiting, mut errored) = (0, 0);
    for asset in assets.iter().filter(|a| selects(&set.spec.selector, a)) {
        match disposition(asset) {
            Disposition::Export => chosen.push(asset),
            Disposition::Wait => waiting += 1,
            Disposition::Skip => errored += 1,
        }
    }
    chosen.sort_by(|a, b| {
        (a.created_at.unwrap_or(i64::MAX), &a.id).cmp(&(b.created_at.unwrap_or(i64::MAX), &b.id))
    });
    let mut out = String::new();
    for asset in chosen {
        let child = children::build_child(set, asset, pattern);
        let standalone = MasterExport {
            metadata: ObjectMeta {
                name: child.metadata.name,
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "export-manifests".to_string(),
                    )]
                    .into(),
                ),
                annotations: Some([(ASSET_ANNOTATION.to_string(), asset.id.clone())].into()),
                ..ObjectMeta::default()
            },
            spec: child.spec,
            status: None,
        };
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&standalone).expect("a MasterExport serialises"));
    }
    (out, (waiting, errored))
}

pub async fn run(args: ExportManifestsArgs) -> ExitCode {
    let set = args.as_set();
    let pattern = match set
        .spec
        .template
        .destination
        .as_ref()
        .map(|d| Pattern::parse(&d.url))
    {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("--destination: {e}");
            return ExitCode::from(2);
        }
    };
    let clients = match MuxClients::new(MuxConfig {
        base_url: args.mux_base_url.clone(),
        ..MuxConfig::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = clients.client(Credentials::new(&args.token_id, &args.token_secret));
    let assets: Vec<Asset> = match client.list_assets(PAGE_SIZE).try_collect().await {
        Ok(assets) => assets,
        Err(e) => {
            eprintln!("listing the assets: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (yaml, (waiting, errored)) = manifests(&set, pattern.as_ref(), &assets);
    print!("{yaml}");
    eprintln!(
        "{} MasterExports; left out: {waiting} not ready yet, {errored} errored (of {} assets listed)",
        yaml.matches("\n---\n").count() + usize::from(!yaml.is_empty()),
        assets.len()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExportManifestsArgs,
    }

    fn args(flags: &[&str]) -> ExportManifestsArgs {
        let mut argv = vec![
            "x",
            "--token-id-from-env",
            "i",
            "--token-secret-from-env",
            "s",
        ];
        argv.extend_from_slice(flags);
        Cli::parse_from(argv).args
    }

    fn asset(id: &str, status: &str, created: i64, passthrough: &str) -> Asset {
        serde_json::from_value(json!({"id": id, "status": status, "created_at": created.to_string(), "passthrough": passthrough})).unwrap()
    }

    #[test]
    fn one_standalone_export_per_selected_ready_asset_oldest_first() {
        let a = args(&[
            "--passthrough-prefix",
            "keep",
            "--destination",
            "s3://b/{assetId}.mp4",
            "--path-style",
        ]);
        let set = a.as_set();
        let pattern = Pattern::parse("s3://b/{assetId}.mp4").unwrap();
        let assets = [
            asset("New1", "ready", 20, "keep-1"),
            asset("Old1", "ready", 10, "keep-2"),
            asset("Other", "ready", 5, "drop"),
            asset("Prep", "preparing", 1, "keep-3"),
            asset("Err", "errored", 1, "keep-4"),
        ];
        let (yaml, left_out) = manifests(&set, Some(&pattern), &assets);
        assert_eq!(left_out, (1, 1));
        let exports: Vec<MasterExport> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let ids: Vec<_> = exports
            .iter()
            .map(|e| e.spec.source.asset_id.clone().unwrap())
            .collect();
        assert_eq!(ids, vec!["Old1", "New1"]);
        let first = &exports[0];
        assert_eq!(
            first.metadata.name.as_deref(),
            Some(children::child_name("archive", "Old1").as_str())
        );
        assert!(first.metadata.owner_references.is_none() && first.metadata.namespace.is_none());
        assert_eq!(
            first.spec.destination.as_ref().unwrap().url,
            "s3://b/Old1.mp4"
        );
        // Deterministic: the same listing gives the same bytes.
        assert_eq!(manifests(&set, Some(&pattern), &assets).0, yaml);
    }
}
