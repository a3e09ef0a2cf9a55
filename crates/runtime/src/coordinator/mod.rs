//! The Redis-protocol coordinator: the front end that clients (redis-cli, redis-benchmark, any
//! Redis library) talk to.
//!
//! - `mod.rs`: binding, the accept loops (plain and TLS ports, bounded together by
//!   `max_connections`: the client beyond it is answered `-ERR max number of clients reached`
//!   and closed, L4) and the state shared by the connection tasks.
//! - `tls`: the TLS port's rustls settings (L5).
//! - `connection`: one task per client connection: parse pipelined requests, answer
//!   connection-local commands, send data commands as one batch through the hub, write replies
//!   in order.
//! - `local`: the connection-local commands (PING, HELLO, INFO, CONFIG GET, ...).
//! - `auth`: AUTH state, the NOAUTH gate, protected mode, the cached ACL flag (A2, A3, A10).
//! - `hub`: the clerk hub, the one task that drives every session's `Clerk`.
//!
//! Operability: connection tasks record each batch in [`CoordinatorMetrics`] (atomics only);
//! the admin endpoint reads those, the cached view and the connection count.

mod auth;
mod connection;
mod hub;
mod local;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_protocol::{ClusterMap, GroupId, View};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::admin::{AdminListener, AdminSource, render_net};
use crate::config::CoordinatorConfig;
use crate::error::{RuntimeError, bind, parse_view_services};
use crate::metrics::{CoordinatorMetrics, Exposition};
use crate::net::Net;
use crate::shutdown::Shutdown;
pub(crate) use connection::serve_server_clients;
use hub::{Hub, HubRequest};

/// What every connection task of a coordinator shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: CoordinatorConfig,
    hub: mpsc::UnboundedSender<HubRequest>,
    view: watch::Receiver<Option<View>>,
    /// The newest cluster map the hub holds (S2), for `/status`.
    cluster_map: watch::Receiver<Option<Arc<ClusterMap>>>,
    connected: AtomicUsize,
    next_connection_id: AtomicU64,
    started: Instant,
    listen: SocketAddr,
    /// Per-command counters and latency, recorded by the connection tasks.
    pub(crate) metrics: CoordinatorMetrics,
    /// The view-service node the hub asks now (Q2).
    view_service_target: watch::Receiver<String>,
    /// Bytes of unfinished requests buffered by all connections (L6).
    query_bytes: AtomicUsize,
    /// Connections refused because the budget of unfinished-request bytes was full (L6).
    query_budget_refusals: AtomicU64,
    /// Connections closed because their unfinished request passed its deadline (L3).
    unfinished_timeouts: AtomicU64,
    /// Clients refused beyond `max_connections` (L4).
    max_clients_refusals: AtomicU64,
    /// Replies answered with an error for being larger than `max_reply_bytes` (L7).
    replies_too_big: AtomicU64,
    /// The cached "default user needs a password" flag (A3).
    auth: auth::AclCache,
    /// On a server's client port: its cluster front end (CLUSTER commands, cluster mode);
    /// `None` on a coordinator, which answers as a node without cluster support.
    cluster: Option<Arc<crate::cluster::ServerFront>>,
}

/// The answer to a client beyond `max_connections` (Redis's text, L4).
pub const MAX_CLIENTS_REACHED: &str = "-ERR max number of clients reached\r\n";
/// How long a TLS client has to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Most TLS clients beyond `max_connections` being told so at once; more are just closed.
const MAX_TLS_REFUSALS_IN_FLIGHT: usize = 64;

/// A bound coordinator, ready to run.
pub struct Coordinator {
    config: CoordinatorConfig,
    listener: TcpListener,
    /// The TLS port and its settings (L5).
    tls: Option<(TcpListener, TlsAcceptor)>,
    view_services: Vec<tandem_protocol::VsAddr>,
    admin: Option<AdminListener>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("listen", &self.listener.local_addr().ok())
            .field("tls_listen", &self.tls_addr())
            .field("view_services", &self.view_services)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Validates `config` and the view-service list (see [`parse_view_services`]) and binds
    /// `listen` (the Redis port), and the TLS port if `config.tls` asks for one (its
    /// certificate and key are loaded now, so a bad file fails here).
    pub async fn bind(
        config: CoordinatorConfig,
        listen: &str,
        view_service_addrs: &[String],
    ) -> Result<Coordinator, RuntimeError> {
        config.validate()?;
        let view_services = parse_view_services(view_service_addrs)?;
        let tls = match &config.tls {
            Some(tls_config) => {
                let acceptor = tls::acceptor(tls_config)?;
                Some((bind(&tls_config.listen).await?, acceptor))
            }
            None => None,
        };
        if let Some(tls) = &config.net.tls {
            crate::tls::expect_principal(tls, crate::identity::Role::Coordinator, None)?;
        }
        let listener = bind(listen).await?;
        let admin =
            AdminListener::bind_configured(config.admin.as_deref(), config.admin_token.as_deref())
                .await?;
        Ok(Coordinator {
            config,
            listener,
            tls,
            view_services,
            admin,
        })
    }

