//! The [`Store`]: the keyspace, its expiry index, typed lookups, and command dispatch.

use bytes::Bytes;
use imbl::{OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};

use crate::acl::Acl;
use crate::command::Command;
use crate::error::Error;
use crate::keymap::{Keymap, Position};
use crate::limits::{Limits, entry_bytes, reply_bytes};
use crate::reply::Reply;
use crate::sets::Member;
use crate::zsets::ZSet;

/// The non-deterministic inputs of one command, decided by the primary (P5) and shipped
/// with the operation, so every replica computes the same result (R1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecContext {
    /// The current time as Unix milliseconds.
    pub now_ms: u64,
    /// A random number, used by RANDOMKEY.
    pub random: u64,
    /// The limits the primary decided for this command (L11-L14).
    pub limits: Limits,
}

/// A stored value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// A binary-safe string.
    Str(Bytes),
    /// A list, front first (boxed, like the hash, so a `Value` is the size of a `Bytes`).
    #[serde(deserialize_with = "crate::bounded_serde::vector")]
    List(Box<Vector<Bytes>>),
    /// A hash from field to value.
    #[serde(deserialize_with = "crate::bounded_serde::boxed_ord_map")]
    Hash(Box<OrdMap<Bytes, Bytes>>),
    // Sets
    /// A set, in (member hash, member) order.
    #[serde(deserialize_with = "crate::sets::deserialize_members")]
    Set(Box<OrdSet<Member>>),
    // Sorted sets
    /// A sorted set (boxed like the hash; deserialized with bounds, NaN refused).
    ZSet(Box<ZSet>),
}

/// A key's value together with its expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// When the key expires (Unix ms); `None` for a persistent key.
    pub expires_at_ms: Option<u64>,
}

impl Entry {
    /// A persistent entry holding `value`.
    pub fn persistent(value: Value) -> Entry {
        Entry {
            value,
            expires_at_ms: None,
        }
    }

    /// Whether the entry is expired (and so invisible) at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// The Redis type name: "string", "list", "hash", "set" or "zset".
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            // Sorted sets
            Value::ZSet(_) => "zset",
        }
    }
}

/// Strings up to this size are copied into an exact-size allocation when stored.
///
/// A request's `Bytes` is shared with the replication log (its first clone allocates a
/// separate refcount header, kept as long as the value lives) or may be a slice of a
/// larger buffer it would pin. Measured with `examples/keyspace.rs` (1M keys, 100-byte
/// values): 216 bytes/key with the copy, 245 without, for ~20% of SET's in-store time.
/// A GET's reply clones the value, which adds the header back (GET stays a refcount
/// bump, not a copy). Larger values stay shared: the copy would cost more than it saves.
const COPY_STRING_MAX: usize = 4096;

/// The `Bytes` to keep for a stored string (see [`COPY_STRING_MAX`]).
pub(crate) fn stored(value: &Bytes) -> Bytes {
    if value.len() <= COPY_STRING_MAX {
        Bytes::copy_from_slice(value)
    } else {
        value.clone()
    }
}

