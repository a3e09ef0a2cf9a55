//! Expiry: EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, and the purge path driven by the primary.
//!
//! Time comes only from `ExecContext::now_ms` or an explicit argument (P5): an expired
//! key is invisible at once but is deleted from memory only by [`Store::purge_expired`],
//! which the primary replicates as an explicit delete.

use bytes::Bytes;

use crate::command::ExpireCondition;
use crate::error::Error;
use crate::reply::Reply;
use crate::store::Store;

impl Store {
    /// EXPIRE/PEXPIRE with the relative time already in ms. A time at or before `now`
    /// deletes the key. Replies 1 when the expiry was set (or the key deleted), else 0.
    pub(crate) fn expire(
        &mut self,
        key: &Bytes,
        relative_ms: i64,
        condition: Option<ExpireCondition>,
        name: &'static str,
        now: u64,
    ) -> Result<Reply, Error> {
        let at = i64::try_from(now)
            .ok()
            .and_then(|now| now.checked_add(relative_ms));
        let at = at.ok_or(Error::InvalidExpireTime(name))?;
        let Some(entry) = self.live(key, now) else {
            return Ok(Reply::Integer(0));
        };
        if !condition_allows(condition, entry.expires_at_ms, at) {
            return Ok(Reply::Integer(0));
        }
        match u64::try_from(at) {
            Ok(at) if at > now => self.set_expiry(key, Some(at)),
            _ => {
                self.remove(key);
            }
        }
        Ok(Reply::Integer(1))
    }

    /// TTL (`unit_ms` = 1000, rounded to nearest) and PTTL (`unit_ms` = 1):
    /// -2 for a missing key, -1 for a persistent one.
    pub(crate) fn ttl(&self, key: &Bytes, unit_ms: u64, now: u64) -> Reply {
        match self.live(key, now).map(|entry| entry.expires_at_ms) {
            None => Reply::Integer(-2),
            Some(None) => Reply::Integer(-1),
            Some(Some(at)) => {
                let remaining = at.saturating_sub(now);
                Reply::Integer(
                    i64::try_from((remaining + unit_ms / 2) / unit_ms).unwrap_or(i64::MAX),
                )
            }
        }
    }

    /// PERSIST: 1 if an expiry was removed.
    pub(crate) fn persist(&mut self, key: &Bytes, now: u64) -> Reply {
        if self
            .live(key, now)
            .and_then(|entry| entry.expires_at_ms)
            .is_none()
        {
            return Reply::Integer(0);
        }
        self.set_expiry(key, None);
        Reply::Integer(1)
    }

    /// How many keys in memory are expired at `now` (O(that count)).
    pub(crate) fn expired_count(&self, now: u64) -> usize {
        self.expiries
            .iter()
            .take_while(|(at, _)| *at <= now)
            .count()
    }

    /// Keys whose expiry is at or before `now_ms`, earliest first (ties by key), at most
    /// `limit`. The primary ships them to every replica for [`Store::purge_expired`] (P5).
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        let due = self.expiries.iter().take_while(|(at, _)| *at <= now_ms);
        due.take(limit).map(|(_, key)| key.clone()).collect()
    }

    /// Deletes each of `keys` that is still expired at `now_ms` (a key rewritten since it
    /// was listed survives); returns how many were deleted.
    pub fn purge_expired(&mut self, keys: &[Bytes], now_ms: u64) -> usize {
        let still_expired = |store: &Store, key: &Bytes| {
            store
                .data
                .get(key)
                .is_some_and(|entry| entry.is_expired(now_ms))
        };
        keys.iter()
            .filter(|key| still_expired(self, key) && self.remove(key).is_some())
            .count()
    }
}

/// Whether EXPIRE's NX/XX/GT/LT condition lets `new_at` replace `current` (a key without
/// expiry counts as an infinite TTL for GT and LT, as in Redis 7).
fn condition_allows(condition: Option<ExpireCondition>, current: Option<u64>, new_at: i64) -> bool {
    let later = || current.is_some_and(|c| new_at > i64::try_from(c).unwrap_or(i64::MAX));
    let earlier = || current.is_none_or(|c| new_at < i64::try_from(c).unwrap_or(i64::MAX));
    match condition {
        None => true,
        Some(ExpireCondition::Nx) => current.is_none(),
        Some(ExpireCondition::Xx) => current.is_some(),
        Some(ExpireCondition::Gt) => later(),
        Some(ExpireCondition::Lt) => earlier(),
        Some(ExpireCondition::XxGt) => current.is_some() && later(),
        Some(ExpireCondition::XxLt) => current.is_some() && earlier(),
    }
}
