//! The internal RPC transport: framed TCP connections that carry [`Envelope`]s between the
//! view service, servers, coordinators and clients.
//!
//! - Inbound ([`serve_inbound`]): an accept loop bounded by a semaphore; per connection a read
//!   loop (idle timeout, bad frames close the connection) and a write loop for the replies sent
//!   back on that connection through its [`ReplyPath`].
//! - Outbound ([`Peers`]): one link task per destination address, created on first use and
//!   reused. It connects lazily, reconnects with exponential backoff, writes every queued frame
//!   before one flush, and reads frames coming back on the same connection.
//!
//! Every received message goes to one inbox (the task that owns the protocol core). The
//! transport does not interpret messages; it only checks, per frame, that the connection's
//! peer may send it ([`crate::identity::admit`], I3-I5).
//!
//! With [`NetConfig::tls`] every connection is mutual TLS 1.3 (I2): inbound, the peer's
//! principal comes from its client certificate; outbound, the peer must prove the principal of
//! the address dialled. Inbound connections are budgeted in two stages (I6): at most
//! `max_handshaking_connections` that have not finished the handshake (each given
//! `handshake_timeout_ms`), and `max_inbound_connections` authenticated ones, so unauthenticated
//! connections can never take the slots of the cluster's own processes. Each stage also has a
//! budget per source IP address (`max_handshaking_per_ip`, `max_inbound_per_ip`), so that one
//! host opening many connections cannot take the slots of the others.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tandem_protocol::{Endpoint, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tracing::{debug, info, warn};

use crate::config::NetConfig;
use crate::identity::{Principal, admit, kind};
use crate::shutdown::Shutdown;
use crate::tls::{check_dialled, principal_of, server_name};
use crate::wire::{Envelope, FrameError, complete_frame_len, decode_frame, encode_frame};

/// Most frames written before one flush.
const MAX_FRAMES_PER_FLUSH: usize = 1024;
/// Most outbound links one process keeps (peers, servers and view services it talks to).
const MAX_PEER_LINKS: usize = 4096;
/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// The sending side of a frame queue bounded in frames and in bytes (I6): a frame that would
/// pass either bound is refused (the caller drops and counts it), except that an empty queue
/// always takes one frame, however large.
#[derive(Clone, Debug)]
pub(crate) struct QueueTx {
    frames: mpsc::Sender<Bytes>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving side of a [`QueueTx`]; taking a frame releases its bytes.
#[derive(Debug)]
pub(crate) struct QueueRx {
    frames: mpsc::Receiver<Bytes>,
    bytes: Arc<AtomicUsize>,
}

/// A frame queue of `max_frames` frames and `max_bytes` bytes.
fn frame_queue(max_frames: usize, max_bytes: usize) -> (QueueTx, QueueRx) {
    let (sender, receiver) = mpsc::channel(max_frames);
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        QueueTx {
            frames: sender,
            bytes: bytes.clone(),
            max_bytes,
        },
        QueueRx {
            frames: receiver,
            bytes,
        },
    )
}

impl QueueTx {
    /// Queues `frame`; `Err` if the queue is full (in frames or bytes) or closed.
    fn try_send(&self, frame: Bytes) -> Result<(), ()> {
        let len = frame.len();
        let queued = self.bytes.fetch_add(len, Ordering::AcqRel);
        if queued > 0 && queued + len > self.max_bytes {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(());
        }
        self.frames.try_send(frame).map_err(|_| {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
        })
    }

    fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

impl QueueRx {
    async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.recv().await?;
        self.bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    fn try_recv(&mut self) -> Result<Bytes, ()> {
        let frame = self.frames.try_recv().map_err(|_| ())?;
        self.bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Ok(frame)
    }
}

/// A message received, with where to answer it.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The sender, as it declares itself.
    pub from: Endpoint,
    /// The message.
    pub msg: Message,
    /// The inbound connection it came on (`None` for replies on our own outbound links).
    pub reply: Option<ReplyPath>,
    /// The message's share of the inbox byte budget, released when the owner drops it (I6).
    _budget: Option<OwnedSemaphorePermit>,
}

