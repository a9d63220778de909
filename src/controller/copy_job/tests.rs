//! The copy Job as built: hardened, typed, and the same as the one the controller always made.

use super::*;
use crate::resource::{Destination, DestinationVolume, MasterExportSpec};
use serde_json::json;

fn spec() -> MasterExportSpec {
    serde_json::from_value(json!({
        "source": {"assetId": "a1"},
        "credentialsSecretRef": {"name": "mux"},
        "destination": {
            "url": "s3://archive/k.mp4",
            "credentialsSecretRef": {"name": "archive"},
            "endpoint": "http://minio:9000",
            "pathStyle": true,
        },
    }))
    .unwrap()
}

fn keynote(spec: MasterExportSpec) -> MasterExport {
    let mut obj = MasterExport::new("keynote", spec);
    obj.metadata.namespace = Some("media".into());
    obj.metadata.uid = Some("u1".into());
    obj
}

#[test]
fn a_rerun_that_cannot_help_fails_the_job_at_once() {
    assert_eq!(final_exit_codes(), vec![2, 3, 4, 5, 8]);
    let job = build_job(
        &keynote(spec()),
        "keynote-copy-1",
        None,
        &CopySettings::default(),
    );
    let rule = &job.spec.unwrap().pod_failure_policy.unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    let codes = rule.on_exit_codes.as_ref().unwrap();
    assert_eq!(codes.container_name.as_deref(), Some(CONTAINER));
    assert_eq!(codes.values, final_exit_codes());
}

/// The typed Job is, key for key, the Job the controller has always created.
#[test]
fn the_job_is_the_one_the_controller_always_made() {
    let mut spec = spec();
    let destination: &mut Destination = spec.destination.as_mut().unwrap();
    destination.region = Some("eu-west-1".into());
    destination.overwrite = true;
    destination.volume = Some(DestinationVolume {
        claim_name: "archive-pvc".into(),
        mount_path: "/archive".into(),
    });
    let settings = CopySettings {
        image: "img:1".into(),
        ..CopySettings::default()
    };
    let job =
        serde_json::to_value(build_job(&keynote(spec), "keynote-copy-1", None, &settings)).unwrap();
    let labels = json!({
        "app.kubernetes.io/name": "mux-master-operator",
        "app.kubernetes.io/component": "copy",
        "app.kubernetes.io/managed-by": "mux-master-operator",
        "masterexport.io/name": "keynote",
    });
    let expected = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "keynote-copy-1",
            "namespace": "media",
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "masterexport.io/v1alpha1",
                "kind": "MasterExport",
                "name": "keynote",
                "uid": "u1",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 21600,
            "ttlSecondsAfterFinished": 86400,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": "copy", "operator": "In", "values": [2, 3, 4, 5, 8]},
            }]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "copy",
                        "image": "img:1",
                        "args": ["copy"],
                        "env": [
                            {"name": "MUX_MASTER_URL", "valueFrom": {"secretKeyRef": {"name": "keynote-master", "key": "url"}}},
                            {"name": "MMO_DESTINATION", "value": "s3://archive/k.mp4"},
                            {"name": "MMO_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"},
                            {"name": "LOG_FORMAT", "value": "json"},
                            {"name": "MALLOC_ARENA_MAX", "value": "2"},
                            {"name": "MMO_ENDPOINT", "value": "http://minio:9000"},
                            {"name": "MMO_REGION", "value": "eu-west-1"},
                            {"name": "MMO_OVERWRITE", "value": "true"},
                            {"name": "MMO_FILE_ROOT", "value": "/archive"},
                        ],
                        "envFrom": [{"secretRef": {"name": "archive"}}],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"cpu": "2", "memory": "256Mi"},
                        },
                        "volumeMounts": [
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "archive", "mountPath": "/archive"},
                        ],
                    }],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        {"name": "archive", "persistentVolumeClaim": {"claimName": "archive-pvc"}},
                    ],
                },
            },
        },
    });
    assert_eq!(job, expected);
}

