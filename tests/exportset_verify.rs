//! `mux-master-operator verify-manifest` against MinIO: every object re-hashed against the
//! manifest; a changed or removed object reported; a second run with the same output resumes.

use std::process::Command;

use mux_master_operator::exportset::manifest::{Entry, render};
use mux_master_operator::exportset::verify::Verdict;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::Digest;
use testenv::Minio;

fn verify(minio: &Minio, url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mux-master-operator"))
        .args([
            "verify-manifest",
            url,
            "--endpoint",
            minio.endpoint(),
            "--path-style",
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", minio.access_key())
        .env("AWS_SECRET_ACCESS_KEY", minio.secret_key())
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("the operator runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_manifest_rehashes_every_object_and_resumes() {
    let minio = Minio::shared().expect("MinIO starts");
    let store = minio.store(minio.bucket()).unwrap();
    let prefix = format!("verify-{}", uuid::Uuid::new_v4().simple());
    let mut entries = Vec::new();
    for (i, id) in ["A1", "B2", "C3"].iter().enumerate() {
        let body = vec![b'a' + i as u8; 100_000 + i];
        let key = format!("{prefix}/{id}.mp4");
        store
            .put(&key.as_str().into(), PutPayload::from(body.clone()))
            .await
            .unwrap();
        entries.push(Entry {
            asset_id: id.to_string(),
            live_stream_id: None,
            passthrough: None,
            object: format!("s3://{}/{key}", minio.bucket()),
            size: body.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(&body)),
            copied_at: None,
            deleted_from_mux_at: None,
        });
    }
    let manifest_key = format!("{prefix}/manifest-ns.set.jsonl");
    let (text, _) = render(&entries);
    store
        .put(&manifest_key.as_str().into(), PutPayload::from(text))
        .await
        .unwrap();
    let url = format!("s3://{}/{manifest_key}", minio.bucket());

    let (ok, stderr) = verify(minio, &url, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("3 entries: 3 ok"), "{stderr}");

    // One object changed (same size), one removed.
    store
        .put(
            &format!("{prefix}/B2.mp4").as_str().into(),
            PutPayload::from(vec![b'z'; 100_001]),
        )
        .await
        .unwrap();
    store
        .delete(&format!("{prefix}/C3.mp4").as_str().into())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("verdicts.jsonl");
    let output_flag = output.to_str().unwrap();
    let (ok, stderr) = verify(minio, &url, &["--output", output_flag, "--parallel", "2"]);
    assert!(!ok, "a changed and a missing object fail the run: {stderr}");
    assert!(stderr.contains("1 missing, 1 ok, 1 sha256"), "{stderr}");
    let verdicts: Vec<Verdict> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |id: &str| {
        verdicts
            .iter()
            .find(|v| v.asset_id == id)
            .unwrap()
            .result
            .clone()
    };
    assert_eq!(
        (of("A1"), of("B2"), of("C3")),
        ("ok".into(), "sha256".into(), "missing".into())
    );

    // Again with the same output: nothing is read twice, and the failures still count.
    let (ok, stderr) = verify(minio, &url, &["--output", output_flag]);
    assert!(
        !ok && stderr.contains("nothing new read (3 already in the output)"),
        "{stderr}"
    );
}
