//! The validated, typed form of every command, and its way back to arguments.
//!
//! Parsing lives in `parse.rs`; this file holds the types and the inverse direction
//! (`to_args`), plus the metadata the replication layer needs (`name`, `is_write`, `keys`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::zsets::{Aggregate, Score, SetOp, ZAddFlags, ZRangeSpec};

/// SET's existence condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// NX: only set when the key does not exist.
    Nx,
    /// XX: only set when the key already exists.
    Xx,
}

/// SET's expiry option. Relative values are always positive (checked by `parse`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetExpiry {
    /// EX: expire this many seconds after `ExecContext::now_ms`.
    Ex(u64),
    /// PX: expire this many milliseconds after `ExecContext::now_ms`.
    Px(u64),
    /// EXAT: expire at this Unix time in seconds.
    ExAt(u64),
    /// PXAT: expire at this Unix time in milliseconds.
    PxAt(u64),
    /// KEEPTTL: keep the key's current expiry instead of clearing it.
    KeepTtl,
}

/// EXPIRE/PEXPIRE condition (Redis 7). XX may be combined with GT or LT; NX stands alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    /// NX: only when the key has no expiry.
    Nx,
    /// XX: only when the key has an expiry.
    Xx,
    /// GT: only when the new expiry is later than the current one (none counts as infinite).
    Gt,
    /// LT: only when the new expiry is earlier than the current one (none counts as infinite).
    Lt,
    /// XX and GT together.
    XxGt,
    /// XX and LT together.
    XxLt,
}

/// FLUSHDB/FLUSHALL mode. Both behave the same here; the mode is kept for round trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlushMode {
    /// ASYNC.
    Async,
    /// SYNC.
    Sync,
}

// Sorted sets
/// Which command name a ZRANGE-like read was sent as (they share one variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZRangeForm {
    /// `ZRANGE key min max [BYSCORE|BYLEX] [REV] [LIMIT o c] [WITHSCORES]`.
    ZRange,
    /// `ZREVRANGE key start stop [WITHSCORES]`.
    ZRevRange,
    /// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT o c]`.
    ZRangeByScore,
    /// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT o c]`.
    ZRevRangeByScore,
    /// `ZRANGEBYLEX key min max [LIMIT o c]`.
    ZRangeByLex,
    /// `ZREVRANGEBYLEX key max min [LIMIT o c]`.
    ZRevRangeByLex,
}

