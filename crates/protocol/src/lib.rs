//! The replication protocol of tandem as state machines without I/O.
//!
//! # Driving a core
//! [`ViewService`], [`Replica`] and [`Clerk`] are driven the same way, by the simulator and by
//! the tokio runtime alike. None of them reads a clock or touches a socket: time comes in as a
//! [`Now`], messages come in as values, and everything a core wants done comes out as values the
//! driver polls.
//!
//! Inputs:
//! - `handle(now, from, msg)`: one message received from `from`. A message not meant for the
//!   core is ignored.
//! - `handle_timeout(now)`: timers. Call it when `poll_timeout` is due; calling it early or
//!   more often is harmless.
//! - Inputs that are not messages, only where they are real: [`Clerk::submit`] (a client's
//!   batch of commands) and [`Clerk::server_unreachable`] (the transport gave up on a server).
//!
//! Outputs:
//! - `poll_transmit(now) -> Option<Transmit>`: the next message to send and where. Drain it
//!   until `None` after every input (or, for a replica, after a batch of inputs: forwards are
//!   built there, so a batch's operations travel in one frame). A core answers a request by
//!   addressing a transmit to the request's `from`.
//! - `poll_timeout() -> Option<u64>`: the monotonic millisecond at which `handle_timeout` is
//!   due; `None` when no timer is armed. Ask again after every input.
//! - Core-specific outputs, drained the same way: [`ViewService::poll_event`] (durable
//!   decisions) and [`Clerk::poll_completion`] (finished requests).
//!
//! Order: give the inputs that are ready (every message already received first, then
//! `handle_timeout` if due), then drain every `poll_*` output, then sleep until the next message
//! or `poll_timeout`. Reading every received message before running timers matters: a core must
//! not judge a peer silent whose message is already waiting (V3).
//!
//! Read-only accessors (`view`, `status`, `stats`, ...) serve operators, admin endpoints and
//! tests; drivers never use them to answer messages.
//!
//! # Layout
//! - [`ids`]: identifier newtypes (`ServerId`, `GroupId`, `ViewNum`, ...).
//! - [`view`]: a view (primary and backups of a group) and the typed causes of a view change.
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
pub mod consensus;
pub mod ids;
pub mod locator;
pub mod message;
pub mod replica;
pub mod rng;
pub mod shard;
pub mod time;
pub mod view;
pub mod view_service;

pub use bug::{Bug, Bugs};
pub use clerk::{Clerk, Completion, Outcome};
pub use config::{ClerkConfig, ConfigError, ReplicaConfig, ViewServiceConfig};
pub use ids::{
    ClientId, ConfigNum, GroupId, Incarnation, LogPos, OpIndex, Seq, ServerId, ViewNum, VsAddr,
};
pub use message::{Endpoint, GroupStatus, Message, ServerHealth, Status, Transmit, ViewChange};
pub use replica::{Replica, RoleKind, ShardState};
pub use shard::{ClusterMap, GroupInfo, ShardConfig, SlotMove, SlotRange};
pub use time::Now;
pub use view::{Failure, View, ViewChangeCause};
pub use view_service::{HistoryEntry, ViewEvent, ViewService, ViewTable};
