//! A whole cluster in one process: a view service, servers and a coordinator on 127.0.0.1,
//! each a task. Used by `tandem dev` and the integration tests.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

use crate::config::{CoordinatorConfig, ServerConfig, ViewServerConfig};
use crate::coordinator::Coordinator;
use crate::error::RuntimeError;
use crate::server::Server;
use crate::shutdown::Shutdown;
use crate::view_service::ViewServer;

/// What to start.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The coordinator's port; the view service gets `port + 1000` and the servers
    /// `port + 1001 ..`. Port 0 makes every port ephemeral.
    pub port: u16,
    /// Number of servers.
    pub servers: usize,
    /// View service settings.
    pub view_service: ViewServerConfig,
    /// Settings of every server.
    pub server: ServerConfig,
    /// Coordinator settings.
    pub coordinator: CoordinatorConfig,
    /// The view service's admin endpoint (dashboard); when set, the servers and the
    /// coordinator get admin endpoints on ephemeral loopback ports too, and the view service
    /// reads the coordinator's for the dashboard's throughput.
    pub admin: Option<String>,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            port: 6379,
            servers: 3,
            view_service: ViewServerConfig::default(),
            server: ServerConfig::default(),
            coordinator: CoordinatorConfig::default(),
            admin: None,
        }
    }
}

/// A running in-process cluster.
#[derive(Debug)]
pub struct DevCluster {
    /// The view service's address.
    pub view_service: SocketAddr,
    /// Every server's address (also its id).
    pub servers: Vec<SocketAddr>,
    /// The coordinator's (Redis) address.
    pub coordinator: SocketAddr,
    /// Admin endpoints (view service, each server, coordinator), when enabled.
    pub admin: Option<DevAdmin>,
    tasks: Vec<JoinHandle<Result<(), RuntimeError>>>,
}

/// The admin endpoints of a dev cluster.
#[derive(Clone, Debug)]
pub struct DevAdmin {
    /// The view service's (serves the dashboard at `/`).
    pub view_service: SocketAddr,
    /// Each server's, in the order of [`DevCluster::servers`].
    pub servers: Vec<SocketAddr>,
    /// The coordinator's.
    pub coordinator: SocketAddr,
}

fn port_at(base: u16, offset: u16) -> Result<String, RuntimeError> {
    if base == 0 {
        return Ok("127.0.0.1:0".to_owned());
    }
    match base.checked_add(offset) {
        Some(port) => Ok(format!("127.0.0.1:{port}")),
        None => Err(RuntimeError::Address {
            addr: format!("127.0.0.1:{base}"),
            reason: "port + 1000 + servers must stay below 65536",
        }),
    }
}

impl DevCluster {
    /// Binds every role (so a port in use fails here, before anything runs), then starts them
    /// as tasks that stop on `shutdown`.
    pub async fn start(
        options: DevOptions,
        shutdown: &Shutdown,
    ) -> Result<DevCluster, RuntimeError> {
        let base = options.port;
        let ephemeral_admin = options.admin.as_ref().map(|_| "127.0.0.1:0".to_owned());
        let mut view_service_config = options.view_service.clone();
        view_service_config.admin = options.admin.clone();
        let view_server = ViewServer::bind(view_service_config, &port_at(base, 1000)?).await?;
        let view_service = view_server.local_addr();
        let view_service_addrs = vec![view_service.to_string()];
        let mut servers = Vec::new();
        for i in 0..options.servers {
            let offset = 1001 + u16::try_from(i).unwrap_or(u16::MAX - 1001);
            let listen = port_at(base, offset)?;
            let config = ServerConfig {
                admin: ephemeral_admin.clone(),
                ..options.server.clone()
            };
            let server = Server::bind(config, &listen, None, &view_service_addrs).await?;
            servers.push(server);
        }
        let coordinator = Coordinator::bind(
            CoordinatorConfig {
                admin: ephemeral_admin,
                ..options.coordinator.clone()
            },
            &port_at(base, 0)?,
            &view_service_addrs,
        )
        .await?;
        let mut view_server = view_server;
        let admin = match (view_server.admin_addr(), coordinator.admin_addr()) {
            (Some(view_service), Some(coordinator)) => {
                view_server.add_coordinator_admin(coordinator.to_string());
                Some(DevAdmin {
                    view_service,
                    servers: servers.iter().filter_map(Server::admin_addr).collect(),
                    coordinator,
                })
            }
            _ => None,
        };
        let mut cluster = DevCluster {
            view_service,
            servers: servers.iter().map(Server::local_addr).collect(),
            coordinator: coordinator.local_addr(),
            admin,
            tasks: Vec::new(),
        };
        cluster
            .tasks
            .push(tokio::spawn(view_server.run(shutdown.clone())));
        for server in servers {
            cluster
                .tasks
                .push(tokio::spawn(server.run(shutdown.clone())));
        }
        cluster
            .tasks
            .push(tokio::spawn(coordinator.run(shutdown.clone())));
        Ok(cluster)
    }

    /// Waits for every role to stop (after shutdown); the first error wins.
    pub async fn wait(self) -> Result<(), RuntimeError> {
        let mut result = Ok(());
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    if result.is_ok() {
                        result = Err(error);
                    }
                }
                Err(join) => {
                    if result.is_ok() {
                        result = Err(RuntimeError::Io(std::io::Error::other(join.to_string())));
                    }
                }
            }
        }
        result
    }
}
