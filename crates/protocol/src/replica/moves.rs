//! Slot moves on the replica (S4-S8): taking on a configuration from the cluster map, sending
//! frozen slots to the taker (giver side) and installing them (taker side).
//!
//! Everything a move needs to survive a failover is in the replicated [`ShardState`]: the
//! freeze, the chunks installed so far and where the next one starts, the install. What only
//! the primary keeps ([`SlotSend`]: the chunks in flight) is rebuilt by a new primary: it starts
//! again from chunk 0 and the taker's reply names where it really is.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_kv::slots::{SlotSet, key_slot};
use tandem_kv::{Command, reply_bytes};

use crate::ids::{ConfigNum, GroupId, OpIndex, ServerId};
use crate::message::{
    Endpoint, GroupSlots, Message, Op, RequestError, SlotCursor, SlotData, SlotDataReply,
};
use crate::replica::shard::ShardState;
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

/// The giver's primary's progress sending one move (soft state: a new primary starts over
/// and the taker's reply sets it right).
#[derive(Debug)]
pub(crate) struct SlotSend {
    config: ConfigNum,
    /// Number of the next new chunk.
    next_chunk: u32,
    /// Where it starts.
    next_start: SlotCursor,
    /// Chunks sent and not acknowledged, by where they start.
    unacked: BTreeMap<u32, SlotCursor>,
    /// The last chunk was built.
    finished: bool,
    /// The taker answered since this primary began: until then one chunk at a time.
    heard: bool,
    /// Resend the unacknowledged chunks at the next flush.
    due: bool,
    sent_at_ms: u64,
}

impl SlotSend {
    fn new(config: ConfigNum) -> SlotSend {
        SlotSend {
            config,
            next_chunk: 0,
            next_start: SlotCursor::default(),
            unacked: BTreeMap::new(),
            finished: false,
            heard: false,
            due: false,
            sent_at_ms: 0,
        }
    }

    /// When unacknowledged chunks are resent.
    pub(crate) fn next_wake_ms(&self, retransmit_ms: u64) -> Option<u64> {
        (!self.unacked.is_empty() && !self.due).then_some(self.sent_at_ms + retransmit_ms)
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
    fn on_reply(&mut self, next_chunk: u32, cursor: SlotCursor) {
        self.heard = true;
        let in_flight = self.unacked.get(&next_chunk) == Some(&cursor);
        let all_taken = next_chunk == self.next_chunk && cursor == self.next_start;
        if in_flight || all_taken {
            self.unacked.retain(|chunk, _| *chunk >= next_chunk);
            return;
        }
        self.unacked.clear();
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

/// The op that takes on `next` after `prev` for `group` (S3, S5).
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
    Op::TakeOn {
        config: next.num,
        serve,
        give,
        take,
        release,
    }
}

/// Builds chunk `chunk` of the move of `slots` to `to`, from `start` (S5): keys first, then the
/// at-most-once records committed by `commit`, the last chunk marked `done`.
#[allow(clippy::too_many_arguments)]
fn build_chunk(
    state: &ReplicatedState,
    slots: &SlotSet,
    commit: OpIndex,
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
        entries: Vec::new(),
        clients: Vec::new(),
        done: false,
    };
    if !start.keys_done {
        let sent = start.key_sent.and_then(|n| usize::try_from(n).ok());
        let keys = state.store.chunk_of_slots(
            slots,
            start.key.as_ref(),
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
        return data;
    }
    // S8: records of requests this group may still lose (not committed) stay here: a taker
    // must not answer a retry with replies its giver never confirmed.
    let after = match start.client {
        None => std::ops::Bound::Unbounded,
        Some(client) => std::ops::Bound::Excluded(client),
    };
    let mut bytes = 0usize;
    let records = state.clients.range((after, std::ops::Bound::Unbounded));
    for (looked, (client, record)) in records.enumerate() {
        if looked == CLIENTS_PER_CHUNK || bytes >= chunk_bytes {
            // `end.client` is the last one looked at: the next chunk starts after it.
            return data;
        }
        data.end.client = Some(*client);
        if record.index > commit {
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

    /// Builds the chunks due for every move out: only once its freeze is committed, only to
    /// the taker's primary named by our map, a few in flight.
    pub(super) fn flush_slot_data(&mut self) {
        let Role::Primary(p) = &mut self.role else {
            return;
        };
        let shard = &self.state.shard;
        let config = shard.target;
        p.sends
            .retain(|to, send| send.config == config && shard.outgoing.contains_key(to));
        let mut out = Vec::new();
        for (to, outgoing) in &shard.outgoing {
            if p.commit < outgoing.frozen_at || p.dropping.contains_key(to) {
                continue;
            }
            let Some(primary) = self
                .cluster
                .as_ref()
                .and_then(|c| c.groups.get(to))
                .and_then(|g| g.view.as_ref())
                .map(|v| v.primary.clone())
            else {
                continue;
            };
            let send = p.sends.entry(*to).or_insert_with(|| SlotSend::new(config));
            let slots = SlotSet::of_ranges(&outgoing.slots);
            let ids = (config, self.group, *to);
            let chunk_bytes = self.config.transfer_chunk_bytes;
            let build = |chunk: u32, start: &SlotCursor| {
                build_chunk(
                    &self.state,
                    &slots,
                    p.commit,
                    ids,
                    chunk,
                    start,
                    chunk_bytes,
                )
            };
            if send.due {
                for (chunk, start) in &send.unacked {
                    out.push((primary.clone(), build(*chunk, start)));
                }
                send.due = false;
                send.sent_at_ms = self.last_mono_ms;
            }
            let window = if send.heard {
                self.config.transfer_window as usize
            } else {
                1
            };
            while send.unacked.len() < window && !send.finished {
                let data = build(send.next_chunk, &send.next_start);
                send.unacked
                    .insert(send.next_chunk, std::mem::take(&mut send.next_start));
                send.next_start = data.end.clone();
                send.finished = data.done;
                send.next_chunk = send.next_chunk.saturating_add(1);
                send.sent_at_ms = self.last_mono_ms;
                out.push((primary.clone(), data));
            }
        }
        for (to, data) in out {
            self.stats.slot_chunks_sent += 1;
            self.send(Endpoint::Server(to), Message::SlotData(data));
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
        if reply.config != shard.target || !shard.outgoing.contains_key(&reply.to) {
            self.stats.slot_messages_refused += 1;
            return;
        }
        if reply.installed {
            // S6: the taker serves them now, from its own history: delete ours.
            let Role::Primary(p) = &mut self.role else {
                return;
            };
            p.sends.remove(&reply.to);
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
            .or_insert_with(|| SlotSend::new(config));
        send.on_reply(reply.next_chunk, reply.cursor);
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
            if let Some((key, _)) = data
                .entries
                .iter()
                .find(|(key, _)| !slots.contains(key_slot(key)))
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
