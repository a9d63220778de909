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

use super::conditions::{self, Summary};
use super::context::{Context, FIELD_MANAGER, MANAGED_BY, owned_by};
use super::error::Error;
use crate::resource::{LocalObjectRef, MasterExport, MasterExportStatus, NAME_LABEL};

const MANAGED_CONDITIONS: &[&str] = &[
    conditions::READY,
    conditions::RECONCILING,
    conditions::STALLED,
];

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

type SecretData = BTreeMap<String, ByteString>;
/// The keys of the URL Secret the operator writes.
const URL_KEYS: [&str; 2] = ["url", "expiresAt"];

/// Writes one resource's URL Secret and status, in that order.
pub struct Publisher<'a> {
    obj: &'a MasterExport,
    ctx: &'a Context,
    /// The URL Secret as read (once per reconcile, when first needed) and written since:
    /// `None` until read. Only a Secret this resource created is ever written.
    secret: Option<SecretState>,
    /// A URL Secret of an earlier `spec.urlSecret.name`, to remove once the new one is right.
    stale: Option<String>,
    /// The status as last recorded (read, or written by this publisher since): what a
    /// failure is recorded over, so that it keeps `pending` and withdrawn URLs stay withdrawn.
    recorded: MasterExportStatus,
}

#[derive(Debug, Clone)]
struct SecretState {
    /// It does not exist, or this resource is its controller.
    ours: bool,
    /// Its keys (none when it does not exist).
    data: SecretData,
}

impl<'a> Publisher<'a> {
    /// For a resource whose status, as read, is `recorded`.
    pub fn new(obj: &'a MasterExport, ctx: &'a Context, recorded: &MasterExportStatus) -> Self {
        let stale = recorded
            .master
            .as_ref()
            .and_then(|m| m.url_secret_ref.as_ref())
            .map(|r| r.name.clone())
            .filter(|old| *old != obj.url_secret_name());
        Self {
            obj,
            ctx,
            secret: None,
            stale,
            recorded: recorded.clone(),
        }
    }

    fn secrets(&self) -> Result<Api<Secret>, Error> {
        let namespace = self.obj.namespace().ok_or(Error::NoNamespace)?;
        Ok(Api::namespaced(self.ctx.client.clone(), &namespace))
    }

    /// Whether this resource is the Secret's controller, or its predecessor of the same name
    /// was (deleted and recreated before the garbage collector removed the Secret: the
    /// operator made it for this name, and names are unique in a namespace).
    fn owns(&self, meta: &ObjectMeta) -> bool {
        let uid = self.obj.uid().unwrap_or_default();
        let name = self.obj.name_any();
        meta.owner_references
            .iter()
            .flatten()
            .filter(|o| o.controller == Some(true))
            .any(|o| {
                o.uid == uid
                    || (o.kind == "MasterExport"
                        && o.api_version.starts_with("masterexport.io/")
                        && o.name == name)
            })
    }

    /// The URL Secret as it is (read once per reconcile): a Secret deleted or edited by hand
    /// is then put right by the next write, on any reconcile.
    async fn secret(&mut self) -> Result<SecretState, Error> {
        if let Some(state) = &self.secret {
            return Ok(state.clone());
        }
        let found = self.secrets()?.get_opt(&self.obj.url_secret_name()).await?;
        let state = match found {
            None => SecretState {
                ours: true,
                data: SecretData::new(),
            },
            Some(secret) => SecretState {
                ours: self.owns(&secret.metadata),
                data: secret.data.unwrap_or_default(),
            },
        };
        self.secret = Some(state.clone());
        Ok(state)
    }

    /// Fails with [`Error::UrlSecretNotOurs`] when the URL Secret's name is taken by a
    /// Secret this resource did not create: before any Mux call, so nothing is asked for
    /// that could not be published.
    pub async fn ensure_secret_is_ours(&mut self) -> Result<(), Error> {
        if self.secret().await?.ours {
            Ok(())
        } else {
            Err(self.refused())
        }
    }

    fn refused(&self) -> Error {
        let namespace = self.obj.namespace().unwrap_or_default();
        Error::UrlSecretNotOurs(format!("{namespace}/{}", self.obj.url_secret_name()))
    }

    /// Makes the URL Secret hold what `status` publishes, if it does not already.
    async fn sync_secret(&mut self, status: &MasterExportStatus) -> Result<(), Error> {
        let wanted = url_secret(self.obj, status).data.unwrap_or_default();
        let current = self.secret().await?;
        // Our keys only: a key someone else added is theirs, and server-side apply keeps it.
        let differs = URL_KEYS
            .iter()
            .any(|k| wanted.get(*k) != current.data.get(*k));
        if differs {
            if !current.ours {
                return Err(self.refused());
            }
            write_url_secret(self.obj, self.ctx, status).await?;
            self.secret = Some(SecretState {
                ours: true,
                data: wanted,
            });
        }
        Ok(())
    }

