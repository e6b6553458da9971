//! tus over the one session model: an upload is a session whose layout is an append stream.
//! Bytes are appended in order, any amount at a time, hashed as they stream in; the last byte
//! publishes the blob (deduplicated) and the user's file. One writer at a time, across nodes,
//! by the session's claim; termination and expiry are the sessions' own.

use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::proof::InstantMode;
use super::{staging, Sha1State, Uploads};
use crate::blobs::{ByteStream, StagingId};
use crate::checksum::{Checksum, ChecksumCheck};
use crate::error::{Error, Result};
use crate::hashing::{Hashing, Over};
use crate::meta::NewUserFile;
use crate::sessions::{Layout, SessionRecord, StreamLayout, StreamProgress};
use crate::types::{now_millis, FileId, FileName, Millis, Sha1Hex, UploadId, UserId};
use crate::User;

mod concat;

/// `body` up to its first error, which is kept in `broken`.
fn keep_until_broken(body: ByteStream, broken: Arc<Mutex<Option<std::io::Error>>>) -> ByteStream {
    body.scan((), move |_, item| {
        futures::future::ready(match item {
            Ok(bytes) => Some(Ok(bytes)),
            Err(e) => {
                *broken.lock().expect("broken lock") = Some(e);
                None
            }
        })
    })
    .boxed()
}

/// Most partial uploads one final upload may name.
pub const MAX_CONCAT_PARTS: usize = 1000;
/// Largest `Upload-Metadata` kept.
pub const MAX_METADATA: usize = 4096;

/// What a tus upload's saved progress holds: the SHA1 state of its committed bytes and the
/// last committed append (`<sha1 state>@<append>`; no `@` before the first append).
struct TusState;

impl TusState {
    fn split(saved: &str) -> Result<(Sha1State, String)> {
        let (state, last) = saved.split_once('@').unwrap_or((saved, ""));
        Ok((Sha1State::restore(state)?, last.to_owned()))
    }

    fn join(sha: &Sha1State, last: &str) -> String {
        if last.is_empty() {
            sha.save()
        } else {
            format!("{}@{last}", sha.save())
        }
    }
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TusCreate {
    /// `None`: `Upload-Defer-Length`.
    pub length: Option<u64>,
    pub metadata: String,
    pub file_name: String,
    pub concat: TusConcat,
    /// What the whole content must hash to (IETF `Repr-Digest`), checked before publishing.
    pub digest: Option<Checksum>,
}

impl TusCreate {
    pub fn new(length: Option<u64>, metadata: String, file_name: String) -> Self {
        TusCreate {
            length,
            metadata,
            file_name,
            concat: TusConcat::None,
            digest: None,
        }
    }

    pub fn with_concat(mut self, concat: TusConcat) -> Self {
        self.concat = concat;
        self
    }

    /// The content's digest. A SHA1 with a known length lets trusted mode link stored content
    /// at once (instant upload: the upload is complete when created).
    pub fn with_digest(mut self, digest: Option<Checksum>) -> Self {
        self.digest = digest;
        self
    }
}

/// What a client says its bytes hash to, with an append.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendChecks {
    /// This request's bytes (tus `Upload-Checksum`, `Content-Digest`): a mismatch keeps none.
    pub content: Option<Checksum>,
    /// The whole upload's content (`Repr-Digest`): replaces the one the upload has, checked
    /// when the last byte is in; a mismatch publishes nothing and drops the upload.
    pub representation: Option<Checksum>,
}

impl AppendChecks {
    /// Only this request's bytes are checked (`None`: nothing is).
    pub fn content(content: Option<Checksum>) -> Self {
        AppendChecks {
            content,
            representation: None,
        }
    }
}

/// tus concatenation (`Upload-Concat`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TusConcat {
    None,
    /// A piece of a file, uploaded in parallel with the others; never a file of its own.
    Partial,
    /// The file made of these finished partial uploads, in order; `header` is kept for HEAD.
    Final {
        parts: Vec<UploadId>,
        header: String,
    },
}

const PARTIAL: &str = "partial";

/// An append-stream session as tus sees the one session record: its shared fields and its
/// stream layout, side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TusUpload {
    pub id: UploadId,
    pub owner: UserId,
    pub file_name: String,
    /// The client's `Upload-Metadata`, returned as it came.
    pub metadata: String,
    /// `None` while the length is deferred.
    pub length: Option<u64>,
    pub offset: u64,
    /// `Sha1State::save()` of bytes `0..offset`, with the last committed append.
    pub hash_state: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The user file it became, once complete.
    pub file_id: Option<FileId>,
    /// tus concatenation: empty, `partial`, or `final;<urls>` as the client sent it.
    pub concat: String,
    /// What the whole content must hash to, if the client said.
    pub digest: Option<Checksum>,
}

