//! Transfer jobs through RabbitMQ (`lapin`).
//!
//! Topology, declared by this code (all durable; `P` is the configured name prefix,
//! `chunkvault.` by default):
//! - exchange `Ptransfer` (direct);
//! - queue `Ptransfer.jobs`, bound with key `job`: jobs due now, consumed by workers;
//! - queues `Ptransfer.delay.<seconds>`: one per delay, no consumers, a queue-wide message TTL
//!   and `Ptransfer` / `job` as dead-letter target, so their messages reach the job queue when
//!   the delay has passed (per-queue TTLs keep every delay queue first-in first-out);
//! - queue `Ptransfer.dead`, bound with key `dead`: jobs that failed `max_attempts` times.
//!
//! Messages are persistent JSON published with publisher confirms. A worker acknowledges a job
//! only after the blob's location was switched (or there was nothing to do); a failed job is
//! republished to the delay queue of its backoff, or to the dead-letter queue, and only then
//! acknowledged, so no job is lost between the two. A lost connection is re-established with
//! backoff and the topology declared again (a restarted broker keeps the durable queues).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::Transfers;
use super::{RetryPolicy, TransferJob, TransferQueue, Transferred};
use crate::error::{Error, Result};
use crate::types::Sha1Hex;

const BACKEND: &str = "amqp";

fn amqp_err(e: lapin::Error) -> Error {
    Error::backend(BACKEND, e)
}

/// A job on the wire.
#[derive(Serialize, Deserialize)]
struct Wire {
    sha1: String,
    to: String,
    #[serde(default)]
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

#[derive(Clone)]
pub struct AmqpTransferQueue {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    prefix: String,
    policy: RetryPolicy,
    /// The publishing connection, opened on first use and after a failure.
    publisher: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for AmqpTransferQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("AmqpTransferQueue")
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl AmqpTransferQueue {
    /// Connects once (to fail early on a wrong URL) and declares the topology.
    pub async fn connect(url: &str, prefix: &str, policy: RetryPolicy) -> Result<Self> {
        let q = AmqpTransferQueue {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                prefix: prefix.to_owned(),
                policy,
                publisher: Mutex::new(None),
            }),
        };
        let opened = q.open().await?;
        *q.inner.publisher.lock().await = Some(opened);
        Ok(q)
    }

    fn exchange(&self) -> String {
        format!("{}transfer", self.inner.prefix)
    }

    fn jobs_queue(&self) -> String {
        format!("{}transfer.jobs", self.inner.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}transfer.dead", self.inner.prefix)
    }

    fn delay_queue(&self, secs: u64) -> String {
        format!("{}transfer.delay.{secs}", self.inner.prefix)
    }

