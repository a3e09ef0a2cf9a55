//! The view-service process: one node of the view service's Raft group ([`ViewServiceNode`],
//! Q1) behind the internal transport.
//!
//! One task owns the node and drives it by the core contract (`tandem_protocol`'s crate
//! documentation) plus the node's own outputs. Every message already delivered is handed to the
//! node before its timers run (biased select, then the inbox drained), so a server whose ping is
//! waiting in the inbox is never judged silent (V3); `handle_timeout` runs when `poll_timeout`
//! is due. After every input the task drains, in this order:
//! - `poll_persist`: the ops are appended to the data directory's `raft.log` (synced when asked)
//!   and only then reported with `persisted`, which releases the votes and acknowledgements that
//!   promised them (Q5). A failed append stops the process with the file's path: the node must
//!   restart from what the file holds. Without a data directory nothing is kept and every
//!   persist completes at once (a single node, as before replication).
//! - `poll_transmit`: a Raft message to another node goes out on an outbound link to the
//!   member's address (`Endpoint::ViewService(addr)`); anything else goes back on the connection
//!   the addressee last sent on: answers to servers, coordinators and tools, and views pushed to
//!   servers on the connection they ping on.
//! - `poll_event`: every applied decision (on every node), role change and membership change is
//!   logged as one structured line (`event = "view_change"`, `"raft_role"`, `"raft_members"`).
//!
//! With an admin endpoint, the task publishes the node's status every [`PUBLISH_INTERVAL_MS`]
//! and right after every change, and a second task reads the coordinators' admin `/status`
//! every second for the dashboard's throughput.
//!
//! [`change_members`] is the operator's side of an online membership change (Q5).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_protocol::consensus::{NodeEvent, NodeStats, ViewServiceNode};
use tandem_protocol::message::{MemberChange, MembersRefusal, NodeStatus, SlotsChange};
use tandem_protocol::view::reason;
use tandem_protocol::{
    ClientId, ClusterMap, Endpoint, Message, Now, Status, Transmit, ViewChangeCause, ViewEvent,
    VsAddr,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep, sleep_until, timeout_at};
use tracing::{error, info, warn};

use crate::admin::{AdminListener, AdminSource, http_get_with_token, render_net};
use crate::clock::{Clock, random_u64};
use crate::config::ViewServerConfig;
use crate::disk::LogFile;
use crate::error::{RuntimeError, bind, parse_view_services};
use crate::metrics::{Exposition, ViewServiceMetrics};
use crate::net::{Inbound, Net, Peers, ReplyPath, serve_inbound};
use crate::shutdown::Shutdown;

/// Most messages handled before timers get a turn.
const MAX_INBOX_BATCH: usize = 4096;
/// The admin snapshot is refreshed this often (and after every change).
pub const PUBLISH_INTERVAL_MS: u64 = 50;
/// How often coordinators' admin endpoints are read.
const COORDINATOR_POLL_MS: u64 = 1000;
/// Most senders (servers, coordinator sessions, tools) whose connection is remembered.
const MAX_REPLY_PATHS: usize = 65_536;

/// A bound view-service node, ready to run.
#[derive(Debug)]
pub struct ViewServer {
    config: ViewServerConfig,
    listener: TcpListener,
    admin: Option<AdminListener>,
    /// The address this node is reached at (its `Endpoint::ViewService`).
    addr: String,
    node: ViewServiceNode,
    log: Option<LogFile>,
}

impl ViewServer {
    /// Validates `config`, binds `listen`, opens the data directory (a damaged `raft.log` is
    /// an error naming the file and the offset) and builds the node.
    pub async fn bind(config: ViewServerConfig, listen: &str) -> Result<ViewServer, RuntimeError> {
        config.validate()?;
        let listener = bind(listen).await?;
        ViewServer::with_listener(config, listener, Some(listen)).await
    }

