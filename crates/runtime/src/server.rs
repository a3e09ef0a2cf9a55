//! A replica server process: the [`Replica`] core behind the internal transport.
//!
//! One task owns the core and loops: wait for the first ready input (a message, the core's
//! next timeout, shutdown); handle every message already in the inbox; tick if due; then drain
//! `poll_transmit`. Draining the inbox before the transmits is what lets the core put every
//! operation of the round into one forward frame (group commit).
//!
//! Operability: the driver counts what passes through `route` (forward batch sizes, transfer
//! bytes, rejected requests) in [`ServerMetrics`], logs every view change, promotion, state
//! transfer start and finish and rejected request as one structured line, and publishes a
//! snapshot of the core for the admin endpoint every [`PUBLISH_MS`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tandem_protocol::message::{RequestError, Response};
use tandem_protocol::replica::ReplicaStats;
use tandem_protocol::{
    ClientId, Endpoint, GroupId, Incarnation, Message, Replica, RoleKind, ServerId, Transmit, View,
    VsAddr,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;
use tracing::{debug, info};

use crate::admin::{AdminListener, AdminSource, render_net};
use crate::clock::{Clock, random_u64};
use crate::cluster::{ClientFront, CoreRequest, FrontState, ServerFront};
use crate::config::ServerConfig;
use crate::error::{RuntimeError, bind, parse_view_services};
use crate::metrics::{Exposition, ServerMetrics};
use crate::net::{Inbound, Net, Peers, ReplyPath, serve_inbound};
use crate::shutdown::Shutdown;

/// How often the admin snapshot of the core is refreshed.
pub const PUBLISH_MS: u64 = 100;

/// Most messages handled in one round before timers and transmits get a turn.
const MAX_INBOX_BATCH: usize = 4096;
/// Longest a round handles messages before timers and transmits get a turn (L17): a round
/// also ends as soon as a timer (a ping, a retransmission) is due.
const MAX_ROUND_MS: u64 = 5;

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    listener: TcpListener,
    id: ServerId,
    view_services: Vec<VsAddr>,
    admin: Option<AdminListener>,
    /// The Redis client port (`--client-listen`), bound, with its advertised address.
    client: Option<BoundClientPort>,
}

/// A server's bound client port.
#[derive(Debug)]
struct BoundClientPort {
    listener: TcpListener,
    advertise: String,
    front: ClientFront,
}

impl Server {
    /// Validates `config` and the view-service list (see [`parse_view_services`]) and binds
    /// `listen`. The server's id is `advertise`, or the bound address when it is `None` (a
    /// server's id IS the `HOST:PORT` its peers connect to).
    pub async fn bind(
        config: ServerConfig,
        listen: &str,
        advertise: Option<&str>,
        view_service_addrs: &[String],
    ) -> Result<Server, RuntimeError> {
        config.validate()?;
        let view_services = parse_view_services(view_service_addrs)?;
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
        if let Some(tls) = &config.net.tls {
            crate::tls::expect_principal(tls, crate::identity::Role::Server, Some(id.as_str()))?;
        }
        let admin =
            AdminListener::bind_configured(config.admin.as_deref(), config.admin_token.as_deref())
                .await?;
        Ok(Server {
            config,
            listener,
            id,
            view_services,
            admin,
            client: None,
        })
    }

    /// Serves the internal port with mutual TLS (I2) using `tls`, whose certificate must name
    /// this server (for callers that learn the address only by binding).
    pub fn with_peer_tls(mut self, tls: crate::tls::PeerTls) -> Result<Server, RuntimeError> {
        crate::tls::expect_principal(&tls, crate::identity::Role::Server, Some(self.id.as_str()))?;
        self.config.net.tls = Some(tls);
        Ok(self)
    }

