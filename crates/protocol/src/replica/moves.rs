//! Slot moves on the replica (S4-S10): taking on a configuration from the cluster map,
//! pre-copying the slots it gives while serving them, then freezing them and sending what
//! changed (giver side), and installing them (taker side).
//!
//! Everything a move needs to survive a failover is in the replicated [`ShardState`]: the
//! pre-copy and its dirty set, the freeze, the chunks installed so far and where the next one
//! starts, the install. What only the primary keeps ([`SlotSend`]: the chunks in flight, the
//! pre-copy's timers) is rebuilt by a new primary: it starts again from chunk 0 and the taker's
//! reply names where it really is.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use tandem_kv::slots::{SlotSet, key_slot};
use tandem_kv::{Command, Store, reply_bytes};

use crate::bug::{Bug, Bugs};
use crate::ids::{ConfigNum, GroupId, OpIndex, ServerId};
use crate::message::{
    Endpoint, GroupSlots, Message, Op, RequestError, SlotCursor, SlotData, SlotDataReply,
};
use crate::replica::shard::{Dirty, ShardState};
use crate::replica::state::ReplicatedState;
use crate::replica::{ProtocolError, Replica, Role};
use crate::shard::{ClusterMap, ShardConfig};
use crate::time::Now;

/// Keys of other slots one chunk passes over at most (S5), so building a chunk does bounded
/// work however large the store is.
const MAX_SCAN_PER_CHUNK: usize = 65_536;
/// Keys per chunk at most (as state transfer's chunks).
const MAX_KEYS_PER_CHUNK: usize = 65_536;
/// At-most-once records per chunk (as state transfer's chunks).
const CLIENTS_PER_CHUNK: usize = 4096;
/// S10: a pre-copy ends (the slots are frozen) once its dirty set holds this much, so the
/// set, which travels whole with a state transfer, stays far below a frame.
pub(crate) const MAX_DIRTY_BYTES: usize = 8 << 20;
/// S10: a pre-copy ends once this primary has pre-copied this long, whatever the progress.
pub(crate) const PRECOPY_MAX_MS: u64 = 60_000;
/// S10: a pre-copy ends when the taker acknowledged nothing new for this many retransmit
/// intervals (it is not ready, it gives us slots too and waits for us, or it is down).
const PRECOPY_STALL_RETRANSMITS: u64 = 5;

/// The giver's primary's progress sending one move (soft state: a new primary starts over
/// and the taker's reply sets it right).
#[derive(Debug)]
pub(crate) struct SlotSend {
    config: ConfigNum,
    /// Number of the next new chunk.
    next_chunk: u32,
    /// Where it starts.
    next_start: SlotCursor,
    /// Chunks sent (or held) and not acknowledged, by where they start.
    unacked: BTreeMap<u32, SlotCursor>,
    /// S9: chunks built from served slots, held until everything applied when they were
    /// built (the index) is committed.
    held: Vec<(OpIndex, SlotData)>,
    /// The last chunk was built.
    finished: bool,
    /// The taker answered since this primary began: until then one chunk at a time.
    heard: bool,
    /// Resend the unacknowledged chunks at the next flush.
    due: bool,
    sent_at_ms: u64,
    /// When this primary began sending this move.
    started_ms: u64,
    /// When the taker last acknowledged a chunk it had not acknowledged before (or
    /// `started_ms`): a pre-copy that stalls is frozen (S10).
    progress_ms: u64,
    /// When this primary saw the freeze committed: the freeze is measured from there to the
    /// taker's `installed`.
    frozen_ms: Option<u64>,
}

impl SlotSend {
    fn new(config: ConfigNum, now_ms: u64) -> SlotSend {
        SlotSend {
            config,
            next_chunk: 0,
            next_start: SlotCursor::default(),
            unacked: BTreeMap::new(),
            held: Vec::new(),
            finished: false,
            heard: false,
            due: false,
            sent_at_ms: 0,
            started_ms: now_ms,
            progress_ms: now_ms,
            frozen_ms: None,
        }
    }

