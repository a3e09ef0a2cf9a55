//! One client connection: read, parse every buffered request, execute in order, write.
//!
//! Data commands that arrive together (a pipeline) travel as ONE request through the hub,
//! bounded in commands and bytes; a connection-local command splits the batch so that it keeps
//! its place (HELLO 3 in the middle of a pipeline changes how the replies after it encode).
//!
//! The connection is generic over its byte stream (plain TCP or TLS, L5). Its bounds (rules L*
//! of docs/PROTOCOL.md): a resumable parser (L2), a deadline on an unfinished request and an
//! optional idle timeout (L3), a share of a coordinator-wide byte budget for unfinished
//! requests (L6), replies bounded in size and output written out in small steps (L7).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tandem_kv::{Command, Reply};
use tandem_protocol::{ClientId, Outcome};
use tandem_resp::{Frame, ParseError, Protocol, RequestParser, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::debug;

use super::Shared;
use super::auth::{self, Intercept};
use super::hub::HubRequest;
use super::local::{self, Local};
use crate::clock::random_u64;
use crate::cluster::ServerFront;
use crate::config::CoordinatorConfig;
use crate::metrics::CoordinatorMetrics;
use crate::shutdown::Shutdown;
use tandem_protocol::View;

/// Read buffer growth step, and the most bytes one read takes in (L6 counts reads).
const READ_CHUNK_BYTES: usize = 16 << 10;
/// Encoded replies are written out once this many are pending, so a batch's output is never
/// held whole (L7).
const OUTPUT_FLUSH_BYTES: usize = 256 << 10;
/// The reply to a client whose unfinished request passed its deadline (L3).
pub(crate) const UNFINISHED_TIMEOUT: &str = "ERR request not completed in time, closing";
/// The reply when the unfinished requests of all clients hold the whole budget (L6).
pub(crate) const QUERY_BUDGET_FULL: &str =
    "ERR the coordinator's buffer for unfinished requests is full, closing";
/// The reply to each command of a request that timed out (C3).
pub(crate) const TRYAGAIN: &str = "TRYAGAIN no primary for this key";

/// Per-connection state that commands can change.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// RESP version of the replies.
    pub proto: Protocol,
    /// CLIENT SETNAME / HELLO SETNAME.
    pub name: Option<Bytes>,
    /// Connection number, for CLIENT ID and HELLO.
    pub id: u64,
    /// The peer.
    pub peer: SocketAddr,
    /// The ACL user this connection authenticated as; `None` until it does (A3).
    pub user: Option<Arc<str>>,
}

/// What ended a wait for the client's next bytes.
enum Wake {
    Shutdown,
    Read(std::io::Result<usize>),
    Deadline,
}

/// A reply slot of a batch: answered by the cluster, or already known (a parse error).
enum Slot {
    Data,
    Ready(Frame),
}

/// A client's byte stream: plain TCP or TLS.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for S {}

struct Connection<S> {
    stream: S,
    input: BytesMut,
    /// Resumes the pending request where the last read left it (L2).
    parser: RequestParser,
    /// Bytes of `input` counted in the shared budget (L6).
    accounted_bytes: usize,
    /// When the unfinished request at the front of `input` started (L3).
    unfinished_since: Option<Instant>,
    output: BytesMut,
    state: ConnState,
    client: ClientId,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    /// The batch being assembled.
    slots: Vec<Slot>,
    cmds: Vec<Command>,
    batch_bytes: usize,
}

/// Serves one client until it closes, QUITs, breaks the protocol, times out, or shutdown.
pub(crate) async fn serve<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) {
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let client = ClientId(random_u64());
    let mut connection = Connection {
        stream,
        input: BytesMut::with_capacity(READ_CHUNK_BYTES),
        parser: RequestParser::new(),
        accounted_bytes: 0,
        unfinished_since: None,
        output: BytesMut::new(),
        state: ConnState {
            proto: Protocol::Resp2,
            name: None,
            id,
            peer,
            user: None,
        },
        client,
        shared: shared.clone(),
        shutdown,
        slots: Vec::new(),
        cmds: Vec::new(),
        batch_bytes: 0,
    };
    if let Err(error) = connection.run().await {
        debug!(%peer, %error, "client connection ended with an error");
    }
    shared
        .query_bytes
        .fetch_sub(connection.accounted_bytes, Ordering::Relaxed);
    let _ = shared.hub.send(HubRequest::Close { client });
    shared.connected.fetch_sub(1, Ordering::Relaxed);
}

