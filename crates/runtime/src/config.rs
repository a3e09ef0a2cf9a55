//! One configuration struct per runtime role, with defaults and `validate()`. The protocol
//! cores' own settings (`ViewServiceConfig`, `ReplicaConfig`, `ClerkConfig`) are embedded; this
//! file adds the bounds of the shell itself: frames, connections, queues.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tandem_protocol::config::{check, check_with};
use tandem_protocol::consensus::NodeConfig;
use tandem_protocol::{
    ClerkConfig, ConfigError, GroupId, ReplicaConfig, ViewServiceConfig, VsAddr,
};
use tandem_resp::Limits;

use crate::error::RuntimeError;

/// Settings of the internal RPC transport (server <-> view service <-> coordinator).
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Largest frame payload accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// An inbound connection that sends no frame for this long is closed.
    pub idle_timeout_ms: u64,
    /// Most inbound internal connections served at once.
    pub max_inbound_connections: usize,
    /// Frames queued per outbound connection (or per inbound reply path); beyond it frames are
    /// dropped and counted (the protocol retransmits).
    pub send_queue_frames: usize,
    /// First reconnect delay after a failed connect.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay (the backoff doubles up to it).
    pub reconnect_max_ms: u64,
    /// Most coordinator sessions a server remembers the reply connection of.
    pub max_client_routes: usize,
    /// Messages buffered between the connection tasks and the task owning a core.
    pub inbox_messages: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_frame_bytes: 64 << 20,
            idle_timeout_ms: 30_000,
            max_inbound_connections: 1024,
            send_queue_frames: 4096,
            reconnect_min_ms: 10,
            reconnect_max_ms: 1000,
            max_client_routes: 65_536,
            inbox_messages: 16_384,
        }
    }
}

impl NetConfig {
    /// Rejects values that would make the transport unusable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_with(
            "max-frame-bytes",
            self.max_frame_bytes as u64,
            1024,
            1 << 30,
            "1 KiB to 1 GiB",
        )?;
        check("idle-timeout-ms", self.idle_timeout_ms, 100, 3_600_000)?;
        check(
            "max-inbound-connections",
            self.max_inbound_connections as u64,
            1,
            1 << 20,
        )?;
        check(
            "send-queue-frames",
            self.send_queue_frames as u64,
            1,
            1 << 20,
        )?;
        check("reconnect-min-ms", self.reconnect_min_ms, 1, 60_000)?;
        check_with(
            "reconnect-max-ms",
            self.reconnect_max_ms,
            self.reconnect_min_ms,
            600_000,
            "at least reconnect-min-ms, at most 600000",
        )?;
        check(
            "max-client-routes",
            self.max_client_routes as u64,
            1,
            1 << 24,
        )?;
        check("inbox-messages", self.inbox_messages as u64, 1, 1 << 24)
    }
}

/// The view-service process: one node of the view service's Raft group (Q1).
#[derive(Clone, Debug)]
pub struct ViewServerConfig {
    /// The decision logic's settings.
    pub view_service: ViewServiceConfig,
    /// Transport bounds.
    pub net: NetConfig,
    /// Where to serve the admin HTTP endpoint and the dashboard (`None`: off).
    pub admin: Option<String>,
    /// Admin endpoints of coordinators, whose request counters the dashboard shows.
    pub coordinator_admin: Vec<String>,
    /// This node's Raft id (non-zero).
    pub id: u64,
    /// The group's initial membership, id -> address, used when the data directory is empty.
    /// Empty: a single node (id 1 at its own address). A node whose id is not listed joins an
    /// existing group: it waits to be added with `tandem viewserver add-node` (Q5).
    pub peers: BTreeMap<u64, String>,
    /// Where the Raft log is kept (`raft.log`). Required with `peers`; without it a single
    /// node keeps nothing (every restart starts an empty table).
    pub data_dir: Option<PathBuf>,
    /// The address the other nodes, servers and coordinators reach this node at (default:
    /// the bound listen address).
    pub advertise: Option<String>,
    /// Raft tick.
    pub raft_tick_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomized up to twice this).
    pub election_ticks: usize,
    /// Seeds the election jitter; `None` draws one from the OS (the simulator sets its own).
    pub seed: Option<u64>,
}

/// Most members a view-service group is configured with.
pub const MAX_VIEW_SERVICE_PEERS: usize = 64;

impl Default for ViewServerConfig {
    fn default() -> Self {
        let single = NodeConfig::single(VsAddr::new("default"));
        ViewServerConfig {
            view_service: ViewServiceConfig::default(),
            net: NetConfig::default(),
            admin: None,
            coordinator_admin: Vec::new(),
            id: 1,
            peers: BTreeMap::new(),
            data_dir: None,
            advertise: None,
            raft_tick_ms: single.tick_ms,
            election_ticks: single.election_ticks,
            seed: None,
        }
    }
}

