//! State transfer (P6): reading the store out in bounded chunks and loading it back.

use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::key_hash;
use crate::store::{Entry, Store, Value, stored};

/// Rough per-key bookkeeping cost counted by [`Store::approx_bytes`].
const ENTRY_OVERHEAD_BYTES: usize = 48;
/// Rough per-element cost of a list item or hash field.
const ITEM_OVERHEAD_BYTES: usize = 16;

/// One piece of a state transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Keys with their entries (expired ones included), in the store's internal order.
    pub entries: Vec<(Bytes, Entry)>,
    /// The last key in `entries` (pass it as `after` for the next chunk); `None` if empty.
    pub last_key: Option<Bytes>,
    /// Whether this chunk reaches the end of the store.
    pub done: bool,
}

impl Store {
    /// The entries after `after` (from the start if `None`), up to `max_bytes` (by
    /// [`Store::approx_bytes`]'s measure) and `max_entries`. A chunk that is not `done`
    /// always holds at least one entry, even one larger than `max_bytes`. Call it on a
    /// clone taken when the transfer starts, so later writes do not tear the copy.
    pub fn chunk_after(
        &self,
        after: Option<&Bytes>,
        max_bytes: usize,
        max_entries: usize,
    ) -> Chunk {
        let start = after.map_or(Bound::Unbounded, |key| {
            Bound::Excluded((key_hash(key), key.as_ref()))
        });
        let mut remaining = self.data.iter_from(start).peekable();
        let (mut entries, mut bytes) = (Vec::new(), 0usize);
        while let Some(item) = remaining.peek() {
            let size = entry_bytes(item.key(), &item.entry);
            let full = entries.len() >= max_entries || bytes.saturating_add(size) > max_bytes;
            if full && !entries.is_empty() {
                break;
            }
            entries.push((item.key_bytes(), detached(&item.entry)));
            bytes = bytes.saturating_add(size);
            remaining.next();
        }
        let last_key = entries.last().map(|(key, _)| key.clone());
        Chunk {
            entries,
            last_key,
            done: remaining.peek().is_none(),
        }
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

/// The rough size of one key and its entry.
fn entry_bytes(key: &[u8], entry: &Entry) -> usize {
    let value = match &entry.value {
        Value::Str(text) => text.len(),
        Value::List(list) => list
            .iter()
            .map(|item| item.len() + ITEM_OVERHEAD_BYTES)
            .sum(),
        Value::Hash(hash) => hash
            .iter()
            .map(|(f, v)| f.len() + v.len() + ITEM_OVERHEAD_BYTES)
            .sum(),
    };
    ENTRY_OVERHEAD_BYTES + key.len() + value
}
