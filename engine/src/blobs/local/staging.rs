//! Staging on the local filesystem: `<root>/staging/<id>/`, one file per write attempt,
//! created new and never opened for writing by anyone else: `p<part>-<attempt>` for a part,
//! `t<offset>-<attempt>-<previous attempt>` for a tus append. Completion renames exactly the
//! committed attempts into the blob's directory.

use std::io;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::fs;

use super::{
    copy_stream, io_err, remove_if_there, sync_dir, LocalBlobStore, RemoveOnDrop, BACKEND,
};
use crate::blobs::file_reader;
use crate::blobs::file_writer::Mode;
use crate::blobs::{BlobStaging, ByteStream, PartReceipt, PartSpec, StagingId};
use crate::error::{Error, Result};
use crate::types::{ByteRange, Sha1Hex};

/// An attempt's name: 16 hex digits, made here.
fn new_attempt_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn is_attempt_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn part_name(number: u32, attempt: &str) -> Result<String> {
    if !is_attempt_id(attempt) {
        return Err(Error::backend(
            BACKEND,
            format!("malformed part attempt {attempt:?}"),
        ));
    }
    Ok(format!("p{number:05}-{attempt}"))
}

fn append_name(offset: u64, attempt: &str, prev: &str) -> Result<String> {
    if !is_attempt_id(attempt) || !(prev.is_empty() || is_attempt_id(prev)) {
        return Err(Error::backend(BACKEND, "malformed tus append attempt"));
    }
    let prev = if prev.is_empty() { "0" } else { prev };
    Ok(format!("t{offset:020}-{attempt}-{prev}"))
}

/// `t<offset>-<attempt>-<prev>` → (offset, attempt, prev; empty for the first append).
fn parse_append_name(name: &str) -> Option<(u64, &str, &str)> {
    let rest = name.strip_prefix('t')?;
    let mut it = rest.splitn(3, '-');
    let offset = it.next()?.parse().ok()?;
    let attempt = it.next().filter(|a| is_attempt_id(a))?;
    let prev = it.next()?;
    let prev = if prev == "0" {
        ""
    } else if is_attempt_id(prev) {
        prev
    } else {
        return None;
    };
    Some((offset, attempt, prev))
}

impl LocalBlobStore {
    fn staging_dir(&self, staging: &StagingId) -> PathBuf {
        self.root.join("staging").join(staging.as_str())
    }

    /// The single staging file of earlier versions (removed with the staging).
    fn legacy_staging_path(&self, staging: &StagingId) -> PathBuf {
        self.root
            .join("staging")
            .join(format!("{}.part", staging.as_str()))
    }

    /// A new attempt file in the staging directory, created new (never an existing one).
    async fn new_attempt(&self, staging: &StagingId, name: &str) -> Result<(fs::File, PathBuf)> {
        let path = self.staging_dir(staging).join(name);
        match fs::File::create_new(&path).await {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::NotFound { what: "upload" })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// A write that failed because its upload was completed or aborted meanwhile (its staging
    /// directory is gone) failed for that reason: the upload is not found any more.
    async fn gone_if_ended<T>(&self, staging: &StagingId, res: Result<T>) -> Result<T> {
        match res {
            Err(Error::Backend { .. })
                if !fs::try_exists(self.staging_dir(staging))
                    .await
                    .unwrap_or(true) =>
            {
                Err(Error::NotFound { what: "upload" })
            }
            other => other,
        }
    }

    /// The committed chain of tus appends ending with `last`, in order, checked to be
    /// contiguous and `len` bytes long.
    async fn append_chain(
        &self,
        staging: &StagingId,
        last: &str,
        len: u64,
    ) -> Result<Vec<PathBuf>> {
        let dir = self.staging_dir(staging);
        let mut by_attempt = std::collections::HashMap::new();
        let mut entries = match fs::read_dir(&dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "upload" })
            }
            Err(e) => return Err(io_err(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(io_err)? {
            let name = entry.file_name();
            let Some((start, attempt, prev)) = name.to_str().and_then(parse_append_name) else {
                continue;
            };
            by_attempt.insert(attempt.to_owned(), (start, prev.to_owned(), entry.path()));
        }
        let mut chain = Vec::new();
        let mut end = len;
        let mut at = last.to_owned();
        while !at.is_empty() {
            let Some((start, prev, path)) = by_attempt.remove(&at) else {
                return Err(Error::backend(
                    BACKEND,
                    format!("tus append {at} is missing"),
                ));
            };
            let seg_len = fs::metadata(&path).await.map_err(io_err)?.len();
            if start + seg_len != end {
                return Err(Error::backend(BACKEND, "tus appends are not contiguous"));
            }
            end = start;
            chain.push(path);
            at = prev;
        }
        if end != 0 {
            return Err(Error::backend(BACKEND, "tus appends do not start at 0"));
        }
        chain.reverse();
        Ok(chain)
    }
}

#[async_trait]
impl BlobStaging for LocalBlobStore {
    fn isolates_writes(&self) -> bool {
        true
    }

