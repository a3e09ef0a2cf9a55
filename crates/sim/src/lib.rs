//! The deterministic simulator of tandem.
//!
//! # Layout
//! - [`net`]: the simulated network (delay, loss, duplication, reordering, partitions).
//! - [`cluster`]: the harness: the replicated view service (Raft nodes with simulated disks),
//!   servers and client sessions on virtual time.
//! - [`history`]: recorded operations and the invariants checked on every step.
//! - [`ledger`]: committed configurations and executions per slot (S3-S6).
//! - [`model`]: the key/value store as a sequential model, per key, for the linearizability
//!   checker.
//! - [`workload`]: random client commands over a few keys.
//! - [`faults`]: random fault schedules.
//! - [`run`]: one seeded run with every checker, and sweeps over many seeds.
//! - [`catch`]: a panic inside one seed's run becomes a violation of that seed.
//!
//! Architecture invariant: everything derives from one seed; no clock, thread or OS randomness
//! is consulted, so a seed replays a run exactly.

pub mod catch;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod hostile;
pub mod ledger;
pub mod model;
pub mod net;
pub mod run;
pub mod workload;

pub use catch::{CaughtPanic, PanicPrint, catch_panic};
pub use cluster::{Cluster, ClusterConfig, Workload};
pub use net::{NetConfig, NodeId};
pub use run::{RunOptions, RunReport, run_seed, run_seed_traced};
