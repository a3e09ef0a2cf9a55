//! State transfer (P6): reading the store out in bounded chunks and loading it back.

use std::ops::Bound;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::digest::key_hash;
use crate::limits::{ENTRY_OVERHEAD_BYTES, element_bytes, entry_bytes, value_bytes};
use crate::slots::{SlotSet, key_slot};
use crate::store::{Entry, Store, Value, stored};

/// One piece of a state transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Keys with their entries (expired ones included), in the store's internal order.
    pub entries: Vec<(Bytes, Entry)>,
    /// The last key in `entries`, or for [`Store::chunk_of_slots`] the last key looked at
    /// (pass it as `after` for the next chunk); `None` if empty.
    pub last_key: Option<Bytes>,
    /// When the last entry holds only part of its key's value (a value bigger than a
    /// chunk, L16): how many elements (list, hash) or bytes (string) of that value the chunks
    /// up to this one hold. Pass it with `last_key` for the next chunk.
    pub last_sent: Option<usize>,
    /// Whether this chunk reaches the end of the store.
    pub done: bool,
}

impl Store {
    /// The entries after `after` (from the start if `None`), up to `max_bytes` (by
    /// `used_memory`'s measure) and `max_entries`. A chunk that is not `done` always holds
    /// at least one entry. Call it on a clone taken when the transfer starts, so later writes
    /// do not tear the copy.
    pub fn chunk_after(
        &self,
        after: Option<&Bytes>,
        max_bytes: usize,
        max_entries: usize,
    ) -> Chunk {
        self.chunk_from(after, None, max_bytes, max_entries)
    }

    /// Like [`Store::chunk_after`], resuming inside `after`'s value when `sent` says how much
    /// of it earlier chunks held. A value that does not fit in `max_bytes` is sent in pieces
    /// (elements of a list or hash, byte ranges of a string), each within the budget except
    /// a single element larger than it (L16); [`Store::insert_piece`] puts them back together.
    pub fn chunk_from(
        &self,
        after: Option<&Bytes>,
        sent: Option<usize>,
        max_bytes: usize,
        max_entries: usize,
    ) -> Chunk {
        self.chunk_where(after, sent, max_bytes, max_entries, &|_| true, usize::MAX)
    }

    /// Like [`Store::chunk_from`], holding only the keys of slots in `slots` (S5: the keys of
    /// slots moving to another group), and passing over at most `max_scan` keys of other
    /// slots, so one call does bounded work on a large store. Such a chunk may hold nothing
    /// and still not be `done`; its `last_key` (the last key looked at, in the store's order)
    /// is where the next one resumes. Keys of `slots` must not change between the chunks of
    /// one copy (the giver freezes them), other keys may.
    pub fn chunk_of_slots(
        &self,
        slots: &SlotSet,
        after: Option<&Bytes>,
        sent: Option<usize>,
        max_bytes: usize,
        max_entries: usize,
        max_scan: usize,
    ) -> Chunk {
        let wanted = |key: &[u8]| slots.contains(key_slot(key));
        self.chunk_where(after, sent, max_bytes, max_entries, &wanted, max_scan)
    }

    fn chunk_where(
        &self,
        after: Option<&Bytes>,
        sent: Option<usize>,
        max_bytes: usize,
        max_entries: usize,
        wanted: &dyn Fn(&[u8]) -> bool,
        max_scan: usize,
    ) -> Chunk {
        let start = match (after, sent) {
            (None, _) => Bound::Unbounded,
            (Some(key), Some(_)) => Bound::Included((key_hash(key), key.as_ref())),
            (Some(key), None) => Bound::Excluded((key_hash(key), key.as_ref())),
        };
        let mut remaining = self.data.iter_from(start).peekable();
        let (mut entries, mut bytes) = (Vec::new(), 0usize);
        let mut resume = sent.filter(|_| after.is_some());
        let (mut skipped, mut last_seen) = (0usize, None);
        while let Some(&item) = remaining.peek() {
            if entries.len() >= max_entries && !entries.is_empty() {
                break;
            }
            if !wanted(item.key()) {
                if skipped >= max_scan {
                    break;
                }
                skipped += 1;
                last_seen = Some(item.key());
                resume = None;
                remaining.next();
                continue;
            }
            let skip = resume.take().unwrap_or(0);
            let room = max_bytes.saturating_sub(bytes);
            if skip == 0 {
                let size = entry_bytes(item.key(), &item.entry);
                if size <= room {
                    entries.push((item.key_bytes(), detached(&item.entry)));
                    bytes = bytes.saturating_add(size);
                    last_seen = Some(item.key());
                    remaining.next();
                    continue;
                }
                if size <= max_bytes && !entries.is_empty() {
                    break; // It fits whole in the next chunk.
                }
            }
            let budget = room.saturating_sub(ENTRY_OVERHEAD_BYTES + item.key().len());
            let Some((piece, taken, finished)) =
                piece(&item.entry, skip, budget, entries.is_empty())
            else {
                break;
            };
            entries.push((item.key_bytes(), piece));
            if !finished {
                return Chunk {
                    last_key: Some(item.key_bytes()),
                    entries,
                    last_sent: Some(skip + taken),
                    done: false,
                };
            }
            last_seen = Some(item.key());
            remaining.next();
            break;
        }
        let last_key = last_seen.map(Bytes::copy_from_slice);
        Chunk {
            entries,
            last_key,
            last_sent: None,
            done: remaining.peek().is_none(),
        }
    }

