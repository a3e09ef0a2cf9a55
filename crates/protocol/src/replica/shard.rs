//! The group's share of the sharded keyspace (S4-S8), as part of its replicated state: which
//! configuration it has taken on, the slots it serves, the slots it is handing off (frozen)
//! and those it is waiting to install. Changed only by the ops `TakeOn`, `InstallChunk`,
//! `Install` and `Drop`, applied identically by every replica, so a promoted backup or a new
//! one (it gets this with the state transfer) carries a move on where its primary left it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem_kv::slots::{SlotSet, key_slot};

use crate::bug::{Bug, Bugs};
use crate::ids::{ClientId, ConfigNum, GroupId, OpIndex};
use crate::message::{ClientRecord, GroupSlots, LogEntry, RequestError, SlotCursor};
use crate::replica::state::ReplicatedState;

/// Slots frozen for a taker (S5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The slots, as inclusive ranges.
    pub slots: Vec<(u16, u16)>,
    /// The index of the `TakeOn` that froze them: their keys are sent only once it is
    /// committed, so nothing the group may still lose reaches the taker.
    pub frozen_at: OpIndex,
}

/// Slots expected from a giver (S6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    /// The slots, as inclusive ranges.
    pub slots: Vec<(u16, u16)>,
    /// Chunks installed so far: the number of the next one.
    pub next_chunk: u32,
    /// Where the next chunk must start.
    pub cursor: SlotCursor,
}

/// The replicated shard state of a group (S4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    /// False until the first `TakeOn`. Before it, a group that never got a cluster map serves
    /// every slot (one unsharded group, as before sharding existed); one that has a map serves
    /// no key (the primary's check, `slot_refusal`).
    pub sharded: bool,
    /// The last configuration taken on completely (reported as `config_done`).
    pub taken_on: ConfigNum,
    /// The entry that last moved `taken_on`: a primary reports it only once that is committed.
    pub taken_on_at: OpIndex,
    /// `taken_on` before that entry.
    pub taken_on_before: ConfigNum,
    /// The configuration being taken on (`taken_on` when nothing moves).
    pub target: ConfigNum,
    /// Slots executed here.
    pub served: SlotSet,
    /// Slots handed off and not dropped yet (the union of `outgoing`).
    pub frozen: SlotSet,
    /// Slots expected and not installed yet (the union of `incoming`).
    pub arriving: SlotSet,
    /// Moves out, by taker.
    pub outgoing: BTreeMap<GroupId, Outgoing>,
    /// Moves in, by giver.
    pub incoming: BTreeMap<GroupId, Incoming>,
    /// Moves in of `target` already installed, by giver, with the index of their `Install`
    /// (the giver is told `installed` once that is committed).
    pub installed: BTreeMap<GroupId, OpIndex>,
}

impl ShardState {
    /// S4: whether a request on `slot` may execute here, or why not. Planted bugs serve
    /// frozen slots (`serve-after-handoff`) or arriving ones (`serve-before-install`).
    pub fn admits(&self, slot: u16, bugs: Bugs) -> Result<(), RequestError> {
        if !self.sharded || self.served.contains(slot) {
            return Ok(());
        }
        if self.arriving.contains(slot) {
            if bugs.has(Bug::ServeBeforeInstall) {
                return Ok(());
            }
            return Err(RequestError::SlotMoving { slot });
        }
        if self.frozen.contains(slot) && bugs.has(Bug::ServeAfterHandoff) {
            return Ok(());
        }
        Err(RequestError::WrongGroup {
            slot,
            config: self.target,
        })
    }

    /// Keys the store may change on its own (expiry, eviction): those of served slots, or
    /// every key before sharding. Frozen keys must not change while they are sent (S5), and
    /// arriving ones are not ours yet.
    pub fn owns_key(&self, key: &[u8]) -> bool {
        !self.sharded || self.served.contains(key_slot(key))
    }

    /// True while slots move into or out of the group.
    pub fn moving(&self) -> bool {
        !self.outgoing.is_empty() || !self.incoming.is_empty()
    }

    /// The first slot moving in or out, if any.
    pub fn first_moving_slot(&self) -> Option<u16> {
        let out = self.outgoing.values().flat_map(|o| o.slots.first());
        let inc = self.incoming.values().flat_map(|i| i.slots.first());
        out.chain(inc).map(|&(start, _)| start).min()
    }

    /// A digest of the shard state (part of [`ReplicatedState::digest`]).
    pub fn digest(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |n: u64| hash = (hash ^ n).wrapping_mul(0x0000_0100_0000_01b3);
        mix(u64::from(self.sharded));
        mix(self.taken_on.0);
        mix(self.taken_on_at.0);
        mix(self.taken_on_before.0);
        mix(self.target.0);
        for set in [&self.served, &self.frozen, &self.arriving] {
            set.words().iter().for_each(|&w| mix(w));
        }
        let mix_ranges = |mix: &mut dyn FnMut(u64), ranges: &[(u16, u16)]| {
            for &(start, end) in ranges {
                mix(u64::from(start) << 16 | u64::from(end));
            }
        };
        for (to, out) in &self.outgoing {
            mix(u64::from(to.0));
            mix(out.frozen_at.0);
            mix_ranges(&mut mix, &out.slots);
        }
        for (from, inc) in &self.incoming {
            mix(u64::from(from.0));
            mix(u64::from(inc.next_chunk));
            mix_ranges(&mut mix, &inc.slots);
            if let Some(key) = &inc.cursor.key {
                key.iter().for_each(|&b| mix(u64::from(b)));
            }
            mix(inc.cursor.key_sent.unwrap_or(u64::MAX));
            mix(u64::from(inc.cursor.keys_done));
            mix(inc.cursor.client.map_or(u64::MAX, |c| c.0));
        }
        for (from, index) in &self.installed {
            mix(u64::from(from.0));
            mix(index.0);
        }
        hash
    }