    /// Like [`ViewServer::bind`] on a listener already bound (tests bind every node's listener
    /// first to know the addresses). `listen` is the address asked for, if any: a `--peers`
    /// entry naming it (rather than the bound address) is this node's.
    pub async fn with_listener(
        config: ViewServerConfig,
        listener: TcpListener,
        listen: Option<&str>,
    ) -> Result<ViewServer, RuntimeError> {
        config.validate()?;
        let bound = listener.local_addr()?.to_string();
        let addr = match (&config.advertise, config.peers.get(&config.id)) {
            (Some(advertise), _) => advertise.clone(),
            (None, Some(listed)) if Some(listed.as_str()) == listen => listed.clone(),
            (None, _) => bound,
        };
        if let Some(tls) = &config.net.tls {
            crate::tls::expect_principal(
                tls,
                crate::identity::Role::ViewService,
                Some(addr.as_str()),
            )?;
        }
        let seed = config.seed.unwrap_or_else(random_u64);
        let node_config = config.node_config(&addr, seed)?;
        let (log, disk) = match &config.data_dir {
            Some(dir) => {
                let (log, disk) = LogFile::open(dir)?;
                (Some(log), disk)
            }
            None => (None, Default::default()),
        };
        let node = ViewServiceNode::new(node_config, disk).map_err(|e| {
            let place = log
                .as_ref()
                .map_or_else(|| "memory".to_owned(), |l| l.path().display().to_string());
            RuntimeError::Node(format!("cannot start on the state of {place}: {e}"))
        })?;
        let admin =
            AdminListener::bind_configured(config.admin.as_deref(), config.admin_token.as_deref())
                .await?;
        Ok(ViewServer {
            config,
            listener,
            admin,
            addr,
            node,
            log,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The address this node is reached at, as the other nodes know it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        self.node.id()
    }

    /// Adds a coordinator admin endpoint whose counters the dashboard shows.
    pub fn add_coordinator_admin(&mut self, addr: String) {
        self.config.coordinator_admin.push(addr);
    }

    /// The admin endpoint's bound address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::local_addr)
    }

    /// Serves until `shutdown`. Returns an error when the Raft log cannot be written (the node
    /// must stop and restart from its file, Q5).
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), RuntimeError> {
        let (inbox_sender, mut inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        let listen = self.local_addr();
        info!(
            %listen,
            addr = %self.addr,
            id = self.node.id(),
            members = ?self.node.members(),
            data_dir = ?self.config.data_dir,
            "view service started"
        );
        tokio::spawn(serve_inbound(self.listener, net.clone()));
        let clock = Clock::new();
        let now = clock.now();
        let admin = Arc::new(ViewServiceAdmin {
            metrics: ViewServiceMetrics::default(),
            published: Mutex::new(Published {
                status: self.node.status(now),
                stats: self.node.stats().clone(),
                is_leader: self.node.is_leader(),
                log_bytes: self.log.as_ref().map_or(0, LogFile::len_bytes),
                log_path: self.log.as_ref().map(|l| l.path().to_path_buf()),
            }),
            coordinators: Mutex::new(BTreeMap::new()),
            net: net.clone(),
            ping_interval_ms: self.config.view_service.ping_interval_ms,
        });
        if let Some(listener) = self.admin {
            listener.spawn(admin.clone(), shutdown.clone());
            if !self.config.coordinator_admin.is_empty() {
                tokio::spawn(poll_coordinators(
                    self.config.coordinator_admin.clone(),
                    self.config.admin_token.clone(),
                    admin.clone(),
                    shutdown.clone(),
                ));
            }
        }
        let mut driver = Driver {
            me: Endpoint::ViewService(VsAddr::new(&self.addr)),
            node: self.node,
            log: self.log,
            peers: Peers::new(net.clone()),
            net,
            paths: HashMap::new(),
            admin,
        };
        let result = driver.serve(clock, &mut inbox, &mut shutdown).await;
        match &result {
            Ok(()) => info!("view service stopped"),
            Err(error) => error!(%error, "view service stopped on an error"),
        }
        result
    }
}

/// Binds `listen` and serves one view-service node until `shutdown`.
pub async fn run_view_service(
    config: ViewServerConfig,
    listen: &str,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    ViewServer::bind(config, listen).await?.run(shutdown).await
}

/// The task that owns the node.
struct Driver {
    me: Endpoint,
    node: ViewServiceNode,
    log: Option<LogFile>,
    net: Arc<Net>,
    /// Outbound links to the other nodes (Raft traffic).
    peers: Peers,
    /// The connection each sender last sent on: answers, and views pushed to servers.
    paths: HashMap<Endpoint, ReplyPath>,
    admin: Arc<ViewServiceAdmin>,
}

impl Driver {
    async fn serve(
        &mut self,
        clock: Clock,
        inbox: &mut mpsc::Receiver<Inbound>,
        shutdown: &mut Shutdown,
    ) -> Result<(), RuntimeError> {
        // The bootstrap record (and a single node's first election) is due before anything.
        let mut changed = self.drain(clock.now())?;
        let mut next_publish_ms = 0;
        loop {
            let timeout_ms = self.node.poll_timeout().unwrap_or(u64::MAX);
            let wake = clock.instant_at(timeout_ms.min(next_publish_ms));
            tokio::select! {
                // Messages first: a ping already delivered is read before anyone is judged.
                biased;
                _ = shutdown.wait() => break,
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    changed |= self.handle(clock.now(), inbound)?;
                }
                _ = sleep_until(wake.into()) => {}
            }
            // Read every message already delivered before running the timers (V3): after a
            // stall of this task the inbox holds the pings that prove the servers alive.
            for _ in 1..MAX_INBOX_BATCH {
                let Ok(inbound) = inbox.try_recv() else { break };
                changed |= self.handle(clock.now(), inbound)?;
            }
            let now = clock.now();
            if self
                .node
                .poll_timeout()
                .is_some_and(|at_ms| now.mono_ms >= at_ms)
            {
                self.node.handle_timeout(now);
                changed |= self.drain(now)?;
            }
            if changed || now.mono_ms >= next_publish_ms {
                next_publish_ms = now.mono_ms + PUBLISH_INTERVAL_MS;
                self.publish(now);
                changed = false;
            }
        }
        Ok(())
    }