/// One command, fully validated, with typed arguments. Built by [`Command::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Variant fields are named after the Redis arguments they hold.
pub enum Command {
    /// `GET key`.
    Get { key: Bytes },
    /// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
    Set {
        key: Bytes,
        value: Bytes,
        condition: Option<SetCondition>,
        get: bool,
        expiry: Option<SetExpiry>,
    },
    /// `SETNX key value`.
    SetNx { key: Bytes, value: Bytes },
    /// `GETSET key value`.
    GetSet { key: Bytes, value: Bytes },
    /// `GETDEL key`.
    GetDel { key: Bytes },
    /// `MGET key [key ...]`.
    MGet { keys: Vec<Bytes> },
    /// `MSET key value [key value ...]`.
    MSet { pairs: Vec<(Bytes, Bytes)> },
    /// `APPEND key value`.
    Append { key: Bytes, value: Bytes },
    /// `STRLEN key`.
    StrLen { key: Bytes },
    /// `SETRANGE key offset value` (the offset checked non-negative at parse).
    SetRange {
        key: Bytes,
        offset: u64,
        value: Bytes,
    },
    /// `GETRANGE key start end` (also `SUBSTR`).
    GetRange { key: Bytes, start: i64, end: i64 },
    /// `INCR key`.
    Incr { key: Bytes },
    /// `INCRBY key delta`.
    IncrBy { key: Bytes, delta: i64 },
    /// `DECR key`.
    Decr { key: Bytes },
    /// `DECRBY key delta` (never `i64::MIN`).
    DecrBy { key: Bytes, delta: i64 },
    /// `DEL key [key ...]`.
    Del { keys: Vec<Bytes> },
    /// `EXISTS key [key ...]`; repeated keys count repeatedly.
    Exists { keys: Vec<Bytes> },
    /// `TYPE key`.
    Type { key: Bytes },
    /// `DBSIZE`.
    DbSize,
    /// `KEYS pattern`.
    Keys { pattern: Bytes },
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`; `type_name` is lowercase.
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: Option<u64>,
        type_name: Option<Bytes>,
    },
    /// `RANDOMKEY`.
    RandomKey,
    /// `FLUSHDB [ASYNC|SYNC]`.
    FlushDb { mode: Option<FlushMode> },
    /// `FLUSHALL [ASYNC|SYNC]`.
    FlushAll { mode: Option<FlushMode> },
    /// `EXPIRE key seconds [NX|XX|GT|LT]`.
    Expire {
        key: Bytes,
        seconds: i64,
        condition: Option<ExpireCondition>,
    },
    /// `PEXPIRE key milliseconds [NX|XX|GT|LT]`.
    PExpire {
        key: Bytes,
        millis: i64,
        condition: Option<ExpireCondition>,
    },
    /// `TTL key`.
    Ttl { key: Bytes },
    /// `PTTL key`.
    PTtl { key: Bytes },
    /// `PERSIST key`.
    Persist { key: Bytes },
    /// `LPUSH key value [value ...]`.
    LPush { key: Bytes, values: Vec<Bytes> },
    /// `RPUSH key value [value ...]`.
    RPush { key: Bytes, values: Vec<Bytes> },
    /// `LPOP key [count]`.
    LPop { key: Bytes, count: Option<u64> },
    /// `RPOP key [count]`.
    RPop { key: Bytes, count: Option<u64> },
    /// `LRANGE key start stop`.
    LRange { key: Bytes, start: i64, stop: i64 },
    /// `LLEN key`.
    LLen { key: Bytes },
    /// `HSET key field value [field value ...]`.
    HSet {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// `HGET key field`.
    HGet { key: Bytes, field: Bytes },
    /// `HDEL key field [field ...]`.
    HDel { key: Bytes, fields: Vec<Bytes> },
    /// `HGETALL key`.
    HGetAll { key: Bytes },
    /// `HLEN key`.
    HLen { key: Bytes },
    /// `HINCRBY key field delta`.
    HIncrBy {
        key: Bytes,
        field: Bytes,
        delta: i64,
    },
    // Sets
    /// `SADD key member [member ...]`.
    SAdd { key: Bytes, members: Vec<Bytes> },
    /// `SREM key member [member ...]`.
    SRem { key: Bytes, members: Vec<Bytes> },
    /// `SCARD key`.
    SCard { key: Bytes },
    /// `SISMEMBER key member`.
    SIsMember { key: Bytes, member: Bytes },
    /// `SMISMEMBER key member [member ...]`.
    SMIsMember { key: Bytes, members: Vec<Bytes> },
    /// `SMEMBERS key`.
    SMembers { key: Bytes },
    /// `SPOP key [count]` (the count checked non-negative at parse).
    SPop { key: Bytes, count: Option<u64> },
    /// `SRANDMEMBER key [count]`; a negative count allows repeats (never `i64::MIN`).
    SRandMember { key: Bytes, count: Option<i64> },
    /// `SMOVE source destination member`.
    SMove {
        source: Bytes,
        destination: Bytes,
        member: Bytes,
    },
    /// `SINTER key [key ...]`.
    SInter { keys: Vec<Bytes> },
    /// `SINTERCARD numkeys key [key ...] [LIMIT limit]`; `limit` 0 means none.
    SInterCard { keys: Vec<Bytes>, limit: u64 },
    /// `SINTERSTORE destination key [key ...]`.
    SInterStore {
        destination: Bytes,
        keys: Vec<Bytes>,
    },
    /// `SUNION key [key ...]`.
    SUnion { keys: Vec<Bytes> },
    /// `SUNIONSTORE destination key [key ...]`.
    SUnionStore {
        destination: Bytes,
        keys: Vec<Bytes>,
    },
    /// `SDIFF key [key ...]`.
    SDiff { keys: Vec<Bytes> },
    /// `SDIFFSTORE destination key [key ...]`.
    SDiffStore {
        destination: Bytes,
        keys: Vec<Bytes>,
    },
    /// `SSCAN key cursor [MATCH pattern] [COUNT count]`. The options are kept as sent and
    /// checked when the command runs: Redis checks them after the key's type, so a missing key
    /// answers an empty scan whatever they say.
    SScan {
        key: Bytes,
        cursor: u64,
        options: Vec<Bytes>,
    },
    /// `AUTH [user] password` (A2): checks the pair against the table; changes nothing.
    Auth {
        user: Option<Bytes>,
        password: Bytes,
    },
    /// `ACL SETUSER user [rule ...]` (A8).
    AclSetUser { user: Bytes, rules: Vec<Bytes> },
    /// `ACL DELUSER user [user ...]`.
    AclDelUser { users: Vec<Bytes> },
    /// `ACL GETUSER user`.
    AclGetUser { user: Bytes },
    /// `ACL LIST`.
    AclList,
    /// `ACL USERS`.
    AclUsers,
    /// `ACL CAT [category]`.
    AclCat { category: Option<Bytes> },
    /// `ACL WHOAMI`: answered by [`Store::execute_as`](crate::Store::execute_as), which knows
    /// the user, after the permission check (A4).
    AclWhoAmI,
    /// `ACL DRYRUN user command [arg ...]`.
    AclDryRun { user: Bytes, args: Vec<Bytes> },
    /// `CONFIG SET requirepass password` (A9).
    ConfigSetRequirepass { password: Bytes },
    /// Internal (coordinators only, never parsed from a client): 1 if a connection that never
    /// authenticated needs a password, else 0 (A3).
    AclDefaultState,
    /// Internal: `--requirepass` at a coordinator's start, applied only while the default user
    /// has no password (A9).
    RequirepassIfUnset { password: Bytes },
    // Sorted sets
    /// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
    ZAdd {
        key: Bytes,
        flags: ZAddFlags,
        pairs: Vec<(Score, Bytes)>,
    },
    /// `ZINCRBY key increment member`.
    ZIncrBy {
        key: Bytes,
        delta: Score,
        member: Bytes,
    },
    /// `ZSCORE key member`.
    ZScore { key: Bytes, member: Bytes },
    /// `ZMSCORE key member [member ...]`.
    ZMScore { key: Bytes, members: Vec<Bytes> },
    /// `ZCARD key`.
    ZCard { key: Bytes },
    /// `ZCOUNT key min max` (a score range).
    ZCount { key: Bytes, range: ZRangeSpec },
    /// `ZLEXCOUNT key min max` (a lex range).
    ZLexCount { key: Bytes, range: ZRangeSpec },
    /// ZRANGE and the older ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX (`form`).
    ZRange {
        form: ZRangeForm,
        key: Bytes,
        range: ZRangeSpec,
        rev: bool,
        limit: Option<(i64, i64)>,
        withscores: bool,
    },
    /// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
    ZRangeStore {
        dst: Bytes,
        src: Bytes,
        range: ZRangeSpec,
        rev: bool,
        limit: Option<(i64, i64)>,
    },
    /// `ZRANK key member [WITHSCORE]`, `ZREVRANK` when `rev`.
    ZRank {
        key: Bytes,
        member: Bytes,
        rev: bool,
        withscore: bool,
    },
    /// `ZREM key member [member ...]`.
    ZRem { key: Bytes, members: Vec<Bytes> },
    /// ZREMRANGEBYRANK/BYSCORE/BYLEX, named by the kind of `range`.
    ZRemRange { key: Bytes, range: ZRangeSpec },
    /// `ZPOPMIN key [count]`, `ZPOPMAX` when `max`.
    ZPop {
        key: Bytes,
        max: bool,
        count: Option<u64>,
    },
    /// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]` (count at least 1).
    ZMPop {
        keys: Vec<Bytes>,
        max: bool,
        count: u64,
    },
    /// ZUNION/ZINTER/ZDIFF (`dst` none) and ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE.
    ZSetOp {
        op: SetOp,
        dst: Option<Bytes>,
        keys: Vec<Bytes>,
        weights: Option<Vec<Score>>,
        aggregate: Aggregate,
        withscores: bool,
    },
    /// `ZINTERCARD numkeys key [key ...] [LIMIT limit]` (0: no limit).
    ZInterCard { keys: Vec<Bytes>, limit: u64 },
    /// `ZRANDMEMBER key [count [WITHSCORES]]`.
    ZRandMember {
        key: Bytes,
        count: Option<i64>,
        withscores: bool,
    },
    /// `ZSCAN key cursor [MATCH pattern] [COUNT count]`.
    ZScan {
        key: Bytes,
        cursor: u64,
        pattern: Option<Bytes>,
        count: Option<u64>,
    },
}

