//! tus concatenation: finished partial uploads become one file.

use std::io;

use futures::{StreamExt, TryStreamExt};

use super::{TusState, TusUpload, MAX_CONCAT_PARTS, PARTIAL};
use crate::error::{Error, Result};
use crate::types::{now_millis, FileName, Sha1Hex, UploadId};
use crate::uploads::{staging, Uploads};
use crate::User;

impl Uploads {
    /// The final upload of a concatenation: the partial uploads' bytes, in order, become one
    /// file (hashed and deduplicated like any upload); the partials are then dropped.
    pub(super) async fn tus_concatenate(
        &self,
        user: &User,
        parts: &[UploadId],
        header: String,
        metadata: String,
        name: FileName,
    ) -> Result<TusUpload> {
        if parts.is_empty() {
            return Err(Error::invalid("Upload-Concat", "names no partial uploads"));
        }
        if parts.len() > MAX_CONCAT_PARTS {
            return Err(Error::invalid(
                "Upload-Concat",
                format!("names more than {MAX_CONCAT_PARTS} partial uploads"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if !parts.iter().all(|p| seen.insert(p)) {
            return Err(Error::invalid(
                "Upload-Concat",
                "names a partial upload more than once",
            ));
        }
        let mut pieces = Vec::new();
        for id in parts {
            let r = self.tus_status(user, id).await?;
            if r.concat != PARTIAL || r.length != Some(r.offset) {
                return Err(Error::invalid(
                    "Upload-Concat",
                    "every part must be a finished partial upload",
                ));
            }
            let (sha, last) = TusState::split(&r.hash_state)?;
            pieces.push((
                staging(id),
                r.offset,
                Sha1Hex::from_digest(&sha.finalize()),
                last,
            ));
        }
        let total: u64 = pieces.iter().map(|p| p.1).sum();
        if total > self.config.max_file_size {
            return Err(Error::TooLarge {
                limit: self.config.max_file_size,
            });
        }
        self.files.check_quota(user.id, total).await?;
        // Each partial is assembled into an object (exactly its committed appends), which is
        // then read back in order and removed.
        let mut assembled: Vec<String> = Vec::new();
        for (sid, len, sha1, last) in &pieces {
            if *len > 0 {
                assembled.push(
                    self.blobs
                        .stage_complete_appends(sid, last, *len, sha1)
                        .await?,
                );
            }
        }
        let blobs = self.blobs.clone();
        let body = futures::stream::iter(assembled.clone())
            .then(move |key| {
                let blobs = blobs.clone();
                async move {
                    blobs
                        .get(&key, None)
                        .await
                        .map_err(|e| io::Error::other(e.to_string()))
                }
            })
            .try_flatten()
            .boxed();
        let result = self.upload(user, name.as_str(), body).await;
        for key in &assembled {
            if let Err(e) = self.blobs.delete(key).await {
                tracing::warn!(error = %e, key, "could not remove an assembled partial upload");
            }
        }
        let file = result?;
        let now = now_millis();
        let record = TusUpload {
            id: UploadId::generate(),
            owner: user.id,
            file_name: name.as_str().to_owned(),
            metadata,
            length: Some(total),
            offset: total,
            hash_state: String::new(),
            created_at: now,
            expires_at: self.tus_expiry(),
            file_id: Some(file.id),
            concat: header,
            digest: None,
        };
        self.sessions.create_or_resume(&record.to_record()).await?;
        for id in parts {
            if let Err(e) = self.blobs.stage_abort(&staging(id)).await {
                tracing::warn!(error = %e, upload = %id, "could not drop a partial upload");
            }
            self.sessions.delete(id).await?;
        }
        Ok(record)
    }
}
