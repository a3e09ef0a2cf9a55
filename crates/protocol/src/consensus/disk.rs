//! What a view-service node keeps on disk, as values: the core emits [`DiskOp`]s in a
//! [`Persist`] request, the driver makes them durable (a file in the runtime, a simulated disk in
//! the simulator) and reports back with `persisted`. On restart the driver replays the ops it
//! kept into a [`DiskState`] and hands that to the core. The byte format of the file is the
//! driver's; the meaning of the ops is defined here, once, for both drivers (the Q rules
//! of the replicated view service: docs/PROTOCOL.md, Q5).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One durable change, applied in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskOp {
    /// Raft's hard state (term, vote, commit index) replaces the stored one.
    HardState {
        /// Current term.
        term: u64,
        /// Who this node voted for in `term` (0: nobody).
        vote: u64,
        /// Highest index known committed.
        commit: u64,
    },
    /// Log entries from `first_index` on, each a protobuf-encoded `eraftpb::Entry`. Every stored
    /// entry at or after `first_index` is replaced (a new leader may overwrite a suffix).
    Entries {
        /// Index of `entries[0]`.
        first_index: u64,
        /// The encoded entries, consecutive.
        entries: Vec<Bytes>,
    },
    /// A snapshot of the state machine at `index`, a protobuf-encoded `eraftpb::Snapshot`.
    /// Entries up to `index` are dropped; later entries are kept if they follow it.
    Snapshot {
        /// Last log index the snapshot covers.
        index: u64,
        /// Term of that entry.
        term: u64,
        /// The encoded snapshot (metadata and data).
        snapshot: Bytes,
    },
}

/// A batch of [`DiskOp`]s the core needs durable before it goes on. The driver writes them in
/// order, syncs when `sync` is set, then calls the core's `persisted(now, id)`. Requests are
/// completed in the order they were polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Identifies the request in `persisted`.
    pub id: u64,
    /// The changes, in order.
    pub ops: Vec<DiskOp>,
    /// Whether the driver must sync before reporting. Always true, except with the planted bug
    /// `vs-skips-sync`.
    pub sync: bool,
}

/// A stored state that does not make sense: the driver refuses to start on it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DiskError {
    /// Entries do not follow what is stored.
    #[error("log entries start at index {first_index} but the stored log ends at {last_index}")]
    Gap {
        /// First index of the rejected batch.
        first_index: u64,
        /// Last stored index.
        last_index: u64,
    },
}

/// Everything a node has on disk, rebuilt by replaying its [`DiskOp`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskState {
    /// `(term, vote, commit)`.
    pub hard_state: (u64, u64, u64),
    /// The latest snapshot, `(index, term, encoded)`.
    pub snapshot: Option<(u64, u64, Bytes)>,
    /// Index of `entries[0]` (one past the snapshot when there is one).
    pub first_index: u64,
    /// Encoded entries, consecutive from `first_index`.
    pub entries: Vec<Bytes>,
}

impl DiskState {
    /// Whether nothing was ever stored (a node that has to bootstrap or join).
    pub fn is_empty(&self) -> bool {
        self.hard_state == (0, 0, 0) && self.snapshot.is_none() && self.entries.is_empty()
    }

    /// The index after the last stored entry (or after the snapshot).
    fn end_index(&self) -> u64 {
        self.first_index.max(1) + self.entries.len() as u64
    }

    /// Applies one op.
    pub fn apply(&mut self, op: &DiskOp) -> Result<(), DiskError> {
        match op {
            DiskOp::HardState { term, vote, commit } => {
                self.hard_state = (*term, *vote, *commit);
            }
            DiskOp::Entries {
                first_index,
                entries,
            } => {
                if self.entries.is_empty() && self.snapshot.is_none() && self.first_index == 0 {
                    self.first_index = *first_index;
                }
                let start = self.first_index.max(1);
                if *first_index > self.end_index() || *first_index < start {
                    // Entries before our first index are covered by the snapshot: keep those
                    // that follow it.
                    if *first_index < start && *first_index + entries.len() as u64 > start {
                        let skip = (start - first_index) as usize;
                        self.entries.clear();
                        self.entries.extend(entries[skip..].iter().cloned());
                        return Ok(());
                    }
                    if *first_index < start {
                        return Ok(());
                    }
                    return Err(DiskError::Gap {
                        first_index: *first_index,
                        last_index: self.end_index() - 1,
                    });
                }
                self.entries.truncate((first_index - start) as usize);
                self.entries.extend(entries.iter().cloned());
            }
            DiskOp::Snapshot {
                index,
                term,
                snapshot,
            } => {
                let start = self.first_index.max(1);
                let keep_from = index + 1;
                if keep_from >= start && keep_from <= self.end_index() {
                    self.entries.drain(..(keep_from - start) as usize);
                } else {
                    self.entries.clear();
                }
                self.first_index = keep_from;
                self.snapshot = Some((*index, *term, snapshot.clone()));
            }
        }
        Ok(())
    }

    /// The ops that rebuild this state from nothing: what a driver writes when it rewrites its
    /// file to drop what a snapshot made obsolete.
    pub fn to_ops(&self) -> Vec<DiskOp> {
        let mut ops = Vec::new();
        if let Some((index, term, snapshot)) = &self.snapshot {
            ops.push(DiskOp::Snapshot {
                index: *index,
                term: *term,
                snapshot: snapshot.clone(),
            });
        }
        if !self.entries.is_empty() {
            ops.push(DiskOp::Entries {
                first_index: self.first_index.max(1),
                entries: self.entries.clone(),
            });
        }
        let (term, vote, commit) = self.hard_state;
        ops.push(DiskOp::HardState { term, vote, commit });
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(first_index: u64, n: u64) -> DiskOp {
        DiskOp::Entries {
            first_index,
            entries: (first_index..first_index + n)
                .map(|i| Bytes::from(i.to_string()))
                .collect(),
        }
    }

    #[test]
    fn entries_append_overwrite_and_compact() {
        let mut state = DiskState::default();
        state.apply(&entries(1, 5)).unwrap();
        assert_eq!(state.entries.len(), 5);
        state.apply(&entries(4, 3)).unwrap(); // a new leader overwrites 4 and 5, adds 6
        assert_eq!(state.entries.len(), 6);
        assert!(state.apply(&entries(9, 1)).is_err());
        state
            .apply(&DiskOp::Snapshot {
                index: 3,
                term: 1,
                snapshot: Bytes::new(),
            })
            .unwrap();
        assert_eq!(state.first_index, 4);
        assert_eq!(
            state.entries,
            vec![Bytes::from("4"), Bytes::from("5"), Bytes::from("6")]
        );
        let mut rebuilt = DiskState::default();
        for op in state.to_ops() {
            rebuilt.apply(&op).unwrap();
        }
        assert_eq!(rebuilt, state);
        state
            .apply(&DiskOp::Snapshot {
                index: 10,
                term: 2,
                snapshot: Bytes::new(),
            })
            .unwrap();
        assert!(state.entries.is_empty());
        assert_eq!(state.first_index, 11);
        state.apply(&entries(11, 2)).unwrap();
        assert_eq!(state.entries.len(), 2);
    }
}
