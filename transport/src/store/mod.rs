//! Durable transport state in SQL, on SQLite (the embedded default) or PostgreSQL.
//!
//! One [`Store`] picks its driver from the URL (`sqlite://…`, `postgres://…`) and runs its own
//! migrations (`transport/migrations/{sqlite,postgres}/`). It holds:
//!
//! - the [`Outbox`]: messages to send, enqueued in the caller's transaction (so a state change
//!   and the message it causes commit together) and sent by a relay task that retries with the
//!   same message id until the transport confirms;
//! - the [`Inbox`]: the (sender, message id) pairs that have had their effect, checked inside the
//!   receiver's transaction, so a redelivered message has its effect once;
//! - dead letters ([`DeadLetter`]): messages a receiver rejected, with the reason and, for a
//!   node's refusal recorded at the hub, the node's queue;
//! - the hub's per-node delivery queue ([`NodeQueue`]) used by the direct link.
//!
//! SQL is written once for both drivers (`$n` placeholders, types both accept); the
//! [`on_conn!`] macro expands it for each.

mod inbox;
mod node_queue;
mod outbox;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite, Transaction};

pub use inbox::{Accepted, Inbox};
pub use node_queue::{NodeQueue, QueuedMessage};
pub use outbox::{Outbox, PendingMessage, RelayConfig};

use crate::contract::TransportError;

/// Runs `$body` with `$c` bound to the connection of a [`Tx`], for either driver.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the pool of a [`Store`], for either driver.
macro_rules! on_pool {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($c) => $body,
            $crate::store::Pool::Postgres($c) => $body,
        }
    };
}
pub(crate) use {on_pool, on_tx};

/// The database behind a [`Store`].
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which driver a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// SQLite (file), the embedded default.
    Sqlite,
    /// PostgreSQL, the production store.
    Postgres,
}

/// The durable transport store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

/// A transaction on a [`Store`]: pass it to [`Outbox::enqueue`] and [`Inbox::accept`] together
/// with your own writes (reach the connection with [`Tx::sqlite`] / [`Tx::postgres`]), then
/// [`Tx::commit`]. Dropping it rolls back.
#[derive(Debug)]
pub enum Tx<'c> {
    /// A SQLite transaction.
    Sqlite(Transaction<'c, Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(Transaction<'c, Postgres>),
}

impl Tx<'_> {
    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back (dropping does the same, later).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// The SQLite connection of this transaction, if it is one.
    pub fn sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            Tx::Sqlite(t) => Some(&mut **t),
            Tx::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection of this transaction, if it is one.
    pub fn postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            Tx::Postgres(t) => Some(&mut **t),
            Tx::Sqlite(_) => None,
        }
    }
}

/// A message a receiver rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Who sent it (`urn:cats:…`).
    pub sender: String,
    /// Its message id.
    pub message_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// The envelope bytes, verbatim.
    pub body: Vec<u8>,
    /// When (Unix milliseconds).
    pub dead_at: i64,
    /// The queue it was refused from: `None` for the receiver's own inbound queue (the hub's,
    /// `cats.hub.in`); a node's queue (`cats.node.KZ`, [`node_queue_name`]) when a node refused
    /// a hub delivery on the direct link and the hub recorded it.
    pub queue: Option<String>,
}

/// The name of `country`'s queue in the dead letters (`cats.node.KZ`): the AMQP queue name
/// (`cats_transport_amqp::topology::consumer_queue`), used for the direct link too, so that
/// the hub's register names a node's letters the same way whatever the transport.
pub fn node_queue_name(country: crate::contract::CountryCode) -> String {
    format!("cats.node.{country}")
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported store URL {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl(_) => "store.unsupported_url",
            StoreError::Database(_) => "store.database",
            StoreError::Migrate(_) => "store.migrate",
        }
    }
}

impl From<StoreError> for TransportError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(e) => TransportError::Store(e),
            other => TransportError::Config(other.to_string()),
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens the database named by `url` and brings its schema up to date.
    ///
    /// SQLite (`sqlite://path/to/file.db`, created when missing) runs in WAL mode with one
    /// connection: SQLite has one writer anyway, and a single connection cannot deadlock on
    /// lock upgrades. PostgreSQL (`postgres://…`) gets a pool of 16.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Store { pool })
    }

    /// Which driver this store uses.
    pub fn driver(&self) -> Driver {
        match self.pool {
            Pool::Sqlite(_) => Driver::Sqlite,
            Pool::Postgres(_) => Driver::Postgres,
        }
    }

    /// Begins a transaction.
    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// The deduplicating inbox.
    pub fn inbox(&self) -> Inbox {
        Inbox
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }

    /// Records a rejected message in the dead letters, inside `tx`.
    pub async fn dead_letter(tx: &mut Tx<'_>, letter: &DeadLetter) -> Result<(), StoreError> {
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO transport_dead_letters \
                 (sender, message_id, partition_key, reason, body, dead_at, queue) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&letter.sender)
            .bind(&letter.message_id)
            .bind(&letter.partition_key)
            .bind(&letter.reason)
            .bind(&letter.body)
            .bind(letter.dead_at)
            .bind(&letter.queue)
            .execute(c)
            .await?;
        });
        Ok(())
    }

    /// The dead letters, oldest first (at most `limit`).
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        let letters = on_pool!(self, |p| {
            sqlx::query(
                "SELECT sender, message_id, partition_key, reason, body, dead_at, queue \
                 FROM transport_dead_letters ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|row| {
                Ok(DeadLetter {
                    sender: row.try_get("sender")?,
                    message_id: row.try_get("message_id")?,
                    partition_key: row.try_get("partition_key")?,
                    reason: row.try_get("reason")?,
                    body: row.try_get("body")?,
                    dead_at: row.try_get("dead_at")?,
                    queue: row.try_get("queue")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            StoreError::UnsupportedUrl("x".into()).code(),
            "store.unsupported_url"
        );
        assert_eq!(
            StoreError::Database(sqlx::Error::PoolClosed).code(),
            "store.database"
        );
    }

    #[tokio::test]
    async fn refuses_unknown_urls() {
        assert!(matches!(
            Store::connect("mysql://x").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
}
