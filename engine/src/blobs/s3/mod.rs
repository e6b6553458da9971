//! A blob store on an S3-compatible object store (Ceph RGW, Aliyun OSS, MinIO, AWS S3),
//! through the `object_store` crate.
//!
//! Layout under the configured key prefix:
//! - `blobs/<32 hex>`: content. Keys are random (multipart uploads fix the key before the
//!   SHA1 is verified); the metadata database maps SHA1 → key.
//! - `staging/<staging id>.json`: the manifest of a staged upload: the key it will become,
//!   the S3 multipart upload id and, for tus appends, the parts written so far.
//! - `staging/<staging id>.tail`: tus bytes not yet filling a part (S3 parts other than the
//!   last must be at least the store's minimum part size).
//!
//! Every piece of state lives in the bucket, so any node holding the same configuration can
//! continue any upload.
//!
//! Memory: S3 needs each part's length and signature before its body, so one part is held in
//! memory while it is sent (`object_store` signs the payload). REST parts are as large as the
//! session's part size (5 MiB by default, 64 MiB at most); tus appends and single-request
//! uploads are cut into parts of `buffer_part_size` (8 MiB by default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use super::{BlobStore, ByteStream, PendingBlob};
use crate::error::{Error, Result};
use crate::types::{ByteRange, Sha1Hex};

const BACKEND: &str = "s3";

#[derive(Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    s3: AmazonS3,
    config: S3Config,
    /// Manifests of REST uploads never change after `stage_begin`; cache the few in flight.
    manifests: Mutex<HashMap<String, Manifest>>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn os_err(e: object_store::Error) -> Error {
    Error::backend(BACKEND, e)
}

fn is_not_found(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::NotFound { .. } => true,
        // radosgw answers NoSuchKey/NoSuchUpload for an aborted or finished multipart upload
        // with statuses object_store does not map to NotFound in every call.
        other => {
            let text = other.to_string();
            text.contains("NoSuchUpload") || text.contains("NoSuchKey")
        }
    }
}

/// The endpoint object_store is given: as configured for path-style requests; for
/// virtual-hosted style (Aliyun OSS) with the bucket in the host name, as object_store expects
/// it there (`http://oss-cn-hangzhou.aliyuncs.com` and bucket `b` → `http://b.oss-cn-hangzhou…`).
fn bucket_endpoint(config: &S3Config) -> String {
    let endpoint = config.endpoint.trim_end_matches('/');
    if !config.virtual_hosted {
        return endpoint.to_owned();
    }
    let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    if host.starts_with(&format!("{}.", config.bucket)) {
        return endpoint.to_owned(); // already the bucket's own endpoint
    }
    format!("{scheme}://{}.{host}", config.bucket)
}