    /// Hands one message to the node, then drains its outputs. True if something operators
    /// see changed.
    fn handle(&mut self, now: Now, inbound: Inbound) -> Result<bool, RuntimeError> {
        let Inbound {
            from, msg, reply, ..
        } = inbound;
        let metrics = &self.admin.metrics;
        let counter = match &msg {
            Message::Ping(_) => Some(&metrics.pings),
            Message::GetView { .. } => Some(&metrics.view_queries),
            Message::GetStatus {} => Some(&metrics.status_queries),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.inc();
        }
        // Raft traffic is answered on our own links to the member's address; anyone else is
        // answered on the connection it sent on.
        if let Some(path) = reply
            && !matches!(msg, Message::Raft(_))
        {
            self.remember_path(from.clone(), path);
        }
        self.node.handle(now, from, msg);
        self.drain(now)
    }

    fn remember_path(&mut self, from: Endpoint, path: ReplyPath) {
        if !self.paths.contains_key(&from) && self.paths.len() >= MAX_REPLY_PATHS {
            // Senders name themselves: never let them make us hold unbounded paths.
            self.paths.retain(|_, path| !path.is_closed());
            if self.paths.len() >= MAX_REPLY_PATHS {
                return;
            }
        }
        self.paths.insert(from, path);
    }

    /// Persists, then sends, then logs whatever the node has queued. True if something
    /// operators see changed.
    fn drain(&mut self, now: Now) -> Result<bool, RuntimeError> {
        // Q5: what the node asks to be durable is written (and synced) before `persisted`
        // releases the messages that promise it.
        while let Some(persist) = self.node.poll_persist() {
            if let Some(log) = &mut self.log
                && let Err(e) = log.append(&persist.ops, persist.sync)
            {
                error!(
                    event = "raft_log_failed",
                    path = %log.path().display(),
                    error = %e,
                    "cannot write the raft log; stopping (restart from the file)"
                );
                return Err(e.into());
            }
            self.node.persisted(now, persist.id);
        }
        while let Some(transmit) = self.node.poll_transmit(now) {
            self.route(transmit);
        }
        let changed = self.log_events();
        if let Some(why) = self.node.failure() {
            // Q5: the node's disk lost what it synced; it must not go on.
            error!(event = "raft_failed", reason = %why, "view-service node stopped");
            return Err(RuntimeError::Node(why.to_owned()));
        }
        Ok(changed)
    }