#[test]
fn the_job_is_hardened_and_holds_no_url() {
    let mut obj = MasterExport::new("keynote", spec());
    obj.metadata.namespace = Some("media".into());
    obj.metadata.uid = Some("u1".into());
    let job = build_job(&obj, "keynote-copy-1", None, &CopySettings::default());
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("https://"), "no URL in the Job spec");
    let spec = job.spec.unwrap();
    assert!(spec.active_deadline_seconds.is_some() && spec.ttl_seconds_after_finished.is_some());
    assert_eq!(spec.backoff_limit, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let container = &pod.containers[0];
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &vec!["ALL".to_string()]
    );
    assert!(container.resources.as_ref().unwrap().limits.is_some());
    let url_env = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "MUX_MASTER_URL")
        .unwrap();
    assert_eq!(url_env.value, None);
    assert_eq!(
        url_env
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "keynote-master"
    );
}

#[test]
fn the_copier_is_told_whether_to_check_mp4_and_the_volume_it_must_stay_on() {
    let env_of = |job: &Job| -> Vec<(String, String)> {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let env = pod.containers[0].env.clone().unwrap_or_default();
        env.into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .filter(|(name, _)| ["MMO_SKIP_MP4_CHECK", "MMO_FILE_ROOT"].contains(&name.as_str()))
            .collect()
    };
    let plain = build_job(
        &keynote(spec()),
        "keynote-copy-1",
        None,
        &CopySettings::default(),
    );
    assert_eq!(env_of(&plain), vec![], "by default the MP4 check is on");

    let mut spec = spec();
    let destination = spec.destination.as_mut().unwrap();
    destination.skip_mp4_check = true;
    destination.url = "file:///archive/k.mp4".into();
    destination.volume = Some(DestinationVolume {
        claim_name: "archive-pvc".into(),
        mount_path: "/archive".into(),
    });
    let job = build_job(
        &keynote(spec),
        "keynote-copy-1",
        None,
        &CopySettings::default(),
    );
    assert_eq!(
        env_of(&job),
        vec![
            ("MMO_SKIP_MP4_CHECK".to_owned(), "true".to_owned()),
            ("MMO_FILE_ROOT".to_owned(), "/archive".to_owned()),
        ]
    );
}

/// The copier's growth checks need to know when the master became ready: the Job says it, with
/// the operator's minimum age, and nothing else about the master (no URL).
#[test]
fn the_job_tells_the_copier_when_the_master_became_ready_and_the_minimum_age() {
    let env_of = |job: &Job| -> Vec<(String, String)> {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let env = pod.containers[0].env.clone().unwrap_or_default();
        env.into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .filter(|(name, _)| ["MMO_MASTER_READY_AT", "MMO_MIN_AGE"].contains(&name.as_str()))
            .collect()
    };
    let settings = CopySettings {
        min_age: std::time::Duration::from_secs(90),
        ..CopySettings::default()
    };
    let unknown = build_job(&keynote(spec()), "keynote-copy-1", None, &settings);
    assert_eq!(
        env_of(&unknown),
        vec![],
        "no ready time: the copier's own rule"
    );

    let ready: jiff::Timestamp = "2026-12-01T09:00:00.25Z".parse().unwrap();
    let job = build_job(&keynote(spec()), "keynote-copy-1", Some(ready), &settings);
    assert_eq!(
        env_of(&job),
        vec![
            (
                "MMO_MASTER_READY_AT".to_owned(),
                "2026-12-01T09:00:00.25Z".to_owned()
            ),
            ("MMO_MIN_AGE".to_owned(), "1m30s".to_owned()),
        ]
    );
    // What the copier makes of them: no final length before ready + 90 s.
    #[derive(clap::Parser)]
    struct Copier {
        #[command(flatten)]
        args: crate::copy::CopyArgs,
    }
    let values = env_of(&job);
    let flags = ["copy", "--destination", "s3://archive/k.mp4"]
        .into_iter()
        .chain(["--master-ready-at", values[0].1.as_str()])
        .chain(["--min-age", values[1].1.as_str()]);
    let copier = <Copier as clap::Parser>::try_parse_from(flags).unwrap();
    assert_eq!(
        copier.args.earliest_final(),
        Some("2026-12-01T09:01:30.25Z".parse().unwrap())
    );
    let text = serde_json::to_string(&job).unwrap();
    assert!(!text.contains("https://"), "no URL in the Job spec");
    assert_eq!(CopySettings::default().min_age.as_secs(), 60);
}
