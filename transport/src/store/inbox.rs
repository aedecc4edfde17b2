//! The deduplicating inbox.

use sqlx::Row;

use super::{StoreError, Tx, now_millis, on_tx};
use crate::contract::PeerIdentity;

/// What the inbox says about a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// First time: apply its effect in the same transaction.
    New,
    /// Seen before with the same body: its effect is already committed; just ack it.
    Duplicate,
    /// Seen before with a *different* body under the same (sender, message id): the sender
    /// broke the rule that retries reuse the message id for the same message. Do not apply it;
    /// reject it.
    Conflict,
}

/// The deduplicating inbox, keyed by (sender, message id). Get one with
/// [`Store::inbox`](super::Store::inbox).
#[derive(Debug, Clone, Copy, Default)]
pub struct Inbox;

impl Inbox {
    /// Records that `message_id` from `sender` is being applied, inside the receiver's
    /// transaction `tx`. Commit `tx` with the effect, then ack the delivery: if the receiver
    /// dies before the commit, nothing is recorded and the redelivery is [`Accepted::New`]
    /// again; if it dies after the commit but before the ack, the redelivery is
    /// [`Accepted::Duplicate`].
    pub async fn accept(
        &self,
        tx: &mut Tx<'_>,
        sender: &PeerIdentity,
        message_id: &str,
        body_sha256: &[u8],
    ) -> Result<Accepted, StoreError> {
        let sender = sender.urn();
        let digest = to_hex(body_sha256);
        let inserted = on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO transport_inbox (sender, message_id, body_sha256, received_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sender, message_id) DO NOTHING",
            )
            .bind(&sender)
            .bind(message_id)
            .bind(&digest)
            .bind(now_millis())
            .execute(&mut *c)
            .await?
            .rows_affected()
        });
        if inserted == 1 {
            return Ok(Accepted::New);
        }
        let known: String = on_tx!(tx, |c| {
            sqlx::query(
                "SELECT body_sha256 FROM transport_inbox WHERE sender = $1 AND message_id = $2",
            )
            .bind(&sender)
            .bind(message_id)
            .fetch_one(&mut *c)
            .await?
            .try_get("body_sha256")?
        });
        Ok(if known == digest {
            Accepted::Duplicate
        } else {
            Accepted::Conflict
        })
    }

    /// How many messages from `sender` the inbox holds (for tests and monitoring).
    pub async fn count(&self, tx: &mut Tx<'_>, sender: &PeerIdentity) -> Result<i64, StoreError> {
        let sender = sender.urn();
        Ok(on_tx!(tx, |c| {
            sqlx::query("SELECT COUNT(*) AS n FROM transport_inbox WHERE sender = $1")
                .bind(&sender)
                .fetch_one(&mut *c)
                .await?
                .try_get::<i64, _>("n")?
        }))
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
