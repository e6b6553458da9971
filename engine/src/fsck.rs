//! `fsck`: checks a blob store against the metadata database. Every blob (or a random sample)
//! is read back and hashed; one whose bytes do not hash to its SHA1 is quarantined at once
//! (`Files::quarantine`), so the next genuine upload replaces it. Objects that no blob row
//! refers to, and staged uploads that no session refers to, are orphans: counted, and removed
//! with `repair`. Anything written within `grace` is left alone (an upload or a transfer may
//! be about to record it).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::types::{now_millis, Sha1Hex, UploadId};
use crate::Engine;

/// What `fsck` does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FsckOptions {
    /// The store to check.
    pub store: String,
    /// Fraction of the blobs to re-hash (1.0: all).
    pub sample: f64,
    /// Remove the orphans found.
    pub repair: bool,
    /// Objects and staging younger than this are not orphans yet.
    pub grace: Duration,
}

impl FsckOptions {
    pub fn new(store: impl Into<String>) -> Self {
        FsckOptions {
            store: store.into(),
            sample: 1.0,
            repair: false,
            grace: Duration::from_secs(3600),
        }
    }

    pub fn sample(mut self, fraction: f64) -> Self {
        self.sample = fraction;
        self
    }

    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }

    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// What `fsck` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blob rows of the store.
    pub blobs: u64,
    /// Of those, read back and hashed.
    pub checked: u64,
    pub bytes_checked: u64,
    /// Whose bytes did not hash to their SHA1: quarantined now.
    pub quarantined: u64,
    /// Quarantined before this run (waiting for a genuine upload).
    pub already_quarantined: u64,
    /// Rows whose object is missing from the store.
    pub missing: u64,
    /// Objects no row refers to.
    pub orphan_blobs: u64,
    /// Staged uploads no session refers to.
    pub orphan_staging: u64,
    /// Orphans removed (`repair`).
    pub removed: u64,
}

impl Engine {
    /// Checks `opts.store`: see the module documentation.
    pub async fn fsck(&self, opts: &FsckOptions) -> Result<FsckReport> {
        if !(opts.sample > 0.0 && opts.sample <= 1.0) {
            return Err(Error::invalid("sample", "must be a fraction in (0, 1]"));
        }
        let store = self.files.store(&opts.store)?.clone();
        let mut report = FsckReport::default();
        let mut known = HashSet::new();
        let mut after: Option<Sha1Hex> = None;
        loop {
            let page = self
                .files
                .blobs_in_store(&opts.store, after.as_ref(), 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.sha1.clone());
            for blob in page {
                report.blobs += 1;
                known.insert(blob.key.clone());
                if blob.quarantined {
                    report.already_quarantined += 1;
                    continue;
                }
                if opts.sample < 1.0 && rand::random::<f64>() >= opts.sample {
                    continue;
                }
                let mut body = match store.get(&blob.key, None).await {
                    Ok(b) => b,
                    Err(Error::NotFound { .. }) => {
                        tracing::error!(sha1 = %blob.sha1, key = %blob.key, "fsck: blob missing from its store");
                        report.missing += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut hasher = Sha1::new();
                let mut len = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| Error::backend("blob", e))?;
                    len += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                report.checked += 1;
                report.bytes_checked += len;
                let got = Sha1Hex::from_digest(&hasher.finalize().into());
                if got != blob.sha1 || len != blob.size {
                    self.files.quarantine(&blob, "fsck").await?;
                    report.quarantined += 1;
                }
            }
        }
        let young = now_millis() - opts.grace.as_millis() as i64;
        for (key, modified) in store.list_blobs().await? {
            if known.contains(&key) || modified > young {
                continue;
            }
            // Rows may have been added since the listing above: look again before calling
            // the object an orphan.
            if self.files.blob_at(&opts.store, &key).await? {
                continue;
            }
            report.orphan_blobs += 1;
            tracing::warn!(store = %opts.store, key, "fsck: object without a blob row");
            if opts.repair {
                match store.delete(&key).await {
                    Ok(()) => report.removed += 1,
                    Err(e) => tracing::warn!(key, error = %e, "fsck: could not remove an orphan"),
                }
            }
        }
        // Uploads are staged in the upload store only.
        let upload_store = self.files.upload_store();
        let idle = if upload_store.name() == opts.store {
            upload_store.stage_list_idle(opts.grace).await?
        } else {
            Vec::new()
        };
        for staging in idle {
            let Ok(id) = UploadId::parse(staging.as_str()) else {
                continue;
            };
            if self.wiring.sessions.get(&id).await?.is_some() {
                continue;
            }
            report.orphan_staging += 1;
            tracing::warn!(store = %opts.store, upload = %id, "fsck: staged upload without a session");
            if opts.repair {
                upload_store.stage_abort(&staging).await?;
                report.removed += 1;
            }
        }
        Ok(report)
    }
}