    /// The admin endpoint's bound address, if one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminListener::local_addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The TLS port's bound address, if one is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
            .as_ref()
            .map(|(listener, _)| listener.local_addr().expect("bound listener"))
    }

    /// Serves clients until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RuntimeError> {
        let listen = self.local_addr();
        let tls_listen = self.tls_addr();
        let (hub_sender, hub_requests) = mpsc::unbounded_channel();
        let (view_sender, view) = watch::channel(None);
        let (cluster_sender, cluster_map) = watch::channel(None);
        let (target_sender, view_service_target) =
            watch::channel(self.view_services[0].to_string());
        let (inbox_sender, inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        let hub = Hub::new(
            GroupId(0),
            self.config.clerk.clone(),
            self.view_services.clone(),
            net.clone(),
            view_sender,
            target_sender,
        )
        .publishing_maps(cluster_sender);
        let refresh = Duration::from_millis(self.config.view_refresh_ms);
        tokio::spawn(hub.run(hub_requests, inbox, refresh, shutdown.clone()));
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            hub: hub_sender,
            view,
            cluster_map,
            connected: AtomicUsize::new(0),
            next_connection_id: AtomicU64::new(1),
            started: Instant::now(),
            listen,
            metrics: CoordinatorMetrics::default(),
            view_service_target,
            query_bytes: AtomicUsize::new(0),
            query_budget_refusals: AtomicU64::new(0),
            unfinished_timeouts: AtomicU64::new(0),
            max_clients_refusals: AtomicU64::new(0),
            replies_too_big: AtomicU64::new(0),
            auth: auth::AclCache::new(self.config.requirepass.is_some()),
            cluster: None,
        });
        tokio::spawn(auth::maintain(shared.clone(), shutdown.clone()));
        if let Some(listener) = self.admin {
            let source = Arc::new(CoordinatorAdmin {
                shared: shared.clone(),
                net,
            });
            listener.spawn(source, shutdown.clone());
        }
        let list = crate::server::join_addrs(&self.view_services);
        info!(%listen, ?tls_listen, view_services = %list, "coordinator started");
        let slots = Arc::new(Semaphore::new(self.config.max_connections));
        let plain = accept_clients(self.listener, None, slots.clone(), &shared, &shutdown);
        match self.tls {
            Some((listener, acceptor)) => {
                let tls = accept_clients(listener, Some(acceptor), slots, &shared, &shutdown);
                tokio::join!(plain, tls);
            }
            None => plain.await,
        }
        info!("coordinator stopped");
        Ok(())
    }
}

/// Accepts clients on `listener` until `shutdown`, each served on its own task while it holds
/// one of `slots`; a client beyond them is answered [`MAX_CLIENTS_REACHED`] and closed (L4).
/// With `tls`, every client first completes a TLS handshake (L5).
async fn accept_clients(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    slots: Arc<Semaphore>,
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) {
    let mut stop = shutdown.clone();
    let refusals = Arc::new(Semaphore::new(MAX_TLS_REFUSALS_IN_FLIGHT));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    shared.metrics.accept_errors.inc();
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        shared.metrics.connections_accepted.inc();
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.max_clients_refusals.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "client refused: max number of clients reached");
            match &tls {
                // A fresh socket's send buffer is empty: the short reply fits without waiting.
                None => drop(stream.try_write(MAX_CLIENTS_REACHED.as_bytes())),
                Some(acceptor) => {
                    if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                        tokio::spawn(refuse_tls(stream, acceptor.clone(), refusal));
                    }
                }
            }
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::serve(stream, peer, shared, shutdown).await,
                Some(acceptor) => match handshake(stream, &acceptor).await {
                    Ok(stream) => connection::serve(stream, peer, shared, shutdown).await,
                    Err(error) => debug!(%peer, %error, "TLS handshake failed"),
                },
            }
            drop(slot);
        });
    }
}

/// The server side of a TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT_MS`].
async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let timeout = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
    tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Tells a TLS client beyond `max_connections` so, then closes.
async fn refuse_tls(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    _refusal: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut stream) = handshake(stream, &acceptor).await {
        let refuse = async {
            stream.write_all(MAX_CLIENTS_REACHED.as_bytes()).await?;
            stream.shutdown().await
        };
        let timeout = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
        let _ = tokio::time::timeout(timeout, refuse).await;
    }
}

