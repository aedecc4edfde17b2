//! The hub's end of the direct link: a TLS server for all nodes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::LinkConfig;
use super::connection::{FrameReader, run_writer};
use super::frame::{Frame, PROTOCOL_VERSION};
use super::tls::server_config;
use crate::contract::{
    Acknowledger, CountryCode, Delivery, Destination, Outbound, PeerIdentity, Transport,
    TransportError,
};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::store::{DeadLetter, NodeQueue, Store, now_millis};
use cats_trust::identity::TrustStore;

/// The hub's certificates: the trust store (CATS CA + allow-list) that client certificates are
/// checked against, and the hub's own server certificate and key.
#[derive(Debug)]
pub struct HubTls {
    /// CA and allow-list.
    pub trust: TrustStore,
    /// The hub's server certificate chain (`hub-server.pem`).
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

impl HubTls {
    /// Loads `ca.pem`, the allow-list (`fingerprints.json`, optional) and the hub's server
    /// certificate and key from PEM files.
    pub fn from_files(
        ca: &Path,
        allow_list: Option<&Path>,
        cert: &Path,
        key: &Path,
    ) -> Result<HubTls, TransportError> {
        Ok(HubTls {
            trust: TrustStore::load(ca, allow_list)
                .map_err(|e| TransportError::Config(e.to_string()))?,
            cert_chain: cats_trust::load_certs(cert)
                .map_err(|e| TransportError::Config(e.to_string()))?,
            key: cats_trust::load_private_key(key)
                .map_err(|e| TransportError::Config(e.to_string()))?,
        })
    }
}

/// The hub's direct-link endpoint: accepts node connections, hands their messages to
/// [`Transport::receive`], and delivers each node's durable queue to it.
///
/// Dropping it aborts every connection at once (as a crash would); [`DirectHub::shutdown`]
/// stops gracefully.
#[derive(Debug)]
pub struct DirectHub {
    inner: Arc<HubInner>,
    local_addr: SocketAddr,
    trigger: ShutdownTrigger,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct HubInner {
    config: LinkConfig,
    store: Store,
    queue: NodeQueue,
    trust: Arc<RwLock<TrustStore>>,
    deliveries_tx: mpsc::Sender<Pending>,
    deliveries_rx: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    nodes: Mutex<HashMap<CountryCode, NodeSlot>>,
    next_connection: AtomicU64,
    shutdown: Shutdown,
}

#[derive(Debug)]
struct NodeSlot {
    connection: u64,
    wake: Arc<Notify>,
    close: ShutdownTrigger,
}

impl DirectHub {
    /// Listens on `addr` (use port 0 in tests, then [`DirectHub::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        tls: HubTls,
        store: Store,
        config: LinkConfig,
    ) -> Result<DirectHub, TransportError> {
        let trust = Arc::new(RwLock::new(tls.trust));
        let acceptor = TlsAcceptor::from(Arc::new(server_config(
            trust.clone(),
            tls.cert_chain,
            tls.key,
        )?));
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (trigger, shutdown) = shutdown::channel();
        let (deliveries_tx, deliveries_rx) = mpsc::channel(config.receive_buffer.max(1));
        let inner = Arc::new(HubInner {
            queue: NodeQueue::new(store.clone()),
            store,
            config,
            trust,
            deliveries_tx,
            deliveries_rx: tokio::sync::Mutex::new(deliveries_rx),
            nodes: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            shutdown: shutdown.clone(),
        });
        let accept_task = tokio::spawn(accept_loop(inner.clone(), listener, acceptor, shutdown));
        tracing::info!(%local_addr, "direct hub listening");
        Ok(DirectHub {
            inner,
            local_addr,
            trigger,
            accept_task: Mutex::new(Some(accept_task)),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The nodes connected now.
    pub fn connected_nodes(&self) -> Vec<CountryCode> {
        let mut nodes: Vec<_> = match self.inner.nodes.lock() {
            Ok(nodes) => nodes.keys().copied().collect(),
            Err(_) => Vec::new(),
        };
        nodes.sort();
        nodes
    }

    /// The per-node delivery queues (depths, for monitoring).
    pub fn queue(&self) -> &NodeQueue {
        &self.inner.queue
    }

    /// Replaces the trust store (after an allow-list change): new handshakes use it, and
    /// connected nodes whose certificate is no longer allowed are disconnected (they cannot
    /// reconnect).
    pub fn reload_trust(&self, trust: TrustStore) {
        if let Ok(mut current) = self.inner.trust.write() {
            *current = trust;
        }
        // Simplest correct policy: drop every connection; allowed nodes reconnect at once.
        if let Ok(nodes) = self.inner.nodes.lock() {
            for slot in nodes.values() {
                slot.close.trigger();
            }
        }
    }

    /// Stops accepting, closes every connection cleanly (waiting at most
    /// [`LinkConfig::shutdown_grace`]) and makes `receive` return [`TransportError::Closed`].
    pub async fn shutdown(&self) {
        self.trigger.trigger();
        let task = self.accept_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let grace = self.inner.config.shutdown_grace * 2;
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("direct hub: shutdown grace exceeded");
            }
        }
    }
}

impl DirectHub {
    /// Stops everything at once, as a crash would: no acks are sent, connections are cut,
    /// unacked messages will be sent again by the nodes. Also done on drop.
    pub fn abort(&self) {
        self.trigger.trigger();
        if let Some(task) = self.accept_task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for DirectHub {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Transport for DirectHub {
    /// Appends the message to the node's durable queue and returns: the hub has taken
    /// responsibility. Delivery follows while (or once) the node is connected.
    async fn send(&self, msg: Outbound) -> Result<(), TransportError> {
        let Destination::Node(country) = msg.destination else {
            return Err(TransportError::Unroutable(msg.destination));
        };
        let size = frame_size(&msg);
        if size > self.inner.config.max_frame {
            return Err(TransportError::TooLarge {
                size,
                max: self.inner.config.max_frame,
            });
        }
        self.inner
            .queue
            .enqueue(
                country,
                &msg.message_id,
                msg.partition_key.as_deref(),
                &msg.bytes,
            )
            .await?;
        if let Ok(nodes) = self.inner.nodes.lock()
            && let Some(slot) = nodes.get(&country)
        {
            slot.wake.notify_one();
        }
        Ok(())
    }

    async fn receive(&self) -> Result<Delivery, TransportError> {
        let mut shutdown = self.inner.shutdown.clone();
        let mut rx = self.inner.deliveries_rx.lock().await;
        loop {
            tokio::select! {
                pending = rx.recv() => match pending {
                    // Its connection has closed since: the ack could not reach the node, which
                    // sends the message again on its next connection.
                    Some(pending) if pending.frames.is_closed() => {
                        tracing::debug!(
                            message_id = %pending.delivery.message_id,
                            "direct hub: dropping a delivery from a closed connection"
                        );
                    }
                    Some(pending) => return Ok(pending.delivery),
                    None => return Err(TransportError::Closed),
                },
                _ = shutdown.wait() => return Err(TransportError::Closed),
            }
        }
    }
}

/// A delivery waiting for `receive`, with the frame sender of its connection (closed once the
/// connection has ended).
#[derive(Debug)]
struct Pending {
    delivery: Delivery,
    frames: mpsc::UnboundedSender<Frame>,
}

pub(crate) fn frame_size(msg: &Outbound) -> usize {
    msg.bytes.len() + msg.message_id.len() + msg.partition_key.as_ref().map_or(0, String::len) + 16
}

async fn accept_loop(
    inner: Arc<HubInner>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: Shutdown,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(serve(
                        inner.clone(),
                        acceptor.clone(),
                        tcp,
                        peer,
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "direct hub: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let grace = inner.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    // Anything still running is aborted when `connections` drops.
}

async fn serve(
    inner: Arc<HubInner>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
) {
    match serve_connection(&inner, acceptor, tcp, shutdown).await {
        Ok(()) => tracing::debug!(%peer, "direct hub: connection closed"),
        Err(e) => {
            tracing::info!(%peer, code = e.code(), error = %e, "direct hub: connection ended")
        }
    }
}

/// Removes the node's slot when its connection ends, unless a newer connection replaced it.
struct SlotGuard<'a> {
    inner: &'a HubInner,
    country: CountryCode,
    connection: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut nodes) = self.inner.nodes.lock()
            && nodes
                .get(&self.country)
                .is_some_and(|slot| slot.connection == self.connection)
        {
            nodes.remove(&self.country);
        }
    }
}

enum Ended {
    Writer(Result<(), TransportError>),
    Pump(Result<(), TransportError>),
}

async fn serve_connection(
    inner: &Arc<HubInner>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    mut shutdown: Shutdown,
) -> Result<(), TransportError> {
    let config = &inner.config;
    let tls = match tokio::time::timeout(config.handshake_timeout, acceptor.accept(tcp))
        .await
        .map_err(|_| TransportError::Timeout("the TLS handshake"))?
    {
        Ok(tls) => tls,
        // Closed before a single byte of handshake: a TCP probe (the hub's own `/readyz`, a
        // load balancer), not a node. Not worth more than a debug line.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!("direct hub: connection closed before the TLS handshake");
            return Ok(());
        }
        Err(e) => return Err(TransportError::Tls(e.to_string())),
    };
    let identity = {
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| TransportError::PeerRefused("no client certificate".into()))?;
        let trust = inner
            .trust
            .read()
            .map_err(|_| TransportError::Config("trust store lock poisoned".into()))?;
        trust
            .check_peer(der)
            .map_err(|e| TransportError::PeerRefused(e.to_string()))?
    };
    let PeerIdentity::Node(country) = identity else {
        return Err(TransportError::PeerRefused(format!(
            "{identity} is not a node"
        )));
    };
    let (read, write) = tokio::io::split(tls);
    let mut reader = FrameReader::new(read, config.max_frame);
    let last_applied = match reader.read(config.handshake_timeout).await? {
        Some(Frame::Hello {
            version: PROTOCOL_VERSION,
            last_applied,
        }) => last_applied,
        Some(Frame::Hello { version, .. }) => {
            return Err(TransportError::Protocol(format!(
                "unsupported protocol version {version}"
            )));
        }
        Some(_) => return Err(TransportError::Protocol("expected Hello".into())),
        None => return Ok(()),
    };
    let last_applied = i64::try_from(last_applied)
        .map_err(|_| TransportError::Protocol("last applied sequence out of range".into()))?;

