//! Staged uploads on S3: REST parts are S3 multipart parts by number; tus appends are cut
//! into parts of at least the store's minimum size, with what does not fill one kept in a
//! tail object, and the parts written so far in a manifest.
//!
//! The upload's own manifest (`staging/<id>.json`) names its multipart upload. Each tus append
//! attempt writes a manifest and a tail of its own (`staging/<id>/<attempt>.json`,
//! `staging/<id>/tail-<attempt>`) and never rewrites another's: the engine's compare-and-set
//! decides which attempt follows which, and the next append and the completion read the chain
//! from the attempt it committed, so an attempt whose lock lapsed cannot move the upload back
//! under a committed append. The last attempt written is also named in `staging/<id>/head`: a
//! writer at an offset that attempt already went past, following another append, is refused
//! before it writes anything; a dropped attempt takes its name out of `head` again. (Full
//! parts still share S3's slot by number with a writer still in flight: what completion
//! assembles is hashed before it is published.)

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
    /// Bytes held in the tail object after the parts.
    #[serde(default)]
    tail: u64,
    /// The append attempt that wrote this manifest and its tail (none: the upload's own
    /// manifest, whose tail, from before attempts had manifests of their own, is named by the
    /// offset it ends at).
    #[serde(default)]
    attempt: String,
}

/// The last append attempt written (`staging/<id>/head`), and where it ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    attempt: String,
    written: u64,
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

    /// The manifest an append attempt wrote.
    fn attempt_path(&self, staging: &StagingId, attempt: &str) -> Result<Path> {
        let ok = attempt.len() == 32 && attempt.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(Error::backend(BACKEND, "malformed append attempt name"));
        }
        Ok(self.path(&format!("staging/{}/{attempt}.json", staging.as_str())))
    }

    fn head_path(&self, staging: &StagingId) -> Path {
        self.path(&format!("staging/{}/head", staging.as_str()))
    }

    /// The tail object of a manifest: the attempt's own, or (from before attempts had their
    /// own) named by the offset it ends at.
    fn tail_path(&self, staging: &StagingId, m: &Manifest) -> Path {
        if m.attempt.is_empty() {
            self.path(&format!(
                "staging/{}.tail-{}",
                staging.as_str(),
                m.written()
            ))
        } else {
            self.path(&format!("staging/{}/tail-{}", staging.as_str(), m.attempt))
        }
    }

    /// A small JSON object, or `None` when there is none.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        let bytes = match self.inner.s3.get(path).await {
            Ok(r) => r.bytes().await.map_err(os_err)?,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(os_err(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::backend(BACKEND, e))
    }

    /// The manifest of the committed append `last` (empty: the upload's own).
    async fn chain_manifest(&self, staging: &StagingId, last: &str) -> Result<Manifest> {
        if last.is_empty() {
            return self.load_manifest(staging, false).await;
        }
        self.get_json(&self.attempt_path(staging, last)?)
            .await?
            .ok_or(Error::NotFound { what: "upload" })
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
        let m: Manifest = self
            .get_json(&self.manifest_path(staging))
            .await?
            .ok_or(Error::NotFound { what: "upload" })?;
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

    async fn put_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let body = serde_json::to_vec(value).map_err(|e| Error::backend(BACKEND, e))?;
        self.inner.s3.put(path, body.into()).await.map_err(os_err)?;
        Ok(())
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

    /// Drops a staged upload's manifests and tails (after completion or abort): the upload's
    /// own, and every append attempt's.
    async fn forget(&self, staging: &StagingId, m: &Manifest) -> Result<()> {
        self.cache().remove(staging.as_str());
        if m.tail > 0 {
            self.delete_quietly(&self.tail_path(staging, m)).await?;
        }
        if !m.attempt.is_empty() {
            // The upload's own manifest may name a tail from before attempts had their own.
            match self.load_manifest(staging, false).await {
                Ok(own) if own.tail > 0 => {
                    self.delete_quietly(&self.tail_path(staging, &own)).await?
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let attempts = self.path(&format!("staging/{}", staging.as_str()));
        let mut listed = self.inner.s3.list(Some(&attempts));
        while let Some(object) = listed.next().await {
            self.delete_quietly(&object.map_err(os_err)?.location)
                .await?;
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
            attempt: String::new(),
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
        prev: &str,
        mut body: ByteStream,
        max_len: u64,
    ) -> Result<(u64, String)> {
        let old = self.chain_manifest(staging, prev).await?;
        if old.written() != offset {
            return Err(Error::OffsetMismatch {
                expected: old.written(),
            });
        }
        // A writer behind the last attempt written, following another append, is late.
        if let Some(head) = self.get_json::<Head>(&self.head_path(staging)).await? {
            if head.written > offset && head.attempt != prev {
                return Err(Error::OffsetMismatch {
                    expected: head.written,
                });
            }
        }
        let mut m = old.clone();
        m.attempt = hex::encode(rand::random::<[u8; 16]>());
        let part = self.inner.config.buffer_part_size as usize;
        let mut buf = PartBuffer::default();
        if m.tail > 0 {
            buf.push(self.read_tail(staging, &old).await?);
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
            // Nothing written: the chain goes on from `prev`.
            return Ok((0, prev.to_owned()));
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
        // The tail `old` names stays: it is the committed chain's until this attempt commits
        // (then it is garbage, dropped with the upload).
        self.put_json(&self.attempt_path(staging, &m.attempt)?, &m)
            .await?;
        let head = Head {
            attempt: m.attempt.clone(),
            written: m.written(),
        };
        self.put_json(&self.head_path(staging), &head).await?;
        Ok((written, m.attempt))
    }

    async fn stage_drop_write(
        &self,
        staging: &StagingId,
        _offset: u64,
        prev: &str,
        attempt: &str,
    ) -> Result<()> {
        if attempt.is_empty() || attempt == prev {
            return Ok(()); // nothing was written: `prev` is the committed chain's
        }
        let head = self.get_json::<Head>(&self.head_path(staging)).await?;
        if head.is_some_and(|h| h.attempt == attempt) {
            self.delete_quietly(&self.head_path(staging)).await?;
        }
        let Some(m) = self
            .get_json::<Manifest>(&self.attempt_path(staging, attempt)?)
            .await?
        else {
            return Ok(());
        };
        if m.tail > 0 {
            self.delete_quietly(&self.tail_path(staging, &m)).await?;
        }
        self.delete_quietly(&self.attempt_path(staging, attempt)?)
            .await
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
        self.assemble(staging, m, parts).await
    }

    async fn stage_complete_appends(
        &self,
        staging: &StagingId,
        last: &str,
        len: u64,
        _sha1: &Sha1Hex,
    ) -> Result<String> {
        let m = self.chain_manifest(staging, last).await?;
        if m.written() != len {
            return Err(Error::backend(
                BACKEND,
                format!(
                    "the committed appends hold {} bytes, not {len}",
                    m.written()
                ),
            ));
        }
        self.assemble(staging, m, &[]).await
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

impl S3BlobStore {
    /// Completes the multipart upload of manifest `m`: the REST part attempts `parts`, or
    /// (none given) the tus appends the manifest lists and its tail. Returns the blob's key.
    async fn assemble(
        &self,
        staging: &StagingId,
        m: Manifest,
        parts: &[PartReceipt],
    ) -> Result<String> {
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
}
