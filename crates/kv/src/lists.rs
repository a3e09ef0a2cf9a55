//! List commands: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN (an `imbl::Vector` per key).

use bytes::Bytes;
use imbl::Vector;

use crate::error::{Error, check_string_len};
use crate::limits::element_bytes;
use crate::reply::Reply;
use crate::store::{End, Entry, Store, Value};

impl Store {
    /// LPUSH/RPUSH: each value in turn goes to `end`; replies with the new length.
    pub(crate) fn push(
        &mut self,
        key: &Bytes,
        values: &[Bytes],
        end: End,
        now: u64,
    ) -> Result<Reply, Error> {
        let current = self.list(key, now)?; // WRONGTYPE check before any change.
        for value in values {
            check_string_len(value.len(), self.limits.max_value_bytes)?;
        }
        if values.is_empty() {
            return Ok(Reply::count(current.map_or(0, Vector::len))); // Never store an empty list.
        }
        let Some(Value::List(list)) = self.live_value_mut(key, now) else {
            let mut list = Vector::new();
            push_all(&mut list, values, end);
            let len = list.len();
            self.put(key, Entry::persistent(Value::List(Box::new(list))));
            return Ok(Reply::count(len));
        };
        push_all(list, values, end);
        let len = list.len();
        self.grew(values.iter().map(|v| element_bytes(v.len())).sum());
        Ok(Reply::count(len))
    }

    /// LPOP/RPOP: one element (bulk) without a count, an array with one; nil if no key.
    pub(crate) fn pop(
        &mut self,
        key: &Bytes,
        count: Option<u64>,
        end: End,
        now: u64,
    ) -> Result<Reply, Error> {
        self.list(key, now)?;
        let Some(Value::List(list)) = self.live_value_mut(key, now) else {
            return Ok(Reply::Nil);
        };
        let reply = match count {
            None => Reply::bulk_or_nil(pop_one(list, end)),
            Some(count) => {
                let take = usize::try_from(count).unwrap_or(usize::MAX).min(list.len());
                Reply::bulks((0..take).filter_map(|_| pop_one(list, end)))
            }
        };
        let emptied = list.is_empty();
        let freed = match &reply {
            Reply::Bulk(item) => element_bytes(item.len()),
            Reply::Array(items) => items
                .iter()
                .map(|item| match item {
                    Reply::Bulk(item) => element_bytes(item.len()),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        self.shrank(freed);
        if emptied {
            self.remove(key);
        }
        Ok(reply)
    }

    pub(crate) fn lrange(
        &self,
        key: &Bytes,
        start: i64,
        stop: i64,
        now: u64,
    ) -> Result<Reply, Error> {
        let Some(list) = self.list(key, now)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let items = match list_range(list.len(), start, stop) {
            Some((first, last)) => list.clone().slice(first..=last).into_iter().collect(),
            None => Vec::new(),
        };
        Ok(Reply::bulks(items))
    }

    pub(crate) fn llen(&self, key: &Bytes, now: u64) -> Result<Reply, Error> {
        Ok(Reply::count(self.list(key, now)?.map_or(0, Vector::len)))
    }
}

fn push_all(list: &mut Vector<Bytes>, values: &[Bytes], end: End) {
    for value in values {
        match end {
            End::Front => list.push_front(value.clone()),
            End::Back => list.push_back(value.clone()),
        }
    }
}

fn pop_one(list: &mut Vector<Bytes>, end: End) -> Option<Bytes> {
    match end {
        End::Front => list.pop_front(),
        End::Back => list.pop_back(),
    }
}

/// LRANGE's inclusive index range within a list of `len`, Redis-style: negative indexes
/// count from the end, out-of-range ends are clamped, an empty range is `None`.
pub(crate) fn list_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return None;
    }
    Some((usize::try_from(start).ok()?, usize::try_from(stop).ok()?))
}
