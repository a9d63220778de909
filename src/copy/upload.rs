//! A multipart upload fed from a stream, in fixed-size parts, with a bounded number uploading:
//! memory is about `part_size × (in_flight + 1)` however much goes through. Either
//! object_store's own upload (completed by [`PartWriter::finish`]), or, on S3, an upload of the
//! final key whose parts are sent by number and left pending ([`Pending`]) for the caller to
//! complete once the master is verified.

use std::sync::Arc;

use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, MultipartUpload, ObjectStore, PutMultipartOptions, PutPayload, PutResult,
};
use tokio::task::JoinSet;

use super::buffers::{Buffer, Pool};
use super::s3_upload::Pending;
use super::units::human;

/// S3 allows 10,000 parts per upload; parts are sized for fewer, so that a master that grows a
/// little after its size was read still fits.
const MAX_PARTS: u64 = 9_000;
const MIB: u64 = 1 << 20;

/// Where the parts go.
enum Target {
    /// object_store's upload, parts in the order they are sent.
    Upload(Box<dyn MultipartUpload>),
    /// An S3 upload created at the first part (when the content type is known), parts by
    /// number, completed by the caller.
    S3 {
        s3: Arc<AmazonS3>,
        path: Path,
        options: PutMultipartOptions,
        id: Option<String>,
        parts: Vec<Option<PartId>>,
    },
}

/// What a finished writer leaves.
pub enum Finished {
    Completed(PutResult),
    /// Every part is stored; the upload waits for its completion.
    Pending(Pending),
}

/// Writes bytes into a multipart upload. Must end with [`PartWriter::finish`] or
/// [`PartWriter::abort`]: dropping it leaves the upload for the store to expire.
pub struct PartWriter {
    target: Target,
    /// The part filling, from `pool` (created at the first write: `fit` may size the parts).
    buffer: Option<Buffer>,
    pool: Option<Arc<Pool>>,
    part_size: usize,
    in_flight: usize,
    tasks: JoinSet<object_store::Result<Option<(usize, PartId)>>>,
    written: u64,
}

impl PartWriter {
    /// Starts a multipart upload of `path`.
    pub async fn create(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        options: PutMultipartOptions,
        part_size: u64,
        in_flight: usize,
    ) -> object_store::Result<Self> {
        let upload = store.put_multipart_opts(path, options).await?;
        Ok(Self::new(Target::Upload(upload), part_size, in_flight))
    }

    /// An S3 upload of `path`, created with `options` when the first part is sent, and left
    /// pending by [`PartWriter::finish`].
    pub fn pending_s3(
        s3: Arc<AmazonS3>,
        path: &Path,
        options: PutMultipartOptions,
        part_size: u64,
        in_flight: usize,
    ) -> Self {
        let target = Target::S3 {
            s3,
            path: path.clone(),
            options,
            id: None,
            parts: Vec::new(),
        };
        Self::new(target, part_size, in_flight)
    }

    fn new(target: Target, part_size: u64, in_flight: usize) -> Self {
        PartWriter {
            target,
            buffer: None,
            pool: None,
            part_size: part_size as usize,
            in_flight: in_flight.max(1),
            tasks: JoinSet::new(),
            written: 0,
        }
    }

    /// The content type the S3 upload is created with (before the first part; ignored after,
    /// and by object_store's uploads, whose options are given at creation).
    pub fn set_content_type(&mut self, content_type: Option<&str>) {
        if let (
            Target::S3 {
                options, id: None, ..
            },
            Some(content_type),
        ) = (&mut self.target, content_type)
        {
            let value = content_type.to_owned().into();
            options.attributes.insert(Attribute::ContentType, value);
        }
    }

