//! A multipart upload fed from a stream, in fixed-size parts, with a bounded number uploading:
//! memory is about `part_size × (in_flight + 1)` however much goes through.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutMultipartOptions, PutPayload, PutResult};
use tokio::task::JoinSet;

use super::units::human;

/// S3 allows 10,000 parts per upload; parts are sized for fewer, so that a master that grows a
/// little after its size was read still fits.
const MAX_PARTS: u64 = 9_000;
const MIB: u64 = 1 << 20;

/// Writes bytes into a multipart upload. Must end with [`PartWriter::finish`] or
/// [`PartWriter::abort`]: dropping it leaves the upload for the store to expire.
pub struct PartWriter {
    upload: Box<dyn MultipartUpload>,
    buffer: Vec<u8>,
    part_size: usize,
    in_flight: usize,
    tasks: JoinSet<object_store::Result<()>>,
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
        Ok(PartWriter {
            upload,
            buffer: Vec::new(),
            part_size: part_size as usize,
            in_flight: in_flight.max(1),
            tasks: JoinSet::new(),
            written: 0,
        })
    }

    /// Sizes the parts for a master of `total` bytes, before the first byte is written: parts
    /// grow past `--part-size` when the master would otherwise need more than [`MAX_PARTS`]
    /// (8 MiB parts stop at about 70 GiB), and fewer upload at once, so that the buffers stay
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
            if self.buffer.capacity() == 0 {
                self.buffer = Vec::with_capacity(self.part_size);
            }
            let room = self.part_size - self.buffer.len();
            let n = room.min(data.len());
            self.buffer.extend_from_slice(&data[..n]);
            self.written += n as u64;
            data = &data[n..];
            if self.buffer.len() == self.part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Sends the buffered part once fewer than `in_flight` are uploading.
    async fn send_part(&mut self) -> object_store::Result<()> {
        while self.tasks.len() >= self.in_flight {
            match self.tasks.join_next().await {
                Some(result) => flatten(result)?,
                None => break,
            }
        }
        let part = std::mem::take(&mut self.buffer);
        self.tasks
            .spawn(self.upload.put_part(PutPayload::from(part)));
        Ok(())
    }

    /// Surfaces the error of a part that already failed, without waiting for the others.
    fn reap_finished(&mut self) -> object_store::Result<()> {
        while let Some(result) = self.tasks.try_join_next() {
            flatten(result)?;
        }
        Ok(())
    }

    /// Sends the last part, waits for every part and completes the upload. On failure the
    /// upload is aborted.
    pub async fn finish(mut self) -> object_store::Result<PutResult> {
        let result = async {
            if !self.buffer.is_empty() {
                self.send_part().await?;
            }
            while let Some(result) = self.tasks.join_next().await {
                flatten(result)?;
            }
            self.upload.complete().await
        }
        .await;
        if result.is_err() {
            self.tasks.shutdown().await;
            if let Err(e) = self.upload.abort().await {
                tracing::warn!("aborting the multipart upload: {e}");
            }
        }
        result
    }

    /// Stops the parts uploading and aborts the upload, so that no part is left behind.
    pub async fn abort(mut self) {
        self.tasks.shutdown().await;
        if let Err(e) = self.upload.abort().await {
            tracing::warn!("aborting the multipart upload: {e}");
        }
    }
}

fn flatten(
    result: Result<object_store::Result<()>, tokio::task::JoinError>,
) -> object_store::Result<()> {
    result.map_err(|e| object_store::Error::Generic {
        store: "copy",
        source: Box::new(e),
    })?
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
        w.finish().await.unwrap();
        use object_store::ObjectStoreExt;
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..], &data[..]);
    }
}
