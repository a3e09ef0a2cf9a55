//! One configuration struct per runtime role, with defaults and `validate()`. The protocol
//! cores' own settings (`ViewServiceConfig`, `ReplicaConfig`, `ClerkConfig`) are embedded; this
//! file adds the bounds of the shell itself: frames, connections, queues.

use tandem_protocol::config::{check, check_with};
use tandem_protocol::{ClerkConfig, ConfigError, GroupId, ReplicaConfig, ViewServiceConfig};
use tandem_resp::Limits;

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

/// The view-service process.
#[derive(Clone, Debug, Default)]
pub struct ViewServerConfig {
    /// The core's settings.
    pub view_service: ViewServiceConfig,
    /// Transport bounds.
    pub net: NetConfig,
    /// Where to serve the admin HTTP endpoint and the dashboard (`None`: off).
    pub admin: Option<String>,
    /// Admin endpoints of coordinators, whose request counters the dashboard shows.
    pub coordinator_admin: Vec<String>,
}

impl ViewServerConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.view_service.validate()?;
        self.net.validate()
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
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.replica.validate()?;
        self.net.validate()
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