    /// When unacknowledged chunks are resent.
    pub(crate) fn next_wake_ms(&self, retransmit_ms: u64) -> Option<u64> {
        (!self.unacked.is_empty() && !self.due).then_some(self.sent_at_ms + retransmit_ms)
    }

    /// S10: when a pre-copy by this send must end whatever the taker says.
    pub(crate) fn precopy_deadline_ms(&self, retransmit_ms: u64) -> u64 {
        let stalled = self.progress_ms + PRECOPY_STALL_RETRANSMITS * retransmit_ms;
        stalled.min(self.started_ms + PRECOPY_MAX_MS)
    }

    /// S10: the taker acknowledged every key the pre-copy scan found: the rest comes after the
    /// freeze.
    fn scan_acknowledged(&self) -> bool {
        self.heard && self.next_start.keys_done && self.unacked.is_empty()
    }

    pub(crate) fn retransmit_if_due(&mut self, now_ms: u64, retransmit_ms: u64) {
        if self
            .next_wake_ms(retransmit_ms)
            .is_some_and(|wake_ms| now_ms >= wake_ms)
        {
            self.due = true;
        }
    }

    /// The taker holds `next_chunk` chunks and expects the next at `cursor`: forget what it
    /// acknowledged, or start again from there when that is not where we are (we are a new
    /// primary, or the taker failed over and lost chunks its old primary had taken).
    fn on_reply(&mut self, next_chunk: u32, cursor: SlotCursor, now_ms: u64) {
        let acknowledged = self.unacked.keys().next().is_some_and(|&c| next_chunk > c);
        if !self.heard || acknowledged {
            self.progress_ms = now_ms;
        }
        self.heard = true;
        let in_flight = self.unacked.get(&next_chunk) == Some(&cursor);
        let all_taken = next_chunk == self.next_chunk && cursor == self.next_start;
        if in_flight || all_taken {
            self.unacked.retain(|chunk, _| *chunk >= next_chunk);
            self.held.retain(|(_, data)| data.chunk >= next_chunk);
            return;
        }
        self.unacked.clear();
        self.held.clear();
        self.next_chunk = next_chunk;
        self.next_start = cursor;
        self.finished = false;
        self.due = false;
    }
}

/// Where the giver's primary is deleting a dropped move's keys (S6; soft state: a new primary
/// starts over when the taker tells it again that it installed them).
#[derive(Debug)]
pub(crate) struct DropScan {
    config: ConfigNum,
    /// The last key looked at.
    after: Option<bytes::Bytes>,
}

/// Keys one `DropKeys` deletes at most, and keys of other slots one batch passes over.
const DROP_BATCH_KEYS: usize = 4096;

/// The op that takes on `next` after `prev` for `group` (S3, S5, S9): `PreCopy` when the
/// group gives slots away, so it serves them while their keys are copied.
fn take_on_op(group: GroupId, prev: &ShardConfig, next: &ShardConfig) -> Op {
    let before = prev.owners();
    let after = next.owners();
    let mut serve: Vec<(u16, u16)> = Vec::new();
    let mut release: Vec<(u16, u16)> = Vec::new();
    let push = |ranges: &mut Vec<(u16, u16)>, slot: u16| match ranges.last_mut() {
        Some(last) if last.1 + 1 == slot => last.1 = slot,
        _ => ranges.push((slot, slot)),
    };
    for (slot, (b, a)) in before.iter().zip(&after).enumerate() {
        let slot = slot as u16;
        match (*b, *a) {
            (None, Some(owner)) if owner == group => push(&mut serve, slot),
            (Some(owner), None) if owner == group => push(&mut release, slot),
            _ => {}
        }
    }
    let moves = prev.moves_to(next);
    let give: GroupSlots = moves
        .iter()
        .filter(|m| m.from == group)
        .map(|m| (m.to, m.slots.clone()))
        .collect();
    let take: GroupSlots = moves
        .iter()
        .filter(|m| m.to == group)
        .map(|m| (m.from, m.slots.clone()))
        .collect();
    if give.is_empty() {
        Op::TakeOn {
            config: next.num,
            serve,
            give,
            take,
            release,
        }
    } else {
        Op::PreCopy {
            config: next.num,
            serve,
            give,
            take,
            release,
        }
    }
}

