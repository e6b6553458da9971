//! `BlobStore` in memory: the reference backend for tests and examples. Every write attempt
//! lands in a place of its own (`isolates_writes`), as in the local store. Bodies are held
//! whole, so it is for small data only; nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{
    quarantine_name, BlobStaging, BlobStore, ByteStream, PartReceipt, PartSpec, PendingBlob,
    StagingId,
};
use crate::error::{Error, Result};
use crate::types::{now_millis, ByteRange, Sha1Hex};

#[derive(Debug)]
pub struct MemoryBlobStore {
    name: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// key → (bytes, last written, Unix ms).
    blobs: HashMap<String, (Bytes, i64)>,
    staged: HashMap<StagingId, Staged>,
}

#[derive(Debug)]
struct Staged {
    /// attempt → (part number, bytes).
    parts: HashMap<String, (u32, Bytes)>,
    /// attempt → (offset, the committed append it follows, bytes).
    appends: HashMap<String, (u64, String, Bytes)>,
    touched: Instant,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    crate::lock_unpoisoned(state)
}

fn new_attempt() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Reads a body whole; longer than `max` is refused, a failing source is `Incomplete`.
async fn read_body(mut body: ByteStream, max: u64) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Error::Incomplete)?;
        if buf.len() as u64 + chunk.len() as u64 > max {
            return Err(Error::invalid("body", format!("longer than {max} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn stream(bytes: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(bytes) }).boxed()
}

impl MemoryBlobStore {
    pub fn new(name: impl Into<String>) -> Self {
        MemoryBlobStore {
            name: name.into(),
            state: Arc::default(),
        }
    }

    /// Objects held: blobs, and staged attempts (what a test counts to see nothing is left).
    pub fn object_count(&self) -> usize {
        let s = lock(&self.state);
        s.blobs.len()
            + s.staged
                .values()
                .map(|st| st.parts.len() + st.appends.len())
                .sum::<usize>()
    }

    fn store_blob(state: &Mutex<State>, bytes: Bytes, sha1: &Sha1Hex) -> String {
        let key = format!("{}/{}", sha1.as_str(), new_attempt());
        lock(state).blobs.insert(key.clone(), (bytes, now_millis()));
        key
    }

    fn staged<T>(
        &self,
        staging: &StagingId,
        f: impl FnOnce(&mut Staged) -> Result<T>,
    ) -> Result<T> {
        let mut s = lock(&self.state);
        let st = s
            .staged
            .get_mut(staging)
            .ok_or(Error::NotFound { what: "upload" })?;
        st.touched = Instant::now();
        f(st)
    }

    /// Assembles a staged upload with `assemble`, drops its staging and stores the blob.
    fn complete(
        &self,
        staging: &StagingId,
        sha1: &Sha1Hex,
        assemble: impl FnOnce(&Staged) -> Result<Bytes>,
    ) -> Result<String> {
        let bytes = {
            let mut s = lock(&self.state);
            let st = s
                .staged
                .get(staging)
                .ok_or(Error::NotFound { what: "upload" })?;
            let bytes = assemble(st)?;
            s.staged.remove(staging);
            bytes
        };
        Ok(MemoryBlobStore::store_blob(&self.state, bytes, sha1))
    }
}

struct MemoryPending {
    state: Arc<Mutex<State>>,
    bytes: Bytes,
}

#[async_trait]
impl PendingBlob for MemoryPending {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn commit(self: Box<Self>, sha1: &Sha1Hex) -> Result<String> {
        Ok(MemoryBlobStore::store_blob(&self.state, self.bytes, sha1))
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn put_pending(&self, body: ByteStream) -> Result<Box<dyn PendingBlob>> {
        let bytes = read_body(body, u64::MAX).await?;
        Ok(Box::new(MemoryPending {
            state: self.state.clone(),
            bytes,
        }))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let s = lock(&self.state);
        let (bytes, _) = s.blobs.get(key).ok_or(Error::NotFound { what: "blob" })?;
        let bytes = match range {
            Some(r) if r.end <= bytes.len() as u64 && r.start <= r.end => {
                bytes.slice(r.start as usize..r.end as usize)
            }
            Some(_) => return Err(Error::invalid("range", "outside the blob")),
            None => bytes.clone(),
        };
        Ok(stream(bytes))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        lock(&self.state).blobs.remove(key);
        Ok(())
    }

    async fn quarantine(&self, key: &str) -> Result<String> {
        let mut s = lock(&self.state);
        let blob = s
            .blobs
            .remove(key)
            .ok_or(Error::NotFound { what: "blob" })?;
        let place = quarantine_name(key);
        s.blobs.insert(place.clone(), blob);
        Ok(place)
    }

    async fn list_blobs(&self) -> Result<Vec<(String, i64)>> {
        let s = lock(&self.state);
        Ok(s.blobs
            .iter()
            .map(|(k, (_, at))| (k.clone(), *at))
            .collect())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(lock(&self.state).blobs.contains_key(key))
    }
}

#[async_trait]
impl BlobStaging for MemoryBlobStore {
    fn isolates_writes(&self) -> bool {
        true
    }

    async fn stage_begin(&self, staging: &StagingId, _size: u64) -> Result<()> {
        lock(&self.state)
            .staged
            .entry(staging.clone())
            .or_insert_with(|| Staged {
                parts: HashMap::new(),
                appends: HashMap::new(),
                touched: Instant::now(),
            });
        Ok(())
    }

    async fn stage_put_part(
        &self,
        staging: &StagingId,
        part: PartSpec,
        body: ByteStream,
    ) -> Result<PartReceipt> {
        self.staged(staging, |_| Ok(()))?;
        let bytes = read_body(body, part.len).await?;
        if bytes.len() as u64 != part.len {
            return Err(Error::invalid(
                "body",
                format!(
                    "{} bytes where part {} has {}",
                    bytes.len(),
                    part.number,
                    part.len
                ),
            ));
        }
        let etag = new_attempt();
        self.staged(staging, |st| {
            st.parts.insert(etag.clone(), (part.number, bytes));
            Ok(())
        })?;
        Ok(PartReceipt {
            number: part.number,
            etag,
        })
    }

    async fn stage_drop_part(&self, staging: &StagingId, attempt: &PartReceipt) -> Result<()> {
        if let Some(st) = lock(&self.state).staged.get_mut(staging) {
            st.parts.remove(&attempt.etag);
        }
        Ok(())
    }

    async fn stage_read_part(
        &self,
        staging: &StagingId,
        attempt: &PartReceipt,
        len: u64,
    ) -> Result<Option<ByteStream>> {
        let bytes = self.staged(staging, |st| match st.parts.get(&attempt.etag) {
            Some((n, b)) if *n == attempt.number && len <= b.len() as u64 => {
                Ok(b.slice(..len as usize))
            }
            _ => Err(Error::NotFound { what: "part" }),
        })?;
        Ok(Some(stream(bytes)))
    }

    async fn stage_write(
        &self,
        staging: &StagingId,
        offset: u64,
        prev: &str,
        body: ByteStream,
        max_len: u64,
    ) -> Result<(u64, String)> {
        self.staged(staging, |_| Ok(()))?;
        let bytes = read_body(body, max_len).await?;
        if bytes.is_empty() {
            return Ok((0, prev.to_owned()));
        }
        let attempt = new_attempt();
        let n = bytes.len() as u64;
        self.staged(staging, |st| {
            st.appends
                .insert(attempt.clone(), (offset, prev.to_owned(), bytes));
            Ok(())
        })?;
        Ok((n, attempt))
    }

    async fn stage_drop_write(
        &self,
        staging: &StagingId,
        _offset: u64,
        prev: &str,
        attempt: &str,
    ) -> Result<()> {
        if attempt == prev {
            return Ok(()); // an empty append: nothing was kept
        }
        if let Some(st) = lock(&self.state).staged.get_mut(staging) {
            st.appends.remove(attempt);
        }
        Ok(())
    }

    async fn stage_complete(
        &self,
        staging: &StagingId,
        parts: &[PartReceipt],
        sha1: &Sha1Hex,
    ) -> Result<String> {
        self.complete(staging, sha1, |st| {
            let mut out = BytesMut::new();
            for r in parts {
                match st.parts.get(&r.etag) {
                    Some((n, b)) if *n == r.number => out.extend_from_slice(b),
                    _ => return Err(Error::backend("blob", "a committed part is missing")),
                }
            }
            Ok(out.freeze())
        })
    }

    async fn stage_complete_appends(
        &self,
        staging: &StagingId,
        last: &str,
        len: u64,
        sha1: &Sha1Hex,
    ) -> Result<String> {
        self.complete(staging, sha1, |st| {
            // Walk the chain back from the last committed append.
            let mut chain = Vec::new();
            let mut at = last;
            while !at.is_empty() {
                let (offset, prev, b) = st
                    .appends
                    .get(at)
                    .ok_or_else(|| Error::backend("blob", "a committed append is missing"))?;
                chain.push((*offset, b.clone()));
                at = prev;
            }
            chain.reverse();
            let mut out = BytesMut::new();
            for (offset, b) in chain {
                if offset != out.len() as u64 {
                    return Err(Error::backend("blob", "appends do not follow each other"));
                }
                out.extend_from_slice(&b);
            }
            if out.len() as u64 != len {
                return Err(Error::backend(
                    "blob",
                    "appends do not add up to the upload",
                ));
            }
            Ok(out.freeze())
        })
    }

    async fn stage_abort(&self, staging: &StagingId) -> Result<()> {
        lock(&self.state).staged.remove(staging);
        Ok(())
    }

    async fn stage_list_idle(&self, idle: Duration) -> Result<Vec<StagingId>> {
        let s = lock(&self.state);
        Ok(s.staged
            .iter()
            .filter(|(_, st)| st.touched.elapsed() >= idle)
            .map(|(id, _)| id.clone())
            .collect())
    }
}
