//! What only the primary keeps: each backup's progress, the commit point, requests waiting for
//! confirmation, and outgoing state transfers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::ReplicaConfig;
use crate::ids::{ClientId, ConfigNum, GroupId, LogPos, OpIndex, Seq, ServerId, ViewNum};
use crate::message::{Forward, LogEntry, Message, Op, SnapshotEnd, Transfer, TransferReply};
use crate::replica::ProtocolError;
use crate::replica::moves::{DropScan, SlotSend};
use crate::replica::state::{RecentLog, ReplicatedState};

/// The primary's view of one backup: a small state machine, as raft-rs's `Progress`. What we
/// know of the backup's history decides what we send it:
///
/// - probing -> streaming: it answered with a position in our log ([`Progress::on_ack`],
///   [`Progress::on_gap`]);
/// - probing or streaming -> transferring: its history is not a prefix of ours, or our log no
///   longer reaches back to it ([`Progress::start_transfer`], P6);
/// - transferring -> streaming: it installed our snapshot ([`Progress::on_transfer_reply`]);
/// - transferring -> transferring: it lost the beginning of the transfer (a fresh one starts).
///
/// A backup starts probing in every view: one that restarted and rejoined must not be trusted
/// for what its predecessor confirmed.
#[derive(Debug)]
pub(crate) struct Progress {
    stage: Stage,
    /// Counted when deciding what is committed. Backups that were members of the previous view
    /// count from the start; a new backup counts once it holds everything committed.
    in_quorum: bool,
    /// When the last state transfer to it started (P10: at most one per retransmit interval).
    transfer_started_ms: Option<u64>,
}

#[derive(Debug)]
enum Stage {
    /// We do not know where its history ends yet: we send probes (empty forwards).
    Probing { probe: Sending },
    /// Its history is a prefix of ours: we stream the entries it lacks.
    Streaming(Streaming),
    /// Its history is not a prefix of ours: we copy our whole state to it (P6).
    Transferring(Transferring),
}

/// Whether something waiting for a reply is sent at the next flush or was sent already.
#[derive(Clone, Copy, Debug)]
enum Sending {
    /// Send at the next flush: nothing was sent yet, or the retransmission timer fired.
    Due,
    /// Last sent at `at_ms`: sent again once `retransmit_ms` pass without the backup moving.
    SentAt { at_ms: u64 },
}

#[derive(Debug)]
struct Streaming {
    /// Highest index it confirmed holding, in our history.
    matched: OpIndex,
    /// Highest index sent to it: the entries after `matched` up to here are in flight.
    sent: OpIndex,
    /// Highest index ever sent to it while streaming (`sent` goes back on a retransmission):
    /// a correct backup never reports a history ending after it (P10).
    max_sent: OpIndex,
    /// When entries were last sent to it (or streaming started). Only read while entries are
    /// in flight, and those were sent since streaming started.
    last_send_ms: u64,
    /// When `matched` last moved forward (or streaming started).
    last_progress_ms: u64,
}

#[derive(Debug)]
struct Transferring {
    transfer: Box<OutgoingTransfer>,
    /// The unacknowledged chunks: resent together when due.
    chunks: Sending,
    /// When the backup last acknowledged chunks (or the transfer started).
    last_progress_ms: u64,
}

/// What the replica's own state offers a backup at a flush.
pub(crate) struct Outbound<'a> {
    /// Our view: the tag of every message (P3).
    pub view: ViewNum,
    /// Where our history ends.
    pub last: LogPos,
    /// Our recent entries.
    pub log: &'a RecentLog,
    /// Batch, window and timer settings.
    pub config: &'a ReplicaConfig,
}

/// Our log no longer reaches back to what a streaming backup holds (it fell further behind than
/// `max_log_entries`): only a state transfer can bring it up to date (P6).
#[derive(Debug)]
pub(crate) struct FellBehindLog;

/// What a forward reply's position means for a backup's progress (P10).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplyCheck {
    /// A position of our history it may hold: take it.
    Take,
    /// Older than what it confirmed and no longer in our log: a late reply, nothing to learn.
    Late,
    /// A probed backup whose history is not a prefix of ours: copy the whole state (P6).
    Diverged,
    /// No correct backup sends it: a streaming backup holds only our entries, up to what we
    /// sent.
    Impossible,
}

/// What a [`TransferReply`] did to a backup's progress.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransferStep {
    /// Not about the transfer in progress (stale, or the backup refused it under P3): nothing
    /// changed.
    Ignored,
    /// The backup acknowledged chunks.
    Acknowledged,
    /// The backup lost the beginning of this transfer (it moved to another view and back, say):
    /// a fresh one must start.
    LostBeginning,
    /// The backup installed our snapshot: it now streams from the snapshot's position.
    Installed,
}