    let connection = inner.next_connection.fetch_add(1, Ordering::Relaxed);
    let (close_trigger, mut close) = shutdown::channel();
    let wake = Arc::new(Notify::new());
    if let Ok(mut nodes) = inner.nodes.lock() {
        let slot = NodeSlot {
            connection,
            wake: wake.clone(),
            close: close_trigger,
        };
        if let Some(old) = nodes.insert(country, slot) {
            old.close.trigger();
        }
    }
    let _guard = SlotGuard {
        inner,
        country,
        connection,
    };
    tracing::info!(node = %country, last_applied, "direct hub: node connected");
    inner.queue.ack_through(country, last_applied).await?;

    let (frames_tx, frames_rx) = mpsc::unbounded_channel();
    let window = Arc::new(Semaphore::new(config.window.max(1)));
    let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let mut tasks = JoinSet::new();
    {
        let (heartbeat, write_timeout) = (config.heartbeat, config.write_timeout);
        tasks.spawn(async move {
            Ended::Writer(run_writer(write, frames_rx, heartbeat, write_timeout).await)
        });
        let (inner, frames, window, in_flight) = (
            inner.clone(),
            frames_tx.clone(),
            window.clone(),
            in_flight.clone(),
        );
        tasks.spawn(async move {
            Ended::Pump(
                pump(
                    inner,
                    country,
                    frames,
                    window,
                    in_flight,
                    wake,
                    last_applied,
                )
                .await,
            )
        });
    }

