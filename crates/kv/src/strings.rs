//! String commands: GET, SET, SETNX, GETSET, GETDEL, MGET, MSET, APPEND, STRLEN, SETRANGE,
//! GETRANGE (SUBSTR), INCR family.

use bytes::{Bytes, BytesMut};

use crate::command::{SetCondition, SetExpiry};
use crate::error::{Error, check_string_len};
use crate::limits::value_bytes;
use crate::parse::parse_i64;
use crate::reply::Reply;
use crate::store::{Entry, Store, Value, stored};

/// What SET does to the key's expiry.
enum TtlChange {
    /// Remove any expiry (the default).
    Clear,
    /// KEEPTTL: leave it as it is.
    Keep,
    /// Expire at this Unix ms.
    At(u64),
}

impl Store {
    pub(crate) fn get(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::bulk_or_nil(self.string(key, now)?.cloned()))
    }

    /// SET: the expiry is resolved first (so a bad one fails before anything else), then
    /// GET's type check, then the NX/XX condition.
    pub(crate) fn set(
        &mut self,
        key: &Bytes,
        value: &Bytes,
        condition: Option<SetCondition>,
        get: bool,
        expiry: Option<SetExpiry>,
        now: u64,
    ) -> Result<Reply, Error> {
        check_string_len(value.len(), self.limits.max_value_bytes)?;
        let ttl = resolve_set_expiry(expiry, now)?;
        // One search: the position serves the checks and the write.
        let pos = self.data.position(key);
        let old_entry = self.data.at(&pos).filter(|e| !e.is_expired(now));
        let old_value = match old_entry.map(|e| &e.value) {
            Some(Value::Str(text)) if get => Some(text.clone()),
            Some(_) if get => return Err(Error::WrongType),
            _ => None,
        };
        let allowed = match condition {
            None => true,
            Some(SetCondition::Nx) => old_entry.is_none(),
            Some(SetCondition::Xx) => old_entry.is_some(),
        };
        let reply = match (get, allowed) {
            (true, _) => Reply::bulk_or_nil(old_value),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Nil,
        };
        if allowed {
            let expires_at_ms = match ttl {
                TtlChange::Clear => None,
                TtlChange::Keep => old_entry.and_then(|e| e.expires_at_ms),
                TtlChange::At(at) => Some(at),
            };
            if expires_at_ms.is_some_and(|at| at <= now) {
                self.remove_at(pos, key);
            } else {
                let entry = Entry {
                    value: Value::Str(stored(value)),
                    expires_at_ms,
                };
                self.put_at(pos, key, entry);
            }
        }
        Ok(reply)
    }

    pub(crate) fn set_nx(&mut self, key: &Bytes, value: &Bytes, now: u64) -> Result<Reply, Error> {
        check_string_len(value.len(), self.limits.max_value_bytes)?;
        let pos = self.data.position(key);
        if self.data.at(&pos).is_some_and(|e| !e.is_expired(now)) {
            return Ok(Reply::Integer(0));
        }
        self.put_at(pos, key, Entry::persistent(Value::Str(stored(value))));
        Ok(Reply::Integer(1))
    }

    pub(crate) fn get_set(&mut self, key: &Bytes, value: &Bytes, now: u64) -> Result<Reply, Error> {
        check_string_len(value.len(), self.limits.max_value_bytes)?;
        let old = self.string(key, now)?.cloned();
        self.put(key, Entry::persistent(Value::Str(stored(value))));
        Ok(Reply::bulk_or_nil(old))
    }

    pub(crate) fn get_del(&mut self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        let old = self.string(key, now)?.cloned();
        if old.is_some() {
            self.remove(key);
        }
        Ok(Reply::bulk_or_nil(old))
    }

    /// MGET: keys that are missing or hold another type give nil.
    pub(crate) fn mget(&self, keys: &[Bytes], now: u64) -> Reply {
        let value = |key| self.string(key, now).ok().flatten().cloned();
        Reply::Array(
            keys.iter()
                .map(|key| Reply::bulk_or_nil(value(key)))
                .collect(),
        )
    }

    pub(crate) fn mset(&mut self, pairs: &[(Bytes, Bytes)]) -> Result<Reply, Error> {
        for (_, value) in pairs {
            check_string_len(value.len(), self.limits.max_value_bytes)?;
        }
        for (key, value) in pairs {
            self.put(key, Entry::persistent(Value::Str(stored(value))));
        }
        Ok(Reply::ok())
    }

    pub(crate) fn append(&mut self, key: &Bytes, suffix: &Bytes, now: u64) -> Result<Reply, Error> {
        let old = self.string(key, now)?.cloned().unwrap_or_default();
        check_string_len(
            old.len().saturating_add(suffix.len()),
            self.limits.max_value_bytes,
        )?;
        let mut joined = BytesMut::with_capacity(old.len() + suffix.len());
        joined.extend_from_slice(&old);
        joined.extend_from_slice(suffix);
        let len = joined.len();
        self.write_string_keep_ttl(key, joined.freeze(), now);
        Ok(Reply::count(len))
    }

    pub(crate) fn strlen(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::count(self.string(key, now)?.map_or(0, Bytes::len)))
    }

    /// SETRANGE, in Redis 7's order: the type, then an empty value changes nothing (and
    /// creates no key), then the size limit on `offset + len` (L13), then the write, padding
    /// with zero bytes up to `offset`. Memory is counted like any string write (L10).
    pub(crate) fn set_range(
        &mut self,
        key: &Bytes,
        offset: u64,
        value: &Bytes,
        now: u64,
    ) -> Result<Reply, Error> {
        let old = self.string(key, now)?;
        let old_len = old.map_or(0, Bytes::len);
        if value.is_empty() {
            return Ok(Reply::count(old_len));
        }
        let end = usize::try_from(offset)
            .ok()
            .and_then(|offset| offset.checked_add(value.len()))
            .ok_or(Error::StringTooLong)?;
        check_string_len(end, self.limits.max_value_bytes)?;
        let offset = end - value.len();
        let mut joined = BytesMut::with_capacity(end.max(old_len));
        joined.extend_from_slice(old.map_or(&[][..], |old| &old[..]));
        if joined.len() < end {
            joined.resize(end, 0);
        }
        joined[offset..end].copy_from_slice(value);
        let len = joined.len();
        self.write_string_keep_ttl(key, joined.freeze(), now);
        Ok(Reply::count(len))
    }

    /// GETRANGE (and SUBSTR) with Redis 7's index rules: negative indices count from the end,
    /// both are clamped to the string, and an empty range (or a missing key) is `""`.
    pub(crate) fn get_range(
        &self,
        key: &Bytes,
        start: i64,
        end: i64,
        now: u64,
    ) -> Result<Reply, Error> {
        let empty = Reply::Bulk(Bytes::new());
        let Some(text) = self.string(key, now)? else {
            return Ok(empty);
        };
        let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
        if start < 0 && end < 0 && start > end {
            return Ok(empty);
        }
        let start = if start < 0 {
            len.saturating_add(start)
        } else {
            start
        }
        .max(0);
        let end = if end < 0 {
            len.saturating_add(end)
        } else {
            end
        }
        .max(0)
        .min(len - 1);
        if len == 0 || start > end {
            return Ok(empty);
        }
        // 0 <= start <= end < len.
        Ok(Reply::Bulk(text.slice(start as usize..=end as usize)))
    }

    /// INCR, INCRBY, DECR and DECRBY (with the delta already negated).
    pub(crate) fn incr_by(&mut self, key: &Bytes, delta: i64, now: u64) -> Result<Reply, Error> {
        let current = match self.string(key, now)? {
            Some(text) => parse_i64(text).ok_or(Error::NotInteger)?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or(Error::Overflow)?;
        self.write_string_keep_ttl(key, Bytes::from(next.to_string()), now);
        Ok(Reply::Integer(next))
    }

    /// Replaces a live string's value in place (keeping its expiry), or creates the key.
    fn write_string_keep_ttl(&mut self, key: &Bytes, value: Bytes, now: u64) {
        let new_len = value.len();
        match self.live_value_mut(key, now) {
            Some(slot) => {
                let old = std::mem::replace(slot, Value::Str(value));
                self.shrank(value_bytes(&old));
                self.grew(new_len);
            }
            None => self.put(key, Entry::persistent(Value::Str(value))),
        }
    }
}

