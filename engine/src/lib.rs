//! ChunkVault's engine: users, the dedup index, blob and metadata stores, uploads and downloads.
//! No HTTP types live here; the server translates requests into these calls.
#![forbid(unsafe_code)]

pub mod auth;
pub mod blobs;
pub mod collision;
pub mod db;
pub mod error;
pub mod fsck;
pub mod meta;
pub mod sessions;
pub mod stats;
pub mod transfer;
pub mod types;
pub mod uploads;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sha1::{Digest, Sha1};

pub use blobs::{BlobStore, ByteStream, LocalBlobStore};
pub use error::{Error, Result};
pub use meta::{MetaStore, SqlMetaStore, UserFile};
pub use sessions::{RedisSessionStore, SessionStore, SqlSessionStore};
pub use types::{
    ByteRange, FileId, FileName, Millis, RangeRequest, Sha1Hex, UploadId, UserId, Username,
};
pub use uploads::{InitOutcome, InitRequest, PartDigest, UploadStatus};

use meta::{NewBlob, NewUserFile, Published};
use types::now_millis;

/// Engine settings, validated by the caller.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
    /// How long a sign-in token lives.
    pub token_ttl: Duration,
    /// How long a signed download link lives.
    pub download_url_ttl: Duration,
    /// How long an upload session lives after its last activity.
    pub upload_ttl: Duration,
    /// Instant upload: proof of ownership (default), trusted, or off.
    pub instant_mode: uploads::proof::InstantMode,
    /// Open upload sessions a user may have at once.
    pub max_sessions_per_user: u64,
    /// Bytes a user's files may add up to (`None`: no quota).
    pub user_quota: Option<u64>,
    /// Upload bodies (parts, whole files, tus appends) one user may send to this node at once.
    pub max_uploads_in_flight_per_user: u64,
    /// How long one tus PATCH holds its upload's writer lock.
    pub tus_lock_lease: Duration,
    /// Sign-ups one client address may make per period (`None`: unlimited).
    pub signup_rate: Option<(u64, Duration)>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_file_size: 64 << 30,
            token_ttl: Duration::from_secs(7 * 24 * 3600),
            download_url_ttl: Duration::from_secs(3600),
            upload_ttl: Duration::from_secs(24 * 3600),
            instant_mode: uploads::proof::InstantMode::Proof,
            max_sessions_per_user: 100,
            user_quota: None,
            max_uploads_in_flight_per_user: 32,
            tus_lock_lease: Duration::from_secs(15 * 60),
            signup_rate: Some((20, Duration::from_secs(3600))),
        }
    }
}

/// A signed-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub created_at: Millis,
    pub last_active_at: Millis,
}

/// A token handed out at sign-in.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub user: User,
    pub token: String,
    pub expires_at: Millis,
}

/// The bytes of a user file, or of one range of it.
pub struct Download {
    pub file: UserFile,
    /// `Some` for a range request; the stream then carries only those bytes.
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

/// Sets aside a blob whose stored bytes do not hash to its SHA1 (`Engine::quarantine`).
async fn quarantine(
    meta: &dyn MetaStore,
    store: &dyn BlobStore,
    stats: &stats::Stats,
    blob: &meta::BlobRecord,
    found_by: &str,
) -> Result<()> {
    if !meta.quarantine_blob(&blob.sha1, &blob.key).await? {
        return Ok(()); // moved on meanwhile (replaced, or quarantined by someone else)
    }
    stats::Stats::inc(&stats.quarantined);
    match store.quarantine(&blob.key).await {
        Ok(place) => tracing::error!(
            sha1 = %blob.sha1, store = %blob.store, key = %blob.key, place, found_by,
            "stored content does not hash to its SHA1: quarantined"
        ),
        Err(e) => tracing::error!(
            sha1 = %blob.sha1, store = %blob.store, key = %blob.key, found_by, error = %e,
            "stored content does not hash to its SHA1: out of dedup, but its bytes could not be moved aside"
        ),
    }
    Ok(())
}

/// A whole blob's bytes, hashed as they pass; the last chunk is held back until the SHA1 is
/// known. Bytes that do not hash to the blob's SHA1 are never delivered whole: the stream ends
/// with an error instead of its last chunk (the client sees a cut-off download, not a
/// complete wrong one), and the blob is quarantined.
fn verified(
    body: ByteStream,
    blob: meta::BlobRecord,
    meta: Arc<dyn MetaStore>,
    store: Arc<dyn BlobStore>,
    stats: Arc<stats::Stats>,
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
        (st, blob, meta, store, stats),
        |(mut st, blob, meta, store, stats)| async move {
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
                            return Some((Ok(prev), (st, blob, meta, store, stats)));
                        }
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(e), (st, blob, meta, store, stats)));
                    }
                    None => {
                        st.done = true;
                        let got = Sha1Hex::from_digest(&st.hasher.clone().finalize().into());
                        if got == blob.sha1 && st.len == blob.size {
                            let last = st.held.take()?;
                            return Some((Ok(last), (st, blob, meta, store, stats)));
                        }
                        if let Err(e) = quarantine(&*meta, &*store, &stats, &blob, "download").await
                        {
                            tracing::error!(sha1 = %blob.sha1, error = %e, "could not quarantine");
                        }
                        let err = io::Error::other("stored content does not hash to its SHA1");
                        return Some((Err(err), (st, blob, meta, store, stats)));
                    }
                }
            }
        },
    )
    .boxed()
}