    let idle = config.heartbeat * 3;
    let result = loop {
        tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            _ = close.wait() => break Ok(()),
            Some(ended) = tasks.join_next() => {
                break match ended {
                    Ok(Ended::Writer(r)) | Ok(Ended::Pump(r)) => r,
                    Err(e) => Err(TransportError::Protocol(format!("connection task failed: {e}"))),
                };
            }
            frame = reader.read(idle) => match frame {
                Err(e) => break Err(e),
                Ok(None) => break Ok(()),
                Ok(Some(Frame::Message { seq, redelivered, message_id, partition_key, body })) => {
                    let acker = HubAcker {
                        seq,
                        frames: frames_tx.clone(),
                        store: inner.store.clone(),
                        redeliver: inner.deliveries_tx.clone(),
                        from: identity,
                        message_id: message_id.clone(),
                        partition_key: partition_key.clone(),
                        body: body.clone(),
                        settled: false,
                        local_redeliveries: 0,
                    };
                    let delivery = Delivery::new(
                        identity, message_id, partition_key, body, redelivered, Box::new(acker),
                    );
                    let pending = Pending { delivery, frames: frames_tx.clone() };
                    // A full channel stops reading: backpressure down to the node's window.
                    tokio::select! {
                        sent = inner.deliveries_tx.send(pending) => {
                            if sent.is_err() { break Err(TransportError::Closed); }
                        }
                        _ = shutdown.wait() => break Ok(()),
                    }
                }
                Ok(Some(Frame::Ack { seq })) => {
                    let was_in_flight = in_flight.lock().map(|mut s| s.remove(&seq)).unwrap_or(false);
                    let seq = i64::try_from(seq)
                        .map_err(|_| TransportError::Protocol("sequence out of range".into()));
                    match seq {
                        Ok(seq) => inner.queue.ack(country, seq).await?,
                        Err(e) => break Err(e),
                    }
                    if was_in_flight {
                        window.add_permits(1);
                    }
                }
                Ok(Some(Frame::Reject { seq, reason })) => {
                    // Settled like an ack (never redelivered), and recorded as a dead letter
                    // of the node's queue, where an operator can replay it.
                    let was_in_flight = in_flight.lock().map(|mut s| s.remove(&seq)).unwrap_or(false);
                    let seq = match i64::try_from(seq) {
                        Ok(seq) => seq,
                        Err(_) => break Err(TransportError::Protocol("sequence out of range".into())),
                    };
                    match inner.queue.reject(country, seq, &reason).await? {
                        Some(letter) => tracing::warn!(
                            node = %country,
                            seq,
                            message_id = %letter.message_id,
                            reason = %letter.reason,
                            "direct hub: the node refused a delivery: dead letter recorded"
                        ),
                        None => tracing::info!(
                            node = %country,
                            seq,
                            "direct hub: the node refused a delivery no longer queued"
                        ),
                    }
                    if was_in_flight {
                        window.add_permits(1);
                    }
                }
                Ok(Some(Frame::Heartbeat)) => {}
                Ok(Some(Frame::Hello { .. })) => {
                    break Err(TransportError::Protocol("a second Hello".into()));
                }
            }
        }
    };
    // Stop the pump, let the writer flush and close the TLS session.
    drop(frames_tx);
    tasks.abort_all();
    tracing::info!(node = %country, "direct hub: node disconnected");
    result
}

/// Delivers `country`'s queue on this connection: in sequence order, at most `window` unacked.
async fn pump(
    inner: Arc<HubInner>,
    country: CountryCode,
    frames: mpsc::UnboundedSender<Frame>,
    window: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    wake: Arc<Notify>,
    mut last_sent: i64,
) -> Result<(), TransportError> {
    loop {
        let room = window.available_permits();
        if room == 0 {
            // Wait until an ack frees a slot.
            let permit = window.acquire().await.map_err(|_| TransportError::Closed)?;
            drop(permit);
            continue;
        }
        let batch = inner
            .queue
            .after(
                country,
                last_sent,
                i64::try_from(room.min(512)).unwrap_or(512),
            )
            .await?;
        let (Some(first), Some(last)) = (batch.first().map(|m| m.seq), batch.last().map(|m| m.seq))
        else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            continue;
        };
        // Recorded before the frames leave, so that a copy written again after a reconnect
        // (or a hub restart) is always marked redelivered.
        inner.queue.mark_attempted(country, first, last).await?;
        for message in batch {
            let permit = window.acquire().await.map_err(|_| TransportError::Closed)?;
            permit.forget();
            let seq = u64::try_from(message.seq)
                .map_err(|_| TransportError::Protocol("negative sequence".into()))?;
            if let Ok(mut set) = in_flight.lock() {
                set.insert(seq);
            }
            frames
                .send(Frame::Message {
                    seq,
                    redelivered: message.attempts > 0,
                    message_id: message.message_id,
                    partition_key: message.partition_key,
                    body: Bytes::from(message.body),
                })
                .map_err(|_| TransportError::Disconnected("writer gone".into()))?;
            last_sent = message.seq;
        }
    }
}