/// Serves Redis clients on a server's client port (`tandem server --client-listen`) until
/// `shutdown`: the same connections as a coordinator's (limits L1-L7, AUTH, local commands),
/// but each batch goes to `front`, which routes it by slot and runs it on this server's core
/// (S4), and CLUSTER commands are answered from the cluster map.
pub(crate) async fn serve_server_clients(
    listener: TcpListener,
    config: CoordinatorConfig,
    front: Arc<ServerFront>,
    view: watch::Receiver<Option<View>>,
    shutdown: Shutdown,
) {
    let Ok(listen) = listener.local_addr() else {
        return;
    };
    let (hub, mut batches) = mpsc::unbounded_channel();
    let max_connections = config.max_connections;
    let shared = Arc::new(Shared {
        auth: auth::AclCache::new(config.requirepass.is_some()),
        config,
        hub,
        view,
        connected: std::sync::atomic::AtomicUsize::new(0),
        next_connection_id: std::sync::atomic::AtomicU64::new(1),
        started: std::time::Instant::now(),
        listen,
        metrics: CoordinatorMetrics::default(),
        view_service_target: watch::channel(String::new()).1,
        query_bytes: std::sync::atomic::AtomicUsize::new(0),
        query_budget_refusals: std::sync::atomic::AtomicU64::new(0),
        unfinished_timeouts: std::sync::atomic::AtomicU64::new(0),
        max_clients_refusals: std::sync::atomic::AtomicU64::new(0),
        replies_too_big: std::sync::atomic::AtomicU64::new(0),
        cluster: Some(front.clone()),
        cluster_map: watch::channel(None).1,
    });
    // Connections submit their batches to `front` themselves; what still comes through the
    // hub (the ACL cache's reads) runs each on its own task.
    tokio::spawn(async move {
        while let Some(request) = batches.recv().await {
            if let HubRequest::Submit {
                client,
                cmds,
                user,
                done,
            } = request
            {
                let front = front.clone();
                tokio::spawn(async move {
                    let _ = done.send(front.execute(client, cmds, user).await);
                });
            }
        }
    });
    tokio::spawn(auth::maintain(shared.clone(), shutdown.clone()));
    let slots = Arc::new(Semaphore::new(max_connections));
    super::accept_clients(listener, None, slots, &shared, &shutdown).await;
}

impl<S: ClientStream> Connection<S> {
    async fn run(&mut self) -> std::io::Result<()> {
        if let Some(frame) = auth::protected_refusal(self.state.peer, &self.shared) {
            encode(&frame, self.state.proto, &mut self.output);
            self.write_output().await?;
            return self.stream.shutdown().await;
        }
        let mut eof = false;
        loop {
            let (requests, error) = self.parse_buffered();
            if requests.is_empty() && error.is_none() {
                // Everything complete is answered: read more, or finish after a half-close.
                if eof {
                    return self.stream.shutdown().await;
                }
                if let Some(refusal) = self.account() {
                    return self.refuse(refusal).await;
                }
                let deadline = self.read_deadline();
                self.input.reserve(READ_CHUNK_BYTES);
                let wake = {
                    let mut spare = (&mut self.input).limit(READ_CHUNK_BYTES);
                    tokio::select! {
                        _ = self.shutdown.wait() => Wake::Shutdown,
                        read = self.stream.read_buf(&mut spare) => Wake::Read(read),
                        _ = sleep_until_some(deadline) => Wake::Deadline,
                    }
                };
                let read = match wake {
                    Wake::Shutdown => return Ok(()),
                    Wake::Read(read) => read?,
                    Wake::Deadline if self.unfinished_since.is_some() => {
                        self.shared
                            .unfinished_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        return self.refuse(UNFINISHED_TIMEOUT).await;
                    }
                    // Idle (Redis's `timeout`): closed without a word, like Redis.
                    Wake::Deadline => return self.stream.shutdown().await,
                };
                eof = read == 0;
                continue;
            }
            let quit = self.execute(requests).await;
            if let Some(error) = &error {
                // The requests before the bad bytes were answered; then the error, and close.
                let frame = Frame::Error(format!("ERR {error}"));
                encode(&frame, self.state.proto, &mut self.output);
            }
            self.write_output().await?;
            if quit || error.is_some() {
                return self.stream.shutdown().await;
            }
        }
    }

