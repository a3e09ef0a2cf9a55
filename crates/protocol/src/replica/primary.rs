//! What only the primary keeps: each backup's progress, the commit point, requests waiting for
//! confirmation, and outgoing state transfers.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::ids::{ClientId, OpIndex, Seq, ServerId};
use crate::message::{SnapshotEnd, Transfer};
use crate::replica::state::ReplicatedState;

/// Where a backup stands from the primary's point of view.
#[derive(Debug)]
pub(crate) enum Phase {
    /// We do not know where its history ends yet: we send probes.
    Probe,
    /// Its history is a prefix of ours ending at `matched`: we stream entries after `sent`.
    Stream,
    /// Its history is not a prefix of ours: we copy our state to it (P6).
    Transfer(Box<OutgoingTransfer>),
}

/// One backup's progress.
#[derive(Debug)]
pub(crate) struct Progress {
    pub phase: Phase,
    /// Highest index the backup confirmed holding, in our history.
    pub matched: OpIndex,
    /// Highest index sent to it.
    pub sent: OpIndex,
    /// When we last sent anything to it.
    pub last_send_ms: u64,
    /// When its confirmed position last moved forward (or the phase started).
    pub last_progress_ms: u64,
    /// Counted when deciding what is committed. Backups that were members of the previous view
    /// count from the start; a new backup counts once it holds everything committed.
    pub in_quorum: bool,
}

impl Progress {
    pub fn new(in_quorum: bool, now_ms: u64) -> Progress {
        Progress {
            phase: Phase::Probe,
            matched: OpIndex(0),
            sent: OpIndex(0),
            last_send_ms: 0,
            last_progress_ms: now_ms,
            in_quorum,
        }
    }

    /// Holds a confirmed prefix of our history and everything committed: the primary may
    /// acknowledge its view once every backup is synced (P6, V6).
    pub fn synced(&self, commit: OpIndex) -> bool {
        matches!(self.phase, Phase::Stream) && self.matched >= commit && self.in_quorum
    }
}

/// Where a chunk of a transfer starts. The snapshot never changes, so a chunk is rebuilt
/// from its start when it must be resent, instead of being kept: keeping every unacknowledged
/// chunk cost a copy of each and fresh memory for the refcount headers of the copied keys
/// and values (a 1 GB transfer faulted in ~2 GB on the primary).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChunkStart {
    /// Last key sent before this chunk.
    key_cursor: Option<Bytes>,
    keys_done: bool,
    /// Last session sent before this chunk.
    client_cursor: Option<ClientId>,
}

/// A state transfer to one backup, in bounded chunks (P6).
#[derive(Debug)]
pub(crate) struct OutgoingTransfer {
    pub id: u64,
    /// The state as it was when the transfer started; later entries stream after it.
    pub snapshot: ReplicatedState,
    /// Where the next new chunk starts.
    next_start: ChunkStart,
    pub next_chunk: u32,
    /// Chunks sent but not acknowledged, by where they start, for resending.
    pub unacked: BTreeMap<u32, ChunkStart>,
    pub finished: bool,
}

impl OutgoingTransfer {
    pub fn new(id: u64, snapshot: ReplicatedState) -> OutgoingTransfer {
        OutgoingTransfer {
            id,
            snapshot,
            next_start: ChunkStart::default(),
            next_chunk: 0,
            unacked: BTreeMap::new(),
            finished: false,
        }
    }

    /// Builds the next chunk: keys first, then sessions, the last chunk marked `done`.
    pub fn next_chunk(
        &mut self,
        view: crate::ids::ViewNum,
        chunk_bytes: usize,
    ) -> Option<Transfer> {
        if self.finished {
            return None;
        }
        let start = self.next_start.clone();
        let (transfer, next) = self.build(&start, self.next_chunk, view, chunk_bytes);
        self.finished = transfer.done.is_some();
        self.next_start = next;
        self.unacked.insert(self.next_chunk, start);
        self.next_chunk += 1;
        Some(transfer)
    }

    /// Every unacknowledged chunk again, rebuilt from the snapshot.
    pub fn resend(&self, view: crate::ids::ViewNum, chunk_bytes: usize) -> Vec<Transfer> {
        self.unacked
            .iter()
            .map(|(chunk, start)| self.build(start, *chunk, view, chunk_bytes).0)
            .collect()
    }