/// The deterministic key/value state machine.
///
/// Drive it with [`Store::execute`]; it never reads a clock or a random source, so the
/// same commands with the same [`ExecContext`]s give the same replies and the same
/// [`Store::digest`] on every replica. Expired keys are invisible but stay in memory
/// until the primary finds them with [`Store::expired_keys`] and every replica deletes
/// them with [`Store::purge_expired`] (P5). Cloning copies one pointer per keyspace bucket
/// (no per-key work), which is how the primary snapshots the state for
/// [`Store::chunk_after`] (P6).
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Every key in memory (expired or not), ordered by (hash, key) for SCAN.
    pub(crate) data: Keymap,
    /// (expires_at_ms, key) for every key that has an expiry.
    pub(crate) expiries: OrdSet<(u64, Bytes)>,
    /// The ACL table (A1): replicated with the data, kept by FLUSHALL.
    pub(crate) acl: Acl,
    /// The memory counted for keys and values (L10), kept by every write.
    pub(crate) used_memory: usize,
    /// The limits of the command being executed (from its [`ExecContext`]).
    pub(crate) limits: Limits,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Keys held in memory, including expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is held in memory.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Runs one command. Errors (wrong type, overflow, ...) come back as [`Reply::Error`]
    /// and leave the store unchanged.
    ///
    /// Limits (from `ctx`, decided by the primary): a command that may grow memory is refused
    /// while `used_memory` is above `maxmemory` (L11), and a reply larger than
    /// `max_reply_bytes` is replaced by an error after the command ran, so a write still
    /// happens the same way on every replica (L14).
    pub fn execute(&mut self, cmd: &Command, ctx: &ExecContext) -> Reply {
        self.limits = ctx.limits;
        if cmd.is_denyoom() && ctx.limits.over_memory(self.used_memory) {
            return Reply::from(Error::OutOfMemory);
        }
        let reply = self.dispatch(cmd, ctx).unwrap_or_else(Reply::from);
        if ctx.limits.policy.uses_access_time() {
            self.touch(&cmd.keys(), ctx.now_ms);
        }
        let max_reply = usize::try_from(ctx.limits.max_reply_bytes).unwrap_or(usize::MAX);
        if max_reply > 0 && reply_bytes(&reply) > max_reply {
            return Reply::from(Error::ReplyTooLarge);
        }
        reply
    }

    /// Adds `bytes` to `used_memory` (an in-place change grew a value).
    pub(crate) fn grew(&mut self, bytes: usize) {
        self.used_memory = self.used_memory.saturating_add(bytes);
    }

    /// Takes `bytes` from `used_memory` (an in-place change shrank a value).
    pub(crate) fn shrank(&mut self, bytes: usize) {
        self.used_memory = self.used_memory.saturating_sub(bytes);
    }

    /// Runs one command on behalf of `user` (`None`: a connection that never authenticated),
    /// after checking it against the ACL table (A3..A7); a refused command changes nothing.
    pub fn execute_as(&mut self, user: Option<&str>, cmd: &Command, ctx: &ExecContext) -> Reply {
        match (self.acl.authorize(user, cmd), cmd) {
            (Err(text), _) => Reply::Error(text),
            (Ok(()), Command::AclWhoAmI) => Reply::Bulk(Bytes::copy_from_slice(
                user.unwrap_or(crate::acl::DEFAULT_USER).as_bytes(),
            )),
            (Ok(()), _) => self.execute(cmd, ctx),
        }
    }

    /// The ACL table.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// Replaces the ACL table (a state transfer's last chunk, P6/A1).
    pub fn set_acl(&mut self, acl: Acl) {
        self.acl = acl;
    }

    fn dispatch(&mut self, cmd: &Command, ctx: &ExecContext) -> Result<Reply, Error> {
        use Command::*;
        let now = ctx.now_ms;
        match cmd {
            Get { key } => self.get(key, now),
            Set {
                key,
                value,
                condition,
                get,
                expiry,
            } => self.set(key, value, *condition, *get, *expiry, now),
            SetNx { key, value } => self.set_nx(key, value, now),
            GetSet { key, value } => self.get_set(key, value, now),
            GetDel { key } => self.get_del(key, now),
            MGet { keys } => Ok(self.mget(keys, now)),
            MSet { pairs } => self.mset(pairs),
            Append { key, value } => self.append(key, value, now),
            StrLen { key } => self.strlen(key, now),
            SetRange { key, offset, value } => self.set_range(key, *offset, value, now),
            GetRange { key, start, end } => self.get_range(key, *start, *end, now),
            Incr { key } => self.incr_by(key, 1, now),
            IncrBy { key, delta } => self.incr_by(key, *delta, now),
            Decr { key } => self.incr_by(key, -1, now),
            DecrBy { key, delta } => self.incr_by(
                key,
                delta.checked_neg().ok_or(Error::DecrementOverflow)?,
                now,
            ),
            Del { keys } => Ok(self.del(keys, now)),
            Exists { keys } => Ok(self.exists(keys, now)),
            Type { key } => Ok(self.type_of(key, now)),
            DbSize => Ok(self.dbsize(now)),
            Keys { pattern } => Ok(self.keys(pattern, now)),
            Scan {
                cursor,
                pattern,
                count,
                type_name,
            } => Ok(self.scan(*cursor, pattern.as_ref(), *count, type_name.as_ref(), now)),
            RandomKey => Ok(self.random_key(ctx)),
            FlushDb { .. } | FlushAll { .. } => Ok(self.flush()),
            Expire {
                key,
                seconds,
                condition,
            } => {
                let millis = seconds
                    .checked_mul(1000)
                    .ok_or(Error::InvalidExpireTime("expire"))?;
                self.expire(key, millis, *condition, "expire", now)
            }
            PExpire {
                key,
                millis,
                condition,
            } => self.expire(key, *millis, *condition, "pexpire", now),
            Ttl { key } => Ok(self.ttl(key, 1000, now)),
            PTtl { key } => Ok(self.ttl(key, 1, now)),
            Persist { key } => Ok(self.persist(key, now)),
            LPush { key, values } => self.push(key, values, End::Front, now),
            RPush { key, values } => self.push(key, values, End::Back, now),
            LPop { key, count } => self.pop(key, *count, End::Front, now),
            RPop { key, count } => self.pop(key, *count, End::Back, now),
            LRange { key, start, stop } => self.lrange(key, *start, *stop, now),
            LLen { key } => self.llen(key, now),
            HSet { key, pairs } => self.hset(key, pairs, now),
            HGet { key, field } => self.hget(key, field, now),
            HDel { key, fields } => self.hdel(key, fields, now),
            HGetAll { key } => self.hgetall(key, now),
            HLen { key } => self.hlen(key, now),
            HIncrBy { key, field, delta } => self.hincrby(key, field, *delta, now),
            // Sets
            SAdd { key, members } => self.sadd(key, members, now),
            SRem { key, members } => self.srem(key, members, now),
            SCard { key } => self.scard(key, now),
            SIsMember { key, member } => self.sismember(key, member, now),
            SMIsMember { key, members } => self.smismember(key, members, now),
            SMembers { key } => self.smembers(key, now),
            SPop { key, count } => self.spop(key, *count, ctx),
            SRandMember { key, count } => self.srandmember(key, *count, ctx),
            SMove {
                source,
                destination,
                member,
            } => self.smove(source, destination, member, now),
            SInter { keys } => self.sinter(keys, now),
            SInterCard { keys, limit } => self.sintercard(keys, *limit, now),
            SInterStore { destination, keys } => self.sinterstore(destination, keys, now),
            SUnion { keys } => self.sunion(keys, now),
            SUnionStore { destination, keys } => self.sunionstore(destination, keys, now),
            SDiff { keys } => self.sdiff(keys, now),
            SDiffStore { destination, keys } => self.sdiffstore(destination, keys, now),
            SScan {
                key,
                cursor,
                options,
            } => self.sscan(key, *cursor, options, now),
            Auth { user, password } => Ok(self.acl.auth(user.as_ref(), password)),
            AclSetUser { user, rules } => Ok(self.acl.set_user(user, rules)),
            AclDelUser { users } => Ok(self.acl.del_users(users)),
            AclGetUser { user } => Ok(self.acl.get_user(user)),
            AclList => Ok(self.acl.list()),
            AclUsers => Ok(self.acl.users()),
            // Without a user (a trusted caller), the connection is the default user's.
            AclWhoAmI => Ok(Reply::Bulk(Bytes::from_static(
                crate::acl::DEFAULT_USER.as_bytes(),
            ))),
            AclCat { category } => Ok(Acl::cat(category.as_ref())),
            AclDryRun { user, args } => Ok(self.acl.dry_run(user, args)),
            ConfigSetRequirepass { password } => {
                self.acl.set_requirepass(password);
                Ok(Reply::ok())
            }
            AclDefaultState => Ok(Reply::Integer(i64::from(self.acl.default_needs_password()))),
            RequirepassIfUnset { password } => {
                self.acl.requirepass_if_unset(password);
                Ok(Reply::ok())
            }
            // Sorted sets
            ZAdd { key, flags, pairs } => self.zadd(key, *flags, pairs, now),
            ZIncrBy { key, delta, member } => self.zincrby(key, *delta, member, now),
            ZScore { key, member } => self.zscore(key, member, now),
            ZMScore { key, members } => self.zmscore(key, members, now),
            ZCard { key } => self.zcard(key, now),
            ZCount { key, range } | ZLexCount { key, range } => self.zcount(key, range, now),
            ZRange {
                key,
                range,
                rev,
                limit,
                withscores,
                ..
            } => self.zrange(key, range, *rev, *limit, *withscores, now),
            ZRangeStore {
                dst,
                src,
                range,
                rev,
                limit,
            } => self.zrangestore(dst, src, range, *rev, *limit, now),
            ZRank {
                key,
                member,
                rev,
                withscore,
            } => self.zrank(key, member, *rev, *withscore, now),
            ZRem { key, members } => self.zrem(key, members, now),
            ZRemRange { key, range } => self.zremrange(key, range, now),
            ZPop { key, max, count } => self.zpop(key, *max, *count, now),
            ZMPop { keys, max, count } => self.zmpop(keys, *max, *count, now),
            ZSetOp {
                op,
                dst,
                keys,
                weights,
                aggregate,
                withscores,
            } => self.zsetop_command(
                *op,
                dst.as_ref(),
                keys,
                weights.as_deref(),
                *aggregate,
                *withscores,
                now,
            ),
            ZInterCard { keys, limit } => self.zintercard(keys, *limit, now),
            ZRandMember {
                key,
                count,
                withscores,
            } => self.zrandmember(key, *count, *withscores, ctx),
            ZScan {
                key,
                cursor,
                pattern,
                count,
            } => self.zscan(key, *cursor, pattern.as_ref(), *count, now),
        }
    }

    /// The entry at `key` if it is live at `now`.
    pub(crate) fn live(&self, key: &Bytes, now: u64) -> Option<&Entry> {
        self.data.get(key).filter(|entry| !entry.is_expired(now))
    }

    /// The value at `key` for in-place change, if the key is live at `now`. Only the
    /// value is exposed so the expiry index cannot go stale.
    pub(crate) fn live_value_mut(&mut self, key: &Bytes, now: u64) -> Option<&mut Value> {
        let entry = self.data.get_mut(key)?;
        if entry.is_expired(now) {
            None
        } else {
            Some(&mut entry.value)
        }
    }

    /// Stores `entry` at `key`, replacing whatever was there (live or expired).
    pub(crate) fn put(&mut self, key: &Bytes, entry: Entry) {
        let pos = self.data.position(key);
        self.put_at(pos, key, entry);
    }

    /// [`Store::put`] at a position already searched for `key` (one search per command).
    pub(crate) fn put_at(&mut self, pos: Position, key: &Bytes, entry: Entry) {
        let new_at = entry.expires_at_ms;
        self.grew(entry_bytes(key, &entry));
        let old = self.data.put_at(pos, key, entry);
        if let Some(old) = &old {
            self.shrank(entry_bytes(key, old));
        }
        self.reindex(key, old.and_then(|e| e.expires_at_ms), new_at);
    }

    /// Deletes `key` from memory, live or not.
    pub(crate) fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        let pos = self.data.position(key);
        self.remove_at(pos, key)
    }

    /// [`Store::remove`] at a position already searched for `key`.
    pub(crate) fn remove_at(&mut self, pos: Position, key: &Bytes) -> Option<Entry> {
        let old = self.data.remove_at(pos)?;
        self.shrank(entry_bytes(key, &old));
        self.reindex(key, old.expires_at_ms, None);
        Some(old)
    }

    /// Changes the expiry of an existing key.
    pub(crate) fn set_expiry(&mut self, key: &Bytes, expires_at_ms: Option<u64>) {
        if let Some(entry) = self.data.get_mut(key) {
            let old = std::mem::replace(&mut entry.expires_at_ms, expires_at_ms);
            self.reindex(key, old, expires_at_ms);
        }
    }

    /// Moves `key`'s expiry-index record from `old` to `new`.
    fn reindex(&mut self, key: &Bytes, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            self.expiries.remove(&(at, key.clone()));
        }
        if let Some(at) = new {
            // An exact-size copy: the index must not pin the request's buffer.
            self.expiries.insert((at, Bytes::copy_from_slice(key)));
        }
    }

    /// The live string at `key`; WRONGTYPE if the key holds another type.
    pub(crate) fn string(&self, key: &Bytes, now: u64) -> Result<Option<&Bytes>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(Error::WrongType),
        }
    }

    /// The live list at `key`; WRONGTYPE if the key holds another type.
    pub(crate) fn list(&self, key: &Bytes, now: u64) -> Result<Option<&Vector<Bytes>>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::List(list)) => Ok(Some(list.as_ref())),
            Some(_) => Err(Error::WrongType),
        }
    }

    /// The live hash at `key`; WRONGTYPE if the key holds another type.
    pub(crate) fn hash(
        &self,
        key: &Bytes,
        now: u64,
    ) -> Result<Option<&OrdMap<Bytes, Bytes>>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Hash(hash)) => Ok(Some(hash.as_ref())),
            Some(_) => Err(Error::WrongType),
        }
    }

    // Sets
    /// The live set at `key`; WRONGTYPE if the key holds another type.
    pub(crate) fn set_members(
        &self,
        key: &Bytes,
        now: u64,
    ) -> Result<Option<&OrdSet<Member>>, Error> {
        match self.live(key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Set(set)) => Ok(Some(set.as_ref())),
            Some(_) => Err(Error::WrongType),
        }
    }
}

/// Which end of a list a push or pop works on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Front,
    Back,
}
