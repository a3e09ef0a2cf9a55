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
/// Cluster uses), a byte at a time through a table the compiler builds from the bitwise
/// definition (`crc16_bitwise`), so there are no constants to review. Every request's keys
/// go through it on the primary (S4).
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc = (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)];
    }
    crc
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = crc16_bitwise(i as u16);
        i += 1;
    }
    table
};

/// The CRC of one byte `b` (as the high byte of the register), bit by bit.
const fn crc16_bitwise(b: u16) -> u16 {
    let mut crc = b << 8;
    let mut bit = 0;
    while bit < 8 {
        crc = if crc & 0x8000 != 0 {
            (crc << 1) ^ 0x1021
        } else {
            crc << 1
        };
        bit += 1;
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
    /// Every request goes through this twice (the front end routes it, the core checks it,
    /// S4), so it walks the keys in place instead of collecting [`Command::keys`].
    pub fn slot(&self) -> Result<Option<u16>, CrossSlot> {
        match self {
            Command::MGet { keys } | Command::Del { keys } | Command::Exists { keys } => {
                slot_of_keys(keys)
            }
            Command::MSet { pairs } => slot_of_keys(pairs.iter().map(|(key, _)| key)),
            _ => Ok(self.single_key().map(|key| key_slot(key))),
        }
    }
}

/// The slot of a whole request (a pipeline or a transaction): one slot for all of its keys.
pub fn slot_of_commands(cmds: &[Command]) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for cmd in cmds {
        match (slot, cmd.slot()?) {
            (_, None) => {}
            (None, this) => slot = this,
            (Some(first), Some(this)) if first == this => {}
            (Some(_), Some(_)) => return Err(CrossSlot),
        }
    }
    Ok(slot)
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

    /// Up to `max_keys` keys of the slots in `slots` after `after` (in the store's order),
    /// passing over at most `max_scan` keys of other slots: the keys, the last key looked at
    /// (where the next call resumes) and whether the store's end was reached. The giver deletes
    /// a dropped move's keys in such batches (S6), so no single entry of its history holds the
    /// replicas for long.
    pub fn keys_of_slots(
        &self,
        slots: &SlotSet,
        after: Option<&Bytes>,
        max_keys: usize,
        max_scan: usize,
    ) -> (Vec<Bytes>, Option<Bytes>, bool) {
        let start = match after {
            None => std::ops::Bound::Unbounded,
            Some(key) => std::ops::Bound::Excluded((crate::digest::key_hash(key), key.as_ref())),
        };
        let mut items = self.data.iter_from(start).peekable();
        let (mut keys, mut scanned, mut last) = (Vec::new(), 0usize, None);
        while let Some(&item) = items.peek() {
            if keys.len() >= max_keys || scanned >= max_scan {
                break;
            }
            if slots.contains(key_slot(item.key())) {
                keys.push(item.key_bytes());
            } else {
                scanned += 1;
            }
            last = Some(item.key());
            items.next();
        }
        let done = items.peek().is_none();
        (keys, last.map(Bytes::copy_from_slice), done)
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
        let (mut after, mut batched) = (None, Vec::new());
        loop {
            let (keys, last, done) = store.keys_of_slots(&slots, after.as_ref(), 7, 40);
            batched.extend(keys);
            if done {
                break;
            }
            after = last;
        }
        assert_eq!(batched, expected);
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

    /// What a move costs on a large store when keys are ordered by hash, not slot: every
    /// chunk scans past other slots' keys. Run with `--ignored --nocapture` to print it.
    #[test]
    #[ignore = "a measurement: prints timings for 1M keys"]
    fn s5_measure_the_scan_of_one_slot_in_a_million_keys() {
        let mut store = store_of(1_000_000);
        let one = SlotSet::of_ranges(&[(100, 100)]);
        let half = SlotSet::of_ranges(&[(0, 8191)]);
        for (name, slots) in [("one slot", &one), ("half the slots", &half)] {
            let started = std::time::Instant::now();
            let (mut after, mut sent, mut chunks, mut keys, mut longest) = (None, None, 0, 0, 0);
            loop {
                let t = std::time::Instant::now();
                let chunk =
                    store.chunk_of_slots(slots, after.as_ref(), sent, 1 << 20, 65_536, 65_536);
                longest = longest.max(t.elapsed().as_micros());
                chunks += 1;
                keys += chunk.entries.len();
                if chunk.done {
                    break;
                }
                (after, sent) = (chunk.last_key, chunk.last_sent);
            }
            println!(
                "{name}: {keys} keys in {chunks} chunks, {:?} in all, longest chunk {longest} us",
                started.elapsed()
            );
        }
        let started = std::time::Instant::now();
        let removed = store.remove_slots(&one);
        println!("drop one slot: {removed} keys in {:?}", started.elapsed());
        let started = std::time::Instant::now();
        let removed = store.remove_slots(&half);
        println!(
            "drop half the slots: {removed} keys in {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn s1_the_crc_table_matches_the_bit_by_bit_definition() {
        let bitwise = |data: &[u8]| {
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
        };
        let keys: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| format!("key:{i}:{}", i.wrapping_mul(2_654_435_761)).into_bytes())
            .collect();
        for key in &keys {
            assert_eq!(crc16_xmodem(key), bitwise(key));
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(crc16_xmodem(&all), bitwise(&all));
    }

    #[test]
    fn s5_a_resume_point_past_a_value_s_end_does_not_panic() {
        let store = store_of(100);
        let slots = SlotSet::of_ranges(&[(0, SLOT_COUNT - 1)]);
        let key = Bytes::from("key:99");
        for sent in [0, 48, 49, 1000, usize::MAX] {
            let chunk = store.chunk_of_slots(&slots, Some(&key), Some(sent), 16, 10, 10);
            assert!(chunk.entries.len() <= 10);
        }
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

    /// The slot as the Redis Cluster specification defines it, bit by bit and without the
    /// table, to compare with on random keys.
    fn reference_slot(key: &[u8]) -> u16 {
        let hashed = match key.iter().position(|&b| b == b'{') {
            Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
                Some(0) | None => key,
                Some(len) => &key[open + 1..open + 1 + len],
            },
            None => key,
        };
        let mut crc: u16 = 0;
        for &byte in hashed {
            for bit in (0..8).rev() {
                let top = (crc >> 15) ^ u16::from((byte >> bit) & 1);
                crc <<= 1;
                if top == 1 {
                    crc ^= 0x1021;
                }
            }
        }
        crc % SLOT_COUNT
    }

    /// Random keys of 0-40 bytes over an alphabet heavy in braces, from a fixed seed.
    fn random_keys(count: usize) -> Vec<Bytes> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 41) as usize;
                let key: Vec<u8> = (0..len)
                    .map(|_| match next() % 8 {
                        0 => b'{',
                        1 => b'}',
                        _ => next() as u8,
                    })
                    .collect();
                Bytes::from(key)
            })
            .collect()
    }

    #[test]
    fn s1_table_slots_match_the_bitwise_definition_on_random_keys() {
        for key in random_keys(20_000) {
            assert_eq!(key_slot(&key), reference_slot(&key), "key {key:?}");
        }
    }

    #[test]
    fn s1_command_slots_walk_the_same_keys_as_command_keys() {
        let keys = random_keys(400);
        let mut cmds = Vec::new();
        for pair in keys.chunks(2) {
            let (a, b) = (pair[0].clone(), pair[1].clone());
            cmds.push(Command::Get { key: a.clone() });
            cmds.push(Command::Incr { key: b.clone() });
            cmds.push(Command::MGet {
                keys: vec![a.clone(), b.clone()],
            });
            cmds.push(Command::Del {
                keys: vec![a.clone(), a.clone()],
            });
            cmds.push(Command::MSet {
                pairs: vec![(b.clone(), a.clone()), (b.clone(), b.clone())],
            });
        }
        cmds.push(Command::DbSize);
        for cmd in &cmds {
            assert_eq!(cmd.slot(), slot_of_keys(cmd.keys()), "{cmd:?}");
        }
        for window in cmds.windows(3) {
            let keys = window.iter().flat_map(|c| c.keys());
            assert_eq!(slot_of_commands(window), slot_of_keys(keys));
        }
        assert_eq!(slot_of_commands(&[Command::DbSize]), Ok(None));
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
