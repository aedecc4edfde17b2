//! A node's end of the direct link: one TLS connection to the hub, kept up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::connection::{FrameReader, run_writer};
use super::frame::{Frame, PROTOCOL_VERSION};
use super::hub::{MAX_LOCAL_REDELIVERIES, frame_size};
use super::tls::client_config;
use super::{LinkConfig, backoff_delay, jitter};
use crate::contract::{
    Acknowledger, Delivery, Destination, Outbound, PeerIdentity, Transport, TransportError,
};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use cats_trust::identity::TrustStore;

/// A node's certificates: the CATS CA to check the hub against, and the node's client
/// certificate (`node-kz.pem`) and key.
#[derive(Debug)]
pub struct NodeTls {
    /// CA (the allow-list is not used by nodes).
    pub trust: TrustStore,
    /// The node's client certificate chain.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
    /// The name the hub's certificate must carry (`hub.cats.internal` by default; the
    /// development certificate also has `localhost` and `127.0.0.1`).
    pub server_name: String,
}

impl NodeTls {
    /// Loads `ca.pem` and the node's certificate and key from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<NodeTls, TransportError> {
        Ok(NodeTls {
            trust: TrustStore::load(ca, None).map_err(|e| TransportError::Config(e.to_string()))?,
            cert_chain: cats_trust::load_certs(cert)
                .map_err(|e| TransportError::Config(e.to_string()))?,
            key: cats_trust::load_private_key(key)
                .map_err(|e| TransportError::Config(e.to_string()))?,
            server_name: "hub.cats.internal".to_owned(),
        })
    }
}

/// A node's direct-link endpoint. [`DirectNode::connect`] starts a task that keeps one TLS
/// connection to the hub up (reconnecting with capped, jittered exponential backoff);
/// `send` waits for the hub's ack across reconnects, up to [`LinkConfig::send_timeout`].
///
/// Dropping it aborts the link at once (as a crash would); [`DirectNode::shutdown`] closes
/// it cleanly.
#[derive(Debug)]
pub struct DirectNode {
    inner: Arc<NodeInner>,
    trigger: ShutdownTrigger,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct NodeInner {
    config: LinkConfig,
    identity: PeerIdentity,
    hub_addr: Mutex<String>,
    window: Semaphore,
    next_seq: AtomicU64,
    link: Mutex<LinkState>,
    connected: watch::Sender<bool>,
    connections: AtomicU64,
    deliveries_tx: mpsc::Sender<Delivery>,
    deliveries_rx: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    applied: Mutex<Applied>,
    shutdown: Shutdown,
}

#[derive(Debug, Default)]
struct LinkState {
    writer: Option<mpsc::UnboundedSender<Frame>>,
    in_flight: BTreeMap<u64, InFlight>,
}

#[derive(Debug)]
struct InFlight {
    frame: Frame,
    written: bool,
    done: Option<oneshot::Sender<()>>,
}

/// What the node has applied of the hub's sequence.
#[derive(Debug, Default)]
struct Applied {
    /// Delivered, not yet acked.
    pending: BTreeSet<u64>,
    /// Highest acked.
    max_acked: u64,
}

impl Applied {
    /// Everything up to this sequence has been applied (as far as this process knows).
    fn last_applied(&self) -> u64 {
        match self.pending.first() {
            Some(first) => first.saturating_sub(1).min(self.max_acked),
            None => self.max_acked,
        }
    }
}

impl DirectNode {
    /// Starts the link to the hub at `hub_addr` (`host:port`). Returns at once; the first
    /// connection is made in the background (see [`DirectNode::wait_connected`]). The link
    /// keeps nothing on disk: a delivery the node refuses goes back to the hub as a `Reject`
    /// frame, and the hub keeps the dead letter.
    pub fn connect(
        hub_addr: impl Into<String>,
        tls: NodeTls,
        config: LinkConfig,
    ) -> Result<DirectNode, TransportError> {
        let own = tls
            .cert_chain
            .first()
            .ok_or_else(|| TransportError::Config("no node certificate".into()))?;
        let identity = PeerIdentity::from_cert_der(own)
            .map_err(|e| TransportError::Config(format!("node certificate: {e}")))?;
        if !matches!(identity, PeerIdentity::Node(_)) {
            return Err(TransportError::Config(format!(
                "{identity} is not a node certificate"
            )));
        }
        let server_name = ServerName::try_from(tls.server_name.clone())
            .map_err(|e| TransportError::Config(format!("server name: {e}")))?;
        let connector = TlsConnector::from(Arc::new(client_config(
            &tls.trust,
            tls.cert_chain,
            tls.key,
        )?));
        let (trigger, shutdown) = shutdown::channel();
        let (deliveries_tx, deliveries_rx) = mpsc::channel(config.receive_buffer.max(1));
        let inner = Arc::new(NodeInner {
            window: Semaphore::new(config.window.max(1)),
            config,
            identity,
            hub_addr: Mutex::new(hub_addr.into()),
            next_seq: AtomicU64::new(1),
            link: Mutex::new(LinkState::default()),
            connected: watch::channel(false).0,
            connections: AtomicU64::new(0),
            deliveries_tx,
            deliveries_rx: tokio::sync::Mutex::new(deliveries_rx),
            applied: Mutex::new(Applied::default()),
            shutdown: shutdown.clone(),
        });
        let task = tokio::spawn(supervise(inner.clone(), connector, server_name, shutdown));
        Ok(DirectNode {
            inner,
            trigger,
            task: Mutex::new(Some(task)),
        })
    }

