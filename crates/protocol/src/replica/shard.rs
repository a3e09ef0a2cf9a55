//! The group's share of the sharded keyspace (S4-S10), as part of its replicated state: which
//! configuration it has taken on, the slots it serves, the slots it is pre-copying (served,
//! with the keys changed since), handing off (frozen) and those it is waiting to install.
//! Changed only by the ops `TakeOn`, `PreCopy`, `Freeze`, `InstallChunk`, `Install` and
//! `Drop`, and by writes to pre-copied slots (their dirty set), applied identically by every
//! replica, so a promoted backup or a new one (it gets this with the state transfer) carries
//! a move on where its primary left it.

use std::collections::BTreeMap;

use bytes::Bytes;
use imbl::OrdSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tandem_kv::slots::{SlotSet, key_slot};

use crate::bug::{Bug, Bugs};
use crate::ids::{ClientId, ConfigNum, GroupId, OpIndex};
use crate::message::{ClientRecord, GroupSlots, LogEntry, RequestError, SlotCursor};
use crate::replica::state::ReplicatedState;

/// Bytes counted per dirty key on top of its name (the set's own bookkeeping).
const DIRTY_KEY_OVERHEAD_BYTES: usize = 16;

/// The keys of pre-copied slots changed since the pre-copy began (S9): names only, in an
/// ordered persistent set (a state snapshot copies it in O(1), and the delta is sent in its
/// order, resumable from any key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dirty {
    keys: OrdSet<Bytes>,
    /// Key bytes held, with [`DIRTY_KEY_OVERHEAD_BYTES`] each.
    bytes: usize,
}

impl Dirty {
    /// Records that `key` changed.
    fn insert(&mut self, key: &Bytes) {
        if self.keys.insert(key.clone()).is_none() {
            self.bytes = self
                .bytes
                .saturating_add(key.len() + DIRTY_KEY_OVERHEAD_BYTES);
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> &OrdSet<Bytes> {
        &self.keys
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key changed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The memory the set holds, roughly (the primary bounds it: S10).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn digest(&self, mix: &mut dyn FnMut(u64)) {
        mix(self.keys.len() as u64);
        for key in &self.keys {
            mix(key.len() as u64);
            key.iter().for_each(|&b| mix(u64::from(b)));
        }
    }
}

impl Serialize for Dirty {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.keys.iter())
    }
}

impl<'de> Deserialize<'de> for Dirty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Dirty, D::Error> {
        // Element by element (a declared length never reserves memory): the set arrives only
        // inside a state transfer's last chunk, bounded by the frame.
        let keys: Vec<Bytes> = Vec::deserialize(deserializer)?;
        let mut dirty = Dirty::default();
        keys.iter().for_each(|key| dirty.insert(key));
        Ok(dirty)
    }
}

/// Slots being pre-copied to a taker (S9): still served here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCopying {
    /// The slots, as inclusive ranges.
    pub slots: Vec<(u16, u16)>,
    /// The same slots as a set (derived from `slots`), for the check on every write.
    pub set: SlotSet,
    /// The index of the `PreCopy`.
    pub started_at: OpIndex,
    /// Keys of these slots changed since `started_at`.
    pub dirty: Dirty,
}

/// Slots frozen for a taker (S5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The slots, as inclusive ranges.
    pub slots: Vec<(u16, u16)>,
    /// The index of the `TakeOn` or `Freeze` that froze them: the keys sent after the freeze
    /// are sent only once it is committed, so nothing the group may still lose reaches the
    /// taker.
    pub frozen_at: OpIndex,
    /// Keys changed during the pre-copy before the freeze (empty without one): sent again
    /// after the key scan (S10).
    #[serde(default)]
    pub dirty: Dirty,
}

