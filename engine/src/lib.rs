//! ChunkVault's engine: users, the dedup index, blob and metadata stores, uploads and downloads.
//! No HTTP types live here; the server translates requests into these calls.
//!
//! [`Engine`] wires four services over the stores, each given only what it needs:
//! [`Accounts`] (users, sign-in, tokens), [`Files`] (the users' files over the dedup index:
//! publishing, downloads, signed links, GC), [`Uploads`] (every upload protocol, ending in
//! `Files`) and [`Transfers`] (moving blobs between stores).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod blobs;
pub mod checksum;
pub mod collision;
pub mod db;
pub mod error;
pub mod files;
pub mod fsck;
mod hashing;
pub mod meta;
pub mod sessions;
pub mod stats;
pub mod transfer;
pub mod types;
pub mod uploads;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use accounts::{Accounts, SignIn, User};
pub use blobs::{BlobStaging, BlobStore, ByteStream, LocalBlobStore, MemoryBlobStore};
pub use checksum::Checksum;
pub use error::{Error, Result};
pub use files::{Download, Files, SignedLink};
pub use meta::{
    CursorKey, FileCursor, FileOrder, FileQuery, MemoryMetaStore, MetaStore, SqlMetaStore, UserFile,
};
#[cfg(feature = "redis")]
pub use sessions::RedisSessionStore;
pub use sessions::{MemorySessionStore, SessionStore, SqlSessionStore};
pub use transfer::Transfers;
pub use types::{
    ByteRange, FileId, FileName, Millis, RangeRequest, Sha1Hex, UploadId, UserId, Username,
};
pub use uploads::{InitOutcome, InitRequest, PartsSession, UploadStatus, Uploads};

use files::TransferPlan;

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
    /// When new content gets its SHA1 collision-attack verdict: right after it is published
    /// (default: the first instant upload of it answers at once), or when it is first shared.
    pub collision_scan: files::CollisionScan,
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
            collision_scan: files::CollisionScan::AtPublish,
            max_sessions_per_user: 100,
            user_quota: None,
            max_uploads_in_flight_per_user: 32,
            tus_lock_lease: Duration::from_secs(15 * 60),
            signup_rate: Some((20, Duration::from_secs(3600))),
        }
    }
}

/// The engine: its services, wired over the stores.
#[derive(Debug)]
pub struct Engine {
    wiring: Wiring,
    accounts: Accounts,
    files: Arc<Files>,
    uploads: Uploads,
    transfers: Transfers,
    stats: Arc<stats::Stats>,
}

/// What the services are built from (kept so `with_stores`/`with_transfers` can rebuild them).
#[derive(Debug)]
struct Wiring {
    meta: Arc<dyn MetaStore>,
    /// Where new uploads land (and are staged).
    blobs: Arc<dyn BlobStaging>,
    /// Every configured store by name (the upload store included): blobs record theirs.
    stores: BTreeMap<String, Arc<dyn BlobStore>>,
    sessions: Arc<dyn SessionStore>,
    config: EngineConfig,
    url_key: Vec<u8>,
    transfers: Option<TransferPlan>,
}

impl Engine {
    /// Builds an engine over its stores. The key for signed links is created once and shared
    /// through the metadata store, so every node accepts every node's links.
    pub async fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStaging>,
        sessions: Arc<dyn SessionStore>,
        config: EngineConfig,
    ) -> Result<Self> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        let key = meta.setting_or_init("download_url_key", &fresh).await?;
        let url_key = hex::decode(key).map_err(|e| Error::backend("sql", e))?;
        let upload_store: Arc<dyn BlobStore> = blobs.clone();
        let stores = [(blobs.name().to_owned(), upload_store)].into();
        Ok(Engine::wire(Wiring {
            meta,
            blobs,
            stores,
            sessions,
            config,
            url_key,
            transfers: None,
        }))
    }

    fn wire(w: Wiring) -> Self {
        let stats = Arc::<stats::Stats>::default();
        let files = Arc::new(Files::new(
            w.meta.clone(),
            w.meta.clone(),
            w.blobs.clone(),
            w.stores.clone(),
            w.url_key.clone(),
            &w.config,
            w.transfers.clone(),
            stats.clone(),
        ));
        Engine {
            accounts: Accounts::new(w.meta.clone(), &w.config),
            uploads: Uploads::new(
                files.clone(),
                w.meta.clone(),
                w.meta.clone(),
                w.sessions.clone(),
                w.config.clone(),
                stats.clone(),
            ),
            transfers: Transfers::new(files.clone(), w.meta.clone(), stats.clone()),
            files,
            stats,
            wiring: w,
        }
    }

    /// Adds stores that hold older blobs or receive transfers (names must be unique).
    pub fn with_stores(mut self, others: Vec<Arc<dyn BlobStore>>) -> Result<Self> {
        for s in others {
            if self
                .wiring
                .stores
                .insert(s.name().to_owned(), s.clone())
                .is_some()
            {
                return Err(Error::invalid(
                    "store",
                    format!("store {} named twice", s.name()),
                ));
            }
        }
        Ok(Engine::wire(self.wiring))
    }

    /// Moves every new blob to store `to`, `after` its upload, through `queue`.
    pub fn with_transfers(
        mut self,
        queue: Arc<dyn transfer::TransferQueue>,
        to: &str,
        after: Duration,
    ) -> Result<Self> {
        if !self.files.has_store(to) {
            return Err(Error::invalid(
                "transfer_to",
                format!("store {to} is not configured"),
            ));
        }
        if to == self.wiring.blobs.name() {
            return Err(Error::invalid(
                "transfer_to",
                "the transfer destination is the upload store",
            ));
        }
        self.wiring.transfers = Some(TransferPlan {
            queue,
            to: to.to_owned(),
            after,
            wake: Arc::new(tokio::sync::Notify::new()),
        });
        Ok(Engine::wire(self.wiring))
    }

    /// Users, sign-in and tokens.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The users' files: lookups, rename, delete, downloads, signed links, GC.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Uploads by every protocol, and instant upload.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Moving blobs between stores.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// Keeps the metadata database's planner statistics current (see `MetaStore::optimize`);
    /// the server's sweeper runs it.
    pub async fn optimize_metadata(&self) -> Result<()> {
        self.wiring.meta.optimize().await
    }

    /// Drops expired proof-of-ownership challenges and old wrong-proof records, in batches (the
    /// server's sweeper runs it); returns how many rows went.
    pub async fn purge_expired_proofs(&self) -> Result<u64> {
        self.wiring
            .meta
            .purge_expired_proofs(crate::types::now_millis())
            .await
    }

    /// The engine's counters (for metrics).
    pub fn stats(&self) -> &stats::Stats {
        &self.stats
    }

    pub fn config(&self) -> &EngineConfig {
        &self.wiring.config
    }

    /// Asks every configured dependency whether it answers: the metadata database, the
    /// session store and each blob store, by name.
    pub async fn readiness(&self) -> Vec<(String, Result<()>)> {
        let w = &self.wiring;
        let mut out = vec![
            ("database".to_owned(), w.meta.ping().await),
            ("sessions".to_owned(), w.sessions.ping().await),
        ];
        for (name, store) in &w.stores {
            out.push((format!("store {name}"), store.ping().await));
        }
        out
    }
}

/// Locks an in-memory backend's state. Each of their methods changes the state only after its
/// checks, so a panic while the lock was held left it consistent: the poison is ignored.
pub(crate) fn lock_unpoisoned<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
