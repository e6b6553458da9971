//! The metadata store: users, tokens, blobs (the dedup index) and user files.

mod memory;
mod sql;

use std::fmt;

use async_trait::async_trait;

pub use memory::MemoryMetaStore;
pub use sql::{Dialect, SqlMetaStore};

use crate::error::Result;
use crate::types::{FileId, FileName, Millis, Sha1Hex, UserId, Username};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: Millis,
    pub last_active_at: Millis,
}

/// A verified blob: an entry in the dedup index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub sha1: Sha1Hex,
    pub size: u64,
    pub store: String,
    pub key: String,
    /// Number of user files that reference this blob.
    pub refcount: i64,
    pub created_at: Millis,
    /// Found not to hash to its SHA1: its bytes are set aside, it is shared with nobody, and
    /// the next genuine upload of the SHA1 replaces them.
    pub quarantined: bool,
}

/// The order of a listing of a user's files; ties go by file id, so equal timestamps, names or
/// sizes keep one order from page to page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileOrder {
    #[default]
    Newest,
    Oldest,
    /// By name, in the database's collation.
    Name,
    NameDesc,
    Largest,
    Smallest,
}

impl FileOrder {
    pub const NAMES: &'static str = "newest, oldest, name, name-desc, largest or smallest";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "newest" => FileOrder::Newest,
            "oldest" => FileOrder::Oldest,
            "name" => FileOrder::Name,
            "name-desc" => FileOrder::NameDesc,
            "largest" => FileOrder::Largest,
            "smallest" => FileOrder::Smallest,
            _ => return None,
        })
    }
}

/// Which of a user's files a listing shows, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileQuery {
    pub limit: u32,
    pub offset: u64,
    pub order: FileOrder,
    /// Only names containing this text (ASCII letters in either case).
    pub name_contains: Option<String>,
}

impl FileQuery {
    /// The newest `limit` files after `offset`.
    pub fn page(limit: u32, offset: u64) -> Self {
        FileQuery {
            limit,
            offset,
            order: FileOrder::Newest,
            name_contains: None,
        }
    }
}

/// A user's named reference to a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFile {
    pub id: FileId,
    pub user_id: UserId,
    pub sha1: Sha1Hex,
    pub name: String,
    pub size: u64,
    pub uploaded_at: Millis,
    pub updated_at: Millis,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewUserFile {
    pub user_id: UserId,
    pub sha1: Sha1Hex,
    pub name: FileName,
    pub size: u64,
    pub now: Millis,
}

impl NewUserFile {
    pub fn new(user_id: UserId, sha1: Sha1Hex, name: FileName, size: u64, now: Millis) -> Self {
        NewUserFile {
            user_id,
            sha1,
            name,
            size,
            now,
        }
    }
}

/// A blob that has been written and verified, about to enter the dedup index.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewBlob {
    pub store: String,
    pub key: String,
    /// Where the blob moves after upload, and from when: `publish` writes this job to the
    /// outbox in the transaction that creates the blob (nothing for content already indexed).
    pub transfer: Option<OutboxEntry>,
}

impl NewBlob {
    pub fn new(store: impl Into<String>, key: impl Into<String>) -> Self {
        NewBlob {
            store: store.into(),
            key: key.into(),
            transfer: None,
        }
    }

    /// With the transfer job `publish` puts in the outbox if it creates the blob.
    pub fn with_transfer(mut self, job: OutboxEntry) -> Self {
        self.transfer = Some(job);
        self
    }
}

/// A transfer job in the outbox (a transactional outbox): written with the blob it moves, handed
/// to the transfer queue by the relay, deleted once the queue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub sha1: Sha1Hex,
    /// The destination store.
    pub to: String,
    /// When the move is due.
    pub due_at: Millis,
}

/// Outcome of `MetaStore::publish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// The new blob entered the index and the user file points at it.
    Created(UserFile),
    /// The index already held this content (first writer won); the user file points at the
    /// existing blob and the caller must delete the copy it wrote.
    Deduplicated(UserFile),
}

