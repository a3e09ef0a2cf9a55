//! The view-service process: the [`ViewService`] core behind the internal transport.
//!
//! One task owns the core and drives it by the core contract (`tandem_protocol`'s crate
//! documentation). Every message already delivered is handed to the core before its timers run,
//! so a server whose ping is waiting in the inbox is never judged silent (V3); the core's
//! `handle_timeout` runs when its `poll_timeout` is due. An answer to a message goes back on the
//! connection the message came on; a new view pushed to a server goes on the connection it pings
//! on. Every durable decision (`poll_event`) is logged as one structured line. With an admin
//! endpoint, the task publishes the core's `Status` every [`PUBLISH_INTERVAL_MS`] and right
//! after every view change, and a second task reads the coordinators' admin `/status` every
//! second for the dashboard's throughput.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_protocol::view::reason;
use tandem_protocol::{
    Endpoint, Message, Now, ServerId, Status, ViewChangeCause, ViewEvent, ViewService,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep_until};
use tracing::info;

use crate::admin::{AdminListener, AdminSource, http_get, render_net};
use crate::clock::Clock;
use crate::config::ViewServerConfig;
use crate::error::{RuntimeError, bind};
use crate::metrics::{Exposition, ViewServiceMetrics};
use crate::net::{Inbound, Net, ReplyPath, serve_inbound};
use crate::shutdown::Shutdown;

/// Most messages handled before timers get a turn.
const MAX_INBOX_BATCH: usize = 4096;
/// The admin snapshot is refreshed this often (and after every view change).
pub const PUBLISH_INTERVAL_MS: u64 = 50;
/// How often coordinators' admin endpoints are read.
const COORDINATOR_POLL_MS: u64 = 1000;

/// A bound view service, ready to run.
#[derive(Debug)]
pub struct ViewServer {
    config: ViewServerConfig,
    listener: TcpListener,
    admin: Option<AdminListener>,
}

