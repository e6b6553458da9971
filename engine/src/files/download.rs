//! Downloads: a file's bytes (verified on the way out when whole), ranges, presigned URLs.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sha1::{Digest, Sha1};

use super::{publish::quarantine, Files};
use crate::blobs::{BlobStore, ByteStream};
use crate::error::{Error, Result};
use crate::meta::{self, FileIndex, UserFile};
use crate::stats::Stats;
use crate::types::{ByteRange, RangeRequest, Sha1Hex};

/// The bytes of a user file, or of one range of it.
pub struct Download {
    pub file: UserFile,
    /// `Some` for a range request; the stream then carries only those bytes.
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

impl Files {
    /// Opens a file's content, or one range of it (`RangeNotSatisfiable` when the range is
    /// outside the file).
    pub async fn read(&self, file: UserFile, range: Option<RangeRequest>) -> Result<Download> {
        let range = range.map(|r| r.resolve(file.size)).transpose()?;
        let mut blob = self.blob_of(&file).await?;
        let body = loop {
            let store = self.store(&blob.store)?;
            match store.get(&blob.key, range).await {
                // A whole download is verified on the way out.
                Ok(body) if range.is_none() => {
                    break verified(
                        body,
                        blob.clone(),
                        self.index.clone(),
                        store.clone(),
                        self.stats.clone(),
                    )
                }
                Ok(body) => break body,
                // Moved to another store between the lookup and the read: follow it once.
                Err(Error::NotFound { .. }) => {
                    let again = self.blob_of(&file).await?;
                    if (again.store.as_str(), again.key.as_str())
                        == (blob.store.as_str(), blob.key.as_str())
                    {
                        return Err(Error::backend("blob", "stored content is missing"));
                    }
                    blob = again;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Download { file, range, body })
    }

    /// A URL that downloads `file` straight from its store (S3 presigned GET) with
    /// `disposition` as the response's `Content-Disposition`; `None` when the store cannot
    /// sign URLs.
    pub async fn presigned_url(
        &self,
        file: &UserFile,
        disposition: &str,
        ttl: Duration,
    ) -> Result<Option<String>> {
        let blob = self.blob_of(file).await?;
        self.store(&blob.store)?
            .presigned_get(&blob.key, disposition, ttl)
            .await
    }
}

/// A whole blob's bytes, hashed as they pass; the last chunk is held back until the SHA1 is
/// known. Bytes that do not hash to the blob's SHA1 are never delivered whole: the stream ends
/// with an error instead of its last chunk (the client sees a cut-off download, not a
/// complete wrong one), and the blob is quarantined.
fn verified(
    body: ByteStream,
    blob: meta::BlobRecord,
    index: Arc<dyn FileIndex>,
    store: Arc<dyn BlobStore>,
    stats: Arc<Stats>,
) -> ByteStream {
    struct St {
        body: ByteStream,
        hasher: Sha1,
        len: u64,
        held: Option<bytes::Bytes>,
        done: bool,
    }
    let st = St {
        body,
        hasher: Sha1::new(),
        len: 0,
        held: None,
        done: false,
    };
    futures::stream::unfold(
        (st, blob, index, store, stats),
        |(mut st, blob, index, store, stats)| async move {
            if st.done {
                return None;
            }
            loop {
                match st.body.next().await {
                    Some(Ok(chunk)) => {
                        if chunk.is_empty() {
                            continue;
                        }
                        st.hasher.update(&chunk);
                        st.len += chunk.len() as u64;
                        if let Some(prev) = st.held.replace(chunk) {
                            return Some((Ok(prev), (st, blob, index, store, stats)));
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), (st, blob, index, store, stats)));
                    }
                    None => {
                        st.done = true;
                        let got = Sha1Hex::from_digest(&st.hasher.clone().finalize().into());
                        if got == blob.sha1 && st.len == blob.size {
                            let last = st.held.take()?;
                            return Some((Ok(last), (st, blob, index, store, stats)));
                        }
                        if let Err(e) =
                            quarantine(&*index, &*store, &stats, &blob, "download").await
                        {
                            tracing::error!(sha1 = %blob.sha1, error = %e, "could not quarantine");
                        }
                        let err = io::Error::other("stored content does not hash to its SHA1");
                        return Some((Err(err), (st, blob, index, store, stats)));
                    }
                }
            }
        },
    )
    .boxed()
}