/// Turns SET's expiry option into an absolute time using the primary's clock (P5).
fn resolve_set_expiry(expiry: Option<SetExpiry>, now: u64) -> Result<TtlChange, Error> {
    let invalid = Error::InvalidExpireTime("set");
    let at = match expiry {
        None => return Ok(TtlChange::Clear),
        Some(SetExpiry::KeepTtl) => return Ok(TtlChange::Keep),
        Some(SetExpiry::Ex(seconds)) => {
            seconds.checked_mul(1000).and_then(|ms| ms.checked_add(now))
        }
        Some(SetExpiry::Px(ms)) => ms.checked_add(now),
        Some(SetExpiry::ExAt(seconds)) => seconds.checked_mul(1000),
        Some(SetExpiry::PxAt(ms)) => Some(ms),
    };
    match at {
        Some(at) if at > 0 && i64::try_from(at).is_ok() => Ok(TtlChange::At(at)),
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod range_tests {
    use crate::Limits;
    use crate::tests::{Kv, NOT_INTEGER, WRONGTYPE, bulk, err, int};
    use crate::{Command, Reply};
    use bytes::Bytes;

    const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

    #[test]
    fn l13_setrange_pads_creates_overwrites_and_checks_like_redis() {
        let mut kv = Kv::new();
        // Creates the key, zero-padded up to the offset.
        assert_eq!(kv.call("setrange k 3 ab"), int(5));
        assert_eq!(
            kv.call("get k"),
            Reply::Bulk(Bytes::from_static(b"\0\0\0ab"))
        );
        // Overwrites inside, grows past the end.
        assert_eq!(kv.call("setrange k 1 xy"), int(5));
        assert_eq!(kv.call("setrange k 4 zzz"), int(7));
        assert_eq!(
            kv.call("get k"),
            Reply::Bulk(Bytes::from_static(b"\0xyazzz"))
        );
        // An empty value changes nothing and creates nothing.
        assert_eq!(
            kv.call("setrange k 100"),
            err("ERR wrong number of arguments for 'setrange' command")
        );
        let empty = Command::SetRange {
            key: Bytes::from_static(b"none"),
            offset: 100,
            value: Bytes::new(),
        };
        assert_eq!(kv.exec(&empty), int(0));
        assert_eq!(kv.call("exists none"), int(0));
        // Errors: the offset first, then the type.
        assert_eq!(
            kv.call("setrange k -1 a"),
            err("ERR offset is out of range")
        );
        assert_eq!(kv.call("setrange k x a"), err(NOT_INTEGER));
        kv.setup(&["lpush l a"]);
        assert_eq!(kv.call("setrange l 0 a"), err(WRONGTYPE));
        assert_eq!(
            kv.call("setrange l -1 a"),
            err("ERR offset is out of range")
        );
        // Keeps the expiry.
        kv.setup(&["set t abc px 100000"]);
        assert_eq!(kv.call("setrange t 1 Z"), int(3));
        assert!(matches!(kv.call("pttl t"), Reply::Integer(ms) if ms > 0));
    }

    #[test]
    fn l13_setrange_beyond_the_value_limit_is_refused_and_l10_counts_growth() {
        let mut kv = Kv::new();
        kv.limits = Limits {
            max_value_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(kv.call("setrange k 8 abc"), err(TOO_BIG));
        assert_eq!(kv.call("exists k"), int(0));
        assert_eq!(kv.call("setrange k 7 abc"), int(10));
        let huge = Command::SetRange {
            key: Bytes::from_static(b"k"),
            offset: u64::MAX,
            value: Bytes::from_static(b"a"),
        };
        assert_eq!(kv.exec(&huge), err(TOO_BIG));
        // Memory grows with the string, as if SET had written it.
        let mut other = Kv::new();
        other.setup(&["set k \0\0\0\0\0\0\0abc"]);
        assert_eq!(kv.store.used_memory(), other.store.used_memory());
        assert_eq!(kv.call("setrange k 0 x"), int(10));
        assert_eq!(kv.store.used_memory(), other.store.used_memory());
    }

    #[test]
    fn getrange_and_substr_follow_redis_indices() {
        let mut kv = Kv::new();
        kv.setup(&["set k Hello"]);
        for (line, want) in [
            ("getrange k 0 3", "Hell"),
            ("getrange k -3 -1", "llo"),
            ("getrange k 0 -1", "Hello"),
            ("getrange k 10 100", ""),
            ("getrange k 3 1", ""),
            ("getrange k -1 -3", ""),
            ("getrange k -100 1", "He"),
            ("getrange k 0 -100", "H"),
            ("substr k 1 2", "el"),
            ("getrange nope 0 -1", ""),
        ] {
            assert_eq!(kv.call(line), bulk(want), "{line}");
        }
        kv.setup(&["lpush l a"]);
        assert_eq!(kv.call("getrange l 0 1"), err(WRONGTYPE));
        assert_eq!(kv.call("getrange k a 1"), err(NOT_INTEGER));
    }
}
