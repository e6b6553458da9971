//! Numbered parts: each write is an attempt in a place of its own until one compare-and-set
//! makes it the part; parts at the hash frontier are hashed as they arrive, so completion
//! rarely reads anything again.

use std::collections::BTreeMap;

use super::{hash_stream, PartsSession, Sha1State, UploadStatus, Uploads};
use crate::blobs::{ByteStream, PartReceipt};
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::hashing::Hashing;
use crate::sessions::{PartCommit, PartRecord};
use crate::types::{now_millis, UploadId};
use crate::User;

impl Uploads {
    /// Stores part `n`. The bytes go to a place of their own (an attempt); only when they are
    /// durable and any digest sent with them matched does one compare-and-set make the attempt
    /// the part. A failed or refused write leaves the part as it was. Safe to repeat.
    pub async fn put_part(
        &self,
        user: &User,
        id: &UploadId,
        n: u32,
        body: ByteStream,
        digest: Option<Checksum>,
    ) -> Result<UploadStatus> {
        let _slot = self.upload_slot(user)?;
        let session = self.own_session(user, id).await?;
        let spec = session.part_spec(n)?;
        // A wrong checksum fails the body at its end, so the store keeps nothing of it (S3
        // never sends it).
        let (body, hashed) = Hashing::new().checksum(digest).exact(spec.len).stream(body);
        let staging = session.staging();
        let receipt = match self.blobs.stage_put_part(&staging, spec, body).await {
            Ok(r) => r,
            Err(e) => {
                return Err(if hashed.lock().expect("hashing lock").checksum_mismatch {
                    Error::DigestMismatch {
                        what: match digest {
                            Some(Checksum::Md5(_)) => "Content-MD5",
                            Some(Checksum::Crc32c(_)) => "x-amz-checksum-crc32c",
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
    pub(super) async fn advance_hash(&self, session: &PartsSession) -> Result<()> {
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

    async fn advance_hash_inner(&self, session: &PartsSession) -> Result<()> {
        loop {
            // The progress first, then the parts: a part replaced after this read changes the
            // epoch, so the compare-and-set below cannot land a hash of replaced bytes.
            let current = match self.parts_session(&session.id).await {
                Ok(current) => current,
                Err(Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
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
                    match self.parts_session(&session.id).await {
                        Ok(now) if now.hash.epoch != from.epoch => continue,
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
    pub(super) async fn hash_parts(
        &self,
        session: &PartsSession,
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
}