impl Command {
    /// The lowercase Redis name, e.g. `"set"`.
    pub fn name(&self) -> &'static str {
        use Command::*;
        match self {
            Get { .. } => "get",
            Set { .. } => "set",
            SetNx { .. } => "setnx",
            GetSet { .. } => "getset",
            GetDel { .. } => "getdel",
            MGet { .. } => "mget",
            MSet { .. } => "mset",
            Append { .. } => "append",
            StrLen { .. } => "strlen",
            SetRange { .. } => "setrange",
            GetRange { .. } => "getrange",
            Incr { .. } => "incr",
            IncrBy { .. } => "incrby",
            Decr { .. } => "decr",
            DecrBy { .. } => "decrby",
            Del { .. } => "del",
            Exists { .. } => "exists",
            Type { .. } => "type",
            DbSize => "dbsize",
            Keys { .. } => "keys",
            Scan { .. } => "scan",
            RandomKey => "randomkey",
            FlushDb { .. } => "flushdb",
            FlushAll { .. } => "flushall",
            Expire { .. } => "expire",
            PExpire { .. } => "pexpire",
            Ttl { .. } => "ttl",
            PTtl { .. } => "pttl",
            Persist { .. } => "persist",
            LPush { .. } => "lpush",
            RPush { .. } => "rpush",
            LPop { .. } => "lpop",
            RPop { .. } => "rpop",
            LRange { .. } => "lrange",
            LLen { .. } => "llen",
            HSet { .. } => "hset",
            HGet { .. } => "hget",
            HDel { .. } => "hdel",
            HGetAll { .. } => "hgetall",
            HLen { .. } => "hlen",
            HIncrBy { .. } => "hincrby",
            // Sets
            SAdd { .. } => "sadd",
            SRem { .. } => "srem",
            SCard { .. } => "scard",
            SIsMember { .. } => "sismember",
            SMIsMember { .. } => "smismember",
            SMembers { .. } => "smembers",
            SPop { .. } => "spop",
            SRandMember { .. } => "srandmember",
            SMove { .. } => "smove",
            SInter { .. } => "sinter",
            SInterCard { .. } => "sintercard",
            SInterStore { .. } => "sinterstore",
            SUnion { .. } => "sunion",
            SUnionStore { .. } => "sunionstore",
            SDiff { .. } => "sdiff",
            SDiffStore { .. } => "sdiffstore",
            SScan { .. } => "sscan",
            Auth { .. } => "auth",
            AclSetUser { .. }
            | AclDelUser { .. }
            | AclGetUser { .. }
            | AclList
            | AclUsers
            | AclCat { .. }
            | AclWhoAmI
            | AclDryRun { .. } => "acl",
            ConfigSetRequirepass { .. } => "config",
            AclDefaultState => "tandem.acl-state",
            RequirepassIfUnset { .. } => "tandem.requirepass-if-unset",
            // Sorted sets
            ZAdd { .. } => "zadd",
            ZIncrBy { .. } => "zincrby",
            ZScore { .. } => "zscore",
            ZMScore { .. } => "zmscore",
            ZCard { .. } => "zcard",
            ZCount { .. } => "zcount",
            ZLexCount { .. } => "zlexcount",
            ZRange { form, .. } => match form {
                ZRangeForm::ZRange => "zrange",
                ZRangeForm::ZRevRange => "zrevrange",
                ZRangeForm::ZRangeByScore => "zrangebyscore",
                ZRangeForm::ZRevRangeByScore => "zrevrangebyscore",
                ZRangeForm::ZRangeByLex => "zrangebylex",
                ZRangeForm::ZRevRangeByLex => "zrevrangebylex",
            },
            ZRangeStore { .. } => "zrangestore",
            ZRank { rev: false, .. } => "zrank",
            ZRank { rev: true, .. } => "zrevrank",
            ZRem { .. } => "zrem",
            ZRemRange { range, .. } => match range {
                ZRangeSpec::Rank { .. } => "zremrangebyrank",
                ZRangeSpec::Score { .. } => "zremrangebyscore",
                ZRangeSpec::Lex { .. } => "zremrangebylex",
            },
            ZPop { max: false, .. } => "zpopmin",
            ZPop { max: true, .. } => "zpopmax",
            ZMPop { .. } => "zmpop",
            ZSetOp { op, dst, .. } => match (op, dst.is_some()) {
                (SetOp::Union, false) => "zunion",
                (SetOp::Inter, false) => "zinter",
                (SetOp::Diff, false) => "zdiff",
                (SetOp::Union, true) => "zunionstore",
                (SetOp::Inter, true) => "zinterstore",
                (SetOp::Diff, true) => "zdiffstore",
            },
            ZInterCard { .. } => "zintercard",
            ZRandMember { .. } => "zrandmember",
            ZScan { .. } => "zscan",
        }
    }

    /// The name ACL rules and NOPERM errors use: `container|subcommand` for subcommands.
    pub fn acl_name(&self) -> &'static str {
        use Command::*;
        match self {
            AclSetUser { .. } => "acl|setuser",
            AclDelUser { .. } => "acl|deluser",
            AclGetUser { .. } => "acl|getuser",
            AclList => "acl|list",
            AclUsers => "acl|users",
            AclCat { .. } => "acl|cat",
            AclWhoAmI => "acl|whoami",
            AclDryRun { .. } => "acl|dryrun",
            ConfigSetRequirepass { .. } => "config|set",
            _ => self.name(),
        }
    }

    /// Commands only a coordinator sends for itself; no client can name them (A6).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Command::AclDefaultState | Command::RequirepassIfUnset { .. }
        )
    }

    /// What the command does to its keys, as (reads, writes), for `%R~`/`%W~` patterns (A5).
    /// Pure reads read; writes that return or depend on the old value do both; other writes
    /// only write.
    pub fn key_access(&self) -> (bool, bool) {
        use Command::*;
        match self {
            GetSet { .. }
            | GetDel { .. }
            | Incr { .. }
            | IncrBy { .. }
            | Decr { .. }
            | DecrBy { .. }
            | LPop { .. }
            | RPop { .. }
            | HIncrBy { .. } => (true, true),
            // Sets: these return or depend on what they change.
            SPop { .. } | SMove { .. } => (true, true),
            SInterStore { .. } | SUnionStore { .. } | SDiffStore { .. } => (true, true),
            // Sorted sets
            ZIncrBy { .. } | ZPop { .. } | ZMPop { .. } => (true, true),
            ZAdd { flags, .. } => (flags.incr, true),
            Set { get, .. } => (*get, true),
            _ if self.is_write() => (false, true),
            _ => (true, false),
        }
    }

    /// Whether the command may change the store; false for pure reads.
    pub fn is_write(&self) -> bool {
        use Command::*;
        !matches!(
            self,
            Get { .. }
                | MGet { .. }
                | StrLen { .. }
                | GetRange { .. }
                | Exists { .. }
                | Type { .. }
                | DbSize
                | Keys { .. }
                | Scan { .. }
                | RandomKey
                | Ttl { .. }
                | PTtl { .. }
                | LRange { .. }
                | LLen { .. }
                | HGet { .. }
                | HGetAll { .. }
                | HLen { .. }
                // Sets
                | SCard { .. }
                | SIsMember { .. }
                | SMIsMember { .. }
                | SMembers { .. }
                | SRandMember { .. }
                | SInter { .. }
                | SInterCard { .. }
                | SUnion { .. }
                | SDiff { .. }
                | SScan { .. }
                | Auth { .. }
                | AclGetUser { .. }
                | AclList
                | AclUsers
                | AclCat { .. }
                | AclWhoAmI
                | AclDryRun { .. }
                | AclDefaultState
                // Sorted sets
                | ZScore { .. }
                | ZMScore { .. }
                | ZCard { .. }
                | ZCount { .. }
                | ZLexCount { .. }
                | ZRange { .. }
                | ZRank { .. }
                | ZSetOp { dst: None, .. }
                | ZInterCard { .. }
                | ZRandMember { .. }
                | ZScan { .. }
        )
    }

    /// The keys the command touches, in argument order (repeats kept); empty for
    /// keyspace-wide commands (DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHDB, FLUSHALL).
    pub fn keys(&self) -> Vec<&Bytes> {
        use Command::*;
        match self {
            MGet { keys } | Del { keys } | Exists { keys } => keys.iter().collect(),
            MSet { pairs } => pairs.iter().map(|(key, _)| key).collect(),
            // Sets
            SInter { keys } | SInterCard { keys, .. } | SUnion { keys } | SDiff { keys } => {
                keys.iter().collect()
            }
            SInterStore { destination, keys }
            | SUnionStore { destination, keys }
            | SDiffStore { destination, keys } => {
                std::iter::once(destination).chain(keys.iter()).collect()
            }
            SMove {
                source,
                destination,
                ..
            } => vec![source, destination],
            DbSize | Keys { .. } | Scan { .. } | RandomKey | FlushDb { .. } | FlushAll { .. } => {
                Vec::new()
            }
            // Sorted sets
            ZRangeStore { dst, src, .. } => vec![dst, src],
            ZMPop { keys, .. } | ZInterCard { keys, .. } => keys.iter().collect(),
            ZSetOp { dst, keys, .. } => dst.iter().chain(keys.iter()).collect(),
            _ => self.single_key().into_iter().collect(),
        }
    }

    /// The key of a single-key command.
    pub(crate) fn single_key(&self) -> Option<&Bytes> {
        use Command::*;
        match self {
            Get { key }
            | Set { key, .. }
            | SetNx { key, .. }
            | GetSet { key, .. }
            | GetDel { key }
            | Append { key, .. }
            | StrLen { key }
            | SetRange { key, .. }
            | GetRange { key, .. }
            | Incr { key }
            | IncrBy { key, .. }
            | Decr { key }
            | DecrBy { key, .. }
            | Type { key }
            | Expire { key, .. }
            | PExpire { key, .. }
            | Ttl { key }
            | PTtl { key }
            | Persist { key }
            | LPush { key, .. }
            | RPush { key, .. }
            | LPop { key, .. }
            | RPop { key, .. }
            | LRange { key, .. }
            | LLen { key }
            | HSet { key, .. }
            | HGet { key, .. }
            | HDel { key, .. }
            | HGetAll { key }
            | HLen { key }
            | HIncrBy { key, .. } => Some(key),
            // Sets
            SAdd { key, .. }
            | SRem { key, .. }
            | SCard { key }
            | SIsMember { key, .. }
            | SMIsMember { key, .. }
            | SMembers { key }
            | SPop { key, .. }
            | SRandMember { key, .. }
            | SScan { key, .. } => Some(key),
            // Sorted sets
            ZAdd { key, .. }
            | ZIncrBy { key, .. }
            | ZScore { key, .. }
            | ZMScore { key, .. }
            | ZCard { key }
            | ZCount { key, .. }
            | ZLexCount { key, .. }
            | ZRange { key, .. }
            | ZRank { key, .. }
            | ZRem { key, .. }
            | ZRemRange { key, .. }
            | ZPop { key, .. }
            | ZRandMember { key, .. }
            | ZScan { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The arguments (name first) that [`Command::parse`] turns back into this command.
    pub fn to_args(&self) -> Vec<Bytes> {
        let mut args = vec![Bytes::from_static(self.name().as_bytes())];
        self.push_args(&mut args);
        args
    }

    /// Appends everything after the name.
    fn push_args(&self, args: &mut Vec<Bytes>) {
        use Command::*;
        match self {
            Set {
                key,
                value,
                condition,
                get,
                expiry,
            } => {
                args.extend([key.clone(), value.clone()]);
                push_set_options(args, *condition, *get, *expiry);
            }
            SetNx { key, value } | GetSet { key, value } | Append { key, value } => {
                args.extend([key.clone(), value.clone()]);
            }
            SetRange { key, offset, value } => {
                args.extend([key.clone(), Bytes::from(offset.to_string()), value.clone()]);
            }
            GetRange { key, start, end } => {
                args.extend([key.clone(), number(*start), number(*end)]);
            }
            MGet { keys } | Del { keys } | Exists { keys } => args.extend(keys.iter().cloned()),
            MSet { pairs } | HSet { pairs, .. } => {
                args.extend(self.single_key().cloned());
                args.extend(pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]));
            }
            IncrBy { key, delta } | DecrBy { key, delta } => {
                args.extend([key.clone(), number(*delta)])
            }
            Keys { pattern } => args.push(pattern.clone()),
            Scan {
                cursor,
                pattern,
                count,
                type_name,
            } => push_scan_args(args, *cursor, pattern, *count, type_name),
            FlushDb { mode } | FlushAll { mode } => args.extend(mode.map(flush_mode_arg)),
            Expire {
                key,
                seconds: amount,
                condition,
            }
            | PExpire {
                key,
                millis: amount,
                condition,
            } => {
                args.extend([key.clone(), number(*amount)]);
                args.extend(condition.map(expire_condition_args).into_iter().flatten());
            }
            LPush { key, values } | RPush { key, values } => {
                args.push(key.clone());
                args.extend(values.iter().cloned());
            }
            LPop { key, count } | RPop { key, count } => {
                args.push(key.clone());
                args.extend(count.map(number));
            }
            LRange { key, start, stop } => {
                args.extend([key.clone(), number(*start), number(*stop)])
            }
            HGet { key, field } => args.extend([key.clone(), field.clone()]),
            HDel { key, fields } => {
                args.push(key.clone());
                args.extend(fields.iter().cloned());
            }
            HIncrBy { key, field, delta } => {
                args.extend([key.clone(), field.clone(), number(*delta)])
            }
            // Sets
            SAdd { key, members } | SRem { key, members } | SMIsMember { key, members } => {
                args.push(key.clone());
                args.extend(members.iter().cloned());
            }
            SIsMember { key, member } => args.extend([key.clone(), member.clone()]),
            SPop { key, count } => {
                args.push(key.clone());
                args.extend(count.map(number));
            }
            SRandMember { key, count } => {
                args.push(key.clone());
                args.extend(count.map(number));
            }
            SMove {
                source,
                destination,
                member,
            } => args.extend([source.clone(), destination.clone(), member.clone()]),
            SInter { keys } | SUnion { keys } | SDiff { keys } => args.extend(keys.iter().cloned()),
            SInterCard { keys, limit } => {
                args.push(number(keys.len()));
                args.extend(keys.iter().cloned());
                if *limit > 0 {
                    args.extend([Bytes::from_static(b"LIMIT"), number(*limit)]);
                }
            }
            SInterStore { destination, keys }
            | SUnionStore { destination, keys }
            | SDiffStore { destination, keys } => {
                args.push(destination.clone());
                args.extend(keys.iter().cloned());
            }
            SScan {
                key,
                cursor,
                options,
            } => {
                args.extend([key.clone(), number(*cursor)]);
                args.extend(options.iter().cloned());
            }
            Auth { user, password } => {
                args.extend(user.iter().cloned());
                args.push(password.clone());
            }
            AclSetUser { user, rules } => {
                args.extend([Bytes::from_static(b"SETUSER"), user.clone()]);
                args.extend(rules.iter().cloned());
            }
            AclDelUser { users } => {
                args.push(Bytes::from_static(b"DELUSER"));
                args.extend(users.iter().cloned());
            }
            AclGetUser { user } => args.extend([Bytes::from_static(b"GETUSER"), user.clone()]),
            AclList => args.push(Bytes::from_static(b"LIST")),
            AclUsers => args.push(Bytes::from_static(b"USERS")),
            AclWhoAmI => args.push(Bytes::from_static(b"WHOAMI")),
            AclCat { category } => {
                args.push(Bytes::from_static(b"CAT"));
                args.extend(category.iter().cloned());
            }
            AclDryRun { user, args: rest } => {
                args.extend([Bytes::from_static(b"DRYRUN"), user.clone()]);
                args.extend(rest.iter().cloned());
            }
            ConfigSetRequirepass { password } | RequirepassIfUnset { password } => {
                args.extend([
                    Bytes::from_static(b"SET"),
                    Bytes::from_static(b"requirepass"),
                    password.clone(),
                ]);
            }
            // Sorted sets
            ZAdd { .. }
            | ZIncrBy { .. }
            | ZScore { .. }
            | ZMScore { .. }
            | ZCount { .. }
            | ZLexCount { .. }
            | ZRange { .. }
            | ZRangeStore { .. }
            | ZRank { .. }
            | ZRem { .. }
            | ZRemRange { .. }
            | ZPop { .. }
            | ZMPop { .. }
            | ZSetOp { .. }
            | ZInterCard { .. }
            | ZRandMember { .. }
            | ZScan { .. } => self.push_zset_args(args),
            _ => args.extend(self.single_key().cloned()),
        }
    }

    // Sorted sets
    /// [`Command::push_args`] for the sorted-set commands.
    fn push_zset_args(&self, args: &mut Vec<Bytes>) {
        use Command::*;
        let word = |w: &'static str| Bytes::from_static(w.as_bytes());
        let score = |s: Score| Bytes::from(s.get().to_string());
        match self {
            ZAdd { key, flags, pairs } => {
                args.push(key.clone());
                for (set, name) in [
                    (flags.nx, "NX"),
                    (flags.xx, "XX"),
                    (flags.gt, "GT"),
                    (flags.lt, "LT"),
                    (flags.ch, "CH"),
                    (flags.incr, "INCR"),
                ] {
                    if set {
                        args.push(word(name));
                    }
                }
                args.extend(pairs.iter().flat_map(|(s, m)| [score(*s), m.clone()]));
            }
            ZIncrBy { key, delta, member } => {
                args.extend([key.clone(), score(*delta), member.clone()])
            }
            ZScore { key, member } => args.extend([key.clone(), member.clone()]),
            ZMScore { key, members } | ZRem { key, members } => {
                args.push(key.clone());
                args.extend(members.iter().cloned());
            }
            ZCount { key, range } | ZLexCount { key, range } | ZRemRange { key, range } => {
                args.push(key.clone());
                push_range(args, range, false);
            }
            ZRange {
                form,
                key,
                range,
                rev,
                limit,
                withscores,
            } => {
                args.push(key.clone());
                let legacy_rev = matches!(
                    form,
                    ZRangeForm::ZRevRange
                        | ZRangeForm::ZRevRangeByScore
                        | ZRangeForm::ZRevRangeByLex
                );
                push_range(
                    args,
                    range,
                    *rev && !matches!(range, ZRangeSpec::Rank { .. }),
                );
                if *form == ZRangeForm::ZRange {
                    push_range_options(args, range, *rev);
                }
                debug_assert!(*form == ZRangeForm::ZRange || legacy_rev == *rev);
                if *withscores {
                    args.push(word("WITHSCORES"));
                }
                push_limit(args, *limit);
            }
            ZRangeStore {
                dst,
                src,
                range,
                rev,
                limit,
            } => {
                args.extend([dst.clone(), src.clone()]);
                push_range(
                    args,
                    range,
                    *rev && !matches!(range, ZRangeSpec::Rank { .. }),
                );
                push_range_options(args, range, *rev);
                push_limit(args, *limit);
            }
            ZRank {
                key,
                member,
                withscore,
                ..
            } => {
                args.extend([key.clone(), member.clone()]);
                if *withscore {
                    args.push(word("WITHSCORE"));
                }
            }
            ZPop { key, count, .. } => {
                args.push(key.clone());
                args.extend(count.map(number));
            }
            ZMPop { keys, max, count } => {
                args.push(number(keys.len()));
                args.extend(keys.iter().cloned());
                args.extend([word(if *max { "MAX" } else { "MIN" }), word("COUNT")]);
                args.push(number(*count));
            }
            ZSetOp {
                dst,
                keys,
                weights,
                aggregate,
                withscores,
                ..
            } => {
                args.extend(dst.iter().cloned());
                args.push(number(keys.len()));
                args.extend(keys.iter().cloned());
                if let Some(weights) = weights {
                    args.push(word("WEIGHTS"));
                    args.extend(weights.iter().map(|w| score(*w)));
                }
                match aggregate {
                    Aggregate::Sum => {}
                    Aggregate::Min => args.extend([word("AGGREGATE"), word("MIN")]),
                    Aggregate::Max => args.extend([word("AGGREGATE"), word("MAX")]),
                }
                if *withscores {
                    args.push(word("WITHSCORES"));
                }
            }
            ZInterCard { keys, limit } => {
                args.push(number(keys.len()));
                args.extend(keys.iter().cloned());
                if *limit != 0 {
                    args.extend([word("LIMIT"), number(*limit)]);
                }
            }
            ZRandMember {
                key,
                count,
                withscores,
            } => {
                args.push(key.clone());
                args.extend(count.map(number));
                if *withscores {
                    args.push(word("WITHSCORES"));
                }
            }
            ZScan {
                key,
                cursor,
                pattern,
                count,
            } => {
                args.push(key.clone());
                push_scan_args(args, *cursor, pattern, *count, &None);
            }
            _ => {}
        }
    }
}

