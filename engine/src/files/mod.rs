//! Files: the users' files over the dedup index — lookups, listing, rename, delete and the
//! blob GC, publishing verified content (`publish.rs`), downloads and signed links
//! (`download.rs`). Over the metadata store's file index, blobs and verdicts, and every
//! configured blob store by name.

mod download;
mod publish;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use download::Download;
pub use publish::CollisionScan;
pub(crate) use publish::TransferPlan;

use crate::auth;
use crate::blobs::{BlobStaging, BlobStore};
use crate::error::{Error, Result};
use crate::meta::{self, FileIndex, FileQuery, ProofStore, UserFile};
use crate::stats::Stats;
use crate::types::{now_millis, FileId, FileName, Sha1Hex};
use crate::{EngineConfig, User};

/// The shortest lifetime a share link may be asked for.
pub const MIN_LINK_TTL: Duration = Duration::from_secs(60);
/// The longest: a week, the most an S3 presigned URL can live.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Query string of a signed download link (`auth::SIGNED_DOWNLOAD_PATH`).
#[derive(Clone, Debug)]
pub struct SignedLink {
    pub file: FileId,
    /// Unix seconds.
    pub expires: i64,
    pub signature: String,
}

#[derive(Debug)]
pub struct Files {
    index: Arc<dyn FileIndex>,
    /// Where new uploads land (and are staged).
    upload_store: Arc<dyn BlobStaging>,
    /// Every configured store by name (the upload store included): blobs record theirs.
    stores: BTreeMap<String, Arc<dyn BlobStore>>,
    url_key: Vec<u8>,
    download_url_ttl: Duration,
    user_quota: Option<u64>,
    transfers: Option<TransferPlan>,
    stats: Arc<Stats>,
    /// Collision verdicts: at first share, or in the background once content is new.
    scanner: Arc<publish::Scanner>,
    collision_scan: CollisionScan,
}