    /// This node's identity, from its certificate.
    pub fn identity(&self) -> PeerIdentity {
        self.inner.identity
    }

    /// Whether the link is up now.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// How many times the link has come up: 1 after the first connection, + 1 per
    /// reconnection (what a node watches to resume after each one).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Waits until the link is up, at most `timeout`.
    pub async fn wait_connected(&self, timeout: std::time::Duration) -> Result<(), TransportError> {
        let mut rx = self.inner.connected.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|up| *up))
            .await
            .map_err(|_| TransportError::Timeout("connecting to the hub"))?
            .map(|_| ())
            .map_err(|_| TransportError::Closed)
    }

    /// Points the link at another hub address (used from the next reconnect on).
    pub fn set_hub_addr(&self, addr: impl Into<String>) {
        if let Ok(mut current) = self.inner.hub_addr.lock() {
            *current = addr.into();
        }
    }

    /// Closes the link cleanly; pending `send`s fail with [`TransportError::Closed`].
    pub async fn shutdown(&self) {
        self.trigger.trigger();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(self.inner.config.shutdown_grace, task).await;
        }
    }
}

impl DirectNode {
    /// Stops the link at once, as a crash would (no acks, no clean close). Also done on drop.
    pub fn abort(&self) {
        self.trigger.trigger();
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for DirectNode {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Removes a `send`'s in-flight entry however the `send` ends.
struct InFlightGuard<'a> {
    inner: &'a NodeInner,
    seq: u64,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut link) = self.inner.link.lock() {
            link.in_flight.remove(&self.seq);
        }
    }
}

impl Transport for DirectNode {
    /// Writes the message to the hub and returns when the hub acked it, which the hub does
    /// after its receiver acked (committed) or dead-lettered it. Survives reconnects (the
    /// message is written again, marked redelivered) until [`LinkConfig::send_timeout`].
    async fn send(&self, msg: Outbound) -> Result<(), TransportError> {
        let inner = &self.inner;
        if msg.destination != Destination::Hub {
            return Err(TransportError::Unroutable(msg.destination));
        }
        let size = frame_size(&msg);
        if size > inner.config.max_frame {
            return Err(TransportError::TooLarge {
                size,
                max: inner.config.max_frame,
            });
        }
        if inner.shutdown.is_triggered() {
            return Err(TransportError::Closed);
        }
        let deadline = tokio::time::Instant::now() + inner.config.send_timeout;
        let _permit = tokio::time::timeout_at(deadline, inner.window.acquire())
            .await
            .map_err(|_| TransportError::Timeout("waiting for room in the send window"))?
            .map_err(|_| TransportError::Closed)?;
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        let frame = Frame::Message {
            seq,
            redelivered: false,
            message_id: msg.message_id,
            partition_key: msg.partition_key,
            body: msg.bytes,
        };
        {
            let mut link = inner.link.lock().map_err(|_| TransportError::Closed)?;
            let written = match &link.writer {
                Some(writer) => writer.send(frame.clone()).is_ok(),
                None => false,
            };
            link.in_flight.insert(
                seq,
                InFlight {
                    frame,
                    written,
                    done: Some(done_tx),
                },
            );
        }
        let _guard = InFlightGuard { inner, seq };
        match tokio::time::timeout_at(deadline, done_rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(TransportError::Closed),
            Err(_) => Err(TransportError::Timeout("waiting for the hub's ack")),
        }
    }

    async fn receive(&self) -> Result<Delivery, TransportError> {
        let mut shutdown = self.inner.shutdown.clone();
        let mut rx = self.inner.deliveries_rx.lock().await;
        tokio::select! {
            delivery = rx.recv() => delivery.ok_or(TransportError::Closed),
            _ = shutdown.wait() => Err(TransportError::Closed),
        }
    }
}

