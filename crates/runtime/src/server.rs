//! A replica server process: the [`Replica`] core behind the internal transport.
//!
//! One task owns the core and loops: wait for the first ready input (a message, the core's
//! next timeout, shutdown); handle every message already in the inbox; tick if due; then drain
//! `poll_transmit`. Draining the inbox before the transmits is what lets the core put every
//! operation of the round into one forward frame (group commit).

use std::collections::HashMap;
use std::net::SocketAddr;

use tandem_protocol::{ClientId, Endpoint, Incarnation, Replica, ServerId, Transmit};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tracing::{debug, info};

use crate::clock::{Clock, random_u64};
use crate::config::ServerConfig;
use crate::error::{RuntimeError, bind, first_view_service};
use crate::net::{Inbound, Net, Peers, ReplyPath, serve_inbound};
use crate::shutdown::Shutdown;

/// Most messages handled in one round before timers and transmits get a turn.
const MAX_INBOX_BATCH: usize = 4096;

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    listener: TcpListener,
    id: ServerId,
    view_service: String,
}

impl Server {
    /// Validates `config` and binds `listen`. The server's id is `advertise`, or the bound
    /// address when it is `None` (a server's id IS the `HOST:PORT` its peers connect to).
    pub async fn bind(
        config: ServerConfig,
        listen: &str,
        advertise: Option<&str>,
        view_service_addrs: &[String],
    ) -> Result<Server, RuntimeError> {
        config.validate()?;
        let view_service = first_view_service(view_service_addrs)?;
        let listener = bind(listen).await?;
        let local = listener.local_addr()?;
        let id = match advertise {
            Some(addr) => ServerId::new(addr),
            None if local.ip().is_unspecified() => {
                return Err(RuntimeError::Address {
                    addr: local.to_string(),
                    reason: "listening on a wildcard address needs --advertise HOST:PORT",
                });
            }
            None => ServerId::new(local.to_string()),
        };
        Ok(Server {
            config,
            listener,
            id,
            view_service,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The server's id (its advertised address).
    pub fn id(&self) -> &ServerId {
        &self.id
    }

    /// Serves until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), RuntimeError> {
        let (inbox_sender, mut inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        let incarnation = Incarnation(random_u64());
        info!(id = %self.id, group = %self.config.group, %incarnation, view_service = %self.view_service, "server started");
        tokio::spawn(serve_inbound(self.listener, net.clone()));
        let mut driver = Driver {
            replica: Replica::new(
                self.id.clone(),
                self.config.group,
                incarnation,
                self.config.replica.clone(),
            ),
            clock: Clock::new(),
            me: Endpoint::Server(self.id.clone()),
            view_service: self.view_service,
            peers: Peers::new(net.clone()),
            routes: ClientRoutes::new(self.config.net.max_client_routes),
            net,
        };
        loop {
            driver.tick_if_due();
            driver.flush();
            let wake = driver.clock.instant_at(driver.replica.poll_timeout());
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    driver.handle(inbound);
                    for _ in 1..MAX_INBOX_BATCH {
                        let Ok(inbound) = inbox.try_recv() else { break };
                        driver.handle(inbound);
                    }
                }
                _ = sleep_until(wake.into()) => {}
            }
        }
        info!(id = %self.id, "server stopped");
        Ok(())
    }
}

/// Binds `listen` and serves one replica until `shutdown` (the group is `config.group`).
pub async fn run_server(
    config: ServerConfig,
    listen: &str,
    advertise: Option<&str>,
    view_service_addrs: &[String],
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    Server::bind(config, listen, advertise, view_service_addrs)
        .await?
        .run(shutdown)
        .await
}

/// The server task's state: the core and where its messages go.
struct Driver {
    replica: Replica,
    clock: Clock,
    me: Endpoint,
    view_service: String,
    peers: Peers,
    routes: ClientRoutes,
    net: std::sync::Arc<Net>,
}

impl Driver {
    fn handle(&mut self, inbound: Inbound) {
        if let (Endpoint::Client(client), Some(path)) = (&inbound.from, &inbound.reply) {
            // A server answers a coordinator on the connection its request came on.
            self.routes.remember(*client, path);
        }
        self.replica
            .handle(self.clock.now(), inbound.from, inbound.msg);
    }

    fn tick_if_due(&mut self) {
        let now = self.clock.now();
        if now.mono_ms >= self.replica.poll_timeout() {
            self.replica.tick(now);
        }
    }

    fn flush(&mut self) {
        let now = self.clock.now();
        while let Some(transmit) = self.replica.poll_transmit(now) {
            self.route(transmit);
        }
    }

    fn route(&mut self, transmit: Transmit) {
        let Transmit { to, msg } = transmit;
        let Some(frame) = self.net.encode(&self.me, msg) else {
            return;
        };
        match to {
            Endpoint::Server(id) => self.peers.send(id.as_str(), frame),
            Endpoint::ViewService => self.peers.send(&self.view_service, frame),
            Endpoint::Client(client) => match self.routes.get(client) {
                Some(path) => path.send(frame),
                None => debug!(%client, "no connection to answer this client on"),
            },
        }
    }
}

/// The inbound connection each coordinator session last sent a request on, bounded.
struct ClientRoutes {
    routes: HashMap<ClientId, ReplyPath>,
    max: usize,
}

impl ClientRoutes {
    fn new(max: usize) -> ClientRoutes {
        ClientRoutes {
            routes: HashMap::new(),
            max,
        }
    }

    fn remember(&mut self, client: ClientId, path: &ReplyPath) {
        if self.routes.len() >= self.max && !self.routes.contains_key(&client) {
            self.routes.retain(|_, path| !path.is_closed());
            if self.routes.len() >= self.max {
                // Still full of live sessions: forget one (it re-registers with its next
                // request; its pending answer is lost and retransmitted by its clerk).
                let victim = *self.routes.keys().next().expect("full map");
                self.routes.remove(&victim);
            }
        }
        self.routes.insert(client, path.clone());
    }

    fn get(&self, client: ClientId) -> Option<&ReplyPath> {
        self.routes.get(&client)
    }
}
