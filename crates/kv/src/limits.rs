//! Limits on data (L10-L15): the memory the store counts, the size of one value and of one
//! reply, and the keys an eviction policy picks.
//!
//! `used_memory` is an approximate, deterministic count kept incrementally by every write:
//! for each key, [`ENTRY_OVERHEAD_BYTES`] + key length + value, where a string counts its
//! length and a list or hash counts, per element, its bytes + [`ITEM_OVERHEAD_BYTES`]. It
//! depends only on the keys and values, so every replica holding the same data counts the
//! same number (L10).

use std::collections::HashSet;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::keymap::Item;
use crate::reply::Reply;
use crate::store::{Entry, Store, Value};

/// Per-key bookkeeping counted by `used_memory` (L10).
pub const ENTRY_OVERHEAD_BYTES: usize = 48;
/// Per-element cost of a list item or hash field counted by `used_memory` (L10).
pub const ITEM_OVERHEAD_BYTES: usize = 16;
/// Redis's default `proto-max-bulk-len`: the largest value when nothing else is said.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 512 * 1024 * 1024;
/// Keys looked at to find one eviction candidate (like Redis's `maxmemory-samples` pool).
const EVICTION_SCAN: usize = 64;
/// Candidates compared per victim (Redis's default `maxmemory-samples`).
const EVICTION_SAMPLES: usize = 5;

/// What a primary does when a write finds `used_memory` above `maxmemory` (L11, L12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EvictionPolicy {
    /// Refuse writes that may grow memory with `-OOM ...` (Redis's default).
    #[default]
    NoEviction,
    /// Evict the least recently used of a sample of keys.
    AllKeysLru,
    /// Evict a key chosen at random.
    AllKeysRandom,
    /// Evict the least recently used of a sample of keys with an expiry.
    VolatileLru,
    /// Evict the key with an expiry that expires soonest (of a sample).
    VolatileTtl,
    /// Evict a key with an expiry chosen at random.
    VolatileRandom,
}

impl EvictionPolicy {
    /// Every policy with its Redis name.
    pub const ALL: [(EvictionPolicy, &'static str); 6] = [
        (EvictionPolicy::NoEviction, "noeviction"),
        (EvictionPolicy::AllKeysLru, "allkeys-lru"),
        (EvictionPolicy::AllKeysRandom, "allkeys-random"),
        (EvictionPolicy::VolatileLru, "volatile-lru"),
        (EvictionPolicy::VolatileTtl, "volatile-ttl"),
        (EvictionPolicy::VolatileRandom, "volatile-random"),
    ];

    /// The Redis name, e.g. `allkeys-lru`.
    pub fn name(self) -> &'static str {
        EvictionPolicy::ALL
            .iter()
            .find(|(policy, _)| *policy == self)
            .map_or("noeviction", |(_, name)| name)
    }

    /// Parses a Redis name (case-insensitive).
    pub fn parse(text: &str) -> Option<EvictionPolicy> {
        EvictionPolicy::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(text))
            .map(|(policy, _)| *policy)
    }

    /// Whether the policy needs each key's last access time.
    pub fn uses_access_time(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru
        )
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileTtl
                | EvictionPolicy::VolatileRandom
        )
    }
}

/// The limits one command runs under. The primary decides them and they travel with the
/// operation (like the time, P5), so every replica refuses or accepts the same commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest string, list element, hash field or hash value (L13).
    pub max_value_bytes: u64,
    /// `used_memory` above which writes that may grow memory are refused; 0: no limit (L11).
    pub maxmemory_bytes: u64,
    /// Largest reply of one command (by [`reply_bytes`]); 0: no limit (L14).
    pub max_reply_bytes: u64,
    /// What the primary does above `maxmemory_bytes`.
    pub policy: EvictionPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            maxmemory_bytes: 0,
            max_reply_bytes: 0,
            policy: EvictionPolicy::NoEviction,
        }
    }
}

impl Limits {
    /// Whether `used_memory` is above the limit (never with no limit).
    pub fn over_memory(&self, used_memory: usize) -> bool {
        self.maxmemory_bytes > 0 && used_memory as u64 > self.maxmemory_bytes
    }
}

/// The size `used_memory` counts for one key and its entry (L10).
pub fn entry_bytes(key: &[u8], entry: &Entry) -> usize {
    ENTRY_OVERHEAD_BYTES + key.len() + value_bytes(&entry.value)
}