    /// Stores one piece of a transferred entry: the whole entry, or the next part of a value
    /// split over chunks (L16), appended to what earlier pieces stored at `key`.
    pub fn insert_piece(&mut self, key: Bytes, entry: Entry) {
        let Some(existing) = self.data.get_mut(&key) else {
            self.insert_entry(key, entry);
            return;
        };
        let grown = value_bytes(&entry.value);
        match (&mut existing.value, entry.value) {
            (Value::Str(text), Value::Str(more)) => {
                let mut joined = BytesMut::with_capacity(text.len() + more.len());
                joined.extend_from_slice(text);
                joined.extend_from_slice(&more);
                *text = joined.freeze();
            }
            (Value::List(list), Value::List(more)) => list.append(*more),
            (Value::Hash(hash), Value::Hash(more)) => hash.extend(*more),
            // Sets
            (Value::Set(set), Value::Set(more)) => set.extend(*more),
            // Sorted sets
            (Value::ZSet(zset), Value::ZSet(more)) => {
                for (member, score) in more.by_member() {
                    zset.insert(member.clone(), score);
                }
            }
            (_, value) => {
                // Not a continuation (no correct primary sends this): replace.
                self.insert_entry(key, Entry { value, ..entry });
                return;
            }
        }
        self.grew(grown);
    }

    /// Stores a transferred entry as is (expiry included), replacing any entry at `key`.
    /// Entries arrive in (hash, key) order (P6), so this is usually an append.
    pub fn insert_entry(&mut self, key: Bytes, entry: Entry) {
        let pos = self.data.position_for_append(&key);
        self.put_at(pos, &key, entry);
    }

    /// A rough count of the memory used by keys and values (O(size of the store)).
    pub fn approx_bytes(&self) -> usize {
        self.data
            .iter()
            .map(|item| entry_bytes(item.key(), &item.entry))
            .sum()
    }
}

/// Part of `entry`'s value from element (or byte) `skip` on, within `budget` bytes (at
/// least one element, or byte, when `must` is set or it fits): the piece, how many elements it
/// holds and whether it reaches the end. `None` when nothing fits and nothing must be taken.
fn piece(entry: &Entry, skip: usize, budget: usize, must: bool) -> Option<(Entry, usize, bool)> {
    let value = match &entry.value {
        Value::Str(text) => {
            // A cursor from a peer (S5: the taker names where to resume) may claim more than
            // the value holds: resume at its end rather than slice out of range.
            let skip = skip.min(text.len());
            let rest = text.len() - skip;
            let mut take = rest.min(budget);
            if take == 0 {
                if !must {
                    return None;
                }
                take = rest.min(1);
            }
            let piece = text.slice(skip..skip + take);
            return Some((with_value(entry, Value::Str(piece)), take, take == rest));
        }
        Value::List(list) => {
            let elements = list.iter().skip(skip).map(|i| (i.len(), i));
            let (items, _) = take_fitting(elements, budget, must)?;
            let done = skip + items.len() >= list.len();
            let n = items.len();
            (
                Value::List(Box::new(items.into_iter().cloned().collect())),
                n,
                done,
            )
        }
        Value::Hash(hash) => {
            let fields = hash
                .iter()
                .skip(skip)
                .map(|(f, v)| (f.len() + v.len(), (f, v)));
            let (items, _) = take_fitting(fields, budget, must)?;
            let done = skip + items.len() >= hash.len();
            let n = items.len();
            let map = items
                .into_iter()
                .map(|(f, v)| (f.clone(), v.clone()))
                .collect();
            (Value::Hash(Box::new(map)), n, done)
        }
        // Sets
        Value::Set(set) => {
            let members = set.iter().skip(skip).map(|m| (m.bytes().len(), m));
            let (items, _) = take_fitting(members, budget, must)?;
            let done = skip + items.len() >= set.len();
            let n = items.len();
            let piece = items.into_iter().cloned().collect();
            (Value::Set(Box::new(piece)), n, done)
        }
        // Sorted sets: split in member order like a hash.
        Value::ZSet(zset) => {
            let members = zset
                .by_member()
                .skip(skip)
                .map(|(m, s)| (m.len() + 8, (m, s)));
            let (items, _) = take_fitting(members, budget, must)?;
            let done = skip + items.len() >= zset.len();
            let n = items.len();
            let mut part = crate::zsets::ZSet::default();
            for (member, score) in items {
                part.insert(member.clone(), score);
            }
            (Value::ZSet(Box::new(part)), n, done)
        }
    };
    Some((with_value(entry, value.0), value.1, value.2))
}

/// Elements from `items` while their counted size fits in `budget` (at least one when
/// `must`); `None` when none fits and none must be taken.
fn take_fitting<T>(
    items: impl Iterator<Item = (usize, T)>,
    budget: usize,
    must: bool,
) -> Option<(Vec<T>, usize)> {
    let (mut taken, mut used) = (Vec::new(), 0usize);
    for (len, item) in items {
        let size = element_bytes(len);
        if used.saturating_add(size) > budget && !(taken.is_empty() && must) {
            break;
        }
        used = used.saturating_add(size);
        taken.push(item);
    }
    if taken.is_empty() && must {
        // Nothing left to take: an empty piece ends the value.
        return Some((taken, used));
    }
    (!taken.is_empty()).then_some((taken, used))
}

/// `entry` with another value (same expiry).
fn with_value(entry: &Entry, value: Value) -> Entry {
    Entry {
        value,
        expires_at_ms: entry.expires_at_ms,
    }
}

/// A copy of `entry` for a chunk. Small strings are copied rather than shared: sharing would
/// allocate a refcount header for every value of the snapshot (fresh memory on the primary
/// for the whole transfer, and kept as long as the value lives), where the copy is freed as
/// soon as the chunk is encoded and its memory reused for the next one.
fn detached(entry: &Entry) -> Entry {
    match &entry.value {
        Value::Str(text) => Entry {
            value: Value::Str(stored(text)),
            expires_at_ms: entry.expires_at_ms,
        },
        _ => entry.clone(),
    }
}
