//! The replication protocol of tandem as state machines without I/O.
//!
//! # Layout
//! - [`ids`]: identifier newtypes (`ServerId`, `GroupId`, `ViewNum`, ...).
//! - [`view`]: a view (primary and backups of a group).
//! - [`message`]: every message between roles, and `Transmit` (a message plus its destination).
//! - [`view_service`]: the view service core (rules V1-V9), with durable decisions as events.
//! - [`replica`]: the server core (rules P1-P8): primary ordering, forwarding, state transfer.
//! - [`clerk`]: the coordinator core (rules C1, C3).
//! - [`config`]: one configuration struct per role, with `validate()`.
//! - [`bug`]: protocol bugs the simulator can plant to prove its checkers work.
//! - [`time`], [`rng`]: time as an input, and a deterministic random generator.
//!
//! Architecture invariant: nothing here reads a clock, opens a socket, spawns a thread or draws
//! OS randomness. Every input carries `now`; every output is a value the caller polls.

pub mod bug;
pub mod clerk;
pub mod config;
pub mod ids;
pub mod message;
pub mod replica;
pub mod rng;
pub mod time;
pub mod view;
pub mod view_service;

pub use bug::{Bug, Bugs};
pub use clerk::{Clerk, Completion, Outcome};
pub use config::{ClerkConfig, ConfigError, ReplicaConfig, ViewServiceConfig};
pub use ids::{ClientId, GroupId, Incarnation, LogPos, OpIndex, Seq, ServerId, ViewNum};
pub use message::{Endpoint, GroupStatus, Message, ServerHealth, Status, Transmit, ViewChange};
pub use replica::{Replica, RoleKind};
pub use time::Now;
pub use view::View;
pub use view_service::{ViewEvent, ViewService, ViewTable};
