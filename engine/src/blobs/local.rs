//! Blobs on the local filesystem: `<root>/blobs/ab/cd/<sha1>-<random>`.
//!
//! Every write goes to `<root>/tmp` or `<root>/staging` first and is renamed into place only when
//! complete and fsynced. The random suffix makes every committed copy a distinct file, so a new
//! upload of some content never lands on the path that a concurrent delete of the previous copy
//! of that content is about to unlink.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::fs;
use tokio::io::AsyncSeekExt;
use tokio_util::io::ReaderStream;

use super::file_reader;
use super::file_writer::{self, Mode};
use super::{BlobStore, ByteStream, PartReceipt, PartSpec, PendingBlob, StagingId};
use crate::error::{Error, Result};
use crate::types::{ByteRange, Sha1Hex};

const BACKEND: &str = "local";
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    name: String,
    root: PathBuf,
}

/// A full disk is `InsufficientStorage` (507), any other I/O failure a backend error.
fn io_err(e: io::Error) -> Error {
    Error::io(BACKEND, e)
}

impl LocalBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub async fn open(name: impl Into<String>, root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blobs", "tmp", "staging"] {
            fs::create_dir_all(root.join(sub)).await.map_err(io_err)?;
        }
        Ok(LocalBlobStore {
            name: name.into(),
            root,
        })
    }

    /// Removes temp files older than `max_age`: what a crash left behind. Younger ones may
    /// belong to uploads in flight on this or another process sharing the directory.
    pub async fn sweep_temp(&self, max_age: std::time::Duration) -> Result<usize> {
        let mut removed = 0;
        let mut dir = fs::read_dir(self.root.join("tmp")).await.map_err(io_err)?;
        while let Some(entry) = dir.next_entry().await.map_err(io_err)? {
            let meta = entry.metadata().await.map_err(io_err)?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if meta.is_file() && age > max_age && fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a key to its path, refusing anything that is not a key this store made.
    fn blob_path(&self, key: &str) -> Result<PathBuf> {
        let b = key.as_bytes();
        let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        let ok = b.len() == 2 + 1 + 2 + 1 + 40 + 1 + 16
            && hex(&b[0..2])
            && b[2] == b'/'
            && hex(&b[3..5])
            && b[5] == b'/'
            && hex(&b[6..46])
            && b[46] == b'-'
            && hex(&b[47..])
            && b[0..2] == b[6..8]
            && b[3..5] == b[8..10];
        if !ok {
            return Err(Error::backend(
                BACKEND,
                format!("malformed blob key {key:?}"),
            ));
        }
        Ok(self.root.join("blobs").join(key))
    }

    fn new_key(sha1: &Sha1Hex) -> String {
        let s = sha1.as_str();
        let suffix = hex::encode(rand::random::<[u8; 8]>());
        format!("{}/{}/{}-{}", &s[0..2], &s[2..4], s, suffix)
    }

    fn staging_path(&self, staging: &StagingId) -> PathBuf {
        self.root
            .join("staging")
            .join(format!("{}.part", staging.as_str()))
    }

    /// Renames `from` to the path of a fresh key and makes the rename durable.
    async fn publish_file(&self, from: &Path, sha1: &Sha1Hex) -> Result<String> {
        let key = Self::new_key(sha1);
        let to = self.blob_path(&key)?;
        let dir = to.parent().expect("blob paths have parents").to_owned();
        fs::create_dir_all(&dir).await.map_err(io_err)?;
        fs::rename(from, &to).await.map_err(io_err)?;
        sync_dir(dir).await?;
        Ok(key)
    }
}

#[allow(clippy::disallowed_methods)] // runs on the blocking pool
async fn sync_dir(dir: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(|e| Error::backend(BACKEND, e))?
        .map_err(io_err)
}

/// Deallocates `[offset, offset + len)` of the file at `path`, keeping its size (a sparse hole).
#[allow(clippy::disallowed_methods)] // runs on the blocking pool
async fn punch_hole(path: PathBuf, offset: u64, len: u64) -> Result<()> {
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        deallocate(&file, offset, len)
    })
    .await
    .map_err(|e| Error::backend(BACKEND, e))?
    .map_err(io_err)
}

#[cfg(target_os = "linux")]
fn deallocate(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    let off = i64::try_from(offset).map_err(io::Error::other)?;
    let len = i64::try_from(len).map_err(io::Error::other)?;
    fallocate(
        file,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        off,
        len,
    )
    .map_err(io::Error::from)
}

/// Elsewhere the blocks stay allocated until the upload is completed, aborted or expires.
#[cfg(not(target_os = "linux"))]
fn deallocate(_file: &std::fs::File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Deletes a file when dropped unless disarmed: nothing half-written outlives a failed request.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    #[allow(clippy::disallowed_methods)] // on the blocking pool, or outside any runtime
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let remove = move || {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "could not remove temp file");
                    }
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(remove)),
                Err(_) => remove(),
            }
        }
    }
}

/// Writes `body` into `file` (at `path`) from `offset` and makes it durable; see `file_writer`.
async fn copy_stream(
    file: fs::File,
    path: &Path,
    offset: u64,
    body: ByteStream,
    limit: Option<u64>,
    mode: Mode,
) -> Result<u64> {
    let file = file.into_std().await;
    file_writer::write_at(file, path.to_owned(), offset, body, limit, mode, BACKEND).await
}

struct LocalPending {
    store: LocalBlobStore,
    tmp: RemoveOnDrop,
    size: u64,
}

