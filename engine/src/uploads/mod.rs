//! The upload path: init → put_part* → complete | abort, instant upload, expiry.
//! (`../shared/ARCHITECTURE.md`, "The upload path".)

pub mod proof;
mod sha1_state;
pub mod tus;
mod whole;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use md5::Md5;
use sha1::{Digest, Sha1};

pub use sha1_state::Sha1State;

use crate::blobs::{BlobStore, ByteStream, PartReceipt, PartSpec, StagingId};
use crate::error::{Error, Result};
use crate::files::Files;
use crate::meta::{FileIndex, NewUserFile, ProofStore, UserFile};
use crate::sessions::{HashProgress, PartCommit, PartRecord, SessionRecord, SessionStore};
use crate::stats::Stats;
use crate::types::{now_millis, ByteRange, FileName, Sha1Hex, UploadId, UserId};
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
    blobs: Arc<dyn BlobStore>,
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

/// A digest a client sends with a part, checked while the part streams in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartDigest {
    /// `Content-MD5` (RFC 1864).
    Md5([u8; 16]),
    /// The seed's `chkhash`.
    Sha1([u8; 20]),
    /// `x-amz-checksum-crc32c` (as S3's multipart parts): a corruption check costing almost
    /// no CPU, where MD5 would cost more than the rest of the part's handling together. The
    /// whole file's SHA1 is still verified before anything is kept.
    Crc32c(u32),
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

/// A session as clients see it.
#[derive(Clone, Debug)]
pub struct UploadStatus {
    pub session: SessionRecord,
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

impl SessionRecord {
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
        StagingId::parse(self.id.as_str()).expect("upload ids are valid staging ids")
    }
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

    /// The caller's session; another user's is exactly as unknown as a missing one.
    async fn own_session(&self, user: &User, id: &UploadId) -> Result<SessionRecord> {
        match self.sessions.get(id).await? {
            Some(s) if s.owner == user.id => Ok(s),
            _ => Err(Error::NotFound { what: "upload" }),
        }
    }

