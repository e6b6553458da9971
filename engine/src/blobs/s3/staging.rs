//! Staged uploads on S3: REST parts are S3 multipart parts by number; tus appends are cut
//! into parts of at least the store's minimum size, with what does not fill one kept in a
//! `.tail` object, and the parts written so far in the upload's manifest.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{is_not_found, os_err, PartBuffer, S3BlobStore, BACKEND};
use crate::blobs::{BlobStaging, BlobStore, ByteStream, PartReceipt, PartSpec, StagingId};
use crate::error::{Error, Result};
use crate::types::Sha1Hex;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    key: String,
    upload: String,
    /// Parts written by `stage_write` (tus), in order.
    #[serde(default)]
    parts: Vec<WrittenPart>,
    /// Bytes held in the `.tail` object after the parts.
    #[serde(default)]
    tail: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct WrittenPart {
    etag: String,
    len: u64,
}

impl Manifest {
    fn written(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum::<u64>() + self.tail
    }
}

impl S3BlobStore {
    fn manifest_path(&self, staging: &StagingId) -> Path {
        self.path(&format!("staging/{}.json", staging.as_str()))
    }

    /// The tail object of a manifest, named by the offset it ends at: a new tail never
    /// overwrites the one the saved manifest names, so an append that fails half way leaves
    /// the upload as it was.
    fn tail_path(&self, staging: &StagingId, m: &Manifest) -> Path {
        self.path(&format!(
            "staging/{}.tail-{}",
            staging.as_str(),
            m.written()
        ))
    }

    async fn read_tail(&self, staging: &StagingId, m: &Manifest) -> Result<Bytes> {
        let tail = self
            .inner
            .s3
            .get(&self.tail_path(staging, m))
            .await
            .map_err(os_err)?
            .bytes()
            .await
            .map_err(os_err)?;
        if tail.len() as u64 != m.tail {
            return Err(Error::backend(
                BACKEND,
                "tail object does not match manifest",
            ));
        }
        Ok(tail)
    }