/// The size `used_memory` counts for one value.
pub(crate) fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Str(text) => text.len(),
        Value::List(list) => list.iter().map(|item| element_bytes(item.len())).sum(),
        Value::Hash(hash) => hash
            .iter()
            .map(|(f, v)| element_bytes(f.len() + v.len()))
            .sum(),
        // Sets
        Value::Set(set) => set.iter().map(|m| element_bytes(m.bytes().len())).sum(),
        // Sorted sets
        Value::ZSet(zset) => zset
            .by_member()
            .map(|(m, _)| zset_member_bytes(m.len()))
            .sum(),
    }
}

// Sorted sets
/// The size counted for one sorted-set member of `len` bytes: the member (shared by both
/// indexes), its 8-byte score, and a node in each of the two indexes.
pub(crate) fn zset_member_bytes(len: usize) -> usize {
    element_bytes(len + 8) + ITEM_OVERHEAD_BYTES
}

/// The size counted for one list element, hash field + value or set member of `len` bytes.
pub(crate) fn element_bytes(len: usize) -> usize {
    len + ITEM_OVERHEAD_BYTES
}

/// The error that replaces a reply beyond `max_reply_bytes` (L14).
pub fn reply_too_large() -> Reply {
    Reply::from(crate::error::Error::ReplyTooLarge)
}

/// An upper estimate of the bytes a reply takes in a frame or in RESP (L14): its payload
/// plus 16 bytes of framing per element.
pub fn reply_bytes(reply: &Reply) -> usize {
    match reply {
        Reply::Simple(text) | Reply::Error(text) => text.len() + 16,
        Reply::Integer(_) | Reply::Nil => 16,
        Reply::Bulk(bytes) => bytes.len() + 16,
        Reply::Array(items) => 16 + items.iter().map(reply_bytes).sum::<usize>(),
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            16 + pairs
                .iter()
                .map(|(k, v)| reply_bytes(k) + reply_bytes(v))
                .sum::<usize>()
        }
        // Sorted sets
        Reply::Double(_) => 40,
    }
}

impl Command {
    /// Whether the command may grow memory: refused under `noeviction` above `maxmemory`
    /// (Redis's `denyoom` flag, L11). Deletes, pops and reads are always allowed.
    pub fn is_denyoom(&self) -> bool {
        use Command::*;
        matches!(
            self,
            Set { .. }
                | SetNx { .. }
                | GetSet { .. }
                | MSet { .. }
                | Append { .. }
                | SetRange { .. }
                | Incr { .. }
                | IncrBy { .. }
                | Decr { .. }
                | DecrBy { .. }
                | LPush { .. }
                | RPush { .. }
                | HSet { .. }
                | HIncrBy { .. }
                // Sets
                | SAdd { .. }
                | SInterStore { .. }
                | SUnionStore { .. }
                | SDiffStore { .. }
                // Sorted sets
                | ZAdd { .. }
                | ZIncrBy { .. }
                | ZRangeStore { .. }
                | ZSetOp { dst: Some(_), .. }
        )
    }

    /// About the bytes of its arguments with 8 bytes of framing each, and 24 per number or
    /// option: what it weighs in a forward (L15). O(arguments), without allocating.
    pub fn arg_bytes(&self) -> usize {
        use Command::*;
        const WORD: usize = 24;
        let list = |items: &[Bytes]| items.iter().map(|b| b.len() + 8).sum::<usize>();
        let pairs = |p: &[(Bytes, Bytes)]| p.iter().map(|(a, b)| a.len() + b.len() + 16).sum();
        let text = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() + 8);
        WORD + match self {
            MGet { keys } | Del { keys } | Exists { keys } => list(keys),
            MSet { pairs: p } => pairs(p),
            HSet { key, pairs: p } => key.len() + pairs(p),
            LPush { key, values } | RPush { key, values } => key.len() + list(values),
            HDel { key, fields } => key.len() + list(fields),
            Set { key, value, .. }
            | SetNx { key, value }
            | GetSet { key, value }
            | Append { key, value }
            | SetRange { key, value, .. } => key.len() + value.len() + 2 * WORD,
            HGet { key, field } | HIncrBy { key, field, .. } => key.len() + field.len() + WORD,
            // Sets
            SAdd { key, members } | SRem { key, members } | SMIsMember { key, members } => {
                key.len() + list(members)
            }
            SIsMember { key, member } => key.len() + member.len() + WORD,
            SMove {
                source,
                destination,
                member,
            } => source.len() + destination.len() + member.len() + WORD,
            SScan { key, options, .. } => key.len() + list(options) + WORD,
            Keys { pattern } => pattern.len() + 8,
            Scan {
                pattern, type_name, ..
            } => 2 * WORD + text(pattern) + text(type_name),
            // Sorted sets
            ZAdd { key, pairs, .. } => {
                key.len() + pairs.iter().map(|(_, m)| m.len() + WORD).sum::<usize>()
            }
            ZMScore { key, members } | ZRem { key, members } => key.len() + list(members),
            ZSetOp { weights, .. } => {
                let keys = self.keys().iter().map(|k| k.len() + 8).sum::<usize>();
                keys + weights.as_ref().map_or(0, |w| w.len() * WORD) + 2 * WORD
            }
            _ => self.keys().iter().map(|k| k.len() + 8).sum::<usize>() + 2 * WORD,
        }
    }
}

