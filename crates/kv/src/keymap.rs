//! [`Keymap`]: every key in memory, ordered by (63-bit hash, key), in copy-on-write buckets.
//!
//! Bucket `b` holds the keys whose hash's top `bits` bits are `b`, as a Vec sorted by
//! (hash, key). Buckets split the hash space in order, so walking them in turn walks the
//! whole keyspace in (hash, key) order: SCAN cursors, KEYS, RANDOMKEY, the digest and the
//! state transfer see exactly the order an ordered map would give (R1, P6).
//!
//! Each bucket is an `Arc`: cloning the map (the primary's snapshot for a transfer, P6)
//! copies one pointer per bucket, and a later write copies only the bucket it touches.
//! A sorted Vec beats a `BTreeMap` here: one binary search over contiguous items, no node
//! slack, and an append on the right edge when a transfer loads keys in order.
//!
//! The bucket count grows with the map (every bucket splits in two when the average
//! passes `SPLIT_AT`) up to `2^MAX_BITS`: an empty or tiny map (the simulator's per-key
//! model makes one per step) stays one small allocation, and a clone of a tiny map is
//! a couple of pointer copies.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::digest::key_hash;
use crate::store::Entry;

/// At most `2^MAX_BITS` buckets: 16k keeps a 1M-key bucket at ~60 items (a small
/// memmove per insert) while a snapshot clone stays ~16k pointer copies.
const MAX_BITS: u32 = 14;
/// Every bucket splits when the average bucket holds more items than this.
const SPLIT_AT: usize = 64;
/// Keys up to this length live inline in the item (no allocation, no pointer chase).
const INLINE_KEY: usize = 22;

/// A key as stored. Copied on insert, so the map never pins a request's or a network
/// buffer's memory, and short keys (the common case) cost no allocation at all.
#[derive(Clone)]
enum StoredKey {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Arc<[u8]>),
}

impl StoredKey {
    fn new(key: &[u8]) -> StoredKey {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key);
                StoredKey::Inline(len, bytes)
            }
            _ => StoredKey::Heap(Arc::from(key)),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            StoredKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            StoredKey::Heap(bytes) => bytes,
        }
    }
}

/// One key with its entry.
#[derive(Clone)]
pub(crate) struct Item {
    /// `key_hash(key)`, kept so comparisons and bucket choice never rehash.
    pub(crate) hash: u64,
    key: StoredKey,
    pub(crate) entry: Entry,
    /// Last access, Unix seconds, for the LRU eviction policies (L12); 0 until touched.
    pub(crate) access_s: u32,
}

impl Item {
    pub(crate) fn key(&self) -> &[u8] {
        self.key.as_slice()
    }

    /// A fresh `Bytes` copy of the key (exact size, shares nothing with the map).
    pub(crate) fn key_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.key())
    }

    fn cmp_to(&self, hash: u64, key: &[u8]) -> Ordering {
        self.hash.cmp(&hash).then_with(|| self.key().cmp(key))
    }
}

type Bucket = Vec<Item>;

/// Where a key is or would go: found at `Ok(index)` or to be inserted at `Err(index)`.
/// Valid until the map changes.
pub(crate) struct Position {
    hash: u64,
    bucket: usize,
    index: Result<usize, usize>,
}

/// The ordered keyspace (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct Keymap {
    /// `2^bits` buckets, or none before the first insert.
    buckets: Vec<Arc<Bucket>>,
    bits: u32,
    len: usize,
}

impl Keymap {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bucket_of(&self, hash: u64) -> usize {
        bucket_index(hash, self.bits)
    }

    /// One binary search; `hint_append` first checks the bucket's right edge (a transfer
    /// loads keys in order, so that check usually settles it).
    fn locate(&self, key: &[u8], hint_append: bool) -> Position {
        let hash = key_hash(key);
        let bucket = self.bucket_of(hash);
        let items: &[Item] = self.buckets.get(bucket).map_or(&[], |b| b);
        let index = match items.last() {
            None => Err(0),
            Some(last) if hint_append && last.cmp_to(hash, key) == Ordering::Less => {
                Err(items.len())
            }
            Some(_) => search(items, guess(hash, self.bits, items.len()), hash, key),
        };
        Position {
            hash,
            bucket,
            index,
        }
    }