impl TusUpload {
    /// The record's stream view; `None` for a parts session.
    pub fn from_record(r: SessionRecord) -> Option<Self> {
        let Layout::Stream(t) = r.layout else {
            return None;
        };
        Some(TusUpload {
            id: r.id,
            owner: r.owner,
            file_name: r.file_name,
            metadata: t.metadata,
            length: t.length,
            offset: t.offset,
            hash_state: t.hash_state,
            created_at: r.created_at,
            expires_at: r.expires_at,
            file_id: t.file_id,
            concat: t.concat,
            digest: t.digest,
        })
    }

    pub fn to_record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            owner: self.owner,
            file_name: self.file_name.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            layout: Layout::Stream(StreamLayout {
                length: self.length,
                offset: self.offset,
                hash_state: self.hash_state.clone(),
                file_id: self.file_id.clone(),
                metadata: self.metadata.clone(),
                concat: self.concat.clone(),
                digest: self.digest,
            }),
        }
    }
}

impl Uploads {
    fn tus_expiry(&self) -> i64 {
        now_millis() + self.config.upload_ttl.as_millis() as i64
    }

    /// Starts a tus upload (`POST /files`).
    pub async fn tus_create(&self, user: &User, req: TusCreate) -> Result<TusUpload> {
        let name = FileName::parse(&req.file_name)?;
        if req.metadata.len() > MAX_METADATA {
            return Err(Error::invalid("Upload-Metadata", "longer than 4096 bytes"));
        }
        if let Some(length) = req.length {
            self.files.check_quota(user.id, length).await?;
        }
        let concat = match req.concat {
            TusConcat::Final { parts, header } => {
                return self
                    .tus_concatenate(user, &parts, header, req.metadata, name)
                    .await
            }
            TusConcat::Partial => PARTIAL.to_owned(),
            TusConcat::None => String::new(),
        };
        if let Some(l) = req.length {
            if l > self.config.max_file_size {
                return Err(Error::TooLarge {
                    limit: self.config.max_file_size,
                });
            }
        }
        if let Some(done) = self.tus_instant(user, &req, &name, &concat).await? {
            return Ok(done);
        }
        // Streams and parts sessions share the user's limit of open uploads.
        self.check_open_limit(&self.sessions.list(user.id).await?)?;
        let now = now_millis();
        let record = TusUpload {
            id: UploadId::generate(),
            owner: user.id,
            file_name: name.as_str().to_owned(),
            metadata: req.metadata,
            length: req.length,
            offset: 0,
            hash_state: Sha1State::new().save(),
            created_at: now,
            expires_at: self.tus_expiry(),
            file_id: None,
            concat,
            digest: req.digest,
        };
        self.blobs.stage_begin(&staging(&record.id), 0).await?;
        self.sessions.create_or_resume(&record.to_record()).await?;
        if record.length == Some(0) {
            // Nothing to wait for: the empty file is complete now.
            return self
                .tus_append(
                    user,
                    &record.id,
                    0,
                    None,
                    futures::stream::empty().boxed(),
                    AppendChecks::default(),
                )
                .await;
        }
        Ok(record)
    }

    /// Instant upload of a stream, in trusted mode only: its SHA1 and length name content the
    /// store holds, so the user's file is linked and the upload is stored complete (kept to
    /// answer offset requests, as a finished upload is). A claimed digest proves no ownership,
    /// and these protocols have no step in which to prove it: in proof mode the bytes come.
    async fn tus_instant(
        &self,
        user: &User,
        req: &TusCreate,
        name: &FileName,
        concat: &str,
    ) -> Result<Option<TusUpload>> {
        let (Some(Checksum::Sha1(digest)), Some(length)) = (req.digest, req.length) else {
            return Ok(None);
        };
        if self.config.instant_mode != InstantMode::Trusted || !concat.is_empty() || length == 0 {
            return Ok(None);
        }
        let sha1 = Sha1Hex::from_digest(&digest);
        let Some(file) = self.instant(user, &sha1, length, name).await? else {
            return Ok(None);
        };
        let now = now_millis();
        let record = TusUpload {
            id: UploadId::generate(),
            owner: user.id,
            file_name: name.as_str().to_owned(),
            metadata: req.metadata.clone(),
            length: Some(length),
            offset: length,
            hash_state: String::new(),
            created_at: now,
            expires_at: self.tus_expiry(),
            file_id: Some(file.id),
            concat: String::new(),
            digest: req.digest,
        };
        self.sessions.create_or_resume(&record.to_record()).await?;
        Ok(Some(record))
    }

    /// The caller's tus upload; another user's is unknown.
    pub async fn tus_status(&self, user: &User, id: &UploadId) -> Result<TusUpload> {
        TusUpload::from_record(self.own_record(user, id).await?)
            .ok_or(Error::NotFound { what: "upload" })
    }