impl Store {
    /// The memory counted for keys and values (L10), kept up to date by every write.
    pub fn used_memory(&self) -> usize {
        self.used_memory
    }

    /// Picks keys to evict under `policy` until they free `need_bytes` or `max_keys` are
    /// chosen (L12). Only the primary calls this: the keys then travel in the history as a
    /// delete ([`Store::evict`]), so backups never choose. `random` seeds the sampling.
    pub fn eviction_victims(
        &self,
        policy: EvictionPolicy,
        random: u64,
        need_bytes: usize,
        max_keys: usize,
    ) -> Vec<Bytes> {
        self.eviction_victims_where(policy, random, need_bytes, max_keys, &|_| true)
    }

    /// Like [`Store::eviction_victims`], only among keys `evictable` accepts (S5: keys of
    /// frozen and arriving slots must not change while they move).
    pub fn eviction_victims_where(
        &self,
        policy: EvictionPolicy,
        mut random: u64,
        need_bytes: usize,
        max_keys: usize,
        evictable: &dyn Fn(&[u8]) -> bool,
    ) -> Vec<Bytes> {
        let mut chosen: HashSet<Bytes> = HashSet::new();
        let mut victims = Vec::new();
        let mut freed = 0usize;
        if policy == EvictionPolicy::NoEviction {
            return victims;
        }
        while freed < need_bytes && victims.len() < max_keys {
            random = splitmix(random);
            let Some(victim) = self.pick_victim(policy, random, &chosen, evictable) else {
                break;
            };
            freed = freed.saturating_add(entry_bytes(victim.key(), &victim.entry));
            let key = victim.key_bytes();
            chosen.insert(key.clone());
            victims.push(key);
        }
        victims
    }

    /// One victim: the best of a few eligible keys found from a random place in the keyspace.
    fn pick_victim(
        &self,
        policy: EvictionPolicy,
        random: u64,
        chosen: &HashSet<Bytes>,
        evictable: &dyn Fn(&[u8]) -> bool,
    ) -> Option<&Item> {
        let eligible = |item: &&Item| {
            (!policy.volatile_only() || item.entry.expires_at_ms.is_some())
                && !chosen.contains(item.key())
                && evictable(item.key())
        };
        let first = self.data.item_at_random(random)?;
        let start = first.hash;
        let from = self.data.iter_from(Bound::Included((start, first.key())));
        let wrapped = self.data.iter().take_while(|item| item.hash < start);
        let samples: Vec<&Item> = from
            .chain(wrapped)
            .take(EVICTION_SCAN)
            .filter(eligible)
            .take(EVICTION_SAMPLES)
            .collect();
        let best = match policy {
            EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => {
                samples.into_iter().min_by_key(|item| item.access_s)
            }
            EvictionPolicy::VolatileTtl => samples
                .into_iter()
                .min_by_key(|item| item.entry.expires_at_ms),
            _ => samples.into_iter().next(),
        };
        best.or_else(|| {
            // Few keys have an expiry: take the soonest from the expiry index.
            if !policy.volatile_only() {
                return None;
            }
            self.expiries
                .iter()
                .take(EVICTION_SCAN)
                .find(|(_, key)| !chosen.contains(key) && evictable(key))
                .and_then(|(_, key)| self.data.get_item(key))
        })
    }

    /// Deletes `keys` (live or not), as the primary decided (L12). Returns how many existed.
    pub fn evict(&mut self, keys: &[Bytes]) -> usize {
        keys.iter().filter(|key| self.remove(key).is_some()).count()
    }

    /// Notes that `keys` were used at `now_ms` (for the LRU policies only, L12). Not part of
    /// the digest: only the primary's access times matter, as only it picks victims.
    pub(crate) fn touch(&mut self, keys: &[&Bytes], now_ms: u64) {
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        for key in keys {
            self.data.touch(key, now_s);
        }
    }
}

/// The step of a splitmix64 sequence's state.
pub(crate) const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The value a splitmix64 sequence draws from `state` (its state then moves on by
/// [`SPLITMIX_GAMMA`]).
pub(crate) fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
