//! The view-service process: the [`ViewService`] core behind the internal transport.
//!
//! One task owns the core. Each `Ping` or `GetView` is answered on the connection it came on;
//! `tick` runs every 10 ms; every durable decision (`poll_event`) is logged.

use std::net::SocketAddr;
use std::time::Duration;

use std::collections::BTreeMap;

use tandem_protocol::{Endpoint, Message, ServerId, ViewEvent, ViewService};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};
use tracing::info;

use crate::clock::Clock;
use crate::config::ViewServerConfig;
use crate::error::{RuntimeError, bind};
use crate::net::{Inbound, Net, ReplyPath, serve_inbound};
use crate::shutdown::Shutdown;

/// How often the core's timers run.
const TICK_MS: u64 = 10;
/// Most messages handled before timers get a turn.
const MAX_INBOX_BATCH: usize = 4096;

/// A bound view service, ready to run.
#[derive(Debug)]
pub struct ViewServer {
    config: ViewServerConfig,
    listener: TcpListener,
}

impl ViewServer {
    /// Validates `config` and binds `listen`.
    pub async fn bind(config: ViewServerConfig, listen: &str) -> Result<ViewServer, RuntimeError> {
        config.validate()?;
        let listener = bind(listen).await?;
        Ok(ViewServer { config, listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), RuntimeError> {
        let (inbox_sender, mut inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        info!(listen = %self.local_addr(), "view service started");
        tokio::spawn(serve_inbound(self.listener, net.clone()));
        let clock = Clock::new();
        let mut core = ViewService::new(self.config.view_service);
        // The connection each server's pings arrive on, to push it a new view at once.
        let mut paths: BTreeMap<ServerId, ReplyPath> = BTreeMap::new();
        let mut ticks = interval(Duration::from_millis(TICK_MS));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = ticks.tick() => core.tick(clock.now()),
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    handle(&mut core, &net, clock, inbound, &mut paths);
                    for _ in 1..MAX_INBOX_BATCH {
                        let Ok(inbound) = inbox.try_recv() else { break };
                        handle(&mut core, &net, clock, inbound, &mut paths);
                    }
                }
            }
            push_views(&mut core, &net, &paths);
            log_events(&mut core);
        }
        info!("view service stopped");
        Ok(())
    }
}

/// Binds `listen` and serves the view service until `shutdown`.
pub async fn run_view_service(
    config: ViewServerConfig,
    listen: &str,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    ViewServer::bind(config, listen).await?.run(shutdown).await
}

/// Most servers whose ping connection is remembered.
const MAX_PING_PATHS: usize = 65_536;

/// Sends the core's unsolicited view replies on the connections the servers ping on.
fn push_views(core: &mut ViewService, net: &Net, paths: &BTreeMap<ServerId, ReplyPath>) {
    while let Some(transmit) = core.poll_transmit() {
        if let Endpoint::Server(server) = &transmit.to
            && let Some(path) = paths.get(server)
            && let Some(frame) = net.encode(&Endpoint::ViewService, transmit.msg)
        {
            path.send(frame);
        }
    }
}

fn handle(
    core: &mut ViewService,
    net: &Net,
    clock: Clock,
    inbound: Inbound,
    paths: &mut BTreeMap<ServerId, ReplyPath>,
) {
    let now = clock.now();
    if let (Message::Ping(ping), Some(path)) = (&inbound.msg, &inbound.reply)
        && (paths.len() < MAX_PING_PATHS || paths.contains_key(&ping.server))
    {
        paths.insert(ping.server.clone(), path.clone());
    }
    let reply = match &inbound.msg {
        Message::Ping(ping) => Message::PingReply(core.handle_ping(now, ping)),
        Message::GetView { group } => Message::ViewReply(core.view(*group)),
        Message::GetStatus {} => Message::StatusReply(core.status(now)),
        // Not addressed to the view service: ignore rather than trust the sender.
        _ => return,
    };
    if let Some(path) = &inbound.reply
        && let Some(frame) = net.encode(&Endpoint::ViewService, reply)
    {
        path.send(frame);
    }
}

fn log_events(core: &mut ViewService) {
    while let Some(event) = core.poll_event() {
        match event {
            ViewEvent::NewView {
                group,
                view,
                reason,
                ..
            } => {
                let backups: Vec<&str> = view.backups.iter().map(|b| b.as_str()).collect();
                info!(
                    %group,
                    viewnum = %view.num,
                    primary = %view.primary,
                    backups = ?backups,
                    reason = %reason,
                    "new view"
                );
            }
            ViewEvent::Acked { group, viewnum } => {
                info!(%group, %viewnum, "view acknowledged by its primary");
            }
        }
    }
}
