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
    /// returns to the queue. Once `stop` resolves no job is taken; the one in hand runs to its
    /// end, then `consume` returns (the caller bounds that wait: its shutdown grace).
    async fn consume(&self, transfers: &Transfers, stop: BoxFuture<'static, ()>);

    /// The caller gave up waiting for the job in hand (its shutdown grace ran out; the job's
    /// future is dropped): give it back to the queue at once. A broker redelivers what was not
    /// acknowledged by itself; a lease-based queue clears the lease.
    async fn release_in_flight(&self) {}

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

/// Jobs the relay takes from the outbox at once.
const RELAY_BATCH: u32 = 100;
/// How often an idle relay looks at the outbox (it is woken at once by a publish on this node;
/// this finds what other nodes, or this one before a restart, left there).
const RELAY_POLL: Duration = Duration::from_secs(5);
/// Longest pause between tries while the queue is unreachable.
const RELAY_MAX_PAUSE: Duration = Duration::from_secs(30);

/// The transactional outbox's relay: hands every job in the outbox to `queue` (oldest due
/// first, with what is left of its delay) and deletes it from the outbox once `queue` holds it
/// (`enqueue` is durable when it returns: a broker's publisher confirm, or a committed row).
/// Runs until `stop`: at once when `wake` fires, every few seconds otherwise, and with growing
/// pauses while the queue fails. A job is never lost to a broker outage or a restart (it stays in
/// the database until queued); one handed over twice (two nodes' relays, or a crash between the
/// two steps) is harmless: a second move of a blob already moved does nothing.
pub async fn relay(
    index: &dyn FileIndex,
    queue: &dyn TransferQueue,
    wake: &tokio::sync::Notify,
    mut stop: BoxFuture<'static, ()>,
) {
    let mut pause = Duration::from_millis(250);
    let mut failing = false;
    loop {
        let wait = match relay_batch(index, queue).await {
            Ok(n) => {
                if failing {
                    tracing::info!("transfer queue reachable again: outbox relayed");
                    failing = false;
                }
                pause = Duration::from_millis(250);
                if n == RELAY_BATCH as usize {
                    Duration::ZERO // more are waiting
                } else {
                    RELAY_POLL
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "transfer queue unreachable: jobs wait in the outbox");
                    failing = true;
                }
                let p = pause;
                pause = (pause * 2).min(RELAY_MAX_PAUSE);
                p
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            // While the queue fails, publishes do not cut the pause short.
            _ = wake.notified(), if !failing => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One batch from the outbox to the queue: how many went.
async fn relay_batch(index: &dyn FileIndex, queue: &dyn TransferQueue) -> Result<usize> {
    let jobs = index.outbox_pending(RELAY_BATCH).await?;
    let now = crate::types::now_millis();
    for entry in &jobs {
        let job = TransferJob {
            sha1: entry.sha1.clone(),
            to: entry.to.clone(),
            attempt: 0,
        };
        let delay = Duration::from_millis(entry.due_at.saturating_sub(now).max(0) as u64);
        queue.enqueue(&job, delay).await?;
        index.outbox_done(entry).await?;
    }
    Ok(jobs.len())
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
        tracing::info!(sha1 = %sha1, from = blob.store, to, bytes = blob.size, "moving blob");
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
        // The switch queued the source for deletion: delete it now and take it off the queue
        // (left there, the GC deletes it later).
        match source.delete(&blob.key).await {
            Ok(()) => self.index.gc_done(&from).await?,
            Err(e) => {
                tracing::warn!(error = %e, key = blob.key, "transfer source not deleted; the GC retries")
            }
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