    fn route(&mut self, transmit: Transmit) {
        let Transmit { to, msg } = transmit;
        let raft = matches!(msg, Message::Raft(_));
        let Some(frame) = self.net.encode(&self.me, msg) else {
            return;
        };
        match &to {
            Endpoint::ViewService(addr) if raft => self.peers.send(addr.as_str(), frame),
            // No known path: dropped (the cores retry: V2, C1).
            _ => {
                if let Some(path) = self.paths.get(&to) {
                    path.send(frame);
                }
            }
        }
    }

    /// Logs every event as one structured line; true if a view, role or membership changed.
    fn log_events(&mut self) -> bool {
        let mut changed = false;
        let id = self.node.id();
        while let Some(event) = self.node.poll_event() {
            match event {
                NodeEvent::Applied(event) => {
                    changed = true;
                    log_view_event(event, &self.admin.metrics);
                }
                NodeEvent::Rejected(e) => {
                    warn!(event = "view_rejected", error = %e, "a committed decision did not fit the table");
                }
                NodeEvent::RoleChanged { role, term, leader } => {
                    changed = true;
                    info!(
                        event = "raft_role",
                        id, role, term, leader, "raft role changed"
                    );
                }
                NodeEvent::Committed { latency_ms } => {
                    self.admin
                        .metrics
                        .commit_latency
                        .observe(latency_ms as f64 / 1000.0);
                }
                NodeEvent::Failed(_) => changed = true,
                NodeEvent::MembersChanged => {
                    changed = true;
                    let members: Vec<String> = self
                        .node
                        .members()
                        .iter()
                        .map(|(id, addr)| format!("{id}={addr}"))
                        .collect();
                    info!(event = "raft_members", id, members = ?members, "membership changed");
                }
            }
        }
        changed
    }

    fn publish(&self, now: Now) {
        let mut published = self.admin.published.lock().expect("no poisoned lock");
        published.status = self.node.status(now);
        published.stats = self.node.stats().clone();
        published.is_leader = self.node.is_leader();
        published.log_bytes = self.log.as_ref().map_or(0, LogFile::len_bytes);
    }
}

/// Logs one applied decision. Every node applies every committed decision once, so every
/// node logs it and counts it: any node's counters are the group's (do not sum them across
/// nodes).
fn log_view_event(event: ViewEvent, metrics: &ViewServiceMetrics) {
    match event {
        ViewEvent::NewView {
            group,
            view,
            causes,
            ..
        } => {
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
        ViewEvent::Slots { config } => {
            let groups: std::collections::BTreeSet<_> =
                config.ranges.iter().map(|r| r.group).collect();
            info!(
                event = "slots",
                config = %config.num,
                ranges = config.ranges.len(),
                groups = ?groups,
                "new slot configuration"
            );
        }
        ViewEvent::ClientAddr {
            group,
            server,
            addr,
        } => {
            info!(event = "client_addr", %group, %server, addr = ?addr, "client address");
        }
        ViewEvent::ConfigDone { group, num } => {
            info!(event = "config_done", %group, config = %num, "group took on configuration");
        }
    }
}

/// What the view-service task last published for the admin endpoint.
struct Published {
    status: Status,
    stats: NodeStats,
    is_leader: bool,
    log_bytes: u64,
    log_path: Option<PathBuf>,
}

/// What the view service's admin endpoint reads.
struct ViewServiceAdmin {
    metrics: ViewServiceMetrics,
    /// The node's state, as last published by the view service task.
    published: Mutex<Published>,
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
        let (status, log_bytes, log_path) = {
            let published = self.published.lock().expect("no poisoned lock");
            (
                published.status.clone(),
                published.log_bytes,
                published.log_path.clone(),
            )
        };
        let coordinators = self.coordinators.lock().expect("no poisoned lock").clone();
        let mut document = status_document(&status, &coordinators);
        document["ping_interval_ms"] = json!(self.ping_interval_ms);
        if document["node"].is_object() {
            document["node"]["log_bytes"] = json!(log_bytes);
            document["node"]["log_path"] = json!(log_path.map(|p| p.display().to_string()));
        }
        document
    }

    fn metrics(&self, out: &mut Exposition) {
        self.metrics.render(out);
        let (status, stats, is_leader, log_bytes) = {
            let published = self.published.lock().expect("no poisoned lock");
            (
                published.status.clone(),
                published.stats.clone(),
                published.is_leader,
                published.log_bytes,
            )
        };
        let node = status.node.clone().unwrap_or_default();
        out.single(
            "tandem_viewservice_elections_total",
            "counter",
            "Elections this node started (became candidate).",
            stats.elections as f64,
        );
        out.single(
            "tandem_viewservice_term",
            "gauge",
            "This node's current Raft term.",
            node.term as f64,
        );
        out.single(
            "tandem_viewservice_is_leader",
            "gauge",
            "1 if this node leads and decides (Q1), else 0.",
            if is_leader { 1.0 } else { 0.0 },
        );
        out.single(
            "tandem_viewservice_proposals_total",
            "counter",
            "Decisions and membership changes this node proposed as leader.",
            stats.proposals as f64,
        );
        out.single(
            "tandem_viewservice_log_entries",
            "gauge",
            "Raft log entries held in memory (since the last snapshot).",
            node.log_entries as f64,
        );
        out.single(
            "tandem_viewservice_log_bytes",
            "gauge",
            "Size of this node's raft.log file (0 without a data directory).",
            log_bytes as f64,
        );
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
        "slots": status.cluster.as_deref().map(crate::status::slots_summary),
        "coordinators": coordinators,
        "node": status.node.as_ref().map(node_document),
    })
}