impl ViewServer {
    /// Validates `config` and binds `listen`.
    pub async fn bind(config: ViewServerConfig, listen: &str) -> Result<ViewServer, RuntimeError> {
        config.validate()?;
        let listener = bind(listen).await?;
        let admin = AdminListener::bind_configured(config.admin.as_deref()).await?;
        Ok(ViewServer {
            config,
            listener,
            admin,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Adds a coordinator admin endpoint whose counters the dashboard shows.
    pub fn add_coordinator_admin(&mut self, addr: String) {
        self.config.coordinator_admin.push(addr);
    }

    /// The admin endpoint's bound address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::local_addr)
    }

    /// Serves until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), RuntimeError> {
        let (inbox_sender, mut inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        info!(listen = %self.local_addr(), "view service started");
        tokio::spawn(serve_inbound(self.listener, net.clone()));
        let clock = Clock::new();
        let mut core = ViewService::new(self.config.view_service);
        let admin = Arc::new(ViewServiceAdmin {
            metrics: ViewServiceMetrics::default(),
            status: Mutex::new(core.status(clock.now())),
            coordinators: Mutex::new(BTreeMap::new()),
            net: net.clone(),
            ping_interval_ms: core.config().ping_interval_ms,
        });
        if let Some(listener) = self.admin {
            listener.spawn(admin.clone(), shutdown.clone());
            if !self.config.coordinator_admin.is_empty() {
                tokio::spawn(poll_coordinators(
                    self.config.coordinator_admin.clone(),
                    admin.clone(),
                    shutdown.clone(),
                ));
            }
        }
        // The connection each server's pings arrive on, to push it a new view at once.
        let mut paths: BTreeMap<ServerId, ReplyPath> = BTreeMap::new();
        let mut next_publish_ms = 0;
        loop {
            let timeout_ms = core.poll_timeout().unwrap_or(u64::MAX);
            let wake = clock.instant_at(timeout_ms.min(next_publish_ms));
            tokio::select! {
                // Messages first: a ping already delivered is read before anyone is judged.
                biased;
                _ = shutdown.wait() => break,
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    handle(&mut core, &net, clock, inbound, &mut paths, &admin.metrics);
                }
                _ = sleep_until(wake.into()) => {}
            }
            // Read every message already delivered before running the timers (V3): after a
            // stall of this task the inbox holds the pings that prove the servers alive.
            for _ in 1..MAX_INBOX_BATCH {
                let Ok(inbound) = inbox.try_recv() else { break };
                handle(&mut core, &net, clock, inbound, &mut paths, &admin.metrics);
            }
            let now = clock.now();
            if core
                .poll_timeout()
                .is_some_and(|at_ms| now.mono_ms >= at_ms)
            {
                core.handle_timeout(now);
                flush(&mut core, &net, now, &paths, None);
            }
            let changed = log_events(&mut core, &admin.metrics);
            if changed || now.mono_ms >= next_publish_ms {
                next_publish_ms = now.mono_ms + PUBLISH_INTERVAL_MS;
                *admin.status.lock().expect("no poisoned lock") = core.status(now);
            }
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

/// Sends the core's outputs. An answer to `sender` (the message just handled) goes back on the
/// connection that message came on; a view pushed to a server goes on the connection it pings
/// on. Anything else has no known path and is dropped (the cores retry: V2, C1).
fn flush(
    core: &mut ViewService,
    net: &Net,
    now: Now,
    paths: &BTreeMap<ServerId, ReplyPath>,
    sender: Option<(&Endpoint, &ReplyPath)>,
) {
    while let Some(transmit) = core.poll_transmit(now) {
        let path = match (sender, &transmit.to) {
            (Some((from, path)), to) if to == from => Some(path),
            (_, Endpoint::Server(server)) => paths.get(server),
            _ => None,
        };
        if let Some(path) = path
            && let Some(frame) = net.encode(
                &Endpoint::ViewService(tandem_protocol::VsAddr::new(
                    tandem_protocol::locator::DEFAULT_VIEW_SERVICE,
                )),
                transmit.msg,
            )
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
    metrics: &ViewServiceMetrics,
) {
    let now = clock.now();
    if let (Message::Ping(ping), Some(path)) = (&inbound.msg, &inbound.reply)
        && (paths.len() < MAX_PING_PATHS || paths.contains_key(&ping.server))
    {
        paths.insert(ping.server.clone(), path.clone());
    }
    let counter = match &inbound.msg {
        Message::Ping(_) => Some(&metrics.pings),
        Message::GetView { .. } => Some(&metrics.view_queries),
        Message::GetStatus {} => Some(&metrics.status_queries),
        _ => None,
    };
    if let Some(counter) = counter {
        counter.inc();
    }
    let Inbound { from, msg, reply } = inbound;
    core.handle(now, from.clone(), msg);
    let sender = reply.as_ref().map(|path| (&from, path));
    flush(core, net, now, paths, sender);
}

/// Logs every durable decision as one structured line; true if a view changed.
fn log_events(core: &mut ViewService, metrics: &ViewServiceMetrics) -> bool {
    let mut changed = false;
    while let Some(event) = core.poll_event() {
        match event {
            ViewEvent::NewView {
                group,
                view,
                causes,
                ..
            } => {
                changed = true;
                for label in causes.iter().filter_map(ViewChangeCause::label) {
                    metrics.view_changed(label);
                }
                let reason = reason(&causes);
                let backups: Vec<&str> = view.backups.iter().map(|b| b.as_str()).collect();
                info!(
                    event = "view_change",
                    %group,
                    viewnum = %view.num,
                    primary = %view.primary,
                    backups = ?backups,
                    reason = %reason,
                    "new view"
                );
                if let Some(promoted) = causes.iter().find_map(|cause| match cause {
                    ViewChangeCause::BackupPromoted { server } => Some(server),
                    _ => None,
                }) {
                    info!(
                        event = "promotion",
                        %group,
                        viewnum = %view.num,
                        primary = %promoted,
                        reason = %reason,
                        "backup promoted to primary"
                    );
                }
            }
            ViewEvent::Acked { group, viewnum } => {
                metrics.acks.inc();
                info!(event = "view_ack", %group, %viewnum, "view acknowledged by its primary");
            }
        }
    }
    changed
}

/// What the view service's admin endpoint reads.
struct ViewServiceAdmin {
    metrics: ViewServiceMetrics,
    /// The core's status, as last published by the view service task.
    status: Mutex<Status>,
    /// The last reading of each coordinator's admin endpoint, by address.
    coordinators: Mutex<BTreeMap<String, CoordinatorReading>>,
    net: Arc<Net>,
    ping_interval_ms: u64,
}

/// What the view service last read from one coordinator's `/status`.
#[derive(Clone, Debug)]
struct CoordinatorReading {
    /// Whether the last read succeeded.
    reachable: bool,
    /// Its request counter at the last successful read.
    requests: u64,
    /// Its commands counter at the last successful read.
    commands: u64,
    /// Its client connections.
    connections: u64,
    /// When the counters were read.
    at: Option<Instant>,
    /// Commands per second between the two last reads.
    commands_per_second: f64,
    /// Requests per second between the two last reads.
    requests_per_second: f64,
}

impl AdminSource for ViewServiceAdmin {
    fn status(&self) -> Value {
        let status = self.status.lock().expect("no poisoned lock").clone();
        let coordinators = self.coordinators.lock().expect("no poisoned lock").clone();
        let mut document = status_document(&status, &coordinators);
        document["ping_interval_ms"] = json!(self.ping_interval_ms);
        document
    }

    fn metrics(&self, out: &mut Exposition) {
        self.metrics.render(out);
        let status = self.status.lock().expect("no poisoned lock").clone();
        out.family(
            "tandem_viewservice_viewnum",
            "gauge",
            "Current view number, by group.",
        );
        for group in &status.groups {
            let viewnum = group.view.as_ref().map_or(0, |v| v.num.0);
            out.sample(
                "tandem_viewservice_viewnum",
                &[("group", &group.group.0.to_string())],
                viewnum as f64,
            );
        }
        out.family(
            "tandem_viewservice_last_ping_age_seconds",
            "gauge",
            "Time since each server's last ping.",
        );
        for group in &status.groups {
            for server in &group.servers {
                out.sample(
                    "tandem_viewservice_last_ping_age_seconds",
                    &[
                        ("group", &group.group.0.to_string()),
                        ("server", server.server.as_str()),
                    ],
                    server.last_ping_ago_ms as f64 / 1000.0,
                );
            }
        }
        out.family(
            "tandem_viewservice_servers_dead",
            "gauge",
            "Servers that missed enough pings to be dead (V3), by group.",
        );
        for group in &status.groups {
            let dead = group.servers.iter().filter(|s| !s.alive).count();
            out.sample(
                "tandem_viewservice_servers_dead",
                &[("group", &group.group.0.to_string())],
                dead as f64,
            );
        }
        render_net(out, &self.net.stats);
    }

    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    fn dashboard(&self) -> bool {
        true
    }
}

/// The view service's `/status` document (also what the dashboard renders).
fn status_document(status: &Status, coordinators: &BTreeMap<String, CoordinatorReading>) -> Value {
    let groups: Vec<Value> = status
        .groups
        .iter()
        .map(|g| {
            let history: Vec<Value> = g
                .history
                .iter()
                .rev()
                .map(|h| {
                    json!({
                        "viewnum": h.view.num.0,
                        "primary": h.view.primary.as_str(),
                        "backups": h.view.backups.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
                        "reason": h.reason(),
                        "at_ms": h.at_ms,
                        "ago_ms": status.now_ms.saturating_sub(h.at_ms),
                    })
                })
                .collect();
            let servers: Vec<Value> = g
                .servers
                .iter()
                .map(|s| {
                    json!({
                        "server": s.server.as_str(),
                        "last_ping_ago_ms": s.last_ping_ago_ms,
                        "viewnum": s.viewnum.0,
                        "alive": s.alive,
                    })
                })
                .collect();
            json!({
                "group": g.group.0,
                "viewnum": g.view.as_ref().map_or(0, |v| v.num.0),
                "primary": g.view.as_ref().map(|v| v.primary.as_str()),
                "backups": g.view.iter().flat_map(|v| &v.backups).map(|b| b.as_str()).collect::<Vec<_>>(),
                "acked": g.acked,
                "idle": g.idle.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "history": history,
                "servers": servers,
            })
        })
        .collect();
    let coordinators: Vec<Value> = coordinators
        .iter()
        .map(|(addr, c)| {
            json!({
                "admin": addr,
                "reachable": c.reachable,
                "requests_total": c.requests,
                "commands_total": c.commands,
                "connections": c.connections,
                "requests_per_second": c.requests_per_second,
                "commands_per_second": c.commands_per_second,
            })
        })
        .collect();
    json!({
        "role": "viewservice",
        "now_ms": status.now_ms,
        "dead_after_ms": status.dead_after_ms,
        "groups": groups,
        "coordinators": coordinators,
    })
}

/// Reads every coordinator's admin `/status` each [`COORDINATOR_POLL_MS`] and keeps the
/// counters and rates for the dashboard.
async fn poll_coordinators(
    addrs: Vec<String>,
    admin: Arc<ViewServiceAdmin>,
    mut shutdown: Shutdown,
) {
    let mut every = interval(Duration::from_millis(COORDINATOR_POLL_MS));
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = every.tick() => {}
        }
        for addr in &addrs {
            let reply = http_get(addr, "/status", Duration::from_millis(500)).await;
            let document = reply
                .ok()
                .filter(|(code, _)| *code == 200)
                .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok());
            let mut readings = admin.coordinators.lock().expect("no poisoned lock");
            let previous = readings.get(addr).cloned();
            readings.insert(addr.clone(), reading(previous, document.as_ref()));
        }
    }
}

fn reading(previous: Option<CoordinatorReading>, document: Option<&Value>) -> CoordinatorReading {
    let field = |name: &str| document.and_then(|d| d[name].as_u64()).unwrap_or(0);
    let Some(_) = document else {
        return CoordinatorReading {
            reachable: false,
            requests_per_second: 0.0,
            commands_per_second: 0.0,
            ..previous.unwrap_or(CoordinatorReading {
                reachable: false,
                requests: 0,
                commands: 0,
                connections: 0,
                at: None,
                commands_per_second: 0.0,
                requests_per_second: 0.0,
            })
        };
    };
    let now = Instant::now();
    let (requests, commands) = (field("requests_total"), field("commands_total"));
    let rate = |now_count: u64, then_count: u64, then: Instant| {
        let seconds = now.duration_since(then).as_secs_f64();
        if seconds > 0.0 {
            now_count.saturating_sub(then_count) as f64 / seconds
        } else {
            0.0
        }
    };
    let (requests_per_second, commands_per_second) = match previous.and_then(|p| Some((p.at?, p))) {
        Some((then, p)) => (
            rate(requests, p.requests, then),
            rate(commands, p.commands, then),
        ),
        None => (0.0, 0.0),
    };
    CoordinatorReading {
        reachable: true,
        requests,
        commands,
        connections: field("connections"),
        at: Some(now),
        commands_per_second,
        requests_per_second,
    }
}