    /// A connection and a confirming channel with the topology declared.
    async fn open(&self) -> Result<(Connection, Channel)> {
        let conn = Connection::connect(&self.inner.url, ConnectionProperties::default())
            .await
            .map_err(amqp_err)?;
        let ch = conn.create_channel().await.map_err(amqp_err)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp_err)?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.exchange().as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp_err)?;
        for (queue, key) in [(self.jobs_queue(), "job"), (self.dead_queue(), "dead")] {
            ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await
                .map_err(amqp_err)?;
            ch.queue_bind(
                queue.as_str().into(),
                self.exchange().as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        }
        Ok((conn, ch))
    }

    /// Publishes `wire` to run after `delay` (whole seconds), or to the dead-letter queue.
    async fn publish_on(
        &self,
        ch: &Channel,
        wire: &Wire,
        delay: Duration,
        dead: bool,
    ) -> Result<()> {
        let body = serde_json::to_vec(wire).map_err(|e| Error::backend(BACKEND, e))?;
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        let (exchange, key) = if dead {
            (self.exchange(), "dead".to_owned())
        } else if secs == 0 {
            (self.exchange(), "job".to_owned())
        } else {
            let queue = self.delay_queue(secs);
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt((secs * 1000) as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(self.exchange().as_str())),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from("job")),
            );
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .map_err(amqp_err)?;
            (String::new(), queue)
        };
        let confirm = ch
            .basic_publish(
                ShortString::from(exchange.as_str()),
                ShortString::from(key.as_str()),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await
            .map_err(amqp_err)?
            .await
            .map_err(amqp_err)?;
        if !confirm.is_ack() {
            return Err(Error::backend(BACKEND, "broker refused the message"));
        }
        Ok(())
    }

    /// Publishes on the shared publisher channel, reconnecting once if it broke.
    async fn publish(&self, wire: &Wire, delay: Duration) -> Result<()> {
        let mut guard = self.inner.publisher.lock().await;
        for _ in 0..2 {
            if guard.is_none() {
                *guard = Some(self.open().await?);
            }
            let (_, ch) = guard.as_ref().expect("opened above");
            match self.publish_on(ch, wire, delay, false).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "publishing a transfer job failed; reconnecting");
                    *guard = None;
                }
            }
        }
        Err(Error::backend(BACKEND, "broker unreachable"))
    }

    /// Jobs waiting in the dead-letter queue.
    pub async fn dead_count(&self) -> Result<u32> {
        self.count(&self.dead_queue()).await
    }

    /// Jobs waiting in the job queue (not those still delayed).
    pub async fn ready_count(&self) -> Result<u32> {
        self.count(&self.jobs_queue()).await
    }

    async fn count(&self, queue: &str) -> Result<u32> {
        let (_conn, ch) = self.open().await?;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp_err)?;
        Ok(q.message_count())
    }

    /// Deletes this prefix's exchange and queues (tests).
    pub async fn remove_topology(&self, delays: &[u64]) -> Result<()> {
        let (_conn, ch) = self.open().await?;
        let mut queues = vec![self.jobs_queue(), self.dead_queue()];
        queues.extend(delays.iter().map(|s| self.delay_queue(*s)));
        for q in queues {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(amqp_err)?;
        }
        ch.exchange_delete(self.exchange().as_str().into(), Default::default())
            .await
            .map_err(amqp_err)?;
        Ok(())
    }

    async fn handle(
        &self,
        transfers: &Transfers,
        ch: &Channel,
        delivery: lapin::message::Delivery,
    ) -> Result<()> {
        let wire: Option<Wire> = serde_json::from_slice(&delivery.data).ok();
        let job = wire.as_ref().and_then(|w| {
            Some(TransferJob {
                sha1: Sha1Hex::parse(&w.sha1).ok()?,
                to: w.to.clone(),
                attempt: w.attempt,
            })
        });
        let Some(job) = job else {
            // Not ours to understand: keep it for a human, out of the way.
            let wire = Wire {
                sha1: String::from_utf8_lossy(&delivery.data)
                    .chars()
                    .take(200)
                    .collect(),
                to: String::new(),
                attempt: 0,
                last_error: Some("malformed job".into()),
            };
            self.publish_on(ch, &wire, Duration::ZERO, true).await?;
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(amqp_err)?;
            return Ok(());
        };
        match transfers.run_transfer(&job).await {
            Ok(t) => {
                if !matches!(t, Transferred::Moved { .. }) {
                    tracing::info!(sha1 = %job.sha1, to = job.to, outcome = ?t, "transfer job had nothing to do");
                }
            }
            Err(e) => {
                let attempt = job.attempt + 1;
                let dead = attempt >= self.inner.policy.max_attempts;
                tracing::warn!(sha1 = %job.sha1, to = job.to, attempt, dead, error = %e, "transfer failed");
                let wire = Wire {
                    sha1: job.sha1.to_string(),
                    to: job.to.clone(),
                    attempt,
                    last_error: Some(e.to_string()),
                };
                let delay = self.inner.policy.backoff_exact(job.attempt);
                if let Err(e) = self.publish_on(ch, &wire, delay, dead).await {
                    // Could not hand it on: give it back to the queue as it was.
                    let _ = delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                    return Err(e);
                }
            }
        }
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(amqp_err)?;
        Ok(())
    }
}

#[async_trait]
impl TransferQueue for AmqpTransferQueue {
    /// Consumes jobs until `stop` resolves, reconnecting after any broker failure. `stop` is
    /// heeded between jobs: the one in hand is finished and acknowledged; prefetched ones go
    /// back to the queue with the connection.
    async fn consume(&self, transfers: &Transfers, stop: BoxFuture<'static, ()>) {
        use futures::FutureExt as _;
        let stop = stop.shared();
        let mut pause = Duration::from_millis(200);
        loop {
            let session = async {
                let (conn, ch) = self.open().await?;
                ch.basic_qos(4, BasicQosOptions::default())
                    .await
                    .map_err(amqp_err)?;
                let mut consumer = ch
                    .basic_consume(
                        self.jobs_queue().as_str().into(),
                        "chunkvault-worker".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp_err)?;
                tracing::info!(queue = self.jobs_queue(), "transfer worker consuming");
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = stop.clone() => break,
                        d = consumer.next() => d,
                    };
                    let Some(delivery) = next else {
                        return Err(Error::backend(BACKEND, "consumer cancelled"));
                    };
                    self.handle(transfers, &ch, delivery.map_err(amqp_err)?)
                        .await?;
                }
                let _ = conn.close(200, "worker stopping".into()).await;
                Ok::<(), Error>(())
            };
            // Stopped (`Ok`), or the broker went away: reconnect after a pause, unless stopped.
            match session.await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "transfer worker lost the broker; reconnecting")
                }
            }
            tokio::select! {
                _ = stop.clone() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    async fn ping(&self) -> Result<()> {
        let (conn, _) = self.open().await?;
        let _ = conn.close(200, "ping".into()).await;
        Ok(())
    }

    async fn enqueue(&self, job: &TransferJob, delay: Duration) -> Result<()> {
        let wire = Wire {
            sha1: job.sha1.to_string(),
            to: job.to.clone(),
            attempt: job.attempt,
            last_error: None,
        };
        // An unreachable broker is the caller's to retry: the outbox relay keeps the job in the
        // database until a publish is confirmed.
        self.publish(&wire, delay).await
    }
}