impl Progress {
    /// A backup we know nothing of yet; the next flush probes it.
    pub fn probing(in_quorum: bool) -> Progress {
        Progress {
            stage: Stage::Probing {
                probe: Sending::Due,
            },
            in_quorum,
            transfer_started_ms: None,
        }
    }

    /// P10: what a forward reply saying its history ends at `last` means. `in_log`: our log
    /// holds `last`; `our_last`: where our history ends.
    pub fn check_reply(&self, last: LogPos, in_log: bool, our_last: OpIndex) -> ReplyCheck {
        match &self.stage {
            Stage::Probing { .. } if in_log && last.index <= our_last => ReplyCheck::Take,
            // Its history may be longer than ours or diverge (an old primary's last entries).
            Stage::Probing { .. } => ReplyCheck::Diverged,
            Stage::Streaming(streaming) if last.index > streaming.max_sent => {
                ReplyCheck::Impossible
            }
            Stage::Streaming(_) if in_log => ReplyCheck::Take,
            Stage::Streaming(streaming) if last.index <= streaming.matched => ReplyCheck::Late,
            Stage::Streaming(_) => ReplyCheck::Impossible,
            // A stale reply to a forward sent before the transfer started.
            Stage::Transferring(_) => ReplyCheck::Late,
        }
    }

    /// P10: whether a state transfer may start now: at most one per `min_gap_ms`, so that no
    /// sequence of replies can make the primary copy its whole state over and over.
    pub fn may_start_transfer(&self, now_ms: u64, min_gap_ms: u64) -> bool {
        self.transfer_started_ms
            .is_none_or(|at_ms| now_ms >= at_ms.saturating_add(min_gap_ms))
    }

    /// Counted when deciding what is committed.
    pub fn in_quorum(&self) -> bool {
        self.in_quorum
    }

    /// Highest index it is known to hold in our history. Until it streams we know only that it
    /// holds the empty history, a prefix of every history.
    pub fn matched(&self) -> OpIndex {
        match &self.stage {
            Stage::Streaming(streaming) => streaming.matched,
            Stage::Probing { .. } | Stage::Transferring(_) => OpIndex::ZERO,
        }
    }

    /// Holds a confirmed prefix of our history that contains everything committed.
    pub fn caught_up(&self, commit: OpIndex) -> bool {
        matches!(&self.stage, Stage::Streaming(streaming) if streaming.matched >= commit)
    }

    /// A new backup that caught up starts counting for the commit point. True if it just did.
    pub fn join_quorum_if_caught_up(&mut self, commit: OpIndex) -> bool {
        let joins = !self.in_quorum && self.caught_up(commit);
        self.in_quorum |= joins;
        joins
    }

    /// Counted and caught up: the primary may acknowledge its view once every backup is synced
    /// (P6, V6).
    pub fn synced(&self, commit: OpIndex) -> bool {
        self.in_quorum && self.caught_up(commit)
    }

    /// The log must keep the entries after this index for this backup.
    pub fn log_needed_after(&self) -> OpIndex {
        match &self.stage {
            Stage::Streaming(streaming) => streaming.matched,
            // Whatever it holds may be an old prefix of ours: keep everything we can.
            Stage::Probing { .. } => OpIndex::ZERO,
            // It streams from the snapshot once installed.
            Stage::Transferring(transferring) => transferring.transfer.snapshot.last.index,
        }
    }

    /// The state transfer to it, if one is in progress.
    pub fn transfer(&self) -> Option<&OutgoingTransfer> {
        match &self.stage {
            Stage::Transferring(transferring) => Some(&transferring.transfer),
            Stage::Probing { .. } | Stage::Streaming(_) => None,
        }
    }

    // ---- transitions ----

    /// It holds our history up to `matched`: stream what follows. Reached only through the
    /// replies that tell us so.
    fn become_streaming(&mut self, matched: OpIndex, now_ms: u64) {
        self.stage = Stage::Streaming(Streaming {
            matched,
            sent: matched,
            max_sent: matched,
            last_send_ms: now_ms,
            last_progress_ms: now_ms,
        });
    }