/// What the chunks of one move out are built from.
struct ChunkSource<'a> {
    state: &'a ReplicatedState,
    /// The slots moving.
    slots: SlotSet,
    /// The keys changed during the pre-copy (S10).
    dirty: &'a Dirty,
    /// At-most-once records are sent only if committed by this index (S8).
    commit: OpIndex,
    /// The slots are frozen: their keys no longer change. Before the freeze (a pre-copy) the
    /// scan stops at the end of the keys (S9).
    frozen: bool,
    bugs: Bugs,
}

/// The entry of `key` in `store` from element (or byte) `sent` on, within `max_bytes` (L16),
/// and, when that piece does not finish the value, how much of it has then been sent; `None`
/// when the store does not hold `key`.
fn entry_piece(
    store: &Store,
    key: &Bytes,
    sent: usize,
    max_bytes: usize,
) -> Option<(tandem_kv::Entry, Option<usize>)> {
    // One entry from `key` on (included): `key` itself when the store holds it.
    let chunk = store.chunk_from(Some(key), Some(sent), max_bytes, 1);
    let (found, entry) = chunk.entries.into_iter().next()?;
    (found == *key).then_some((entry, chunk.last_sent))
}

/// Builds chunk `chunk` of a move to `to` from `start` (S5, S9, S10): the keys of the slots
/// first (while pre-copying, only those, and never the last chunk), then the keys changed
/// during the pre-copy (each as a tombstone and its current entry), then the at-most-once
/// records committed by `commit`, the last chunk marked `done`.
fn build_chunk(
    source: &ChunkSource<'_>,
    (config, from, to): (ConfigNum, GroupId, GroupId),
    chunk: u32,
    start: &SlotCursor,
    chunk_bytes: usize,
) -> SlotData {
    let mut data = SlotData {
        config,
        from,
        to,
        chunk,
        start: start.clone(),
        end: start.clone(),
        deleted: Vec::new(),
        entries: Vec::new(),
        clients: Vec::new(),
        done: false,
    };
    if !start.keys_done {
        scan_keys(source, &mut data, chunk_bytes);
        return data;
    }
    if !start.dirty_done {
        if source.bugs.has(Bug::PreCopyWithoutDelta) {
            data.end.dirty_done = true;
            return data;
        }
        changed_keys(source, &mut data, chunk_bytes);
        return data;
    }
    // S8: records of requests this group may still lose (not committed) stay here: a taker
    // must not answer a retry with replies its giver never confirmed.
    let after = match start.client {
        None => Bound::Unbounded,
        Some(client) => Bound::Excluded(client),
    };
    let mut bytes = 0usize;
    let records = source.state.clients.range((after, Bound::Unbounded));
    for (looked, (client, record)) in records.enumerate() {
        if looked == CLIENTS_PER_CHUNK || bytes >= chunk_bytes {
            // `end.client` is the last one looked at: the next chunk starts after it.
            return data;
        }
        data.end.client = Some(*client);
        if record.index > source.commit {
            continue;
        }
        bytes += 64
            + record
                .replies
                .as_ref()
                .map_or(0, |r| r.iter().map(reply_bytes).sum::<usize>());
        data.clients.push((*client, record.clone()));
    }
    data.done = true;
    data
}

