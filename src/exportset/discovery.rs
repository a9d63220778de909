//! Listing the environment: every asset, page after page, through the shared Mux client (so
//! through the token's rate limiter, shared with the MasterExport controller).

use std::collections::{BTreeMap, HashSet};

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use mux::types::Asset;
use mux::{Credentials, MuxClient, MuxClients, MuxError};

use super::plan::{Candidate, Scan};
use super::resource::AssetSelector;
use super::selector::{disposition, selects};
use crate::resource::LocalObjectRef;

/// Mux's largest page.
pub const PAGE_SIZE: u32 = 100;

/// One listing of the environment.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub at: Timestamp,
    /// The resource generation whose selector chose `selected`.
    pub generation: Option<i64>,
    /// The selected assets, by ID.
    pub selected: BTreeMap<String, Asset>,
    /// Every asset ID listed, selected or not.
    pub present: HashSet<String>,
}

impl Scanned {
    /// The planner's view.
    pub fn scan(&self) -> Scan {
        Scan {
            selected: self
                .selected
                .values()
                .map(|a| Candidate {
                    asset_id: a.id.clone(),
                    created_at: a.created_at,
                    disposition: disposition(a),
                })
                .collect(),
            present: self.present.clone(),
        }
    }
}

/// Lists every asset and keeps those `selector` selects.
pub async fn scan(
    client: &MuxClient,
    selector: &AssetSelector,
    generation: Option<i64>,
) -> Result<Scanned, MuxError> {
    let at = Timestamp::now();
    let mut selected = BTreeMap::new();
    let mut present = HashSet::new();
    let mut assets = std::pin::pin!(client.list_assets(PAGE_SIZE));
    while let Some(asset) = assets.try_next().await? {
        present.insert(asset.id.clone());
        if selects(selector, &asset) {
            selected.insert(asset.id.clone(), asset);
        }
    }
    Ok(Scanned {
        at,
        generation,
        selected,
        present,
    })
}

/// Why the credentials Secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {0} not found")]
    Missing(String),
    #[error("Secret {secret} has no {key}")]
    NoKey { secret: String, key: &'static str },
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// The Mux client for the token in `secret` (keys `tokenId`, `tokenSecret`).
pub async fn client_for(
    client: &Client,
    mux: &MuxClients,
    namespace: &str,
    secret: &LocalObjectRef,
) -> Result<MuxClient, CredentialsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = format!("{namespace}/{}", secret.name);
    let found = secrets
        .get_opt(&secret.name)
        .await?
        .ok_or_else(|| CredentialsError::Missing(name.clone()))?;
    let read = |key: &'static str| {
        let data = found.data.as_ref().and_then(|d| d.get(key));
        let text = data.and_then(|v| String::from_utf8(v.0.clone()).ok());
        let text = text.or_else(|| found.string_data.as_ref()?.get(key).cloned());
        text.map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or(CredentialsError::NoKey {
                secret: name.clone(),
                key,
            })
    };
    Ok(mux.client(Credentials::new(read("tokenId")?, read("tokenSecret")?)))
}
