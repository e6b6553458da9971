//! Streams a request body into a file at an offset, from the blocking pool.
//!
//! The async side gathers the body's chunks (no copy) into batches; each batch is written by
//! one blocking call while the next is being received, so receiving, hashing (done by the
//! caller's stream) and writing overlap. No blocking thread waits on the client: a thread is
//! taken per batch, never for a whole body, however slowly it arrives.
//!
//! Bytes are written with `O_DIRECT` (parts, tus appends, whole-file uploads; parts are read
//! back once, directly too, to extend the file's SHA1)
//! from one reused aligned buffer: they go to the disk without passing through the page cache,
//! so a GiB upload neither copies every byte into freshly allocated cache pages nor leaves the
//! `fdatasync` before the answer to write them all at the end (on this kind of machine durable
//! direct writes ran at 1.4–1.6 GB/s against 0.3–0.5 GB/s buffered with `fdatasync`). The few
//! bytes before the first and after the last 4 KiB boundary go through the page cache; a file
//! system without `O_DIRECT` (tmpfs) gets buffered writes throughout. Buffered writes start
//! their writeback every few MiB, so the `fdatasync` waits only for the last stretch.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::ByteStream;
use crate::error::{Error, Result};

/// Bytes gathered before they are handed to one blocking write: what all bodies being written
/// share (`BATCH_BUDGET`), between `MIN_BATCH` and `MAX_BATCH` each. Larger batches mean fewer
/// hand-offs to the blocking pool per GiB (measured with 4 parts in flight: 256 KiB batches
/// cost ~45,000 thread switches per GiB, 1 MiB about half); many bodies at once get smaller
/// ones, so memory does not grow with the uploads in flight. With the batch being written, a
/// body holds about twice its batch beyond the connection's read buffer (and, direct, its
/// aligned buffer, at most `DIRECT_BLOCK`).
const BATCH_BUDGET: usize = 8 << 20;
const MIN_BATCH: usize = 64 << 10;
const MAX_BATCH: usize = 1 << 20;
/// Bodies being written now, in this process.
static WRITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a body in `WRITING` while it lives.
struct Writing;

impl Writing {
    fn start() -> Self {
        WRITING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Writing
    }

    /// This body's share of the budget now.
    fn batch(&self) -> usize {
        let writing = WRITING.load(std::sync::atomic::Ordering::Relaxed).max(1);
        (BATCH_BUDGET / writing).clamp(MIN_BATCH, MAX_BATCH)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
/// Writeback of buffered writes is started every this many bytes.
const WRITEBACK_EVERY: u64 = 2 << 20;
/// Direct writes: offsets, lengths and memory aligned to this (any logical block size up to it).
pub(super) const ALIGN: usize = 4096;
/// One direct write.
const DIRECT_BLOCK: usize = 512 << 10;
const EINVAL: i32 = 22;

/// How the bytes reach the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Through the page cache throughout (what a file system without `O_DIRECT` gets; the
    /// tests compare both ways).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "every store writes directly now")
    )]
    Buffered,
    /// `O_DIRECT` where the file system has it, from this many bytes into the body on (small
    /// files stay in the cache for the downloads that often follow).
    Direct { after: u64 },
}

type Job = JoinHandle<(Box<Writer>, io::Result<()>)>;