    /// Moves `taken_on` to `target` once nothing moves in or out any more (S6).
    fn finish_if_done(&mut self, index: OpIndex) {
        if !self.moving() && self.taken_on != self.target {
            self.taken_on_before = self.taken_on;
            self.taken_on = self.target;
            self.taken_on_at = index;
        }
    }
}

/// What a `TakeOn` carries (see [`crate::message::Op::TakeOn`]).
pub(crate) struct TakeOn<'a> {
    pub config: ConfigNum,
    pub serve: &'a [(u16, u16)],
    pub give: &'a GroupSlots,
    pub take: &'a GroupSlots,
    pub release: &'a [(u16, u16)],
}

/// What an `InstallChunk` carries.
pub(crate) struct InstallChunk<'a> {
    pub config: ConfigNum,
    pub from: GroupId,
    pub chunk: u32,
    pub end: &'a SlotCursor,
    pub entries: &'a [(Bytes, tandem_kv::Entry)],
    pub clients: &'a [(ClientId, ClientRecord)],
}

impl ReplicatedState {
    /// S4, S5: starts taking on a configuration. An entry for a configuration already taken
    /// on (or being taken on) changes nothing: the primary never orders one, and every
    /// replica ignores it alike. `frozen_here` is false only on a backup under the
    /// planted bug `move-state-only-on-primary`, which then keeps serving what it gives.
    pub(crate) fn take_on(&mut self, entry: &LogEntry, op: &TakeOn<'_>, frozen_here: bool) {
        let shard = &mut self.shard;
        if shard.sharded && op.config <= shard.target {
            return;
        }
        let index = entry.pos.index;
        shard.sharded = true;
        shard.target = op.config;
        shard.installed.clear();
        shard.served.insert_ranges(op.serve);
        if !op.release.is_empty() {
            shard.served.remove_ranges(op.release);
            self.store.remove_slots(&SlotSet::of_ranges(op.release));
        }
        let shard = &mut self.shard;
        for (to, slots) in op.give {
            if !frozen_here {
                continue;
            }
            shard.served.remove_ranges(slots);
            shard.frozen.insert_ranges(slots);
            let frozen_at = index;
            let slots = slots.clone();
            shard.outgoing.insert(*to, Outgoing { slots, frozen_at });
        }
        for (from, slots) in op.take {
            shard.arriving.insert_ranges(slots);
            let incoming = Incoming {
                slots: slots.clone(),
                next_chunk: 0,
                cursor: SlotCursor::default(),
            };
            shard.incoming.insert(*from, incoming);
        }
        shard.finish_if_done(index);
    }

    /// S6: writes the next chunk of an arriving move into the store (not served yet) and
    /// merges the giver's at-most-once records (S8: the higher `seq` of each session wins; a
    /// merged record counts as executed at this entry, so a retry is answered once this entry
    /// is committed here).
    pub(crate) fn install_chunk(&mut self, entry: &LogEntry, op: &InstallChunk<'_>) {
        if op.config != self.shard.target {
            return;
        }
        let Some(incoming) = self.shard.incoming.get_mut(&op.from) else {
            return;
        };
        if op.chunk != incoming.next_chunk {
            return;
        }
        incoming.next_chunk = incoming.next_chunk.saturating_add(1);
        incoming.cursor = op.end.clone();
        let slots = SlotSet::of_ranges(&incoming.slots);
        for (key, value) in op.entries {
            if slots.contains(key_slot(key)) {
                // L16: a value bigger than a chunk comes in pieces, appended in order.
                self.store.insert_piece(key.clone(), value.clone());
            }
        }
        for (client, record) in op.clients {
            if self
                .clients
                .get(client)
                .is_some_and(|ours| ours.seq >= record.seq)
            {
                continue;
            }
            let record = ClientRecord {
                index: entry.pos.index,
                ..record.clone()
            };
            self.remember(*client, record);
        }
    }

    /// S6: the slots arriving from `from` are served from this entry on.
    pub(crate) fn install(&mut self, entry: &LogEntry, config: ConfigNum, from: GroupId) {
        let shard = &mut self.shard;
        if config != shard.target {
            return;
        }
        let Some(incoming) = shard.incoming.remove(&from) else {
            return;
        };
        shard.arriving.remove_ranges(&incoming.slots);
        shard.served.insert_ranges(&incoming.slots);
        shard.installed.insert(from, entry.pos.index);
        shard.finish_if_done(entry.pos.index);
    }

    /// S6: the taker installed the slots frozen for `to`: these keys of them are deleted.
    pub(crate) fn drop_keys(&mut self, config: ConfigNum, to: GroupId, keys: &[Bytes]) {
        if config != self.shard.target {
            return;
        }
        let Some(outgoing) = self.shard.outgoing.get(&to) else {
            return;
        };
        let slots = SlotSet::of_ranges(&outgoing.slots);
        let keys: Vec<Bytes> = keys
            .iter()
            .filter(|key| slots.contains(key_slot(key)))
            .cloned()
            .collect();
        self.store.evict(&keys);
    }

    /// S6: every key of the slots frozen for `to` was deleted by `DropKeys` entries (the
    /// primary orders this once its scan found none left; nothing adds keys to frozen slots):
    /// the move is over here.
    pub(crate) fn drop_slots(&mut self, entry: &LogEntry, config: ConfigNum, to: GroupId) {
        if config != self.shard.target {
            return;
        }
        let Some(outgoing) = self.shard.outgoing.remove(&to) else {
            return;
        };
        self.shard.frozen.remove_ranges(&outgoing.slots);
        self.shard.finish_if_done(entry.pos.index);
    }
}
