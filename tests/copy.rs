//! The copier, `mux-master-operator copy`, run as a real process against a real mux-sim and a
//! real MinIO: a master lands exactly (SHA-256, metadata) in bounded memory, wherever it goes
//! (S3, a local path, a Job's environment of Secret files), and bad input has its exit status.
//! Exit statuses, termination messages and peak memory are the real ones.
//!
//! The rest of the copier's tests, by what they prove: `copy_resume` (a download that breaks or
//! grows), `copy_cleanup` (a failed or stopped copy leaves nothing), `copy_existing` (what is
//! already at the destination).

mod copy_support;

use std::time::Instant;

use mux_master_operator::copy::Reason;
use mux_sim::content;

use copy_support::{
    Copier, MIB, Master, assert_no_staging_left, file_sha256, minio, object_sha256,
    recorded_digest, start_sim, store,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_1gib_master_is_copied_with_the_right_sha256_in_under_64_mib_of_memory() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 1024 * MIB).await;
    let (seed, size) = (master.seed, master.size);
    let expected = tokio::task::spawn_blocking(move || content::sha256_hex(seed, size));
    let minio = minio();
    let key = format!("copy/1gib/{}.mp4", master.id);

    let started = Instant::now();
    let outcome = Copier::to_minio(&master, minio, &key).run().await;
    let elapsed = started.elapsed();
    outcome.expect(Reason::Copied);
    let expected = expected.await.unwrap();

    let report = &outcome.report;
    assert_eq!(report.size, Some(1024 * MIB));
    assert_eq!(
        report.verified.as_deref(),
        Some("stream-sha256,parts-crc64nvme,object-crc64nvme,read-back-sidecar"),
        "the report names what was checked"
    );
    assert_eq!(report.sha256.as_deref(), Some(expected.as_str()));
    let store = store(minio);
    assert_eq!(
        recorded_digest(&store, &key).await,
        Some((expected.clone(), (1024 * MIB).to_string()))
    );
    assert_eq!(object_sha256(&store, &key).await, (1024 * MIB, expected));
    eprintln!(
        "1 GiB copied in {:.1}s ({:.1} MB/s), peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        (1024 * MIB) as f64 / elapsed.as_secs_f64() / 1e6,
        outcome.peak_rss_bytes as f64 / MIB as f64
    );
    assert!(
        outcome.peak_rss_bytes < 64 * MIB,
        "peak RSS {} bytes",
        outcome.peak_rss_bytes
    );
}

/// The previous S3 verification, kept for a plain-HTTP path to the store that must be
/// tamper-proof: each part signed and checked against its SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn sha256_part_checksums_still_land_the_master_exact() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 12 * MIB).await;
    let minio = minio();
    let key = format!("copy/sha256-parts/{}.mp4", master.id);

    let outcome = Copier::to_minio(&master, minio, &key)
        .args(&["--part-checksum", "sha256"])
        .run()
        .await;
    outcome.expect(Reason::Copied);

    assert_eq!(
        outcome.report.verified.as_deref(),
        Some("stream-sha256,parts-sha256,read-back-sidecar")
    );
    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(
        object_sha256(&store(minio), &key).await,
        (12 * MIB, expected)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_path_destination_works() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 24 * MIB).await;
    let volume = tempfile::tempdir().unwrap();
    let file = volume.path().join("masters/keynote/master.mp4");
    let destination = url::Url::from_file_path(&file).unwrap().to_string();

    let outcome = Copier::new(&master, &destination).run().await;
    outcome.expect(Reason::Copied);

    let expected = master.sha256();
    assert_eq!(outcome.report.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(file_sha256(&file), (24 * MIB, expected.clone()));
    assert_eq!(
        outcome.report.verified.as_deref(),
        Some("stream-sha256,fsynced,read-back-metadata")
    );
    assert_eq!(
        std::fs::read_to_string(file.with_extension("mp4.sha256")).unwrap(),
        format!("{expected}  master.mp4\n")
    );
    let mut names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["master.mp4", "master.mp4.sha256"]);

    let again = Copier::new(&master, &destination).run().await;
    again.expect(Reason::Skipped);
    assert_eq!(again.report.sha256.as_deref(), Some(expected.as_str()));
}

/// What a Job's pod template gives: flags as `MMO_*` variables, the URL and the storage
/// credentials as files of mounted Secrets, nothing on the command line.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_environment_with_secret_files_works_and_the_streamed_publication_records_metadata() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, 12 * MIB).await;
    let minio = minio();
    let key = format!("copy/job-env/{}.mp4", master.id);
    let secrets = tempfile::tempdir().unwrap();
    let url_file = secrets.path().join("url");
    std::fs::write(&url_file, format!("{}\n", master.url)).unwrap();
    let credentials = secrets.path().join("storage");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("AWS_ACCESS_KEY_ID"), minio.access_key()).unwrap();
    std::fs::write(
        credentials.join("AWS_SECRET_ACCESS_KEY"),
        minio.secret_key(),
    )
    .unwrap();
    let env = [
        ("MMO_DESTINATION", format!("s3://{}/{key}", minio.bucket())),
        ("MMO_ENDPOINT", minio.endpoint().to_owned()),
        ("MMO_SOURCE_URL_FILE", url_file.display().to_string()),
        (
            "MMO_STORAGE_CREDENTIALS_DIR",
            credentials.display().to_string(),
        ),
        ("MMO_SETTLE", "200ms".to_owned()),
        // Publish by streaming the staging object back, as on GCS and Azure.
        ("MMO_FINALIZE", "restream".to_owned()),
    ];
    let copier = Copier {
        args: Vec::new(),
        env: env.map(|(k, v)| (k.to_owned(), v)).to_vec(),
        secrets: vec![master.signature(), minio.secret_key().to_owned()],
    };

    let outcome = copier.run().await;
    outcome.expect(Reason::Copied);
    assert_eq!(
        outcome.report.verified.as_deref(),
        Some("stream-sha256,staging-rehashed,read-back-metadata")
    );

    let expected = master.sha256();
    let store = store(minio);
    assert_eq!(
        recorded_digest(&store, &key).await,
        Some((expected.clone(), (12 * MIB).to_string()))
    );
    assert_eq!(object_sha256(&store, &key).await, (12 * MIB, expected));
    assert_no_staging_left(&store, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_has_its_own_exit_status() {
    let sim = start_sim(&[]);
    let master = Master::new(&sim, MIB).await;
    let outcome = Copier::new(&master, "ftp://archive/master.mp4").run().await;
    outcome.expect(Reason::BadInput);
    let outcome = Copier::new(&master, "s3://bucket/key")
        .without_env("MUX_MASTER_URL")
        .run()
        .await;
    outcome.expect(Reason::BadInput);
    assert!(
        outcome.report.message.unwrap().contains("MUX_MASTER_URL"),
        "the message says where the URL is expected"
    );
}
