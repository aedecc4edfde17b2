//! CATS AMQP transport: the [transport contract](cats_transport::contract) over RabbitMQ, the
//! production transport between the nodes and the hub.
//!
//! Every party connects with `amqps`, presents its client certificate from the CATS CA and
//! logs in with SASL `EXTERNAL`: RabbitMQ takes its user from the certificate's common name
//! (`hub`, `node-kz`). Every message is published persistent, with its message id and with
//! `user_id` set to that user, so RabbitMQ itself refuses a message claiming another sender, and
//! the receiver reads the sender's transport identity ([`Delivery::from`]) from `user_id`.
//! The topology (vhost `cats`, exchanges, quorum queues, dead letters, permissions) is
//! `deploy/rabbitmq/definitions.json`; the transport declares nothing.
//!
//! Modules, in the order data flows through them:
//!
//! - [`config`]: the raw, file-shaped configuration and the resolved one (certificates read).
//! - [`topology`]: the names of exchanges, queues and users, and user ↔ identity mapping.
//! - `link`: one connection (TLS client identity, EXTERNAL) with a publisher channel in
//!   confirm mode and a consumer channel with a bounded prefetch; every broker wait timed.
//! - [`transport`]: [`AmqpTransport`], a supervisor that keeps a link open (reconnecting with
//!   backoff after a broker restart), sends with publisher confirms in a window, hands out
//!   deliveries with manual acks, and dead-letters rejected messages with their reason.
//!
//! [`Delivery::from`]: cats_transport::contract::Delivery::from

pub mod config;
mod link;
pub mod topology;
pub mod transport;

pub use config::{AmqpConfig, ConfigError, RawAmqpConfig, TlsIdentity};
pub use transport::{AmqpTransport, Role};

/// Opens a bare connection to the broker with an explicit TLS configuration and nothing else,
/// to check what the broker accepts (used by tests and `cats` diagnostics). A refused
/// certificate is [`TransportError::Tls`](cats_transport::contract::TransportError::Tls).
pub async fn probe(
    config: &AmqpConfig,
    tls: lapin::tcp::OwnedTLSConfig,
) -> Result<(), cats_transport::contract::TransportError> {
    let connection = link::connect_with_tls(config, "cats-probe", tls).await?;
    let _ = tokio::time::timeout(
        config.operation_timeout,
        connection.close(200, "probe done".into()),
    )
    .await;
    Ok(())
}

/// Opens a bare lapin connection with the client identity of `config` (amqps, EXTERNAL), for
/// operator tools, tests and the baseline benchmark that need plain AMQP.
pub async fn raw_connection(
    config: &AmqpConfig,
    connection_name: &str,
) -> Result<lapin::Connection, cats_transport::contract::TransportError> {
    link::connect(config, connection_name).await
}

/// Re-exported so that callers can build the TLS configuration of [`probe`] and run the
/// baseline benchmark with the same client library.
pub use lapin;
