//! Reads a range of a staged file once, in large reads on the blocking pool, one read ahead.
//!
//! Staged bytes are read back exactly once (to extend an upload's SHA1 over a part, or to
//! assemble partial uploads), so the pages read are dropped from the page cache behind the
//! reader: a GiB upload does not leave a GiB of cache behind it, and the pages freed are the
//! ones the next parts are written into (on virtual machines, pages the host has already
//! backed, where fresh ones cost a fault in the host each).

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::file_writer::dont_need;
use super::ByteStream;
use crate::types::ByteRange;

/// One read.
const READ_BLOCK: u64 = 256 << 10;

type Read1 = JoinHandle<(std::fs::File, io::Result<Bytes>)>;

/// Reads `len` bytes at `pos` (seeking first), then drops them from the cache.
fn read_at(mut file: std::fs::File, pos: u64, len: u64) -> Read1 {
    tokio::task::spawn_blocking(move || {
        let got = (|| {
            file.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::with_capacity(len as usize);
            (&mut file).take(len).read_to_end(&mut buf)?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "staged file shorter than the range read",
                ));
            }
            dont_need(&file, pos, buf.len() as u64);
            Ok(Bytes::from(buf))
        })();
        (file, got)
    })
}

/// The bytes of `range` of `file` as a stream; an error ends it.
pub(super) fn read_once(file: std::fs::File, range: ByteRange) -> ByteStream {
    let first = (range.start < range.end)
        .then(|| read_at(file, range.start, (range.end - range.start).min(READ_BLOCK)));
    futures::stream::unfold((first, range.start), move |(job, pos)| async move {
        let (file, got) = match job?.await {
            Ok(done) => done,
            Err(e) => return Some((Err(io::Error::other(e)), (None, pos))),
        };
        let chunk = match got {
            Ok(c) => c,
            Err(e) => return Some((Err(e), (None, pos))),
        };
        let next = pos + chunk.len() as u64;
        let ahead =
            (next < range.end).then(|| read_at(file, next, (range.end - next).min(READ_BLOCK)));
        Some((Ok(chunk), (ahead, next)))
    })
    .boxed()
}
