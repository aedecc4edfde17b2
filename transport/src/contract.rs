//! The transport contract: what every CATS transport (direct mTLS, AMQP) promises.
//!
//! A transport moves *signed envelope bytes* between a node and the hub. It never looks inside
//! them: verification is the receiver's job (`cats_trust`). What a transport does guarantee:
//!
//! 1. **Durable send.** [`Transport::send`] returns `Ok(())` only once the other side (the
//!    broker with a publisher confirm, or the hub / the hub's per-node delivery queue) has taken
//!    durable responsibility for the message. An `Err` means *unknown*: the caller keeps the
//!    message (normally in the [outbox](crate::store::Outbox)) and sends it again **with the same
//!    message id**; the receiver's inbox makes the repetition harmless.
//! 2. **At-least-once delivery with explicit acknowledgement.** A [`Delivery`] stays owed until
//!    [`Delivery::ack`] (call it after the receiver committed its effect, normally in the same
//!    transaction as [`Inbox::accept`](crate::store::Inbox::accept)). A delivery that is neither
//!    acked nor rejected (the receiver crashed, the connection dropped, the `Delivery` was
//!    dropped) comes again, with [`Delivery::redelivered`] set where the transport can know it.
//! 3. **Order per partition.** Messages sent by one sender with the same
//!    [`Outbound::partition_key`] (the MRN) are delivered in the order they were sent, as long
//!    as each `send` is awaited before the next one. Messages with different keys may overtake
//!    each other.
//! 4. **No poison loops.** [`Delivery::reject`] moves the message to the receiver's dead letters
//!    with the given reason: it is kept, never dropped, and never delivered again by itself.
//! 5. **Identity from the channel.** [`Delivery::from`] is the identity the TLS client
//!    certificate (or the AMQP `user_id` checked by the broker) proved, never a field of the
//!    message. The envelope's sender must be compared with it by the receiver.
//! 6. **Bounded memory.** Both sides bound the number of messages in flight; a slow receiver
//!    slows the sender down (backpressure) rather than filling memory.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use cats_trust::identity::PeerIdentity;
pub use message_catalog::ids::CountryCode;

/// Where a message goes.
///
/// A node's transport only sends to [`Destination::Hub`]: nodes never talk to each other, the
/// hub routes (the final recipient is in the signed envelope). The hub's transport sends to
/// [`Destination::Node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// The CATS hub.
    Hub,
    /// The node of one country.
    Node(CountryCode),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Hub => f.write_str("hub"),
            Destination::Node(c) => write!(f, "node-{}", c.as_str().to_ascii_lowercase()),
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The message identification (unique per sender). Retries reuse it.
    pub message_id: String,
    /// Where it goes.
    pub destination: Destination,
    /// The ordering key (the MRN): messages with the same key are delivered in send order.
    pub partition_key: Option<String>,
    /// The signed envelope, carried verbatim.
    pub bytes: Bytes,
}

/// One transport endpoint (a node's link to the hub, or the hub's link to all nodes).
///
/// Implementations are cheap to share (`&self` everywhere) and may be used from several tasks
/// at once; `receive` hands each delivery to exactly one caller.
pub trait Transport: Send + Sync {
    /// Sends `msg` and returns once the broker or the hub has taken durable responsibility for
    /// it (see the module documentation, guarantee 1). Every network wait inside is bounded by a
    /// timeout: an unreachable peer gives [`TransportError::Timeout`] or
    /// [`TransportError::Disconnected`], never a hang.
    fn send(&self, msg: Outbound) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Waits for the next delivery. Returns [`TransportError::Closed`] once the transport has
    /// been shut down. Waiting itself has no timeout (wrap it in one if you need it).
    fn receive(&self) -> impl Future<Output = Result<Delivery, TransportError>> + Send;
}

/// Settles one delivery; implemented by each transport. Users call [`Delivery::ack`] and
/// [`Delivery::reject`] instead.
pub trait Acknowledger: Send + Sync + fmt::Debug {
    /// The receiver committed the effect: the message is no longer owed.
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>>;
    /// The message is dead-lettered with `reason`.
    fn reject(self: Box<Self>, reason: String) -> BoxFuture<'static, Result<(), TransportError>>;
}