impl ViewServerConfig {
    /// Checks every field (addresses must be `HOST:PORT`).
    pub fn validate(&self) -> Result<(), RuntimeError> {
        self.view_service.validate()?;
        self.net.validate()?;
        check("id", self.id, 1, u64::MAX)?;
        check(
            "peers",
            self.peers.len() as u64,
            0,
            MAX_VIEW_SERVICE_PEERS as u64,
        )?;
        for (id, addr) in &self.peers {
            check("peers (id)", *id, 1, u64::MAX)?;
            check_addr("peers", addr)?;
        }
        if let Some(advertise) = &self.advertise {
            check_addr("advertise", advertise)?;
        }
        if !self.peers.is_empty() && self.data_dir.is_none() {
            return Err(RuntimeError::Setting {
                key: "data-dir",
                reason: "is required with --peers: a node of a replicated view service must keep \
                         its votes and log on disk (Q5)"
                    .to_owned(),
            });
        }
        check("raft-tick-ms", self.raft_tick_ms, 1, 10_000)?;
        check("election-ticks", self.election_ticks as u64, 2, 1000)?;
        Ok(())
    }

    /// The Raft node's settings for a node reachable at `addr` (its advertised address),
    /// checking that the own id's entry of `peers` names `addr`.
    pub fn node_config(&self, addr: &str, seed: u64) -> Result<NodeConfig, RuntimeError> {
        let own = VsAddr::new(addr);
        let mut node = NodeConfig::single(own.clone());
        node.id = self.id;
        if !self.peers.is_empty() {
            node.peers = self
                .peers
                .iter()
                .map(|(id, addr)| (*id, VsAddr::new(addr)))
                .collect();
            if let Some(listed) = self.peers.get(&self.id)
                && listed != addr
            {
                return Err(RuntimeError::Setting {
                    key: "peers",
                    reason: format!(
                        "lists node {} at {listed}, but this node is reachable at {addr}: \
                         give the listed address as --listen or --advertise",
                        self.id
                    ),
                });
            }
        } else if self.id != 1 {
            node.peers = BTreeMap::from([(self.id, own)]);
        }
        node.tick_ms = self.raft_tick_ms;
        node.election_ticks = self.election_ticks;
        node.heartbeat_ticks = node.heartbeat_ticks.min(self.election_ticks - 1).max(1);
        node.seed = seed;
        node.view_service = self.view_service.clone();
        node.validate()?;
        Ok(node)
    }
}

/// Checks that `addr` is `HOST:PORT` with a non-empty host of at most 253 bytes and a port.
fn check_addr(key: &'static str, addr: &str) -> Result<(), RuntimeError> {
    let ok = addr.len() <= 260
        && match addr.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty()
                    && !host.contains(char::is_whitespace)
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Setting {
            key,
            reason: format!("{addr:?} is not HOST:PORT (a non-zero port)"),
        })
    }
}

/// A replica server process.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// The core's settings.
    pub replica: ReplicaConfig,
    /// Transport bounds.
    pub net: NetConfig,
    /// The replica group served.
    pub group: GroupId,
    /// Where to serve the admin HTTP endpoint (`None`: off).
    pub admin: Option<String>,
}

impl ServerConfig {
    /// Checks every field.
    ///
    /// L13, L14: a maximal value must fit in one reply and a reply in one frame, with room
    /// for the message around it; a maximal value is at most a quarter of a frame.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.replica.validate()?;
        self.net.validate()?;
        let frame = self.net.max_frame_bytes as u64;
        check_with(
            "max-reply-bytes",
            self.replica.max_reply_bytes,
            1024,
            frame.saturating_sub(frame / 8),
            "at most 7/8 of max-frame-bytes",
        )?;
        check_with(
            "proto-max-bulk-len",
            self.replica.max_value_bytes,
            1024,
            frame / 4,
            "1 KiB to a quarter of max-frame-bytes",
        )
    }
}

/// The Redis-protocol coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Each session's settings (C1, C3).
    pub clerk: ClerkConfig,
    /// Transport bounds towards servers and the view service.
    pub net: NetConfig,
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Most commands of one pipeline sent as one request.
    pub max_batch_commands: usize,
    /// Most argument bytes of one pipeline sent as one request (keeps a request below the
    /// frame limit).
    pub max_batch_bytes: usize,
    /// RESP parser bounds for client connections.
    pub resp_limits: Limits,
    /// How often the cached view (INFO, new sessions) is refreshed from the view service.
    pub view_refresh_ms: u64,
    /// Where to serve the admin HTTP endpoint (`None`: off).
    pub admin: Option<String>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            clerk: ClerkConfig::default(),
            net: NetConfig::default(),
            max_connections: 10_000,
            max_batch_commands: 1024,
            max_batch_bytes: 8 << 20,
            resp_limits: Limits {
                max_bulk_bytes: 16 << 20,
                max_args: 1 << 20,
                max_inline_bytes: 64 << 10,
                max_buffer_bytes: 48 << 20,
            },
            view_refresh_ms: 1000,
            admin: None,
        }
    }
}

impl CoordinatorConfig {
    /// Checks every field; a single value must fit in one internal frame.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.clerk.validate()?;
        self.net.validate()?;
        check("max-connections", self.max_connections as u64, 1, 1 << 20)?;
        check(
            "max-batch-commands",
            self.max_batch_commands as u64,
            1,
            1 << 16,
        )?;
        let frame = self.net.max_frame_bytes as u64;
        check_with(
            "max-batch-bytes",
            self.max_batch_bytes as u64,
            1,
            frame / 2,
            "1 to half of max-frame-bytes",
        )?;
        check_with(
            "max-bulk-bytes",
            self.resp_limits.max_bulk_bytes as u64,
            1,
            frame / 2,
            "1 to half of max-frame-bytes",
        )?;
        check("view-refresh-ms", self.view_refresh_ms, 10, 3_600_000)
    }
}
