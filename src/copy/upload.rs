//! A multipart upload fed from a stream, in fixed-size parts, with a bounded number uploading:
//! memory is about `part_size × (in_flight + 1)` however much goes through.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutMultipartOptions, PutPayload, PutResult};
use tokio::task::JoinSet;

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
