//! A whole cluster in one process: a view service of three Raft nodes (Q1), servers and a
//! coordinator on 127.0.0.1, each a task. Used by `tandem dev` and the integration tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::clock::random_u64;
use crate::config::{CoordinatorConfig, MAX_VIEW_SERVICE_PEERS, ServerConfig, ViewServerConfig};
use crate::coordinator::Coordinator;
use crate::error::RuntimeError;
use crate::identity::Role;
use crate::server::Server;
use crate::shutdown::Shutdown;
use crate::tls::{ClusterCa, PeerTls};
use crate::view_service::ViewServer;

/// What to start.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The coordinator's port; the view-service nodes get `port + 1000 ..` and the servers
    /// the ports after them. Port 0 makes every port ephemeral.
    pub port: u16,
    /// Number of servers (with `groups` > 1: per group).
    pub servers: usize,
    /// Number of replica groups (S2). With more than one, every server also serves Redis
    /// Cluster clients on a client port: `port + 1`, `port + 2`, ... in server order (server
    /// `i` is in group `i / servers`).
    pub groups: usize,
    /// Number of view-service nodes (1 to 64; default 3). One node keeps nothing on disk;
    /// several keep their Raft logs under `data_dir`.
    pub view_services: usize,
    /// Where the view-service nodes keep their data (`viewservice-ID` under it). `None`: a new
    /// directory under the system's temp dir, removed when the cluster stops.
    pub data_dir: Option<PathBuf>,
    /// Settings of every view-service node (id, peers and data dir are set per node).
    pub view_service: ViewServerConfig,
    /// Settings of every server.
    pub server: ServerConfig,
    /// Coordinator settings.
    pub coordinator: CoordinatorConfig,
    /// The view service's admin endpoint (dashboard); when set, the servers and the
    /// coordinator get admin endpoints on ephemeral loopback ports too, and the view service
    /// reads the coordinator's for the dashboard's throughput.
    pub admin: Option<String>,
    /// The cluster CA: every process gets a certificate from it for its address and runs
    /// with mutual TLS (I2). `None`: insecure mode (plain TCP).
    pub ca: Option<Arc<ClusterCa>>,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            port: 6379,
            servers: 3,
            groups: 1,
            view_services: 3,
            data_dir: None,
            view_service: ViewServerConfig::default(),
            server: ServerConfig::default(),
            coordinator: CoordinatorConfig::default(),
            admin: None,
            ca: None,
        }
    }
}

/// How long `tandem dev --groups N` keeps trying to spread the slots after start.
const SPREAD_SLOTS_TIMEOUT_MS: u64 = 60_000;
/// Pause between its attempts.
const SPREAD_SLOTS_RETRY_MS: u64 = 200;

/// Once `groups` groups have a view, asks the view service (any node of `view_services`; the
/// leader is found as `tandem slots rebalance` finds it) to spread the slots over them (S3:
/// `ChangeSlots(Rebalance)`), retrying until a change is applied or `timeout` passes (a
/// refusal, e.g. a group that has not yet reported its configuration, is retried). `tls`: an
/// admin certificate, unless the cluster runs without. The configuration it made, or the last
/// failure.
pub async fn spread_slots(
    view_services: &[String],
    groups: usize,
    tls: Option<&PeerTls>,
    timeout: std::time::Duration,
) -> Result<tandem_protocol::ConfigNum, String> {
    use tandem_protocol::message::SlotsChange;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no group has a view yet");
    while tokio::time::Instant::now() < deadline {
        let left = deadline - tokio::time::Instant::now();
        match crate::view_service::cluster_map(view_services, left, tls).await {
            Ok(map) if map.groups.values().filter(|g| g.view.is_some()).count() >= groups => {
                let left = deadline - tokio::time::Instant::now();
                match crate::view_service::change_slots(
                    view_services,
                    SlotsChange::Rebalance,
                    left,
                    tls,
                )
                .await
                {
                    Ok(map) => return Ok(map.config.num),
                    Err(error) => last = error.to_string(),
                }
            }
            Ok(_) => {}
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(SPREAD_SLOTS_RETRY_MS)).await;
    }
    Err(last)
}

/// A running in-process cluster.
#[derive(Debug)]
pub struct DevCluster {
    /// The first view-service node's address.
    pub view_service: SocketAddr,
    /// Every view-service node's address, node 1 first (what servers and coordinators get).
    pub view_services: Vec<SocketAddr>,
    /// Every server's address (also its id).
    pub servers: Vec<SocketAddr>,
    /// Every server's Redis Cluster client port, in the order of `servers` (empty with one
    /// group).
    pub client_ports: Vec<SocketAddr>,
    /// The coordinator's (Redis) address.
    pub coordinator: SocketAddr,
    /// Admin endpoints (view service, each server, coordinator), when enabled.
    pub admin: Option<DevAdmin>,
    /// With a CA: an operator's TLS settings (`admin/dev`), for `status` and membership
    /// changes.
    pub admin_tls: Option<PeerTls>,
    tasks: Vec<JoinHandle<Result<(), RuntimeError>>>,
    /// A temp directory created for the nodes' data, removed by `wait`.
    temp_dir: Option<PathBuf>,
}

