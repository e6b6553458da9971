//! The upload path: init → put_part* → complete | abort, instant upload, expiry.
//! (`../shared/ARCHITECTURE.md`, "The upload path".)

mod finish;
mod parts;
pub mod proof;
mod sha1_state;
pub mod tus;
mod whole;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

pub use sha1_state::Sha1State;

use crate::blobs::{BlobStaging, ByteStream, PartSpec, StagingId};
use crate::error::{Error, Result};
use crate::files::Files;
use crate::meta::{BlobRecord, FileIndex, NewUserFile, ProofStore, UserFile};
use crate::sessions::{HashProgress, Layout, PartsLayout, SessionRecord, SessionStore};
use crate::stats::Stats;
use crate::types::{now_millis, FileName, Sha1Hex, UploadId, UserId};
use crate::{EngineConfig, User};

/// Uploads by every protocol: sessions of numbered parts (REST, `/file/mpupload`), tus
/// appends, whole-file bodies, instant upload with its proofs; they end by publishing
/// through [`Files`].
#[derive(Debug)]
pub struct Uploads {
    files: Arc<Files>,
    index: Arc<dyn FileIndex>,
    /// Instant-upload challenges and wrong answers.
    proofs: Arc<dyn ProofStore>,
    sessions: Arc<dyn SessionStore>,
    /// The upload store (the one `files` publishes into).
    blobs: Arc<dyn BlobStaging>,
    config: EngineConfig,
    stats: Arc<Stats>,
    /// Sessions whose hash this process is advancing right now.
    advancing: Mutex<HashSet<UploadId>>,
    /// Upload bodies being received on this node, per user.
    in_flight: Arc<Mutex<HashMap<UserId, u64>>>,
}

pub const DEFAULT_CHUNK_SIZE: u64 = 5 << 20;
pub const MIN_CHUNK_SIZE: u64 = 256 << 10;
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;
pub const MAX_PARTS: u64 = 10_000;
/// How long one request may hold the right to complete a session.
const CLAIM_LEASE: Duration = Duration::from_secs(120);
/// How long a repeated complete still gets the file of the first.
const RESULT_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Chunk size and part count for a file: the requested size (256 KiB–64 MiB, default 5 MiB),
/// raised so that no file needs more than 10,000 parts.
pub fn plan_chunks(size: u64, requested: Option<u64>) -> Result<(u64, u32)> {
    let mut chunk = requested.unwrap_or(DEFAULT_CHUNK_SIZE);
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk) {
        return Err(Error::invalid(
            "chunk_size",
            "must be between 262144 (256 KiB) and 67108864 (64 MiB)",
        ));
    }
    if size.div_ceil(chunk) > MAX_PARTS {
        chunk = size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
    }
    let count = size.div_ceil(chunk).max(1);
    Ok((chunk, count as u32))
}

/// What `init` asks for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InitRequest {
    pub file_name: String,
    pub size: u64,
    pub sha1: Sha1Hex,
    pub chunk_size: Option<u64>,
}

impl InitRequest {
    pub fn new(
        file_name: impl Into<String>,
        size: u64,
        sha1: Sha1Hex,
        chunk_size: Option<u64>,
    ) -> Self {
        InitRequest {
            file_name: file_name.into(),
            size,
            sha1,
            chunk_size,
        }
    }
}

/// A session of numbered parts, as the part protocols (REST, `/file/mpupload`) see the one
/// session record: its shared fields and its parts layout, side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartsSession {
    pub id: UploadId,
    pub owner: UserId,
    pub file_name: String,
    pub size: u64,
    /// What the client says the content hashes to; verified before anything is published.
    pub sha1: Sha1Hex,
    pub chunk_size: u64,
    pub chunk_count: u32,
    pub created_at: i64,
    pub expires_at: i64,
    pub hash: HashProgress,
}

impl PartsSession {
    /// The record's parts view; `None` for an append stream.
    pub fn from_record(r: SessionRecord) -> Option<Self> {
        let Layout::Parts(p) = r.layout else {
            return None;
        };
        Some(PartsSession {
            id: r.id,
            owner: r.owner,
            file_name: r.file_name,
            size: p.size,
            sha1: p.sha1,
            chunk_size: p.chunk_size,
            chunk_count: p.chunk_count,
            created_at: r.created_at,
            expires_at: r.expires_at,
            hash: p.hash,
        })
    }

    pub fn to_record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            owner: self.owner,
            file_name: self.file_name.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            layout: Layout::Parts(PartsLayout {
                size: self.size,
                sha1: self.sha1.clone(),
                chunk_size: self.chunk_size,
                chunk_count: self.chunk_count,
                hash: self.hash.clone(),
            }),
        }
    }
}

/// A session as clients see it.
#[derive(Clone, Debug)]
pub struct UploadStatus {
    pub session: PartsSession,
    /// Part numbers received, ascending.
    pub received: Vec<u32>,
    pub missing: u32,
    pub bytes_received: u64,
}