    /// The admin endpoint's bound address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::local_addr)
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
        let view_service_list = join_addrs(&self.view_services);
        info!(id = %self.id, group = %self.config.group, %incarnation, view_services = %view_service_list, "server started");
        tokio::spawn(serve_inbound(self.listener, net.clone()));
        let admin = Arc::new(ServerAdmin {
            id: self.id.clone(),
            group: self.config.group,
            metrics: ServerMetrics::default(),
            snapshot: Mutex::new(Snapshot::default()),
            net: net.clone(),
            view_services: view_service_list,
            maxmemory_bytes: self.config.replica.maxmemory_bytes,
            maxmemory_policy: self.config.replica.maxmemory_policy.name(),
        });
        if let Some(listener) = self.admin {
            listener.spawn(admin.clone(), shutdown.clone());
        }
        let mut replica = Replica::new(
            self.id.clone(),
            self.config.group,
            incarnation,
            self.config.replica.clone(),
        );
        // Q2: the core pings the leader it locates among these, following redirects.
        replica.set_view_services(self.view_services);
        let (front, mut front_requests) = match self.client {
            Some(port) => {
                replica.set_client_addr(Some(port.advertise.clone()));
                let (link, requests) =
                    start_client_port(port, &self.id, self.config.group, &shutdown);
                (Some(link), Some(requests))
            }
            None => (None, None),
        };
        let mut driver = Driver {
            admin,
            seen: (RoleKind::Idle, None),
            seen_target: replica.locator().target_addr().clone(),
            next_publish_ms: 0,
            replica,
            clock: Clock::new(),
            me: Endpoint::Server(self.id.clone()),
            peers: Peers::new(net.clone()),
            routes: ClientRoutes::new(self.config.net.max_client_routes),
            net,
            front,
        };
        let mut unreachable = driver.net.subscribe_unreachable();
        loop {
            driver.tick_if_due();
            driver.flush();
            driver.observe();
            let timeout_ms = driver.replica.poll_timeout().unwrap_or(u64::MAX / 4);
            let wake = driver.clock.instant_at(timeout_ms);
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                inbound = inbox.recv() => {
                    let Some(inbound) = inbound else { break };
                    let started_ms = driver.clock.now().mono_ms;
                    driver.handle(inbound);
                    for _ in 1..MAX_INBOX_BATCH {
                        // L17: big requests never hold back pings and backups' answers.
                        if driver.round_is_over(started_ms) {
                            break;
                        }
                        let Ok(inbound) = inbox.try_recv() else { break };
                        driver.handle(inbound);
                    }
                }
                Some(request) = next_core_request(&mut front_requests) => {
                    let started_ms = driver.clock.now().mono_ms;
                    driver.handle_local(request);
                    for _ in 1..MAX_INBOX_BATCH {
                        if driver.round_is_over(started_ms) {
                            break;
                        }
                        let Some(Ok(request)) = front_requests.as_mut().map(|r| r.try_recv())
                        else {
                            break;
                        };
                        driver.handle_local(request);
                    }
                }
                // Q2: a view-service node that refuses connections is left at once.
                Some(addr) = unreachable.recv() => driver.replica.view_service_unreachable(&addr),
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
    admin: Arc<ServerAdmin>,
    /// Role and view number last observed, to log changes.
    seen: (RoleKind, Option<u64>),
    /// The view-service node last logged as pinged (Q2).
    seen_target: VsAddr,
    next_publish_ms: u64,
    replica: Replica,
    clock: Clock,
    me: Endpoint,
    peers: Peers,
    routes: ClientRoutes,
    net: std::sync::Arc<Net>,
    /// The client port's link to the core, when the server has one.
    front: Option<FrontLink>,
}

impl Driver {
    fn handle(&mut self, inbound: Inbound) {
        if let (Endpoint::Client(client), Some(path)) = (&inbound.from, &inbound.reply) {
            // A server answers a coordinator on the connection its request came on.
            self.routes.remember(*client, path);
        }
        if let (Message::TransferReply(reply), Endpoint::Server(backup)) =
            (&inbound.msg, &inbound.from)
            && let Some(installed) = reply.installed
        {
            self.admin.metrics.transfers_finished.inc();
            info!(
                event = "transfer_finish",
                %backup,
                transfer_id = reply.transfer_id,
                chunks = reply.next_chunk.unwrap_or(0),
                installed_index = installed.index.0,
                "state transfer finished: the backup installed the snapshot"
            );
        }
        self.replica
            .handle(self.clock.now(), inbound.from, inbound.msg);
    }

    /// Whether the round that started at `started_ms` has handled messages long enough, or a
    /// timer is due (L17).
    fn round_is_over(&self, started_ms: u64) -> bool {
        let now_ms = self.clock.now().mono_ms;
        now_ms.saturating_sub(started_ms) >= MAX_ROUND_MS
            || self
                .replica
                .poll_timeout()
                .is_some_and(|at_ms| now_ms >= at_ms)
    }

