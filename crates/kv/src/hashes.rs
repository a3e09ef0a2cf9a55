//! Hash commands: HSET, HGET, HDEL, HGETALL, HLEN, HINCRBY (an `imbl::OrdMap` per key).

use bytes::Bytes;
use imbl::OrdMap;

use crate::error::{Error, check_string_len};
use crate::limits::element_bytes;
use crate::parse::parse_i64;
use crate::reply::Reply;
use crate::store::{Entry, Store, Value};

impl Store {
    /// HSET: replies with the number of fields that were new.
    pub(crate) fn hset(
        &mut self,
        key: &Bytes,
        pairs: &[(Bytes, Bytes)],
        now: u64,
    ) -> Result<Reply, Error> {
        if pairs.is_empty() {
            self.hash(key, now)?;
            return Ok(Reply::Integer(0)); // Never store an empty hash.
        }
        let max = self.limits.max_value_bytes;
        for (field, value) in pairs {
            check_string_len(field.len(), max)?;
            check_string_len(value.len(), max)?;
        }
        let hash = self.hash_for_write(key, now)?;
        let (mut added, mut grown, mut freed) = (0, 0usize, 0usize);
        for (field, value) in pairs {
            grown += element_bytes(field.len() + value.len());
            match hash.insert(field.clone(), value.clone()) {
                None => added += 1,
                Some(old) => freed += element_bytes(field.len() + old.len()),
            }
        }
        self.grew(grown);
        self.shrank(freed);
        Ok(Reply::count(added))
    }

    pub(crate) fn hget(&self, key: &Bytes, field: &Bytes, now: u64) -> Result<Reply, Error> {
        let value = self
            .hash(key, now)?
            .and_then(|hash| hash.get(field))
            .cloned();
        Ok(Reply::bulk_or_nil(value))
    }

    /// HDEL: replies with the number of fields removed; an emptied hash is deleted.
    pub(crate) fn hdel(&mut self, key: &Bytes, fields: &[Bytes], now: u64) -> Result<Reply, Error> {
        self.hash(key, now)?;
        let Some(Value::Hash(hash)) = self.live_value_mut(key, now) else {
            return Ok(Reply::Integer(0));
        };
        let (mut removed, mut freed) = (0, 0usize);
        for field in fields {
            if let Some(old) = hash.remove(field) {
                removed += 1;
                freed += element_bytes(field.len() + old.len());
            }
        }
        let emptied = hash.is_empty();
        self.shrank(freed);
        if emptied {
            self.remove(key);
        }
        Ok(Reply::count(removed))
    }

    /// HGETALL: a map in field order (empty when the key is missing).
    pub(crate) fn hgetall(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        let pairs = self
            .hash(key, now)?
            .into_iter()
            .flat_map(|hash| hash.iter());
        let pairs =
            pairs.map(|(field, value)| (Reply::Bulk(field.clone()), Reply::Bulk(value.clone())));
        Ok(Reply::Map(pairs.collect()))
    }

    pub(crate) fn hlen(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::count(
            self.hash(key, now)?.map_or(0, |hash| hash.len()),
        ))
    }

    pub(crate) fn hincrby(
        &mut self,
        key: &Bytes,
        field: &Bytes,
        delta: i64,
        now: u64,
    ) -> Result<Reply, Error> {
        let current = match self.hash(key, now)?.and_then(|hash| hash.get(field)) {
            Some(text) => parse_i64(text).ok_or(Error::HashNotInteger)?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or(Error::Overflow)?;
        let text = Bytes::from(next.to_string());
        let grown = element_bytes(field.len() + text.len());
        let old = self.hash_for_write(key, now)?.insert(field.clone(), text);
        self.grew(grown);
        if let Some(old) = old {
            self.shrank(element_bytes(field.len() + old.len()));
        }
        Ok(Reply::Integer(next))
    }

    /// The live hash at `key` for writing, created empty if missing.
    fn hash_for_write(
        &mut self,
        key: &Bytes,
        now: u64,
    ) -> Result<&mut OrdMap<Bytes, Bytes>, Error> {
        if self.hash(key, now)?.is_none() {
            self.put(key, Entry::persistent(Value::Hash(Box::default())));
        }
        match self.live_value_mut(key, now) {
            Some(Value::Hash(hash)) => Ok(&mut **hash),
            _ => unreachable!("a live hash was just ensured at this key"),
        }
    }
}
