//! The reconciler's reads and writes at Mux: the client for a resource's credentials, the
//! asset (or the webhook snapshot standing for it, or a new export's first request answering
//! for it), the live stream, changes of master access, and the deadline a published URL puts
//! on all of them.

use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::context::{Context, TOKEN_ID_KEY, TOKEN_SECRET_KEY};
use super::error::{Error, SourceKind};
use super::policy::{self, LiveSource, SourceLookup, preparation, with_margin};
use super::publisher::{Publisher, published_expiry};
use crate::metrics::SourceLabels;
use crate::resource::{MasterExport, MasterExportSpec, MasterExportStatus, Operation};
use mux::types::{Asset, MasterAccess};
use mux::{Credentials, MuxClient};

/// Runs a Mux call, but gives up when the URL the status publishes expires first (a saturated
/// rate limit can queue a call for long): the error path then withdraws the URL, so an
/// expired URL is never left published while we wait.
pub async fn before_expiry<T>(
    status: &MasterExportStatus,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(expiry) = published_expiry(status) else {
        return call.await;
    };
    let left = policy::until(with_margin(Timestamp::now()), expiry);
    tokio::time::timeout(left, call)
        .await
        .unwrap_or(Err(Error::ExpiredWhileWaiting))
}

/// The asset as Mux shows it: the webhook snapshot when it is newer than anything recorded
/// about the asset (see `snapshots`), else a GET, whose sending is then recorded (its answer
/// is at least that new). What it shows of the master is recorded for `policy::preparation`.
pub async fn current_asset(
    ctx: &Context,
    mux: &MuxClient,
    id: &str,
    status: &MasterExportStatus,
) -> Result<Asset, Error> {
    if let Some(asset) = ctx.snapshots.usable(id, status) {
        ctx.metrics.asset_reads.get_or_create(&FROM_WEBHOOK).inc();
        ctx.saw_master(id, preparation::seen(&asset, false, true), Timestamp::now());
        return Ok(asset);
    }
    let sent = Timestamp::now();
    let asset = get_asset(mux, id).await?;
    ctx.snapshots.record(id, sent);
    ctx.metrics.asset_reads.get_or_create(&FROM_MUX).inc();
    ctx.saw_master(
        id,
        preparation::seen(&asset, false, false),
        Timestamp::now(),
    );
    Ok(asset)
}

const FROM_WEBHOOK: SourceLabels = SourceLabels { source: "webhook" };
const FROM_MUX: SourceLabels = SourceLabels { source: "mux" };

pub async fn get_asset(mux: &MuxClient, id: &str) -> Result<Asset, Error> {
    mux.get_asset(id)
        .await
        .map_err(Error::from_mux_on(SourceKind::Asset, id))
}

pub async fn put_access(mux: &MuxClient, id: &str, access: MasterAccess) -> Result<Asset, Error> {
    mux.update_master_access(id, access)
        .await
        .map_err(Error::from_mux_on(SourceKind::Asset, id))
}

/// Changes master access; the answer's arrival is recorded: Mux applied the change by then,
/// so only a snapshot created after it may stand for the asset.
pub async fn change_access(
    ctx: &Context,
    mux: &MuxClient,
    id: &str,
    access: MasterAccess,
) -> Result<Asset, Error> {
    let asset = put_access(mux, id, access).await?;
    let answered = Timestamp::now();
    ctx.snapshots.record(id, answered);
    let requested = access == MasterAccess::Temporary;
    ctx.saw_master(id, preparation::seen(&asset, requested, false), answered);
    Ok(asset)
}