    fn tick_if_due(&mut self) {
        let now = self.clock.now();
        if self
            .replica
            .poll_timeout()
            .is_some_and(|at_ms| now.mono_ms >= at_ms)
        {
            self.replica.handle_timeout(now);
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
        let transfer = self.note_outgoing(&to, &msg);
        let Some(msg) = self.answer_local(&to, msg) else {
            return;
        };
        let metrics = &self.admin.metrics;
        let Some(frame) = self.net.encode(&self.me, msg) else {
            return;
        };
        metrics.bytes_sent.inc_by(frame.len() as u64);
        if transfer {
            metrics.transfer_bytes.inc_by(frame.len() as u64);
        }
        match to {
            Endpoint::Server(id) => self.peers.send(id.as_str(), frame),
            Endpoint::ViewService(addr) => self.peers.send(addr.as_str(), frame),
            Endpoint::Client(client) => match self.routes.get(client) {
                Some(path) => path.send(frame),
                None => debug!(%client, "no connection to answer this client on"),
            },
        }
    }
}

impl Driver {
    /// Counts and logs an outgoing message; true if it is a state-transfer chunk.
    fn note_outgoing(&self, to: &Endpoint, msg: &Message) -> bool {
        let metrics = &self.admin.metrics;
        match msg {
            Message::Ping(_) => {
                metrics.pings_sent.inc();
            }
            Message::Forward(forward) if !forward.entries.is_empty() => {
                metrics.forward_batch.observe(forward.entries.len() as f64);
            }
            Message::Transfer(transfer) => {
                if transfer.chunk == 0 {
                    metrics.transfers_started.inc();
                    info!(
                        event = "transfer_start",
                        backup = %endpoint_name(to),
                        transfer_id = transfer.transfer_id,
                        viewnum = %transfer.view,
                        "state transfer started"
                    );
                }
                return true;
            }
            Message::Response(response) => match &response.result {
                Ok(_) => {}
                Err(
                    RequestError::WrongGroup { .. }
                    | RequestError::SlotMoving { .. }
                    | RequestError::CrossSlot,
                ) => note_slot_refusal(metrics, response),
                Err(RequestError::WrongServer(viewnum)) => {
                    metrics.requests_rejected.inc();
                    info!(
                        event = "request_rejected",
                        client = %response.client,
                        seq = %response.seq,
                        %viewnum,
                        role = ?self.replica.role(),
                        error = "wrong_server",
                        "request rejected: not the primary (P1)"
                    );
                }
                Err(error) => {
                    metrics.requests_failed.inc();
                    info!(
                        event = "request_rejected",
                        client = %response.client,
                        seq = %response.seq,
                        error = %error,
                        "request not confirmed"
                    );
                }
            },
            Message::SlotData(_) | Message::SlotDataReply(_) => note_slot_move(to, msg),
            _ => {}
        }
        false
    }

    /// Logs role and view changes; publishes the admin snapshot when due.
    fn observe(&mut self) {
        let role = self.replica.role();
        let viewnum = self.replica.view().map(|v| v.num.0);
        if (role, viewnum) != self.seen {
            let (old_role, _) = std::mem::replace(&mut self.seen, (role, viewnum));
            self.admin.metrics.views_seen.inc();
            let view = self.replica.view();
            info!(
                event = "view_change",
                id = %self.replica.id(),
                viewnum = viewnum.unwrap_or(0),
                primary = view.map_or("-", |v| v.primary.as_str()),
                role = ?role,
                previous_role = ?old_role,
                "server moved to a new view"
            );
            if role == RoleKind::Primary && old_role != RoleKind::Primary {
                info!(
                    event = "promotion",
                    id = %self.replica.id(),
                    viewnum = viewnum.unwrap_or(0),
                    previous_role = ?old_role,
                    "this server is now the primary"
                );
            }
        }
        let locator = self.replica.locator();
        if *locator.target_addr() != self.seen_target {
            self.seen_target = locator.target_addr().clone();
            info!(
                event = "view_service_target",
                id = %self.replica.id(),
                target = %locator.target_addr(),
                moves = locator.moves(),
                "pinging another view-service node (Q2: redirected or the last one went silent)"
            );
        }
        let now_ms = self.clock.now().mono_ms;
        if now_ms >= self.next_publish_ms {
            self.next_publish_ms = now_ms + PUBLISH_MS;
            let snapshot = Snapshot {
                role: Some(role),
                view: self.replica.view().cloned(),
                ping_viewnum: self.replica.ping_viewnum().0,
                stats: self.replica.stats().clone(),
                commit_index: self.replica.commit_index().map(|i| i.0),
                keys: self.replica.state().store.len() as u64,
                used_memory: self.replica.state().store.used_memory() as u64,
                transfers: self
                    .replica
                    .transfers_in_progress()
                    .into_iter()
                    .map(|(id, chunks)| (id.to_string(), chunks))
                    .collect(),
                progress: self.replica.progress_summary(),
                view_service: self.replica.locator().target_addr().to_string(),
                view_service_moves: self.replica.locator().moves(),
            };
            *self.admin.snapshot.lock().expect("no poisoned lock") = snapshot;
        }
        self.publish_front();
    }
}

// ---- the Redis client port (`--client-listen`, S4): the front end's link to the core ----

impl Server {
    /// Also serves Redis Cluster clients on `front.listen` (bound now, so a port in use fails
    /// here). The advertised address is `front.advertise`, or the bound address.
    pub async fn with_client_front(mut self, front: ClientFront) -> Result<Server, RuntimeError> {
        front.config.validate()?;
        let listener = bind(&front.listen).await?;
        let local = listener.local_addr()?;
        let advertise = match &front.advertise {
            Some(addr) => addr.clone(),
            None if local.ip().is_unspecified() => {
                return Err(RuntimeError::Address {
                    addr: local.to_string(),
                    reason: "a client port on a wildcard address needs --client-advertise HOST:PORT",
                });
            }
            None => local.to_string(),
        };
        self.client = Some(BoundClientPort {
            listener,
            advertise,
            front,
        });
        Ok(self)
    }

