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

mod connection;
mod hub;
mod local;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use tandem_protocol::{GroupId, View};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{info, warn};

use crate::config::CoordinatorConfig;
use crate::error::{RuntimeError, bind, first_view_service};
use crate::net::Net;
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
}

/// A bound coordinator, ready to run.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    listener: TcpListener,
    view_service: String,
}

impl Coordinator {
    /// Validates `config` and binds `listen` (the Redis port).
    pub async fn bind(
        config: CoordinatorConfig,
        listen: &str,
        view_service_addrs: &[String],
    ) -> Result<Coordinator, RuntimeError> {
        config.validate()?;
        let view_service = first_view_service(view_service_addrs)?;
        let listener = bind(listen).await?;
        Ok(Coordinator {
            config,
            listener,
            view_service,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves clients until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), RuntimeError> {
        let listen = self.local_addr();
        let (hub_sender, hub_requests) = mpsc::unbounded_channel();
        let (view_sender, view) = watch::channel(None);
        let (inbox_sender, inbox) = mpsc::channel(self.config.net.inbox_messages);
        let net = Net::new(self.config.net.clone(), inbox_sender, shutdown.clone());
        let hub = Hub::new(
            GroupId(0),
            self.config.clerk.clone(),
            self.view_service.clone(),
            net,
            view_sender,
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
        });
        info!(%listen, view_service = %self.view_service, "coordinator started");
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        loop {
            let permit = tokio::select! {
                _ = shutdown.wait() => break,
                permit = limit.clone().acquire_owned() => permit.expect("semaphore never closed"),
            };
            let accepted = tokio::select! {
                _ = shutdown.wait() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                connection::serve(stream, peer, shared, shutdown).await;
                drop(permit);
            });
        }
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
