//! The tokio runtime shell of tandem: it drives the I/O-free protocol cores of
//! `tandem-protocol` with real sockets and clocks, and serves the Redis protocol.
//!
//! The runtime only moves bytes and drives timers: every protocol decision is taken by the
//! cores (`ViewService`, `Replica`, `Clerk`), driven exactly as the simulator drives them:
//! `handle` each message, `handle_timeout` when `poll_timeout` is due, drain `poll_transmit`
//! (the contract is documented once, at the top of `tandem-protocol`).
//!
//! # Layout
//! - [`config`]: one configuration struct per role, with defaults and `validate()`.
//! - [`admin`]: the admin HTTP endpoint (status JSON, Prometheus metrics, probes, dashboard).
//! - [`metrics`]: lock-free counters and histograms, encoded by prometheus-client in the
//!   Prometheus text format.
//! - [`wire`]: internal RPC frames (version, length, CRC-32, postcard [`wire::Envelope`]).
//! - `net` (private): the internal transport: inbound accept loop, outbound links per peer.
//! - [`tls`], [`identity`]: mutual TLS between processes, the cluster certificates, and
//!   which principal may send which frame (I1-I6).
//! - [`view_service`]: the view-service process (one Raft node of the view service) and
//!   [`change_members`], the operator's online membership change.
//! - [`server`]: a replica server process.
//! - [`cluster`]: a server's Redis front end for cluster clients (`--client-listen`).
//! - [`coordinator`]: the Redis-protocol front end and its clerk hub.
//! - [`client`]: a Rust client that talks to the servers directly.
//! - [`status`]: the operator's view of the view service.
//! - [`disk`]: the durable log file of a view-service Raft node (format, sync and
//!   refuse-to-start rules).
//! - [`dev`]: a whole cluster in one process (`tandem dev`, tests).
//! - [`clock`], [`shutdown`], [`error`]: clocks and randomness, graceful shutdown, errors.
//!
//! **Architecture invariant:** no protocol logic here. A message the runtime does not route is
//! dropped, never interpreted.

pub mod admin;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod dev;
pub mod disk;
pub mod error;
pub mod identity;
pub mod metrics;
mod net;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod tls;
pub mod view_service;
pub mod wire;

pub use admin::{AdminListener, AdminSource, http_get, http_get_with_token};
pub use client::{Client, ClientError};
pub use cluster::ClientFront;
pub use config::{CoordinatorConfig, NetConfig, ServerConfig, ViewServerConfig};
pub use coordinator::{Coordinator, run_coordinator};
pub use dev::{DevAdmin, DevCluster, DevOptions};
pub use disk::{DiskFileError, LogFile};
pub use error::RuntimeError;
pub use net::NetStats;
pub use server::{Server, run_server};
pub use shutdown::{Shutdown, ShutdownTrigger, shutdown_channel};
pub use status::{status, status_history, status_history_json, status_json, status_table};
pub use tandem_kv::Reply;
pub use tls::{ClusterCa, PeerTls};
pub use view_service::{ViewServer, change_members, run_view_service};