impl S3BlobStore {
    pub fn new(name: impl Into<String>, config: S3Config) -> Result<Self> {
        if config.bucket.is_empty() {
            return Err(Error::invalid("store", "bucket name is empty"));
        }
        if config.buffer_part_size < config.min_part_size {
            return Err(Error::invalid(
                "store",
                "buffer part size is below the store's minimum part size",
            ));
        }
        let s3 = AmazonS3Builder::new()
            .with_endpoint(bucket_endpoint(&config))
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_virtual_hosted_style_request(config.virtual_hosted)
            .with_allow_http(config.endpoint.starts_with("http://"))
            // Fail within seconds rather than minutes when the store is away: requests are
            // retried by the client (and whole uploads by theirs), readiness must answer.
            .with_retry(object_store::RetryConfig {
                backoff: Default::default(),
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(20),
            })
            .build()
            .map_err(os_err)?;
        Ok(S3BlobStore {
            inner: Arc::new(Inner {
                name: name.into(),
                s3,
                config,
                manifests: Mutex::default(),
            }),
        })
    }

    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    fn path(&self, rest: &str) -> Path {
        if self.inner.config.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.inner.config.prefix))
        }
    }

    /// Keys this store hands out: `blobs/` and 32 hex digits, nothing else.
    fn blob_path(&self, key: &str) -> Result<Path> {
        let ok = key
            .strip_prefix("blobs/")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(Error::backend(BACKEND, format!("foreign key {key:?}")));
        }
        Ok(self.path(key))
    }

    fn new_key() -> String {
        format!("blobs/{}", hex::encode(rand::random::<[u8; 16]>()))
    }

    async fn delete_quietly(&self, path: &Path) -> Result<()> {
        match self.inner.s3.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(os_err(e)),
        }
    }

    /// A URL that fetches `key` straight from the store until `ttl` passes, with the given
    /// `Content-Disposition` on the response.
    pub async fn presign(&self, key: &str, disposition: &str, ttl: Duration) -> Result<String> {
        let opts =
            SignedUrlOptions::new().with_query([("response-content-disposition", disposition)]);
        let url = self
            .inner
            .s3
            .signed_url_opts(Method::GET, &self.blob_path(key)?, ttl, &opts)
            .await
            .map_err(os_err)?;
        Ok(url.to_string())
    }

    /// Every key under this store's `blobs/` (tests and audits).
    pub async fn list_keys(&self) -> Result<Vec<String>> {
        Ok(self
            .list_blobs()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Removes every object under this store's prefix (test clean-up).
    pub async fn remove_everything(&self) -> Result<usize> {
        let prefix = if self.inner.config.prefix.is_empty() {
            None
        } else {
            Some(Path::from(self.inner.config.prefix.as_str()))
        };
        let metas: Vec<_> = self
            .inner
            .s3
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(os_err)?;
        for m in &metas {
            self.inner.s3.delete(&m.location).await.map_err(os_err)?;
        }
        Ok(metas.len())
    }

    /// Number of objects under the prefix (staging manifests included).
    pub async fn count_objects(&self) -> Result<usize> {
        let prefix = Path::from(self.inner.config.prefix.as_str());
        let n = self
            .inner
            .s3
            .list(Some(&prefix))
            .try_fold(0usize, |n, _| async move { Ok(n + 1) })
            .await
            .map_err(os_err)?;
        Ok(n)
    }

    /// Streams `body` into `key` in parts of `buffer_part_size`; a body smaller than one part
    /// goes up in a single PUT. Returns the size.
    async fn write_object(&self, key: &str, mut body: ByteStream) -> Result<u64> {
        let path = self.blob_path(key)?;
        let part = self.inner.config.buffer_part_size as usize;
        let mut buf = PartBuffer::default();
        let mut total = 0u64;
        let mut upload: Option<(String, Vec<PartId>)> = None;
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(Error::Incomplete)?;
                total += chunk.len() as u64;
                buf.push(chunk);
                while buf.len() >= part {
                    let payload = buf.take(part);
                    if upload.is_none() {
                        let id = self
                            .inner
                            .s3
                            .create_multipart(&path)
                            .await
                            .map_err(os_err)?;
                        upload = Some((id, Vec::new()));
                    }
                    let (id, parts) = upload.as_mut().expect("created above");
                    let p = self
                        .inner
                        .s3
                        .put_part(&path, id, parts.len(), payload)
                        .await
                        .map_err(os_err)?;
                    parts.push(p);
                }
            }
            Ok(())
        }
        .await;
        match (result, upload) {
            (Ok(()), None) => {
                let payload = buf.take(buf.len());
                self.inner.s3.put(&path, payload).await.map_err(os_err)?;
                Ok(total)
            }
            (Ok(()), Some((id, mut parts))) => {
                if buf.len() > 0 {
                    let payload = buf.take(buf.len());
                    let p = self
                        .inner
                        .s3
                        .put_part(&path, &id, parts.len(), payload)
                        .await;
                    match p {
                        Ok(p) => parts.push(p),
                        Err(e) => {
                            let _ = self.inner.s3.abort_multipart(&path, &id).await;
                            return Err(os_err(e));
                        }
                    }
                }
                if let Err(e) = self.inner.s3.complete_multipart(&path, &id, parts).await {
                    let _ = self.inner.s3.abort_multipart(&path, &id).await;
                    return Err(os_err(e));
                }
                Ok(total)
            }
            (Err(e), upload) => {
                if let Some((id, _)) = upload {
                    if let Err(abort) = self.inner.s3.abort_multipart(&path, &id).await {
                        tracing::warn!(error = %abort, key, "could not abort a multipart upload");
                    }
                }
                Err(e)
            }
        }
    }
}

/// Chunks held until a part is full; taking a part hands the chunks over without copying
/// (only a chunk straddling the boundary is split, which `Bytes` does without copying too).
#[derive(Default)]
struct PartBuffer {
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl PartBuffer {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b);
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn take(&mut self, mut n: usize) -> PutPayload {
        let mut out = Vec::new();
        while n > 0 {
            let mut c = self.chunks.pop_front().expect("take within len");
            if c.len() > n {
                let rest = c.split_off(n);
                self.chunks.push_front(rest);
            }
            n -= c.len();
            self.len -= c.len();
            out.push(c);
        }
        out.into_iter().collect()
    }
}

struct S3Pending {
    store: S3BlobStore,
    key: Option<String>,
    size: u64,
}