    /// Appends `body` at `offset` (`PATCH`). `length` declares a deferred length. A checksum
    /// mismatch keeps none of this request's bytes. A body that breaks off keeps what arrived
    /// (none when it came with a checksum) and is `Incomplete`, unless it completed the upload.
    /// A representation digest the completed content does not have publishes nothing and drops
    /// the upload.
    pub async fn tus_append(
        &self,
        user: &User,
        id: &UploadId,
        offset: u64,
        length: Option<u64>,
        body: ByteStream,
        checks: AppendChecks,
    ) -> Result<TusUpload> {
        let _slot = self.upload_slot(user)?;
        let record = self.tus_status(user, id).await?;
        if record.concat.starts_with("final") {
            return Err(Error::invalid(
                "Upload-Concat",
                "a final upload cannot be patched",
            ));
        }
        if offset != record.offset {
            return Err(Error::OffsetMismatch {
                expected: record.offset,
            });
        }
        let length = match (record.length, length) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::invalid("Upload-Length", "differs from the upload's"))
            }
            (a, b) => a.or(b),
        };
        if let Some(l) = length {
            if l > self.config.max_file_size {
                return Err(Error::TooLarge {
                    limit: self.config.max_file_size,
                });
            }
            if l < offset {
                return Err(Error::invalid(
                    "Upload-Length",
                    "smaller than the bytes already received",
                ));
            }
        }
        if record.file_id.is_some() {
            // Finished: a repeated last PATCH (its answer was lost) gets the answer again, as
            // tusd gives it; the file is not published twice. A byte past the end is too much.
            let mut body = body;
            while let Some(chunk) = body.next().await {
                if !chunk.map_err(Error::Incomplete)?.is_empty() {
                    return Err(Error::TooLarge {
                        limit: record.length.unwrap_or(record.offset),
                    });
                }
            }
            return Ok(record);
        }
        let holder = hex::encode(rand::random::<[u8; 8]>());
        let now = now_millis();
        if !self
            .sessions
            .claim(
                id,
                &holder,
                now,
                now + self.config.tus_lock_lease.as_millis() as i64,
            )
            .await?
        {
            return Err(Error::Locked);
        }
        let result = self
            .tus_append_locked(user, &record, &holder, length, body, checks)
            .await;
        self.sessions.claim(id, &holder, now_millis(), 0).await?;
        result
    }

    async fn tus_append_locked(
        &self,
        user: &User,
        record: &TusUpload,
        holder: &str,
        length: Option<u64>,
        body: ByteStream,
        checks: AppendChecks,
    ) -> Result<TusUpload> {
        // Re-read under the lock: the offset may have moved since the caller looked.
        let record = self.tus_status(user, &record.id).await?;
        let offset = record.offset;
        let (sha_state, last) = TusState::split(&record.hash_state)?;
        let limit = match length {
            Some(l) => l - offset,
            None => self.config.max_file_size - offset,
        };
        // A body that breaks off (the client went away, or was cut for being too slow) keeps
        // what arrived, as tus and the IETF draft ask, so the client resumes from there: the
        // store sees its end where it broke. Unless the client named a checksum of the whole
        // body, which a part of it cannot be checked against.
        let broken = Arc::new(Mutex::new(None));
        let body = if checks.content.is_none() {
            keep_until_broken(body, broken.clone())
        } else {
            body
        };
        let (body, hashed) = Hashing::new()
            .sha1(sha_state)
            .checksum(checks.content)
            .limit(limit, Over::Pass)
            .stream(body);
        let sid = staging(&record.id);
        // The append goes to a place of its own; only the compare-and-set below makes it part
        // of the upload, so a writer whose lock lapsed can never reach bytes another append
        // wrote and hashed.
        let (written, attempt) = match self
            .blobs
            .stage_write(&sid, offset, &last, body, limit)
            .await
        {
            Ok(w) => w,
            Err(_) if hashed.lock().expect("hashing lock").checksum_mismatch => {
                return Err(Error::DigestMismatch {
                    what: "Upload-Checksum",
                })
            }
            Err(Error::Invalid { field: "body", .. }) => {
                return Err(Error::TooLarge {
                    limit: length.unwrap_or(self.config.max_file_size),
                })
            }
            Err(e) => return Err(e),
        };
        let sha = {
            let mut hashed = hashed.lock().expect("hashing lock");
            hashed.sha1.take().filter(|_| hashed.ended)
        }
        .ok_or_else(|| Error::backend("tus", "the store ended the body early"))?;
        let broken = broken.lock().expect("broken lock").take();
        let broken = match broken {
            Some(e) if written == 0 => {
                self.drop_attempt(&sid, offset, &last, &attempt, &record.id)
                    .await;
                return Err(Error::Incomplete(e));
            }
            b => b,
        };
        let new_offset = offset + written;
        // A broken request's length or digest is not taken as said: the client says it again.
        let (length, representation) = match broken {
            Some(_) => (record.length, None),
            None => (length, checks.representation),
        };
        let progress = StreamProgress {
            offset: new_offset,
            // Only a length the upload does not have yet is written (the store keeps the
            // first one it gets; leaving it out keeps its index untouched).
            length: length.filter(|_| record.length.is_none()),
            hash_state: TusState::join(&sha, &attempt),
            expires_at: self.tus_expiry(),
            file_id: None,
            digest: representation,
        };
        if !self
            .sessions
            .append(&record.id, offset, holder, &progress)
            .await?
        {
            self.drop_attempt(&sid, offset, &last, &attempt, &record.id)
                .await;
            return Err(Error::OffsetMismatch { expected: offset });
        }
        let record = TusUpload {
            offset: progress.offset,
            length,
            hash_state: progress.hash_state,
            expires_at: progress.expires_at,
            file_id: None,
            digest: representation.or(record.digest),
            ..record
        };
        if length == Some(new_offset) && record.concat != PARTIAL {
            return self.tus_finish(user, record, holder).await;
        }
        match broken {
            Some(e) => Err(Error::Incomplete(e)),
            None => Ok(record),
        }
    }

    async fn drop_attempt(
        &self,
        sid: &StagingId,
        offset: u64,
        last: &str,
        attempt: &str,
        id: &UploadId,
    ) {
        if let Err(e) = self
            .blobs
            .stage_drop_write(sid, offset, last, attempt)
            .await
        {
            tracing::warn!(error = %e, upload = %id, "could not drop a tus append");
        }
    }

    /// Publishes a tus upload whose every byte is committed: exactly the committed appends,
    /// whose SHA1 was computed as they arrived.
    async fn tus_finish(&self, user: &User, record: TusUpload, holder: &str) -> Result<TusUpload> {
        let (sha, last) = TusState::split(&record.hash_state)?;
        let sha1 = Sha1Hex::from_digest(&sha.finalize());
        let key = self
            .blobs
            .stage_complete_appends(&staging(&record.id), &last, record.offset, &sha1)
            .await?;
        if !self.blobs.isolates_writes() {
            // Appends may have shared a slot with a writer whose lock lapsed: what the store
            // assembled is hashed before anything is published.
            let mut state = Sha1State::new();
            super::hash_stream(&mut state, self.blobs.get(&key, None).await?).await?;
            if Sha1Hex::from_digest(&state.finalize()) != sha1 {
                self.blobs.delete(&key).await?;
                tracing::warn!(upload = %record.id, "assembled tus upload does not hash to its appends: refused");
                return Err(Error::Sha1Mismatch);
            }
        }
        if !self.has_digest(&key, &sha1, record.digest).await? {
            // The client's bytes are not what it said they would be: nothing is published,
            // and the upload, which can never complete otherwise, goes.
            self.blobs.delete(&key).await?;
            self.sessions.delete(&record.id).await?;
            return Err(Error::DigestMismatch {
                what: "Repr-Digest",
            });
        }
        let name = FileName::parse(&record.file_name)?;
        let file = NewUserFile::new(user.id, sha1, name, record.offset, now_millis());
        let file = self.files.publish(key, &file).await?;
        let progress = StreamProgress {
            offset: record.offset,
            length: None, // set by the append that completed it
            hash_state: record.hash_state.clone(),
            expires_at: self.tus_expiry(),
            file_id: Some(file.id),
            digest: None,
        };
        if !self
            .sessions
            .append(&record.id, record.offset, holder, &progress)
            .await?
        {
            return Err(Error::OffsetMismatch {
                expected: record.offset,
            });
        }
        Ok(TusUpload {
            file_id: progress.file_id,
            expires_at: progress.expires_at,
            ..record
        })
    }

    /// Whether assembled content has the digest the client named: a SHA1 is the one computed
    /// as the bytes came; any other algorithm reads the content once more.
    async fn has_digest(&self, key: &str, sha1: &Sha1Hex, want: Option<Checksum>) -> Result<bool> {
        match want {
            None => Ok(true),
            Some(Checksum::Sha1(d)) => Ok(Sha1Hex::from_digest(&d) == *sha1),
            Some(want) => {
                let mut check = ChecksumCheck::new(Some(want));
                let mut body = self.blobs.get(key, None).await?;
                while let Some(chunk) = body.next().await {
                    check.update(&chunk.map_err(|e| Error::backend("blob", e))?);
                }
                Ok(check.matches())
            }
        }
    }

    /// Drops a tus upload and its staged bytes (`DELETE`, termination): the sessions' abort.
    pub async fn tus_terminate(&self, user: &User, id: &UploadId) -> Result<()> {
        self.tus_status(user, id).await?;
        self.abort_upload(user, id).await
    }
}