/// The answering node's Raft state, with every member and which one leads.
fn node_document(node: &NodeStatus) -> Value {
    let members: Vec<Value> = node
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "addr": m.addr,
                "leader": m.id == node.leader,
                "self": m.id == node.id,
                "last_contact_ago_ms": m.last_contact_ago_ms,
            })
        })
        .collect();
    json!({
        "id": node.id,
        "addr": node.addr,
        "role": node.role,
        "term": node.term,
        "leader": node.leader,
        "commit": node.commit,
        "applied": node.applied,
        "last_index": node.last_index,
        "log_entries": node.log_entries,
        "members": members,
    })
}

/// Reads every coordinator's admin `/status` each [`COORDINATOR_POLL_MS`] and keeps the
/// counters and rates for the dashboard, with this node's admin token (one per cluster, L8).
async fn poll_coordinators(
    addrs: Vec<String>,
    token: Option<String>,
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
            let timeout = Duration::from_millis(500);
            let reply = http_get_with_token(addr, "/status", token.as_deref(), timeout).await;
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

/// Most leader redirects followed before a membership change gives up (nodes that disagree
/// about the leader must not keep it bouncing until the deadline).
const MAX_CHANGE_REDIRECTS: usize = 32;
/// Pause between two rounds of a membership change (no leader known yet, change not applied).
const CHANGE_RETRY_MS: u64 = 100;
/// A single request's timeout within a membership change.
const CHANGE_ASK_MS: u64 = 2000;

/// What one node's answer means to a request that only the leader takes.
enum Answer<T> {
    /// The leader took it.
    Taken(T),
    /// Another node leads: ask it next.
    Redirect(String),
    /// No leader yet, or it cannot take it now: ask again shortly.
    Retry(String),
    /// The leader refuses for good: the reason.
    Refused(String),
    /// Not an answer to this request.
    Unexpected(String),
}

/// Sends `msg` to each address of `list` in turn, following the redirects of nodes that do not
/// lead (at most [`MAX_CHANGE_REDIRECTS`]) and retrying nodes that cannot answer yet, until the
/// leader takes it (`classify` says what each answer means). Returns the address that took it
/// and what `classify` read from its answer.
async fn ask_leader<T>(
    list: &[String],
    msg: Message,
    deadline: tokio::time::Instant,
    tls: Option<&crate::tls::PeerTls>,
    classify: impl Fn(Message) -> Answer<T>,
) -> Result<(String, T), RuntimeError> {
    let mut queue: VecDeque<String> = list.iter().cloned().collect();
    let mut failures: Vec<String> = Vec::new();
    let mut redirects = 0;
    while redirects <= MAX_CHANGE_REDIRECTS && tokio::time::Instant::now() < deadline {
        let Some(addr) = queue.pop_front() else { break };
        let reason = match ask(&addr, msg.clone(), deadline, tls).await.map(&classify) {
            Ok(Answer::Taken(value)) => return Ok((addr, value)),
            Ok(Answer::Redirect(to)) => {
                redirects += 1;
                queue.push_front(to);
                continue;
            }
            Ok(Answer::Refused(reason)) => {
                return Err(RuntimeError::Node(format!("{addr} refused: {reason}")));
            }
            Ok(Answer::Unexpected(what)) => {
                failures.push(format!("{addr}: unexpected answer {what}"));
                continue;
            }
            Ok(Answer::Retry(reason)) => reason,
            Err(error) => error.to_string(),
        };
        failures.push(format!("{addr}: {reason}"));
        queue.push_back(addr);
        sleep(Duration::from_millis(CHANGE_RETRY_MS)).await;
    }
    Err(RuntimeError::Node(format!(
        "no view-service leader took the request ({})",
        failures.last().map_or("no answer", String::as_str)
    )))
}

/// Asks `addrs` for `msg` in rounds until one answer satisfies `done` (what it returns), or
/// fails with `late` once `deadline` passes.
async fn poll_until<T>(
    addrs: &[String],
    msg: Message,
    deadline: tokio::time::Instant,
    tls: Option<&crate::tls::PeerTls>,
    done: impl Fn(Message) -> Option<T>,
    late: impl FnOnce() -> String,
) -> Result<T, RuntimeError> {
    loop {
        for addr in addrs {
            if let Ok(answer) = ask(addr, msg.clone(), deadline, tls).await
                && let Some(value) = done(answer)
            {
                return Ok(value);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::Node(late()));
        }
        sleep(Duration::from_millis(CHANGE_RETRY_MS)).await;
    }
}

/// The addresses of a checked view-service list (Q2: the same bounds as every other holder).
fn checked_list(view_service_addrs: &[String]) -> Result<Vec<String>, RuntimeError> {
    let list = parse_view_services(view_service_addrs)?;
    Ok(list.iter().map(|a| a.as_str().to_owned()).collect())
}

/// Changes the view service's membership online (Q5): the leader must accept `change`
/// ([`ask_leader`]), then `GetStatus` is polled until a node has applied it. Returns that
/// node's status (with the new membership). Fails if the leader refuses the change (the
/// message says why), or nothing is accepted and applied within `timeout`.
pub async fn change_members(
    view_service_addrs: &[String],
    change: MemberChange,
    timeout: Duration,
    tls: Option<&crate::tls::PeerTls>,
) -> Result<NodeStatus, RuntimeError> {
    let list = checked_list(view_service_addrs)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let msg = Message::ChangeMembers(change.clone());
    let (leader, ()) = ask_leader(&list, msg, deadline, tls, |answer| match answer {
        Message::MembersReply(Ok(())) => Answer::Taken(()),
        Message::MembersReply(Err(MembersRefusal::NotLeader { leader: Some(to) }))
        | Message::NotLeader { leader: Some(to) } => Answer::Redirect(to.to_string()),
        // No leader yet, or the leader is handing over (it was asked to remove itself).
        Message::MembersReply(Err(
            refusal @ (MembersRefusal::NotLeader { leader: None }
            | MembersRefusal::HandingOver { .. }),
        )) => Answer::Retry(refusal.to_string()),
        Message::MembersReply(Err(refusal @ MembersRefusal::Invalid(_))) => {
            Answer::Refused(refusal.to_string())
        }
        other => Answer::Unexpected(format!("{other:?}")),
    })
    .await?;
    info!(%leader, ?change, "membership change proposed");
    let mut addrs = vec![leader];
    addrs.extend(list);
    if let MemberChange::Add { addr, .. } = &change {
        addrs.push(addr.to_string());
    }
    let is_applied = |answer| match answer {
        Message::StatusReply(status) => status.node.filter(|node| applied(node, &change)),
        _ => None,
    };
    poll_until(&addrs, Message::GetStatus {}, deadline, tls, is_applied, || {
        format!(
            "the change was accepted but no node applied it within {} ms; check `tandem status`",
            timeout.as_millis()
        )
    })
    .await
}

/// Asks the view service for its cluster map (S2) from its leader ([`ask_leader`]). Fails if
/// no leader answers within `timeout`.
pub async fn cluster_map(
    view_service_addrs: &[String],
    timeout: Duration,
    tls: Option<&crate::tls::PeerTls>,
) -> Result<Arc<ClusterMap>, RuntimeError> {
    let list = checked_list(view_service_addrs)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let msg = Message::GetCluster { epoch: 0 };
    let (_, map) = ask_leader(&list, msg, deadline, tls, |answer| match answer {
        Message::ClusterReply(map) => Answer::Taken(map),
        Message::NotLeader { leader: Some(to) } => Answer::Redirect(to.to_string()),
        Message::NotLeader { leader: None } => Answer::Retry("no leader known yet".into()),
        other => Answer::Unexpected(format!("{other:?}")),
    })
    .await?;
    Ok(map)
}

/// Changes the slot map (S3): the leader must accept `change` ([`ask_leader`]), then the
/// cluster map is polled until the configuration the leader proposed is applied. Returns that
/// map. Fails with the leader's reason if it refuses (a move in progress, a group without a
/// view, ...), or if nothing is accepted and applied within `timeout`.
pub async fn change_slots(
    view_service_addrs: &[String],
    change: SlotsChange,
    timeout: Duration,
    tls: Option<&crate::tls::PeerTls>,
) -> Result<Arc<ClusterMap>, RuntimeError> {
    let list = checked_list(view_service_addrs)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let msg = Message::ChangeSlots(change.clone());
    let (leader, num) = ask_leader(&list, msg, deadline, tls, |answer| match answer {
        Message::SlotsReply(Ok(num)) => Answer::Taken(num),
        Message::SlotsReply(Err(MembersRefusal::NotLeader { leader: Some(to) }))
        | Message::NotLeader { leader: Some(to) } => Answer::Redirect(to.to_string()),
        Message::SlotsReply(Err(refusal @ MembersRefusal::Invalid(_))) => {
            Answer::Refused(refusal.to_string())
        }
        Message::SlotsReply(Err(refusal)) => Answer::Retry(refusal.to_string()),
        other => Answer::Unexpected(format!("{other:?}")),
    })
    .await?;
    info!(%leader, ?change, config = %num, "slot change proposed");
    let mut addrs = vec![leader];
    addrs.extend(list);
    let is_applied = |answer| match answer {
        Message::ClusterReply(map) if map.config.num >= num => Some(map),
        _ => None,
    };
    let msg = Message::GetCluster { epoch: 0 };
    poll_until(&addrs, msg, deadline, tls, is_applied, || {
        format!(
            "configuration {num} was proposed but not applied within {} ms; check \
             `tandem slots show`",
            timeout.as_millis()
        )
    })
    .await
}

/// Whether `node`'s applied membership reflects `change`.
fn applied(node: &NodeStatus, change: &MemberChange) -> bool {
    match change {
        MemberChange::Add { id, addr } => node
            .members
            .iter()
            .any(|m| m.id == *id && m.addr == addr.as_str()),
        MemberChange::Remove { id } => node.id != *id && !node.members.iter().any(|m| m.id == *id),
    }
}

/// Sends `msg` to the node at `addr` on a new connection and returns its first answer.
async fn ask(
    addr: &str,
    msg: Message,
    deadline: tokio::time::Instant,
    tls: Option<&crate::tls::PeerTls>,
) -> std::io::Result<Message> {
    let deadline = deadline.min(tokio::time::Instant::now() + Duration::from_millis(CHANGE_ASK_MS));
    let exchange = async {
        let mut exchange = crate::net::Exchange::connect(addr, tls).await?;
        exchange
            .send(Endpoint::Client(ClientId(random_u64())), msg)
            .await?;
        exchange.recv().await
    };
    timeout_at(deadline, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
