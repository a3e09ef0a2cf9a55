//! The server's Redis front end (`tandem server --client-listen`): Redis Cluster clients talk
//! to servers directly (S4, S8).
//!
//! - `mod.rs`: what the front end knows of the cluster ([`FrontState`], published by the
//!   server task after every round) and the settings of the client port ([`ClientFront`]).
//! - `route`: per command, execute here or answer `-MOVED`, `-TRYAGAIN`, `-CLUSTERDOWN`,
//!   `-CROSSSLOT` (S1, S4), and the same for the core's refusals.
//! - `nodes`: `CLUSTER SLOTS | NODES | SHARDS | INFO | KEYSLOT | MYID`, rendered from the
//!   newest cluster map, and the node ids (40 hex characters derived from the server id).
//! - `front`: the task that takes each connection's batch (the coordinator's connection code,
//!   `coordinator/connection.rs`, serves these clients too), routes it, and submits the local
//!   commands to the replica core as one `Request` of the connection's session, without a
//!   network hop.

mod front;
mod nodes;
mod route;

use std::sync::Arc;

use tandem_protocol::{ClusterMap, GroupId, RoleKind, ServerId, View};
use tokio::sync::watch;

use crate::config::CoordinatorConfig;

pub(crate) use front::CoreRequest;
pub(crate) use nodes::cluster_command;
pub use route::{Route, route_command};

/// The client port of a server: where it listens, the address it announces (in its pings, so
/// in the cluster map, `CLUSTER SLOTS` and `-MOVED`), and the client limits (the coordinator's
/// settings: max clients, timeouts, L1-L7 bounds, requirepass, protected mode).
#[derive(Clone, Debug)]
pub struct ClientFront {
    /// `--client-listen`.
    pub listen: String,
    /// `--client-advertise`: `HOST:PORT` clients reach this port at (default: the bound
    /// address; a wildcard bind needs it).
    pub advertise: Option<String>,
    /// Client limits; `clerk`, `view_refresh_ms` and `net` are not used here.
    pub config: CoordinatorConfig,
}

/// What the front end knows when it routes a command: this server, its role in its group's
/// view, and the newest cluster map (S2) the server received.
#[derive(Clone, Debug)]
pub struct FrontState {
    /// This server.
    pub me: ServerId,
    /// Its group.
    pub group: GroupId,
    /// Its role in the view it acts in.
    pub role: RoleKind,
    /// That view.
    pub view: Option<View>,
    /// The newest cluster map, if one arrived yet.
    pub map: Option<Arc<ClusterMap>>,
    /// The address this server serves clients on, as announced.
    pub client_addr: String,
}

impl FrontState {
    /// The newest view of this server's group: its own, or the map's when newer.
    pub fn own_view(&self) -> Option<&View> {
        let mapped = self
            .map
            .as_ref()
            .and_then(|m| m.groups.get(&self.group))
            .and_then(|g| g.view.as_ref());
        match (&self.view, mapped) {
            (Some(own), Some(mapped)) if mapped.num > own.num => Some(mapped),
            (Some(own), _) => Some(own),
            (None, mapped) => mapped,
        }
    }

    /// The client address of `server` in the map (this server's own is known anyway).
    pub fn client_addr_of(&self, group: GroupId, server: &ServerId) -> Option<&str> {
        if *server == self.me {
            return Some(&self.client_addr);
        }
        self.map
            .as_ref()?
            .groups
            .get(&group)?
            .client_addrs
            .get(server)
            .map(String::as_str)
    }
}

/// What the connections of a server's client port share beyond the coordinator's state.
#[derive(Debug)]
pub(crate) struct ServerFront {
    /// Published by the server task.
    pub state: watch::Receiver<FrontState>,
    /// Requests for the server task's replica core.
    core: tokio::sync::mpsc::Sender<CoreRequest>,
    /// The next sequence number of any session of this front end: growing, so growing per
    /// session (P8).
    next_seq: std::sync::atomic::AtomicU64,
    /// How long a batch waits for the core before it is answered `-TRYAGAIN`.
    request_timeout_ms: u64,
}