    /// The client port's bound address, if the server has one.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client
            .as_ref()
            .and_then(|c| c.listener.local_addr().ok())
    }
}

/// Local sessions waiting for the core beyond which those that gave up are swept (one per
/// connection is normal; a session whose request timed out stays until the core answers).
const MAX_LOCAL_WAITING: usize = 1 << 16;

/// What the server task keeps for its client port: the sessions waiting for the core, and
/// what it publishes to the front end.
struct FrontLink {
    /// The local session waiting for each answer; a session has one request at a time.
    waiting: HashMap<ClientId, oneshot::Sender<Response>>,
    state: watch::Sender<FrontState>,
    view: watch::Sender<Option<View>>,
    /// (role, view number, map epoch) last published.
    published: (RoleKind, u64, u64),
}

/// Starts the client port's accept loop; returns the server task's side of the link.
fn start_client_port(
    port: BoundClientPort,
    me: &ServerId,
    group: GroupId,
    shutdown: &Shutdown,
) -> (FrontLink, mpsc::Receiver<CoreRequest>) {
    let (core, requests) = mpsc::channel(port.front.config.max_connections.max(1));
    let initial = FrontState {
        me: me.clone(),
        group,
        role: RoleKind::Idle,
        view: None,
        map: None,
        client_addr: port.advertise.clone(),
    };
    let (state, state_receiver) = watch::channel(initial);
    let (view, view_receiver) = watch::channel(None);
    let timeout_ms = port.front.config.clerk.request_timeout_ms;
    let front = Arc::new(ServerFront::new(state_receiver, core, timeout_ms));
    info!(client_listen = ?port.listener.local_addr().ok(), advertise = %port.advertise, "serving Redis Cluster clients");
    tokio::spawn(crate::coordinator::serve_server_clients(
        port.listener,
        port.front.config,
        front,
        view_receiver,
        shutdown.clone(),
    ));
    let link = FrontLink {
        waiting: HashMap::new(),
        state,
        view,
        published: (RoleKind::Idle, 0, 0),
    };
    (link, requests)
}

/// The next request of the client port, or never if the server has none.
async fn next_core_request(
    requests: &mut Option<mpsc::Receiver<CoreRequest>>,
) -> Option<CoreRequest> {
    match requests {
        Some(receiver) => match receiver.recv().await {
            Some(request) => Some(request),
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

impl Driver {
    /// A local client's request: to the core as from `Endpoint::Client`, no network hop.
    fn handle_local(&mut self, request: CoreRequest) {
        let Some(front) = &mut self.front else {
            return;
        };
        let client = request.request.client;
        if front.waiting.len() >= MAX_LOCAL_WAITING {
            // Sessions whose connection gave up waiting (closed or timed out): forget them.
            front.waiting.retain(|_, done| !done.is_closed());
        }
        front.waiting.insert(client, request.done);
        self.replica.handle(
            self.clock.now(),
            Endpoint::Client(client),
            Message::Request(request.request),
        );
    }

    /// Hands a response for a local session to its connection; gives back any other message.
    fn answer_local(&mut self, to: &Endpoint, msg: Message) -> Option<Message> {
        if let (Endpoint::Client(client), Message::Response(response), Some(front)) =
            (to, &msg, &mut self.front)
            && let Some(done) = front.waiting.remove(client)
        {
            let _ = done.send(response.clone());
            return None;
        }
        Some(msg)
    }

    /// Tells the front end this server's role, view and cluster map when they changed.
    fn publish_front(&mut self) {
        let Some(front) = &mut self.front else {
            return;
        };
        let role = self.replica.role();
        let view = self.replica.view().cloned();
        // The newest cluster map the core received with its ping replies (S2).
        let map = self.replica.cluster().cloned();
        let now = (
            role,
            view.as_ref().map_or(0, |v| v.num.0),
            map.as_ref().map_or(0, |m| m.epoch),
        );
        if now == front.published {
            return;
        }
        front.published = now;
        front.state.send_modify(|state| {
            state.role = role;
            state.view = view.clone();
            state.map = map;
        });
        front.view.send_replace(view);
    }
}

/// A request refused by slot (S4): the client is sent elsewhere or waits, as with a request
/// to a backup, so it is counted as rejected and logged at debug level only (a move may
/// refuse many).
fn note_slot_refusal(metrics: &ServerMetrics, response: &tandem_protocol::message::Response) {
    metrics.requests_rejected.inc();
    if let Err(error) = &response.result {
        debug!(
            event = "request_rejected",
            client = %response.client,
            seq = %response.seq,
            %error,
            "request rejected: slot not served here (S4)"
        );
    }
}

/// Logs the milestones of a slot move (S5, S6): the first chunk sent, and `installed`.
fn note_slot_move(to: &Endpoint, msg: &Message) {
    match msg {
        Message::SlotData(data) if data.chunk == 0 => info!(
            event = "slot_move_send",
            to = %endpoint_name(to),
            config = data.config.0,
            from_group = %data.from,
            to_group = %data.to,
            "sending slots to the taker (from chunk 0: a move starts, or a new primary resumes)"
        ),
        Message::SlotDataReply(reply) if reply.installed => info!(
            event = "slot_move_installed",
            to = %endpoint_name(to),
            config = reply.config.0,
            from_group = %reply.from,
            to_group = %reply.to,
            "slots installed: the giver may drop them"
        ),
        _ => {}
    }
}

/// `a,b,c`.
pub(crate) fn join_addrs(addrs: &[VsAddr]) -> String {
    addrs
        .iter()
        .map(VsAddr::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn endpoint_name(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::ViewService(addr) => format!("viewservice {addr}"),
        Endpoint::Server(id) => id.to_string(),
        Endpoint::Client(client) => client.to_string(),
    }
}

/// The core's state as last published by the server task.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    role: Option<RoleKind>,
    view: Option<View>,
    ping_viewnum: u64,
    stats: ReplicaStats,
    commit_index: Option<u64>,
    keys: u64,
    /// Memory counted for keys and values (L10).
    used_memory: u64,
    /// Backups receiving a state transfer, with chunks acknowledged.
    transfers: Vec<(String, u32)>,
    progress: String,
    /// The view-service node pinged now (Q2).
    view_service: String,
    /// How often that target changed.
    view_service_moves: u64,
}

/// What a server's admin endpoint reads.
struct ServerAdmin {
    id: ServerId,
    group: GroupId,
    metrics: ServerMetrics,
    snapshot: Mutex<Snapshot>,
    net: Arc<Net>,
    /// The configured view-service list, comma-separated.
    view_services: String,
    /// The configured memory limit (L11) and eviction policy (L12).
    maxmemory_bytes: u64,
    maxmemory_policy: &'static str,
}

fn role_name(role: Option<RoleKind>) -> &'static str {
    match role {
        Some(RoleKind::Primary) => "primary",
        Some(RoleKind::Backup) => "backup",
        _ => "idle",
    }
}

impl AdminSource for ServerAdmin {
    fn status(&self) -> Value {
        let s = self.snapshot.lock().expect("no poisoned lock").clone();
        json!({
            "role": "server",
            "id": self.id.as_str(),
            "group": self.group.0,
            "view_service": s.view_service,
            "view_services": self.view_services,
            "view_service_moves": s.view_service_moves,
            "view_role": role_name(s.role),
            "viewnum": s.view.as_ref().map_or(0, |v| v.num.0),
            "primary": s.view.as_ref().map(|v| v.primary.as_str()),
            "backups": s.view.iter().flat_map(|v| &v.backups).map(|b| b.as_str()).collect::<Vec<_>>(),
            "acknowledged_viewnum": s.ping_viewnum,
            "applied_ops": s.stats.applied,
            "commit_index": s.commit_index,
            "keys": s.keys,
            "used_memory": s.used_memory,
            "maxmemory": self.maxmemory_bytes,
            "maxmemory_policy": self.maxmemory_policy,
            "evicted_keys": s.stats.evicted_keys,
            "forwards_sent": s.stats.forwards_sent,
            "forwarded_entries": s.stats.forwarded_entries,
            "backup_progress": s.progress,
            "transfers_in_progress": s.transfers.iter().map(|(backup, chunks)| json!({
                "backup": backup,
                "chunks_acked": chunks,
            })).collect::<Vec<_>>(),
            "transfers_started": s.stats.transfers_started,
            "transfers_completed": s.stats.transfers_completed,
            "requests_rejected": s.stats.wrong_server,
            "forwards_rejected": s.stats.forwards_rejected,
            "protocol_errors": s.stats.protocol_errors,
            "slot_freeze_ms_max": s.stats.slot_freeze_ms_max,
        })
    }

    fn metrics(&self, out: &mut Exposition) {
        let s = self.snapshot.lock().expect("no poisoned lock").clone();
        out.single(
            "tandem_server_applied_ops_total",
            "counter",
            "Operations applied to the store (as primary or backup).",
            s.stats.applied as f64,
        );
        out.single(
            "tandem_server_forwards_total",
            "counter",
            "Forward frames sent to backups.",
            s.stats.forwards_sent as f64,
        );
        out.single(
            "tandem_server_forwards_rejected_total",
            "counter",
            "Forwards rejected as backup (P3).",
            s.stats.forwards_rejected as f64,
        );
        out.single(
            "tandem_server_protocol_errors_total",
            "counter",
            "Messages from peers that no correct peer sends, ignored (malformed forwards, chunks, transfer replies).",
            s.stats.protocol_errors as f64,
        );
        out.single(
            "tandem_server_viewnum",
            "gauge",
            "The view this server acts in.",
            s.view.as_ref().map_or(0, |v| v.num.0) as f64,
        );
        out.family(
            "tandem_server_role",
            "gauge",
            "1 for the role this server has in its view.",
        );
        for name in ["primary", "backup", "idle"] {
            let value = if role_name(s.role) == name { 1.0 } else { 0.0 };
            out.sample("tandem_server_role", &[("role", name)], value);
        }
        out.single(
            "tandem_server_keys",
            "gauge",
            "Keys in the store.",
            s.keys as f64,
        );
        out.single(
            "tandem_used_memory_bytes",
            "gauge",
            "Memory counted for keys and values (L10: key + value bytes + fixed overheads).",
            s.used_memory as f64,
        );
        out.single(
            "tandem_maxmemory_bytes",
            "gauge",
            "The memory limit on keys and values (0: none, L11).",
            self.maxmemory_bytes as f64,
        );
        out.single(
            "tandem_evicted_keys_total",
            "counter",
            "Keys evicted as primary to get under maxmemory (L12).",
            s.stats.evicted_keys as f64,
        );
        out.single(
            "tandem_server_slot_chunks_sent_total",
            "counter",
            "Slot chunks sent as a giver's primary (S5), resends included.",
            s.stats.slot_chunks_sent as f64,
        );
        out.single(
            "tandem_server_slot_chunks_precopied_total",
            "counter",
            "Of those, chunks sent while the slots were still served (S9).",
            s.stats.slot_chunks_precopied as f64,
        );
        out.single(
            "tandem_server_slot_freeze_ms_max",
            "gauge",
            "Longest time a move out of this server's group kept its slots frozen, from the freeze committed to the taker's install (S10).",
            s.stats.slot_freeze_ms_max as f64,
        );
        out.single(
            "tandem_server_transfers_in_progress",
            "gauge",
            "State transfers in progress as primary.",
            s.transfers.len() as f64,
        );
        self.metrics.render(out);
        render_net(out, &self.net.stats);
    }

    fn ready(&self) -> Result<(), String> {
        let s = self.snapshot.lock().expect("no poisoned lock");
        match s.role {
            Some(RoleKind::Primary | RoleKind::Backup) => Ok(()),
            _ => Err("not in a view yet".to_owned()),
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