    pub(crate) fn position(&self, key: &[u8]) -> Position {
        self.locate(key, false)
    }

    pub(crate) fn position_for_append(&self, key: &[u8]) -> Position {
        self.locate(key, true)
    }

    pub(crate) fn at(&self, pos: &Position) -> Option<&Entry> {
        let index = pos.index.ok()?;
        Some(&self.buckets[pos.bucket][index].entry)
    }

    /// The entry at a found position for writing; copies its bucket if a clone shares it.
    pub(crate) fn at_mut(&mut self, pos: &Position) -> Option<&mut Entry> {
        let index = pos.index.ok()?;
        Some(&mut Arc::make_mut(&mut self.buckets[pos.bucket])[index].entry)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        let pos = self.position(key);
        self.at(&pos)
    }

    /// The item at `key`, with its key and access time.
    pub(crate) fn get_item(&self, key: &[u8]) -> Option<&Item> {
        let pos = self.position(key);
        let index = pos.index.ok()?;
        Some(&self.buckets[pos.bucket][index])
    }

    /// An item chosen by `random`: a bucket, then a place in it (key hashes of short keys
    /// are not spread evenly enough to sample by hash). `None` when empty.
    pub(crate) fn item_at_random(&self, random: u64) -> Option<&Item> {
        let count = self.buckets.len() as u64;
        for step in 0..count {
            let bucket = &self.buckets[((random.wrapping_add(step)) % count) as usize];
            if !bucket.is_empty() {
                return bucket.get(((random >> 32) % bucket.len() as u64) as usize);
            }
        }
        None
    }

    /// Sets `key`'s access time (L12); copies its bucket only if the time changes.
    pub(crate) fn touch(&mut self, key: &[u8], now_s: u32) {
        let pos = self.position(key);
        let Ok(index) = pos.index else {
            return;
        };
        if self.buckets[pos.bucket][index].access_s != now_s {
            Arc::make_mut(&mut self.buckets[pos.bucket])[index].access_s = now_s;
        }
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let pos = self.position(key);
        self.at_mut(&pos)
    }

    /// Stores `entry` at `pos` (found by [`Keymap::position`] for `key`); returns the
    /// entry it replaced.
    pub(crate) fn put_at(&mut self, pos: Position, key: &[u8], entry: Entry) -> Option<Entry> {
        if let Ok(index) = pos.index {
            let bucket = Arc::make_mut(&mut self.buckets[pos.bucket]);
            return Some(std::mem::replace(&mut bucket[index].entry, entry));
        }
        if self.buckets.is_empty() {
            self.buckets.push(Arc::default());
        }
        let bucket = Arc::make_mut(&mut self.buckets[pos.bucket]);
        if bucket.len() == bucket.capacity() {
            // Grow by a quarter, not double: ~10% slack instead of ~30% (memory per key).
            bucket.reserve_exact((bucket.len() / 4).max(4));
        }
        let item = Item {
            hash: pos.hash,
            key: StoredKey::new(key),
            entry,
            access_s: 0,
        };
        bucket.insert(pos.index.unwrap_or_else(|index| index), item);
        self.len += 1;
        if self.bits < MAX_BITS && self.len > SPLIT_AT << self.bits {
            self.split_all();
        }
        None
    }

    /// Removes the entry at a found position.
    pub(crate) fn remove_at(&mut self, pos: Position) -> Option<Entry> {
        let index = pos.index.ok()?;
        let bucket = Arc::make_mut(&mut self.buckets[pos.bucket]);
        let item = bucket.remove(index);
        if bucket.capacity() > 16 && bucket.len() < bucket.capacity() / 4 {
            bucket.shrink_to(bucket.len() * 2);
        }
        self.len -= 1;
        Some(item.entry)
    }

