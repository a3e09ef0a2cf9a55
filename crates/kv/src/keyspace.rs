//! Keyspace commands: DEL, EXISTS, TYPE, DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHDB/FLUSHALL.
//!
//! Keys are ordered by (63-bit hash, key). SCAN's cursor encodes "resume at hash >= h"
//! as `h + 1` (0 means start, and, when returned, finished), so every key present for the
//! whole scan is returned even if others come and go in between, as Redis guarantees.

use std::ops::Bound;

use bytes::Bytes;

use crate::digest::HASH_MASK;
use crate::glob::Pattern;
use crate::reply::Reply;
use crate::store::{ExecContext, Store};

/// SCAN's COUNT when none is given.
const SCAN_DEFAULT_COUNT: u64 = 10;
/// The most keys one SCAN call examines, whatever COUNT says (keeps each call bounded).
const SCAN_MAX_COUNT: u64 = 10_000;

impl Store {
    /// DEL: removes each live key; a repeated key counts once.
    pub(crate) fn del(&mut self, keys: &[Bytes], now: u64) -> Reply {
        let removed = keys
            .iter()
            .filter(|key| self.live(key, now).is_some() && self.remove(key).is_some())
            .count();
        Reply::count(removed)
    }

    /// EXISTS: counts live keys, a repeated key once per mention (like Redis).
    pub(crate) fn exists(&self, keys: &[Bytes], now: u64) -> Reply {
        Reply::count(
            keys.iter()
                .filter(|key| self.live(key, now).is_some())
                .count(),
        )
    }

    pub(crate) fn type_of(&self, key: &Bytes, now: u64) -> Reply {
        Reply::Simple(
            self.live(key, now)
                .map_or("none", |entry| entry.type_name())
                .to_owned(),
        )
    }

    /// DBSIZE: live keys only (expired ones are invisible even before they are purged).
    pub(crate) fn dbsize(&self, now: u64) -> Reply {
        Reply::count(self.data.len() - self.expired_count(now))
    }

    /// KEYS: every live key matching `pattern`, in keyspace order.
    pub(crate) fn keys(&self, pattern: &Bytes, now: u64) -> Reply {
        let pattern = Pattern::new(pattern);
        let live = self.data.iter().filter(|item| !item.entry.is_expired(now));
        Reply::bulks(
            live.filter(|item| pattern.matches(item.key()))
                .map(|item| item.key_bytes()),
        )
    }

    /// SCAN: examines about `count` keys from the cursor on, never splitting a group of
    /// keys with the same hash (the cursor cannot point inside one).
    pub(crate) fn scan(
        &self,
        cursor: u64,
        pattern: Option<&Bytes>,
        count: Option<u64>,
        type_name: Option<&Bytes>,
        now: u64,
    ) -> Reply {
        let budget = count.unwrap_or(SCAN_DEFAULT_COUNT).min(SCAN_MAX_COUNT);
        let pattern = pattern.map(|p| Pattern::new(p));
        let wanted = |key: &[u8], type_of: &str| {
            pattern.as_ref().is_none_or(|p| p.matches(key))
                && type_name.is_none_or(|t| t.as_ref() == type_of.as_bytes())
        };
        let (mut found, mut examined, mut next_cursor, mut last_hash) = (Vec::new(), 0, 0, None);
        let start = Bound::Included((cursor.saturating_sub(1), &[][..]));
        for item in self.data.iter_from(start) {
            if examined >= budget && last_hash != Some(item.hash) {
                next_cursor = item.hash + 1;
                break;
            }
            examined += 1;
            last_hash = Some(item.hash);
            if !item.entry.is_expired(now) && wanted(item.key(), item.entry.type_name()) {
                found.push(item.key_bytes());
            }
        }
        Reply::Array(vec![
            Reply::Bulk(Bytes::from(next_cursor.to_string())),
            Reply::bulks(found),
        ])
    }

    /// RANDOMKEY: the first live key whose hash is at least `ctx.random` (63 bits),
    /// wrapping around; deterministic given the primary's random value (P5).
    pub(crate) fn random_key(&self, ctx: &ExecContext) -> Reply {
        let start = ctx.random & HASH_MASK;
        let from_start = self.data.iter_from(Bound::Included((start, &[][..])));
        let before_start = self.data.iter().take_while(|item| item.hash < start);
        let key = from_start
            .chain(before_start)
            .find(|item| !item.entry.is_expired(ctx.now_ms))
            .map(|item| item.key_bytes());
        Reply::bulk_or_nil(key)
    }

    /// FLUSHDB/FLUSHALL: drops everything, expired keys included.
    pub(crate) fn flush(&mut self) -> Reply {
        let acl = std::mem::take(&mut self.acl);
        *self = Store::new();
        self.acl = acl; // A1: FLUSHALL empties the keyspace, not the users.
        Reply::ok()
    }
}