#[async_trait]
impl PendingBlob for LocalPending {
    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>, sha1: &Sha1Hex) -> Result<String> {
        let from = self.tmp.0.clone().expect("armed until commit");
        let key = self.store.publish_file(&from, sha1).await?;
        self.tmp.disarm();
        Ok(key)
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ping(&self) -> Result<()> {
        if fs::try_exists(self.root.join("blobs"))
            .await
            .map_err(io_err)?
        {
            Ok(())
        } else {
            Err(Error::backend(BACKEND, "blob directory is missing"))
        }
    }

    async fn put_pending(&self, body: ByteStream) -> Result<Box<dyn PendingBlob>> {
        let name = format!("{}.tmp", hex::encode(rand::random::<[u8; 16]>()));
        let path = self.root.join("tmp").join(name);
        let file = fs::File::create_new(&path).await.map_err(io_err)?;
        let tmp = RemoveOnDrop(Some(path.clone()));
        let size = copy_stream(file, &path, 0, body, None, Mode::Direct { after: 8 << 20 }).await?;
        Ok(Box::new(LocalPending {
            store: self.clone(),
            tmp,
            size,
        }))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let path = self.blob_path(key)?;
        let mut file = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "blob" })
            }
            Err(e) => return Err(io_err(e)),
        };
        let stream = match range {
            None => ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
            Some(r) => {
                file.seek(SeekFrom::Start(r.start)).await.map_err(io_err)?;
                use tokio::io::AsyncReadExt;
                ReaderStream::with_capacity(file.take(r.len()), READ_CHUNK).boxed()
            }
        };
        Ok(stream)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.blob_path(key)?;
        match fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let path = self.blob_path(key)?;
        fs::try_exists(&path).await.map_err(io_err)
    }

    async fn stage_begin(&self, staging: &StagingId, size: u64) -> Result<()> {
        let path = self.staging_path(staging);
        // Not `create_new`: a retried begin must find the staged bytes untouched.
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(io_err)?;
        // Sparse: blocks are allocated as parts arrive.
        if file.metadata().await.map_err(io_err)?.len() != size {
            file.set_len(size).await.map_err(io_err)?;
        }
        file.sync_all().await.map_err(io_err)?;
        Ok(())
    }

    async fn stage_put_part(
        &self,
        staging: &StagingId,
        part: PartSpec,
        body: ByteStream,
    ) -> Result<PartReceipt> {
        let path = self.staging_path(staging);
        let file = match fs::OpenOptions::new().write(true).open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "upload" })
            }
            Err(e) => return Err(io_err(e)),
        };
        // Buffered: the part is read back soon, to extend the file's SHA1 over it.
        let written = match copy_stream(
            file,
            &path,
            part.offset,
            body,
            Some(part.len),
            Mode::Buffered,
        )
        .await
        {
            Ok(n) => n,
            Err(e @ Error::InsufficientStorage { .. }) => {
                // The part stays missing (it was unmarked before the write), so the blocks
                // it filled before the disk ran out are given back at once rather than
                // holding space until the upload ends.
                if let Err(free) = punch_hole(path, part.offset, part.len).await {
                    tracing::warn!(error = %free, "could not free the blocks of a failed part");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if written != part.len {
            return Err(Error::invalid(
                "body",
                format!(
                    "part {} must be {} bytes, got {written}",
                    part.number, part.len
                ),
            ));
        }
        Ok(PartReceipt {
            number: part.number,
            etag: String::new(),
        })
    }

    async fn stage_write(
        &self,
        staging: &StagingId,
        offset: u64,
        body: ByteStream,
        max_len: u64,
    ) -> Result<u64> {
        let path = self.staging_path(staging);
        let file = match fs::OpenOptions::new().write(true).open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "upload" })
            }
            Err(e) => return Err(io_err(e)),
        };
        // Whatever a refused earlier write left past `offset` goes first, so the staged upload
        // ends where this write ends.
        file.set_len(offset).await.map_err(io_err)?;
        // Direct: tus bytes are hashed as they arrive and not read again before completion.
        let written = copy_stream(
            file,
            &path,
            offset,
            body,
            Some(max_len),
            Mode::Direct { after: 0 },
        )
        .await;
        if written.is_err() {
            // A refused write keeps none of its bytes: give their space back now (a full disk
            // most of all), not when the next write arrives.
            let cut = async {
                let f = fs::OpenOptions::new().write(true).open(&path).await?;
                f.set_len(offset).await
            };
            if let Err(e) = cut.await {
                tracing::warn!(error = %e, "could not cut back a refused tus write");
            }
        }
        written
    }

    async fn stage_read(
        &self,
        staging: &StagingId,
        range: ByteRange,
    ) -> Result<Option<ByteStream>> {
        let file = match fs::File::open(self.staging_path(staging)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "upload" })
            }
            Err(e) => return Err(io_err(e)),
        };
        Ok(Some(file_reader::read_once(file.into_std().await, range)))
    }

    async fn stage_complete(
        &self,
        staging: &StagingId,
        _parts: &[PartReceipt],
        sha1: &Sha1Hex,
    ) -> Result<String> {
        let path = self.staging_path(staging);
        if !fs::try_exists(&path).await.map_err(io_err)? {
            return Err(Error::NotFound { what: "upload" });
        }
        // Parts were synced as they arrived; the rename is the only thing left to make durable.
        self.publish_file(&path, sha1).await
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
                .and_then(|n| n.strip_suffix(".part"))
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
            if meta.is_file() && age >= idle {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn stage_abort(&self, staging: &StagingId) -> Result<()> {
        match fs::remove_file(self.staging_path(staging)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}