/// Query string of a signed download link (`auth::SIGNED_DOWNLOAD_PATH`).
#[derive(Clone, Debug)]
pub struct SignedLink {
    pub file: FileId,
    /// Unix seconds.
    pub expires: i64,
    pub signature: String,
}

#[derive(Debug)]
pub struct Engine {
    meta: Arc<dyn MetaStore>,
    /// Where new uploads land.
    blobs: Arc<dyn BlobStore>,
    /// Every configured store by name (the upload store included): blobs record theirs.
    stores: std::collections::BTreeMap<String, Arc<dyn BlobStore>>,
    sessions: Arc<dyn SessionStore>,
    config: EngineConfig,
    url_key: Vec<u8>,
    /// Sessions whose hash this process is advancing right now.
    advancing: Mutex<std::collections::HashSet<UploadId>>,
    transfers: Option<Transfers>,
    stats: Arc<stats::Stats>,
    /// Collision scans, striped by SHA1: claims of one unchecked blob wait for the first
    /// scan's verdict instead of each reading the blob; other blobs are scanned meanwhile.
    scanning: [tokio::sync::Mutex<()>; 16],
    /// Upload bodies being received on this node, per user.
    in_flight: Arc<Mutex<std::collections::HashMap<UserId, u64>>>,
}

/// A user's upload body being received; frees its slot when dropped.
#[derive(Debug)]
pub(crate) struct UploadSlot {
    user: UserId,
    in_flight: Arc<Mutex<std::collections::HashMap<UserId, u64>>>,
    stats: Arc<stats::Stats>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut map = self.in_flight.lock().expect("in-flight lock");
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
        self.stats
            .uploads_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where new blobs move after upload.
#[derive(Debug)]
struct Transfers {
    queue: Arc<dyn transfer::TransferQueue>,
    to: String,
    after: Duration,
}

impl Engine {
    /// Builds an engine over its stores. The key for signed links is created once and shared
    /// through the metadata store, so every node accepts every node's links.
    pub async fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        sessions: Arc<dyn SessionStore>,
        config: EngineConfig,
    ) -> Result<Self> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        let key = meta.setting_or_init("download_url_key", &fresh).await?;
        let url_key = hex::decode(key).map_err(|e| Error::backend("sql", e))?;
        let stores = [(blobs.name().to_owned(), blobs.clone())].into();
        Ok(Engine {
            meta,
            stores,
            blobs,
            sessions,
            config,
            url_key,
            advancing: Mutex::default(),
            transfers: None,
            stats: Arc::default(),
            scanning: Default::default(),
            in_flight: Arc::default(),
        })
    }

    /// Adds stores that hold older blobs or receive transfers (names must be unique).
    pub fn with_stores(mut self, others: Vec<Arc<dyn BlobStore>>) -> Result<Self> {
        for s in others {
            if self.stores.insert(s.name().to_owned(), s.clone()).is_some() {
                return Err(Error::invalid(
                    "store",
                    format!("store {} named twice", s.name()),
                ));
            }
        }
        Ok(self)
    }

    /// The engine's counters (for metrics).
    pub fn stats(&self) -> &stats::Stats {
        &self.stats
    }

    /// Asks every configured dependency whether it answers: the metadata database, the
    /// session store and each blob store, by name.
    pub async fn readiness(&self) -> Vec<(String, Result<()>)> {
        let mut out = vec![
            ("database".to_owned(), self.meta.ping().await),
            ("sessions".to_owned(), self.sessions.ping().await),
        ];
        for (name, store) in &self.stores {
            out.push((format!("store {name}"), store.ping().await));
        }
        out
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    // ---- users -------------------------------------------------------------------------------

    /// Creates an account. `client` is the client's address (the socket peer, or the address a
    /// trusted proxy forwarded): sign-ups are limited per address (`signup_rate`).
    pub async fn signup(&self, username: &str, password: &str, client: &str) -> Result<UserId> {
        let username = Username::parse(username)?;
        auth::check_password_policy(password)?;
        let now = now_millis();
        if let Some((max, per)) = self.config.signup_rate {
            let since = now - per.as_millis() as i64;
            if self.meta.events_since("signup", client, since).await? >= max {
                return Err(Error::TooManyRequests {
                    retry_after: per.as_secs().max(1),
                });
            }
        }
        let hash = auth::hash_password(password.to_owned()).await?;
        let id = self.meta.create_user(&username, &hash, now).await?;
        self.meta.record_event("signup", client, now).await?;
        Ok(id)
    }

    /// Signs in. Failures throttle the client address that makes them (per username, and
    /// overall), never the account: the right password from another address is accepted
    /// while an attacker keeps failing.
    pub async fn signin(&self, username: &str, password: &str, client: &str) -> Result<SignIn> {
        let per_name = format!("{client} {}", username.chars().take(64).collect::<String>());
        let now = now_millis();
        let since = now - SIGNIN_WINDOW.as_millis() as i64;
        if self
            .meta
            .events_since("signin-fail", &per_name, since)
            .await?
            >= SIGNIN_MAX_FAILURES
            || self.meta.events_since("signin-fail", client, since).await?
                >= SIGNIN_MAX_ADDRESS_FAILURES
        {
            return Err(Error::TooManyRequests {
                retry_after: SIGNIN_WINDOW.as_secs(),
            });
        }
        // Same answer for an unknown user and a wrong password; hash anyway so both take as long.
        let record = self.meta.user_by_name(username).await?;
        let (hash, record) = match record {
            Some(r) => (r.password_hash.clone(), Some(r)),
            None => (DUMMY_HASH.to_owned(), None),
        };
        let ok = auth::verify_password(password.to_owned(), hash).await?;
        let record = match (ok, record) {
            (true, Some(r)) => r,
            _ => {
                self.meta
                    .record_event("signin-fail", &per_name, now)
                    .await?;
                self.meta.record_event("signin-fail", client, now).await?;
                return Err(Error::BadCredentials);
            }
        };
        let now = now_millis();
        let token = auth::new_token();
        let expires_at = now.saturating_add(self.config.token_ttl.as_millis() as i64);
        self.meta
            .insert_token(&auth::token_hash(&token)?, record.id, now, expires_at)
            .await?;
        self.meta.touch_user(record.id, now).await?;
        Ok(SignIn {
            user: User {
                id: record.id,
                username: record.username,
                created_at: record.created_at,
                last_active_at: now,
            },
            token,
            expires_at,
        })
    }

    /// The user a token belongs to; `Unauthenticated` for anything but a live token.
    pub async fn authenticate(&self, token: &str) -> Result<User> {
        let hash = auth::token_hash(token)?;
        let id = self
            .meta
            .token_user(&hash, now_millis())
            .await?
            .ok_or(Error::Unauthenticated)?;
        let record = self
            .meta
            .user_by_id(id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(User {
            id: record.id,
            username: record.username,
            created_at: record.created_at,
            last_active_at: record.last_active_at,
        })
    }

    /// Revokes a token (idempotent for a token that was valid a moment ago).
    pub async fn signout(&self, token: &str) -> Result<()> {
        let hash = auth::token_hash(token)?;
        self.meta.delete_token(&hash).await?;
        Ok(())
    }

    // ---- files -------------------------------------------------------------------------------

    /// Stores `body` as the user's file `name`. The bytes are hashed on the way to the store
    /// and never held in memory whole; content the store already holds is not kept twice.
    /// Nothing is recorded unless the whole body arrived and was stored.
    pub async fn upload(&self, user: &User, name: &str, body: ByteStream) -> Result<UserFile> {
        let _slot = self.upload_slot(user)?;
        let name = FileName::parse(name)?;
        let limit = self.config.max_file_size;
        let state = Arc::new(Mutex::new(HashState {
            hasher: Sha1::new(),
            len: 0,
            too_large: false,
        }));
        let tap = state.clone();
        let body = body
            .map(move |chunk| {
                let chunk = chunk?;
                let mut s = tap.lock().expect("hash state lock");
                s.len += chunk.len() as u64;
                if s.len > limit {
                    s.too_large = true;
                    return Err(io::Error::other("file too large"));
                }
                s.hasher.update(&chunk);
                Ok(chunk)
            })
            .boxed();
        let pending = match self.blobs.put_pending(body).await {
            Ok(p) => p,
            Err(e) => {
                return Err(if state.lock().expect("hash state lock").too_large {
                    Error::TooLarge { limit }
                } else {
                    e
                })
            }
        };
        let (sha1, size) = {
            let s = state.lock().expect("hash state lock");
            (
                Sha1Hex::from_digest(&s.hasher.clone().finalize().into()),
                s.len,
            )
        };
        debug_assert_eq!(size, pending.size());
        self.check_quota(user.id, size).await?;
        let file = NewUserFile::new(user.id, sha1.clone(), name, size, now_millis());
        let shareable = match self.meta.blob(&sha1).await? {
            Some(blob) => self.ensure_shareable(&blob).await?,
            None => false,
        };
        // Content already indexed: link to it and drop our copy (the pending blob cleans up).
        if shareable {
            if let Some(existing) = self.meta.link_existing(&file).await? {
                return Ok(existing);
            }
        }
        let key = pending.commit(&sha1).await?;
        self.publish(key, &file).await
    }

    /// Takes one of the user's slots for receiving an upload body on this node (429 when they
    /// all are taken: a client cannot tie up the server with unbounded parallel uploads).
    pub(crate) fn upload_slot(&self, user: &User) -> Result<UploadSlot> {
        let limit = self.config.max_uploads_in_flight_per_user;
        let mut map = self.in_flight.lock().expect("in-flight lock");
        let n = map.entry(user.id).or_insert(0);
        if *n >= limit {
            return Err(Error::LimitReached {
                what: "concurrent uploads",
                limit,
            });
        }
        *n += 1;
        self.stats
            .uploads_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(UploadSlot {
            user: user.id,
            in_flight: self.in_flight.clone(),
            stats: self.stats.clone(),
        })
    }

    /// Refuses content that would take the user's files past their quota.
    pub(crate) async fn check_quota(&self, user: UserId, adding: u64) -> Result<()> {
        if let Some(quota) = self.config.user_quota {
            let used = self.meta.user_usage(user).await?;
            if used.saturating_add(adding) > quota {
                return Err(Error::QuotaExceeded { quota });
            }
        }
        Ok(())
    }

    /// Publishes verified content that was just written to the upload store under `key`, with
    /// the user's file. When someone published the same content first, theirs is kept and
    /// this copy removed; on failure the copy is removed too.
    pub(crate) async fn publish(&self, key: String, file: &NewUserFile) -> Result<UserFile> {
        let blob = NewBlob::new(self.blobs.name(), key.clone());
        let mut healed = false;
        let published = async {
            if let Some(existing) = self.meta.blob(&file.sha1).await? {
                if !self.ensure_shareable(&existing).await? {
                    // The stored copy was quarantined: these verified bytes replace it, for
                    // every file that refers to the SHA1.
                    healed = self
                        .meta
                        .replace_quarantined(&file.sha1, self.blobs.name(), &key)
                        .await?;
                    if healed {
                        tracing::warn!(sha1 = %file.sha1, key, "quarantined content replaced by a verified upload");
                    }
                }
            }
            self.meta.publish(&blob, file).await
        };
        match published.await {
            Ok(Published::Created(f)) => {
                self.blob_created(&f.sha1).await;
                Ok(f)
            }
            Ok(Published::Deduplicated(f)) if healed => Ok(f),
            Ok(Published::Deduplicated(f)) => {
                self.blobs.delete(&key).await?;
                // Someone published the same SHA1 between the check above and ours.
                if let Some(existing) = self.meta.blob(&f.sha1).await? {
                    if let Err(e) = self.ensure_shareable(&existing).await.and_then(|ok| {
                        ok.then_some(()).ok_or(Error::Busy) // quarantined meanwhile: try again
                    }) {
                        if f.uploaded_at >= file.now {
                            self.meta.delete_user_file(f.user_id, &f.id).await?;
                        }
                        return Err(e);
                    }
                }
                Ok(f)
            }
            Err(e) => {
                if let Err(cleanup) = self.blobs.delete(&key).await {
                    tracing::warn!(error = %cleanup, key, "could not remove unpublished blob");
                }
                Err(e)
            }
        }
    }

    /// Content with this SHA1 is about to be shared (an instant upload, or an upload of content
    /// the store already holds): refused when its stored bytes carry a SHA1 collision attack.
    /// The stored blob is read once per SHA1; the verdict (about collision attacks only) is
    /// kept in the metadata store. `false` when the blob is quarantined (now, because its bytes
    /// turned out not to hash to its SHA1, or before): it is shared with nobody, and the caller
    /// goes on as if the content were not stored.
    pub(crate) async fn ensure_shareable(&self, blob: &meta::BlobRecord) -> Result<bool> {
        if blob.quarantined {
            return Ok(false);
        }
        let collision = match self.meta.blob_check(&blob.sha1).await? {
            Some(verdict) => verdict,
            None => {
                let stripe = usize::from(blob.sha1.as_str().as_bytes()[0]) % 16;
                let _one = self.scanning[stripe].lock().await;
                match self.meta.blob_check(&blob.sha1).await? {
                    Some(verdict) => verdict,
                    None => {
                        let store = self.store(&blob.store)?;
                        match collision::scan(store.as_ref(), &blob.key, &blob.sha1).await? {
                            collision::Scan::Mismatch => {
                                self.quarantine(blob, "collision check").await?;
                                return Ok(false);
                            }
                            scan => {
                                let verdict = scan == collision::Scan::Collision;
                                self.meta
                                    .record_blob_check(&blob.sha1, verdict, now_millis())
                                    .await?;
                                verdict
                            }
                        }
                    }
                }
            }
        };
        if collision {
            tracing::warn!(
                sha1 = %blob.sha1,
                "content carries a SHA1 collision attack: not shared"
            );
            return Err(Error::Sha1Collision);
        }
        Ok(true)
    }

    /// Sets aside a blob whose stored bytes do not hash to its SHA1 (`found_by` says which
    /// check saw it): out of dedup at once, its bytes moved to the store's quarantine for
    /// inspection, logged. The next genuine upload of the SHA1 stores fresh bytes.
    pub async fn quarantine(&self, blob: &meta::BlobRecord, found_by: &str) -> Result<()> {
        let store = self.store(&blob.store)?.clone();
        quarantine(&*self.meta, &*store, &self.stats, blob, found_by).await
    }

    /// New content was published in the upload store: schedule its transfer, if configured.
    async fn blob_created(&self, sha1: &Sha1Hex) {
        let Some(t) = &self.transfers else { return };
        let job = transfer::TransferJob {
            sha1: sha1.clone(),
            to: t.to.clone(),
            attempt: 0,
        };
        if let Err(e) = t.queue.enqueue(&job, t.after).await {
            // The content is safe where it is; only its move is missed.
            tracing::error!(error = %e, sha1 = %sha1, "could not queue the blob's transfer");
        }
    }

    /// Moves every new blob to store `to`, `after` its upload, through `queue`.
    pub fn with_transfers(
        mut self,
        queue: Arc<dyn transfer::TransferQueue>,
        to: &str,
        after: Duration,
    ) -> Result<Self> {
        self.store(to)?;
        if to == self.blobs.name() {
            return Err(Error::invalid(
                "transfer_to",
                "the transfer destination is the upload store",
            ));
        }
        self.transfers = Some(Transfers {
            queue,
            to: to.to_owned(),
            after,
        });
        Ok(self)
    }

    /// The caller's file with this content (`id` picks one when the caller holds the content
    /// under several names; otherwise the newest). Another user's file is `NotFound`.
    pub async fn file(&self, user: &User, sha1: &Sha1Hex, id: Option<&FileId>) -> Result<UserFile> {
        self.meta
            .user_file(user.id, sha1, id)
            .await?
            .ok_or(Error::NotFound { what: "file" })
    }

    /// The caller's file with this id; another user's file is `NotFound` (ids reveal nothing).
    pub async fn file_by_id(&self, user: &User, id: &FileId) -> Result<UserFile> {
        match self.meta.user_file_by_id(id).await? {
            Some(f) if f.user_id == user.id => Ok(f),
            _ => Err(Error::NotFound { what: "file" }),
        }
    }

    /// The name of the store holding `file`'s bytes.
    pub async fn store_of(&self, file: &UserFile) -> Result<String> {
        Ok(self.blob_of(file).await?.store)
    }

    pub async fn list_files(&self, user: &User, limit: u32, offset: u64) -> Result<Vec<UserFile>> {
        self.meta.list_user_files(user.id, limit, offset).await
    }

    pub async fn rename(&self, user: &User, file: &UserFile, new_name: &str) -> Result<UserFile> {
        let name = FileName::parse(new_name)?;
        self.meta
            .rename_user_file(user.id, &file.id, &name, now_millis())
            .await
    }

    /// Deletes the user's file; the blob goes when no user file references it any more.
    pub async fn delete(&self, user: &User, file: &UserFile) -> Result<()> {
        if let Some(entry) = self.meta.delete_user_file(user.id, &file.id).await? {
            self.collect(entry).await;
        }
        Ok(())
    }

    /// Deletes a queued blob from its store; on failure it stays queued for the next sweep.
    async fn collect(&self, entry: meta::GcEntry) {
        let Ok(store) = self.store(&entry.store) else {
            tracing::warn!(
                store = entry.store,
                "blob queued for deletion in an unconfigured store"
            );
            return;
        };
        let res = match store.delete(&entry.key).await {
            Ok(()) => self.meta.gc_done(&entry).await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, key = entry.key, "blob deletion deferred");
        }
    }

    /// Deletes every blob still queued for deletion (after a crash, or a failed delete).
    pub async fn collect_garbage(&self) -> Result<()> {
        for entry in self.meta.gc_pending(1000).await? {
            self.collect(entry).await;
        }
        Ok(())
    }

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
                        self.meta.clone(),
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

    async fn blob_of(&self, file: &UserFile) -> Result<meta::BlobRecord> {
        let blob = self
            .meta
            .blob(&file.sha1)
            .await?
            .ok_or_else(|| Error::backend("sql", "user file without a blob"))?;
        if blob.quarantined {
            // Its bytes were wrong and are set aside until someone uploads the content again.
            return Err(Error::NotFound { what: "blob" });
        }
        Ok(blob)
    }

    /// A configured store by name.
    pub fn store(&self, name: &str) -> Result<&Arc<dyn BlobStore>> {
        self.stores
            .get(name)
            .ok_or_else(|| Error::backend("blob", format!("blob is in unconfigured store {name}")))
    }

    /// A URL that downloads `file` straight from its store (S3 presigned GET) with
    /// `disposition` as the response's `Content-Disposition`; `None` when the store cannot
    /// sign URLs.
    pub async fn presigned_url(
        &self,
        file: &UserFile,
        disposition: &str,
    ) -> Result<Option<String>> {
        let blob = self.blob_of(file).await?;
        self.store(&blob.store)?
            .presigned_get(&blob.key, disposition, self.config.download_url_ttl)
            .await
    }

    /// A link that downloads `file` without a token until it expires.
    pub fn sign_link(&self, file: &UserFile) -> SignedLink {
        let expires = now_millis() / 1000 + self.config.download_url_ttl.as_secs() as i64;
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
        let file = self.meta.user_file_by_id(&link.file).await?;
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

struct HashState {
    hasher: Sha1,
    len: u64,
    too_large: bool,
}

/// Failed sign-ins per username within the window before further attempts get 429.
/// Failed sign-ins one client address may make for one username, and for all usernames
/// together, within `SIGNIN_WINDOW`.
const SIGNIN_MAX_FAILURES: u64 = 10;
const SIGNIN_MAX_ADDRESS_FAILURES: u64 = 50;
const SIGNIN_WINDOW: Duration = Duration::from_secs(600);

/// Verified against when the username is unknown, so sign-in takes as long either way.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2d0KDqYfxbqu5WZMrvYwYbUMnqMR1Q6+JZALj5bqYlM";
