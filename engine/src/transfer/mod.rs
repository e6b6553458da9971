//! Moving blobs between stores: from the hot store uploads land in to a cold one after a delay
//! (`transfer_to`, `transfer_after`), and whole-store migrations (Ceph → OSS).
//!
//! A move copies the blob, verifies its SHA1 and size at the destination, switches the blob's
//! location in one metadata update (only if it is still where the copy was read from), then
//! deletes the source. Repeating a move is harmless: a blob already at the destination, or
//! deleted meanwhile, is a no-op. Downloads keep working throughout: a reader that looked the
//! blob up just before the switch finds the source gone and follows the new location
//! (`Files::read`).
//!
//! Jobs go through a [`TransferQueue`]: RabbitMQ (`amqp`, feature `amqp`) or a table in the
//! metadata database ([`SqlTransferQueue`]).

#[cfg(feature = "amqp")]
pub mod amqp;
mod sql;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::StreamExt;

pub use sql::SqlTransferQueue;

use crate::blobs::ByteStream;
use crate::error::{Error, Result};
use crate::files::Files;
use crate::hashing::{Hashed, Hashing};
use crate::meta::FileIndex;
use crate::meta::GcEntry;
use crate::stats::Stats;
use crate::types::Sha1Hex;
use crate::uploads::Sha1State;

/// Move the blob with this SHA1 to store `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferJob {
    pub sha1: Sha1Hex,
    pub to: String,
    /// Failed tries so far.
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transferred {
    /// Copied, verified, switched; the source was deleted (or queued for deletion).
    Moved { bytes: u64 },
    /// Already in the destination store.
    AlreadyThere,
    /// The blob no longer exists (its last file was deleted), or it moved elsewhere meanwhile.
    Gone,
    /// Its stored bytes do not hash to its SHA1: quarantined (now or before), not moved.
    Quarantined,
}

/// Where transfer jobs wait: the producer side (`enqueue`, when a blob is published) and the
/// consumer side (`consume`, in `chunkvault worker` or a node's own worker).
#[async_trait]
pub trait TransferQueue: Send + Sync + std::fmt::Debug {
    /// Queues `job` to run after `delay`. Durable when it returns.
    async fn enqueue(&self, job: &TransferJob, delay: Duration) -> Result<()>;