/// The next keys of the scan of the slots, in the store's order (S5, S9).
fn scan_keys(source: &ChunkSource<'_>, data: &mut SlotData, chunk_bytes: usize) {
    let store = &source.state.store;
    let after = data.start.key.clone();
    let mut sent = data.start.key_sent.and_then(|n| usize::try_from(n).ok());
    if let (Some(key), false) = (&after, source.frozen)
        && sent.is_some()
        && entry_piece(store, key, 0, 1).is_none()
    {
        // S9: the value being sent in pieces was deleted since the last chunk (served slots
        // change): resume after it, not inside the next key. Its tombstone comes with the
        // delta.
        sent = None;
    }
    let keys = store.chunk_of_slots(
        &source.slots,
        after.as_ref(),
        sent,
        chunk_bytes,
        MAX_KEYS_PER_CHUNK,
        MAX_SCAN_PER_CHUNK,
    );
    data.end.keys_done = keys.done;
    if keys.last_key.is_some() {
        data.end.key = keys.last_key;
        data.end.key_sent = keys.last_sent.map(|n| n as u64);
    }
    data.entries = keys.entries;
}

/// The next keys changed during the pre-copy (S10), in the dirty set's order: each deleted at
/// the taker, then stored again from the giver's frozen store if it still exists.
fn changed_keys(source: &ChunkSource<'_>, data: &mut SlotData, chunk_bytes: usize) {
    let store = &source.state.store;
    let keys = source.dirty.keys();
    let resume = data.start.dirty_sent.and_then(|n| usize::try_from(n).ok());
    let from = match (&data.start.dirty, resume) {
        (None, _) => Bound::Unbounded,
        (Some(key), Some(_)) => Bound::Included(key.clone()),
        (Some(key), None) => Bound::Excluded(key.clone()),
    };
    let mut bytes = 0usize;
    for key in keys.range((from, Bound::Unbounded)) {
        let looked = data.deleted.len() + data.entries.len();
        if looked >= MAX_KEYS_PER_CHUNK || bytes >= chunk_bytes {
            return;
        }
        let sent = if data.start.dirty.as_ref() == Some(key) {
            resume
        } else {
            None
        };
        if sent.is_none() {
            data.deleted.push(key.clone());
        }
        bytes = bytes.saturating_add(key.len() + 16);
        data.end.dirty = Some(key.clone());
        data.end.dirty_sent = None;
        let room = chunk_bytes.saturating_sub(bytes).max(1);
        let Some((entry, unfinished)) = entry_piece(store, key, sent.unwrap_or(0), room) else {
            continue;
        };
        bytes = bytes.saturating_add(tandem_kv::entry_bytes(key, &entry));
        data.entries.push((key.clone(), entry));
        if let Some(sent) = unfinished {
            // L16: the rest of this value comes in the next chunks.
            data.end.dirty_sent = Some(sent as u64);
            return;
        }
    }
    data.end.dirty_done = true;
}

impl Replica {
    /// The cluster map this server knows (S2), from its ping replies.
    pub fn cluster(&self) -> Option<&Arc<ClusterMap>> {
        self.cluster.as_ref()
    }

    /// The configuration to report as `config_done` (S4): the last one the group has taken on,
    /// once the entry that completed it is committed (a primary that fails before then may
    /// leave a successor that has not).
    pub(super) fn config_done(&self) -> ConfigNum {
        let shard = &self.state.shard;
        match &self.role {
            Role::Primary(p) if p.commit < shard.taken_on_at => shard.taken_on_before,
            _ => shard.taken_on,
        }
    }

    /// A cluster map from the view service (S2): kept if newer, then acted on.
    pub(super) fn on_cluster_map(&mut self, now: Now, map: Arc<ClusterMap>) {
        if !map.config.is_well_formed() || !map.previous.is_well_formed() {
            // P11: no view service makes it.
            self.stats.views_refused += 1;
            return;
        }
        // Newer maps only. A newer configuration wins even with a lower epoch: configurations
        // only grow, epochs only within one view service's history.
        if self
            .cluster
            .as_ref()
            .is_some_and(|c| (c.config.num, c.epoch) >= (map.config.num, map.epoch))
        {
            return;
        }
        self.cluster = Some(map);
        self.maybe_take_on(now);
    }

