//! Upload sessions: which parts of which upload have arrived, and how far its SHA1 has got.
//! Three backends pass one conformance suite: SQL (SQLite by default, in the metadata
//! database), Redis (for many nodes) and memory (tests and examples).

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod sql;

use std::fmt;

use async_trait::async_trait;

#[cfg(feature = "redis")]
pub use self::redis::RedisSessionStore;
pub use memory::MemorySessionStore;
pub use sql::SqlSessionStore;

use crate::error::Result;
use crate::types::{FileId, Millis, Sha1Hex, UploadId, UserId};

/// How far the SHA1 of the contiguous prefix of parts has got. `epoch` changes whenever the
/// progress is reset (a hashed part was sent again), so a stale update can never land.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashProgress {
    /// Parts `1..=parts` are hashed into `state`.
    pub parts: u32,
    pub epoch: i64,
    /// `Sha1State::save()` form.
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: UploadId,
    pub owner: UserId,
    pub file_name: String,
    pub size: u64,
    /// What the client says the content hashes to; verified before anything is published.
    pub sha1: Sha1Hex,
    pub chunk_size: u64,
    pub chunk_count: u32,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub hash: HashProgress,
}

/// A part that is durable in the blob store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRecord {
    pub number: u32,
    /// What the blob store needs back at completion (S3 ETag); may be empty.
    pub etag: String,
}

/// What `commit_part` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartCommit {
    /// The attempt is the part now; `replaced` names the attempt it replaced, if any.
    Committed { replaced: Option<String> },
    /// The session is gone.
    Gone,
    /// The session is being completed: no part changes any more.
    Completing,
}

/// A tus upload: bytes appended at the end, any length at a time, hashed as they arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TusRecord {
    pub id: UploadId,
    pub owner: UserId,
    pub file_name: String,
    /// The client's `Upload-Metadata`, returned as it came.
    pub metadata: String,
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub offset: u64,
    /// `Sha1State::save()` of bytes `0..offset`.
    pub hash_state: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The user file it became, once complete.
    pub file_id: Option<FileId>,
    /// tus concatenation: empty, `partial`, or `final;<urls>` as the client sent it.
    pub concat: String,
}

/// What a successful append changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TusProgress {
    pub offset: u64,
    pub length: Option<u64>,
    pub hash_state: String,
    pub expires_at: Millis,
    pub file_id: Option<FileId>,
}

/// Session persistence. Every method is atomic on its own; none does a read-modify-write that
/// another node could interleave with.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Whether the store answers (readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Stores `new`, unless its owner already has an open session for the same (sha1, size):
    /// then that session is returned (its expiry pushed to `new.expires_at`) and `false`.
    async fn create_or_resume(&self, new: &SessionRecord) -> Result<(SessionRecord, bool)>;

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>>;

    /// The received parts, by number.
    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>>;

    /// The owner's open sessions, oldest first.
    async fn list(&self, owner: UserId) -> Result<Vec<SessionRecord>>;

    /// Makes a durable attempt the part, with one compare-and-set, and pushes the expiry.
    /// Refused while the session is being completed (a live claim): completion assembles the
    /// parts it read after claiming. Replacing a committed attempt by a different one changes
    /// the hash epoch (so no hash progress read before can land) and, if the part is inside
    /// the hashed prefix, takes the progress back to the start.
    async fn commit_part(
        &self,
        id: &UploadId,
        part: &PartRecord,
        now: Millis,
        expires_at: Millis,
    ) -> Result<PartCommit>;

    /// Moves hash progress from `from` to (`parts`, `state`) if nobody changed it meanwhile.
    async fn advance_hash(
        &self,
        id: &UploadId,
        from: &HashProgress,
        parts: u32,
        state: &str,
    ) -> Result<bool>;

    /// Takes the right to complete the session until `until`; `false` while another holder's
    /// claim is live. The holder gives it back early by claiming again with `until` 0.
    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool>;

    /// Removes the session and its parts. `false` if it was already gone.
    async fn delete(&self, id: &UploadId) -> Result<bool>;

    /// Sessions whose expiry is at or before `now`.
    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<SessionRecord>>;

    /// Remembers which file a completed session produced, so a repeated complete gets it again.
    async fn put_result(
        &self,
        id: &UploadId,
        owner: UserId,
        file: &FileId,
        until: Millis,
    ) -> Result<()>;

    async fn result(&self, id: &UploadId, now: Millis) -> Result<Option<(UserId, FileId)>>;

    async fn tus_create(&self, record: &TusRecord) -> Result<()>;

    async fn tus_get(&self, id: &UploadId) -> Result<Option<TusRecord>>;

    /// Moves a tus upload forward if its offset is still `expect_offset` and `holder` still
    /// holds its lock (compare-and-set: a writer whose lock lapsed and was taken over is
    /// fenced off); a length, once set, is never changed.
    async fn tus_update(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &TusProgress,
    ) -> Result<bool>;

    /// The single-writer lock of a tus upload, until `until` or `tus_unlock`.
    async fn tus_lock(
        &self,
        id: &UploadId,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool>;

    async fn tus_unlock(&self, id: &UploadId, holder: &str) -> Result<()>;

    async fn tus_delete(&self, id: &UploadId) -> Result<bool>;

    /// How many of the owner's tus uploads are not finished (they count toward the open
    /// sessions a user may have).
    async fn tus_open(&self, owner: UserId) -> Result<u64>;

    async fn tus_expired(&self, now: Millis, limit: u32) -> Result<Vec<TusRecord>>;
}