    /// Chunk number `chunk`, starting at `start`, and where the one after it starts.
    fn build(
        &self,
        start: &ChunkStart,
        chunk: u32,
        view: crate::ids::ViewNum,
        chunk_bytes: usize,
    ) -> (Transfer, ChunkStart) {
        let mut transfer = Transfer {
            view,
            transfer_id: self.id,
            chunk,
            entries: Vec::new(),
            clients: Vec::new(),
            done: None,
        };
        let mut next = start.clone();
        if !start.keys_done {
            let keys =
                self.snapshot
                    .store
                    .chunk_after(start.key_cursor.as_ref(), chunk_bytes, 65_536);
            next.keys_done = keys.done;
            if keys.last_key.is_some() {
                next.key_cursor = keys.last_key;
            }
            transfer.entries = keys.entries;
        } else {
            const CLIENTS_PER_CHUNK: usize = 4096;
            let clients: Vec<_> = match start.client_cursor {
                None => self
                    .snapshot
                    .clients
                    .iter()
                    .take(CLIENTS_PER_CHUNK)
                    .map(|(c, r)| (*c, r.clone()))
                    .collect(),
                Some(after) => self
                    .snapshot
                    .clients
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(CLIENTS_PER_CHUNK)
                    .map(|(c, r)| (*c, r.clone()))
                    .collect(),
            };
            if clients.len() < CLIENTS_PER_CHUNK {
                transfer.done = Some(SnapshotEnd {
                    last: self.snapshot.last,
                    clock_ms: self.snapshot.clock_ms,
                });
            }
            if let Some((last, _)) = clients.last() {
                next.client_cursor = Some(*last);
            }
            transfer.clients = clients;
        }
        (transfer, next)
    }
}

/// A coordinator request waiting for its operation to be confirmed by every backup.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub seq: Seq,
    pub index: OpIndex,
    pub deadline_ms: u64,
}

/// The requests waiting for confirmation, indexed three ways so that the per-operation work
/// (answering what the commit point now covers, the next deadline) never scans every waiting
/// session: with thousands of client connections a scan per operation was quadratic.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_client: BTreeMap<ClientId, Waiting>,
    by_index: BTreeSet<(OpIndex, ClientId)>,
    by_deadline: BTreeSet<(u64, ClientId)>,
}

impl Waiters {
    /// Records that `client` waits; replaces what it waited for before (one request per
    /// session at a time, P8).
    pub fn insert(&mut self, client: ClientId, waiting: Waiting) {
        self.remove(client);
        self.by_index.insert((waiting.index, client));
        self.by_deadline.insert((waiting.deadline_ms, client));
        self.by_client.insert(client, waiting);
    }

    /// Stops waiting for `client`.
    pub fn remove(&mut self, client: ClientId) -> Option<Waiting> {
        let old = self.by_client.remove(&client)?;
        self.by_index.remove(&(old.index, client));
        self.by_deadline.remove(&(old.deadline_ms, client));
        Some(old)
    }

    /// Removes and returns every request whose operation is at or before `commit`, in log
    /// order.
    pub fn take_through(&mut self, commit: OpIndex) -> Vec<(ClientId, Seq)> {
        self.take_while(|w| {
            let &(index, client) = w.by_index.first()?;
            (index <= commit).then_some(client)
        })
    }

    /// Removes and returns every request whose deadline is at or before `now_ms`.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<(ClientId, Seq)> {
        self.take_while(|w| {
            let &(deadline_ms, client) = w.by_deadline.first()?;
            (deadline_ms <= now_ms).then_some(client)
        })
    }

    /// Removes the sessions `next` names, one at a time, until it names none.
    fn take_while(&mut self, next: impl Fn(&Waiters) -> Option<ClientId>) -> Vec<(ClientId, Seq)> {
        let mut taken = Vec::new();
        while let Some(client) = next(self) {
            let waiting = self.remove(client).expect("indexes match by_client");
            taken.push((client, waiting.seq));
        }
        taken
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|&(at, _)| at)
    }

    /// Removes and returns every waiting request, in client order.
    pub fn take_all(&mut self) -> Vec<(ClientId, Seq)> {
        self.by_index.clear();
        self.by_deadline.clear();
        std::mem::take(&mut self.by_client)
            .into_iter()
            .map(|(client, w)| (client, w.seq))
            .collect()
    }
}

/// The primary's own bookkeeping.
#[derive(Debug)]
pub(crate) struct PrimaryState {
    pub backups: BTreeMap<ServerId, Progress>,
    /// Highest index confirmed by every backup in the quorum: answered operations.
    pub commit: OpIndex,
    pub waiting: Waiters,
    pub next_expiry_ms: u64,
}

impl PrimaryState {
    /// What every counted backup holds (everything we hold, with no counted backup).
    pub fn quorum_commit(&self, last: OpIndex) -> OpIndex {
        self.backups
            .values()
            .filter(|p| p.in_quorum)
            .map(|p| p.matched)
            .min()
            .unwrap_or(last)
    }

    /// Every backup synced: the view may be acknowledged (V6, P6).
    pub fn all_synced(&self) -> bool {
        self.backups.values().all(|p| p.synced(self.commit))
    }
}