/// A new export's first call, before any read (`policy::request_first`): the intent, then
/// `PUT temporary`, whose answer is the asset, with the status to decide over. `None`: read
/// the asset instead (not new, shared, a snapshot stands for it, or Mux refused the request
/// in the asset's state: the read says which, and the decision over it is published).
pub async fn first_request(
    obj: &MasterExport,
    spec: &MasterExportSpec,
    ctx: &Context,
    mux: &MuxClient,
    asset_id: &str,
    status: &MasterExportStatus,
    publisher: &mut Publisher<'_>,
) -> Result<Option<(Asset, MasterExportStatus)>, Error> {
    let shared = ctx.grant_for(asset_id).is_some()
        || !ctx
            .wakeups
            .others_on(asset_id, &ObjectRef::from(obj))
            .is_empty();
    let before = policy::BeforeReading {
        spec,
        status,
        generation: obj.meta().generation,
        shared,
        snapshot: ctx.snapshots.usable(asset_id, status).is_some(),
    };
    let Some(decision) = policy::request_first(&before) else {
        return Ok(None);
    };
    let mut intent = decision.status;
    intent.pending = Some(policy::pending(Operation::Request, Timestamp::now()));
    publisher.publish(&mut intent, &decision.summary).await?;
    tracing::info!(name = %obj.name_any(), asset = %asset_id, "requesting master access before reading the asset (new export)");
    match change_access(ctx, mux, asset_id, MasterAccess::Temporary).await {
        Ok(answer) => {
            let status = policy::first_answer(&intent, &answer);
            Ok(Some((answer, status)))
        }
        Err(Error::Mux(e)) if policy::read_after_refusal(e.kind()) => {
            tracing::info!(name = %obj.name_any(), asset = %asset_id, error = %e, "Mux refused the first request; reading the asset");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The asset to export: the spec's, the live stream's recording already chosen, or the
/// stream's newest recording once it ends ([`policy::source_lookup`] says which to read).
pub async fn source_asset(
    obj: &MasterExport,
    mux: &MuxClient,
    status: &MasterExportStatus,
) -> Result<LiveSource, Error> {
    match policy::source_lookup(&obj.spec, status) {
        SourceLookup::Asset(id) => Ok(LiveSource::Asset(id)),
        SourceLookup::LiveStream(stream_id) => {
            let stream = mux
                .get_live_stream(&stream_id)
                .await
                .map_err(Error::from_mux_on(SourceKind::LiveStream, &stream_id))?;
            Ok(policy::resolve_live_stream(&stream))
        }
    }
}

/// The Mux client for the resource's credentials Secret.
pub async fn mux_client(obj: &MasterExport, ctx: &Context) -> Result<MuxClient, Error> {
    let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
    let name = &obj.spec.credentials_secret_ref.name;
    if let Some(token) = ctx.tokens.fresh(&namespace, name, Instant::now()) {
        return Ok(ctx.mux.client(token));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::CredentialsMissing(format!("{namespace}/{name}")))?;
    let read = |key: &'static str| -> Result<String, Error> {
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok());
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key).cloned());
        from_data
            .or(from_string)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or(Error::CredentialsInvalid {
                secret: format!("{namespace}/{name}"),
                key,
            })
    };
    let token = Credentials::new(read(TOKEN_ID_KEY)?, read(TOKEN_SECRET_KEY)?);
    ctx.tokens
        .remember(&namespace, name, &token, Instant::now());
    Ok(ctx.mux.client(token))
}

/// The Mux client a deletion revokes with: the credentials Secret's, or, when the Secret is
/// already gone (a namespace's deletion removes it beside the MasterExports), the token last
/// read from it since the operator started.
pub async fn mux_client_to_clean_up(obj: &MasterExport, ctx: &Context) -> Result<MuxClient, Error> {
    match mux_client(obj, ctx).await {
        Err(Error::CredentialsMissing(which)) => {
            let namespace = obj.namespace().ok_or(Error::NoNamespace)?;
            let name = &obj.spec.credentials_secret_ref.name;
            let token = ctx
                .tokens
                .last(&namespace, name)
                .ok_or(Error::CredentialsMissing(which))?;
            tracing::info!(
                %namespace, secret = %name,
                "the credentials Secret is gone: revoking with the token last read from it"
            );
            Ok(ctx.mux.client(token))
        }
        other => other,
    }
}