/// Settles a node → hub message: `Ack` frame to the node; reject = dead letter, then `Ack`.
/// Dropped unsettled, it hands the message to the receiver again (redelivered).
#[derive(Debug)]
struct HubAcker {
    seq: u64,
    frames: mpsc::UnboundedSender<Frame>,
    store: Store,
    redeliver: mpsc::Sender<Pending>,
    from: PeerIdentity,
    message_id: String,
    partition_key: Option<String>,
    body: Bytes,
    settled: bool,
    /// How often it was handed out again locally; bounded so that a dying runtime cannot loop.
    local_redeliveries: u8,
}

/// After this many local redeliveries, a dropped delivery waits for the next connection.
pub(crate) const MAX_LOCAL_REDELIVERIES: u8 = 16;

impl HubAcker {
    fn send_ack(&self) -> Result<(), TransportError> {
        self.frames.send(Frame::Ack { seq: self.seq }).map_err(|_| {
            TransportError::Disconnected("the node's connection is gone; it will resend".into())
        })
    }
}

impl Acknowledger for HubAcker {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        self.settled = true;
        Box::pin(async move { self.send_ack() })
    }

    fn reject(
        mut self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        self.settled = true;
        Box::pin(async move {
            let mut tx = self.store.begin().await?;
            Store::dead_letter(
                &mut tx,
                &DeadLetter {
                    sender: self.from.urn(),
                    message_id: self.message_id.clone(),
                    partition_key: self.partition_key.clone(),
                    reason,
                    body: self.body.to_vec(),
                    dead_at: now_millis(),
                    queue: None,
                },
            )
            .await?;
            tx.commit().await?;
            self.send_ack()
        })
    }
}

impl Drop for HubAcker {
    fn drop(&mut self) {
        if self.settled
            || self.frames.is_closed()
            || self.redeliver.is_closed()
            || self.local_redeliveries >= MAX_LOCAL_REDELIVERIES
        {
            // Settled, or the connection is gone and the node will resend.
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let again = HubAcker {
            seq: self.seq,
            frames: self.frames.clone(),
            store: self.store.clone(),
            redeliver: self.redeliver.clone(),
            from: self.from,
            message_id: self.message_id.clone(),
            partition_key: self.partition_key.clone(),
            body: self.body.clone(),
            settled: false,
            local_redeliveries: self.local_redeliveries + 1,
        };
        let delivery = Delivery::new(
            self.from,
            self.message_id.clone(),
            self.partition_key.clone(),
            self.body.clone(),
            true,
            Box::new(again),
        );
        let redeliver = self.redeliver.clone();
        let pending = Pending {
            delivery,
            frames: self.frames.clone(),
        };
        handle.spawn(async move {
            let _ = redeliver.send(pending).await;
        });
    }
}
