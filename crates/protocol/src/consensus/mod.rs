//! The replicated view service: a Raft group (raft-rs) whose state machine is the view table.
//! See docs/PROTOCOL.md (V10-V14) and ARCHITECTURE.md "The replicated view service".

pub mod disk;

pub use disk::{DiskError, DiskOp, DiskState, Persist};
