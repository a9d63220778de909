//! Publishing a reconcile's result: the URL Secret first, then the status that records it.
//!
//! A reader must never find a status publishing a URL that the Secret does not hold yet, and
//! a withdrawn URL must leave the Secret no later than the status says so: the Secret is
//! written before each status write that changes the published URL. [`Publisher`] owns that
//! order for the reconcile; only the sweeper's conditional withdrawal goes the other way
//! round, and says why ([`withdraw_if_unchanged`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, Summary};
use super::context::{Context, FIELD_MANAGER, MANAGED_BY, owned_by};
use super::error::Error;
use crate::resource::{LocalObjectRef, MasterExport, MasterExportStatus};

const MANAGED_CONDITIONS: &[&str] = &[
    conditions::READY,
    conditions::RECONCILING,
    conditions::STALLED,
];
pub const NAME_LABEL: &str = "masterexport.io/name";

/// The URL a status publishes.
pub fn published_url(status: &MasterExportStatus) -> Option<String> {
    status.master.as_ref().and_then(|m| m.url.clone())
}

/// When the URL a status publishes expires.
pub fn published_expiry(status: &MasterExportStatus) -> Option<Timestamp> {
    status
        .master
        .as_ref()
        .filter(|m| m.url.is_some())
        .and_then(|m| m.expires_at.as_ref())
        .map(|e| e.0)
}

/// Writes one resource's URL Secret and status, in that order.
pub struct Publisher<'a> {
    obj: &'a MasterExport,
    ctx: &'a Context,
    /// What the URL Secret holds now, as far as this reconcile knows.
    in_secret: Option<String>,
    /// Whether the URL Secret is this resource's to write: unknown until first needed; a
    /// Secret someone else created is never written (nor its name published with a URL).
    ours: Option<bool>,
    /// The status as last recorded (read, or written by this publisher since): what a
    /// failure is recorded over, so that it keeps `pending` and withdrawn URLs stay withdrawn.
    recorded: MasterExportStatus,
}

impl<'a> Publisher<'a> {
    /// For a resource whose Secret holds what `recorded` (its status as read) publishes.
    pub fn new(obj: &'a MasterExport, ctx: &'a Context, recorded: &MasterExportStatus) -> Self {
        Self {
            obj,
            ctx,
            in_secret: published_url(recorded),
            ours: None,
            recorded: recorded.clone(),
        }
    }

    /// Whether the URL Secret may be written: it does not exist, or this resource created it
    /// (it is its controller). Asked once per reconcile.
    async fn secret_is_ours(&mut self) -> Result<bool, Error> {
        if let Some(ours) = self.ours {
            return Ok(ours);
        }
        let namespace = self.obj.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let uid = self.obj.uid().unwrap_or_default();
        let ours = api
            .get_metadata_opt(&self.obj.url_secret_name())
            .await?
            .is_none_or(|s| {
                s.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            });
        self.ours = Some(ours);
        Ok(ours)
    }

    /// Fails with [`Error::UrlSecretNotOurs`] when the URL Secret's name is taken by a
    /// Secret this resource did not create: before any Mux call, so nothing is asked for
    /// that could not be published.
    pub async fn ensure_secret_is_ours(&mut self) -> Result<(), Error> {
        if self.secret_is_ours().await? {
            Ok(())
        } else {
            Err(self.refused())
        }
    }

    fn refused(&self) -> Error {
        let namespace = self.obj.namespace().unwrap_or_default();
        Error::UrlSecretNotOurs(format!("{namespace}/{}", self.obj.url_secret_name()))
    }

    /// Publishes `status`: the Secret (when the URL changes), then the status.
    pub async fn publish(
        &mut self,
        status: &mut MasterExportStatus,
        summary: &Summary,
    ) -> Result<(), Error> {
        if self.ours == Some(false) {
            // The failure is being recorded: without a Secret to hold it, no URL is
            // published, and no Secret named.
            if let Some(master) = status.master.as_mut() {
                master.url = None;
                master.url_secret_ref = None;
            }
            self.recorded = apply_status(self.obj, self.ctx, status, summary, None).await?;
            return Ok(());
        }
        attach_secret_ref(self.obj, status);
        let wanted = published_url(status);
        if wanted != self.in_secret {
            if !self.secret_is_ours().await? {
                return Err(self.refused());
            }
            write_url_secret(self.obj, self.ctx, status).await?;
            self.in_secret = wanted;
        }
        self.recorded = apply_status(self.obj, self.ctx, status, summary, None).await?;
        Ok(())
    }

    /// The status as last recorded by this reconcile (or as read, if it wrote none).
    pub fn recorded(&self) -> &MasterExportStatus {
        &self.recorded
    }