    async fn stage_begin(&self, staging: &StagingId, _size: u64) -> Result<()> {
        // A retried begin must find the staged attempts untouched.
        match fs::create_dir(self.staging_dir(staging)).await {
            Ok(()) => sync_dir(self.root.join("staging")).await,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn stage_put_part(
        &self,
        staging: &StagingId,
        part: PartSpec,
        body: ByteStream,
    ) -> Result<PartReceipt> {
        let attempt = new_attempt_id();
        let (file, path) = self
            .new_attempt(staging, &part_name(part.number, &attempt)?)
            .await?;
        // Whatever happens before the attempt is handed back, its file goes (a full disk
        // gets its blocks back at once).
        let mut guard = RemoveOnDrop(Some(path.clone()));
        // Direct: the bytes skip the page cache; the read that extends the file's SHA1 over the
        // part reads them back directly too (no cache pages to fill, copy and drop, twice).
        let written = copy_stream(
            file,
            &path,
            0,
            body,
            Some(part.len),
            Mode::Direct { after: 0 },
        )
        .await;
        let written = match self.gone_if_ended(staging, written).await {
            Ok(n) => n,
            Err(e) => {
                guard.remove_now().await;
                return Err(e);
            }
        };
        if written != part.len {
            guard.remove_now().await;
            return Err(Error::invalid(
                "body",
                format!(
                    "part {} must be {} bytes, got {written}",
                    part.number, part.len
                ),
            ));
        }
        guard.disarm();
        Ok(PartReceipt {
            number: part.number,
            etag: attempt,
        })
    }

    async fn stage_drop_part(&self, staging: &StagingId, attempt: &PartReceipt) -> Result<()> {
        let path = self
            .staging_dir(staging)
            .join(part_name(attempt.number, &attempt.etag)?);
        remove_if_there(&path).await
    }

    async fn stage_read_part(
        &self,
        staging: &StagingId,
        attempt: &PartReceipt,
        len: u64,
    ) -> Result<Option<ByteStream>> {
        let path = self
            .staging_dir(staging)
            .join(part_name(attempt.number, &attempt.etag)?);
        let file = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "upload" })
            }
            Err(e) => return Err(io_err(e)),
        };
        Ok(Some(file_reader::read_range(
            file.into_std().await,
            path,
            ByteRange { start: 0, end: len },
            file_reader::Cache::Bypass,
        )))
    }

    async fn stage_write(
        &self,
        staging: &StagingId,
        offset: u64,
        prev: &str,
        body: ByteStream,
        max_len: u64,
    ) -> Result<(u64, String)> {
        let attempt = new_attempt_id();
        let (file, path) = self
            .new_attempt(staging, &append_name(offset, &attempt, prev)?)
            .await?;
        let mut guard = RemoveOnDrop(Some(path.clone()));
        // Direct: tus bytes are hashed as they arrive and not read again before completion.
        let written = copy_stream(
            file,
            &path,
            0,
            body,
            Some(max_len),
            Mode::Direct { after: 0 },
        )
        .await;
        let written = match self.gone_if_ended(staging, written).await {
            Ok(n) => n,
            Err(e) => {
                guard.remove_now().await;
                return Err(e);
            }
        };
        if written == 0 {
            // Nothing to commit: the upload stays where it was (the guard removes the file).
            return Ok((0, prev.to_owned()));
        }
        guard.disarm();
        Ok((written, attempt))
    }

    async fn stage_drop_write(
        &self,
        staging: &StagingId,
        offset: u64,
        prev: &str,
        attempt: &str,
    ) -> Result<()> {
        if attempt == prev {
            return Ok(()); // an empty append: nothing was kept
        }
        let path = self
            .staging_dir(staging)
            .join(append_name(offset, attempt, prev)?);
        remove_if_there(&path).await
    }

    async fn stage_complete(
        &self,
        staging: &StagingId,
        parts: &[PartReceipt],
        sha1: &Sha1Hex,
    ) -> Result<String> {
        let dir = self.staging_dir(staging);
        if !fs::try_exists(&dir).await.map_err(io_err)? {
            return Err(Error::NotFound { what: "upload" });
        }
        let segments = parts
            .iter()
            .map(|p| Ok(dir.join(part_name(p.number, &p.etag)?)))
            .collect::<Result<Vec<_>>>()?;
        // Parts were synced as they arrived; only the renames are left to make durable.
        let key = self.publish_segments(segments, sha1).await?;
        self.stage_abort(staging).await?;
        Ok(key)
    }

    async fn stage_complete_appends(
        &self,
        staging: &StagingId,
        last: &str,
        len: u64,
        sha1: &Sha1Hex,
    ) -> Result<String> {
        let segments = self.append_chain(staging, last, len).await?;
        let key = self.publish_segments(segments, sha1).await?;
        self.stage_abort(staging).await?;
        Ok(key)
    }

    async fn stage_list_idle(&self, idle: std::time::Duration) -> Result<Vec<StagingId>> {
        let mut out = Vec::new();
        let mut dir = fs::read_dir(self.root.join("staging"))
            .await
            .map_err(io_err)?;
        while let Some(entry) = dir.next_entry().await.map_err(io_err)? {
            let name = entry.file_name();
            let Some(Ok(id)) = name
                .to_str()
                .map(|n| n.strip_suffix(".part").unwrap_or(n))
                .map(StagingId::parse)
            else {
                continue;
            };
            // Gone meanwhile (completed, aborted): not ours to list.
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if age >= idle {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn stage_abort(&self, staging: &StagingId) -> Result<()> {
        remove_if_there(&self.legacy_staging_path(staging)).await?;
        match fs::remove_dir_all(self.staging_dir(staging)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}
