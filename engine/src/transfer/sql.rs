//! Transfer jobs in the metadata database, for deployments without a message broker: a row per
//! (blob, destination), leased by one worker at a time, retried with backoff, marked dead after
//! too many failures.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::Row;

use super::Transfers;
use super::{RetryPolicy, TransferJob, TransferQueue, Transferred};
use crate::db::{text, Db};
use crate::error::{Error, Result};
use crate::types::{now_millis, Sha1Hex};

/// How long a worker holds a job before another may take it (a crashed worker's jobs return).
const LEASE: Duration = Duration::from_secs(600);

/// How often an idle worker looks for due jobs.
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct SqlTransferQueue {
    db: Db,
    policy: RetryPolicy,
    /// Jobs this process leased and has not finished (given back by `release_in_flight`).
    leased: std::sync::Arc<std::sync::Mutex<Vec<TransferJob>>>,
}

impl SqlTransferQueue {
    pub fn new(db: Db, policy: RetryPolicy) -> Self {
        SqlTransferQueue {
            db,
            policy,
            leased: Default::default(),
        }
    }

    fn leased(&self) -> std::sync::MutexGuard<'_, Vec<TransferJob>> {
        crate::lock_unpoisoned(&self.leased)
    }

    /// Gives leased jobs back: due again at once for any worker.
    async fn release(&self, jobs: &[TransferJob]) {
        for job in jobs {
            let res = sqlx::query(&self.db.q(
                "UPDATE transfer_jobs SET lease_until = 0 WHERE sha1 = ? AND to_store = ? AND dead = 0",
            ))
            .bind(job.sha1.as_str())
            .bind(job.to.as_str())
            .execute(self.db.writer())
            .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, sha1 = %job.sha1, "transfer lease not released; it expires");
            }
        }
    }

    /// Leases up to `limit` due jobs.
    pub async fn claim(&self, limit: u32) -> Result<Vec<TransferJob>> {
        let now = now_millis();
        let rows = sqlx::query(
            &self
                .db
                .q("SELECT sha1, to_store, attempts FROM transfer_jobs \
             WHERE dead = 0 AND due_at <= ? AND lease_until <= ? ORDER BY due_at LIMIT ?"),
        )
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await?;
        let mut jobs = Vec::new();
        for r in rows {
            let job = TransferJob {
                sha1: Sha1Hex::parse(&text(&r, "sha1")?).map_err(|e| Error::backend("sql", e))?,
                to: text(&r, "to_store")?,
                attempt: r.try_get::<i32, _>("attempts")? as u32,
            };
            let leased = sqlx::query(&self.db.q("UPDATE transfer_jobs SET lease_until = ? \
                 WHERE sha1 = ? AND to_store = ? AND lease_until <= ? AND dead = 0"))
            .bind(now + LEASE.as_millis() as i64)
            .bind(job.sha1.as_str())
            .bind(job.to.as_str())
            .bind(now)
            .execute(self.db.writer())
            .await?;
            if leased.rows_affected() == 1 {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    pub async fn done(&self, job: &TransferJob) -> Result<()> {
        sqlx::query(
            &self
                .db
                .q("DELETE FROM transfer_jobs WHERE sha1 = ? AND to_store = ?"),
        )
        .bind(job.sha1.as_str())
        .bind(job.to.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    /// Records a failed try: retried after a backoff, or dead past the policy's attempts.
    /// Returns whether the job is now dead.
    pub async fn failed(
        &self,
        job: &TransferJob,
        error: &str,
        policy: RetryPolicy,
    ) -> Result<bool> {
        let attempts = job.attempt + 1;
        let dead = attempts >= policy.max_attempts;
        let error: String = error.chars().take(1000).collect();
        sqlx::query(&self.db.q(
            "UPDATE transfer_jobs SET attempts = ?, dead = ?, last_error = ?, due_at = ?, \
             lease_until = 0 WHERE sha1 = ? AND to_store = ?",
        ))
        .bind(attempts as i32)
        .bind(i32::from(dead))
        .bind(error)
        .bind(now_millis() + policy.backoff(job.attempt).as_millis() as i64)
        .bind(job.sha1.as_str())
        .bind(job.to.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(dead)
    }

    /// Jobs that failed too often, with their last error.
    pub async fn dead(&self) -> Result<Vec<(TransferJob, String)>> {
        let rows =
            sqlx::query(&self.db.q(
                "SELECT sha1, to_store, attempts, last_error FROM transfer_jobs WHERE dead = 1",
            ))
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    TransferJob {
                        sha1: Sha1Hex::parse(&text(r, "sha1")?)
                            .map_err(|e| Error::backend("sql", e))?,
                        to: text(r, "to_store")?,
                        attempt: r.try_get::<i32, _>("attempts")? as u32,
                    },
                    text(r, "last_error")?,
                ))
            })
            .collect()
    }

    async fn run_one(&self, transfers: &Transfers, job: &TransferJob, policy: RetryPolicy) {
        let outcome = match transfers.run_transfer(job).await {
            Ok(t) => {
                if matches!(t, Transferred::Gone | Transferred::AlreadyThere) {
                    tracing::info!(sha1 = %job.sha1, to = job.to, outcome = ?t, "transfer job had nothing to do");
                }
                self.done(job).await
            }
            Err(e) => {
                tracing::warn!(sha1 = %job.sha1, to = job.to, attempt = job.attempt + 1, error = %e, "transfer failed");
                match self.failed(job, &e.to_string(), policy).await {
                    Ok(true) => {
                        tracing::error!(sha1 = %job.sha1, to = job.to, "transfer job dead after too many failures");
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "transfer queue update failed; the job's lease will expire");
        }
    }
}

#[async_trait]
impl TransferQueue for SqlTransferQueue {
    /// Polls for due jobs every half second when idle.
    async fn consume(&self, transfers: &Transfers, stop: BoxFuture<'static, ()>) {
        use futures::FutureExt as _;
        tokio::pin!(stop);
        loop {
            let jobs = match self.claim(16).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "transfer queue unreachable");
                    Vec::new()
                }
            };
            let idle = jobs.is_empty();
            self.leased().extend(jobs.iter().cloned());
            for (i, job) in jobs.iter().enumerate() {
                if (&mut stop).now_or_never().is_some() {
                    // Stopping: what was leased and not started goes back at once.
                    self.release(&jobs[i..]).await;
                    self.leased().clear();
                    return;
                }
                self.run_one(transfers, job, self.policy).await;
                self.leased().retain(|j| j != job);
            }
            if idle {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    async fn release_in_flight(&self) {
        let jobs = std::mem::take(&mut *self.leased());
        self.release(&jobs).await;
    }

    /// The queue is a table of the metadata database, which readiness checks already.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn enqueue(&self, job: &TransferJob, delay: Duration) -> Result<()> {
        let insert = self
            .db
            .insert_or_ignore("transfer_jobs", "sha1, to_store, due_at, attempts");
        sqlx::query(&self.db.q(&insert))
            .bind(job.sha1.as_str())
            .bind(job.to.as_str())
            .bind(now_millis() + delay.as_millis() as i64)
            .bind(job.attempt as i32)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}
