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
    /// Bytes queued per outbound connection (or per inbound reply path), besides the frame
    /// count; an empty queue always takes one frame (I6).
    pub send_queue_bytes: usize,
    /// Bytes of received messages waiting for the task owning a core; a connection reading
    /// more waits (I6).
    pub inbox_bytes: usize,
    /// Mutual TLS on every internal connection (I2); `None` is insecure mode: plain TCP, and
    /// frames are checked only against the sender they claim.
    pub tls: Option<crate::tls::PeerTls>,
    /// An inbound connection must finish its TLS handshake within this (I6).
    pub handshake_timeout_ms: u64,
    /// Most inbound connections not yet authenticated at once; more are closed at once (I6).
    pub max_handshaking_connections: usize,
    /// A frame that has started arriving must complete within this, or the connection is
    /// closed (I6).
    pub frame_timeout_ms: u64,
    /// Most inbound connections not yet authenticated from one source IP address (I6).
    pub max_handshaking_per_ip: usize,
    /// Most authenticated inbound connections from one source IP address (I6).
    pub max_inbound_per_ip: usize,
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
            send_queue_bytes: 64 << 20,
            inbox_bytes: 256 << 20,
            tls: None,
            handshake_timeout_ms: 5_000,
            max_handshaking_connections: 64,
            frame_timeout_ms: 10_000,
            max_handshaking_per_ip: 16,
            max_inbound_per_ip: 64,
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
        check("inbox-messages", self.inbox_messages as u64, 1, 1 << 24)?;
        check(
            "handshake-timeout-ms",
            self.handshake_timeout_ms,
            10,
            600_000,
        )?;
        check(
            "max-handshaking-connections",
            self.max_handshaking_connections as u64,
            1,
            1 << 20,
        )?;
        check("frame-timeout-ms", self.frame_timeout_ms, 10, 3_600_000)?;
        check_with(
            "max-handshaking-per-ip",
            self.max_handshaking_per_ip as u64,
            1,
            self.max_handshaking_connections as u64,
            "at least 1, at most max-handshaking-connections",
        )?;
        check_with(
            "max-inbound-per-ip",
            self.max_inbound_per_ip as u64,
            1,
            self.max_inbound_connections as u64,
            "at least 1, at most max-inbound-connections",
        )?;
        check(
            "send-queue-bytes",
            self.send_queue_bytes as u64,
            1024,
            1 << 40,
        )?;
        check("inbox-bytes", self.inbox_bytes as u64, 1024, 1 << 40)
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
    /// Bearer token the admin endpoint asks for on every route but `/healthz`; required to
    /// bind `admin` on an address that is not loopback (L8).
    pub admin_token: Option<String>,
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
            admin_token: None,
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
    /// Bearer token the admin endpoint asks for on every route but `/healthz`; required to
    /// bind `admin` on an address that is not loopback (L8).
    pub admin_token: Option<String>,
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
    /// Bearer token the admin endpoint asks for on every route but `/healthz`; required to
    /// bind `admin` on an address that is not loopback (L8).
    pub admin_token: Option<String>,
    /// TLS for clients (L5): a second, TLS-only listener beside the plain one (`None`: off).
    pub tls: Option<ClientTlsConfig>,
    /// An unfinished request must be complete within this long, else the connection gets an
    /// error and is closed (L3).
    pub unfinished_request_timeout_ms: u64,
    /// A client that sends nothing for this long is closed; 0: never (Redis's `timeout`) (L3).
    pub client_idle_timeout_s: u64,
    /// Bytes of unfinished requests buffered across all client connections (L6).
    pub max_total_query_bytes: usize,
    /// Largest reply sent; a larger one is answered with an error instead (L7).
    pub max_reply_bytes: usize,
    /// `--requirepass`: the default user's password, set through the cluster at start while
    /// the default user has none (A9).
    pub requirepass: Option<String>,
    /// `--protected-mode`: while the default user needs no password, refuse clients from
    /// non-loopback addresses with Redis's `-DENIED` (A10).
    pub protected_mode: bool,
}

/// Who must show a client certificate on the TLS port (Redis's `tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    /// No client certificate asked for.
    No,
    /// A client certificate, if shown, must be signed by the CA.
    Optional,
    /// Every client must show a certificate signed by the CA (the default when a CA is given).
    #[default]
    Yes,
}

/// The coordinator's TLS port (L5).
#[derive(Clone, Debug)]
pub struct ClientTlsConfig {
    /// Where to accept TLS clients.
    pub listen: String,
    /// The server certificate chain (PEM).
    pub cert: PathBuf,
    /// The certificate's private key (PEM).
    pub key: PathBuf,
    /// The CA that signs client certificates (PEM); without it no client certificate is asked.
    pub ca: Option<PathBuf>,
    /// Whether clients must show a certificate (only with `ca`).
    pub auth_clients: TlsAuthClients,
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
            admin_token: None,
            tls: None,
            unfinished_request_timeout_ms: 30_000,
            client_idle_timeout_s: 0,
            max_total_query_bytes: 512 << 20,
            max_reply_bytes: 64 << 20,
            requirepass: None,
            protected_mode: true,
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
        check(
            "unfinished-request-timeout-ms",
            self.unfinished_request_timeout_ms,
            10,
            3_600_000,
        )?;
        check("timeout", self.client_idle_timeout_s, 0, 365 * 86_400)?;
        check_with(
            "max-total-query-bytes",
            self.max_total_query_bytes as u64,
            self.resp_limits.max_buffer_bytes as u64,
            1 << 40,
            "at least one connection's query buffer limit",
        )?;
        check(
            "max-reply-bytes",
            self.max_reply_bytes as u64,
            1024,
            1 << 32,
        )?;
        check("view-refresh-ms", self.view_refresh_ms, 10, 3_600_000)
    }
}
