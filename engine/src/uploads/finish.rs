//! Completion (assemble exactly the committed parts, verify the SHA1, publish), abort, and the
//! expiry of idle sessions and their staged bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{hash_stream, staging, PartsSession, Sha1State, Uploads, CLAIM_LEASE, RESULT_KEPT};
use crate::blobs::PartReceipt;
use crate::error::{Error, Result};
use crate::meta::{NewUserFile, UserFile};
use crate::sessions::{Layout, PartRecord, SessionRecord};
use crate::stats::Stats;
use crate::types::{now_millis, ByteRange, FileName, Sha1Hex, UploadId};
use crate::User;

impl Uploads {
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

    async fn finish(&self, user: &User, session: PartsSession) -> Result<UserFile> {
        let staging = session.staging();
        let verify_started = std::time::Instant::now();
        // Hash what the prefix does not cover yet: nothing, for an in-order upload.
        self.advance_hash(&session).await?;
        // The committed attempts and the progress over them, read consistently: the progress
        // before and after the parts is the same (no part was replaced in between).
        let (current, parts) = loop {
            let before = self.parts_session(&session.id).await?;
            let parts = self.sessions.parts(&session.id).await?;
            let after = self.parts_session(&session.id).await?;
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
            self.discard(&session.to_record()).await;
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

    /// Drops a session of any layout and everything staged for it (a finished stream has
    /// nothing staged any more).
    async fn drop_session(&self, session: &SessionRecord) -> Result<()> {
        if session.is_open() {
            self.blobs.stage_abort(&staging(&session.id)).await?;
        }
        self.sessions.delete(&session.id).await?;
        Ok(())
    }

    /// Drops a session as `drop_session` does, logging instead of failing.
    async fn discard(&self, session: &SessionRecord) {
        if let Err(e) = self.drop_session(session).await {
            tracing::warn!(error = %e, upload = %session.id, "could not drop the session");
        }
    }

    /// Ends the caller's session of any layout, dropping its staged bytes (REST `DELETE`,
    /// `/file/mpupload/cancel`, tus termination).
    pub async fn abort_upload(&self, user: &User, id: &UploadId) -> Result<()> {
        let session = self.own_record(user, id).await?;
        self.drop_session(&session).await?;
        if matches!(session.layout, Layout::Parts(_)) {
            Stats::inc(&self.stats.sessions_aborted);
        }
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
            if self.sessions.get(&id).await?.is_none() {
                self.blobs.stage_abort(&staging).await?;
                tracing::info!(upload = %id, "staged bytes without a session removed");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes sessions of every layout idle past their TTL, and their staged bytes; returns
    /// how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let started = std::time::Instant::now();
            let expired = self.sessions.expired(now_millis(), 100).await?;
            if expired.is_empty() {
                return Ok(n);
            }
            for s in expired {
                self.discard(&s).await;
                if matches!(s.layout, Layout::Parts(_)) {
                    Stats::inc(&self.stats.sessions_expired);
                }
                n += 1;
            }
            crate::db::pace(started).await;
        }
    }
}