    /// Takes every complete request off the input (at most one batch's worth).
    fn parse_buffered(&mut self) -> (Vec<Vec<Bytes>>, Option<String>) {
        let limits = &self.shared.config.resp_limits;
        let max = self.shared.config.max_batch_commands;
        let mut requests = Vec::new();
        let mut error = None;
        while requests.len() < max {
            match self.parser.parse(&mut self.input, limits) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => break,
                Err(ParseError::Protocol(text)) => {
                    error = Some(text);
                    break;
                }
                Err(ParseError::Incomplete) => break,
            }
        }
        // A request completed: the deadline of the next one starts with its first byte (L3).
        if !requests.is_empty() || self.input.is_empty() {
            self.unfinished_since = None;
        }
        if !self.input.is_empty() && self.unfinished_since.is_none() {
            self.unfinished_since = Some(Instant::now());
        }
        (requests, error)
    }

    /// Brings this connection's share of the coordinator-wide budget for unfinished requests
    /// up to date (L6); the refusal when the budget is exceeded while this connection holds an
    /// unfinished request.
    fn account(&mut self) -> Option<&'static str> {
        let now = self.input.len();
        let total = &self.shared.query_bytes;
        let total_bytes = if now >= self.accounted_bytes {
            total.fetch_add(now - self.accounted_bytes, Ordering::Relaxed)
                + (now - self.accounted_bytes)
        } else {
            total.fetch_sub(self.accounted_bytes - now, Ordering::Relaxed)
                - (self.accounted_bytes - now)
        };
        self.accounted_bytes = now;
        if now > 0 && total_bytes > self.shared.config.max_total_query_bytes {
            self.shared
                .query_budget_refusals
                .fetch_add(1, Ordering::Relaxed);
            return Some(QUERY_BUDGET_FULL);
        }
        None
    }

    /// When the next read must have arrived: the unfinished request's deadline, else the idle
    /// timeout (if any).
    fn read_deadline(&self) -> Option<Instant> {
        let config = &self.shared.config;
        match self.unfinished_since {
            Some(since) => {
                Some(since + Duration::from_millis(config.unfinished_request_timeout_ms))
            }
            None if config.client_idle_timeout_s > 0 => {
                Some(Instant::now() + Duration::from_secs(config.client_idle_timeout_s))
            }
            None => None,
        }
    }

    /// Sends `error` and closes.
    async fn refuse(&mut self, error: &str) -> std::io::Result<()> {
        debug!(peer = %self.state.peer, error, "client connection refused");
        encode(
            &Frame::Error(error.to_owned()),
            self.state.proto,
            &mut self.output,
        );
        self.write_output().await?;
        self.stream.shutdown().await
    }

    /// Executes requests in order; returns true after QUIT.
    async fn execute(&mut self, requests: Vec<Vec<Bytes>>) -> bool {
        for args in requests {
            match auth::intercept(&args, &self.state, &self.shared) {
                Intercept::Pass => {}
                Intercept::Reply(frame) => {
                    self.slots.push(Slot::Ready(frame));
                    continue;
                }
                Intercept::Cluster(cmd) => {
                    self.cmds.push(cmd);
                    self.slots.push(Slot::Data);
                    continue;
                }
                Intercept::Auth { cmd, user, hello } => {
                    self.authenticate(cmd, user, hello).await;
                    continue;
                }
            }
            if let Some(local) = local::command(&args) {
                self.flush_batch().await;
                let close = matches!(local, Local::Quit);
                let frame = local::execute(local, &args, &mut self.state, &self.shared);
                encode(&frame, self.state.proto, &mut self.output);
                let _ = self.write_if_full().await;
                if close {
                    return true;
                }
                continue;
            }
            match Command::parse(&args) {
                Ok(cmd) => {
                    self.batch_bytes += args.iter().map(|a| a.len()).sum::<usize>();
                    self.cmds.push(cmd);
                    self.slots.push(Slot::Data);
                    let config = &self.shared.config;
                    if self.cmds.len() >= config.max_batch_commands
                        || self.batch_bytes >= config.max_batch_bytes
                    {
                        self.flush_batch().await;
                    }
                }
                Err(reply) => self.slots.push(Slot::Ready(reply_frame(&reply))),
            }
        }
        self.flush_batch().await;
        false
    }

    /// AUTH / HELLO ... AUTH: the primary checks the pair (A2); on success the connection runs
    /// as `user` from its next command on.
    async fn authenticate(&mut self, cmd: Command, user: Arc<str>, hello: Option<Vec<Bytes>>) {
        self.flush_batch().await;
        let outcome = self.submit(vec![cmd]).await;
        let frame = match auth::auth_outcome(&outcome) {
            Ok(()) => {
                self.state.user = Some(user);
                self.shared.auth.refresh_soon();
                match hello {
                    Some(args) => {
                        local::execute(Local::Hello, &args, &mut self.state, &self.shared)
                    }
                    None => Frame::Simple("OK".to_owned()),
                }
            }
            Err(frame) => frame,
        };
        encode(&frame, self.state.proto, &mut self.output);
    }

    /// Sends the assembled data commands as one request and encodes every slot's reply.
    async fn flush_batch(&mut self) {
        let cmds = std::mem::take(&mut self.cmds);
        let slots = std::mem::take(&mut self.slots);
        self.batch_bytes = 0;
        let acl_changed = cmds.iter().any(auth::changes_acl);
        let outcome = if cmds.is_empty() {
            Outcome::Replies(Arc::new(Vec::new()))
        } else {
            self.submit(cmds).await
        };
        if acl_changed {
            self.shared.auth.refresh_soon();
        }
        let mut replies = match &outcome {
            Outcome::Replies(replies) => Some(replies.iter()),
            Outcome::TimedOut | Outcome::CrossGroup => None,
        };
        let max_reply_bytes = self.shared.config.max_reply_bytes;
        for slot in slots {
            let frame = match slot {
                Slot::Ready(frame) => frame,
                Slot::Data => match replies.as_mut().map(|r| r.next()) {
                    Some(Some(reply)) => match reply_bytes(reply, max_reply_bytes) {
                        Some(_) => reply_frame_in(reply, self.state.proto),
                        None => {
                            self.shared.replies_too_big.fetch_add(1, Ordering::Relaxed);
                            Frame::Error(reply_too_big(max_reply_bytes))
                        }
                    },
                    Some(None) => Frame::Error("ERR missing reply".to_owned()),
                    None => Frame::Error(TRYAGAIN.to_owned()),
                },
            };
            encode(&frame, self.state.proto, &mut self.output);
            // A failed write shows again (and ends the connection) at the next write.
            let _ = self.write_if_full().await;
        }
    }

    /// Writes the pending output out once it passes [`OUTPUT_FLUSH_BYTES`] (L7).
    async fn write_if_full(&mut self) -> std::io::Result<()> {
        if self.output.len() >= OUTPUT_FLUSH_BYTES {
            self.write_output().await?;
        }
        Ok(())
    }

    async fn submit(&mut self, cmds: Vec<Command>) -> Outcome {
        let timer = self.shared.metrics.start_batch(&cmds);
        if let Some(front) = self.shared.cluster.clone() {
            // A server's client port: routed and handed to the core from this task.
            let user = self.state.user.clone();
            let outcome = tokio::select! {
                outcome = front.execute(self.client, cmds, user) => outcome,
                _ = self.shutdown.wait() => Outcome::TimedOut,
            };
            self.shared.metrics.finish_batch(timer, &outcome);
            return outcome;
        }
        let (done, outcome) = oneshot::channel();
        let request = HubRequest::Submit {
            client: self.client,
            cmds,
            user: self.state.user.clone(),
            done,
        };
        if self.shared.hub.send(request).is_err() {
            return Outcome::TimedOut; // The hub is gone: shutting down.
        }
        let outcome = tokio::select! {
            outcome = outcome => outcome.unwrap_or(Outcome::TimedOut),
            _ = self.shutdown.wait() => Outcome::TimedOut,
        };
        self.shared.metrics.finish_batch(timer, &outcome);
        outcome
    }

    async fn write_output(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let written = self.stream.write_all(&self.output).await;
        self.output.clear();
        written?;
        self.stream.flush().await
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The error answered instead of a reply larger than `max_reply_bytes` (L7).
pub(crate) fn reply_too_big(max_reply_bytes: usize) -> String {
    format!("ERR reply exceeds max-reply-bytes ({max_reply_bytes} bytes); ask for less per command")
}

/// About how many bytes `reply` takes encoded, or `None` once that passes `max_bytes`: the
/// walk stops there, so a huge reply costs no more than the bound to measure.
pub(crate) fn reply_bytes(reply: &Reply, max_bytes: usize) -> Option<usize> {
    // Type byte, a length or value of up to 20 digits, CRLF.
    const HEADER_BYTES: usize = 24;
    // The common case, one value, without the walk's stack.
    let single = match reply {
        Reply::Simple(text) | Reply::Error(text) => Some(text.len()),
        Reply::Bulk(bytes) => Some(bytes.len() + 2),
        Reply::Integer(_) | Reply::Nil => Some(0),
        Reply::Double(_) => Some(24),
        Reply::Array(_) | Reply::Map(_) | Reply::Pairs(_) => None,
    };
    if let Some(len) = single {
        let total = len.saturating_add(HEADER_BYTES);
        return (total <= max_bytes).then_some(total);
    }
    let mut total = 0usize;
    let mut stack = vec![reply];
    while let Some(reply) = stack.pop() {
        total = total.saturating_add(HEADER_BYTES);
        match reply {
            Reply::Simple(text) | Reply::Error(text) => total = total.saturating_add(text.len()),
            Reply::Bulk(bytes) => total = total.saturating_add(bytes.len() + 2),
            Reply::Integer(_) | Reply::Nil => {}
            Reply::Double(_) => total = total.saturating_add(24),
            Reply::Array(items) => stack.extend(items.iter()),
            Reply::Map(pairs) | Reply::Pairs(pairs) => {
                for (key, value) in pairs.iter() {
                    stack.push(key);
                    stack.push(value);
                }
            }
        }
        if total > max_bytes {
            return None;
        }
    }
    Some(total)
}

/// A reply that holds no double and no pairs (an error, command metadata) as a RESP frame.
pub(crate) fn reply_frame(reply: &Reply) -> Frame {
    reply_frame_in(reply, Protocol::Resp3)
}

/// A command's reply as a RESP frame for a connection speaking `proto`: a double is Redis
/// 7.0's text in RESP2 and a RESP3 double otherwise; pairs are flat in RESP2 and
/// two-element arrays in RESP3.
pub(crate) fn reply_frame_in(reply: &Reply, proto: Protocol) -> Frame {
    let reply_frame = |reply: &Reply| reply_frame_in(reply, proto);
    match reply {
        Reply::Simple(text) => Frame::Simple(text.clone()),
        Reply::Error(text) => Frame::Error(text.clone()),
        Reply::Integer(value) => Frame::Integer(*value),
        Reply::Bulk(bytes) => Frame::Bulk(bytes.clone()),
        Reply::Nil => Frame::Null,
        Reply::Array(items) => Frame::Array(items.iter().map(reply_frame).collect()),
        Reply::Map(pairs) => Frame::Map(
            pairs
                .iter()
                .map(|(k, v)| (reply_frame(k), reply_frame(v)))
                .collect(),
        ),
        Reply::Double(value) => match proto {
            Protocol::Resp2 => Frame::Bulk(Bytes::from(tandem_kv::format_double(*value))),
            Protocol::Resp3 => Frame::Double(*value),
        },
        Reply::Pairs(pairs) => match proto {
            Protocol::Resp2 => Frame::Array(
                pairs
                    .iter()
                    .flat_map(|(a, b)| [reply_frame(a), reply_frame(b)])
                    .collect(),
            ),
            Protocol::Resp3 => Frame::Array(
                pairs
                    .iter()
                    .map(|(a, b)| Frame::Array(vec![reply_frame(a), reply_frame(b)]))
                    .collect(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_pairs_are_encoded_for_the_protocol() {
        let pairs = Reply::Pairs(vec![(Reply::Bulk(Bytes::from("m")), Reply::Double(0.1))]);
        assert_eq!(
            reply_frame_in(&pairs, Protocol::Resp2),
            Frame::Array(vec![
                Frame::Bulk(Bytes::from("m")),
                Frame::Bulk(Bytes::from("0.10000000000000001")),
            ])
        );
        assert_eq!(
            reply_frame_in(&pairs, Protocol::Resp3),
            Frame::Array(vec![Frame::Array(vec![
                Frame::Bulk(Bytes::from("m")),
                Frame::Double(0.1),
            ])])
        );
    }

    #[test]
    fn l7_reply_size_is_measured_up_to_the_bound() {
        let value = Reply::Bulk(Bytes::from(vec![b'v'; 1000]));
        assert!(reply_bytes(&value, 2000).is_some());
        assert_eq!(reply_bytes(&value, 500), None);
        let many = Reply::Array(vec![value.clone(); 3]);
        assert!(reply_bytes(&many, 4000).is_some());
        assert_eq!(reply_bytes(&many, 2500), None);
        let map = Reply::Map(vec![(Reply::Nil, many.clone())]);
        assert_eq!(reply_bytes(&map, 2500), None);
    }
}