/// Writes `body` into `file` (opened for writing at `path`) from `offset`, returning the number
/// of bytes; more than `limit` bytes is an `Invalid { field: "body" }` error. The bytes are
/// durable when this returns `Ok`. On any error no write is running when this returns, so
/// nothing writes to the file behind the caller's back (it may cut or punch what was written).
pub(super) async fn write_at(
    file: std::fs::File,
    path: PathBuf,
    offset: u64,
    mut body: ByteStream,
    limit: Option<u64>,
    mode: Mode,
    backend: &'static str,
) -> Result<u64> {
    let join = |e: tokio::task::JoinError| Error::backend(backend, e);
    let writing = Writing::start();
    let share = writing.batch();
    let writer = Box::new(Writer {
        file,
        direct: None,
        direct_from: match mode {
            Mode::Direct { after } => Some((path, offset.saturating_add(after))),
            Mode::Buffered => None,
        },
        // A body that cannot be longer than a few blocks (a small part) gets no more aligned
        // memory than it can fill: under load every body in flight holds one.
        // No more aligned memory than the body can fill (a small part) or than its share of
        // the batch budget: under load every body in flight holds one.
        direct_block: (limit
            .unwrap_or(u64::MAX)
            .min(share.min(DIRECT_BLOCK) as u64) as usize)
            .next_multiple_of(ALIGN)
            .max(ALIGN),
        pos: offset,
        unsynced_from: offset,
    });
    let mut idle = Some(writer);
    let mut job: Option<Job> = None;
    // Hands `batch` to the writer once the previous batch is written.
    async fn submit(
        idle: &mut Option<Box<Writer>>,
        job: &mut Option<Job>,
        batch: Vec<Bytes>,
    ) -> Result<(), JobError> {
        if let Some(j) = job.take() {
            let (w, done) = j.await.map_err(JobError::Join)?;
            *idle = Some(w);
            done.map_err(JobError::Io)?;
        }
        let mut w = idle.take().ok_or(JobError::Lost)?;
        *job = Some(tokio::task::spawn_blocking(move || {
            let done = batch.iter().try_for_each(|c| w.write(c));
            (w, done)
        }));
        Ok(())
    }
    let received = async {
        let mut batch = Vec::new();
        let mut batched = 0usize;
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Error::Incomplete)?;
            total += chunk.len() as u64;
            if let Some(l) = limit.filter(|l| total > *l) {
                return Err(Error::invalid("body", format!("longer than {l} bytes")));
            }
            batched += chunk.len();
            batch.push(chunk);
            if batched >= writing.batch() {
                batched = 0;
                submit(&mut idle, &mut job, std::mem::take(&mut batch))
                    .await
                    .map_err(|e| e.into_error(backend))?;
            }
        }
        if !batch.is_empty() {
            submit(&mut idle, &mut job, batch)
                .await
                .map_err(|e| e.into_error(backend))?;
        }
        Ok(total)
    }
    .await;
    // Whatever happened, the last write ends before this returns.
    let last = match job.take() {
        Some(j) => {
            let (w, done) = j.await.map_err(join)?;
            idle = Some(w);
            done
        }
        None => Ok(()),
    };
    let total = received?;
    last.map_err(|e| Error::io(backend, e))?;
    let mut w = idle.ok_or_else(|| Error::backend(backend, "the file writer was lost"))?;
    tokio::task::spawn_blocking(move || {
        w.flush_direct()?;
        w.file.sync_data()
    })
    .await
    .map_err(join)?
    .map_err(|e| Error::io(backend, e))?;
    Ok(total)
}

enum JobError {
    Join(tokio::task::JoinError),
    Io(io::Error),
    Lost,
}

impl JobError {
    fn into_error(self, backend: &'static str) -> Error {
        match self {
            JobError::Join(e) => Error::backend(backend, e),
            JobError::Io(e) => Error::io(backend, e),
            JobError::Lost => Error::backend(backend, "the file writer was lost"),
        }
    }
}

struct Writer {
    /// Buffered writes (and the final sync).
    file: std::fs::File,
    direct: Option<DirectFile>,
    /// Where `direct` is opened, once the writes reach this offset.
    direct_from: Option<(PathBuf, u64)>,
    /// The size of `direct`'s aligned buffer.
    direct_block: usize,
    /// File offset of the next byte.
    pos: u64,
    /// Start of the buffered bytes whose writeback has not been started.
    unsynced_from: u64,
}

impl Writer {
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self
            .direct_from
            .as_ref()
            .is_some_and(|(_, at)| self.pos >= *at)
        {
            if let Some((path, _)) = self.direct_from.take() {
                self.direct = DirectFile::open(&path, self.direct_block)?;
            }
        }
        while !data.is_empty() {
            let Some(d) = &mut self.direct else {
                self.file.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                if self.pos - self.unsynced_from >= WRITEBACK_EVERY {
                    dont_need(
                        &self.file,
                        self.unsynced_from,
                        self.pos - self.unsynced_from,
                    );
                    self.unsynced_from = self.pos;
                }
                return Ok(());
            };
            let pending = self.pos + d.filled as u64;
            if d.filled == 0 && !pending.is_multiple_of(ALIGN as u64) {
                // Up to the next boundary through the page cache.
                let head = (ALIGN - (pending % ALIGN as u64) as usize).min(data.len());
                self.file.write_all_at(&data[..head], self.pos)?;
                self.pos += head as u64;
                data = &data[head..];
                continue;
            }
            let n = d.take(data);
            data = &data[n..];
            if d.filled == d.buf.capacity() {
                self.flush_direct()?;
            }
        }
        Ok(())
    }

    /// Writes what the aligned buffer holds: whole 4 KiB blocks directly, the rest buffered.
    fn flush_direct(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        let whole = d.filled - d.filled % ALIGN;
        let (blocks, tail) = d.buffer()[..d.filled].split_at(whole);
        let mut refused = false;
        if !blocks.is_empty() {
            match d.file.write_all_at(blocks, self.pos) {
                Ok(()) => {}
                // Opened with O_DIRECT but the write is refused: buffered from here on.
                Err(e) if e.raw_os_error() == Some(EINVAL) => {
                    self.file.write_all_at(blocks, self.pos)?;
                    refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(tail, self.pos + whole as u64)?;
        self.pos += d.filled as u64;
        d.filled = 0;
        if refused {
            self.direct = None;
        }
        Ok(())
    }
}

/// A second descriptor of the file opened with `O_DIRECT`, and its aligned buffer.
struct DirectFile {
    file: std::fs::File,
    buf: AlignedBuffer,
    filled: usize,
}

/// Memory aligned to [`ALIGN`], as `O_DIRECT` reads and writes need; allocated once per body.
pub(super) struct AlignedBuffer {
    memory: Vec<u8>,
    /// Where the aligned part starts in `memory`.
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    pub(super) fn new(len: usize) -> Self {
        let memory = vec![0u8; len + ALIGN];
        let start = memory.as_ptr().align_offset(ALIGN);
        AlignedBuffer { memory, start, len }
    }

    pub(super) fn capacity(&self) -> usize {
        self.len
    }

    pub(super) fn as_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + self.len]
    }

    fn as_ref(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.len]
    }
}