// Sorted sets
/// A range's two bounds, in the order the command takes them (`max min` when `swapped`).
fn push_range(args: &mut Vec<Bytes>, range: &ZRangeSpec, swapped: bool) {
    let (first, second) = match range {
        ZRangeSpec::Rank { start, stop } => (number(*start), number(*stop)),
        ZRangeSpec::Score { min, max } => (min.to_arg(), max.to_arg()),
        ZRangeSpec::Lex { min, max } => (min.to_arg(), max.to_arg()),
    };
    if swapped {
        args.extend([second, first]);
    } else {
        args.extend([first, second]);
    }
}

/// ZRANGE's BYSCORE/BYLEX and REV words.
fn push_range_options(args: &mut Vec<Bytes>, range: &ZRangeSpec, rev: bool) {
    match range {
        ZRangeSpec::Rank { .. } => {}
        ZRangeSpec::Score { .. } => args.push(Bytes::from_static(b"BYSCORE")),
        ZRangeSpec::Lex { .. } => args.push(Bytes::from_static(b"BYLEX")),
    }
    if rev {
        args.push(Bytes::from_static(b"REV"));
    }
}

fn push_limit(args: &mut Vec<Bytes>, limit: Option<(i64, i64)>) {
    if let Some((offset, count)) = limit {
        args.extend([Bytes::from_static(b"LIMIT"), number(offset), number(count)]);
    }
}