#[derive(Debug)]
pub enum InitOutcome {
    /// The content is stored already: the caller has the file, no bytes needed (秒传).
    Instant(UserFile),
    /// Upload the missing parts of this session; `created` is false when an open session of
    /// the same file was resumed.
    Session { status: UploadStatus, created: bool },
    /// The content is stored: prove you hold it (`Uploads::prove`), or upload it.
    Challenge(proof::Challenge),
}

impl PartsSession {
    /// Byte range of part `n` (1-based).
    pub fn part_spec(&self, n: u32) -> Result<PartSpec> {
        if n == 0 || n > self.chunk_count {
            return Err(Error::invalid(
                "part",
                format!("must be between 1 and {}", self.chunk_count),
            ));
        }
        let offset = u64::from(n - 1) * self.chunk_size;
        Ok(PartSpec::new(
            n,
            offset,
            self.chunk_size.min(self.size - offset),
        ))
    }

    fn staging(&self) -> StagingId {
        staging(&self.id)
    }
}

/// Where a session's bytes are staged: under its id, whatever its layout.
fn staging(id: &UploadId) -> StagingId {
    StagingId::parse(id.as_str()).expect("upload ids are valid staging ids")
}

impl Uploads {
    pub(crate) fn new(
        files: Arc<Files>,
        index: Arc<dyn FileIndex>,
        proofs: Arc<dyn ProofStore>,
        sessions: Arc<dyn SessionStore>,
        config: EngineConfig,
        stats: Arc<Stats>,
    ) -> Self {
        Uploads {
            blobs: files.upload_store().clone(),
            files,
            index,
            proofs,
            sessions,
            config,
            stats,
            advancing: Mutex::default(),
            in_flight: Arc::default(),
        }
    }

    fn upload_expiry(&self) -> i64 {
        now_millis() + self.config.upload_ttl.as_millis() as i64
    }

    /// The caller's session, of any layout; another user's is exactly as unknown as a
    /// missing one.
    async fn own_record(&self, user: &User, id: &UploadId) -> Result<SessionRecord> {
        match self.sessions.get(id).await? {
            Some(s) if s.owner == user.id => Ok(s),
            _ => Err(Error::NotFound { what: "upload" }),
        }
    }

    /// The caller's parts session; a stream is unknown to the part protocols.
    async fn own_session(&self, user: &User, id: &UploadId) -> Result<PartsSession> {
        PartsSession::from_record(self.own_record(user, id).await?)
            .ok_or(Error::NotFound { what: "upload" })
    }

    /// A parts session by id, whoever owns it.
    async fn parts_session(&self, id: &UploadId) -> Result<PartsSession> {
        self.sessions
            .get(id)
            .await?
            .and_then(PartsSession::from_record)
            .ok_or(Error::NotFound { what: "upload" })
    }

    /// Refuses a new session when the user has as many open as allowed, of any layout.
    fn check_open_limit(&self, open: &[SessionRecord]) -> Result<()> {
        let limit = self.config.max_sessions_per_user;
        if open.len() as u64 >= limit {
            return Err(Error::LimitReached {
                what: "open upload sessions",
                limit,
            });
        }
        Ok(())
    }

    async fn status_of(&self, session: PartsSession) -> Result<UploadStatus> {
        let parts = self.sessions.parts(&session.id).await?;
        let received: Vec<u32> = parts
            .iter()
            .map(|p| p.number)
            .filter(|&n| n >= 1 && n <= session.chunk_count)
            .collect();
        let bytes_received = received
            .iter()
            .map(|&n| session.part_spec(n).map(|p| p.len).unwrap_or(0))
            .sum();
        Ok(UploadStatus {
            missing: session.chunk_count - received.len() as u32,
            received,
            bytes_received,
            session,
        })
    }

    /// Starts or resumes an upload, or finishes it at once when the content is stored (秒传)
    /// — after a proof of ownership, unless instant upload is trusted or off.
    pub async fn init_upload(&self, user: &User, req: InitRequest) -> Result<InitOutcome> {
        self.check_init(&req)?;
        let name = FileName::parse(&req.file_name)?;
        match self
            .claim_instant(user, &req.sha1, req.size, &name, req.chunk_size)
            .await?
        {
            Some(proof::Claim::Linked(file)) => return Ok(InitOutcome::Instant(file)),
            Some(proof::Claim::Challenge(c)) => return Ok(InitOutcome::Challenge(c)),
            None => {}
        }
        self.init_session(user, req).await
    }

    fn check_init(&self, req: &InitRequest) -> Result<()> {
        FileName::parse(&req.file_name)?;
        if req.size > self.config.max_file_size {
            return Err(Error::TooLarge {
                limit: self.config.max_file_size,
            });
        }
        let (chunk_size, chunk_count) = plan_chunks(req.size, req.chunk_size)?;
        let min = self.blobs.min_part_size();
        if chunk_count > 1 && chunk_size < min {
            return Err(Error::invalid(
                "chunk_size",
                format!("parts must be at least {min} bytes on this server's store"),
            ));
        }
        Ok(())
    }