    /// Copies our state to it (P6); the chunks go at the next flush. Only
    /// `Replica::start_transfer` calls this, which draws the id and takes the snapshot.
    pub fn start_transfer(&mut self, transfer: OutgoingTransfer, now_ms: u64) {
        self.transfer_started_ms = Some(now_ms);
        self.stage = Stage::Transferring(Transferring {
            transfer: Box::new(transfer),
            chunks: Sending::Due,
            last_progress_ms: now_ms,
        });
    }

    /// It applied a forward and its history ends at `last`, a position of our log (the caller
    /// checked that, and that it is not after our end).
    pub fn on_ack(&mut self, last: OpIndex, now_ms: u64) {
        match &mut self.stage {
            Stage::Probing { .. } => self.become_streaming(last, now_ms),
            Stage::Streaming(streaming) => streaming.confirm(last, now_ms),
            // A stale reply to a forward sent before the transfer started.
            Stage::Transferring(_) => {}
        }
    }

    /// A forward did not follow its history, which ends at `last`, a position of our log (a
    /// batch was lost or overtaken): resend everything after what it confirmed.
    pub fn on_gap(&mut self, last: OpIndex, now_ms: u64) {
        match &mut self.stage {
            Stage::Probing { .. } => self.become_streaming(last, now_ms),
            Stage::Streaming(streaming) => {
                streaming.confirm(last, now_ms);
                streaming.sent = streaming.matched;
            }
            Stage::Transferring(_) => {}
        }
    }

    /// Takes a backup's answer to transfer chunks. A reply that cannot come from a correct
    /// backup is an error, and changes nothing.
    pub fn on_transfer_reply(
        &mut self,
        reply: &TransferReply,
        now_ms: u64,
    ) -> Result<TransferStep, ProtocolError> {
        let Stage::Transferring(transferring) = &mut self.stage else {
            return Ok(TransferStep::Ignored);
        };
        let transfer = &mut transferring.transfer;
        if transfer.id != reply.transfer_id {
            return Ok(TransferStep::Ignored);
        }
        let Some(next_chunk) = reply.next_chunk else {
            return Ok(TransferStep::Ignored);
        };
        if next_chunk > transfer.chunks_sent() {
            return Err(ProtocolError::TransferChunkNeverSent {
                chunk: next_chunk,
                sent: transfer.chunks_sent(),
            });
        }
        match reply.installed {
            None if transfer
                .first_unacknowledged()
                .is_some_and(|first| next_chunk < first) =>
            {
                Ok(TransferStep::LostBeginning)
            }
            None => {
                transfer.acknowledge_before(next_chunk);
                transferring.last_progress_ms = now_ms;
                Ok(TransferStep::Acknowledged)
            }
            // P6: a correct backup installs exactly the snapshot we sent.
            Some(installed) if installed != transfer.snapshot.last => {
                Err(ProtocolError::TransferInstalledElsewhere {
                    installed,
                    snapshot: transfer.snapshot.last,
                })
            }
            Some(installed) => {
                self.become_streaming(installed.index, now_ms);
                Ok(TransferStep::Installed)
            }
        }
    }

    // ---- timers ----

    /// When something sent to it goes unanswered long enough to be sent again; `None` if
    /// nothing waits for a reply, or if the next flush sends anyway.
    pub fn next_wake_ms(&self, retransmit_ms: u64) -> Option<u64> {
        let quiet_since_ms = match &self.stage {
            Stage::Probing {
                probe: Sending::SentAt { at_ms },
            } => *at_ms,
            Stage::Streaming(streaming) if streaming.sent > streaming.matched => {
                streaming.last_send_ms.max(streaming.last_progress_ms)
            }
            Stage::Transferring(Transferring {
                transfer,
                chunks: Sending::SentAt { at_ms },
                last_progress_ms,
            }) if transfer.first_unacknowledged().is_some() => (*at_ms).max(*last_progress_ms),
            Stage::Probing {
                probe: Sending::Due,
            }
            | Stage::Streaming(_)
            | Stage::Transferring(_) => return None,
        };
        Some(quiet_since_ms + retransmit_ms)
    }

    /// Makes what went unanswered for `retransmit_ms` due again at the next flush: a probe,
    /// every entry after what it confirmed (go back), or every unacknowledged chunk.
    pub fn retransmit_if_due(&mut self, now_ms: u64, retransmit_ms: u64) {
        if self
            .next_wake_ms(retransmit_ms)
            .is_none_or(|wake_ms| now_ms < wake_ms)
        {
            return;
        }
        match &mut self.stage {
            Stage::Probing { probe } => *probe = Sending::Due,
            Stage::Streaming(streaming) => streaming.sent = streaming.matched,
            Stage::Transferring(transferring) => transferring.chunks = Sending::Due,
        }
    }

