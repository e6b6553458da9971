//! Blobs on the local filesystem: `<root>/blobs/ab/cd/<sha1>-<random>`.
//!
//! Every write goes to `<root>/tmp` or `<root>/staging` first and is renamed into place only when
//! complete and fsynced. The random suffix makes every committed copy a distinct file, so a new
//! upload of some content never lands on the path that a concurrent delete of the previous copy
//! of that content is about to unlink.
//!
//! A blob is either one file (whole-file uploads) or a directory of segments with a `manifest`
//! (chunked and tus uploads): `000000`, `000001`, … in order, their lengths in the manifest.
//! A staged upload is a directory `<root>/staging/<id>/` in which every write attempt has a
//! file of its own, created new and never opened for writing by anyone else:
//! `p<part>-<attempt>` for a part, `t<offset>-<attempt>-<previous attempt>` for a tus append.
//! Completion moves exactly the committed attempts into the blob's directory (renames: O(parts),
//! no byte copied), so a write still running elsewhere can never reach published bytes.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use tokio::fs;

use super::file_reader::{self, Cache};
use super::file_writer::{self, Mode};
use super::{BlobStore, ByteStream, PendingBlob};
use crate::error::{Error, Result};
use crate::types::{ByteRange, Sha1Hex};

const BACKEND: &str = "local";

#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    name: String,
    root: PathBuf,
}

/// A full disk is `InsufficientStorage` (507), any other I/O failure a backend error.
fn io_err(e: io::Error) -> Error {
    Error::io(BACKEND, e)
}

const MANIFEST: &str = "manifest";
const MANIFEST_HEADER: &str = "chunkvault segments 1\n";

/// The segment lengths of a blob directory's manifest.
fn parse_manifest(text: &str) -> Option<Vec<u64>> {
    let body = text.strip_prefix(MANIFEST_HEADER)?;
    body.lines().map(|l| l.parse().ok()).collect()
}

/// Streams `range` of a blob directory whose segments have lengths `lens`.
fn read_segments(dir: PathBuf, lens: Vec<u64>, range: ByteRange) -> ByteStream {
    let mut pieces = Vec::new();
    let mut start = 0u64;
    for (i, len) in lens.into_iter().enumerate() {
        let end = start + len;
        if end > range.start && start < range.end && len > 0 {
            let from = range.start.max(start) - start;
            let to = range.end.min(end) - start;
            pieces.push((dir.join(format!("{i:06}")), from, to - from));
        }
        start = end;
    }
    futures::stream::iter(pieces)
        .then(|(path, from, len)| async move {
            let file = fs::File::open(&path).await?.into_std().await;
            let range = ByteRange {
                start: from,
                end: from + len,
            };
            Ok::<_, io::Error>(file_reader::read_range(file, path, range, Cache::Keep))
        })
        .try_flatten()
        .boxed()
}

/// `range_digests` of the blob at `path` (a file, or a directory of segments), blocking.
#[allow(clippy::disallowed_methods)] // runs on the blocking pool
fn range_digests_now(path: &Path, ranges: &[ByteRange]) -> Result<Vec<[u8; 32]>> {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let not_found = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { what: "blob" },
        _ => io_err(e),
    };
    // (file, where it starts in the blob, its length)
    let mut pieces = Vec::new();
    let meta = std::fs::metadata(path).map_err(not_found)?;
    if meta.is_dir() {
        let text = std::fs::read_to_string(path.join(MANIFEST)).map_err(io_err)?;
        let lens = parse_manifest(&text).ok_or_else(|| {
            Error::backend(BACKEND, format!("corrupt manifest in {}", path.display()))
        })?;
        let mut start = 0;
        for (i, len) in lens.into_iter().enumerate() {
            pieces.push((path.join(format!("{i:06}")), start, len));
            start += len;
        }
    } else {
        pieces.push((path.to_owned(), 0, meta.len()));
    }
    let mut open: Vec<Option<std::fs::File>> = pieces.iter().map(|_| None).collect();
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut h = sha2::Sha256::new();
        let mut hashed = 0;
        for (i, (file_path, start, len)) in pieces.iter().enumerate() {
            let (from, to) = (r.start.max(*start), r.end.min(start + len));
            if from >= to {
                continue;
            }
            if open[i].is_none() {
                open[i] = Some(std::fs::File::open(file_path).map_err(not_found)?);
            }
            let file = open[i].as_ref().expect("opened above");
            buf.resize((to - from) as usize, 0);
            file.read_exact_at(&mut buf, from - start).map_err(io_err)?;
            h.update(&buf);
            hashed += to - from;
        }
        if hashed != r.end.saturating_sub(r.start) {
            return Err(Error::backend(BACKEND, "range past the end of the blob"));
        }
        out.push(h.finalize().into());
    }
    Ok(out)
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

    /// Moves `segments` (durable files) into a new blob directory with their manifest and
    /// publishes it under a fresh key, atomically (one rename of the directory).
    async fn publish_segments(&self, segments: Vec<PathBuf>, sha1: &Sha1Hex) -> Result<String> {
        let key = Self::new_key(sha1);
        let to = self.blob_path(&key)?;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.d", hex::encode(rand::random::<[u8; 16]>())));
        #[allow(clippy::disallowed_methods)] // runs on the blocking pool
        let build = move || -> io::Result<()> {
            std::fs::create_dir(&tmp)?;
            let mut manifest = String::from(MANIFEST_HEADER);
            for (i, from) in segments.iter().enumerate() {
                let len = std::fs::metadata(from)?.len();
                std::fs::rename(from, tmp.join(format!("{i:06}")))?;
                manifest.push_str(&format!("{len}\n"));
            }
            let mpath = tmp.join(MANIFEST);
            let mut f = std::fs::File::create_new(&mpath)?;
            io::Write::write_all(&mut f, manifest.as_bytes())?;
            f.sync_all()?;
            std::fs::File::open(&tmp)?.sync_all()?;
            let dir = to.parent().expect("blob paths have parents");
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp, &to)?;
            std::fs::File::open(dir)?.sync_all()
        };
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound { what: "upload" },
                _ => io_err(e),
            })?;
        Ok(key)
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

