//! The hub's own tables (journal, duplicate index, dispatch marks, movement registry) on SQLite or
//! PostgreSQL, chosen by URL like the transport's store.
//!
//! # Migrations
//!
//! The hub's schema lives in `hub/migrations/{sqlite,postgres}/NNNN_name.sql` and is applied by
//! [`HubStore::connect`] with a small migrator of its own, recorded in the table
//! `hub_schema_versions` (version, name, applied_at). It deliberately does **not** use sqlx's
//! `_sqlx_migrations` table: the transport's store runs `sqlx::migrate!` on the same database,
//! and sqlx refuses to run when that table lists versions it does not know. Two independent
//! version tables let both crates evolve their schemas in the same database. Every hub table is
//! prefixed `hub_`. Migrations run in one transaction each; on PostgreSQL under an advisory lock
//! so two hub processes starting together do not race.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

/// Runs `$body` with `$c` bound to the connection of a [`HubTx`], for either driver.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::HubTx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::HubTx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the pool of a [`HubStore`], for either driver.
macro_rules! on_pool {
    ($store:expr, |$c:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($c) => $body,
            $crate::store::Pool::Postgres($c) => $body,
        }
    };
}
pub(crate) use {on_pool, on_tx};

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The hub's database. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct HubStore {
    pub(crate) pool: Pool,
    /// The reference data in force, once the master copy is open ([`crate::refdata`]).
    pub(crate) reference: std::sync::Arc<
        std::sync::RwLock<Option<std::sync::Arc<message_catalog::reference::ReferenceData>>>,
    >,
}

/// A transaction on a [`HubStore`]. Dropping it rolls back.
#[derive(Debug)]
pub enum HubTx<'c> {
    /// SQLite.
    Sqlite(Transaction<'c, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'c, Postgres>),
}

impl HubTx<'_> {
    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            HubTx::Sqlite(t) => t.commit().await?,
            HubTx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// A hub store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported store URL {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration {version}: {source}")]
    Migrate {
        /// The migration version.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
    /// A stored row does not hold what the hub wrote (hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl(_) => "hub-store.unsupported-url",
            StoreError::Database(_) => "hub-store.database",
            StoreError::Migrate { .. } => "hub-store.migrate",
            StoreError::Corrupt(_) => "hub-store.corrupt",
        }
    }
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "journal",
        sqlite: include_str!("../migrations/sqlite/0001_journal.sql"),
        postgres: include_str!("../migrations/postgres/0001_journal.sql"),
    },
    Migration {
        version: 2,
        name: "node_movements",
        sqlite: include_str!("../migrations/sqlite/0002_node_movements.sql"),
        postgres: include_str!("../migrations/postgres/0002_node_movements.sql"),
    },
    Migration {
        version: 3,
        name: "dead_letters",
        sqlite: include_str!("../migrations/sqlite/0003_dead_letters.sql"),
        postgres: include_str!("../migrations/postgres/0003_dead_letters.sql"),
    },
    Migration {
        version: 4,
        name: "guarantees",
        sqlite: include_str!("../migrations/sqlite/0004_guarantees.sql"),
        postgres: include_str!("../migrations/postgres/0004_guarantees.sql"),
    },
    Migration {
        version: 5,
        name: "reference_data",
        sqlite: include_str!("../migrations/sqlite/0005_reference_data.sql"),
        postgres: include_str!("../migrations/postgres/0005_reference_data.sql"),
    },
    Migration {
        version: 6,
        name: "insurers",
        sqlite: include_str!("../migrations/sqlite/0006_insurers.sql"),
        postgres: include_str!("../migrations/postgres/0006_insurers.sql"),
    },
    Migration {
        version: 7,
        name: "reconciliation",
        sqlite: include_str!("../migrations/sqlite/0007_reconciliation.sql"),
        postgres: include_str!("../migrations/postgres/0007_reconciliation.sql"),
    },
    Migration {
        version: 8,
        name: "journal_recipients",
        sqlite: include_str!("../migrations/sqlite/0008_journal_recipients.sql"),
        postgres: include_str!("../migrations/postgres/0008_journal_recipients.sql"),
    },
    Migration {
        version: 9,
        name: "credential_revocation",
        sqlite: include_str!("../migrations/sqlite/0009_credential_revocation.sql"),
        postgres: include_str!("../migrations/postgres/0009_credential_revocation.sql"),
    },
];

/// Arbitrary constant for `pg_advisory_xact_lock` around migrations (`"CATSHUBM"`).
const PG_MIGRATION_LOCK: i64 = 0x4341_5453_4855_424d;

/// Unix time in milliseconds.
pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn statements(script: &str) -> impl Iterator<Item = String> + '_ {
    let without_comments: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

impl HubStore {
    /// Opens the database named by `url` (`sqlite://file.db`, created when missing, or
    /// `postgres://…`) and brings the hub's tables up to date.
    pub async fn connect(url: &str) -> Result<HubStore, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let store = HubStore {
            pool,
            reference: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        for m in MIGRATIONS {
            let mut tx = self.begin().await?;
            let script = match &tx {
                HubTx::Sqlite(_) => m.sqlite,
                HubTx::Postgres(_) => m.postgres,
            };
            let fail = |source| StoreError::Migrate {
                version: m.version,
                source,
            };
            if let HubTx::Postgres(t) = &mut tx {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut **t)
                    .await
                    .map_err(fail)?;
            }
            let applied: Option<i64> = on_tx!(&mut tx, |c| {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS hub_schema_versions \
                     (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *c)
                .await
                .map_err(fail)?;
                sqlx::query_scalar("SELECT version FROM hub_schema_versions WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(fail)?
            });
            if applied.is_some() {
                continue;
            }
            for statement in statements(script) {
                on_tx!(&mut tx, |c| {
                    sqlx::query(&statement)
                        .execute(&mut *c)
                        .await
                        .map_err(fail)?;
                });
            }
            on_tx!(&mut tx, |c| {
                sqlx::query(
                    "INSERT INTO hub_schema_versions (version, name, applied_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(now_millis())
                .execute(&mut *c)
                .await
                .map_err(fail)?;
            });
            tx.commit().await?;
        }
        Ok(())
    }

    /// Begins a transaction. On SQLite it is `BEGIN IMMEDIATE`: it takes the write lock at
    /// once (waiting up to the busy timeout), so two processes appending to the journal queue
    /// up instead of failing on a lock upgrade.
    pub async fn begin(&self) -> Result<HubTx<'static>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => HubTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => HubTx::Postgres(p.begin().await?),
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, |p| p.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_scripts_into_statements() {
        let s: Vec<String> =
            statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE INDEX b ON a (x);\n").collect();
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE INDEX b ON a (x)"]);
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            StoreError::UnsupportedUrl("x".into()).code(),
            "hub-store.unsupported-url"
        );
        assert_eq!(StoreError::Corrupt("x".into()).code(), "hub-store.corrupt");
    }

    #[tokio::test]
    async fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let a = HubStore::connect(&url).await.expect("first");
        a.close().await;
        let b = HubStore::connect(&url).await.expect("second");
        b.ping().await.expect("ping");
    }
}
