//! The Kubernetes side of copy Jobs: what a Job and its pods say, and creating a Job with
//! no other copy of the same resource running.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client};

use super::copy_policy::{CONTAINER, JobOutcome, NAME_LABEL};
use crate::copy::Report;

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

/// What became of Job `name`.
pub async fn observe(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<JobOutcome, kube::Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(job) = jobs.get_opt(name).await? else {
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
/// two copies never write at once. An existing Job of that name is taken as ours.
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