impl Published {
    pub fn file(&self) -> &UserFile {
        match self {
            Published::Created(f) | Published::Deduplicated(f) => f,
        }
    }
}

/// A proof-of-ownership challenge (`uploads::proof`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id: String,
    pub user_id: UserId,
    pub sha1: Sha1Hex,
    pub size: u64,
    pub file_name: String,
    /// 0: the server's default.
    pub chunk_size: u64,
    pub ranges: String,
    pub expected: String,
    pub expires_at: Millis,
}

/// A stored blob that no user file references any more, queued for deletion from its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcEntry {
    pub store: String,
    pub key: String,
}

/// Users, sign-in tokens and the events rate limits count (`Accounts`).
#[async_trait]
pub trait AccountStore: Send + Sync + fmt::Debug {
    /// Creates a user; `UsernameTaken` if the name exists.
    async fn create_user(
        &self,
        username: &Username,
        password_hash: &str,
        now: Millis,
    ) -> Result<UserId>;

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>>;

    async fn touch_user(&self, id: UserId, now: Millis) -> Result<()>;

    /// Stores a token (by its hash, never the token itself).
    async fn insert_token(
        &self,
        token_hash: &str,
        user: UserId,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()>;

    /// The user a live (unexpired, unrevoked) token belongs to.
    async fn token_user(&self, token_hash: &str, now: Millis) -> Result<Option<UserId>>;

    /// Revokes a token; `false` if it did not exist.
    async fn delete_token(&self, token_hash: &str) -> Result<bool>;

    /// Removes expired tokens; returns how many.
    async fn purge_expired_tokens(&self, now: Millis) -> Result<u64>;

    /// Records an event counted by a rate limit (`kind`: `signin-fail`, `signup`; `key`: what
    /// it is counted per), dropping day-old records.
    async fn record_event(&self, kind: &str, key: &str, now: Millis) -> Result<()>;

    /// Events of `kind` for `key` since `since`.
    async fn events_since(&self, kind: &str, key: &str, since: Millis) -> Result<u64>;
}

/// The dedup index: blobs, the users' files that reference them, the deletion queue (`Files`,
/// `Uploads`, `Transfers`).
#[async_trait]
pub trait FileIndex: Send + Sync + fmt::Debug {
    async fn blob(&self, sha1: &Sha1Hex) -> Result<Option<BlobRecord>>;

    /// Instant upload: if `file.sha1` is in the index, gives the user a file referencing it
    /// (or returns the user's existing file of that content and name). `None` if the index
    /// does not hold the content. Safe to repeat.
    async fn link_existing(&self, file: &NewUserFile) -> Result<Option<UserFile>>;

    /// Enters a written, verified blob into the index and gives the user a file for it, in one
    /// transaction. If the content is already indexed, links to that blob instead (see `Published`).
    async fn publish(&self, blob: &NewBlob, file: &NewUserFile) -> Result<Published>;

    /// The user's file with this content: the one with `id` if given, else the newest.
    async fn user_file(
        &self,
        user: UserId,
        sha1: &Sha1Hex,
        id: Option<&FileId>,
    ) -> Result<Option<UserFile>>;

    /// A file by id, whoever owns it (signed download links).
    async fn user_file_by_id(&self, id: &FileId) -> Result<Option<UserFile>>;

    /// A page of the user's files, in `query`'s order.
    async fn list_user_files(&self, user: UserId, query: &FileQuery) -> Result<Vec<UserFile>>;

    /// Renames; `NotFound` if the user has no such file, `NameTaken` if the user already has
    /// this content under `name`.
    async fn rename_user_file(
        &self,
        user: UserId,
        id: &FileId,
        name: &FileName,
        now: Millis,
    ) -> Result<UserFile>;

    /// Deletes the user's file. When it was the blob's last reference, the blob leaves the index
    /// in the same transaction and is queued for deletion: the returned entry. `NotFound` if the
    /// user has no such file.
    async fn delete_user_file(&self, user: UserId, id: &FileId) -> Result<Option<GcEntry>>;

