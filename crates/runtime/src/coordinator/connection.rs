//! One client connection: read, parse every buffered request, execute in order, write.
//!
//! Data commands that arrive together (a pipeline) travel as ONE request through the hub,
//! bounded in commands and bytes; a connection-local command splits the batch so that it keeps
//! its place (HELLO 3 in the middle of a pipeline changes how the replies after it encode).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tandem_kv::{Command, Reply};
use tandem_protocol::{ClientId, Outcome};
use tandem_resp::{Frame, ParseError, Protocol, encode, parse_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::debug;

use super::Shared;
use super::auth::{self, Intercept};
use super::hub::HubRequest;
use super::local::{self, Local};
use crate::clock::random_u64;
use crate::shutdown::Shutdown;

/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 16 << 10;
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

/// A reply slot of a batch: answered by the cluster, or already known (a parse error).
enum Slot {
    Data,
    Ready(Frame),
}

struct Connection {
    stream: TcpStream,
    input: BytesMut,
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

/// Serves one client until it closes, QUITs, breaks the protocol, or shutdown.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let client = ClientId(random_u64());
    let mut connection = Connection {
        stream,
        input: BytesMut::with_capacity(READ_CHUNK_BYTES),
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
    let _ = shared.hub.send(HubRequest::Close { client });
    shared.connected.fetch_sub(1, Ordering::Relaxed);
}

impl Connection {
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
                self.input.reserve(READ_CHUNK_BYTES);
                let read = tokio::select! {
                    _ = self.shutdown.wait() => return Ok(()),
                    read = self.stream.read_buf(&mut self.input) => read?,
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
        while requests.len() < max {
            match parse_request(&mut self.input, limits) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => break,
                Err(ParseError::Protocol(text)) => return (requests, Some(text)),
                Err(ParseError::Incomplete) => break,
            }
        }
        (requests, None)
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
            Outcome::TimedOut => None,
        };
        for slot in slots {
            let frame = match slot {
                Slot::Ready(frame) => frame,
                Slot::Data => match replies.as_mut().map(|r| r.next()) {
                    Some(Some(reply)) => reply_frame(reply),
                    Some(None) => Frame::Error("ERR missing reply".to_owned()),
                    None => Frame::Error(TRYAGAIN.to_owned()),
                },
            };
            encode(&frame, self.state.proto, &mut self.output);
        }
    }

    async fn submit(&mut self, cmds: Vec<Command>) -> Outcome {
        let timer = self.shared.metrics.start_batch(&cmds);
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
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        Ok(())
    }
}

/// A command's reply as a RESP frame.
pub(crate) fn reply_frame(reply: &Reply) -> Frame {
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
    }
}