async fn supervise(
    inner: Arc<NodeInner>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    mut shutdown: Shutdown,
) {
    let config = inner.config.clone();
    let mut attempt: u32 = 0;
    while !shutdown.is_triggered() {
        match connect_once(&inner, &connector, &server_name).await {
            Ok(stream) => {
                attempt = 0;
                match run_connection(&inner, stream, shutdown.clone()).await {
                    Ok(()) => tracing::info!("direct node: link closed"),
                    Err(e) => {
                        tracing::info!(code = e.code(), error = %e, "direct node: link lost");
                    }
                }
            }
            Err(e) => {
                tracing::info!(code = e.code(), error = %e, "direct node: cannot connect");
            }
        }
        if shutdown.is_triggered() {
            break;
        }
        let delay = backoff_delay(attempt, config.min_backoff, config.max_backoff, jitter());
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait() => {}
        }
    }
    // Pending sends learn that the link is gone.
    if let Ok(mut link) = inner.link.lock() {
        link.writer = None;
        for entry in link.in_flight.values_mut() {
            entry.done = None;
        }
    }
}

async fn connect_once(
    inner: &NodeInner,
    connector: &TlsConnector,
    server_name: &ServerName<'static>,
) -> Result<TlsStream<TcpStream>, TransportError> {
    let addr = inner
        .hub_addr
        .lock()
        .map(|a| a.clone())
        .map_err(|_| TransportError::Closed)?;
    let stream = tokio::time::timeout(inner.config.handshake_timeout, async {
        let tcp = TcpStream::connect(&addr).await?;
        let _ = tcp.set_nodelay(true);
        connector
            .connect(server_name.clone(), tcp)
            .await
            .map_err(|e| TransportError::Tls(e.to_string()))
    })
    .await
    .map_err(|_| TransportError::Timeout("connecting to the hub"))??;
    let hub = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| TransportError::PeerRefused("the hub sent no certificate".into()))
        .and_then(|der| {
            PeerIdentity::from_cert_der(der).map_err(|e| TransportError::PeerRefused(e.to_string()))
        })?;
    if hub != PeerIdentity::Hub {
        return Err(TransportError::PeerRefused(format!("{hub} is not the hub")));
    }
    Ok(stream)
}