    // ---- sending ----

    /// Appends what is due to it now to `out`: a probe, the entries it lacks within the
    /// in-flight window, or transfer chunks within the transfer window.
    pub fn poll(
        &mut self,
        outbound: &Outbound<'_>,
        now_ms: u64,
        out: &mut Vec<Message>,
    ) -> Result<(), FellBehindLog> {
        match &mut self.stage {
            Stage::Probing { probe } => {
                let due = match *probe {
                    Sending::Due => true,
                    Sending::SentAt { at_ms } => now_ms >= at_ms + outbound.config.retransmit_ms,
                };
                if due {
                    out.push(Message::Forward(Forward {
                        view: outbound.view,
                        prev: outbound.last,
                        entries: Arc::new(Vec::new()),
                    }));
                    *probe = Sending::SentAt { at_ms: now_ms };
                }
                Ok(())
            }
            Stage::Streaming(streaming) => streaming.poll(outbound, now_ms, out),
            Stage::Transferring(transferring) => {
                transferring.poll(outbound, now_ms, out);
                Ok(())
            }
        }
    }
}

impl Streaming {
    /// Entries sent and not yet confirmed.
    fn in_flight(&self) -> u64 {
        assert!(
            self.matched <= self.sent,
            "P2: a backup confirmed {} but was sent only {}",
            self.matched,
            self.sent
        );
        self.matched.distance_to(self.sent)
    }

    /// Its history ends at `last` now (a late reply may report less than it confirmed before).
    fn confirm(&mut self, last: OpIndex, now_ms: u64) {
        if last > self.matched {
            self.matched = last;
            self.last_progress_ms = now_ms;
        }
        // After a retransmission a late reply may confirm more than `sent` (never more than
        // `max_sent`: `check_reply`).
        self.sent = self.sent.max(self.matched);
        self.max_sent = self.max_sent.max(self.sent);
    }

    fn poll(
        &mut self,
        outbound: &Outbound<'_>,
        now_ms: u64,
        out: &mut Vec<Message>,
    ) -> Result<(), FellBehindLog> {
        assert!(
            self.sent <= outbound.last.index,
            "P2: sent {} beyond our history's end {:?}",
            self.sent,
            outbound.last
        );
        let max_inflight_ops = outbound.config.max_inflight_ops;
        while self.sent < outbound.last.index && self.in_flight() < max_inflight_ops {
            let prev = outbound.log.pos_at(self.sent).ok_or(FellBehindLog)?;
            let room = usize::try_from(max_inflight_ops - self.in_flight()).unwrap_or(usize::MAX);
            let mut entries = outbound
                .log
                .after(self.sent, outbound.config.max_batch_ops.min(room));
            // L15: a frame carries at most `forward_batch_bytes` of commands (at least one
            // entry), so big values never make a forward frame exceed the frame limit.
            let mut batch_bytes = 0usize;
            let fits = entries.iter().position(|entry| {
                batch_bytes = batch_bytes.saturating_add(entry_bytes(entry));
                batch_bytes > outbound.config.forward_batch_bytes
            });
            if let Some(cut) = fits {
                entries.truncate(cut.max(1));
            }
            let Some(end) = entries.last().map(|entry| entry.pos.index) else {
                break;
            };
            out.push(Message::Forward(Forward {
                view: outbound.view,
                prev,
                entries: Arc::new(entries),
            }));
            self.sent = end;
            self.max_sent = self.max_sent.max(end);
            self.last_send_ms = now_ms;
        }
        Ok(())
    }
}

impl Transferring {
    fn poll(&mut self, outbound: &Outbound<'_>, now_ms: u64, out: &mut Vec<Message>) {
        let chunk_bytes = outbound.config.transfer_chunk_bytes;
        if let Sending::Due = self.chunks {
            out.extend(
                self.transfer
                    .resend(outbound.view, chunk_bytes)
                    .into_iter()
                    .map(Message::Transfer),
            );
            self.chunks = Sending::SentAt { at_ms: now_ms };
        }
        while self.transfer.unacknowledged() < outbound.config.transfer_window {
            let Some(chunk) = self.transfer.next_chunk(outbound.view, chunk_bytes) else {
                break;
            };
            out.push(Message::Transfer(chunk));
            self.chunks = Sending::SentAt { at_ms: now_ms };
        }
    }
}

