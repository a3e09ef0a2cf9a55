//! The Redis-protocol coordinator: the front end that clients (redis-cli, redis-benchmark, any
//! Redis library) talk to.
//!
//! - `mod.rs`: binding, the accept loop (bounded by a semaphore) and the state shared by the
//!   connection tasks.
//! - `connection`: one task per client connection: parse pipelined requests, answer
//!   connection-local commands, send data commands as one batch through the hub, write replies
//!   in order.
//! - `local`: the connection-local commands (PING, HELLO, INFO, CONFIG GET, ...).
//! - `hub`: the clerk hub, the one task that drives every session's `Clerk`.
//!
//! Operability: connection tasks record each batch in [`CoordinatorMetrics`] (atomics only);
//! the admin endpoint reads those, the cached view and the connection count.

mod connection;
mod hub;
mod local;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_protocol::{GroupId, View};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::admin::{AdminListener, AdminSource, render_net};
use crate::config::CoordinatorConfig;
use crate::error::{RuntimeError, bind, parse_view_services};
use crate::metrics::{CoordinatorMetrics, Exposition};
use crate::net::{Net, accept_bounded};
use crate::shutdown::Shutdown;
use hub::{Hub, HubRequest};

/// What every connection task of a coordinator shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: CoordinatorConfig,
    hub: mpsc::UnboundedSender<HubRequest>,
    view: watch::Receiver<Option<View>>,
    connected: AtomicUsize,
    next_connection_id: AtomicU64,
    started: Instant,
    listen: SocketAddr,
    /// Per-command counters and latency, recorded by the connection tasks.
    pub(crate) metrics: CoordinatorMetrics,
    /// The view-service node the hub asks now (Q2).
    view_service_target: watch::Receiver<String>,
}

/// A bound coordinator, ready to run.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    listener: TcpListener,
    view_services: Vec<tandem_protocol::VsAddr>,
    admin: Option<AdminListener>,
}

impl Coordinator {
    /// Validates `config` and the view-service list (see [`parse_view_services`]) and binds
    /// `listen` (the Redis port).
    pub async fn bind(
        config: CoordinatorConfig,
        listen: &str,
        view_service_addrs: &[String],
    ) -> Result<Coordinator, RuntimeError> {
        config.validate()?;
        let view_services = parse_view_services(view_service_addrs)?;
        if let Some(tls) = &config.net.tls {
            crate::tls::expect_principal(tls, crate::identity::Role::Coordinator, None)?;
        }
        let listener = bind(listen).await?;
        let admin = AdminListener::bind_configured(config.admin.as_deref()).await?;
        Ok(Coordinator {
            config,
            listener,
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

    /// Serves clients until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), RuntimeError> {
        let listen = self.local_addr();
        let (hub_sender, hub_requests) = mpsc::unbounded_channel();
        let (view_sender, view) = watch::channel(None);
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
        );
        let refresh = Duration::from_millis(self.config.view_refresh_ms);
        tokio::spawn(hub.run(hub_requests, inbox, refresh, shutdown.clone()));
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            hub: hub_sender,
            view,
            connected: AtomicUsize::new(0),
            next_connection_id: AtomicU64::new(1),
            started: Instant::now(),
            listen,
            metrics: CoordinatorMetrics::default(),
            view_service_target,
        });
        if let Some(listener) = self.admin {
            let source = Arc::new(CoordinatorAdmin {
                shared: shared.clone(),
                net,
            });
            listener.spawn(source, shutdown.clone());
        }
        let list = crate::server::join_addrs(&self.view_services);
        info!(%listen, view_services = %list, "coordinator started");
        accept_bounded(
            &self.listener,
            self.config.max_connections,
            shutdown.clone(),
            |result| {
                match result {
                    Ok(()) => shared.metrics.connections_accepted.inc(),
                    Err(_) => shared.metrics.accept_errors.inc(),
                };
            },
            |stream, peer| connection::serve(stream, peer, shared.clone(), shutdown.clone()),
        )
        .await;
        info!("coordinator stopped");
        Ok(())
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
            "connections": shared.connected.load(std::sync::atomic::Ordering::Relaxed),
            "requests_total": ok + timed_out,
            "requests_timed_out": timed_out,
            "commands_total": shared.metrics.commands_total(),
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
