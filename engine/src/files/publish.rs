//! Publishing verified content: the blob row and the user's file in one step, deduplicated;
//! the collision gate before content is shared; quarantine of bytes that do not hash to their
//! SHA1; the quota; scheduling the transfer of new blobs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Files;
use crate::blobs::BlobStore;
use crate::collision;
use crate::error::{Error, Result};
use crate::meta::{
    self, FileIndex, NewBlob, NewUserFile, OutboxEntry, ProofStore, Published, UserFile,
};
use crate::stats::Stats;
use crate::transfer::TransferQueue;
use crate::types::{now_millis, Sha1Hex, UserId};

/// Where new blobs move after upload.
#[derive(Clone, Debug)]
pub(crate) struct TransferPlan {
    pub queue: Arc<dyn TransferQueue>,
    pub to: String,
    pub after: Duration,
    /// Wakes the outbox relay when a publish wrote a job.
    pub wake: Arc<tokio::sync::Notify>,
}

/// Sets aside a blob whose stored bytes do not hash to its SHA1 (`Files::quarantine`).
pub(super) async fn quarantine(
    index: &dyn FileIndex,
    store: &dyn BlobStore,
    stats: &Stats,
    blob: &meta::BlobRecord,
    found_by: &str,
) -> Result<()> {
    if !index.quarantine_blob(&blob.sha1, &blob.key).await? {
        return Ok(()); // moved on meanwhile (replaced, or quarantined by someone else)
    }
    Stats::inc(&stats.quarantined);
    match store.quarantine(&blob.key).await {
        Ok(place) => tracing::error!(
            sha1 = %blob.sha1, store = %blob.store, key = %blob.key, place, found_by,
            "stored content does not hash to its SHA1: quarantined"
        ),
        Err(e) => tracing::error!(
            sha1 = %blob.sha1, store = %blob.store, key = %blob.key, found_by, error = %e,
            "stored content does not hash to its SHA1: out of dedup, but its bytes could not be moved aside"
        ),
    }
    Ok(())
}

/// When new content's collision-attack verdict is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollisionScan {
    /// In the background right after publishing: the first instant upload of the content
    /// answers from the metadata store, whatever its size. Costs a read of every new blob
    /// (about 2–3 CPU s per GiB), whether it is ever shared or not.
    AtPublish,
    /// When the content is first shared: no cost for content nobody shares again, but the first
    /// instant upload of it waits for a read of the whole blob (seconds per GiB).
    AtFirstShare,
}

/// The collision-attack verdict per SHA1 (`collision`), computed once: in the background as
/// soon as new content is published, so that the first instant upload of it (秒传) answers from
/// the metadata store at once, whatever its size; or, where that has not happened yet (the
/// node restarted meanwhile, the content predates this), when the content is first shared.
#[derive(Debug)]
pub(crate) struct Scanner {
    index: Arc<dyn FileIndex>,
    proofs: Arc<dyn ProofStore>,
    stores: BTreeMap<String, Arc<dyn BlobStore>>,
    stats: Arc<Stats>,
    /// Striped by SHA1: claims of one unchecked blob wait for the first scan's verdict instead
    /// of each reading the blob; other blobs are scanned meanwhile.
    stripes: [tokio::sync::Mutex<()>; 16],
    /// One background scan at a time per node (a scan keeps one core busy; requests have the
    /// other), queued in publish order.
    background: tokio::sync::Semaphore,
    /// Verdicts read or made here. A recorded verdict never changes (the first one stands), so
    /// every claim after the first answers without asking the metadata store; at most
    /// `KNOWN_VERDICTS` are kept (the map starts afresh when full).
    known: Mutex<HashMap<Sha1Hex, bool>>,
}

const KNOWN_VERDICTS: usize = 65_536;

impl Scanner {
    pub(crate) fn new(
        index: Arc<dyn FileIndex>,
        proofs: Arc<dyn ProofStore>,
        stores: BTreeMap<String, Arc<dyn BlobStore>>,
        stats: Arc<Stats>,
    ) -> Self {
        Scanner {
            index,
            proofs,
            stores,
            stats,
            stripes: Default::default(),
            background: tokio::sync::Semaphore::new(1),
            known: Mutex::default(),
        }
    }