    /// The primary of `group` in our map.
    fn primary_of(&self, group: GroupId) -> Option<&ServerId> {
        let info = self.cluster.as_ref()?.groups.get(&group)?;
        Some(&info.view.as_ref()?.primary)
    }

    /// S3, S5: the primary starts taking on the map's configuration when it is the next one
    /// for the group. A group that owns nothing, expects nothing, and owned nothing in the
    /// map's previous configuration takes on the map's configuration directly, however far
    /// ahead: the view service made every configuration in between without waiting for it
    /// (it waits only for groups that own slots or take part in a move, S3), so none of them
    /// gave it anything, and the moves into it now are exactly those from the previous
    /// configuration to this one.
    pub(super) fn maybe_take_on(&mut self, now: Now) {
        if !matches!(self.role, Role::Primary(_)) {
            return;
        }
        let Some(map) = self.cluster.clone() else {
            return;
        };
        let shard = &self.state.shard;
        if shard.sharded && shard.target != shard.taken_on {
            return; // Still taking on the previous one.
        }
        let next = &map.config;
        let prev = &map.previous;
        if !shard.sharded && next.num == ConfigNum(0) {
            return;
        }
        if shard.sharded && next.num <= shard.taken_on {
            return;
        }
        let consecutive = prev.num.0.checked_add(1) == Some(next.num.0);
        let in_order = shard.sharded && prev.num == shard.taken_on;
        let owns_nothing = !shard.moving()
            && (shard.served.is_empty() || !shard.sharded)
            && prev.slots_of(self.group).is_empty();
        if !consecutive || !(in_order || owns_nothing) {
            return;
        }
        let op = take_on_op(self.group, prev, next);
        self.order(now, op);
    }

    /// S4: why a request may not execute here, checked before it is ordered: a slot it
    /// touches that the group does not serve. A command whose keys span slots is refused as
    /// `CrossSlot` only when one of them is not served here: every front end refuses such
    /// commands itself (S1), and one that reaches the core with every slot served here runs
    /// atomically in this group's history like any other (so a single group, and the
    /// simulator's clerks, which talk to the core without a front end, work as before
    /// sharding). Sending it elsewhere would not help, hence `CrossSlot` rather than
    /// `WrongGroup`. Keyless commands are not checked, except FLUSHALL and FLUSHDB while
    /// slots move: frozen keys must not change, and arriving ones are not ours to delete.
    pub(super) fn slot_refusal(&self, cmds: &[Command]) -> Option<RequestError> {
        let shard = &self.state.shard;
        if !shard.sharded {
            // No configuration taken on yet. Without any cluster map (a view service that knows
            // no slots) the group is the whole keyspace, as before sharding. With a map, the
            // group owns nothing until its `TakeOn`: another group may be the first owner, and a
            // write taken here before configuration 1 named that group would be stranded in a
            // group that never serves it (S2, S4). Keyed commands wait; the primary orders the
            // `TakeOn` as soon as configuration 1 reaches it.
            self.cluster.as_ref()?; // No map: the whole keyspace is ours.
            let keyed = cmds.iter().flat_map(|c| c.keys()).next();
            return keyed.map(|key| RequestError::SlotMoving {
                slot: key_slot(key),
            });
        }
        for cmd in cmds {
            let keys = cmd.keys();
            if keys.is_empty() {
                if matches!(cmd, Command::FlushAll { .. } | Command::FlushDb { .. })
                    && let Some(slot) = shard.first_moving_slot()
                {
                    return Some(RequestError::SlotMoving { slot });
                }
                continue;
            }
            let refusal = keys
                .iter()
                .find_map(|key| shard.admits(key_slot(key), self.config.bugs).err());
            if let Some(refusal) = refusal {
                return Some(match cmd.slot() {
                    Err(_) => RequestError::CrossSlot,
                    Ok(_) => refusal,
                });
            }
        }
        None
    }

    /// The shard state (S4), for operators and tests.
    pub fn shard(&self) -> &ShardState {
        &self.state.shard
    }

