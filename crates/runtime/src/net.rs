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
//! transport never inspects messages: it only moves bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tandem_protocol::{Endpoint, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{debug, warn};

use crate::config::NetConfig;
use crate::shutdown::Shutdown;
use crate::wire::{Envelope, FrameError, complete_frame_len, decode_frame, encode_frame};

/// Most frames written before one flush.
const MAX_FRAMES_PER_FLUSH: usize = 1024;
/// Most outbound links one process keeps (peers, servers and view services it talks to).
const MAX_PEER_LINKS: usize = 4096;
/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// A message received, with where to answer it.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The sender, as it declares itself.
    pub from: Endpoint,
    /// The message.
    pub msg: Message,
    /// The inbound connection it came on (`None` for replies on our own outbound links).
    pub reply: Option<ReplyPath>,
}

/// Sends frames back on the inbound connection a message came on.
#[derive(Clone, Debug)]
pub(crate) struct ReplyPath {
    frames: mpsc::Sender<Bytes>,
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
}

/// What every connection task of one process shares.
#[derive(Debug)]
pub(crate) struct Net {
    pub config: NetConfig,
    pub inbox: mpsc::Sender<Inbound>,
    pub shutdown: Shutdown,
    pub stats: NetStats,
    /// Told the address of every outbound peer that refused or dropped a connection.
    unreachable: std::sync::Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Net {
    /// Transport state delivering into `inbox`.
    pub fn new(config: NetConfig, inbox: mpsc::Sender<Inbound>, shutdown: Shutdown) -> Arc<Net> {
        Arc::new(Net {
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

/// Accepts internal connections until shutdown, at most `max_inbound_connections` at once.
pub(crate) async fn serve_inbound(listener: TcpListener, net: Arc<Net>) {
    let shutdown = net.shutdown.clone();
    let max = net.config.max_inbound_connections;
    accept_bounded(
        &listener,
        max,
        shutdown,
        |_| {},
        |stream, peer| serve_inbound_connection(stream, peer, net.clone()),
    )
    .await;
}

/// Accepts connections on `listener` until `shutdown`, each served by `serve` on its own task,
/// at most `max` at once (a slot frees when its task ends). `accepted` hears of every accept,
/// failed or not. A failed accept (typically out of file descriptors) backs off 50 ms instead of
/// spinning.
pub(crate) async fn accept_bounded<F, Fut>(
    listener: &TcpListener,
    max: usize,
    mut shutdown: Shutdown,
    mut accepted: impl FnMut(Result<(), &std::io::Error>),
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max));
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => return,
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => return,
            result = listener.accept() => match result {
                Ok(connection) => {
                    accepted(Ok(()));
                    connection
                }
                Err(error) => {
                    accepted(Err(&error));
                    warn!(%error, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = serve(stream, peer);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
}

async fn serve_inbound_connection(stream: TcpStream, peer: SocketAddr, net: Arc<Net>) {
    let _ = stream.set_nodelay(true);
    let (frames, mut queue) = mpsc::channel(net.config.send_queue_frames);
    let reply = ReplyPath {
        frames,
        net: net.clone(),
    };
    let (read_half, write_half) = stream.into_split();
    let idle = Duration::from_millis(net.config.idle_timeout_ms);
    let mut shutdown = net.shutdown.clone();
    tokio::select! {
        _ = read_loop(read_half, peer, Some(reply), &net, Some(idle)) => {}
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

/// Reads frames into the inbox until EOF, an error, a bad frame or (inbound only) `idle`
/// without a frame.
async fn read_loop(
    mut read_half: OwnedReadHalf,
    peer: SocketAddr,
    reply: Option<ReplyPath>,
    net: &Net,
    idle: Option<Duration>,
) {
    let max = net.config.max_frame_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // Far enough in the future to mean "never" when there is no idle timeout.
    let never = Duration::from_secs(100 * 365 * 24 * 3600);
    let mut deadline = Instant::now() + idle.unwrap_or(never);
    loop {
        loop {
            match decode_next(&mut buf, max).await {
                Ok(Some(envelope)) => {
                    deadline = Instant::now() + idle.unwrap_or(never);
                    let inbound = Inbound {
                        from: envelope.from,
                        msg: envelope.msg,
                        reply: reply.clone(),
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
        buf.reserve(READ_CHUNK_BYTES);
        match timeout_at(deadline, read_half.read_buf(&mut buf)).await {
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
async fn write_loop(
    write_half: OwnedWriteHalf,
    queue: &mut mpsc::Receiver<Bytes>,
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
    links: HashMap<String, mpsc::Sender<Bytes>>,
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
                let (sender, queue) = mpsc::channel(self.net.config.send_queue_frames);
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
async fn run_link(addr: String, mut queue: mpsc::Receiver<Bytes>, net: Arc<Net>) {
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
        let connected = tokio::select! {
            _ = shutdown.wait() => return,
            connected = TcpStream::connect(addr.as_str()) => connected,
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
        let (read_half, write_half) = stream.into_split();
        let started = Instant::now();
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = read_loop(read_half, peer, None, &net, None) => {}
            result = write_loop(write_half, &mut queue, Some(first)) => match result {
                Ok(()) => return, // Peers dropped.
                Err(error) => debug!(%addr, %error, "outbound write failed"),
            },
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

/// Waits out a reconnect backoff. Frames queued meanwhile are dropped at once and the peer is
/// reported unreachable again, so that senders learn of the failure now rather than by their own
/// timeouts. Returns false on shutdown or when the link's `Peers` is gone.
async fn back_off(
    addr: &str,
    queue: &mut mpsc::Receiver<Bytes>,
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