impl Files {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: Arc<dyn FileIndex>,
        proofs: Arc<dyn ProofStore>,
        upload_store: Arc<dyn BlobStaging>,
        stores: BTreeMap<String, Arc<dyn BlobStore>>,
        url_key: Vec<u8>,
        config: &EngineConfig,
        transfers: Option<TransferPlan>,
        stats: Arc<Stats>,
    ) -> Self {
        let scanner = Arc::new(publish::Scanner::new(
            index.clone(),
            proofs,
            stores.clone(),
            stats.clone(),
        ));
        Files {
            index,
            upload_store,
            stores,
            url_key,
            download_url_ttl: config.download_url_ttl,
            user_quota: config.user_quota,
            transfers,
            stats,
            scanner,
            collision_scan: config.collision_scan,
        }
    }

    /// A configured store by name.
    pub(crate) fn store(&self, name: &str) -> Result<&Arc<dyn BlobStore>> {
        self.stores
            .get(name)
            .ok_or_else(|| Error::backend("blob", format!("blob is in unconfigured store {name}")))
    }

    /// Whether a store of this name is configured.
    pub fn has_store(&self, name: &str) -> bool {
        self.stores.contains_key(name)
    }

    /// Where new uploads land.
    pub(crate) fn upload_store(&self) -> &Arc<dyn BlobStaging> {
        &self.upload_store
    }

    /// The caller's file with this content (`id` picks one when the caller holds the content
    /// under several names; otherwise the newest). Another user's file is `NotFound`.
    pub async fn file(&self, user: &User, sha1: &Sha1Hex, id: Option<&FileId>) -> Result<UserFile> {
        self.index
            .user_file(user.id, sha1, id)
            .await?
            .ok_or(Error::NotFound { what: "file" })
    }

    /// The caller's file with this id; another user's file is `NotFound` (ids reveal nothing).
    pub async fn file_by_id(&self, user: &User, id: &FileId) -> Result<UserFile> {
        match self.index.user_file_by_id(id).await? {
            Some(f) if f.user_id == user.id => Ok(f),
            _ => Err(Error::NotFound { what: "file" }),
        }
    }

    /// The name of the store holding `file`'s bytes.
    pub async fn store_of(&self, file: &UserFile) -> Result<String> {
        Ok(self.blob_of(file).await?.store)
    }

    pub async fn list_files(&self, user: &User, query: &FileQuery) -> Result<Vec<UserFile>> {
        if query.after.as_ref().is_some_and(|c| c.order != query.order) {
            return Err(Error::invalid(
                "after",
                "comes from a listing in another order (keep its sort)",
            ));
        }
        self.index.list_user_files(user.id, query).await
    }

    pub async fn rename(&self, user: &User, file: &UserFile, new_name: &str) -> Result<UserFile> {
        let name = FileName::parse(new_name)?;
        self.index
            .rename_user_file(user.id, &file.id, &name, now_millis())
            .await
    }

    /// Deletes the user's file; the blob goes when no user file references it any more.
    pub async fn delete(&self, user: &User, file: &UserFile) -> Result<()> {
        if let Some(entry) = self.index.delete_user_file(user.id, &file.id).await? {
            self.collect(entry).await;
        }
        Ok(())
    }

    /// Deletes one queued blob; whether it is gone. On failure it stays queued, moved to the
    /// back of the queue, for a later sweep.
    async fn collect(&self, entry: meta::GcEntry) -> bool {
        let res = match self.store(&entry.store) {
            Ok(store) => match store.delete(&entry.key).await {
                Ok(()) => self.index.gc_done(&entry).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let Err(e) = res else { return true };
        tracing::warn!(error = %e, store = entry.store, key = entry.key, "blob deletion deferred");
        if let Err(e) = self.index.gc_later(&entry, now_millis()).await {
            tracing::warn!(error = %e, key = entry.key, "could not requeue a deferred blob deletion");
        }
        false
    }

    /// Deletes the blobs queued for deletion (after a crash, or a failed delete), a paced batch
    /// at a time (see `db::pace`), oldest first, until the queue is empty or a batch had a
    /// deferred entry. A deferred entry goes to the back of the queue, so the next sweep starts
    /// with the entries behind it: however many cannot be deleted, the others are reached. A
    /// store that is down costs one batch per sweep, never a loop.
    pub async fn collect_garbage(&self) -> Result<()> {
        const BATCH: u32 = 1000;
        loop {
            let started = std::time::Instant::now();
            let batch = self.index.gc_pending(BATCH).await?;
            let (queued, mut done) = (batch.len(), 0);
            for entry in batch {
                done += usize::from(self.collect(entry).await);
            }
            if queued < BATCH as usize || done < queued {
                return Ok(());
            }
            crate::db::pace(started).await;
        }
    }

    /// Blobs held in store `store`, by SHA1 after `after`, at most `limit` (for migrations
    /// and checks that walk a store).
    pub async fn blobs_in_store(
        &self,
        store: &str,
        after: Option<&Sha1Hex>,
        limit: u32,
    ) -> Result<Vec<meta::BlobRecord>> {
        self.index.blobs_in_store(store, after, limit).await
    }

    /// Whether a blob row names `key` in `store`.
    pub(crate) async fn blob_at(&self, store: &str, key: &str) -> Result<bool> {
        self.index.blob_by_key(store, key).await
    }

    pub(crate) async fn blob_of(&self, file: &UserFile) -> Result<meta::BlobRecord> {
        let blob = self
            .index
            .blob(&file.sha1)
            .await?
            .ok_or_else(|| Error::backend("sql", "user file without a blob"))?;
        if blob.quarantined {
            // Its bytes were wrong and are set aside until someone uploads the content again.
            return Err(Error::NotFound { what: "blob" });
        }
        Ok(blob)
    }

    /// How long a share link lives: `asked` seconds (from a minute to a week: S3 cannot sign a
    /// URL for longer), or the configured download-link lifetime.
    pub fn link_ttl(&self, asked: Option<u64>) -> Result<Duration> {
        match asked {
            None => Ok(self.download_url_ttl),
            Some(s) if (MIN_LINK_TTL.as_secs()..=MAX_LINK_TTL.as_secs()).contains(&s) => {
                Ok(Duration::from_secs(s))
            }
            Some(_) => Err(Error::invalid(
                "expires_in",
                format!(
                    "must be {} to {} seconds",
                    MIN_LINK_TTL.as_secs(),
                    MAX_LINK_TTL.as_secs()
                ),
            )),
        }
    }

    /// A link that downloads `file` without a token for `ttl` (see [`Files::link_ttl`]).
    pub fn sign_link(&self, file: &UserFile, ttl: Duration) -> SignedLink {
        let expires = now_millis() / 1000 + ttl.as_secs() as i64;
        SignedLink {
            file: file.id.clone(),
            expires,
            signature: auth::sign_download(&self.url_key, &file.id, file.user_id, expires),
        }
    }

    /// The file a signed link names; `BadSignature` if tampered with or expired at `now_secs`.
    pub async fn open_link(&self, link: &SignedLink, now_secs: i64) -> Result<UserFile> {
        if link.expires <= now_secs {
            return Err(Error::BadSignature);
        }
        let file = self.index.user_file_by_id(&link.file).await?;
        match file {
            Some(f)
                if auth::verify_download(
                    &self.url_key,
                    &f.id,
                    f.user_id,
                    link.expires,
                    &link.signature,
                ) =>
            {
                Ok(f)
            }
            // Unknown id and a bad signature look the same: the link reveals nothing.
            _ => Err(Error::BadSignature),
        }
    }
}