    async fn load_manifest(&self, staging: &StagingId, cached: bool) -> Result<Manifest> {
        if cached {
            if let Some(m) = self.cache().get(staging.as_str()) {
                return Ok(m.clone());
            }
        }
        let bytes = match self.inner.s3.get(&self.manifest_path(staging)).await {
            Ok(r) => r.bytes().await.map_err(os_err)?,
            Err(e) if is_not_found(&e) => return Err(Error::NotFound { what: "upload" }),
            Err(e) => return Err(os_err(e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::backend(BACKEND, e))?;
        if cached {
            let mut cache = self.cache();
            if cache.len() >= 1024 {
                cache.clear();
            }
            cache.insert(staging.as_str().to_owned(), m.clone());
        }
        Ok(m)
    }

    async fn save_manifest(&self, staging: &StagingId, m: &Manifest, mode: PutMode) -> Result<()> {
        let body = serde_json::to_vec(m).map_err(|e| Error::backend(BACKEND, e))?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .inner
            .s3
            .put_opts(&self.manifest_path(staging), body.into(), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Error::Busy),
            Err(e) => Err(os_err(e)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Manifest>> {
        self.inner.manifests.lock().expect("manifest cache lock")
    }

    async fn put_part(&self, m: &Manifest, number: u32, payload: PutPayload) -> Result<String> {
        let path = self.blob_path(&m.key)?;
        match self
            .inner
            .s3
            .put_part(&path, &m.upload, number as usize - 1, payload)
            .await
        {
            Ok(PartId { content_id }) => Ok(content_id),
            Err(e) if is_not_found(&e) => Err(Error::NotFound { what: "upload" }),
            Err(e) => Err(os_err(e)),
        }
    }

    /// Drops a staged upload's manifest and tail (after completion or abort).
    async fn forget(&self, staging: &StagingId, m: &Manifest) -> Result<()> {
        self.cache().remove(staging.as_str());
        if m.tail > 0 {
            self.delete_quietly(&self.tail_path(staging, m)).await?;
        }
        self.delete_quietly(&self.manifest_path(staging)).await
    }
}

#[async_trait]
impl BlobStaging for S3BlobStore {
    fn min_part_size(&self) -> u64 {
        self.inner.config.min_part_size
    }

    async fn stage_begin(&self, staging: &StagingId, _size: u64) -> Result<()> {
        match self.load_manifest(staging, false).await {
            Ok(_) => return Ok(()),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let key = Self::new_key();
        let path = self.blob_path(&key)?;
        let upload = self
            .inner
            .s3
            .create_multipart(&path)
            .await
            .map_err(os_err)?;
        let m = Manifest {
            key,
            upload,
            parts: Vec::new(),
            tail: 0,
        };
        // Two nodes beginning the same upload at once: the first manifest wins, the loser's
        // multipart upload is dropped.
        match self.save_manifest(staging, &m, PutMode::Create).await {
            Ok(()) => Ok(()),
            Err(Error::Busy) => {
                let _ = self.inner.s3.abort_multipart(&path, &m.upload).await;
                Ok(())
            }
            Err(e) => {
                let _ = self.inner.s3.abort_multipart(&path, &m.upload).await;
                Err(e)
            }
        }
    }

    async fn stage_put_part(
        &self,
        staging: &StagingId,
        part: PartSpec,
        mut body: ByteStream,
    ) -> Result<PartReceipt> {
        let m = self.load_manifest(staging, true).await?;
        let mut buf = PartBuffer::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Error::Incomplete)?;
            buf.push(chunk);
            if buf.len() as u64 > part.len {
                return Err(Error::invalid(
                    "body",
                    format!("longer than {} bytes", part.len),
                ));
            }
        }
        if buf.len() as u64 != part.len {
            return Err(Error::invalid(
                "body",
                format!(
                    "part {} must be {} bytes, got {}",
                    part.number,
                    part.len,
                    buf.len()
                ),
            ));
        }
        let payload = buf.take(buf.len());
        let etag = match self.put_part(&m, part.number, payload).await {
            Err(Error::NotFound { .. }) => {
                self.cache().remove(staging.as_str());
                return Err(Error::NotFound { what: "upload" });
            }
            other => other?,
        };
        Ok(PartReceipt {
            number: part.number,
            etag,
        })
    }

    async fn stage_write(
        &self,
        staging: &StagingId,
        offset: u64,
        _prev: &str,
        mut body: ByteStream,
        max_len: u64,
    ) -> Result<(u64, String)> {
        let old = self.load_manifest(staging, false).await?;
        if old.written() != offset {
            return Err(Error::OffsetMismatch {
                expected: old.written(),
            });
        }
        let mut m = old.clone();
        let part = self.inner.config.buffer_part_size as usize;
        let mut buf = PartBuffer::default();
        if m.tail > 0 {
            buf.push(self.read_tail(staging, &m).await?);
        }
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Error::Incomplete)?;
            written += chunk.len() as u64;
            if written > max_len {
                return Err(Error::invalid(
                    "body",
                    format!("longer than {max_len} bytes"),
                ));
            }
            buf.push(chunk);
            while buf.len() >= part {
                let number = m.parts.len() as u32 + 1;
                let etag = self.put_part(&m, number, buf.take(part)).await?;
                m.parts.push(WrittenPart {
                    etag,
                    len: part as u64,
                });
            }
        }
        if written == 0 {
            return Ok((0, String::new()));
        }
        m.tail = buf.len() as u64;
        if m.tail > 0 {
            let payload = buf.take(buf.len());
            self.inner
                .s3
                .put(&self.tail_path(staging, &m), payload)
                .await
                .map_err(os_err)?;
        }
        self.save_manifest(staging, &m, PutMode::Overwrite).await?;
        if old.tail > 0 {
            self.delete_quietly(&self.tail_path(staging, &old)).await?;
        }
        Ok((written, String::new()))
    }

    async fn stage_read_part(
        &self,
        _staging: &StagingId,
        _attempt: &PartReceipt,
        _len: u64,
    ) -> Result<Option<ByteStream>> {
        // S3 cannot read the parts of an unfinished multipart upload.
        Ok(None)
    }

    async fn stage_complete(
        &self,
        staging: &StagingId,
        parts: &[PartReceipt],
        _sha1: &Sha1Hex,
    ) -> Result<String> {
        let m = self.load_manifest(staging, false).await?;
        let path = self.blob_path(&m.key)?;
        let mut ids: Vec<PartId> = if parts.is_empty() {
            m.parts
                .iter()
                .map(|p| PartId {
                    content_id: p.etag.clone(),
                })
                .collect()
        } else {
            let mut sorted = parts.to_vec();
            sorted.sort_by_key(|p| p.number);
            if sorted
                .iter()
                .enumerate()
                .any(|(i, p)| p.number as usize != i + 1)
            {
                return Err(Error::backend(BACKEND, "parts are not numbered 1..n"));
            }
            sorted
                .into_iter()
                .map(|p| PartId { content_id: p.etag })
                .collect()
        };
        if parts.is_empty() && m.tail > 0 {
            let tail = self.read_tail(staging, &m).await?;
            let number = m.parts.len() as u32 + 1;
            ids.push(PartId {
                content_id: self.put_part(&m, number, tail.into()).await?,
            });
        }
        if ids.is_empty() {
            // S3 refuses a multipart upload without parts: an empty blob is a plain PUT.
            let _ = self.inner.s3.abort_multipart(&path, &m.upload).await;
            self.inner
                .s3
                .put(&path, PutPayload::default())
                .await
                .map_err(os_err)?;
        } else if let Err(e) = self
            .inner
            .s3
            .complete_multipart(&path, &m.upload, ids)
            .await
        {
            // A retry after a completion whose manifest removal failed finds the object there.
            if !(is_not_found(&e) && self.exists(&m.key).await?) {
                return Err(os_err(e));
            }
        }
        self.forget(staging, &m).await?;
        Ok(m.key)
    }

    async fn stage_abort(&self, staging: &StagingId) -> Result<()> {
        let m = match self.load_manifest(staging, false).await {
            Ok(m) => m,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let path = self.blob_path(&m.key)?;
        match self.inner.s3.abort_multipart(&path, &m.upload).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(os_err(e)),
        }
        self.forget(staging, &m).await
    }
}