    /// Runs due jobs through `transfers` until `stop` resolves: a failed job is retried with
    /// the queue's backoff and dead after its last attempt; a job interrupted by a crash
    /// returns to the queue.
    async fn consume(&self, transfers: &Transfers, stop: BoxFuture<'static, ()>);

    /// Whether the queue answers (readiness).
    async fn ping(&self) -> Result<()>;
}

/// Retry policy: delays double from `base`, capped at five minutes; after `max_attempts`
/// failed tries a job is dead (the dead-letter queue, or a row marked dead).
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempt` failures without jitter (whole seconds suit the broker's
    /// per-delay queues).
    pub fn backoff_exact(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1 << attempt.min(16))
            .min(Duration::from_secs(300))
    }

    /// The delay before try number `attempt + 1` (after `attempt` failures), with up to 20%
    /// jitter so failed jobs do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let capped = self.backoff_exact(attempt);
        let jitter = rand::random::<f64>() * 0.2;
        capped.mul_f64(1.0 + jitter)
    }
}

fn hashing(body: ByteStream) -> (ByteStream, Arc<Mutex<Hashed>>) {
    Hashing::new().sha1(Sha1State::new()).stream(body)
}

/// SHA1 and length of a body read to its end.
fn digest(state: &Arc<Mutex<Hashed>>) -> Result<(Sha1Hex, u64)> {
    state
        .lock()
        .expect("hashing lock")
        .digest()
        .ok_or_else(|| Error::backend("transfer", "a body ended early"))
}

/// Moves blobs between the configured stores (the worker side of the transfer queue, and
/// `chunkvault migrate`).
#[derive(Debug)]
pub struct Transfers {
    files: Arc<Files>,
    index: Arc<dyn FileIndex>,
    stats: Arc<Stats>,
}

impl Transfers {
    pub(crate) fn new(files: Arc<Files>, index: Arc<dyn FileIndex>, stats: Arc<Stats>) -> Self {
        Transfers {
            files,
            index,
            stats,
        }
    }

    /// Moves one blob to store `to` (see the module documentation). Safe to repeat.
    pub async fn transfer_blob(&self, sha1: &Sha1Hex, to: &str) -> Result<Transferred> {
        let dest = self.files.store(to)?.clone();
        let Some(blob) = self.index.blob(sha1).await? else {
            return Ok(Transferred::Gone);
        };
        if blob.store == to {
            return Ok(Transferred::AlreadyThere);
        }
        if blob.quarantined {
            return Ok(Transferred::Quarantined);
        }
        let source = self.files.store(&blob.store)?.clone();
        let body = match source.get(&blob.key, None).await {
            Ok(b) => b,
            // Moved or deleted since the lookup: look again next time.
            Err(Error::NotFound { .. }) => {
                return match self.index.blob(sha1).await? {
                    Some(b) if b.store == to => Ok(Transferred::AlreadyThere),
                    Some(b) if b.key != blob.key => Ok(Transferred::Gone),
                    None => Ok(Transferred::Gone),
                    Some(_) => Err(Error::backend("transfer", "source content is missing")),
                };
            }
            Err(e) => return Err(e),
        };
        let (body, state) = hashing(body);
        let pending = dest.put_pending(body).await?;
        let (copied, size) = digest(&state)?;
        if copied != *sha1 || size != blob.size {
            // The source's bytes are wrong: nothing worth moving; set them aside.
            drop(pending);
            tracing::warn!(sha1 = %sha1, "transfer source read back as {copied} ({size} bytes)");
            self.files.quarantine(&blob, "transfer").await?;
            return Ok(Transferred::Quarantined);
        }
        let key = pending.commit(sha1).await?;
        // Verify what the destination holds, not what we sent it.
        let check = async {
            let (body, state) = hashing(dest.get(&key, None).await?);
            body.for_each(|_| async {}).await;
            digest(&state)
        };
        match check.await {
            Ok((h, n)) if h == *sha1 && n == blob.size => {}
            other => {
                let _ = dest.delete(&key).await;
                return Err(match other {
                    Err(e) => e,
                    Ok((h, n)) => Error::backend(
                        "transfer",
                        format!("destination holds {h} ({n} bytes) for {sha1}"),
                    ),
                });
            }
        }
        let from = GcEntry {
            store: blob.store.clone(),
            key: blob.key.clone(),
        };
        let to_entry = GcEntry {
            store: to.to_owned(),
            key: key.clone(),
        };
        if !self.index.move_blob(sha1, &from, &to_entry).await? {
            dest.delete(&key).await?;
            return Ok(Transferred::Gone);
        }
        if let Err(e) = source.delete(&blob.key).await {
            tracing::warn!(error = %e, key = blob.key, "transfer source not deleted; queued");
            self.index.queue_gc(&from).await?;
        }
        tracing::info!(sha1 = %sha1, from = blob.store, to, bytes = blob.size, "blob transferred");
        Ok(Transferred::Moved { bytes: blob.size })
    }

    /// Runs one job; what the queue should do with it afterwards.
    pub async fn run_transfer(&self, job: &TransferJob) -> Result<Transferred> {
        let res = self.transfer_blob(&job.sha1, &job.to).await;
        let s = &self.stats;
        crate::stats::Stats::inc(match &res {
            Ok(Transferred::Moved { .. }) => &s.transfers_moved,
            Ok(_) => &s.transfers_noop,
            Err(_) => &s.transfers_failed,
        });
        res
    }
}