    async fn status_of(&self, session: SessionRecord) -> Result<UploadStatus> {
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
        let resuming = open
            .iter()
            .any(|s| s.sha1 == req.sha1 && s.size == req.size);
        let limit = self.config.max_sessions_per_user;
        if !resuming && open.len() as u64 + self.sessions.tus_open(user.id).await? >= limit {
            return Err(Error::LimitReached {
                what: "open upload sessions",
                limit,
            });
        }
        let name = FileName::parse(&req.file_name)?;
        let (chunk_size, chunk_count) = plan_chunks(req.size, req.chunk_size)?;
        let now = now_millis();
        let new = SessionRecord {
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
        let (session, created) = self.sessions.create_or_resume(&new).await?;
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
                let file =
                    NewUserFile::new(user.id, sha1.clone(), name.clone(), size, now_millis());
                let linked = self.index.link_existing(&file).await?;
                if linked.is_some() {
                    Stats::inc(&self.stats.instant_hits);
                }
                Ok(linked)
            }
            _ => Ok(None),
        }
    }

    pub async fn upload_status(&self, user: &User, id: &UploadId) -> Result<UploadStatus> {
        let session = self.own_session(user, id).await?;
        self.status_of(session).await
    }

    pub async fn list_uploads(&self, user: &User) -> Result<Vec<UploadStatus>> {
        let mut out = Vec::new();
        for s in self.sessions.list(user.id).await? {
            out.push(self.status_of(s).await?);
        }
        Ok(out)
    }

    /// Stores part `n`. The bytes go to a place of their own (an attempt); only when they are
    /// durable and any digest sent with them matched does one compare-and-set make the attempt
    /// the part. A failed or refused write leaves the part as it was. Safe to repeat.
    pub async fn put_part(
        &self,
        user: &User,
        id: &UploadId,
        n: u32,
        body: ByteStream,
        digest: Option<PartDigest>,
    ) -> Result<UploadStatus> {
        let _slot = self.upload_slot(user)?;
        let session = self.own_session(user, id).await?;
        let spec = session.part_spec(n)?;
        let check = Arc::new(Mutex::new(PartCheck::new(digest, spec.len)));
        let tap = check.clone();
        let verdict = check.clone();
        // A wrong digest fails the stream at its end, so the store keeps nothing of it (S3
        // never sends it).
        let body = body
            .map(move |chunk| {
                let chunk = chunk?;
                tap.lock().expect("part check lock").update(&chunk);
                Ok::<_, io::Error>(chunk)
            })
            .chain(
                futures::stream::once(async move {
                    // A body of the wrong length is the store's to refuse (as such).
                    let mut check = verdict.lock().expect("part check lock");
                    (check.whole() && !check.matches())
                        .then(|| Err(io::Error::other("part digest mismatch")))
                })
                .filter_map(|end| async move { end }),
            )
            .boxed();
        let staging = session.staging();
        let receipt = match self.blobs.stage_put_part(&staging, spec, body).await {
            Ok(r) => r,
            Err(e) => {
                let check = check.lock().expect("part check lock");
                return Err(if check.ended && check.whole() && !check.check() {
                    Error::DigestMismatch {
                        what: match digest {
                            Some(PartDigest::Md5(_)) => "Content-MD5",
                            Some(PartDigest::Crc32c(_)) => "x-amz-checksum-crc32c",
                            _ => "chkhash",
                        },
                    }
                } else {
                    e
                });
            }
        };
        let part = PartRecord {
            number: receipt.number,
            etag: receipt.etag.clone(),
        };
        let commit = self
            .sessions
            .commit_part(id, &part, now_millis(), self.upload_expiry())
            .await?;
        match commit {
            PartCommit::Committed { replaced } => {
                if let Some(old) = replaced {
                    let old = PartReceipt {
                        number: n,
                        etag: old,
                    };
                    if let Err(e) = self.blobs.stage_drop_part(&staging, &old).await {
                        tracing::warn!(error = %e, upload = %id, part = n, "could not drop a replaced part");
                    }
                }
            }
            PartCommit::Gone | PartCommit::Completing => {
                if let Err(e) = self.blobs.stage_drop_part(&staging, &receipt).await {
                    tracing::warn!(error = %e, upload = %id, part = n, "could not drop a refused part");
                }
                return Err(match commit {
                    PartCommit::Gone => Error::NotFound { what: "upload" },
                    _ => Error::Busy,
                });
            }
        }
        tracing::info!(upload = %id, part = n, bytes = spec.len, "part stored");
        self.advance_hash(&session).await?;
        self.upload_status(user, id).await
    }

    /// Extends the hashed prefix over parts that have arrived, reading their committed attempts
    /// back from staging (page cache, for local disks). One advancer per session per process;
    /// across nodes the compare-and-set on the progress keeps it right.
    async fn advance_hash(&self, session: &SessionRecord) -> Result<()> {
        if !self
            .advancing
            .lock()
            .expect("advancing lock")
            .insert(session.id.clone())
        {
            return Ok(());
        }
        let res = self.advance_hash_inner(session).await;
        self.advancing
            .lock()
            .expect("advancing lock")
            .remove(&session.id);
        res
    }

    async fn advance_hash_inner(&self, session: &SessionRecord) -> Result<()> {
        loop {
            // The progress first, then the parts: a part replaced after this read changes the
            // epoch, so the compare-and-set below cannot land a hash of replaced bytes.
            let Some(current) = self.sessions.get(&session.id).await? else {
                return Ok(());
            };
            let received: BTreeMap<u32, PartRecord> = self
                .sessions
                .parts(&session.id)
                .await?
                .into_iter()
                .map(|p| (p.number, p))
                .collect();
            let from = current.hash.clone();
            if !received.contains_key(&(from.parts + 1)) {
                return Ok(());
            }
            let mut state = Sha1State::restore(&from.state)?;
            let hashed = self
                .hash_parts(&current, &received, from.parts + 1, &mut state)
                .await;
            let upto = match hashed {
                Ok(Some(upto)) => upto,
                Ok(None) => return Ok(()), // this store hashes at completion instead
                Err(e) => {
                    // A part replaced meanwhile takes its old attempt away: start again.
                    match self.sessions.get(&session.id).await? {
                        Some(now) if now.hash.epoch != from.epoch => continue,
                        _ => return Err(e),
                    }
                }
            };
            if !self
                .sessions
                .advance_hash(&session.id, &from, upto, &state.save())
                .await?
            {
                return Ok(()); // someone else moved it, or a part was re-sent: their turn
            }
        }
    }

    /// Hashes the committed attempts of parts `first..` for as long as they are contiguous;
    /// returns the last part hashed (`first - 1` for none), or `None` when the store cannot
    /// read staged parts.
    async fn hash_parts(
        &self,
        session: &SessionRecord,
        parts: &BTreeMap<u32, PartRecord>,
        first: u32,
        state: &mut Sha1State,
    ) -> Result<Option<u32>> {
        let mut upto = first - 1;
        while let Some(p) = parts.get(&(upto + 1)) {
            let spec = session.part_spec(upto + 1)?;
            if spec.len > 0 {
                let receipt = PartReceipt {
                    number: p.number,
                    etag: p.etag.clone(),
                };
                let Some(bytes) = self
                    .blobs
                    .stage_read_part(&session.staging(), &receipt, spec.len)
                    .await?
                else {
                    return Ok(None);
                };
                hash_stream(state, bytes).await?;
            }
            upto += 1;
        }
        Ok(Some(upto))
    }

    /// Assembles, verifies and publishes the upload. Missing parts → `MissingParts`; bytes that
    /// do not hash to the claimed SHA1 → `Sha1Mismatch` and everything staged is dropped.
    /// Completing again returns the same file.
    pub async fn complete_upload(&self, user: &User, id: &UploadId) -> Result<UserFile> {
        let holder = hex::encode(rand::random::<[u8; 8]>());
        let deadline = std::time::Instant::now() + CLAIM_LEASE;
        loop {
            if let Some(file) = self.completed_file(user, id).await? {
                return Ok(file);
            }
            let session = self.own_session(user, id).await?;
            let parts = self.sessions.parts(id).await?;
            let have: BTreeSet<u32> = parts.iter().map(|p| p.number).collect();
            let missing: Vec<u32> = (1..=session.chunk_count)
                .filter(|n| !have.contains(n))
                .collect();
            if !missing.is_empty() {
                return Err(Error::MissingParts { missing });
            }
            let now = now_millis();
            if self
                .sessions
                .claim(id, &holder, now, now + CLAIM_LEASE.as_millis() as i64)
                .await?
            {
                // From here on no part changes: `finish` reads the parts it assembles.
                let result = self.finish(user, session).await;
                if result.is_err() {
                    // Give the claim back, so the client can send parts again and retry.
                    if let Err(e) = self.sessions.claim(id, &holder, now_millis(), 0).await {
                        tracing::warn!(error = %e, upload = %id, "could not release the claim");
                    }
                }
                return result;
            }
            // Another request is completing it: wait for its result.
            if std::time::Instant::now() > deadline {
                return Err(Error::Busy);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn completed_file(&self, user: &User, id: &UploadId) -> Result<Option<UserFile>> {
        match self.sessions.result(id, now_millis()).await? {
            Some((owner, file)) if owner == user.id => Ok(self
                .index
                .user_file_by_id(&file)
                .await?
                .filter(|f| f.user_id == user.id)),
            _ => Ok(None),
        }
    }

    async fn finish(&self, user: &User, session: SessionRecord) -> Result<UserFile> {
        let staging = session.staging();
        let verify_started = std::time::Instant::now();
        // Hash what the prefix does not cover yet: nothing, for an in-order upload.
        self.advance_hash(&session).await?;
        // The committed attempts and the progress over them, read consistently: the progress
        // before and after the parts is the same (no part was replaced in between).
        let (current, parts) = loop {
            let before = self
                .sessions
                .get(&session.id)
                .await?
                .ok_or(Error::NotFound { what: "upload" })?;
            let parts = self.sessions.parts(&session.id).await?;
            let after = self
                .sessions
                .get(&session.id)
                .await?
                .ok_or(Error::NotFound { what: "upload" })?;
            if before.hash == after.hash {
                break (after, parts);
            }
        };
        let by_number: BTreeMap<u32, PartRecord> =
            parts.iter().map(|p| (p.number, p.clone())).collect();
        let missing: Vec<u32> = (1..=session.chunk_count)
            .filter(|n| !by_number.contains_key(n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingParts { missing });
        }
        let mut state = Sha1State::restore(&current.hash.state)?;
        let rest = ByteRange {
            start: u64::from(current.hash.parts) * session.chunk_size,
            end: session.size,
        };
        let verified = match self
            .hash_parts(&current, &by_number, current.hash.parts + 1, &mut state)
            .await?
        {
            Some(upto) => {
                debug_assert_eq!(upto, session.chunk_count);
                true
            }
            None => false,
        };
        if verified && Sha1Hex::from_digest(&state.clone().finalize()) != session.sha1 {
            self.discard(&session).await;
            return Err(Error::Sha1Mismatch);
        }
        let receipts: Vec<PartReceipt> = (1..=session.chunk_count)
            .map(|n| {
                let p = &by_number[&n];
                PartReceipt {
                    number: p.number,
                    etag: p.etag.clone(),
                }
            })
            .collect();
        let key = self
            .blobs
            .stage_complete(&staging, &receipts, &session.sha1)
            .await?;
        if !verified {
            // The store cannot read unfinished uploads: one pass over the assembled object.
            hash_stream(&mut state, self.blobs.get(&key, Some(rest)).await?).await?;
            if Sha1Hex::from_digest(&state.finalize()) != session.sha1 {
                self.blobs.delete(&key).await?;
                self.sessions.delete(&session.id).await?;
                return Err(Error::Sha1Mismatch);
            }
        }
        self.stats.verified(verify_started.elapsed());
        let name = FileName::parse(&session.file_name)?;
        let file = NewUserFile::new(
            user.id,
            session.sha1.clone(),
            name,
            session.size,
            now_millis(),
        );
        let file = self.files.publish(key, &file).await?;
        let keep = now_millis() + RESULT_KEPT.as_millis() as i64;
        self.sessions
            .put_result(&session.id, user.id, &file.id, keep)
            .await?;
        self.sessions.delete(&session.id).await?;
        Stats::inc(&self.stats.sessions_completed);
        Ok(file)
    }

    /// Drops a session and everything staged for it.
    async fn discard(&self, session: &SessionRecord) {
        if let Err(e) = self.blobs.stage_abort(&session.staging()).await {
            tracing::warn!(error = %e, upload = %session.id, "could not drop staged bytes");
        }
        if let Err(e) = self.sessions.delete(&session.id).await {
            tracing::warn!(error = %e, upload = %session.id, "could not delete session");
        }
    }

    pub async fn abort_upload(&self, user: &User, id: &UploadId) -> Result<()> {
        let session = self.own_session(user, id).await?;
        self.blobs.stage_abort(&session.staging()).await?;
        self.sessions.delete(id).await?;
        Stats::inc(&self.stats.sessions_aborted);
        Ok(())
    }

    /// Removes staged bytes that no session refers to any more, once idle for the upload TTL:
    /// what a session store that lost its data leaves (Redis without persistence, restarted).
    /// Returns how many. A session store that does not answer stops the sweep: absence is
    /// only trusted from a store that replied.
    pub async fn sweep_orphaned_staging(&self) -> Result<usize> {
        let mut removed = 0;
        for staging in self.blobs.stage_list_idle(self.config.upload_ttl).await? {
            let Ok(id) = UploadId::parse(staging.as_str()) else {
                continue;
            };
            if self.sessions.get(&id).await?.is_none()
                && self.sessions.tus_get(&id).await?.is_none()
            {
                self.blobs.stage_abort(&staging).await?;
                tracing::info!(upload = %id, "staged bytes without a session removed");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes sessions idle past their TTL and their staged bytes; returns how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let mut n = self.expire_tus().await?;
        loop {
            let expired = self.sessions.expired(now_millis(), 100).await?;
            if expired.is_empty() {
                return Ok(n);
            }
            for s in expired {
                self.discard(&s).await;
                Stats::inc(&self.stats.sessions_expired);
                n += 1;
            }
        }
    }
}

async fn hash_stream(state: &mut Sha1State, mut bytes: ByteStream) -> Result<()> {
    while let Some(chunk) = bytes.next().await {
        state.update(&chunk.map_err(|e| Error::backend("blob", e))?);
    }
    Ok(())
}

struct PartCheck {
    /// The body ended and its digest was compared.
    ended: bool,
    /// Bytes seen, and the part's length.
    seen: u64,
    len: u64,
    want: Option<PartDigest>,
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    crc32c: u32,
}

impl PartCheck {
    fn new(want: Option<PartDigest>, len: u64) -> Self {
        PartCheck {
            ended: false,
            seen: 0,
            len,
            want,
            md5: matches!(want, Some(PartDigest::Md5(_))).then(Md5::new),
            sha1: matches!(want, Some(PartDigest::Sha1(_))).then(Sha1::new),
            crc32c: 0,
        }
    }

    /// Whether exactly the part's length arrived.
    fn whole(&self) -> bool {
        self.seen == self.len
    }

    fn update(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        match self.want {
            Some(PartDigest::Md5(_)) => self.md5.iter_mut().for_each(|h| h.update(data)),
            Some(PartDigest::Sha1(_)) => self.sha1.iter_mut().for_each(|h| h.update(data)),
            Some(PartDigest::Crc32c(_)) => self.crc32c = crc32c::crc32c_append(self.crc32c, data),
            None => {}
        }
    }

    /// Whether the digest matches; called once the body has ended.
    fn matches(&mut self) -> bool {
        self.ended = true;
        self.check()
    }

    fn check(&self) -> bool {
        match self.want {
            None => true,
            Some(PartDigest::Md5(want)) => self
                .md5
                .clone()
                .is_some_and(|h| h.finalize().as_slice() == want),
            Some(PartDigest::Sha1(want)) => self
                .sha1
                .clone()
                .is_some_and(|h| h.finalize().as_slice() == want),
            Some(PartDigest::Crc32c(want)) => self.crc32c == want,
        }
    }
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
