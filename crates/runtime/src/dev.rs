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
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            port: 6379,
            servers: 3,
            view_service: ViewServerConfig::default(),
            server: ServerConfig::default(),
            coordinator: CoordinatorConfig::default(),
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
    tasks: Vec<JoinHandle<Result<(), RuntimeError>>>,
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
        let view_server =
            ViewServer::bind(options.view_service.clone(), &port_at(base, 1000)?).await?;
        let view_service = view_server.local_addr();
        let view_service_addrs = vec![view_service.to_string()];
        let mut servers = Vec::new();
        for i in 0..options.servers {
            let offset = 1001 + u16::try_from(i).unwrap_or(u16::MAX - 1001);
            let listen = port_at(base, offset)?;
            let server =
                Server::bind(options.server.clone(), &listen, None, &view_service_addrs).await?;
            servers.push(server);
        }
        let coordinator = Coordinator::bind(
            options.coordinator.clone(),
            &port_at(base, 0)?,
            &view_service_addrs,
        )
        .await?;
        let mut cluster = DevCluster {
            view_service,
            servers: servers.iter().map(Server::local_addr).collect(),
            coordinator: coordinator.local_addr(),
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
