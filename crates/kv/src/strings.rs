//! String commands: GET, SET, SETNX, GETSET, GETDEL, MGET, MSET, APPEND, STRLEN, INCR family.

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