    /// Doubles the bucket count: each bucket splits at the next hash bit, in order.
    fn split_all(&mut self) {
        let bits = self.bits + 1;
        let mut buckets = Vec::with_capacity(self.buckets.len() * 2);
        for (index, bucket) in std::mem::take(&mut self.buckets).into_iter().enumerate() {
            let mut low = Arc::unwrap_or_clone(bucket);
            let cut = low.partition_point(|item| bucket_index(item.hash, bits) == index * 2);
            let high = low.split_off(cut);
            low.shrink_to_fit();
            buckets.extend([Arc::new(low), Arc::new(high)]);
        }
        self.buckets = buckets;
        self.bits = bits;
    }

    /// Every item in (hash, key) order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Item> + '_ {
        self.iter_from(Bound::Unbounded)
    }

    /// The items from `start` (a (hash, key) bound) on, in (hash, key) order.
    pub(crate) fn iter_from(&self, start: Bound<(u64, &[u8])>) -> impl Iterator<Item = &Item> {
        let (bucket, index) = match start {
            Bound::Unbounded => (0, 0),
            Bound::Included((hash, key)) | Bound::Excluded((hash, key)) => {
                let bucket = self.bucket_of(hash);
                let items: &[Item] = self.buckets.get(bucket).map_or(&[], |b| b);
                let inclusive = matches!(start, Bound::Included(_));
                let index = items.partition_point(|item| match item.cmp_to(hash, key) {
                    Ordering::Less => true,
                    Ordering::Equal => !inclusive,
                    Ordering::Greater => false,
                });
                (bucket, index)
            }
        };
        let first: &[Item] = self.buckets.get(bucket).map_or(&[], |b| &b[index..]);
        let rest = self.buckets.iter().skip(bucket + 1);
        first.iter().chain(rest.flat_map(|b| b.iter()))
    }

    /// (hash, key) of every key, in order (tests compare replies with it).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = (u64, Bytes)> + '_ {
        self.iter().map(|item| (item.hash, item.key_bytes()))
    }

    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// How many buckets two maps share (a clone shares all until one side writes).
    #[cfg(test)]
    pub(crate) fn shared_buckets(&self, other: &Keymap) -> usize {
        let pairs = self.buckets.iter().zip(&other.buckets);
        pairs.filter(|(a, b)| Arc::ptr_eq(a, b)).count()
    }
}

/// Where `hash` would sit in a bucket of `len` items if hashes were spread evenly over
/// the bucket's range (they are: FNV-1a), so the search starts next to the item.
fn guess(hash: u64, bits: u32, len: usize) -> usize {
    let shift = 63 - bits;
    let offset = hash & ((1 << shift) - 1);
    ((u128::from(offset) * len as u128) >> shift) as usize
}

/// Finds (hash, key) in sorted `items` starting at `guess`: gallops away from the guess,
/// then binary-searches the bracket. Expected O(1) probes near the guess (one or two
/// cache lines, where a plain binary search over a bucket touches ~6), O(log n) at worst.
fn search(items: &[Item], guess: usize, hash: u64, key: &[u8]) -> Result<usize, usize> {
    let cmp = |item: &Item| item.cmp_to(hash, key);
    let guess = guess.min(items.len() - 1);
    let (lo, hi) = match cmp(&items[guess]) {
        Ordering::Equal => return Ok(guess),
        Ordering::Less => {
            // items[..lo] < target; find a probe >= target.
            let (mut lo, mut step) = (guess + 1, 1);
            let hi = loop {
                let probe = guess + step;
                if probe >= items.len() {
                    break items.len();
                }
                if cmp(&items[probe]) != Ordering::Less {
                    break probe + 1;
                }
                lo = probe + 1;
                step *= 2;
            };
            (lo, hi)
        }
        Ordering::Greater => {
            // items[hi..] > target; find a probe <= target.
            let (mut hi, mut step) = (guess, 1);
            let lo = loop {
                if step > guess {
                    break 0;
                }
                let probe = guess - step;
                if cmp(&items[probe]) != Ordering::Greater {
                    break probe;
                }
                hi = probe;
                step *= 2;
            };
            (lo, hi)
        }
    };
    match items[lo..hi].binary_search_by(cmp) {
        Ok(index) => Ok(lo + index),
        Err(index) => Err(lo + index),
    }
}

