//! The replicated view service: a Raft group (raft-rs) whose state machine is the view table.
//! See docs/PROTOCOL.md (Q1-Q5) and ARCHITECTURE.md "The replicated view service".
//!
//! - [`node`]: one node, driven by the core contract plus `poll_persist`/`persisted`.
//! - [`storage`]: the in-memory log raft-rs reads.
//! - [`disk`]: what a node keeps on disk, as ops both drivers replay the same way.

pub mod disk;
pub mod node;
pub mod storage;

pub use disk::{DiskError, DiskOp, DiskState, Persist};
pub use node::{NodeConfig, NodeError, NodeEvent, NodeStats, ViewServiceNode};