impl Drop for S3Pending {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let store = self.store.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = store.delete(&key).await {
                        tracing::warn!(error = %e, key, "could not remove an abandoned blob");
                    }
                });
            }
        }
    }
}

#[async_trait]
impl PendingBlob for S3Pending {
    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>, _sha1: &Sha1Hex) -> Result<String> {
        // The object was written under its final (random) key; committing only disarms the
        // removal on drop.
        Ok(self.key.take().expect("armed until commit"))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn ping(&self) -> Result<()> {
        self.inner
            .s3
            .list_with_delimiter(Some(&self.path("blobs")))
            .await
            .map(|_| ())
            .map_err(os_err)
    }

    async fn put_pending(&self, body: ByteStream) -> Result<Box<dyn PendingBlob>> {
        let key = Self::new_key();
        let size = self.write_object(&key, body).await?;
        Ok(Box::new(S3Pending {
            store: self.clone(),
            key: Some(key),
            size,
        }))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let path = self.blob_path(key)?;
        if range.is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end)),
            ..Default::default()
        };
        let res = match self.inner.s3.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Err(Error::NotFound { what: "blob" }),
            Err(e) => return Err(os_err(e)),
        };
        Ok(res
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.s3.delete(&self.blob_path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(os_err(e)),
        }
    }

    async fn quarantine(&self, key: &str) -> Result<String> {
        let from = self.blob_path(key)?;
        let place = super::quarantine_name(key);
        self.inner
            .s3
            .copy(&from, &self.path(&place))
            .await
            .map_err(os_err)?;
        self.delete(key).await?;
        Ok(place)
    }

    async fn list_blobs(&self) -> Result<Vec<(String, i64)>> {
        let prefix = self.path("blobs");
        let strip = if self.inner.config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.inner.config.prefix)
        };
        let metas: Vec<_> = self
            .inner
            .s3
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(os_err)?;
        Ok(metas
            .into_iter()
            .map(|m| {
                (
                    m.location.as_ref().trim_start_matches(&strip).to_owned(),
                    m.last_modified.timestamp_millis(),
                )
            })
            .collect())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.inner.s3.head(&self.blob_path(key)?).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(os_err(e)),
        }
    }

    async fn presigned_get(
        &self,
        key: &str,
        disposition: &str,
        ttl: Duration,
    ) -> Result<Option<String>> {
        self.presign(key, disposition, ttl).await.map(Some)
    }
}

mod config;
mod staging;

pub use config::{S3Config, OSS_MIN_PART, S3_MIN_PART};

use staging::Manifest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_buffer_splits_without_losing_bytes() {
        let mut b = PartBuffer::default();
        b.push(Bytes::from_static(b"hello "));
        b.push(Bytes::from_static(b"world"));
        let first: Vec<u8> = b.take(8).into_iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(first, b"hello wo");
        assert_eq!(b.len(), 3);
        let rest: Vec<u8> = b.take(3).into_iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(rest, b"rld");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn virtual_hosted_requests_carry_the_bucket_in_the_host() {
        let mut c = S3Config {
            endpoint: "https://oss-cn-hangzhou.aliyuncs.com/".into(),
            region: "oss-cn-hangzhou".into(),
            bucket: "files".into(),
            prefix: String::new(),
            virtual_hosted: true,
            access_key: "a".into(),
            secret_key: "s".into(),
            min_part_size: 100 * 1024,
            buffer_part_size: 8 << 20,
        };
        assert_eq!(
            bucket_endpoint(&c),
            "https://files.oss-cn-hangzhou.aliyuncs.com"
        );
        c.endpoint = "https://files.oss-cn-hangzhou.aliyuncs.com".into();
        assert_eq!(
            bucket_endpoint(&c),
            "https://files.oss-cn-hangzhou.aliyuncs.com"
        );
        c.virtual_hosted = false;
        c.endpoint = "http://127.0.0.1:7480/".into();
        assert_eq!(bucket_endpoint(&c), "http://127.0.0.1:7480");
    }

    #[test]
    fn debug_output_hides_credentials() {
        let c = S3Config {
            endpoint: "http://127.0.0.1:7480".into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: String::new(),
            virtual_hosted: false,
            access_key: "AKIDSECRET".into(),
            secret_key: "VERYSECRET".into(),
            min_part_size: S3_MIN_PART,
            buffer_part_size: 8 << 20,
        };
        let s = format!("{c:?}");
        assert!(
            !s.contains("AKIDSECRET") && !s.contains("VERYSECRET"),
            "{s}"
        );
    }
}