async fn run_connection(
    inner: &Arc<NodeInner>,
    stream: TlsStream<TcpStream>,
    mut shutdown: Shutdown,
) -> Result<(), TransportError> {
    let config = &inner.config;
    let (read, write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, config.max_frame);
    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let last_applied = inner.applied.lock().map(|a| a.last_applied()).unwrap_or(0);
    let _ = frames_tx.send(Frame::Hello {
        version: PROTOCOL_VERSION,
        last_applied,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(run_writer(
        write,
        frames_rx,
        config.heartbeat,
        config.write_timeout,
    ));
    // Install the writer and write again whatever is still unacked, in order.
    if let Ok(mut link) = inner.link.lock() {
        for entry in link.in_flight.values_mut() {
            let mut frame = entry.frame.clone();
            if let Frame::Message { redelivered, .. } = &mut frame {
                *redelivered = entry.written;
            }
            entry.written = frames_tx.send(frame).is_ok();
        }
        link.writer = Some(frames_tx.clone());
    }
    inner.connections.fetch_add(1, Ordering::SeqCst);
    inner.connected.send_replace(true);
    tracing::info!(last_applied, "direct node: connected to the hub");

    let idle = config.heartbeat * 3;
    let result = loop {
        tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            Some(ended) = tasks.join_next() => {
                break match ended {
                    Ok(r) => r,
                    Err(e) => Err(TransportError::Protocol(format!("writer failed: {e}"))),
                };
            }
            frame = reader.read(idle) => match frame {
                Err(e) => break Err(e),
                Ok(None) => break Err(TransportError::Disconnected("the hub closed the link".into())),
                Ok(Some(Frame::Message { seq, redelivered, message_id, partition_key, body })) => {
                    if let Ok(mut applied) = inner.applied.lock() {
                        applied.pending.insert(seq);
                    }
                    let acker = NodeAcker {
                        inner: Arc::downgrade(inner),
                        seq,
                        message_id: message_id.clone(),
                        partition_key: partition_key.clone(),
                        body: body.clone(),
                        settled: false,
                        local_redeliveries: 0,
                    };
                    let delivery = Delivery::new(
                        PeerIdentity::Hub, message_id, partition_key, body, redelivered, Box::new(acker),
                    );
                    tokio::select! {
                        sent = inner.deliveries_tx.send(delivery) => {
                            if sent.is_err() { break Err(TransportError::Closed); }
                        }
                        _ = shutdown.wait() => break Ok(()),
                    }
                }
                Ok(Some(Frame::Ack { seq })) => {
                    let done = inner
                        .link
                        .lock()
                        .ok()
                        .and_then(|mut link| link.in_flight.remove(&seq))
                        .and_then(|entry| entry.done);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Ok(Some(Frame::Heartbeat)) => {}
                Ok(Some(Frame::Hello { .. })) => {
                    break Err(TransportError::Protocol("the hub sent Hello".into()));
                }
                Ok(Some(Frame::Reject { .. })) => {
                    break Err(TransportError::Protocol("the hub sent Reject".into()));
                }
            }
        }
    };
    inner.connected.send_replace(false);
    if let Ok(mut link) = inner.link.lock() {
        link.writer = None;
    }
    drop(frames_tx);
    // Let the writer flush and close the session (close_notify) on a clean end.
    if result.is_ok() {
        let _ = tokio::time::timeout(config.write_timeout, tasks.join_next()).await;
    }
    tasks.abort_all();
    result
}

/// Settles a hub → node message: records it as applied and sends `Ack`; reject = a `Reject`
/// frame with the reason, which the hub settles like an ack and records as a dead letter of
/// the node's queue. Dropped unsettled, it hands the message to the receiver again
/// (redelivered).
///
/// Either frame needs the link: when it is down, the settlement fails and the message stays
/// owed; the hub delivers it again on the next connection (the `Hello` names the node as not
/// having applied it), and the receiver settles it again. Nothing is written at the node.
#[derive(Debug)]
struct NodeAcker {
    inner: Weak<NodeInner>,
    seq: u64,
    message_id: String,
    partition_key: Option<String>,
    body: Bytes,
    settled: bool,
    local_redeliveries: u8,
}

impl NodeAcker {
    fn send_ack(&self, inner: &NodeInner) -> Result<(), TransportError> {
        if let Ok(mut applied) = inner.applied.lock() {
            applied.pending.remove(&self.seq);
            applied.max_acked = applied.max_acked.max(self.seq);
        }
        let writer = inner.link.lock().ok().and_then(|link| link.writer.clone());
        match writer {
            Some(writer) if writer.send(Frame::Ack { seq: self.seq }).is_ok() => Ok(()),
            _ => Err(TransportError::Disconnected(
                "not connected: the hub learns it from the next Hello".into(),
            )),
        }
    }

    /// Sends `Reject`. Settled only once the frame is handed to the connection's writer:
    /// otherwise the sequence stays pending, so the next `Hello` does not claim it and the hub
    /// delivers it again.
    fn send_reject(&self, inner: &NodeInner, reason: String) -> Result<(), TransportError> {
        let writer = inner.link.lock().ok().and_then(|link| link.writer.clone());
        let frame = Frame::Reject {
            seq: self.seq,
            reason,
        };
        match writer {
            Some(writer) if writer.send(frame).is_ok() => {
                if let Ok(mut applied) = inner.applied.lock() {
                    applied.pending.remove(&self.seq);
                    applied.max_acked = applied.max_acked.max(self.seq);
                }
                Ok(())
            }
            _ => Err(TransportError::Disconnected(
                "not connected: the refusal is not recorded; the hub delivers the message again"
                    .into(),
            )),
        }
    }
}

impl Acknowledger for NodeAcker {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        self.settled = true;
        Box::pin(async move {
            let inner = self.inner.upgrade().ok_or(TransportError::Closed)?;
            self.send_ack(&inner)
        })
    }

    fn reject(
        mut self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        self.settled = true;
        Box::pin(async move {
            let inner = self.inner.upgrade().ok_or(TransportError::Closed)?;
            self.send_reject(&inner, reason)
        })
    }
}

impl Drop for NodeAcker {
    fn drop(&mut self) {
        if self.settled || self.local_redeliveries >= MAX_LOCAL_REDELIVERIES {
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if inner.shutdown.is_triggered() || inner.deliveries_tx.is_closed() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let again = NodeAcker {
            inner: self.inner.clone(),
            seq: self.seq,
            message_id: self.message_id.clone(),
            partition_key: self.partition_key.clone(),
            body: self.body.clone(),
            settled: false,
            local_redeliveries: self.local_redeliveries + 1,
        };
        let delivery = Delivery::new(
            PeerIdentity::Hub,
            self.message_id.clone(),
            self.partition_key.clone(),
            self.body.clone(),
            true,
            Box::new(again),
        );
        let tx = inner.deliveries_tx.clone();
        drop(inner);
        handle.spawn(async move {
            let _ = tx.send(delivery).await;
        });
    }
}