/// A message received, owed until acked or rejected.
#[derive(Debug)]
pub struct Delivery {
    /// Who sent it, as proved by the channel (TLS client certificate / broker-checked user).
    pub from: PeerIdentity,
    /// The sender's message identification.
    pub message_id: String,
    /// The ordering key given by the sender, if any.
    pub partition_key: Option<String>,
    /// The signed envelope, verbatim.
    pub bytes: Bytes,
    /// Set when the transport knows it delivered this message before (it may have had its
    /// effect already: let the inbox decide).
    pub redelivered: bool,
    acker: Box<dyn Acknowledger>,
}

impl Delivery {
    /// Builds a delivery; for transport implementations.
    pub fn new(
        from: PeerIdentity,
        message_id: String,
        partition_key: Option<String>,
        bytes: Bytes,
        redelivered: bool,
        acker: Box<dyn Acknowledger>,
    ) -> Self {
        Delivery {
            from,
            message_id,
            partition_key,
            bytes,
            redelivered,
            acker,
        }
    }

    /// Acknowledges the delivery. Call it after the receiver committed its effect. If it fails
    /// (connection lost), the message comes again: the inbox turns it into a duplicate.
    pub async fn ack(self) -> Result<(), TransportError> {
        self.acker.ack().await
    }

    /// Dead-letters the delivery with `reason` (kept, not retried). Use it for messages that
    /// can never succeed (bad signature, undecodable); transient failures should not be
    /// rejected, just not acked.
    pub async fn reject(self, reason: &str) -> Result<(), TransportError> {
        self.acker.reject(reason.to_owned()).await
    }
}

/// Why a transport operation failed. Each variant has a stable [`code`](TransportError::code).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A network wait took longer than its configured timeout.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// The link to the peer is down (not connected, or lost while waiting). Retry later.
    #[error("not connected to the peer: {0}")]
    Disconnected(String),
    /// The transport was shut down.
    #[error("the transport is shut down")]
    Closed,
    /// A TLS error (handshake refused, bad certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer's identity is not allowed (unknown, revoked, wrong kind).
    #[error("peer refused: {0}")]
    PeerRefused(String),
    /// The peer broke the wire protocol (bad frame, unexpected sequence).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A frame or message is larger than the configured maximum.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The offending size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// This endpoint cannot send to that destination (a node sends only to the hub).
    #[error("cannot route to {0}")]
    Unroutable(Destination),
    /// The broker refused or nacked the message.
    #[error("broker: {0}")]
    Broker(String),
    /// The durable store failed.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// Invalid configuration (addresses, certificates).
    #[error("configuration: {0}")]
    Config(String),
    /// An I/O error on the link.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// The stable code of this error, for logs, metrics and operators.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Timeout(_) => "transport.timeout",
            TransportError::Disconnected(_) => "transport.disconnected",
            TransportError::Closed => "transport.closed",
            TransportError::Tls(_) => "transport.tls",
            TransportError::PeerRefused(_) => "transport.peer_refused",
            TransportError::Protocol(_) => "transport.protocol",
            TransportError::TooLarge { .. } => "transport.too_large",
            TransportError::Unroutable(_) => "transport.unroutable",
            TransportError::Broker(_) => "transport.broker",
            TransportError::Store(_) => "transport.store",
            TransportError::Config(_) => "transport.config",
            TransportError::Io(_) => "transport.io",
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Timeout(_)
                | TransportError::Disconnected(_)
                | TransportError::Io(_)
                | TransportError::Broker(_)
                | TransportError::Store(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        let cases = [
            (TransportError::Timeout("x"), "transport.timeout"),
            (
                TransportError::Disconnected("x".into()),
                "transport.disconnected",
            ),
            (TransportError::Closed, "transport.closed"),
            (TransportError::Tls("x".into()), "transport.tls"),
            (
                TransportError::PeerRefused("x".into()),
                "transport.peer_refused",
            ),
            (TransportError::Protocol("x".into()), "transport.protocol"),
            (
                TransportError::TooLarge { size: 2, max: 1 },
                "transport.too_large",
            ),
            (
                TransportError::Unroutable(Destination::Hub),
                "transport.unroutable",
            ),
            (TransportError::Broker("x".into()), "transport.broker"),
            (
                TransportError::Store(sqlx::Error::PoolClosed),
                "transport.store",
            ),
            (TransportError::Config("x".into()), "transport.config"),
            (
                TransportError::Io(std::io::Error::other("x")),
                "transport.io",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn destination_display() {
        assert_eq!(Destination::Hub.to_string(), "hub");
        assert_eq!(Destination::Node(CountryCode::KZ).to_string(), "node-kz");
    }
}