impl fmt::Display for Progress {
    /// One line for failure reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Stage::Probing { probe } => write!(f, "probe {probe:?}")?,
            Stage::Streaming(streaming) => write!(
                f,
                "stream matched={} sent={} last_send={} last_progress={}",
                streaming.matched,
                streaming.sent,
                streaming.last_send_ms,
                streaming.last_progress_ms
            )?,
            Stage::Transferring(transferring) => write!(
                f,
                "transfer(next={} unacked={}) chunks {:?} last_progress={}",
                transferring.transfer.chunks_sent(),
                transferring.transfer.unacknowledged(),
                transferring.chunks,
                transferring.last_progress_ms
            )?,
        }
        write!(f, " quorum={}", self.in_quorum)
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
    /// Elements (or bytes) of `key_cursor`'s value already sent when the value is split over
    /// chunks (L16); `None` when the whole key was sent.
    key_sent: Option<usize>,
    keys_done: bool,
    /// Last session sent before this chunk.
    client_cursor: Option<ClientId>,
}

/// A state transfer to one backup, in bounded chunks (P6).
#[derive(Debug)]
pub(crate) struct OutgoingTransfer {
    id: u64,
    /// The state as it was when the transfer started; later entries stream after it.
    snapshot: ReplicatedState,
    /// Where the next new chunk starts.
    next_start: ChunkStart,
    /// Number of the next new chunk: chunks before it were sent.
    next_chunk: u32,
    /// Chunks sent but not acknowledged, by where they start, for resending.
    unacked: BTreeMap<u32, ChunkStart>,
    /// The last chunk was built.
    finished: bool,
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
    fn next_chunk(&mut self, view: ViewNum, chunk_bytes: usize) -> Option<Transfer> {
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

    /// How many chunks were sent (each at least once).
    pub fn chunks_sent(&self) -> u32 {
        self.next_chunk
    }

    /// How many chunks were sent and not acknowledged.
    pub fn unacknowledged(&self) -> u32 {
        u32::try_from(self.unacked.len()).expect("at most one entry per chunk number")
    }

    /// How many chunks the backup acknowledged.
    pub fn acknowledged(&self) -> u32 {
        self.next_chunk - self.unacknowledged()
    }

    /// The first chunk not acknowledged yet.
    fn first_unacknowledged(&self) -> Option<u32> {
        self.unacked.keys().next().copied()
    }

    /// The backup applied every chunk before `next_chunk`.
    fn acknowledge_before(&mut self, next_chunk: u32) {
        self.unacked.retain(|chunk, _| *chunk >= next_chunk);
    }

    /// Every unacknowledged chunk again, rebuilt from the snapshot.
    fn resend(&self, view: ViewNum, chunk_bytes: usize) -> Vec<Transfer> {
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
        view: ViewNum,
        chunk_bytes: usize,
    ) -> (Transfer, ChunkStart) {
        let mut transfer = Transfer {
            view,
            transfer_id: self.id,
            chunk,
            entries: Vec::new(),
            clients: Vec::new(),
            done: None,
            acl: None,
            shard: None,
        };
        let mut next = start.clone();
        if !start.keys_done {
            let keys = self.snapshot.store.chunk_from(
                start.key_cursor.as_ref(),
                start.key_sent,
                chunk_bytes,
                65_536,
            );
            next.keys_done = keys.done;
            if keys.last_key.is_some() {
                next.key_cursor = keys.last_key;
                next.key_sent = keys.last_sent;
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
                transfer.acl = Some(self.snapshot.store.acl().clone()); // A1
                transfer.shard = Some(self.snapshot.shard.clone()); // S4
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
    /// Moves out being sent, by taker (S5).
    pub sends: BTreeMap<GroupId, SlotSend>,
    /// Givers told their slots are installed, by configuration (S6).
    pub notified: BTreeSet<(ConfigNum, GroupId)>,
    /// Moves out whose keys are being deleted, by taker, with where the scan resumes (S6).
    pub dropping: BTreeMap<GroupId, DropScan>,
}

impl PrimaryState {
    /// What every counted backup holds (everything we hold, with no counted backup).
    fn quorum_commit(&self, last: OpIndex) -> OpIndex {
        self.backups
            .values()
            .filter(|progress| progress.in_quorum())
            .map(Progress::matched)
            .min()
            .unwrap_or(last)
    }

    /// Moves the commit point up to what every counted backup holds (it never moves back), and
    /// counts the new backups that now hold everything committed; each one counted may hold
    /// the commit point back, so repeat until none joins.
    pub fn advance_commit(&mut self, last: OpIndex) {
        loop {
            self.commit = self.commit.max(self.quorum_commit(last));
            let commit = self.commit;
            let mut joined = false;
            for progress in self.backups.values_mut() {
                joined |= progress.join_quorum_if_caught_up(commit);
            }
            if !joined {
                break;
            }
        }
        assert!(
            self.commit <= last,
            "P2: commit point {} beyond our history's end {last}",
            self.commit
        );
    }

    /// Every backup synced: the view may be acknowledged (V6, P6).
    pub fn all_synced(&self) -> bool {
        self.backups
            .values()
            .all(|progress| progress.synced(self.commit))
    }

    /// The log must keep the entries after this index: every backup may still need them, and
    /// nothing after `last` exists.
    pub fn log_needed_after(&self, last: OpIndex) -> OpIndex {
        self.backups
            .values()
            .map(Progress::log_needed_after)
            .fold(self.commit, OpIndex::min)
            .min(last)
    }
}

/// What one entry weighs in a forward frame (L15): its commands' arguments, or its keys.
fn entry_bytes(entry: &LogEntry) -> usize {
    const ENTRY_FRAMING_BYTES: usize = 64;
    let op = match &entry.op {
        Op::Client { cmds, .. } => cmds.iter().map(|cmd| cmd.arg_bytes()).sum(),
        Op::Expire { keys } | Op::Evict { keys } => keys.iter().map(|k| k.len() + 8).sum(),
        Op::ForgetClients { .. } | Op::Install { .. } | Op::Drop { .. } | Op::Freeze { .. } => 0,
        Op::TakeOn { give, take, .. } | Op::PreCopy { give, take, .. } => {
            (give.len() + take.len()) * 64
        }
        Op::DropKeys { keys, .. } => keys.iter().map(|k| k.len() + 8).sum(),
        Op::InstallChunk {
            entries,
            clients,
            deleted,
            ..
        } => {
            let tombstones: usize = deleted.iter().map(|k| k.len() + 8).sum();
            let keys: usize = tombstones
                + entries
                    .iter()
                    .map(|(key, entry)| tandem_kv::entry_bytes(key, entry))
                    .sum::<usize>();
            let records: usize = clients
                .iter()
                .map(|(_, r)| {
                    64 + r
                        .replies
                        .as_ref()
                        .map_or(0, |r| r.iter().map(tandem_kv::reply_bytes).sum())
                })
                .sum();
            keys + records
        }
    };
    ENTRY_FRAMING_BYTES + op
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{LogEntry, Op};

    const VIEW: ViewNum = ViewNum(1);

    fn config() -> ReplicaConfig {
        ReplicaConfig {
            max_inflight_ops: 4,
            max_batch_ops: 3,
            ..ReplicaConfig::default()
        }
    }

    fn pos(index: u64) -> LogPos {
        LogPos {
            index: OpIndex(index),
            view: VIEW,
        }
    }

    /// A log holding entries 1..=count, all ordered in `VIEW`.
    fn log_of(count: u64) -> RecentLog {
        let mut log = RecentLog::default();
        for index in 1..=count {
            log.push(LogEntry {
                pos: pos(index),
                now_ms: 0,
                random: 0,
                limits: tandem_kv::Limits::default(),
                op: Op::ForgetClients { idle_before_ms: 0 },
            });
        }
        log
    }

    fn poll(
        progress: &mut Progress,
        log: &RecentLog,
        config: &ReplicaConfig,
        now_ms: u64,
    ) -> Vec<Message> {
        let outbound = Outbound {
            view: VIEW,
            last: log.last(),
            log,
            config,
        };
        let mut out = Vec::new();
        progress
            .poll(&outbound, now_ms, &mut out)
            .expect("the log reaches back to the backup");
        out
    }

    /// Each forward as (prev index, entry indexes).
    fn forwards(messages: &[Message]) -> Vec<(u64, Vec<u64>)> {
        messages
            .iter()
            .map(|msg| match msg {
                Message::Forward(forward) => (
                    forward.prev.index.0,
                    forward.entries.iter().map(|e| e.pos.index.0).collect(),
                ),
                other => panic!("expected a forward, got {other:?}"),
            })
            .collect()
    }

    /// Each transfer chunk's number.
    fn chunks(messages: &[Message]) -> Vec<u32> {
        messages
            .iter()
            .map(|msg| match msg {
                Message::Transfer(transfer) => transfer.chunk,
                other => panic!("expected a transfer chunk, got {other:?}"),
            })
            .collect()
    }

    /// A backup streaming from `matched` in a log of `count` entries, everything in the window
    /// sent at `now_ms`.
    fn streaming(matched: u64, count: u64, now_ms: u64) -> (Progress, RecentLog) {
        let log = log_of(count);
        let mut progress = Progress::probing(true);
        progress.on_ack(OpIndex(matched), now_ms);
        poll(&mut progress, &log, &config(), now_ms);
        (progress, log)
    }

    fn snapshot_at(last: LogPos) -> ReplicatedState {
        ReplicatedState {
            last,
            ..ReplicatedState::default()
        }
    }

    fn transfer_reply(id: u64, next_chunk: u32, installed: Option<LogPos>) -> TransferReply {
        TransferReply {
            view: VIEW,
            transfer_id: id,
            next_chunk: Some(next_chunk),
            installed,
        }
    }

    /// A backup receiving transfer `id` of a snapshot at `last`, its first chunks sent at
    /// `now_ms`.
    fn transferring(id: u64, last: LogPos, now_ms: u64) -> Progress {
        let mut progress = Progress::probing(false);
        progress.start_transfer(OutgoingTransfer::new(id, snapshot_at(last)), now_ms);
        let sent = poll(&mut progress, &log_of(0), &config(), now_ms);
        assert_eq!(
            chunks(&sent),
            [0, 1],
            "an empty state: no keys, then no sessions"
        );
        progress
    }

    #[test]
    fn p2_a_new_backup_is_probed_at_once_and_again_when_it_does_not_answer() {
        let config = config();
        let log = log_of(5);
        let mut progress = Progress::probing(false);
        assert_eq!(
            progress.next_wake_ms(config.retransmit_ms),
            None,
            "due at once"
        );
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, 1000)),
            [(5, vec![])]
        );
        let wake_ms = 1000 + config.retransmit_ms;
        assert_eq!(progress.next_wake_ms(config.retransmit_ms), Some(wake_ms));
        assert!(poll(&mut progress, &log, &config, wake_ms - 1).is_empty());
        progress.retransmit_if_due(wake_ms - 1, config.retransmit_ms);
        assert!(poll(&mut progress, &log, &config, wake_ms - 1).is_empty());
        progress.retransmit_if_due(wake_ms, config.retransmit_ms);
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, wake_ms)),
            [(5, vec![])]
        );
        assert_eq!(progress.matched(), OpIndex::ZERO);
        assert!(!progress.caught_up(OpIndex::ZERO), "not streaming yet");
    }

    #[test]
    fn p2_an_answered_probe_streams_what_the_backup_lacks_within_the_window() {
        let config = config();
        let log = log_of(10);
        let mut progress = Progress::probing(false);
        poll(&mut progress, &log, &config, 1000);
        progress.on_ack(OpIndex(3), 1010);
        assert_eq!(progress.matched(), OpIndex(3));
        // Batches of 3, at most 4 in flight.
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, 1010)),
            [(3, vec![4, 5, 6]), (6, vec![7])]
        );
        assert!(
            poll(&mut progress, &log, &config, 1010).is_empty(),
            "window full"
        );
        progress.on_ack(OpIndex(5), 1020);
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, 1020)),
            [(7, vec![8, 9])]
        );
        assert_eq!(progress.log_needed_after(), OpIndex(5));
    }

    #[test]
    fn p2_a_late_reply_never_moves_the_confirmed_position_back() {
        let (mut progress, _log) = streaming(2, 10, 1000);
        progress.on_ack(OpIndex(5), 1010);
        progress.on_ack(OpIndex(4), 1020);
        assert_eq!(progress.matched(), OpIndex(5));
        assert!(progress.caught_up(OpIndex(5)));
        assert!(!progress.caught_up(OpIndex(6)));
    }

    #[test]
    fn p2_a_gap_resends_everything_after_what_the_backup_holds() {
        let config = config();
        let (mut progress, log) = streaming(2, 10, 1000);
        progress.on_gap(OpIndex(3), 1010);
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, 1010)),
            [(3, vec![4, 5, 6]), (6, vec![7])]
        );
    }

    #[test]
    fn p2_unconfirmed_entries_are_resent_once_the_backup_is_quiet_for_the_retransmit_interval() {
        let config = config();
        let (mut progress, log) = streaming(2, 10, 1000);
        // Progress at 1100 pushes the deadline back: the link is not quiet.
        progress.on_ack(OpIndex(3), 1100);
        poll(&mut progress, &log, &config, 1100);
        let wake_ms = 1100 + config.retransmit_ms;
        assert_eq!(progress.next_wake_ms(config.retransmit_ms), Some(wake_ms));
        progress.retransmit_if_due(wake_ms - 1, config.retransmit_ms);
        assert!(poll(&mut progress, &log, &config, wake_ms - 1).is_empty());
        progress.retransmit_if_due(wake_ms, config.retransmit_ms);
        assert_eq!(
            forwards(&poll(&mut progress, &log, &config, wake_ms)),
            [(3, vec![4, 5, 6]), (6, vec![7])]
        );
    }

    #[test]
    fn p2_nothing_in_flight_needs_no_timer() {
        let config = config();
        let (mut progress, _log) = streaming(2, 4, 1000);
        progress.on_ack(OpIndex(4), 1010);
        assert_eq!(progress.next_wake_ms(config.retransmit_ms), None);
    }

    #[test]
    fn p6_a_streaming_backup_behind_the_log_needs_a_transfer() {
        let config = config();
        let mut log = log_of(10);
        let mut progress = Progress::probing(true);
        progress.on_ack(OpIndex(2), 1000);
        log.trim_through(OpIndex(5));
        let outbound = Outbound {
            view: VIEW,
            last: log.last(),
            log: &log,
            config: &config,
        };
        let mut out = Vec::new();
        assert!(progress.poll(&outbound, 1000, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn p6_a_transfer_ends_with_the_backup_streaming_from_the_snapshot() {
        let mut progress = transferring(7, pos(5), 1000);
        assert_eq!(progress.matched(), OpIndex::ZERO);
        assert_eq!(progress.log_needed_after(), OpIndex(5));
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 1, None), 1010),
            Ok(TransferStep::Acknowledged)
        );
        assert_eq!(
            progress.transfer().map(OutgoingTransfer::acknowledged),
            Some(1)
        );
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 2, Some(pos(5))), 1020),
            Ok(TransferStep::Installed)
        );
        assert!(progress.transfer().is_none());
        assert_eq!(progress.matched(), OpIndex(5));
        assert!(progress.caught_up(OpIndex(5)));
    }

    #[test]
    fn p6_a_reply_installing_another_position_than_the_snapshot_is_rejected() {
        let mut progress = transferring(7, pos(5), 1000);
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 2, Some(pos(6))), 1010),
            Err(ProtocolError::TransferInstalledElsewhere {
                installed: pos(6),
                snapshot: pos(5),
            })
        );
        assert_eq!(
            progress.transfer().map(OutgoingTransfer::acknowledged),
            Some(0)
        );
        assert_eq!(progress.matched(), OpIndex::ZERO);
    }

    #[test]
    fn p6_a_reply_acknowledging_chunks_never_sent_is_rejected() {
        let mut progress = transferring(7, pos(5), 1000);
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 3, None), 1010),
            Err(ProtocolError::TransferChunkNeverSent { chunk: 3, sent: 2 })
        );
        assert_eq!(
            progress.transfer().map(OutgoingTransfer::acknowledged),
            Some(0)
        );
    }

    #[test]
    fn p6_replies_about_another_transfer_and_stale_forward_replies_change_nothing() {
        let mut progress = transferring(7, pos(5), 1000);
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(8, 2, Some(pos(5))), 1010),
            Ok(TransferStep::Ignored)
        );
        progress.on_ack(OpIndex(5), 1010);
        progress.on_gap(OpIndex(5), 1010);
        assert!(progress.transfer().is_some());
    }

    #[test]
    fn p6_a_backup_that_lost_the_beginning_of_the_transfer_needs_a_fresh_one() {
        let mut progress = transferring(7, pos(5), 1000);
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 1, None), 1010),
            Ok(TransferStep::Acknowledged)
        );
        assert_eq!(
            progress.on_transfer_reply(&transfer_reply(7, 0, None), 1020),
            Ok(TransferStep::LostBeginning)
        );
    }

    #[test]
    fn p6_unacknowledged_chunks_are_resent_together_once_the_backup_is_quiet() {
        let config = config();
        let mut progress = transferring(7, pos(5), 1000);
        let wake_ms = 1000 + config.retransmit_ms;
        assert_eq!(progress.next_wake_ms(config.retransmit_ms), Some(wake_ms));
        progress.retransmit_if_due(wake_ms - 1, config.retransmit_ms);
        assert!(poll(&mut progress, &log_of(0), &config, wake_ms - 1).is_empty());
        progress.retransmit_if_due(wake_ms, config.retransmit_ms);
        assert_eq!(
            progress.next_wake_ms(config.retransmit_ms),
            None,
            "due at the next flush"
        );
        assert_eq!(
            chunks(&poll(&mut progress, &log_of(0), &config, wake_ms)),
            [0, 1]
        );
    }
}