    // ---- giver (S5) ----

    /// Builds the chunks due for every move out, a few in flight, only to the taker's primary
    /// named by our map: for a frozen move only once its freeze is committed (S5); for a
    /// pre-copy, each chunk held until everything applied when it was built is committed (S9),
    /// so a taker never holds a value a later primary of ours might not have.
    pub(super) fn flush_slot_data(&mut self) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let shard = &self.state.shard;
        let config = shard.target;
        p.sends.retain(|to, send| {
            send.config == config
                && (shard.outgoing.contains_key(to) || shard.precopy.contains_key(to))
        });
        let frozen = shard
            .outgoing
            .iter()
            .map(|(to, out)| (*to, &out.slots, &out.dirty, Some(out.frozen_at)));
        let precopied = shard
            .precopy
            .iter()
            .map(|(to, pre)| (*to, &pre.slots, &pre.dirty, None));
        let built_at = self.state.last.index;
        let now_ms = self.last_mono_ms;
        let mut out = Vec::new();
        for (to, slots, dirty, frozen_at) in frozen.chain(precopied) {
            if frozen_at.is_some_and(|at| p.commit < at) || p.dropping.contains_key(&to) {
                continue;
            }
            let Some(primary) = self
                .cluster
                .as_ref()
                .and_then(|c| c.groups.get(&to))
                .and_then(|g| g.view.as_ref())
                .map(|v| v.primary.clone())
            else {
                continue;
            };
            let send = p
                .sends
                .entry(to)
                .or_insert_with(|| SlotSend::new(config, now_ms));
            if frozen_at.is_some() {
                send.frozen_ms.get_or_insert(now_ms);
            }
            let source = ChunkSource {
                state: &self.state,
                slots: SlotSet::of_ranges(slots),
                dirty,
                commit: p.commit,
                frozen: frozen_at.is_some(),
                bugs: self.config.bugs,
            };
            // Frozen keys no longer change: a chunk of them goes at once.
            let hold = if frozen_at.is_some() {
                OpIndex::ZERO
            } else {
                built_at
            };
            let ids = (config, self.group, to);
            let chunk_bytes = self.config.transfer_chunk_bytes;
            let build = |chunk: u32, start: &SlotCursor| {
                build_chunk(&source, ids, chunk, start, chunk_bytes)
            };
            if send.due {
                send.held.clear();
                for (chunk, start) in &send.unacked {
                    send.held.push((hold, build(*chunk, start)));
                }
                send.due = false;
                send.sent_at_ms = now_ms;
            }
            let window = if send.heard {
                self.config.transfer_window as usize
            } else {
                1
            };
            // A pre-copy stops at the end of the keys: the rest follows the freeze (S10).
            let may_build = |send: &SlotSend| frozen_at.is_some() || !send.next_start.keys_done;
            while send.unacked.len() < window && !send.finished && may_build(send) {
                let data = build(send.next_chunk, &send.next_start);
                send.unacked
                    .insert(send.next_chunk, std::mem::take(&mut send.next_start));
                send.next_start = data.end.clone();
                send.finished = data.done;
                send.next_chunk = send.next_chunk.saturating_add(1);
                send.sent_at_ms = now_ms;
                send.held.push((hold, data));
            }
            let commit = p.commit;
            let (ready, held): (Vec<_>, Vec<_>) = std::mem::take(&mut send.held)
                .into_iter()
                .partition(|(index, _)| *index <= commit);
            send.held = held;
            for (_, data) in ready {
                out.push((primary.clone(), data, frozen_at.is_none()));
            }
        }
        for (to, data, precopied) in out {
            self.stats.slot_chunks_sent += 1;
            if precopied {
                self.stats.slot_chunks_precopied += 1;
            }
            self.send(Endpoint::Server(to), Message::SlotData(data));
        }
    }

    /// S10: ends each pre-copy that is due, by ordering the freeze of its slots: once the
    /// taker acknowledged the whole key scan, when it acknowledged nothing new for a while
    /// (it is not ready for our chunks, or it waits for our freeze because it gives us slots
    /// too), after [`PRECOPY_MAX_MS`], or when the dirty set reached [`MAX_DIRTY_BYTES`].
    pub(super) fn advance_precopies(&mut self, now: Now) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let shard = &self.state.shard;
        let config = shard.target;
        let retransmit_ms = self.config.retransmit_ms;
        let mut due = Vec::new();
        for (to, pre) in &shard.precopy {
            let send = p
                .sends
                .entry(*to)
                .or_insert_with(|| SlotSend::new(config, now.mono_ms));
            if send.config != config {
                continue; // Left from another configuration: the next flush drops it.
            }
            let end = send.scan_acknowledged()
                || now.mono_ms >= send.precopy_deadline_ms(retransmit_ms)
                || pre.dirty.bytes() >= MAX_DIRTY_BYTES;
            if end {
                due.push(*to);
            }
        }
        for to in due {
            self.order(now, Op::Freeze { config, to });
        }
    }

    /// S5, S6, S7: the taker's answer, taken only from the primary of the taker group our map
    /// names, about a move out of ours in the configuration we are taking on.
    pub(super) fn on_slot_data_reply(&mut self, now: Now, from: Endpoint, reply: SlotDataReply) {
        let Endpoint::Server(sender) = &from else {
            return;
        };
        if !matches!(self.role, Role::Primary(_))
            || reply.from != self.group
            || self.primary_of(reply.to) != Some(sender)
        {
            self.stats.slot_messages_refused += 1;
            return;
        }
        let shard = &self.state.shard;
        let frozen = shard.outgoing.contains_key(&reply.to);
        if reply.config != shard.target
            || !(frozen || shard.precopy.contains_key(&reply.to))
            || (reply.installed && !frozen)
        {
            // (No correct taker installs what we have not frozen: its last chunk follows the
            // freeze.)
            self.stats.slot_messages_refused += 1;
            return;
        }
        if reply.installed {
            // S6: the taker serves them now, from its own history: delete ours.
            let Role::Primary(p) = &mut self.role else {
                return;
            };
            if let Some(frozen_ms) = p.sends.remove(&reply.to).and_then(|s| s.frozen_ms) {
                let freeze_ms = now.mono_ms.saturating_sub(frozen_ms);
                self.stats.slot_freeze_ms_last = freeze_ms;
                self.stats.slot_freeze_ms_max = self.stats.slot_freeze_ms_max.max(freeze_ms);
            }
            let config = reply.config;
            p.dropping.entry(reply.to).or_insert(DropScan {
                config,
                after: None,
            });
            self.advance_drops(now);
            return;
        }
        let config = shard.target;
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let send = p
            .sends
            .entry(reply.to)
            .or_insert_with(|| SlotSend::new(config, now.mono_ms));
        send.on_reply(reply.next_chunk, reply.cursor, now.mono_ms);
        self.advance_precopies(now);
    }

    /// S6: orders the next batch of deletions of each dropped move, and `Drop` once the scan
    /// reached the end of the store. One batch per move per call: the driver calls again at
    /// its next round, so pings and requests go on in between.
    pub(super) fn advance_drops(&mut self, now: Now) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let shard = &self.state.shard;
        let target = shard.target;
        p.dropping
            .retain(|to, scan| scan.config == target && shard.outgoing.contains_key(to));
        let mut ops = Vec::new();
        for (to, scan) in &mut p.dropping {
            let slots = SlotSet::of_ranges(&shard.outgoing[to].slots);
            let (keys, last, done) = self.state.store.keys_of_slots(
                &slots,
                scan.after.as_ref(),
                DROP_BATCH_KEYS,
                MAX_SCAN_PER_CHUNK,
            );
            if !keys.is_empty() {
                ops.push(Op::DropKeys {
                    config: target,
                    to: *to,
                    keys,
                });
            }
            if done {
                ops.push(Op::Drop {
                    config: target,
                    to: *to,
                });
            } else if last.is_some() {
                scan.after = last;
            }
        }
        for op in ops {
            self.order(now, op);
        }
        if let Role::Primary(p) = &mut self.role {
            let shard = &self.state.shard;
            p.dropping.retain(|to, _| shard.outgoing.contains_key(to));
        }
        self.maybe_take_on(now);
    }

    // ---- taker (S6, S7) ----

    /// S6, S7: a chunk, taken only from the primary of the giver group our map names, for a
    /// move into ours in the configuration we are taking on, and only the next one.
    pub(super) fn on_slot_data(&mut self, now: Now, from: Endpoint, data: SlotData) {
        let Endpoint::Server(sender) = &from else {
            return;
        };
        if !matches!(self.role, Role::Primary(_))
            || data.to != self.group
            || self.primary_of(data.from) != Some(sender)
            || data.config != self.state.shard.target
        {
            self.stats.slot_messages_refused += 1;
            return;
        }
        let (config, giver) = (data.config, data.from);
        if let Some(&index) = self.state.shard.installed.get(&giver) {
            // Our answer was lost: say it again, once the install is committed (until then
            // the notice in `after_progress` will).
            if self.commit_index().is_some_and(|commit| commit >= index) {
                self.reply_slot_data(from, config, giver, 0, SlotCursor::default(), true);
            }
            return;
        }
        let Some(incoming) = self.state.shard.incoming.get(&giver) else {
            self.stats.slot_messages_refused += 1;
            return;
        };
        if data.chunk == incoming.next_chunk && data.start == incoming.cursor {
            let slots = SlotSet::of_ranges(&incoming.slots);
            let keys = data.entries.iter().map(|(key, _)| key);
            if let Some(key) = keys
                .chain(&data.deleted)
                .find(|key| !slots.contains(key_slot(key)))
            {
                self.ignore_protocol_error(ProtocolError::KeyOutsideMovingSlots {
                    key: key.clone(),
                });
                return;
            }
            let done = data.done;
            self.order(
                now,
                Op::InstallChunk {
                    config,
                    from: giver,
                    chunk: data.chunk,
                    end: data.end,
                    deleted: data.deleted,
                    entries: data.entries,
                    clients: data.clients,
                },
            );
            if done {
                self.order(
                    now,
                    Op::Install {
                        config,
                        from: giver,
                    },
                );
                // The giver hears `installed` once the install is committed.
                self.maybe_take_on(now);
                return;
            }
        }
        let Some(incoming) = self.state.shard.incoming.get(&giver) else {
            return;
        };
        let (next_chunk, cursor) = (incoming.next_chunk, incoming.cursor.clone());
        self.reply_slot_data(from, config, giver, next_chunk, cursor, false);
    }

    fn reply_slot_data(
        &mut self,
        to: Endpoint,
        config: ConfigNum,
        from: GroupId,
        next_chunk: u32,
        cursor: SlotCursor,
        installed: bool,
    ) {
        let reply = SlotDataReply {
            config,
            from,
            to: self.group,
            next_chunk,
            cursor,
            installed,
        };
        self.send(to, Message::SlotDataReply(reply));
    }

    /// S6: tells each giver whose slots we installed, once the install is committed, so it
    /// may drop them without waiting for its next resend.
    pub(super) fn notify_installed(&mut self) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let shard = &self.state.shard;
        let config = shard.target;
        p.notified.retain(|(c, _)| *c == config);
        let due: Vec<GroupId> = shard
            .installed
            .iter()
            .filter(|(from, index)| **index <= p.commit && p.notified.insert((config, **from)))
            .map(|(from, _)| *from)
            .collect();
        for from in due {
            if let Some(primary) = self.primary_of(from).cloned() {
                let to = Endpoint::Server(primary);
                self.reply_slot_data(to, config, from, 0, SlotCursor::default(), true);
            }
        }
    }
}
