//! One connection to the broker: amqps with the client certificate, SASL EXTERNAL, a publisher
//! channel in confirm mode and, for a receiving party, a consumer channel with a bounded
//! prefetch. A link is never repaired: when anything on it fails, the supervisor in
//! [`crate::transport`] drops it and opens a new one.

use std::fmt;

use cats_transport::contract::TransportError;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use tokio::time::timeout;

use crate::config::AmqpConfig;

/// An open connection and its channels.
pub(crate) struct Link {
    pub(crate) connection: Connection,
    pub(crate) publisher: Channel,
    pub(crate) consumer: Option<Channel>,
    /// Counts the links opened by one transport, for logs.
    pub(crate) generation: u64,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("generation", &self.generation)
            .field("connected", &self.connection.status().connected())
            .finish()
    }
}

impl Link {
    /// Opens a link. With `consume_from`, also starts a consumer on that queue.
    pub(crate) async fn open(
        config: &AmqpConfig,
        connection_name: &str,
        consume_from: Option<&str>,
        generation: u64,
    ) -> Result<(Link, Option<Consumer>), TransportError> {
        let connection = connect(config, connection_name).await?;
        let op = config.operation_timeout;
        let publisher = timed(
            op,
            "opening the publisher channel",
            connection.create_channel(),
        )
        .await?;
        timed(
            op,
            "enabling publisher confirms",
            publisher.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let (consumer_channel, consumer) = match consume_from {
            None => (None, None),
            Some(queue) => {
                let channel = timed(
                    op,
                    "opening the consumer channel",
                    connection.create_channel(),
                )
                .await?;
                timed(
                    op,
                    "setting the prefetch",
                    channel.basic_qos(config.prefetch, BasicQosOptions::default()),
                )
                .await?;
                let consumer = timed(
                    op,
                    "starting the consumer",
                    channel.basic_consume(
                        queue.into(),
                        format!("{connection_name}-{generation}").into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await?;
                (Some(channel), Some(consumer))
            }
        };
        Ok((
            Link {
                connection,
                publisher,
                consumer: consumer_channel,
                generation,
            },
            consumer,
        ))
    }

    /// Whether the connection and every channel are still open.
    pub(crate) fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.publisher.status().connected()
            && self
                .consumer
                .as_ref()
                .is_none_or(|c| c.status().connected())
    }

    /// Closes the connection, best effort, within `config.operation_timeout`.
    pub(crate) async fn close(&self, config: &AmqpConfig) {
        if self.connection.status().connected() {
            let _ = timeout(
                config.operation_timeout,
                self.connection.close(200, "closing".into()),
            )
            .await;
        }
    }
}

/// Opens an amqps connection with the client certificate of `config` and SASL EXTERNAL.
pub(crate) async fn connect(
    config: &AmqpConfig,
    connection_name: &str,
) -> Result<Connection, TransportError> {
    let tls = OwnedTLSConfig {
        identity: Some(OwnedIdentity::PKCS8 {
            pem: config.tls.cert_pem.clone(),
            key: config.tls.key_pem.clone(),
        }),
        cert_chain: Some(config.tls.ca_pem.clone()),
    };
    connect_with_tls(config, connection_name, tls).await
}

/// Opens an amqps connection with an explicit TLS configuration (tests use it to connect
/// without a certificate).
pub(crate) async fn connect_with_tls(
    config: &AmqpConfig,
    connection_name: &str,
    tls: OwnedTLSConfig,
) -> Result<Connection, TransportError> {
    let runtime = lapin::runtime::default_runtime().map_err(|e| map_error(&e))?;
    let properties =
        ConnectionProperties::default().with_connection_name(connection_name.to_owned().into());
    timed(
        config.connect_timeout,
        "connecting to the broker",
        Connection::connect_with_config(&config.uri(), properties, tls, runtime),
    )
    .await
}

/// Awaits a broker operation within `limit`.
pub(crate) async fn timed<T>(
    limit: std::time::Duration,
    what: &'static str,
    operation: impl Future<Output = lapin::Result<T>>,
) -> Result<T, TransportError> {
    match timeout(limit, operation).await {
        Err(_) => Err(TransportError::Timeout(what)),
        Ok(Err(e)) => Err(map_error(&e)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// Sorts a lapin error into the contract's errors.
pub(crate) fn map_error(error: &lapin::Error) -> TransportError {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    let tls_words = [
        "tls",
        "certificate",
        "alert",
        "handshake",
        "unknownissuer",
        "unknown_ca",
        "unknownca",
    ];
    if tls_words.iter().any(|w| lower.contains(w)) {
        return TransportError::Tls(text);
    }
    match error.kind() {
        lapin::ErrorKind::ProtocolError(_) => TransportError::Broker(text),
        lapin::ErrorKind::IOError(_) => TransportError::Disconnected(text),
        _ if lower.contains("access_refused") || lower.contains("access refused") => {
            TransportError::PeerRefused(text)
        }
        _ => TransportError::Disconnected(text),
    }
}
