//! Redis Cluster's hash slots (S1): a key belongs to one of 16,384 slots, the CRC16 (XMODEM) of
//! the key, or of its hash tag: the text between the first `{` and the next `}` when that text
//! is not empty. Keys that share a tag share a slot, which is how an application keeps the keys
//! of one multi-key command or transaction together.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Command, Store};

/// The number of hash slots; slots are numbered `0..SLOT_COUNT`.
pub const SLOT_COUNT: u16 = 16384;

/// The slot of `key` (S1).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) & (SLOT_COUNT - 1)
}

/// The part of `key` that is hashed: the tag between the first `{` and the next `}` if that is
/// not empty, else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &rest[..len],
        _ => key,
    }
}

/// CRC16 with polynomial 0x1021, initial value 0, no reflection (the XMODEM variant Redis
/// Cluster uses), computed bit by bit: keys are short and a table would be 512 bytes of
/// constants to review.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The keys of a request do not all hash to one slot (Redis's `-CROSSSLOT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossSlot;

/// The one slot every key of `keys` hashes to: `Ok(None)` without keys, `Err(CrossSlot)` when
/// they span several slots.
pub fn slot_of_keys<'a>(
    keys: impl IntoIterator<Item = &'a Bytes>,
) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for key in keys {
        let this = key_slot(key);
        match slot {
            None => slot = Some(this),
            Some(s) if s == this => {}
            Some(_) => return Err(CrossSlot),
        }
    }
    Ok(slot)
}

impl Command {
    /// The slot of the command's keys (S1): `Ok(None)` for a command without keys (keyspace-
    /// wide or connection commands), `Err(CrossSlot)` when its keys span slots.
    pub fn slot(&self) -> Result<Option<u16>, CrossSlot> {
        slot_of_keys(self.keys())
    }
}

/// The slot of a whole request (a pipeline or a transaction): one slot for all of its keys.
pub fn slot_of_commands(cmds: &[Command]) -> Result<Option<u16>, CrossSlot> {
    slot_of_keys(cmds.iter().flat_map(|c| c.keys()))
}

impl Store {
    /// Deletes every key of the slots in `slots` (S6: the giver drops slots the taker
    /// installed); returns how many. O(keys in the store).
    pub fn remove_slots(&mut self, slots: &SlotSet) -> usize {
        let keys: Vec<Bytes> = self
            .data
            .iter()
            .filter(|item| slots.contains(key_slot(item.key())))
            .map(|item| item.key_bytes())
            .collect();
        keys.iter().filter(|key| self.remove(key).is_some()).count()
    }

    /// How many keys (live or expired) of `slot` are in memory. O(keys in the store).
    pub fn count_keys_in_slot(&self, slot: u16) -> usize {
        self.data
            .iter()
            .filter(|item| key_slot(item.key()) == slot)
            .count()
    }

    /// Like [`Store::expired_keys`], only keys `keep` accepts (S5: frozen and arriving slots
    /// must not change, so the sweep passes over them); looks at no more than `4 * limit`
    /// expired keys.
    pub fn expired_keys_where(
        &self,
        now_ms: u64,
        limit: usize,
        keep: &dyn Fn(&[u8]) -> bool,
    ) -> Vec<Bytes> {
        self.expiries
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit.saturating_mul(4))
            .filter(|(_, key)| keep(key))
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

/// A set of slots: one bit per slot (2 KiB). Deserialized from a peer it may have any
/// length; every read goes through [`SlotSet::contains`], which treats missing words as
/// empty, so a short or long vector is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSet {
    words: Vec<u64>,
}

const WORDS: usize = SLOT_COUNT as usize / 64;

impl Default for SlotSet {
    fn default() -> SlotSet {
        SlotSet {
            words: vec![0; WORDS],
        }
    }
}

impl SlotSet {
    /// The slots of inclusive `ranges`.
    pub fn of_ranges(ranges: &[(u16, u16)]) -> SlotSet {
        let mut set = SlotSet::default();
        set.insert_ranges(ranges);
        set
    }