/// How a replica applies the slots a configuration takes away from its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Giving {
    /// Frozen at once (`TakeOn`, S5).
    Freeze,
    /// Still served, their changes recorded (`PreCopy`, S9).
    PreCopy,
    /// Ignored: the planted bug `move-state-only-on-primary` on a backup, which then keeps
    /// serving what its group gives.
    Ignore,
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
    /// Moves out being pre-copied, by taker (S9): their slots are still in `served`.
    #[serde(default)]
    pub precopy: BTreeMap<GroupId, PreCopying>,
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

    /// True while slots move into or out of the group (pre-copies included).
    pub fn moving(&self) -> bool {
        !self.outgoing.is_empty() || !self.incoming.is_empty() || !self.precopy.is_empty()
    }

    /// The first slot moving in or out (or being pre-copied), if any.
    pub fn first_moving_slot(&self) -> Option<u16> {
        let out = self.outgoing.values().flat_map(|o| o.slots.first());
        let inc = self.incoming.values().flat_map(|i| i.slots.first());
        let pre = self.precopy.values().flat_map(|p| p.slots.first());
        out.chain(inc).chain(pre).map(|&(start, _)| start).min()
    }

    /// S9: `key` may have changed in this entry: recorded if its slot is being pre-copied.
    pub(crate) fn note_changed(&mut self, key: &Bytes) {
        if self.precopy.is_empty() {
            return;
        }
        let slot = key_slot(key);
        if let Some(pre) = self.precopy.values_mut().find(|p| p.set.contains(slot)) {
            pre.dirty.insert(key);
        }
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
            out.dirty.digest(&mut mix);
        }
        for (to, pre) in &self.precopy {
            mix(u64::from(to.0));
            mix(pre.started_at.0);
            mix_ranges(&mut mix, &pre.slots);
            pre.dirty.digest(&mut mix);
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
            if let Some(key) = &inc.cursor.dirty {
                key.iter().for_each(|&b| mix(u64::from(b)));
            }
            mix(inc.cursor.dirty_sent.unwrap_or(u64::MAX));
            mix(u64::from(inc.cursor.dirty_done));
            mix(inc.cursor.client.map_or(u64::MAX, |c| c.0));
        }
        for (from, index) in &self.installed {
            mix(u64::from(from.0));
            mix(index.0);
        }
        hash
    }

    /// S5, S10: `slots` are no longer served, but frozen for `to` from entry `index` on.
    fn freeze(&mut self, to: GroupId, slots: Vec<(u16, u16)>, index: OpIndex, dirty: Dirty) {
        self.served.remove_ranges(&slots);
        self.frozen.insert_ranges(&slots);
        let frozen_at = index;
        self.outgoing.insert(
            to,
            Outgoing {
                slots,
                frozen_at,
                dirty,
            },
        );
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
    pub deleted: &'a [Bytes],
    pub entries: &'a [(Bytes, tandem_kv::Entry)],
    pub clients: &'a [(ClientId, ClientRecord)],
}

impl ReplicatedState {
    /// S4, S5, S9: starts taking on a configuration, the slots it gives away handled as
    /// `giving` says (frozen by `TakeOn`, pre-copied by `PreCopy`). An entry for a
    /// configuration already taken on (or being taken on) changes nothing: the primary never
    /// orders one, and every replica ignores it alike.
    pub(crate) fn take_on(&mut self, entry: &LogEntry, op: &TakeOn<'_>, giving: Giving) {
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
            match giving {
                Giving::Ignore => {}
                Giving::Freeze => shard.freeze(*to, slots.clone(), index, Dirty::default()),
                Giving::PreCopy => {
                    let pre = PreCopying {
                        slots: slots.clone(),
                        set: SlotSet::of_ranges(slots),
                        started_at: index,
                        dirty: Dirty::default(),
                    };
                    shard.precopy.insert(*to, pre);
                }
            }
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
        // S10: a key changed during the pre-copy replaces what an earlier chunk stored.
        let deleted: Vec<Bytes> = op
            .deleted
            .iter()
            .filter(|key| slots.contains(key_slot(key)))
            .cloned()
            .collect();
        self.store.evict(&deleted);
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

    /// S10: the pre-copy to `to` ends: its slots are frozen from this entry on, with the keys
    /// changed since the pre-copy began to send again. Ignored (on every replica alike) when
    /// no such pre-copy is under way, and under the planted bug `move-state-only-on-primary`
    /// on a backup, which never started it.
    pub(crate) fn freeze(&mut self, entry: &LogEntry, config: ConfigNum, to: GroupId) {
        let shard = &mut self.shard;
        if config != shard.target {
            return;
        }
        let Some(pre) = shard.precopy.remove(&to) else {
            return;
        };
        shard.freeze(to, pre.slots, entry.pos.index, pre.dirty);
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