    /// Restores the URL Secret if someone deleted or changed it (the status is unchanged).
    pub async fn restore_secret(&mut self, status: &MasterExportStatus) -> Result<(), Error> {
        let namespace = self.obj.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let current = api
            .get_opt(&self.obj.url_secret_name())
            .await?
            .and_then(|s| {
                s.data.and_then(|d| {
                    d.get("url")
                        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                })
            });
        let wanted = published_url(status);
        if current != wanted {
            if !self.secret_is_ours().await? {
                return Err(self.refused());
            }
            write_url_secret(self.obj, self.ctx, status).await?;
        }
        self.in_secret = wanted;
        Ok(())
    }
}

/// The sweeper's withdrawal of an expired URL: the status first, and only if the resource is
/// still at the version read (a reconcile may just have published a fresh URL, Secret first;
/// withdrawing the Secret before knowing would remove that fresh URL). Then the Secret.
/// Returns whether the withdrawal was made.
pub async fn withdraw_if_unchanged(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
    summary: &Summary,
) -> Result<bool, Error> {
    match apply_status(obj, ctx, status, summary, obj.resource_version()).await {
        Ok(_) => {}
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 409 => return Ok(false),
        Err(e) => return Err(e),
    }
    write_url_secret(obj, ctx, status).await?;
    Ok(true)
}

fn attach_secret_ref(obj: &MasterExport, status: &mut MasterExportStatus) {
    if let Some(master) = status.master.as_mut() {
        master.url_secret_ref = Some(LocalObjectRef {
            name: obj.url_secret_name(),
        });
    }
}

/// Writes the whole status by server-side apply: fields the status no longer has (a
/// settled `pending`, a withdrawn `url`) are removed, which a merge patch would not do.
/// With `precondition`, the write applies only if the resource is still at that
/// resourceVersion (a 409 otherwise). Returns the status written.
async fn apply_status(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
    summary: &Summary,
    precondition: Option<String>,
) -> Result<MasterExportStatus, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = status.clone();
    status.conditions = conditions::merge(
        &status.conditions,
        &summary.wanted(),
        MANAGED_CONDITIONS,
        obj.meta().generation,
        &Time(Timestamp::now()),
    );
    let mut patch = json!({
        "apiVersion": "masterexport.io/v1alpha1",
        "kind": "MasterExport",
        "status": status,
    });
    if let Some(version) = precondition {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(status)
}

/// The URL Secret as the status says: `url` and `expiresAt` while a URL is published, no
/// keys otherwise. Owned by the resource (its controller), so it goes when the resource goes.
pub fn url_secret(obj: &MasterExport, status: &MasterExportStatus) -> Secret {
    let mut data = BTreeMap::new();
    if let Some(master) = status.master.as_ref()
        && let Some(url) = &master.url
    {
        data.insert("url".to_string(), ByteString(url.clone().into_bytes()));
        if let Some(expires) = &master.expires_at {
            data.insert(
                "expiresAt".to_string(),
                ByteString(expires.0.to_string().into_bytes()),
            );
        }
    }
    let labels = BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (NAME_LABEL.to_string(), obj.name_any()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(obj.url_secret_name()),
            namespace: obj.namespace(),
            labels: Some(labels),
            owner_references: owned_by(obj),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        // `data`, not `stringData`: server-side apply removes a key we stop applying only
        // from the field we own, and the apiserver moves stringData into data.
        data: Some(data),
        ..Default::default()
    }
}

async fn write_url_secret(
    obj: &MasterExport,
    ctx: &Context,
    status: &MasterExportStatus,
) -> Result<(), Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch(
        &obj.url_secret_name(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&url_secret(obj, status)),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{MasterExportSpec, MasterStage, MasterState};

    fn obj() -> MasterExport {
        let spec: MasterExportSpec = serde_json::from_value(json!({
            "source": {"assetId": "a1"},
            "credentialsSecretRef": {"name": "mux"},
        }))
        .unwrap();
        let mut obj = MasterExport::new("keynote", spec);
        obj.metadata.namespace = Some("media".into());
        obj.metadata.uid = Some("u1".into());
        obj
    }

    #[test]
    fn the_url_secret_is_owned_by_its_resource_and_holds_the_published_url() {
        let mut status = MasterExportStatus::default();
        let empty = serde_json::to_value(url_secret(&obj(), &status)).unwrap();
        assert_eq!(
            empty,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "keynote-master",
                    "namespace": "media",
                    "labels": {
                        "app.kubernetes.io/managed-by": "mux-master-operator",
                        "masterexport.io/name": "keynote",
                    },
                    "ownerReferences": [{
                        "apiVersion": "masterexport.io/v1alpha1",
                        "kind": "MasterExport",
                        "name": "keynote",
                        "uid": "u1",
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "type": "Opaque",
                "data": {},
            })
        );
        status.master = Some(MasterState {
            status: MasterStage::Ready,
            url: Some("https://m/x".into()),
            ..Default::default()
        });
        let secret = url_secret(&obj(), &status);
        assert_eq!(secret.data.unwrap()["url"].0, b"https://m/x");
    }
}
