//! The Kubernetes side of copy Jobs: the Job itself (typed, hardened, the URL only by
//! reference to its Secret), what a Job and its pods say, and creating a Job with no other
//! copy of the same resource running.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};

use super::context::owned_by;
use super::copy_policy::{CopySettings, JobOutcome};
use crate::copy::{Reason, Report};
use crate::resource::MasterExport;

pub const CONTAINER: &str = "copy";
pub use crate::resource::NAME_LABEL;
/// Where the copier writes its result; the kubelet turns it into the termination message.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// The copier's user and group (distroless' `nonroot`).
const NONROOT: i64 = 65532;

fn condition_true(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| c.reason.clone().unwrap_or_default())
        })
}

/// The copier's report, from the termination message of the Job's latest finished pod.
async fn report(pods: &Api<Pod>, job: &str) -> Result<Option<Report>, kube::Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?;
    let mut finished: Vec<(k8s_openapi::jiff::Timestamp, String)> = list
        .items
        .iter()
        .flat_map(|pod| {
            pod.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter(|c| c.name == CONTAINER)
        .filter_map(|c| {
            let terminated = c.state.as_ref()?.terminated.as_ref()?;
            let at = terminated
                .finished_at
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_default();
            Some((at, terminated.message.clone()?))
        })
        .collect();
    finished.sort_by_key(|(at, _)| *at);
    Ok(finished
        .last()
        .and_then(|(_, message)| serde_json::from_str::<Report>(message.trim()).ok()))
}

/// Whether `job` belongs to the resource with UID `uid` (its controller owner).
pub fn owned_by_uid(job: &Job, uid: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// What became of Job `name`, if it is the resource's (`uid`): a Job of that name owned by
/// anything else (a leftover of a deleted resource of the same name) is not its copy.
pub async fn observe(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<JobOutcome, kube::Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(job) = jobs.get_opt(name).await?.filter(|j| owned_by_uid(j, uid)) else {
        return Ok(JobOutcome::Missing);
    };
    let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0;
    if succeeded || condition_true(&job, "Complete").is_some() {
        return Ok(JobOutcome::Succeeded(report(&pods, name).await?));
    }
    if let Some(message) = condition_true(&job, "Failed") {
        return Ok(JobOutcome::Failed {
            report: report(&pods, name).await?,
            message,
        });
    }
    Ok(JobOutcome::Running)
}

/// Creates `job`, first deleting any other unfinished copy Job of the same resource, so that
/// two copies never write at once. An existing Job of that name is ours: the name carries the resource's UID.
pub async fn create_exclusive(
    client: &Client,
    namespace: &str,
    owner: &str,
    job: &Job,
) -> Result<(), kube::Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let name = job.metadata.name.clone().unwrap_or_default();
    let siblings = jobs
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={owner}")))
        .await?;
    for other in siblings.items {
        let other_name = other.metadata.name.clone().unwrap_or_default();
        let finished = condition_true(&other, "Complete").is_some()
            || condition_true(&other, "Failed").is_some();
        if other_name != name && !finished {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match jobs.delete(&other_name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The exit codes that end a copy Job at once: the copier's outcomes that a rerun of the
/// same pod cannot fix ([`Reason::ends_the_job`]).
pub fn final_exit_codes() -> Vec<i32> {
    Reason::ALL
        .into_iter()
        .filter(|r| r.ends_the_job())
        .map(|r| i32::from(r.exit_code()))
        .collect()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
    ])
}

/// The copy Job: hardened, owned by the resource, the URL only by reference to its Secret.
/// `master_ready_at`: when the controller saw the master ready (the status' `readyAt`); the
/// copier then calls the length final no sooner than `settings.min_age` after it.
pub fn build_job(
    obj: &MasterExport,
    job_name: &str,
    master_ready_at: Option<jiff::Timestamp>,
    settings: &CopySettings,
) -> Job {
    let destination = obj.spec.destination.clone().unwrap_or_default();
    let name = obj.name_label();
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "mux-master-operator"),
        ("app.kubernetes.io/component", "copy"),
        ("app.kubernetes.io/managed-by", "mux-master-operator"),
        (NAME_LABEL, name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut envs = vec![
        EnvVar {
            name: "MUX_MASTER_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: obj.url_secret_name(),
                    key: "url".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        env("MMO_DESTINATION", destination.url.clone()),
        env("MMO_TERMINATION_MESSAGE_PATH", TERMINATION_MESSAGE_PATH),
        env("LOG_FORMAT", "json"),
        // glibc makes an arena per thread by default; two keep the copier's memory flat.
        env("MALLOC_ARENA_MAX", "2"),
    ];
    if let Some(endpoint) = &destination.endpoint {
        envs.push(env("MMO_ENDPOINT", endpoint.clone()));
    }
    if let Some(region) = &destination.region {
        envs.push(env("MMO_REGION", region.clone()));
    }
    if !destination.path_style && destination.endpoint.is_none() {
        envs.push(env("MMO_VIRTUAL_HOSTED_STYLE", "true"));
    }
    if destination.overwrite {
        envs.push(env("MMO_OVERWRITE", "true"));
    }
    if destination.skip_mp4_check {
        envs.push(env("MMO_SKIP_MP4_CHECK", "true"));
    }
    // The settle checks alone cannot tell a finished file from a writer that pauses.
    if let Some(ready_at) = master_ready_at {
        envs.push(env("MMO_MASTER_READY_AT", ready_at.to_string()));
        envs.push(env("MMO_MIN_AGE", mux::duration::format(settings.min_age)));
    }
    // A file:// destination must stay on its volume (the copier refuses any other path).
    if let Some(volume) = &destination.volume {
        envs.push(env("MMO_FILE_ROOT", volume.mount_path.clone()));
    }
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".into())),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    // A file:// destination writes to the claimed volume.
    if let Some(volume) = &destination.volume {
        volumes.push(Volume {
            name: "archive".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume.claim_name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "archive".into(),
            mount_path: volume.mount_path.clone(),
            ..Default::default()
        });
    }
    let env_from: Vec<EnvFromSource> = destination
        .credentials_secret_ref
        .iter()
        .map(|s| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: s.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let container = Container {
        name: CONTAINER.into(),
        image: Some(settings.image.clone()),
        args: Some(vec!["copy".into()]),
        env: Some(envs),
        env_from: Some(env_from),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("File".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("100m", "64Mi")),
            // A CPU limit also bounds the runtime's worker threads.
            limits: Some(quantities("2", "256Mi")),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name.into()),
            namespace: obj.namespace(),
            labels: Some(labels.clone()),
            owner_references: owned_by(obj),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            active_deadline_seconds: Some(
                i64::try_from(settings.deadline.as_secs()).unwrap_or(i64::MAX),
            ),
            ttl_seconds_after_finished: Some(
                i32::try_from(settings.ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            // Outcomes that a rerun cannot fix end the Job at once (the copier's table).
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(CONTAINER.into()),
                        operator: "In".into(),
                        values: final_exit_codes(),
                    }),
                    ..Default::default()
                }],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NONROOT),
                        run_as_group: Some(NONROOT),
                        // So the copy may write to a claimed volume as its non-root user.
                        fs_group: Some(NONROOT),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests;
