//! A Rust client that embeds a [`Clerk`] and talks to the servers directly (no coordinator
//! hop): it asks the view service for the primary and retries across view changes (C1, C3).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem_kv::{Command, Reply};
use tandem_protocol::{Clerk, ClerkConfig, ClientId, Endpoint, GroupId, Message, Outcome};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, random_u64};
use crate::config::NetConfig;
use crate::error::{RuntimeError, first_view_service};
use crate::net::{Inbound, Net, Peers};
use crate::shutdown::{ShutdownTrigger, shutdown_channel};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A command was refused before it was sent (unknown command, wrong arity, ...); the text
    /// is the Redis error reply.
    #[error("{0}")]
    Rejected(String),
    /// No answer within the request timeout (C3); the commands may or may not have run.
    #[error("request timed out: no primary answered")]
    TimedOut,
    /// The client could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// A session with a tandem cluster (replica group 0). One request at a time (P8): `call` and
/// `pipeline` take `&mut self`.
#[derive(Debug)]
pub struct Client {
    clerk: Clerk,
    clock: Clock,
    peers: Peers,
    inbox: mpsc::Receiver<Inbound>,
    view_service: String,
    me: Endpoint,
    /// Dropping the client stops its connection tasks.
    _stop: ShutdownTrigger,
}

impl Client {
    /// Connects with default settings; fails if the view service does not answer.
    pub async fn connect(view_service_addrs: &[String]) -> Result<Client, ClientError> {
        Client::connect_with(
            ClerkConfig::default(),
            NetConfig::default(),
            view_service_addrs,
        )
        .await
    }

    /// Connects with the given settings; fails if the view service does not answer within
    /// the request timeout.
    pub async fn connect_with(
        config: ClerkConfig,
        net_config: NetConfig,
        view_service_addrs: &[String],
    ) -> Result<Client, ClientError> {
        config.validate().map_err(RuntimeError::from)?;
        net_config.validate().map_err(RuntimeError::from)?;
        let view_service = first_view_service(view_service_addrs)?;
        let (stop, shutdown) = shutdown_channel();
        let (inbox_sender, inbox) = mpsc::channel(net_config.inbox_messages);
        let net = Net::new(net_config, inbox_sender, shutdown);
        let id = ClientId(random_u64());
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let mut client = Client {
            clerk: Clerk::new(id, GroupId(0), config),
            clock: Clock::new(),
            peers: Peers::new(net),
            inbox,
            view_service,
            me: Endpoint::Client(id),
            _stop: stop,
        };
        client.first_view(timeout).await?;
        Ok(client)
    }

    /// Asks the view service for the view until it answers (the clerk caches it).
    async fn first_view(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        let mut next_ask = Instant::now();
        loop {
            if Instant::now() >= next_ask {
                self.send(
                    Endpoint::ViewService(tandem_protocol::VsAddr::new(&self.view_service)),
                    Message::GetView { group: GroupId(0) },
                );
                next_ask = Instant::now() + Duration::from_millis(100);
            }
            tokio::select! {
                inbound = self.inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    if let Message::ViewReply(_) = inbound.msg {
                        self.clerk.handle(self.clock.now(), inbound.from, inbound.msg);
                        return Ok(());
                    }
                }
                _ = sleep_until(next_ask.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(RuntimeError::NoViewService(self.view_service.clone()).into())
    }

    /// Runs one command, e.g. `client.call(&[b"SET", b"k", b"v"])`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, ClientError> {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut replies = self.pipeline(vec![args]).await?;
        Ok(replies.pop().unwrap_or(Reply::Nil))
    }

    /// Runs commands as one atomic batch, in order; one reply per command.
    pub async fn pipeline(&mut self, commands: Vec<Vec<Bytes>>) -> Result<Vec<Reply>, ClientError> {
        let cmds = commands
            .iter()
            .map(|args| Command::parse(args))
            .collect::<Result<Vec<_>, Reply>>()
            .map_err(|reply| match reply {
                Reply::Error(text) => ClientError::Rejected(text),
                other => ClientError::Rejected(format!("{other:?}")),
            })?;
        self.clerk.submit(self.clock.now(), Arc::new(cmds));
        loop {
            while let Some(transmit) = self.clerk.poll_transmit(self.clock.now()) {
                self.send(transmit.to, transmit.msg);
            }
            if let Some(completion) = self.clerk.poll_completion() {
                return match completion.outcome {
                    Outcome::Replies(replies) => Ok(replies.as_ref().clone()),
                    Outcome::TimedOut => Err(ClientError::TimedOut),
                };
            }
            let wake = self
                .clock
                .instant_at(self.clerk.poll_timeout().unwrap_or(u64::MAX / 4));
            tokio::select! {
                inbound = self.inbox.recv() => {
                    // The inbox sender lives in our own transport state: never closed here.
                    if let Some(inbound) = inbound {
                        self.clerk.handle(self.clock.now(), inbound.from, inbound.msg);
                    }
                }
                _ = sleep_until(wake.into()) => self.clerk.handle_timeout(self.clock.now()),
            }
        }
    }

    fn send(&mut self, to: Endpoint, msg: Message) {
        let Some(frame) = self.peers.net().encode(&self.me, msg) else {
            return;
        };
        match to {
            Endpoint::ViewService(addr) => self.peers.send(addr.as_str(), frame),
            Endpoint::Server(id) => self.peers.send(id.as_str(), frame),
            Endpoint::Client(_) => {}
        }
    }
}