    fn known(&self, sha1: &Sha1Hex) -> Option<bool> {
        self.known.lock().expect("verdicts lock").get(sha1).copied()
    }

    fn remember(&self, sha1: &Sha1Hex, collision: bool) -> Option<bool> {
        let mut known = self.known.lock().expect("verdicts lock");
        if known.len() >= KNOWN_VERDICTS {
            known.clear();
        }
        known.insert(sha1.clone(), collision);
        Some(collision)
    }

    /// Whether the blob's bytes carry a SHA1 collision attack: from the recorded verdict, else
    /// by reading the blob once (and recording what was found). `None` when the bytes turned
    /// out not to hash to the SHA1 at all: the blob is quarantined.
    async fn verdict(&self, blob: &meta::BlobRecord) -> Result<Option<bool>> {
        if let Some(v) = self.known(&blob.sha1) {
            return Ok(Some(v));
        }
        if let Some(v) = self.proofs.blob_check(&blob.sha1).await? {
            return Ok(self.remember(&blob.sha1, v));
        }
        let stripe = usize::from(blob.sha1.as_str().as_bytes()[0]) % 16;
        let _one = self.stripes[stripe].lock().await;
        if let Some(v) = self.proofs.blob_check(&blob.sha1).await? {
            return Ok(self.remember(&blob.sha1, v));
        }
        // The scan we may have waited for can have quarantined the blob (its bytes did not
        // hash to the SHA1; no verdict is recorded then) or it can have been replaced: the
        // record as it is now.
        let blob = match self.index.blob(&blob.sha1).await? {
            Some(b) if !b.quarantined => b,
            _ => return Ok(None),
        };
        let blob = &blob;
        let store = self.stores.get(&blob.store).ok_or_else(|| {
            Error::backend(
                "blob",
                format!("blob is in unconfigured store {}", blob.store),
            )
        })?;
        let scan = collision::scan(store.as_ref(), &blob.key, &blob.sha1).await?;
        Stats::inc(&self.stats.collision_scans);
        if scan == collision::Scan::Mismatch {
            quarantine(
                &*self.index,
                store.as_ref(),
                &self.stats,
                blob,
                "collision check",
            )
            .await?;
            return Ok(None);
        }
        let verdict = scan == collision::Scan::Collision;
        self.proofs
            .record_blob_check(&blob.sha1, verdict, now_millis())
            .await?;
        Ok(Some(verdict))
    }

    /// Computes the verdict of content just published, in the background (queued behind the
    /// scans before it). A failure is logged; the first share then scans instead.
    fn in_background(self: &Arc<Self>, sha1: Sha1Hex) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(_turn) = me.background.acquire().await else {
                return;
            };
            let done = async {
                match me.index.blob(&sha1).await? {
                    Some(blob) if !blob.quarantined => me.verdict(&blob).await.map(drop),
                    _ => Ok(()), // deleted or set aside meanwhile
                }
            };
            if let Err(e) = done.await {
                tracing::warn!(sha1 = %sha1, error = %e, "collision check of new content failed; it runs again when the content is first shared");
            }
        });
    }
}

impl Files {
    /// Refuses content that would take the user's files past their quota.
    pub(crate) async fn check_quota(&self, user: UserId, adding: u64) -> Result<()> {
        if let Some(quota) = self.user_quota {
            let used = self.index.user_usage(user).await?;
            if used.saturating_add(adding) > quota {
                return Err(Error::QuotaExceeded { quota });
            }
        }
        Ok(())
    }