    /// Is `slot` in the set?
    pub fn contains(&self, slot: u16) -> bool {
        self.words
            .get(usize::from(slot) / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Adds the slots of inclusive `ranges` (slots beyond `SLOT_COUNT` are ignored).
    pub fn insert_ranges(&mut self, ranges: &[(u16, u16)]) {
        self.words.resize(WORDS, 0);
        for &(start, end) in ranges {
            for slot in start..=end.min(SLOT_COUNT - 1) {
                self.words[usize::from(slot) / 64] |= 1 << (slot % 64);
            }
        }
    }

    /// Removes the slots of inclusive `ranges`.
    pub fn remove_ranges(&mut self, ranges: &[(u16, u16)]) {
        self.words.resize(WORDS, 0);
        for &(start, end) in ranges {
            for slot in start..=end.min(SLOT_COUNT - 1) {
                self.words[usize::from(slot) / 64] &= !(1 << (slot % 64));
            }
        }
    }

    /// The bits, 64 slots a word (for digests).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// How many slots are in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True if no slot is in the set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The set as inclusive ranges, in order.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for slot in 0..SLOT_COUNT {
            if !self.contains(slot) {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == slot => last.1 = slot,
                _ => ranges.push((slot, slot)),
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_of(n: usize) -> Store {
        let mut store = Store::new();
        for i in 0..n {
            let key = Bytes::from(format!("key:{i}"));
            let value = crate::store::Value::Str(Bytes::from(vec![b'v'; i % 50]));
            store.insert_entry(key, crate::Entry::persistent(value));
        }
        store
    }

    #[test]
    fn s5_chunks_of_slots_hold_exactly_their_keys_with_bounded_scans() {
        let mut store = store_of(3000);
        let slots = SlotSet::of_ranges(&[(0, 2000), (9000, 9100)]);
        let mut expected: Vec<Bytes> = store
            .data
            .iter()
            .map(|item| item.key_bytes())
            .filter(|key| slots.contains(key_slot(key)))
            .collect();
        let (mut after, mut sent, mut got, mut chunks) = (None, None, Vec::new(), 0);
        loop {
            let chunk = store.chunk_of_slots(&slots, after.as_ref(), sent, 300, 1000, 50);
            chunks += 1;
            got.extend(chunk.entries.into_iter().map(|(key, _)| key));
            if chunk.done {
                break;
            }
            (after, sent) = (chunk.last_key, chunk.last_sent);
        }
        assert!(chunks > 10, "small chunks: {chunks}");
        assert_eq!(got, expected);
        expected.sort();
        let before = store.len();
        assert_eq!(store.remove_slots(&slots), expected.len());
        assert_eq!(store.len(), before - expected.len());
        assert!(
            store
                .data
                .iter()
                .all(|item| !slots.contains(key_slot(item.key())))
        );
        let all: usize = (0..SLOT_COUNT).map(|s| store.count_keys_in_slot(s)).sum();
        assert_eq!(all, store.len());
    }

    #[test]
    fn s4_slot_sets_round_trip_through_ranges() {
        let mut set = SlotSet::of_ranges(&[(0, 10), (100, 100), (16000, 16383)]);
        assert!(set.contains(0) && set.contains(10) && !set.contains(11));
        assert!(set.contains(16383) && !set.contains(15999));
        assert_eq!(set.len(), 11 + 1 + 384);
        set.remove_ranges(&[(5, 100)]);
        assert_eq!(set.ranges(), vec![(0, 4), (16000, 16383)]);
        let short = SlotSet { words: vec![1] };
        assert!(short.contains(0) && !short.contains(16383));
        assert!(SlotSet::default().is_empty());
    }

    #[test]
    fn s1_slots_match_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT` on redis-server 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"{user1000}.followers"), 3443);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
    }

    #[test]
    fn s1_cross_slot_requests_are_named() {
        let a = Bytes::from_static(b"{t}a");
        let b = Bytes::from_static(b"{t}b");
        let c = Bytes::from_static(b"c");
        assert_eq!(slot_of_keys([&a, &b]), Ok(Some(key_slot(b"t"))));
        assert_eq!(slot_of_keys([&a, &c]), Err(CrossSlot));
        assert_eq!(slot_of_keys(std::iter::empty()), Ok(None));
    }
}
