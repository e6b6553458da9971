//! Upload sessions: one record for every protocol, whose layout is numbered parts (how far
//! their SHA1 has got, which have arrived) or an append stream (its offset and SHA1 state).
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

use crate::checksum::Checksum;
use crate::error::{Error, Result};
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

/// One upload session, whatever protocol opened it: what every layout shares, and the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: UploadId,
    pub owner: UserId,
    pub file_name: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub layout: Layout,
}

/// How an upload's bytes arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Numbered parts of a known size and SHA1, in any order (REST, `/file/mpupload`).
    Parts(PartsLayout),
    /// Bytes appended at the end, any length at a time (tus).
    Stream(StreamLayout),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartsLayout {
    pub size: u64,
    /// What the client says the content hashes to; verified before anything is published.
    pub sha1: Sha1Hex,
    pub chunk_size: u64,
    pub chunk_count: u32,
    pub hash: HashProgress,
}

/// An append stream: hashed as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub offset: u64,
    /// The SHA1 state of bytes `0..offset` and what the blob store needs to find them.
    pub hash_state: String,
    /// The user file it became, once complete (the session is kept a while to answer for it).
    pub file_id: Option<FileId>,
    /// The protocol's own fields, returned as they came (tus: `Upload-Metadata`).
    pub metadata: String,
    /// tus concatenation: empty, `partial`, or `final;<urls>` as the client sent it.
    pub concat: String,
    /// What the whole content must hash to (the IETF protocol's `Repr-Digest`), checked before
    /// it is published.
    pub digest: Option<Checksum>,
}

/// A representation digest as the stores keep it (`<algorithm>:<hex>`; empty for none).
pub(crate) fn stored_digest(s: &str) -> Result<Option<Checksum>> {
    if s.is_empty() {
        return Ok(None);
    }
    Checksum::decode(s)
        .map(Some)
        .ok_or_else(|| Error::backend("session", format!("corrupt digest {s:?}")))
}

impl SessionRecord {
    /// Whether bytes may still arrive or the session still be completed (an append stream
    /// kept after completion is not open).
    pub fn is_open(&self) -> bool {
        match &self.layout {
            Layout::Parts(_) => true,
            Layout::Stream(s) => s.file_id.is_none(),
        }
    }
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

/// What a successful append to a stream changes. `None` leaves a length or file as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamProgress {
    pub offset: u64,
    /// Set only if the stream has no length yet.
    pub length: Option<u64>,
    pub hash_state: String,
    pub expires_at: Millis,
    pub file_id: Option<FileId>,
    /// Replaces the stream's representation digest when set.
    pub digest: Option<Checksum>,
}

/// Session persistence. Every method is atomic on its own; none does a read-modify-write that
/// another node could interleave with.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Whether the store answers (readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Stores `new`. A parts session is not stored twice: if its owner has an open session for
    /// the same (sha1, size), that one is returned (its expiry pushed to `new.expires_at`) and
    /// `false`. An append stream is always new.
    async fn create_or_resume(&self, new: &SessionRecord) -> Result<(SessionRecord, bool)>;

    async fn get(&self, id: &UploadId) -> Result<Option<SessionRecord>>;

    /// The received parts, by number (parts sessions).
    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>>;

    /// The owner's open sessions ([`SessionRecord::is_open`]), oldest first.
    async fn list(&self, owner: UserId) -> Result<Vec<SessionRecord>>;

    /// Makes a durable attempt the part, with one compare-and-set, and pushes the expiry.
    /// Refused while the session is being completed (a live claim): completion assembles the
    /// parts it read after claiming. Replacing a committed attempt by a different one changes
    /// the hash epoch (so no hash progress read before can land) and, if the part is inside
    /// the hashed prefix, takes the progress back to the start. `Gone` for a stream.
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

    /// Moves an append stream forward if its offset is still `expect_offset` and `holder`
    /// still holds its claim (compare-and-set: a writer whose claim lapsed and was taken over
    /// is fenced off); a length, once set, is never changed. `false` for a parts session.
    async fn append(
        &self,
        id: &UploadId,
        expect_offset: u64,
        holder: &str,
        to: &StreamProgress,
    ) -> Result<bool>;

    /// Takes the session's lease until `until`; `false` while another holder's is live. A
    /// parts session is claimed to complete it; a stream, by each append (one writer at a
    /// time). The holder gives it back early by claiming again with `until` 0.
    async fn claim(&self, id: &UploadId, holder: &str, now: Millis, until: Millis) -> Result<bool>;

    /// Removes the session and its parts. `false` if it was already gone.
    async fn delete(&self, id: &UploadId) -> Result<bool>;

    /// Sessions of every layout whose expiry is at or before `now`, oldest first.
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
}