    /// Removes the URL Secret of an earlier name, if this resource created it: deleted, or
    /// (where the operator may not delete Secrets) emptied of its URL. Only once the status
    /// names the new one: until then a reader following the status's reference finds the old.
    async fn remove_stale(&mut self) -> Result<(), Error> {
        let Some(old) = self.stale.take() else {
            return Ok(());
        };
        let api = self.secrets()?;
        let Some(meta) = api.get_metadata_opt(&old).await? else {
            return Ok(());
        };
        if !self.owns(&meta.metadata) {
            return Ok(());
        }
        match api.delete(&old, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                let mut empty = url_secret(self.obj, &MasterExportStatus::default());
                empty.metadata.name = Some(old.clone());
                api.patch(
                    &old,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&empty),
                )
                .await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes `status`: the Secret (when it does not hold what the status publishes),
    /// then the status, then (after a rename) the Secret of the earlier name is removed.
    pub async fn publish(
        &mut self,
        status: &mut MasterExportStatus,
        summary: &Summary,
    ) -> Result<(), Error> {
        if self.secret.as_ref().is_some_and(|s| !s.ours) {
            // The failure is being recorded: without a Secret to hold it, no URL is
            // published, and no Secret named.
            if let Some(master) = status.master.as_mut() {
                master.url = None;
                master.url_secret_ref = None;
            }
            let wanted = summarized(self.obj, status, summary);
            self.recorded = write_status(self.obj, self.ctx, wanted, None).await?;
            return Ok(());
        }
        attach_secret_ref(self.obj, status);
        self.sync_secret(status).await?;
        // A status the write would not change (a poll or a webhook finding the master as
        // recorded) is not written: at 10,000 exports those were a write per refresh.
        let wanted = summarized(self.obj, status, summary);
        if wanted != self.recorded {
            self.recorded = write_status(self.obj, self.ctx, wanted, None).await?;
        }
        self.remove_stale().await
    }

    /// `status` as read, with the published URL put back from the URL Secret when the URL is
    /// published there only (`--url-in-status=false`): the decisions need it.
    pub async fn with_stored_url(
        &mut self,
        mut status: MasterExportStatus,
    ) -> Result<MasterExportStatus, Error> {
        let published = status
            .master
            .as_ref()
            .is_some_and(|m| m.url.is_none() && m.status == crate::resource::MasterStage::Ready);
        if self.ctx.url_in_status || !published {
            return Ok(status);
        }
        let secret = self.secret().await?;
        if secret.ours
            && let Some(url) = secret.data.get("url")
            && let Some(master) = status.master.as_mut()
        {
            master.url = Some(String::from_utf8_lossy(&url.0).into_owned());
        }
        self.recorded = status.clone();
        Ok(status)
    }

    /// Whether the URL Secret, as this reconcile read or wrote it, is ours and holds `url`: a
    /// copy Job, which reads its URL from the Secret, may start only then. Not read yet: no.
    pub fn secret_holds(&self, url: &str) -> bool {
        self.secret
            .as_ref()
            .is_some_and(|s| s.ours && s.data.get("url").is_some_and(|v| v.0 == url.as_bytes()))
    }

    /// The status as last recorded by this reconcile (or as read, if it wrote none).
    pub fn recorded(&self) -> &MasterExportStatus {
        &self.recorded
    }

    /// Restores the URL Secret if someone deleted or changed it (the status is unchanged).
    pub async fn restore_secret(&mut self, status: &MasterExportStatus) -> Result<(), Error> {
        self.sync_secret(status).await
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
    let wanted = summarized(obj, status, summary);
    match write_status(obj, ctx, wanted, obj.resource_version()).await {
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

fn pointer(path: &str) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::parse(path).expect("a valid JSON pointer")
}

/// `status` with its conditions as `summary` wants them now.
fn summarized(
    obj: &MasterExport,
    status: &MasterExportStatus,
    summary: &Summary,
) -> MasterExportStatus {
    let mut status = status.clone();
    status.conditions = conditions::merge(
        &status.conditions,
        &summary.wanted(),
        MANAGED_CONDITIONS,
        obj.meta().generation,
        &Time(Timestamp::now()),
    );
    status
}

/// Writes the whole status, its conditions already merged (without the URL when it is
/// published in the Secret only; the status returned still has it, as the reconcile knows it):
/// fields the status no longer has (a settled `pending`, a withdrawn `url`) are removed, which
/// a merge patch would not do.
/// With `precondition`, the write applies only if the resource is still at that
/// resourceVersion (a 409 otherwise). Returns the status written.
async fn write_status(
    obj: &MasterExport,
    ctx: &Context,
    status: MasterExportStatus,
    precondition: Option<String>,
) -> Result<MasterExportStatus, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<MasterExport> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut written = status.clone();
    if !ctx.url_in_status
        && let Some(master) = written.master.as_mut()
    {
        // Published in the URL Secret only (`--url-in-status=false`).
        master.url = None;
    }
    // The whole status replaced by one JSON Patch: every field it no longer has goes, whoever
    // wrote it (server-side apply removes only what the applier owned before), and without
    // the structured merge that made server-side apply the apiserver's largest cost at 10,000
    // exports. A precondition is the object's resourceVersion in the patch: a 409 on change.
    let mut operations = Vec::new();
    if let Some(version) = precondition {
        operations.push(json_patch::PatchOperation::Replace(
            json_patch::ReplaceOperation {
                path: pointer("/metadata/resourceVersion"),
                value: serde_json::Value::String(version),
            },
        ));
    }
    operations.push(json_patch::PatchOperation::Add(json_patch::AddOperation {
        path: pointer("/status"),
        value: serde_json::to_value(&written).map_err(kube::Error::SerdeError)?,
    }));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch_status(
        &obj.name_any(),
        &params,
        &Patch::Json::<()>(json_patch::Patch(operations)),
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
        (NAME_LABEL.to_string(), obj.name_label()),
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
    use serde_json::json;

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