    /// A new or resumed upload session (no instant upload).
    async fn init_session(&self, user: &User, req: InitRequest) -> Result<InitOutcome> {
        self.check_init(&req)?;
        self.files.check_quota(user.id, req.size).await?;
        let open = self.sessions.list(user.id).await?;
        let resuming = open.iter().any(
            |s| matches!(&s.layout, Layout::Parts(p) if p.sha1 == req.sha1 && p.size == req.size),
        );
        if !resuming {
            self.check_open_limit(&open)?;
        }
        let name = FileName::parse(&req.file_name)?;
        let (chunk_size, chunk_count) = plan_chunks(req.size, req.chunk_size)?;
        let now = now_millis();
        let new = PartsSession {
            id: UploadId::generate(),
            owner: user.id,
            file_name: name.as_str().to_owned(),
            size: req.size,
            sha1: req.sha1,
            chunk_size,
            chunk_count,
            created_at: now,
            expires_at: self.upload_expiry(),
            hash: HashProgress {
                parts: 0,
                epoch: 0,
                state: Sha1State::new().save(),
            },
        };
        let (session, created) = self.sessions.create_or_resume(&new.to_record()).await?;
        let session = PartsSession::from_record(session)
            .ok_or_else(|| Error::backend("session", "resumed a stream as parts"))?;
        if created {
            Stats::inc(&self.stats.sessions_opened);
        }
        // Repeating begin is a no-op, so a resumed session whose staging vanished gets it back.
        if let Err(e) = self
            .blobs
            .stage_begin(&session.staging(), session.size)
            .await
        {
            if created {
                self.sessions.delete(&session.id).await?;
            }
            return Err(e);
        }
        Ok(InitOutcome::Session {
            status: self.status_of(session).await?,
            created,
        })
    }

    /// Links the caller to stored content with this SHA1 and size, if there is any.
    pub async fn instant(
        &self,
        user: &User,
        sha1: &Sha1Hex,
        size: u64,
        name: &FileName,
    ) -> Result<Option<UserFile>> {
        match self.index.blob(sha1).await? {
            Some(blob) if blob.size == size => {
                if !self.files.ensure_shareable(&blob).await? {
                    return Ok(None);
                }
                self.link_shareable(user, &blob, name).await
            }
            _ => Ok(None),
        }
    }

    /// Links the caller to stored content already found shareable.
    async fn link_shareable(
        &self,
        user: &User,
        blob: &BlobRecord,
        name: &FileName,
    ) -> Result<Option<UserFile>> {
        let file = NewUserFile::new(
            user.id,
            blob.sha1.clone(),
            name.clone(),
            blob.size,
            now_millis(),
        );
        let linked = self.index.link_existing(&file).await?;
        if linked.is_some() {
            Stats::inc(&self.stats.instant_hits);
        }
        Ok(linked)
    }

    pub async fn upload_status(&self, user: &User, id: &UploadId) -> Result<UploadStatus> {
        let session = self.own_session(user, id).await?;
        self.status_of(session).await
    }

    pub async fn list_uploads(&self, user: &User) -> Result<Vec<UploadStatus>> {
        let mut out = Vec::new();
        for s in self.sessions.list(user.id).await? {
            if let Some(s) = PartsSession::from_record(s) {
                out.push(self.status_of(s).await?);
            }
        }
        Ok(out)
    }
}

pub(crate) async fn hash_stream(state: &mut Sha1State, mut bytes: ByteStream) -> Result<()> {
    while let Some(chunk) = bytes.next().await {
        state.update(&chunk.map_err(|e| Error::backend("blob", e))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plans() {
        assert_eq!(plan_chunks(0, None).unwrap(), (DEFAULT_CHUNK_SIZE, 1));
        assert_eq!(plan_chunks(1, None).unwrap(), (DEFAULT_CHUNK_SIZE, 1));
        assert_eq!(
            plan_chunks(10 << 20, None).unwrap(),
            (DEFAULT_CHUNK_SIZE, 2)
        );
        assert_eq!(
            plan_chunks((10 << 20) + 1, None).unwrap(),
            (DEFAULT_CHUNK_SIZE, 3)
        );
        assert_eq!(
            plan_chunks(1 << 20, Some(MIN_CHUNK_SIZE)).unwrap(),
            (MIN_CHUNK_SIZE, 4)
        );
        assert!(plan_chunks(1, Some(MIN_CHUNK_SIZE - 1)).is_err());
        assert!(plan_chunks(1, Some(MAX_CHUNK_SIZE + 1)).is_err());
        let (chunk, count) = plan_chunks(100 << 30, None).unwrap();
        assert!(
            u64::from(count) <= MAX_PARTS && chunk > DEFAULT_CHUNK_SIZE,
            "{chunk} {count}"
        );
    }
}
