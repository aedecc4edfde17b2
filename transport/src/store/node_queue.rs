//! The hub's per-node delivery queue for the direct link: what the hub owes each node, numbered
//! by a per-node sequence, deleted once the node acknowledges it.

use sqlx::Row;

use super::{DeadLetter, Store, StoreError, now_millis, on_pool};
use crate::contract::{CountryCode, PeerIdentity};

/// One message the hub owes a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its per-node sequence number (1, 2, …).
    pub seq: i64,
    /// Its message id.
    pub message_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// The envelope bytes.
    pub body: Vec<u8>,
    /// How many times it was put on the wire before.
    pub attempts: i64,
}

/// The per-node queues in a [`Store`].
#[derive(Debug, Clone)]
pub struct NodeQueue {
    store: Store,
}

impl NodeQueue {
    /// The queues in `store`.
    pub fn new(store: Store) -> Self {
        NodeQueue { store }
    }

    /// Appends a message for `node`, durably, and returns its sequence number.
    pub async fn enqueue(
        &self,
        node: CountryCode,
        message_id: &str,
        partition_key: Option<&str>,
        body: &[u8],
    ) -> Result<i64, StoreError> {
        let mut tx = self.store.begin().await?;
        let seq: i64 = super::on_tx!(&mut tx, |c| {
            // The upsert takes the row lock on PostgreSQL, so concurrent enqueues serialise.
            let seq: i64 = sqlx::query(
                "INSERT INTO transport_node_cursor (node, last_seq) VALUES ($1, 1) \
                 ON CONFLICT (node) DO UPDATE SET last_seq = transport_node_cursor.last_seq + 1 \
                 RETURNING last_seq",
            )
            .bind(node.as_str())
            .fetch_one(&mut *c)
            .await?
            .try_get("last_seq")?;
            sqlx::query(
                "INSERT INTO transport_node_queue \
                 (node, seq, message_id, partition_key, body, attempts, enqueued_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(node.as_str())
            .bind(seq)
            .bind(message_id)
            .bind(partition_key)
            .bind(body)
            .bind(now_millis())
            .execute(&mut *c)
            .await?;
            seq
        });
        tx.commit().await?;
        Ok(seq)
    }

    /// Up to `limit` messages for `node` with a sequence above `after`, in order.
    pub async fn after(
        &self,
        node: CountryCode,
        after: i64,
        limit: i64,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        Ok(on_pool!(self.store, |p| {
            sqlx::query(
                "SELECT seq, message_id, partition_key, body, attempts FROM transport_node_queue \
                 WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(node.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|row| {
                Ok(QueuedMessage {
                    seq: row.try_get("seq")?,
                    message_id: row.try_get("message_id")?,
                    partition_key: row.try_get("partition_key")?,
                    body: row.try_get("body")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        }))
    }

    /// Records that messages `from..=to` for `node` were put on the wire.
    pub async fn mark_attempted(
        &self,
        node: CountryCode,
        from: i64,
        to: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self.store, |p| {
            sqlx::query(
                "UPDATE transport_node_queue SET attempts = attempts + 1 \
                 WHERE node = $1 AND seq >= $2 AND seq <= $3",
            )
            .bind(node.as_str())
            .bind(from)
            .bind(to)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// The node acknowledged `seq`: it is no longer owed.
    pub async fn ack(&self, node: CountryCode, seq: i64) -> Result<(), StoreError> {
        on_pool!(self.store, |p| {
            sqlx::query("DELETE FROM transport_node_queue WHERE node = $1 AND seq = $2")
                .bind(node.as_str())
                .bind(seq)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The node refused `seq` for good: in one transaction, the message leaves the node's
    /// queue (it is never redelivered) and becomes a dead letter of the node's queue
    /// (`cats.node.XX`), sent by the hub, with `reason`. Returns the letter, or `None` when
    /// the queue no longer holds `seq` (settled already: nothing to record).
    pub async fn reject(
        &self,
        node: CountryCode,
        seq: i64,
        reason: &str,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let mut tx = self.store.begin().await?;
        let letter = super::on_tx!(&mut tx, |c| {
            let row = sqlx::query(
                "DELETE FROM transport_node_queue WHERE node = $1 AND seq = $2 \
                 RETURNING message_id, partition_key, body",
            )
            .bind(node.as_str())
            .bind(seq)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                None => None,
                Some(row) => Some(DeadLetter {
                    sender: PeerIdentity::Hub.urn(),
                    message_id: row.try_get("message_id")?,
                    partition_key: row.try_get("partition_key")?,
                    reason: reason.to_owned(),
                    body: row.try_get("body")?,
                    dead_at: now_millis(),
                    queue: Some(super::node_queue_name(node)),
                }),
            }
        });
        if let Some(letter) = &letter {
            Store::dead_letter(&mut tx, letter).await?;
        }
        tx.commit().await?;
        Ok(letter)
    }

    /// The node says it applied everything up to `seq`: none of it is owed any more.
    pub async fn ack_through(&self, node: CountryCode, seq: i64) -> Result<(), StoreError> {
        on_pool!(self.store, |p| {
            sqlx::query("DELETE FROM transport_node_queue WHERE node = $1 AND seq <= $2")
                .bind(node.as_str())
                .bind(seq)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// How many messages `node` is owed.
    pub async fn depth(&self, node: CountryCode) -> Result<i64, StoreError> {
        Ok(on_pool!(self.store, |p| {
            sqlx::query("SELECT COUNT(*) AS n FROM transport_node_queue WHERE node = $1")
                .bind(node.as_str())
                .fetch_one(p)
                .await?
                .try_get::<i64, _>("n")?
        }))
    }
}
