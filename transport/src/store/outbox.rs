//! The durable outbox and its relay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sqlx::Row;
use tokio::sync::Notify;

use super::{Store, StoreError, Tx, now_millis, on_pool, on_tx};
use crate::contract::{CountryCode, Destination, Outbound, Transport, TransportError};
use crate::shutdown::Shutdown;

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    /// Row id (enqueue order).
    pub id: i64,
    /// The message as it will be sent (same id on every attempt).
    pub outbound: Outbound,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// How the relay sends.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Messages read from the outbox per round.
    pub batch: i64,
    /// Sends in flight at once (messages with the same partition key are never concurrent).
    pub concurrency: usize,
    /// Upper bound on one `send`.
    pub send_timeout: Duration,
    /// How often the outbox is polled when nobody calls [`Outbox::wake`].
    pub poll_interval: Duration,
    /// First pause after a failed round; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest pause after failed rounds.
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 512,
            concurrency: 64,
            send_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// The durable outbox of a sender. Run one relay ([`Outbox::run_relay`]) per store.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    wake: Arc<Notify>,
}

fn destination_text(d: Destination) -> String {
    match d {
        Destination::Hub => "hub".to_owned(),
        Destination::Node(c) => c.as_str().to_owned(),
    }
}

fn parse_destination(text: &str) -> Result<Destination, StoreError> {
    if text == "hub" {
        return Ok(Destination::Hub);
    }
    CountryCode::parse(text)
        .map(Destination::Node)
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

impl Outbox {
    /// The outbox in `store`.
    pub fn new(store: Store) -> Self {
        Outbox {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Enqueues `msg` inside the caller's transaction: it is sent if and only if `tx` commits.
    /// Call [`Outbox::wake`] after the commit to send at once rather than at the next poll.
    /// Enqueueing a message id that is already there does nothing (idempotent).
    pub async fn enqueue(&self, tx: &mut Tx<'_>, msg: &Outbound) -> Result<(), StoreError> {
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO transport_outbox \
                 (message_id, destination, partition_key, body, attempts, created_at) \
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(&msg.message_id)
            .bind(destination_text(msg.destination))
            .bind(&msg.partition_key)
            .bind(msg.bytes.as_ref())
            .bind(now_millis())
            .execute(c)
            .await?;
        });
        Ok(())
    }

    /// Enqueues `msg` in a transaction of its own and wakes the relay.
    pub async fn enqueue_now(&self, msg: &Outbound) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        self.enqueue(&mut tx, msg).await?;
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Wakes the relay (after committing a transaction that enqueued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Up to `limit` unsent messages, oldest first.
    pub async fn pending(&self, limit: i64) -> Result<Vec<PendingMessage>, StoreError> {
        let rows = on_pool!(self.store, |p| {
            sqlx::query(
                "SELECT id, message_id, destination, partition_key, body, attempts \
                 FROM transport_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("id")?,
                    row.try_get::<String, _>("message_id")?,
                    row.try_get::<String, _>("destination")?,
                    row.try_get::<Option<String>, _>("partition_key")?,
                    row.try_get::<Vec<u8>, _>("body")?,
                    row.try_get::<i64, _>("attempts")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter()
            .map(
                |(id, message_id, destination, partition_key, body, attempts)| {
                    Ok(PendingMessage {
                        id,
                        outbound: Outbound {
                            message_id,
                            destination: parse_destination(&destination)?,
                            partition_key,
                            bytes: Bytes::from(body),
                        },
                        attempts,
                    })
                },
            )
            .collect()
    }

    /// How many messages are waiting.
    pub async fn pending_count(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self.store, |p| {
            sqlx::query("SELECT COUNT(*) AS n FROM transport_outbox WHERE sent_at IS NULL")
                .fetch_one(p)
                .await?
                .try_get::<i64, _>("n")?
        }))
    }

    /// Marks message `id` as sent.
    pub async fn mark_sent(&self, id: i64) -> Result<(), StoreError> {
        on_pool!(self.store, |p| {
            sqlx::query("UPDATE transport_outbox SET sent_at = $1 WHERE id = $2")
                .bind(now_millis())
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Records a failed attempt at sending message `id`.
    pub async fn record_failure(&self, id: i64, error: &str) -> Result<(), StoreError> {
        on_pool!(self.store, |p| {
            sqlx::query(
                "UPDATE transport_outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2",
            )
            .bind(error)
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Deletes sent messages older than `older_than_millis` (Unix ms); returns how many.
    pub async fn purge_sent(&self, older_than_millis: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self.store, |p| {
            sqlx::query("DELETE FROM transport_outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                .bind(older_than_millis)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }

    /// Sends what the outbox holds through `transport` until `shutdown` fires: in enqueue
    /// order per partition key, up to `config.concurrency` sends at once, each bounded by
    /// `config.send_timeout`. A failed send keeps the message (same id) and stops the rest of
    /// its partition for this round, so order per key holds; rounds after a failure back off
    /// exponentially (capped). Returns when shut down; store errors also back off.
    pub async fn run_relay<T: Transport>(
        &self,
        transport: &T,
        config: &RelayConfig,
        mut shutdown: Shutdown,
    ) {
        let mut backoff = config.min_backoff;
        while !shutdown.is_triggered() {
            let failed = match self.relay_round(transport, config).await {
                Ok(RoundOutcome::Idle) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(config.poll_interval) => {}
                        _ = shutdown.wait() => {}
                    }
                    false
                }
                Ok(RoundOutcome::AllSent) => false,
                Ok(RoundOutcome::SomeFailed) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: store error");
                    true
                }
            };
            if failed {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => {}
                }
                backoff = (backoff * 2).min(config.max_backoff);
            } else {
                backoff = config.min_backoff;
            }
        }
    }

    async fn relay_round<T: Transport>(
        &self,
        transport: &T,
        config: &RelayConfig,
    ) -> Result<RoundOutcome, StoreError> {
        let batch = self.pending(config.batch).await?;
        if batch.is_empty() {
            return Ok(RoundOutcome::Idle);
        }
        // Group by partition key, keeping enqueue order inside each group.
        let mut groups: Vec<Vec<PendingMessage>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for message in batch {
            match message.outbound.partition_key.clone() {
                Some(key) => match by_key.get(&key) {
                    Some(&i) => {
                        if let Some(group) = groups.get_mut(i) {
                            group.push(message);
                        }
                    }
                    None => {
                        by_key.insert(key, groups.len());
                        groups.push(vec![message]);
                    }
                },
                None => groups.push(vec![message]),
            }
        }
        let failures: Vec<bool> = futures::stream::iter(groups)
            .map(|group| self.send_group(transport, config, group))
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        Ok(if failures.iter().any(|f| *f) {
            RoundOutcome::SomeFailed
        } else {
            RoundOutcome::AllSent
        })
    }

    /// Sends one partition's messages in order; returns whether one failed.
    async fn send_group<T: Transport>(
        &self,
        transport: &T,
        config: &RelayConfig,
        group: Vec<PendingMessage>,
    ) -> bool {
        for message in group {
            let result =
                match tokio::time::timeout(config.send_timeout, transport.send(message.outbound))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(TransportError::Timeout("sending from the outbox")),
                };
            match result {
                Ok(()) => {
                    if let Err(e) = self.mark_sent(message.id).await {
                        // Sent but not marked: it goes again with the same id; the inbox copes.
                        tracing::warn!(error = %e, "outbox: could not mark a message sent");
                        return true;
                    }
                }
                Err(e) => {
                    tracing::debug!(code = e.code(), error = %e, "outbox: send failed");
                    if let Err(e) = self.record_failure(message.id, &e.to_string()).await {
                        tracing::warn!(error = %e, "outbox: could not record a failure");
                    }
                    return true;
                }
            }
        }
        false
    }
}

enum RoundOutcome {
    Idle,
    AllSent,
    SomeFailed,
}
