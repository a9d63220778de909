//! The completion against a real S3 store (testenv's MinIO): an upload of CRC-64/NVME parts is
//! published only when the store's checksum of the whole object is the CRC-64/NVME of the
//! stream that was hashed; otherwise nothing is visible under the key.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMultipartOptions, PutPayload};

use super::{Pending, Publication};
use crate::copy::error::Reason;

const MIB: usize = 1 << 20;

fn crc64nvme(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data)
}

/// The copier's checksummed S3 client (`--part-checksum crc64nvme`), on testenv's MinIO.
fn store(minio: &testenv::Minio) -> Arc<AmazonS3> {
    let s3 = AmazonS3Builder::new()
        .with_endpoint(minio.endpoint())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(minio.access_key())
        .with_secret_access_key(minio.secret_key())
        .with_bucket_name(minio.bucket())
        .with_checksum_algorithm(Checksum::CRC64NVME)
        .with_unsigned_payload(true)
        .build()
        .expect("an S3 client for MinIO");
    Arc::new(s3)
}

/// Uploads `data` as parts of 5 MiB (and a shorter last one), left pending.
async fn pending(s3: &Arc<AmazonS3>, path: &Path, data: &[u8]) -> Pending {
    let id = s3
        .create_multipart_opts(path, PutMultipartOptions::default())
        .await
        .expect("an upload starts");
    let mut parts = Vec::new();
    for (index, chunk) in data.chunks(5 * MIB).enumerate() {
        let payload = PutPayload::from(chunk.to_vec());
        let part = s3.put_part(path, &id, index, payload).await;
        parts.push(part.expect("a part uploads, its CRC checked"));
    }
    Pending {
        s3: s3.clone(),
        path: path.clone(),
        id,
        parts,
        whole_crc64nvme: None,
    }
}

#[test]
fn only_an_object_whose_checksum_is_the_streams_is_published() {
    let minio = testenv::Minio::shared().expect("MinIO starts");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = store(minio);
        let data: Vec<u8> = (0..11 * MIB).map(|i| (i % 253) as u8).collect();
        let path = Path::from(format!("s3-upload-tests/{}.mp4", rand::random::<u32>()));

        // The stream that was hashed differs from what was uploaded by one byte.
        let mut other = data.clone();
        other[7 * MIB] ^= 1;
        let mut wrong = pending(&s3, &path, &data).await;
        wrong.whole_crc64nvme = Some(crc64nvme(&other));
        let refused = wrong.complete(false).await.expect_err("not published");
        assert_eq!(refused.reason, Reason::VerificationFailed, "{refused:?}");
        assert!(
            matches!(
                s3.head(&path).await,
                Err(object_store::Error::NotFound { .. })
            ),
            "nothing is visible under the key after a refused completion"
        );

        let mut right = pending(&s3, &path, &data).await;
        right.whole_crc64nvme = Some(crc64nvme(&data));
        let published = right.complete(false).await.expect("published");
        assert!(matches!(
            published,
            Publication::Published { e_tag: Some(_) }
        ));
        let stored = s3.get(&path).await.unwrap().bytes().await.unwrap();
        assert!(stored[..] == data[..], "the object holds the bytes hashed");
        s3.delete(&path).await.unwrap();
    });
}
