//! One connection to the broker: amqps with the client certificate, SASL EXTERNAL, a publisher
//! channel in confirm mode and, for a receiving party, a consumer channel with a bounded
//! prefetch. A link is never repaired: when anything on it fails, the supervisor in
//! [`crate::transport`] drops it and opens a new one.

use std::fmt;

use cats_transport::contract::TransportError;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use tokio::time::timeout;

use crate::config::AmqpConfig;
use crate::topology;

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
    /// Opens a link. With `declare_hub_partitions`, first declares the hub's partition queues
    /// ([`declare_partitions`]). With `consume_from`, also opens a consumer channel and starts
    /// a consumer on each of those queues.
    pub(crate) async fn open(
        config: &AmqpConfig,
        connection_name: &str,
        consume_from: Option<&[String]>,
        declare_hub_partitions: bool,
        generation: u64,
    ) -> Result<(Link, Vec<Consumer>), TransportError> {
        let connection = connect(config, connection_name).await?;
        let op = config.operation_timeout;
        if declare_hub_partitions {
            declare_partitions(config, &connection).await?;
        }
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
        let (consumer_channel, consumers) = match consume_from {
            None => (None, Vec::new()),
            Some(queues) => {
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
                let mut consumers = Vec::with_capacity(queues.len());
                for queue in queues {
                    consumers
                        .push(consume(config, &channel, queue, connection_name, generation).await?);
                }
                (Some(channel), consumers)
            }
        };
        Ok((
            Link {
                connection,
                publisher,
                consumer: consumer_channel,
                generation,
            },
            consumers,
        ))
    }

    /// Starts one more consumer, on the link's consumer channel.
    pub(crate) async fn consume(
        &self,
        config: &AmqpConfig,
        queue: &str,
        connection_name: &str,
    ) -> Result<Consumer, TransportError> {
        let channel = self.consumer.as_ref().ok_or_else(|| {
            TransportError::Config("this link was opened without a consumer channel".into())
        })?;
        consume(config, channel, queue, connection_name, self.generation).await
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

async fn consume(
    config: &AmqpConfig,
    channel: &Channel,
    queue: &str,
    connection_name: &str,
    generation: u64,
) -> Result<Consumer, TransportError> {
    timed(
        config.operation_timeout,
        "starting the consumer",
        channel.basic_consume(
            queue.into(),
            format!("{connection_name}-{generation}-{queue}").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

/// Declares the partition queues `cats.hub.in.1` … `cats.hub.in.<partitions-1>` of the hub's
/// inbound queue (partition 0, `cats.hub.in`, is in the definitions) with the arguments of
/// `cats.hub.in` (quorum, single active consumer, dead letters to `cats.hub.in.dlq`), and binds
/// each to the consistent-hash exchange `cats.hub.in` with the common weight. Idempotent: the
/// declarations and bindings of another hub process are the same.
pub(crate) async fn declare_partitions(
    config: &AmqpConfig,
    connection: &Connection,
) -> Result<(), TransportError> {
    if config.partitions <= 1 {
        return Ok(());
    }
    let op = config.operation_timeout;
    let channel = timed(
        op,
        "opening the declaration channel",
        connection.create_channel(),
    )
    .await?;
    for index in 1..config.partitions {
        let queue = topology::hub_partition_queue(index);
        let mut arguments = FieldTable::default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes()));
        arguments.insert("x-queue-type".into(), text("quorum"));
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            text(topology::DEAD_LETTER_EXCHANGE),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            text(topology::HUB_INBOUND_QUEUE),
        );
        timed(
            op,
            "declaring a partition queue",
            channel.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            ),
        )
        .await?;
        timed(
            op,
            "binding a partition queue",
            channel.queue_bind(
                queue.as_str().into(),
                topology::HUB_INBOUND_EXCHANGE.into(),
                topology::PARTITION_WEIGHT.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    }
    let _ = timeout(op, channel.close(200, "declared".into())).await;
    Ok(())
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