/// The admin endpoints of a dev cluster.
#[derive(Clone, Debug)]
pub struct DevAdmin {
    /// The first view-service node's (serves the dashboard at `/`).
    pub view_service: SocketAddr,
    /// Every view-service node's, node 1 first.
    pub view_services: Vec<SocketAddr>,
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
            reason: "port + 1000 + view services + servers must stay below 65536",
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
        let nodes = options.view_services;
        if nodes == 0 || nodes > MAX_VIEW_SERVICE_PEERS {
            return Err(RuntimeError::Setting {
                key: "view-services",
                reason: format!("{nodes} is out of range: 1 to {MAX_VIEW_SERVICE_PEERS}"),
            });
        }
        // Every node's listener first: the nodes must know each other's addresses.
        let mut listeners = Vec::new();
        for i in 0..nodes {
            let listen = port_at(base, 1000 + u16::try_from(i).unwrap_or(u16::MAX))?;
            listeners.push((crate::error::bind(&listen).await?, listen));
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<Result<_, _>>()?;
        let view_service_addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let (data_dir, temp_dir) = match (&options.data_dir, nodes) {
            (_, 1) => (None, None),
            (Some(dir), _) => (Some(dir.clone()), None),
            (None, _) => {
                let dir = std::env::temp_dir().join(format!(
                    "tandem-dev-{}-{:016x}",
                    std::process::id(),
                    random_u64()
                ));
                (Some(dir.clone()), Some(dir))
            }
        };
        let peers: BTreeMap<u64, String> = (1..)
            .zip(&view_service_addrs)
            .map(|(id, addr)| (id, addr.clone()))
            .collect();
        let mut view_servers = Vec::new();
        for (i, (listener, listen)) in listeners.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut config = options.view_service.clone();
            config.admin = if i == 0 {
                options.admin.clone()
            } else {
                ephemeral_admin.clone()
            };
            config.id = id;
            if let Some(ca) = &options.ca {
                config.net.tls = Some(ca.peer(Role::ViewService, &view_service_addrs[i])?);
            }
            if let Some(dir) = &data_dir {
                config.peers = peers.clone();
                config.data_dir = Some(dir.join(format!("viewservice-{id}")));
            }
            view_servers.push(ViewServer::with_listener(config, listener, Some(&listen)).await?);
        }
        let view_service = addrs[0];
        let mut servers = Vec::new();
        let groups = options.groups.max(1);
        for i in 0..options.servers * groups {
            let offset = u16::try_from(1000 + nodes + i).unwrap_or(u16::MAX);
            let listen = port_at(base, offset)?;
            let config = ServerConfig {
                admin: ephemeral_admin.clone(),
                group: tandem_protocol::GroupId(
                    options.server.group.0 + (i / options.servers.max(1)) as u32,
                ),
                ..options.server.clone()
            };
            let mut server = Server::bind(config, &listen, None, &view_service_addrs).await?;
            if let Some(ca) = &options.ca {
                let tls = ca.peer(Role::Server, server.id().as_str())?;
                server = server.with_peer_tls(tls)?;
            }
            if groups > 1 {
                let client_port = port_at(base, u16::try_from(1 + i).unwrap_or(u16::MAX))?;
                server = server
                    .with_client_front(crate::cluster::ClientFront {
                        listen: client_port,
                        advertise: None,
                        config: options.coordinator.clone(),
                    })
                    .await?;
            }
            servers.push(server);
        }
        let mut coordinator_config = CoordinatorConfig {
            admin: ephemeral_admin,
            ..options.coordinator.clone()
        };
        if let Some(ca) = &options.ca {
            coordinator_config.net.tls = Some(ca.peer(Role::Coordinator, "dev")?);
        }
        let admin_tls = match &options.ca {
            Some(ca) => Some(ca.peer(Role::Admin, "dev")?),
            None => None,
        };
        let coordinator =
            Coordinator::bind(coordinator_config, &port_at(base, 0)?, &view_service_addrs).await?;
        let admin = match (view_servers[0].admin_addr(), coordinator.admin_addr()) {
            (Some(view_service), Some(coordinator)) => {
                for view_server in &mut view_servers {
                    view_server.add_coordinator_admin(coordinator.to_string());
                }
                Some(DevAdmin {
                    view_service,
                    view_services: view_servers
                        .iter()
                        .filter_map(ViewServer::admin_addr)
                        .collect(),
                    servers: servers.iter().filter_map(Server::admin_addr).collect(),
                    coordinator,
                })
            }
            _ => None,
        };
        let mut cluster = DevCluster {
            view_service,
            view_services: addrs,
            servers: servers.iter().map(Server::local_addr).collect(),
            client_ports: servers.iter().filter_map(Server::client_addr).collect(),
            coordinator: coordinator.local_addr(),
            admin,
            admin_tls,
            tasks: Vec::new(),
            temp_dir,
        };
        for view_server in view_servers {
            cluster
                .tasks
                .push(tokio::spawn(view_server.run(shutdown.clone())));
        }
        for server in servers {
            cluster
                .tasks
                .push(tokio::spawn(server.run(shutdown.clone())));
        }
        cluster
            .tasks
            .push(tokio::spawn(coordinator.run(shutdown.clone())));
        if groups > 1 {
            let tls = cluster.admin_tls.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let timeout = std::time::Duration::from_millis(SPREAD_SLOTS_TIMEOUT_MS);
                tokio::select! {
                    _ = stop.wait() => {}
                    spread = spread_slots(&view_service_addrs, groups, tls.as_ref(), timeout) => {
                        match spread {
                            Ok(config) => tracing::info!(%config, groups, "slots spread over the groups"),
                            Err(error) => tracing::warn!(%error, "could not spread the slots over the groups"),
                        }
                    }
                }
            });
        }
        Ok(cluster)
    }

    /// Waits for every role to stop (after shutdown); the first error wins.
    pub async fn wait(self) -> Result<(), RuntimeError> {
        let mut result = Ok(());
        let temp_dir = self.temp_dir;
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
        if let Some(dir) = temp_dir
            && let Err(error) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(path = %dir.display(), %error, "cannot remove the dev data directory");
        }
        result
    }
}
