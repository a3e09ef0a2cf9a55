//! The in-memory mirror of a node's Raft log that raft-rs reads through its `Storage` trait.
//! Writes go through the node core, which mirrors each of them as a [`DiskOp`] for the driver to
//! make durable; this type never touches a disk.

use std::cell::Cell;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::disk::DiskState;

/// Raft's view of the log: the latest snapshot, the entries after it, the hard state.
#[derive(Debug, Default)]
pub struct LogStore {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Entries after the snapshot, consecutive.
    entries: Vec<Entry>,
    /// Set when raft asked for a snapshot newer than the one held: the node builds one.
    snapshot_wanted: Cell<bool>,
}

/// A stored log that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("stored raft state does not decode: {0}")]
pub struct DecodeError(pub String);

impl LogStore {
    /// A store rebuilt from what the driver read from disk.
    pub fn recover(disk: &DiskState) -> Result<LogStore, DecodeError> {
        let mut store = LogStore::default();
        if let Some((_, _, bytes)) = &disk.snapshot {
            let snapshot =
                Snapshot::parse_from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))?;
            store.conf_state = snapshot.get_metadata().get_conf_state().clone();
            store.snapshot = snapshot;
        }
        for bytes in &disk.entries {
            let entry = Entry::parse_from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))?;
            let expected = store.last_index() + 1;
            if entry.index != expected {
                return Err(DecodeError(format!(
                    "entry {} where {expected} was expected",
                    entry.index
                )));
            }
            store.entries.push(entry);
        }
        let (term, vote, commit) = disk.hard_state;
        store.hard_state.term = term;
        store.hard_state.vote = vote;
        store.hard_state.commit = commit.min(store.last_index());
        Ok(store)
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// The hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The membership as of the latest snapshot or applied change.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot.
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Entries held in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Sets the membership (after a conf change is applied).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Appends entries, replacing any stored suffix they overlap.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let offset = self.snapshot_index() + 1;
        if first.index < offset {
            // Already covered by the snapshot: keep only what follows it.
            let skip = (offset - first.index) as usize;
            if skip >= entries.len() {
                return;
            }
            return self.append(&entries[skip..]);
        }
        let keep = (first.index - offset) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot received from the leader: everything before it is gone.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.entries.retain(|e| e.index > meta.index);
        if self
            .entries
            .first()
            .is_some_and(|e| e.index != meta.index + 1)
        {
            self.entries.clear();
        }
        self.snapshot = snapshot;
    }

    /// Replaces the snapshot with one the node built at an applied index, and drops the entries
    /// it covers except the last `keep` (so that a follower slightly behind still catches up from
    /// the log).
    pub fn compact(&mut self, snapshot: Snapshot, keep: usize) {
        let index = snapshot.get_metadata().index;
        self.snapshot = snapshot;
        self.snapshot_wanted.set(false);
        let covered = self.entries.iter().take_while(|e| e.index <= index).count();
        let drop = covered.saturating_sub(keep);
        // Entries kept before the snapshot index stay readable (raft can still send them).
        self.entries.drain(..drop);
    }

    /// Whether raft asked for a newer snapshot than the one held.
    pub fn snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.get()
    }

    /// The first index raft may read.
    fn first(&self) -> u64 {
        self.entries
            .first()
            .map_or(self.snapshot_index() + 1, |e| e.index)
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = self.first();
        let mut entries = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        let offset = self.first();
        if idx < offset {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entries.get((idx - offset) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(LogStore::last_index(self))
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // raft-rs ignores a snapshot whose membership does not list the receiver (a node just
        // added): such a node needs one taken after its addition was applied.
        let cs = self.snapshot.get_metadata().get_conf_state();
        let lists_receiver = cs.voters.contains(&to) || cs.learners.contains(&to);
        if self.snapshot_index() < request_index || self.snapshot_index() == 0 || !lists_receiver {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