/// A second descriptor of the file at `path` with `O_DIRECT`, for writing or reading; `None`
/// where the file system refuses `O_DIRECT`.
#[cfg(target_os = "linux")]
#[allow(clippy::disallowed_methods)] // runs on the blocking pool
pub(super) fn open_direct(
    path: &std::path::Path,
    write: bool,
) -> io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn open_direct(
    _path: &std::path::Path,
    _write: bool,
) -> io::Result<Option<std::fs::File>> {
    Ok(None)
}

impl DirectFile {
    /// `None` where the file system refuses `O_DIRECT`.
    fn open(path: &std::path::Path, block: usize) -> io::Result<Option<Self>> {
        Ok(open_direct(path, true)?.map(|file| DirectFile {
            file,
            buf: AlignedBuffer::new(block),
            filled: 0,
        }))
    }

    fn buffer(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Copies as much of `data` as fits; returns how much.
    fn take(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.buf.capacity() - self.filled);
        let at = self.filled;
        self.buf.as_mut()[at..at + n].copy_from_slice(&data[..n]);
        self.filled += n;
        n
    }
}

/// `POSIX_FADV_DONTNEED` over `[offset, offset + len)`: starts writeback of the range's dirty
/// pages without waiting, and drops the pages that are already clean (so bytes just written
/// stay cached until they are on disk, and bytes just read back leave the cache). A hint: a
/// failure only loses the head start or the freed memory.
#[cfg(target_os = "linux")]
pub(super) fn dont_need(file: &std::fs::File, offset: u64, len: u64) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    if let Err(e) = posix_fadvise(file, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
        tracing::debug!(error = %e, "posix_fadvise(DONTNEED) failed");
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn dont_need(_file: &std::fs::File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies of odd lengths in odd chunks at unaligned offsets, both modes, over what is
    /// already in the file: the file holds exactly the bytes, whichever path each byte took.
    #[tokio::test]
    async fn any_offset_any_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut expected: Vec<u8> = Vec::new();
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        #[allow(clippy::disallowed_methods)] // a test
        std::fs::File::create(&path).unwrap();
        for round in 0..24 {
            let offset = if round % 3 == 0 {
                (next() as usize) % (expected.len() + 1)
            } else {
                expected.len()
            };
            let len = match round % 4 {
                0 => (next() % 5000) as usize,
                1 => DIRECT_BLOCK + (next() % 9000) as usize,
                2 => 3 * DIRECT_BLOCK,
                _ => (next() % (2 * DIRECT_BLOCK as u64)) as usize,
            };
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < len {
                let n = ((next() % 70_000) as usize + 1).min(len - at);
                chunks.push(Ok(Bytes::copy_from_slice(&data[at..at + n])));
                at += n;
            }
            let mode = match round % 3 {
                0 => Mode::Direct { after: 0 },
                1 => Mode::Direct { after: 100_000 },
                _ => Mode::Buffered,
            };
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let body = futures::stream::iter(chunks).boxed();
            let n = write_at(file, path.clone(), offset as u64, body, None, mode, "test")
                .await
                .unwrap();
            assert_eq!(n, len as u64);
            if expected.len() < offset + len {
                expected.resize(offset + len, 0);
            }
            expected[offset..offset + len].copy_from_slice(&data);
            #[allow(clippy::disallowed_methods)] // a test
            let got = std::fs::read(&path).unwrap();
            assert!(got == expected, "round {round}: contents differ");
        }
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        #[allow(clippy::disallowed_methods)] // a test
        let file = std::fs::File::create(&path).unwrap();
        let body = futures::stream::iter([Ok(Bytes::from(vec![1u8; 10]))]).boxed();
        let err = write_at(
            file,
            path,
            0,
            body,
            Some(9),
            Mode::Direct { after: 0 },
            "test",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: "body", .. }),
            "{err:?}"
        );
    }
}