    /// Sizes the parts for a master of `total` bytes, before the first byte is written: parts
    /// grow past `--part-size` when the master would otherwise need more than [`MAX_PARTS`]
    /// (5 MiB parts stop at about 43 GiB), and fewer upload at once, so that the buffers stay
    /// within what the configured part size and count would use (at least one part in flight).
    pub fn fit(&mut self, total: u64) {
        if self.written > 0 {
            return;
        }
        let needed = total.div_ceil(MAX_PARTS).next_multiple_of(MIB) as usize;
        if needed <= self.part_size {
            return;
        }
        let budget = self.part_size * (self.in_flight + 1);
        self.part_size = needed;
        self.in_flight = (budget / needed).saturating_sub(1).max(1);
        tracing::info!(
            "a master of {} needs parts of {} (at most {MAX_PARTS} parts); {} in flight",
            human(total),
            human(needed as u64),
            self.in_flight
        );
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Copies `data` into the current part, sending each part as it fills. Waits while
    /// `in_flight` parts are uploading: back pressure on the download.
    pub async fn write(&mut self, mut data: &[u8]) -> object_store::Result<()> {
        self.reap_finished()?;
        while !data.is_empty() {
            let part_size = self.part_size;
            let pool = self.pool.get_or_insert_with(|| Pool::new(part_size));
            let buffer = self.buffer.get_or_insert_with(|| pool.take());
            let room = self.part_size - buffer.len();
            let n = room.min(data.len());
            buffer.extend_from_slice(&data[..n]);
            self.written += n as u64;
            data = &data[n..];
            if buffer.len() == self.part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Sends the buffered part once fewer than `in_flight` are uploading.
    async fn send_part(&mut self) -> object_store::Result<()> {
        while self.tasks.len() >= self.in_flight {
            match self.tasks.join_next().await {
                Some(result) => self.record(result)?,
                None => break,
            }
        }
        // Without a copy: the buffer goes back to the pool once the part is sent.
        let part = match self.buffer.take() {
            Some(buffer) => PutPayload::from(buffer.into_bytes()),
            None => PutPayload::new(),
        };
        match &mut self.target {
            Target::Upload(upload) => {
                let put = upload.put_part(part);
                self.tasks.spawn(async move { put.await.map(|()| None) });
            }
            Target::S3 {
                s3,
                path,
                options,
                id,
                parts,
            } => {
                let upload_id = match id {
                    Some(id) => id.clone(),
                    None => id
                        .insert(s3.create_multipart_opts(path, options.clone()).await?)
                        .clone(),
                };
                let index = parts.len();
                parts.push(None);
                let (s3, path) = (s3.clone(), path.clone());
                self.tasks.spawn(async move {
                    let part = s3.put_part(&path, &upload_id, index, part).await?;
                    Ok(Some((index, part)))
                });
            }
        }
        Ok(())
    }

    /// Keeps what a finished part task returned (an S3 part's ID), or its error.
    fn record(
        &mut self,
        result: Result<object_store::Result<Option<(usize, PartId)>>, tokio::task::JoinError>,
    ) -> object_store::Result<()> {
        let joined = result.map_err(|e| object_store::Error::Generic {
            store: "copy",
            source: Box::new(e),
        })?;
        if let (Some((index, part)), Target::S3 { parts, .. }) = (joined?, &mut self.target) {
            parts[index] = Some(part);
        }
        Ok(())
    }

    /// Surfaces the error of a part that already failed, without waiting for the others.
    fn reap_finished(&mut self) -> object_store::Result<()> {
        while let Some(result) = self.tasks.try_join_next() {
            self.record(result)?;
        }
        Ok(())
    }

    /// Sends the last part and waits for every part; completes object_store's upload, or
    /// leaves the S3 upload pending. On failure the upload is aborted.
    pub async fn finish(mut self) -> object_store::Result<Finished> {
        let result = async {
            // An empty master is one empty part.
            let buffered = self.buffer.as_ref().is_some_and(|b| !b.is_empty());
            if buffered || (self.written == 0 && self.is_s3()) {
                self.send_part().await?;
            }
            while let Some(result) = self.tasks.join_next().await {
                self.record(result)?;
            }
            match &mut self.target {
                Target::Upload(upload) => upload.complete().await.map(Finished::Completed),
                Target::S3 {
                    s3,
                    path,
                    id,
                    parts,
                    ..
                } => Ok(Finished::Pending(Pending {
                    s3: s3.clone(),
                    path: path.clone(),
                    id: id.clone().expect("a part was sent"),
                    parts: parts
                        .drain(..)
                        .map(|p| p.expect("every part is done"))
                        .collect(),
                    whole_crc64nvme: None,
                })),
            }
        }
        .await;
        if result.is_err() {
            self.abort_upload().await;
        }
        result
    }

    fn is_s3(&self) -> bool {
        matches!(self.target, Target::S3 { .. })
    }

    /// Stops the parts uploading and aborts the upload, so that no part is left behind.
    pub async fn abort(mut self) {
        self.abort_upload().await;
    }

    async fn abort_upload(&mut self) {
        self.tasks.shutdown().await;
        let aborted = match &mut self.target {
            Target::Upload(upload) => upload.abort().await,
            Target::S3 {
                s3,
                path,
                id: Some(id),
                ..
            } => s3.abort_multipart(path, id).await,
            Target::S3 { .. } => Ok(()),
        };
        if let Err(e) = aborted {
            tracing::warn!("aborting the multipart upload: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn writer(part_size: u64, in_flight: usize) -> PartWriter {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        PartWriter::create(
            &store,
            &Path::from("x"),
            PutMultipartOptions::default(),
            part_size,
            in_flight,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn parts_grow_for_huge_masters_within_the_same_memory() {
        let mut w = writer(8 * MIB, 2).await;
        w.fit(50 << 30); // 50 GiB fits in 8 MiB parts (6,400 of them).
        assert_eq!((w.part_size as u64, w.in_flight), (8 * MIB, 2));
        let mut w = writer(8 * MIB, 2).await;
        w.fit(100 << 30); // 100 GiB: 12 MiB parts, and one in flight (24 MiB of buffers).
        assert_eq!((w.part_size as u64, w.in_flight), (12 * MIB, 1));
        assert!(100u64 << 30 <= w.part_size as u64 * MAX_PARTS);
        let mut w = writer(8 * MIB, 2).await;
        w.write(b"started").await.unwrap();
        w.fit(100 << 30); // Too late: parts already have their size.
        assert_eq!(w.part_size as u64, 8 * MIB);
        w.abort().await;
    }

    #[tokio::test]
    async fn what_is_written_is_what_is_stored() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("object");
        let options = PutMultipartOptions::default();
        let mut w = PartWriter::create(&store, &path, options, 5 * MIB, 2)
            .await
            .unwrap();
        let data: Vec<u8> = (0..(12 * MIB + 5)).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(100_000) {
            w.write(chunk).await.unwrap();
        }
        assert_eq!(w.written(), data.len() as u64);
        assert!(matches!(w.finish().await, Ok(Finished::Completed(_))));
        use object_store::ObjectStoreExt;
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..], &data[..]);
    }
}