/// Sends frames back on the inbound connection a message came on.
#[derive(Clone, Debug)]
pub(crate) struct ReplyPath {
    frames: QueueTx,
    net: Arc<Net>,
}

impl ReplyPath {
    /// Queues a frame; drops (and counts) it when the queue is full or the connection gone.
    pub fn send(&self, frame: Bytes) {
        if self.frames.try_send(frame).is_err() {
            self.net
                .stats
                .dropped_frames
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// Transport counters.
#[derive(Debug, Default)]
pub struct NetStats {
    /// Frames dropped because a send queue was full or a connection gone.
    pub dropped_frames: AtomicU64,
    /// Connections closed because of a bad frame.
    pub bad_frames: AtomicU64,
    /// Connections closed because a frame's sender or kind was not the peer's to send (I5).
    pub refused_frames: AtomicU64,
    /// Connections refused at or right after the TLS handshake, by a full budget, or because
    /// an outbound peer proved another principal than the address dialled (I2, I6).
    pub refused_connections: AtomicU64,
    /// Connections closed because a frame did not complete within `frame_timeout_ms`.
    pub stalled_frames: AtomicU64,
}

/// What every connection task of one process shares.
#[derive(Debug)]
pub(crate) struct Net {
    pub config: NetConfig,
    pub inbox: mpsc::Sender<Inbound>,
    /// Bytes of received frames the inbox may hold (I6).
    inbox_bytes: Arc<Semaphore>,
    pub shutdown: Shutdown,
    pub stats: NetStats,
    /// Told the address of every outbound peer that refused or dropped a connection.
    unreachable: std::sync::Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Net {
    /// Transport state delivering into `inbox`.
    pub fn new(config: NetConfig, inbox: mpsc::Sender<Inbound>, shutdown: Shutdown) -> Arc<Net> {
        Arc::new(Net {
            inbox_bytes: Arc::new(Semaphore::new(config.inbox_bytes.max(1))),
            config,
            inbox,
            shutdown,
            stats: NetStats::default(),
            unreachable: std::sync::Mutex::new(None),
        })
    }

    /// From now on, the address of each outbound peer whose connection fails is sent here (a
    /// coordinator uses it to stop waiting for a primary that is gone).
    pub fn subscribe_unreachable(&self) -> mpsc::UnboundedReceiver<String> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.unreachable.lock().expect("no poisoned lock") = Some(sender);
        receiver
    }

    /// Counts and logs a connection refused by the handshake, the principal check or a budget.
    fn refuse_connection(&self, peer: SocketAddr, why: &str) {
        self.stats
            .refused_connections
            .fetch_add(1, Ordering::Relaxed);
        info!(%peer, why, "internal connection refused");
    }

    fn notify_unreachable(&self, addr: &str) {
        if let Some(sender) = self.unreachable.lock().expect("no poisoned lock").as_ref() {
            let _ = sender.send(addr.to_string());
        }
    }

    /// Encodes a message from `from`; an unencodable or oversized one is dropped with a warning
    /// (the protocol treats it as lost).
    pub fn encode(&self, from: &Endpoint, msg: Message) -> Option<Bytes> {
        let envelope = Envelope {
            from: from.clone(),
            msg,
        };
        match encode_frame(&envelope, self.config.max_frame_bytes) {
            Ok(frame) => Some(frame),
            Err(error) => {
                warn!(%error, "dropping an outgoing message");
                self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// The connections one source IP address holds in each stage (I6).
#[derive(Clone, Copy, Debug, Default)]
struct IpCount {
    handshaking: usize,
    established: usize,
}

/// Per-source-IP connection counts of one listener (I6). An address is in the map only while
/// it holds a connection, so the map is bounded by the global budgets.
#[derive(Debug)]
struct PerIp {
    counts: std::sync::Mutex<HashMap<IpAddr, IpCount>>,
    max_handshaking: usize,
    max_established: usize,
}

/// Which per-IP budget a slot is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Handshaking,
    Established,
}

/// One connection's slot in a [`PerIp`] budget, given back when dropped.
#[derive(Debug)]
struct IpSlot {
    budget: Arc<PerIp>,
    ip: IpAddr,
    stage: Stage,
}

impl PerIp {
    fn new(config: &NetConfig) -> Arc<PerIp> {
        Arc::new(PerIp {
            counts: std::sync::Mutex::new(HashMap::new()),
            max_handshaking: config.max_handshaking_per_ip,
            max_established: config.max_inbound_per_ip,
        })
    }

    /// A slot of `stage` for `ip`, or `None` if that address already holds its budget.
    fn try_take(self: &Arc<PerIp>, ip: IpAddr, stage: Stage) -> Option<IpSlot> {
        let mut counts = self.counts.lock().expect("no poisoned lock");
        let count = counts.entry(ip).or_default();
        let (held, max) = match stage {
            Stage::Handshaking => (&mut count.handshaking, self.max_handshaking),
            Stage::Established => (&mut count.established, self.max_established),
        };
        if *held >= max {
            if count.handshaking == 0 && count.established == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *held += 1;
        Some(IpSlot {
            budget: self.clone(),
            ip,
            stage,
        })
    }

    /// How many addresses hold a connection (tests: the map does not grow).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.counts.lock().expect("no poisoned lock").len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.budget.counts.lock().expect("no poisoned lock");
        if let Some(count) = counts.get_mut(&self.ip) {
            match self.stage {
                Stage::Handshaking => count.handshaking = count.handshaking.saturating_sub(1),
                Stage::Established => count.established = count.established.saturating_sub(1),
            }
            if count.handshaking == 0 && count.established == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A connection's place in the handshake stage: a global slot and one of its address's.
struct Pending {
    _global: OwnedSemaphorePermit,
    _ip: IpSlot,
}

/// The budgets of the established stage (I6).
#[derive(Clone)]
struct Established {
    global: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
}

impl Established {
    /// Takes an established slot for `peer`; refuses (counted, logged) when either budget is
    /// spent. The handshake slot is given back either way.
    fn admit(
        &self,
        peer: SocketAddr,
        pending: Pending,
        net: &Net,
    ) -> Option<(OwnedSemaphorePermit, IpSlot)> {
        drop(pending);
        let Ok(global) = self.global.clone().try_acquire_owned() else {
            net.refuse_connection(peer, "too many inbound connections");
            return None;
        };
        let Some(ip) = self.per_ip.try_take(peer.ip(), Stage::Established) else {
            net.refuse_connection(peer, "too many inbound connections from this address");
            return None;
        };
        Some((global, ip))
    }
}

/// Accepts internal connections until shutdown (I6): at most `max_handshaking_connections`
/// not yet authenticated, `max_handshaking_per_ip` of them from one address (more are closed
/// at once), each of which must finish its handshake within `handshake_timeout_ms`, then at
/// most `max_inbound_connections` authenticated ones, `max_inbound_per_ip` from one address.
pub(crate) async fn serve_inbound(listener: TcpListener, net: Arc<Net>) {
    let mut shutdown = net.shutdown.clone();
    let handshaking = Arc::new(Semaphore::new(net.config.max_handshaking_connections));
    let per_ip = PerIp::new(&net.config);
    let established = Established {
        global: Arc::new(Semaphore::new(net.config.max_inbound_connections)),
        per_ip: per_ip.clone(),
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => return,
            result = listener.accept() => match result {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%error, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(ip) = per_ip.try_take(peer.ip(), Stage::Handshaking) else {
            net.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "too many unauthenticated connections from this address; closing a new one");
            continue;
        };
        let Ok(global) = handshaking.clone().try_acquire_owned() else {
            net.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "too many unauthenticated connections; closing a new one");
            continue;
        };
        let pending = Pending {
            _global: global,
            _ip: ip,
        };
        tokio::spawn(serve_inbound_connection(
            stream,
            peer,
            net.clone(),
            pending,
            established.clone(),
        ));
    }
}

async fn serve_inbound_connection(
    stream: TcpStream,
    peer: SocketAddr,
    net: Arc<Net>,
    pending: Pending,
    established: Established,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = net.config.tls.clone() else {
        let Some(_slot) = established.admit(peer, pending, &net) else {
            return;
        };
        let (read_half, write_half) = stream.into_split();
        serve_inbound_halves(read_half, write_half, peer, None, net).await;
        return;
    };
    let handshake = Duration::from_millis(net.config.handshake_timeout_ms);
    let stream = match timeout(handshake, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            net.refuse_connection(peer, &format!("TLS handshake failed: {error}"));
            return;
        }
        Err(_) => {
            net.refuse_connection(peer, "TLS handshake timed out");
            return;
        }
    };
    let principal = match stream.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => principal_of(leaf),
        _ => Err(crate::tls::TlsError::Principal("no certificate".to_owned())),
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(error) => {
            net.refuse_connection(peer, &error.to_string());
            return;
        }
    };
    let Some(_slot) = established.admit(peer, pending, &net) else {
        return;
    };
    debug!(%peer, %principal, "peer authenticated");
    let (read_half, write_half) = tokio::io::split(stream);
    serve_inbound_halves(read_half, write_half, peer, Some(principal), net).await;
}

async fn serve_inbound_halves<R, W>(
    read_half: R,
    write_half: W,
    peer: SocketAddr,
    principal: Option<Principal>,
    net: Arc<Net>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (frames, mut queue) =
        frame_queue(net.config.send_queue_frames, net.config.send_queue_bytes);
    let reply = ReplyPath {
        frames,
        net: net.clone(),
    };
    let idle = Duration::from_millis(net.config.idle_timeout_ms);
    let mut shutdown = net.shutdown.clone();
    tokio::select! {
        _ = read_loop(read_half, peer, principal.as_ref(), Some(reply), &net, Some(idle)) => {}
        result = write_loop(write_half, &mut queue, None) => {
            if let Err(error) = result {
                debug!(%peer, %error, "inbound connection write failed");
            }
        }
        _ = shutdown.wait() => {}
    }
}

/// Frames at least this big are decoded on a blocking thread (L17).
const OFFLOAD_DECODE_BYTES: usize = 256 << 10;

/// [`decode_frame`], on a blocking thread for a big frame: decoding a request of a million
/// arguments takes 100+ ms, which on the server's one runtime thread held back its pings
/// (L17). Frames of one connection still arrive in order: this waits for the decode.
async fn decode_next(buf: &mut BytesMut, max: usize) -> Result<Option<Envelope>, FrameError> {
    match complete_frame_len(buf) {
        Some(total) if total >= OFFLOAD_DECODE_BYTES && total <= max + 64 => {
            let mut frame = buf.split_to(total);
            tokio::task::spawn_blocking(move || decode_frame(&mut frame, max))
                .await
                .unwrap_or_else(|error| Err(FrameError::Decode(error.to_string())))
        }
        _ => decode_frame(buf, max),
    }
}

/// Reads frames into the inbox until EOF, an error, a bad or refused frame, a frame left
/// unfinished for `frame_timeout_ms`, or (inbound only) `idle` without a frame. Each frame is
/// admitted against `principal` (the peer proved at the handshake; `None` in insecure mode)
/// before it is delivered (I3-I5).
async fn read_loop<R: AsyncRead + Unpin>(
    mut read_half: R,
    peer: SocketAddr,
    principal: Option<&Principal>,
    reply: Option<ReplyPath>,
    net: &Net,
    idle: Option<Duration>,
) {
    let max = net.config.max_frame_bytes;
    let frame_timeout = Duration::from_millis(net.config.frame_timeout_ms);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // Far enough in the future to mean "never" when there is no idle timeout.
    let never = Duration::from_secs(100 * 365 * 24 * 3600);
    let mut deadline = Instant::now() + idle.unwrap_or(never);
    // When the frame at the front of `buf` started arriving, if it is unfinished.
    let mut unfinished_since: Option<Instant> = None;
    loop {
        let mut completed = false;
        loop {
            let before = buf.len();
            match decode_next(&mut buf, max).await {
                Ok(Some(envelope)) => {
                    let frame_len = before - buf.len();
                    completed = true;
                    deadline = Instant::now() + idle.unwrap_or(never);
                    if let Err(refusal) = admit(principal, &envelope) {
                        net.stats.refused_frames.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            %peer,
                            principal = %principal.map_or("(insecure)".to_owned(), |p| p.to_string()),
                            claimed_from = ?envelope.from,
                            kind = kind(&envelope.msg),
                            %refusal,
                            "closing connection after a refused frame"
                        );
                        return;
                    }
                    // The frame's bytes (at most the whole budget) wait for room in the inbox.
                    let cost = (frame_len.max(1)).min(net.config.inbox_bytes.max(1));
                    let cost = u32::try_from(cost).unwrap_or(u32::MAX);
                    let Ok(budget) = net.inbox_bytes.clone().acquire_many_owned(cost).await else {
                        return;
                    };
                    let inbound = Inbound {
                        from: envelope.from,
                        msg: envelope.msg,
                        reply: reply.clone(),
                        _budget: Some(budget),
                    };
                    if net.inbox.send(inbound).await.is_err() {
                        return; // The owner is gone: shutting down.
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    net.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    warn!(%peer, %error, "closing connection after a bad frame");
                    return;
                }
            }
        }
        if buf.is_empty() {
            unfinished_since = None;
        } else if completed || unfinished_since.is_none() {
            unfinished_since = Some(Instant::now());
        }
        let stall = unfinished_since.map(|since| since + frame_timeout);
        buf.reserve(READ_CHUNK_BYTES);
        match timeout_at(
            stall.map_or(deadline, |s| s.min(deadline)),
            read_half.read_buf(&mut buf),
        )
        .await
        {
            Err(_) if stall.is_some_and(|s| s <= Instant::now()) => {
                net.stats.stalled_frames.fetch_add(1, Ordering::Relaxed);
                warn!(%peer, "closing connection: a frame did not complete in time");
                return;
            }
            Err(_) => {
                debug!(%peer, "closing idle connection");
                return;
            }
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                debug!(%peer, %error, "connection read failed");
                return;
            }
        }
    }
}

/// Writes queued frames, every ready one before a single flush. Returns `Ok` when the queue
/// closed, an error when the socket failed.
async fn write_loop<W: AsyncWrite + Unpin>(
    write_half: W,
    queue: &mut QueueRx,
    mut first: Option<Bytes>,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(READ_CHUNK_BYTES, write_half);
    loop {
        let frame = match first.take() {
            Some(frame) => frame,
            None => match queue.recv().await {
                Some(frame) => frame,
                None => return Ok(()),
            },
        };
        writer.write_all(&frame).await?;
        let mut written = 1;
        while written < MAX_FRAMES_PER_FLUSH {
            let Ok(frame) = queue.try_recv() else { break };
            writer.write_all(&frame).await?;
            written += 1;
        }
        writer.flush().await?;
    }
}

/// Outbound links, one per destination address.
#[derive(Debug)]
pub(crate) struct Peers {
    links: HashMap<String, QueueTx>,
    net: Arc<Net>,
}

impl Peers {
    /// No links yet; they are made on first send.
    pub fn new(net: Arc<Net>) -> Peers {
        Peers {
            links: HashMap::new(),
            net,
        }
    }

    /// The transport state.
    pub fn net(&self) -> &Arc<Net> {
        &self.net
    }

    /// Queues `frame` for `addr`; drops (and counts) it when that link's queue is full.
    pub fn send(&mut self, addr: &str, frame: Bytes) {
        if !self.links.contains_key(addr) && self.links.len() >= MAX_PEER_LINKS {
            // Peers name themselves: never let them make us hold unbounded links.
            self.links.retain(|_, link| !link.is_closed());
            if self.links.len() >= MAX_PEER_LINKS {
                warn!(%addr, "too many peer links; dropping a message");
                self.net
                    .stats
                    .dropped_frames
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let link = match self.links.get(addr) {
            Some(link) if !link.is_closed() => link,
            _ => {
                let (sender, queue) = frame_queue(
                    self.net.config.send_queue_frames,
                    self.net.config.send_queue_bytes,
                );
                tokio::spawn(run_link(addr.to_owned(), queue, self.net.clone()));
                self.links.insert(addr.to_owned(), sender);
                &self.links[addr]
            }
        };
        if link.try_send(frame).is_err() {
            self.net
                .stats
                .dropped_frames
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One outbound link: connects when there is something to send, reconnects with backoff, and
/// ends when its `Peers` is dropped or on shutdown.
async fn run_link(addr: String, mut queue: QueueRx, net: Arc<Net>) {
    let min = Duration::from_millis(net.config.reconnect_min_ms);
    let max = Duration::from_millis(net.config.reconnect_max_ms);
    let mut backoff = min;
    let mut shutdown = net.shutdown.clone();
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            frame = queue.recv() => match frame {
                Some(frame) => frame,
                None => return,
            },
        };
        // A node behind a proxy is reached at the proxy's address, and proves its own (I2).
        let target = net
            .config
            .tls
            .as_ref()
            .map_or(addr.as_str(), |tls| tls.connect_address(&addr));
        let connected = tokio::select! {
            _ = shutdown.wait() => return,
            connected = TcpStream::connect(target) => connected,
        };
        let stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                // Whatever is queued is stale by the time the peer is back: drop it all (the
                // protocol retransmits what still matters).
                let mut dropped = 1;
                while queue.try_recv().is_ok() {
                    dropped += 1;
                }
                debug!(%addr, %error, dropped, "connect failed; queued frames dropped");
                net.notify_unreachable(&addr);
                net.stats
                    .dropped_frames
                    .fetch_add(dropped, Ordering::Relaxed);
                if !back_off(&addr, &mut queue, &net, &mut shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(max);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let started = Instant::now();
        let ended = match net.config.tls.clone() {
            None => {
                let (read_half, write_half) = stream.into_split();
                let link = Link {
                    addr: &addr,
                    peer,
                    principal: None,
                    net: &net,
                };
                link.run(read_half, write_half, &mut queue, first).await
            }
            Some(tls) => match connect_tls(&tls, &addr, stream, &net).await {
                Ok((stream, principal)) => {
                    let (read_half, write_half) = tokio::io::split(stream);
                    let link = Link {
                        addr: &addr,
                        peer,
                        principal: Some(principal),
                        net: &net,
                    };
                    link.run(read_half, write_half, &mut queue, first).await
                }
                Err(error) => {
                    net.refuse_connection(peer, &format!("{addr}: {error}"));
                    LinkEnd::Failed
                }
            },
        };
        match ended {
            LinkEnd::Stop => return,
            LinkEnd::Failed => {}
        }
        net.notify_unreachable(&addr);
        // A connection that dies at once (a peer accepting then closing) backs off too.
        if started.elapsed() < Duration::from_secs(1) {
            if !back_off(&addr, &mut queue, &net, &mut shutdown, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(max);
        } else {
            backoff = min;
        }
    }
}

/// How an outbound connection ended.
enum LinkEnd {
    /// Shutdown, or the link's `Peers` is gone.
    Stop,
    /// The connection failed or was refused: reconnect.
    Failed,
}

/// One connected outbound link.
struct Link<'a> {
    addr: &'a str,
    peer: SocketAddr,
    principal: Option<Principal>,
    net: &'a Arc<Net>,
}

impl Link<'_> {
    /// Writes queued frames and reads the frames coming back until either side fails.
    async fn run<R, W>(
        self,
        read_half: R,
        write_half: W,
        queue: &mut QueueRx,
        first: Bytes,
    ) -> LinkEnd
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut shutdown = self.net.shutdown.clone();
        let addr = self.addr;
        tokio::select! {
            _ = shutdown.wait() => LinkEnd::Stop,
            _ = read_loop(read_half, self.peer, self.principal.as_ref(), None, self.net, None) => {
                LinkEnd::Failed
            }
            result = write_loop(write_half, queue, Some(first)) => match result {
                Ok(()) => LinkEnd::Stop, // Peers dropped.
                Err(error) => {
                    debug!(%addr, %error, "outbound write failed");
                    LinkEnd::Failed
                }
            },
        }
    }
}

/// Runs the TLS handshake on an outbound link to the node named `addr` (I2): the server name
/// is the host dialled, and the peer must prove to be the node named `addr`, port included
/// (another node on the same host has a certificate for the same host). Returns the stream and
/// that principal, which every frame read back is admitted against.
async fn connect_tls(
    tls: &crate::tls::PeerTls,
    addr: &str,
    stream: TcpStream,
    net: &Net,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Principal), String> {
    let handshake = Duration::from_millis(net.config.handshake_timeout_ms);
    let (stream, principal) = handshake_tls(tls, addr, stream, handshake).await?;
    check_dialled(addr, &principal).map_err(|e| e.to_string())?;
    Ok((stream, principal))
}

/// The client side of the TLS handshake with the node at `addr`: the server name is its host,
/// and the peer must prove a node principal. Operator tools ([`Exchange`]) stop here: they
/// may be pointed at any node's listening address (`tandem status` asks whichever answers),
/// and what they read back is still admitted against the principal proved (I3).
async fn handshake_tls(
    tls: &crate::tls::PeerTls,
    addr: &str,
    stream: TcpStream,
    handshake: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Principal), String> {
    let name = server_name(addr).map_err(|e| e.to_string())?;
    let stream = match timeout(handshake, tls.connector().connect(name, stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(format!("TLS handshake failed: {error}")),
        Err(_) => return Err("TLS handshake timed out".to_owned()),
    };
    let principal = match stream.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => principal_of(leaf).map_err(|e| e.to_string())?,
        _ => return Err("no peer certificate".to_owned()),
    };
    if !principal.role.is_node() {
        return Err(format!("the peer proved to be {principal}, not a node"));
    }
    Ok((stream, principal))
}

/// Waits out a reconnect backoff. Frames queued meanwhile are dropped at once and the peer is
/// reported unreachable again, so that senders learn of the failure now rather than by their own
/// timeouts. Returns false on shutdown or when the link's `Peers` is gone.
async fn back_off(
    addr: &str,
    queue: &mut QueueRx,
    net: &Net,
    shutdown: &mut Shutdown,
    backoff: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + backoff;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return false,
            _ = tokio::time::sleep_until(until) => return true,
            frame = queue.recv() => match frame {
                Some(_) => {
                    net.stats.dropped_frames.fetch_add(1, Ordering::Relaxed);
                    net.notify_unreachable(addr);
                }
                None => return false,
            },
        }
    }
}

/// A byte stream of either kind.
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// One request/answer connection of an operator tool (`tandem status`, membership changes):
/// connects (with TLS when given, I2), sends frames, and reads frames back, each admitted
/// against the principal proved at the handshake like on any outbound link (I3, I4).
pub(crate) struct Exchange {
    stream: Box<dyn Duplex>,
    principal: Option<Principal>,
    buf: BytesMut,
    max_frame_bytes: usize,
}

impl Exchange {
    /// Connects to the node at `addr`.
    pub async fn connect(
        addr: &str,
        tls: Option<&crate::tls::PeerTls>,
    ) -> std::io::Result<Exchange> {
        let config = NetConfig::default();
        let target = tls.map_or(addr, |tls| tls.connect_address(addr));
        let stream = TcpStream::connect(target).await?;
        let _ = stream.set_nodelay(true);
        let (stream, principal): (Box<dyn Duplex>, _) = match tls {
            None => (Box::new(stream), None),
            Some(tls) => {
                let handshake = Duration::from_millis(config.handshake_timeout_ms);
                let (stream, principal) = handshake_tls(tls, addr, stream, handshake)
                    .await
                    .map_err(std::io::Error::other)?;
                (Box::new(stream), Some(principal))
            }
        };
        Ok(Exchange {
            stream,
            principal,
            buf: BytesMut::with_capacity(4096),
            max_frame_bytes: config.max_frame_bytes,
        })
    }

    /// Sends `msg` as `from`.
    pub async fn send(&mut self, from: Endpoint, msg: Message) -> std::io::Result<()> {
        let frame = encode_frame(&Envelope { from, msg }, self.max_frame_bytes)
            .map_err(std::io::Error::other)?;
        self.stream.write_all(&frame).await?;
        self.stream.flush().await
    }

    /// The next frame's message; an error if the connection ends or the peer may not send it.
    pub async fn recv(&mut self) -> std::io::Result<Message> {
        loop {
            if let Some(envelope) =
                decode_frame(&mut self.buf, self.max_frame_bytes).map_err(std::io::Error::other)?
            {
                admit(self.principal.as_ref(), &envelope).map_err(std::io::Error::other)?;
                return Ok(envelope.msg);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i6_per_ip_budgets_count_each_address_and_forget_it_when_it_leaves() {
        let config = NetConfig {
            max_handshaking_per_ip: 2,
            max_inbound_per_ip: 1,
            ..NetConfig::default()
        };
        let budget = PerIp::new(&config);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = budget.try_take(a, Stage::Handshaking).unwrap();
        let second = budget.try_take(a, Stage::Handshaking).unwrap();
        assert!(budget.try_take(a, Stage::Handshaking).is_none());
        // Another address has its own budget.
        let other = budget.try_take(b, Stage::Handshaking).unwrap();
        // Stages are counted apart.
        let established = budget.try_take(a, Stage::Established).unwrap();
        assert!(budget.try_take(a, Stage::Established).is_none());
        drop(first);
        assert!(budget.try_take(a, Stage::Handshaking).is_some());
        drop((second, other, established));
        // Nothing held: the map is empty again, also after a refusal of an unknown address.
        assert_eq!(budget.addresses(), 0);
        let strict = PerIp::new(&NetConfig {
            max_inbound_per_ip: 0,
            ..NetConfig::default()
        });
        assert!(strict.try_take(a, Stage::Established).is_none());
        assert_eq!(strict.addresses(), 0);
    }

    #[test]
    fn i6_send_queues_are_bounded_in_bytes_as_well_as_frames() {
        let (tx, mut rx) = frame_queue(100, 10);
        // An empty queue takes one frame, however large.
        assert!(tx.try_send(Bytes::from(vec![0u8; 64])).is_ok());
        assert!(tx.try_send(Bytes::from_static(b"x")).is_err());
        assert_eq!(rx.try_recv().map(|f| f.len()), Ok(64));
        // Then up to the byte budget.
        assert!(tx.try_send(Bytes::from(vec![0u8; 6])).is_ok());
        assert!(tx.try_send(Bytes::from(vec![0u8; 4])).is_ok());
        assert!(tx.try_send(Bytes::from_static(b"x")).is_err());
        assert!(rx.try_recv().is_ok());
        assert!(tx.try_send(Bytes::from(vec![0u8; 6])).is_ok());
        // And the frame bound still holds.
        let (tx, _rx) = frame_queue(2, 1 << 20);
        assert!(tx.try_send(Bytes::from_static(b"a")).is_ok());
        assert!(tx.try_send(Bytes::from_static(b"b")).is_ok());
        assert!(tx.try_send(Bytes::from_static(b"c")).is_err());
    }
}