/// The bucket of `hash` among `2^bits` (its top `bits` of 63 bits).
fn bucket_index(hash: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        // The hash has 63 bits and `bits` <= MAX_BITS, so this fits any usize.
        (hash >> (63 - bits)) as usize
    }
}

impl fmt::Debug for Keymap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|item| (item.key_bytes(), &item.entry)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{Store, Value};
    use crate::{Command, ExecContext};

    fn entry(text: &str) -> Entry {
        Entry::persistent(Value::Str(Bytes::copy_from_slice(text.as_bytes())))
    }

    fn run(store: &mut Store, line: &str) -> crate::Reply {
        let args: Vec<Bytes> = line
            .split_whitespace()
            .map(|word| Bytes::copy_from_slice(word.as_bytes()))
            .collect();
        let command = Command::parse(&args).expect("valid command");
        store.execute(&command, &ExecContext::default())
    }

    fn filled(n: usize) -> Store {
        let mut store = Store::new();
        for i in 0..n {
            store.insert_entry(Bytes::from(format!("key:{i}")), entry(&format!("v{i}")));
        }
        store
    }

    /// The (hash, key) order an ordered map of the same keys would give.
    fn expected_order(map: &Keymap) -> Vec<(u64, Vec<u8>)> {
        let mut keys: Vec<_> = map.iter().map(|i| (i.hash, i.key().to_vec())).collect();
        keys.sort();
        keys
    }

    #[test]
    fn iteration_is_hash_key_order_across_buckets() {
        let mut store = filled(20_000);
        assert!(store.data.bucket_count() > 64, "the map split into buckets");
        let walked: Vec<_> = store
            .data
            .iter()
            .map(|i| (i.hash, i.key().to_vec()))
            .collect();
        assert_eq!(walked.len(), 20_000);
        assert_eq!(walked, expected_order(&store.data));
        assert!(walked.iter().all(|(hash, key)| *hash == key_hash(key)));
        // Resuming after any key gives exactly the keys after it, across bucket edges.
        for (hash, key) in walked.iter().step_by(997) {
            let after: Vec<_> = store
                .data
                .iter_from(Bound::Excluded((*hash, key.as_slice())))
                .map(|i| (i.hash, i.key().to_vec()))
                .collect();
            let expected = walked.iter().filter(|k| *k > &(*hash, key.clone()));
            assert_eq!(after, expected.cloned().collect::<Vec<_>>());
        }
        for i in (0..20_000).step_by(2) {
            run(&mut store, &format!("del key:{i}"));
        }
        assert_eq!(store.len(), 10_000);
        let walked: Vec<_> = store.data.iter().map(|i| i.key().to_vec()).collect();
        assert_eq!(walked.len(), 10_000);
        assert_eq!(
            store
                .data
                .iter()
                .map(|i| (i.hash, i.key().to_vec()))
                .collect::<Vec<_>>(),
            expected_order(&store.data)
        );
    }

    #[test]
    fn matches_an_ordered_map_under_random_edits() {
        let (mut map, mut model) = (Keymap::default(), BTreeMap::new());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..40_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("k{}", state % 5_000).into_bytes();
            let slot = (key_hash(&key), key.clone());
            let pos = map.position(&key);
            assert_eq!(map.at(&pos), model.get(&slot), "step {step}");
            if state % 3 == 0 {
                assert_eq!(map.remove_at(pos), model.remove(&slot));
            } else {
                let value = entry(&step.to_string());
                assert_eq!(
                    map.put_at(pos, &key, value.clone()),
                    model.insert(slot, value)
                );
            }
            assert_eq!(map.len(), model.len());
        }
        let walked: Vec<_> = map.iter().map(|i| (i.hash, i.key().to_vec())).collect();
        assert_eq!(walked, model.keys().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_write_after_clone_is_seen_by_one_side_only() {
        let mut live = filled(5_000);
        let snapshot = live.clone();
        let before = snapshot.digest();
        assert_eq!(
            live.data.shared_buckets(&snapshot.data),
            live.data.bucket_count()
        );
        run(&mut live, "set key:1 changed");
        assert_eq!(
            live.data.shared_buckets(&snapshot.data),
            live.data.bucket_count() - 1,
            "a write copies only the bucket it touches"
        );
        run(&mut live, "set brand-new x");
        run(&mut live, "del key:2");
        assert_eq!(
            snapshot.digest(),
            before,
            "the clone does not see the writes"
        );
        assert_eq!(
            run(&mut live.clone(), "get key:1"),
            crate::Reply::Bulk("changed".into())
        );

        let mut other = snapshot.clone();
        run(&mut other, "set key:3 other");
        assert_eq!(run(&mut live, "get key:3"), crate::Reply::Bulk("v3".into()));
        assert_eq!(
            run(&mut other, "get key:1"),
            crate::Reply::Bulk("v1".into())
        );
        assert_eq!(snapshot.digest(), before);
    }

    #[test]
    fn chunks_of_a_snapshot_ignore_later_writes() {
        let mut live = filled(30_000);
        let snapshot = live.clone();
        let (mut copy, mut after, mut round) = (Store::new(), None, 0);
        loop {
            let chunk = snapshot.chunk_after(after.as_ref(), usize::MAX, 1_000);
            for (key, entry) in chunk.entries {
                copy.insert_entry(key, entry);
            }
            // The live store keeps changing between chunks (P6).
            for i in 0..300 {
                let n = round * 300 + i;
                run(&mut live, &format!("set key:{n} new"));
                run(&mut live, &format!("del key:{}", 29_999 - n));
                run(&mut live, &format!("set extra:{n} x"));
            }
            round += 1;
            if chunk.done {
                break;
            }
            after = chunk.last_key;
        }
        assert_eq!(copy.len(), 30_000);
        assert_eq!(copy.digest(), snapshot.digest());
        assert_ne!(live.digest(), snapshot.digest());
    }

    #[test]
    fn an_empty_store_allocates_no_bucket() {
        let empty = Store::new();
        assert_eq!(empty.data.bucket_count(), 0);
        let copy = empty.clone();
        assert_eq!(copy.data.bucket_count(), 0);
        assert!(copy.is_empty());
        let chunk = copy.chunk_after(None, usize::MAX, 10);
        assert!(chunk.done && chunk.entries.is_empty() && chunk.last_key.is_none());
        assert_eq!(copy.data.get(b"missing"), None);
        let mut one = Store::new();
        run(&mut one, "set a 1");
        assert_eq!(one.data.bucket_count(), 1, "a tiny store is one bucket");
        run(&mut one, "del a");
        assert_eq!(one.digest(), empty.digest());
    }

    #[test]
    fn long_and_short_keys_round_trip() {
        let long = "x".repeat(300);
        let mut store = Store::new();
        for key in [
            "",
            "a",
            "exactly-22-bytes-long!",
            "twenty-three-bytes-long",
            &long,
        ] {
            store.insert_entry(Bytes::copy_from_slice(key.as_bytes()), entry(key));
            assert_eq!(store.data.get(key.as_bytes()), Some(&entry(key)));
        }
        let chunk = store.chunk_after(None, usize::MAX, 100);
        assert_eq!(chunk.entries.len(), 5);
        assert!(
            chunk
                .entries
                .iter()
                .all(|(key, e)| e == &entry(std::str::from_utf8(key).unwrap()))
        );
    }
}