    /// Transfer jobs `publish` wrote to the outbox, earliest due first.
    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// The transfer queue holds `entry` now: out of the outbox (a no-op if already out).
    async fn outbox_done(&self, entry: &OutboxEntry) -> Result<()>;

    /// Blobs queued for deletion (oldest first).
    async fn gc_pending(&self, limit: u32) -> Result<Vec<GcEntry>>;

    /// Marks a queued blob as deleted from its store.
    async fn gc_done(&self, entry: &GcEntry) -> Result<()>;

    /// Switches a blob from `from` (store and key) to `to` in one update, if it is still at
    /// `from`, and queues `from` for deletion in the same commit (a mover cut off right after
    /// leaves the source to the GC, never orphaned); `false` when it was deleted or moved
    /// meanwhile.
    async fn move_blob(&self, sha1: &Sha1Hex, from: &GcEntry, to: &GcEntry) -> Result<bool>;

    /// Blobs held by `store`, in SHA1 order after `after`, at most `limit`.
    async fn blobs_in_store(
        &self,
        store: &str,
        after: Option<&Sha1Hex>,
        limit: u32,
    ) -> Result<Vec<BlobRecord>>;

    /// Bytes of the user's files (each name counts, as the user sees them).
    async fn user_usage(&self, user: UserId) -> Result<u64>;

    /// Whether a blob row refers to `key` in `store` (fsck's second look at an orphan).
    async fn blob_by_key(&self, store: &str, key: &str) -> Result<bool>;

    /// Takes the blob at `key` out of dedup (its bytes do not hash to `sha1`); `false` if the
    /// row moved on meanwhile (another location, or quarantined already).
    async fn quarantine_blob(&self, sha1: &Sha1Hex, key: &str) -> Result<bool>;

    /// Gives a quarantined blob fresh, verified bytes at `key` in `store`; `false` if it was
    /// not quarantined (someone replaced it first).
    async fn replace_quarantined(&self, sha1: &Sha1Hex, store: &str, key: &str) -> Result<bool>;
}

/// Instant-upload proofs (challenges, wrong answers) and collision verdicts per SHA1.
#[async_trait]
pub trait ProofStore: Send + Sync + fmt::Debug {
    /// Stores a proof-of-ownership challenge.
    async fn put_challenge(&self, c: &ChallengeRecord) -> Result<()>;

    /// Removes and returns the user's challenge (single use); `None` if unknown or another
    /// user's.
    async fn take_challenge(&self, id: &str, user: UserId) -> Result<Option<ChallengeRecord>>;

    /// Records a wrong proof, and drops records and challenges too old to matter.
    async fn record_proof_failure(&self, user: UserId, now: Millis) -> Result<()>;

    /// Wrong proofs of the user since `since`.
    async fn proof_failures_since(&self, user: UserId, since: Millis) -> Result<u64>;

    /// The recorded collision-attack verdict for content with this SHA1: `Some(true)` when its
    /// bytes carry a SHA1 collision attack, `Some(false)` when checked clean, `None` if unchecked.
    async fn blob_check(&self, sha1: &Sha1Hex) -> Result<Option<bool>>;

    /// Records a verdict (the first one recorded stands).
    async fn record_blob_check(&self, sha1: &Sha1Hex, collision: bool, now: Millis) -> Result<()>;
}

/// Settings shared by every node (the signing key of download links).
#[async_trait]
pub trait Settings: Send + Sync + fmt::Debug {
    /// Returns the stored value of a setting, storing `init` first if it has none
    /// (first writer wins across nodes).
    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String>;
}

/// Metadata persistence: every part above, in one database. Every method is atomic; methods
/// that change several rows do so in one transaction. Implementations must pass the conformance
/// suite in `engine/tests`.
#[async_trait]
pub trait MetaStore: AccountStore + FileIndex + ProofStore + Settings {
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
}