/// A number as a decimal argument.
fn number(n: impl ToString) -> Bytes {
    Bytes::from(n.to_string())
}

fn push_set_options(
    args: &mut Vec<Bytes>,
    condition: Option<SetCondition>,
    get: bool,
    expiry: Option<SetExpiry>,
) {
    match condition {
        Some(SetCondition::Nx) => args.push(Bytes::from_static(b"NX")),
        Some(SetCondition::Xx) => args.push(Bytes::from_static(b"XX")),
        None => {}
    }
    if get {
        args.push(Bytes::from_static(b"GET"));
    }
    match expiry {
        Some(SetExpiry::Ex(n)) => args.extend([Bytes::from_static(b"EX"), number(n)]),
        Some(SetExpiry::Px(n)) => args.extend([Bytes::from_static(b"PX"), number(n)]),
        Some(SetExpiry::ExAt(n)) => args.extend([Bytes::from_static(b"EXAT"), number(n)]),
        Some(SetExpiry::PxAt(n)) => args.extend([Bytes::from_static(b"PXAT"), number(n)]),
        Some(SetExpiry::KeepTtl) => args.push(Bytes::from_static(b"KEEPTTL")),
        None => {}
    }
}

fn push_scan_args(
    args: &mut Vec<Bytes>,
    cursor: u64,
    pattern: &Option<Bytes>,
    count: Option<u64>,
    type_name: &Option<Bytes>,
) {
    args.push(number(cursor));
    if let Some(pattern) = pattern {
        args.extend([Bytes::from_static(b"MATCH"), pattern.clone()]);
    }
    if let Some(count) = count {
        args.extend([Bytes::from_static(b"COUNT"), number(count)]);
    }
    if let Some(type_name) = type_name {
        args.extend([Bytes::from_static(b"TYPE"), type_name.clone()]);
    }
}

fn flush_mode_arg(mode: FlushMode) -> Bytes {
    match mode {
        FlushMode::Async => Bytes::from_static(b"ASYNC"),
        FlushMode::Sync => Bytes::from_static(b"SYNC"),
    }
}

fn expire_condition_args(condition: ExpireCondition) -> Vec<Bytes> {
    let words: &[&'static [u8]] = match condition {
        ExpireCondition::Nx => &[b"NX"],
        ExpireCondition::Xx => &[b"XX"],
        ExpireCondition::Gt => &[b"GT"],
        ExpireCondition::Lt => &[b"LT"],
        ExpireCondition::XxGt => &[b"XX", b"GT"],
        ExpireCondition::XxLt => &[b"XX", b"LT"],
    };
    words.iter().map(|w| Bytes::from_static(w)).collect()
}