/// Binds `listen` and serves Redis clients until `shutdown`.
pub async fn run_coordinator(
    config: CoordinatorConfig,
    listen: &str,
    view_service_addrs: &[String],
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    Coordinator::bind(config, listen, view_service_addrs)
        .await?
        .run(shutdown)
        .await
}

/// What a coordinator's admin endpoint reads.
struct CoordinatorAdmin {
    shared: Arc<Shared>,
    net: Arc<Net>,
}

impl AdminSource for CoordinatorAdmin {
    fn status(&self) -> Value {
        let shared = &self.shared;
        let view = shared.view.borrow().clone();
        let (ok, timed_out) = shared.metrics.requests();
        json!({
            "role": "coordinator",
            "listen": shared.listen.to_string(),
            "uptime_s": shared.started.elapsed().as_secs(),
            "view_service": shared.view_service_target.borrow().clone(),
            "view": view.as_ref().map(|v| json!({
                "viewnum": v.num.0,
                "primary": v.primary.as_str(),
                "backups": v.backups.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
            })),
            "cluster": shared.cluster_map.borrow().as_ref().map(|map| json!({
                "epoch": map.epoch,
                "config": map.config.num.0,
                "groups": map.groups.iter()
                    .filter(|(_, g)| g.view.is_some())
                    .map(|(id, g)| json!({
                        "group": id.0,
                        "primary": g.view.as_ref().map(|v| v.primary.as_str()),
                        "slots": map.config.slots_of(*id).iter()
                            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
                            .sum::<u32>(),
                    }))
                    .collect::<Vec<_>>(),
            })),
            "connections": shared.connected.load(std::sync::atomic::Ordering::Relaxed),
            "requests_total": ok + timed_out,
            "requests_timed_out": timed_out,
            "commands_total": shared.metrics.commands_total(),
            "tls_listen": shared.config.tls.as_ref().map(|tls| tls.listen.clone()),
            "query_buffer_bytes": shared.query_bytes.load(Ordering::Relaxed),
            "refused": {
                "max_clients": shared.max_clients_refusals.load(Ordering::Relaxed),
                "query_budget": shared.query_budget_refusals.load(Ordering::Relaxed),
                "unfinished_timeout": shared.unfinished_timeouts.load(Ordering::Relaxed),
                "reply_too_big": shared.replies_too_big.load(Ordering::Relaxed),
            },
        })
    }

    fn metrics(&self, out: &mut Exposition) {
        let shared = &self.shared;
        shared.metrics.render(out);
        out.single(
            "tandem_coordinator_connections",
            "gauge",
            "Client connections open.",
            shared.connected.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        out.family(
            "tandem_coordinator_errors_total",
            "counter",
            "Coordinator errors, by kind.",
        )
        .sample(
            "tandem_coordinator_errors_total",
            &[("kind", "accept")],
            shared.metrics.accept_errors.get() as f64,
        )
        .sample(
            "tandem_coordinator_errors_total",
            &[("kind", "timeout")],
            shared.metrics.requests().1 as f64,
        );
        out.single(
            "tandem_coordinator_query_buffer_bytes",
            "gauge",
            "Bytes of unfinished client requests buffered, all connections together (L6).",
            shared.query_bytes.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "tandem_coordinator_client_refusals_total",
            "counter",
            "Client connections or replies refused by a limit, by limit (L3, L4, L6, L7).",
        )
        .sample(
            "tandem_coordinator_client_refusals_total",
            &[("limit", "max_clients")],
            shared.max_clients_refusals.load(Ordering::Relaxed) as f64,
        )
        .sample(
            "tandem_coordinator_client_refusals_total",
            &[("limit", "query_budget")],
            shared.query_budget_refusals.load(Ordering::Relaxed) as f64,
        )
        .sample(
            "tandem_coordinator_client_refusals_total",
            &[("limit", "unfinished_timeout")],
            shared.unfinished_timeouts.load(Ordering::Relaxed) as f64,
        )
        .sample(
            "tandem_coordinator_client_refusals_total",
            &[("limit", "reply_too_big")],
            shared.replies_too_big.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "tandem_coordinator_viewnum",
            "gauge",
            "The view number the coordinator last learnt.",
            shared.view.borrow().as_ref().map_or(0, |v| v.num.0) as f64,
        );
        render_net(out, &self.net.stats);
    }

    fn ready(&self) -> Result<(), String> {
        match self.shared.view.borrow().as_ref() {
            Some(_) => Ok(()),
            None => Err("no view learnt from the view service yet".to_owned()),
        }
    }
}