/// Deletes a file when dropped unless disarmed: nothing half-written outlives a failed request.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }

    /// Removes the file before returning: a refused write keeps none of its bytes, and a full
    /// disk gets its space back before the answer, not in the background.
    async fn remove_now(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = remove_if_there(&path).await {
                tracing::warn!(error = %e, "could not remove a refused write");
            }
        }
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
        let meta = match fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "blob" })
            }
            Err(e) => return Err(io_err(e)),
        };
        if meta.is_dir() {
            let text = fs::read_to_string(path.join(MANIFEST))
                .await
                .map_err(io_err)?;
            let lens = parse_manifest(&text)
                .ok_or_else(|| Error::backend(BACKEND, format!("corrupt manifest in {key}")))?;
            let total = lens.iter().sum();
            let range = range.unwrap_or(ByteRange {
                start: 0,
                end: total,
            });
            return Ok(read_segments(path, lens, range));
        }
        let file = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what: "blob" })
            }
            Err(e) => return Err(io_err(e)),
        };
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: meta.len(),
        });
        Ok(file_reader::read_range(
            file.into_std().await,
            path,
            range,
            Cache::Keep,
        ))
    }

    /// In one job on the blocking pool (the manifest, each segment opened once, one read per
    /// range): an instant-upload challenge costs one thread hand-off, not a dozen.
    async fn range_digests(&self, key: &str, ranges: &[ByteRange]) -> Result<Vec<[u8; 32]>> {
        let path = self.blob_path(key)?;
        let ranges = ranges.to_vec();
        tokio::task::spawn_blocking(move || range_digests_now(&path, &ranges))
            .await
            .map_err(|e| Error::backend(BACKEND, e))?
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.blob_path(key)?;
        let res = match fs::symlink_metadata(&path).await {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path).await,
            Ok(_) => fs::remove_file(&path).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn quarantine(&self, key: &str) -> Result<String> {
        let from = self.blob_path(key)?;
        let place = super::quarantine_name(key);
        fs::create_dir_all(self.root.join("quarantine"))
            .await
            .map_err(io_err)?;
        fs::rename(&from, self.root.join(&place))
            .await
            .map_err(io_err)?;
        Ok(place)
    }

    async fn list_blobs(&self) -> Result<Vec<(String, i64)>> {
        let root = self.root.join("blobs");
        #[allow(clippy::disallowed_methods)] // runs on the blocking pool
        let walk = move || -> io::Result<Vec<(String, i64)>> {
            let names = |dir: &Path| -> io::Result<Vec<(String, std::fs::Metadata)>> {
                let mut out = Vec::new();
                for e in std::fs::read_dir(dir)? {
                    let e = e?;
                    if let (Some(name), Ok(meta)) = (e.file_name().to_str(), e.metadata()) {
                        out.push((name.to_owned(), meta));
                    }
                }
                Ok(out)
            };
            let mut out = Vec::new();
            for (a, _) in names(&root)? {
                for (b, _) in names(&root.join(&a))? {
                    for (name, meta) in names(&root.join(&a).join(&b))? {
                        let modified = meta
                            .modified()
                            .ok()
                            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as i64);
                        out.push((format!("{a}/{b}/{name}"), modified));
                    }
                }
            }
            Ok(out)
        };
        tokio::task::spawn_blocking(walk)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?
            .map_err(io_err)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let path = self.blob_path(key)?;
        fs::try_exists(&path).await.map_err(io_err)
    }
}

mod staging;

async fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}