    /// Publishes verified content that was just written to the upload store under `key`, with
    /// the user's file. When someone published the same content first, theirs is kept and
    /// this copy removed; on failure the copy is removed too.
    pub(crate) async fn publish(&self, key: String, file: &NewUserFile) -> Result<UserFile> {
        let blobs = &self.upload_store;
        let mut blob = NewBlob::new(blobs.name(), key.clone());
        if let Some(t) = &self.transfers {
            // Written with the blob (the outbox), handed to the queue by the relay.
            blob = blob.with_transfer(OutboxEntry {
                sha1: file.sha1.clone(),
                to: t.to.clone(),
                due_at: file.now + t.after.as_millis() as i64,
            });
        }
        let mut healed = false;
        let published = async {
            if let Some(existing) = self.index.blob(&file.sha1).await? {
                if !self.ensure_shareable(&existing).await? {
                    // The stored copy was quarantined: these verified bytes replace it, for
                    // every file that refers to the SHA1.
                    healed = self
                        .index
                        .replace_quarantined(&file.sha1, blobs.name(), &key)
                        .await?;
                    if healed {
                        tracing::warn!(sha1 = %file.sha1, key, "quarantined content replaced by a verified upload");
                    }
                }
            }
            self.index.publish(&blob, file).await
        };
        match published.await {
            Ok(Published::Created(f)) => {
                if let Some(t) = &self.transfers {
                    t.wake.notify_one();
                }
                if self.collision_scan == CollisionScan::AtPublish {
                    self.scanner.in_background(f.sha1.clone());
                }
                Ok(f)
            }
            Ok(Published::Deduplicated(f)) if healed => Ok(f),
            Ok(Published::Deduplicated(f)) => {
                blobs.delete(&key).await?;
                // Someone published the same SHA1 between the check above and ours.
                if let Some(existing) = self.index.blob(&f.sha1).await? {
                    if let Err(e) = self.ensure_shareable(&existing).await.and_then(|ok| {
                        ok.then_some(()).ok_or(Error::Busy) // quarantined meanwhile: try again
                    }) {
                        if f.uploaded_at >= file.now {
                            self.index.delete_user_file(f.user_id, &f.id).await?;
                        }
                        return Err(e);
                    }
                }
                Ok(f)
            }
            Err(e) => {
                if let Err(cleanup) = blobs.delete(&key).await {
                    tracing::warn!(error = %cleanup, key, "could not remove unpublished blob");
                }
                Err(e)
            }
        }
    }

    /// Content with this SHA1 is about to be shared (an instant upload, or an upload of content
    /// the store already holds): refused when its stored bytes carry a SHA1 collision attack.
    /// The verdict (about collision attacks only) is computed once per SHA1 — normally in the
    /// background right after the content was published — and kept in the metadata store. `false` when the blob is quarantined (now, because its bytes
    /// turned out not to hash to its SHA1, or before): it is shared with nobody, and the caller
    /// goes on as if the content were not stored.
    pub(crate) async fn ensure_shareable(&self, blob: &meta::BlobRecord) -> Result<bool> {
        if blob.quarantined {
            return Ok(false);
        }
        let Some(collision) = self.scanner.verdict(blob).await? else {
            return Ok(false); // its bytes do not hash to its SHA1: quarantined now
        };
        if collision {
            tracing::warn!(
                sha1 = %blob.sha1,
                "content carries a SHA1 collision attack: not shared"
            );
            return Err(Error::Sha1Collision);
        }
        Ok(true)
    }

    /// Sets aside a blob whose stored bytes do not hash to its SHA1 (`found_by` says which
    /// check saw it): out of dedup at once, its bytes moved to the store's quarantine for
    /// inspection, logged. The next genuine upload of the SHA1 stores fresh bytes.
    pub async fn quarantine(&self, blob: &meta::BlobRecord, found_by: &str) -> Result<()> {
        let store = self.store(&blob.store)?.clone();
        quarantine(&*self.index, &*store, &self.stats, blob, found_by).await
    }

    /// Hands the transfer jobs that publishing wrote to the outbox to the transfer queue, until
    /// `stop` resolves ([`crate::transfer::relay`]); returns at once when no transfer is
    /// configured.
    pub async fn relay_transfers(&self, stop: futures::future::BoxFuture<'static, ()>) {
        if let Some(t) = &self.transfers {
            crate::transfer::relay(&*self.index, &*t.queue, &t.wake, stop).await;
        }
    }
}
