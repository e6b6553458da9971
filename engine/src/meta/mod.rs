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

    pub fn as_str(self) -> &'static str {
        match self {
            FileOrder::Newest => "newest",
            FileOrder::Oldest => "oldest",
            FileOrder::Name => "name",
            FileOrder::NameDesc => "name-desc",
            FileOrder::Largest => "largest",
            FileOrder::Smallest => "smallest",
        }
    }

    /// Whether the order runs from high keys to low (ties then go by descending id too).
    pub fn descending(self) -> bool {
        matches!(
            self,
            FileOrder::Newest | FileOrder::NameDesc | FileOrder::Largest
        )
    }

    /// The key `file` sorts by in this order.
    pub fn key_of(self, file: &UserFile) -> CursorKey {
        match self {
            FileOrder::Newest | FileOrder::Oldest => CursorKey::Int(file.uploaded_at),
            FileOrder::Name | FileOrder::NameDesc => CursorKey::Text(file.name.clone()),
            FileOrder::Largest | FileOrder::Smallest => {
                CursorKey::Int(i64::try_from(file.size).unwrap_or(i64::MAX))
            }
        }
    }
}

/// A sort key of a listing: a time or size, or a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CursorKey {
    Int(i64),
    Text(String),
}

/// Where a listing continues (keyset pagination): the order, and the sort key and id of the
/// last file of the page before. A page after it costs the same however deep it is, and files
/// added or removed meanwhile shift nothing. As a token: `<order>.<id>.<key>`, the key in
/// decimal or, for a name, in hex; every character is URL-safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCursor {
    pub order: FileOrder,
    pub key: CursorKey,
    pub id: FileId,
}

impl FileCursor {
    /// The cursor that continues a listing in `order` after `file`.
    pub fn after(order: FileOrder, file: &UserFile) -> Self {
        FileCursor {
            order,
            key: order.key_of(file),
            id: file.id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        let key = match &self.key {
            CursorKey::Int(n) => n.to_string(),
            CursorKey::Text(t) => hex::encode(t.as_bytes()),
        };
        format!("{}.{}.{key}", self.order.as_str(), self.id.as_str())
    }

    pub fn decode(token: &str) -> Result<Self> {
        let bad = || crate::Error::invalid("after", "is not a cursor from a listing");
        let mut parts = token.splitn(3, '.');
        let (Some(order), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let order = FileOrder::parse(order).ok_or_else(bad)?;
        let id = FileId::parse(id).map_err(|_| bad())?;
        let key = match order {
            FileOrder::Name | FileOrder::NameDesc => {
                let bytes = hex::decode(key).map_err(|_| bad())?;
                if bytes.len() > crate::types::MAX_FILE_NAME_BYTES {
                    return Err(bad());
                }
                CursorKey::Text(String::from_utf8(bytes).map_err(|_| bad())?)
            }
            _ => {
                if key.is_empty() || key.len() > 20 {
                    return Err(bad());
                }
                CursorKey::Int(key.parse().map_err(|_| bad())?)
            }
        };
        Ok(FileCursor { order, key, id })
    }

    /// Whether `file` comes after this cursor in its order.
    pub fn precedes(&self, file: &UserFile) -> bool {
        let here = (&self.key, self.id.as_str());
        let key = self.order.key_of(file);
        let there = (&key, file.id.as_str());
        if self.order.descending() {
            there < here
        } else {
            there > here
        }
    }
}

/// Which of a user's files a listing shows, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileQuery {
    pub limit: u32,
    /// Files skipped from the start (the classic routes' paging); 0 with `after`.
    pub offset: u64,
    pub order: FileOrder,
    /// Only names containing this text (ASCII letters in either case).
    pub name_contains: Option<String>,
    /// Only the files after this cursor (of the same order).
    pub after: Option<FileCursor>,
}

impl FileQuery {
    /// The newest `limit` files after `offset`.
    pub fn page(limit: u32, offset: u64) -> Self {
        FileQuery {
            limit,
            offset,
            order: FileOrder::Newest,
            name_contains: None,
            after: None,
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

    /// The user a live (unexpired, unrevoked) token belongs to (one lookup: every
    /// authenticated request makes it).
    async fn token_user(&self, token_hash: &str, now: Millis) -> Result<Option<UserRecord>>;

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

    /// Puts a queued blob whose deletion failed at the back of the queue (`at`: now), so the
    /// blobs behind it get their turn; a no-op when it is no longer queued.
    async fn gc_later(&self, entry: &GcEntry, at: Millis) -> Result<()>;

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

    /// Drops challenges past their expiry and wrong-proof records older than a day, in bounded
    /// batches (a sweep: unanswered challenges would otherwise pile up); returns how many rows
    /// went.
    async fn purge_expired_proofs(&self, now: Millis) -> Result<u64>;

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

    /// Keeps the query planner's statistics current as the data grows (SQLite's
    /// `PRAGMA optimize`; MariaDB and PostgreSQL keep theirs by themselves). Run periodically.
    async fn optimize(&self) -> Result<()> {
        Ok(())
    }
}
