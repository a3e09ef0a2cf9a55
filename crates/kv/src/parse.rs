//! `Command::parse`: from RESP arguments to a validated [`Command`], with Redis's errors.
//!
//! Checks happen in Redis's order: unknown command, then arity, then the command's own
//! options, so each malformed request gets the same error text Redis would give.

use bytes::Bytes;

use crate::command::{Command, ExpireCondition, FlushMode, SetCondition, SetExpiry, ZRangeForm};
use crate::error::Error;
use crate::reply::Reply;
use crate::zsets::{
    Aggregate, Score, SetOp, ZAddFlags, ZRangeSpec, parse_lex_bound, parse_score, parse_score_bound,
};

/// A command's name, its Redis arity (negative = at least that many), and its parser.
struct Spec {
    name: &'static str,
    arity: i32,
    parse: fn(&[Bytes]) -> Result<Command, Error>,
}

/// Every command we implement; the parsers get the arguments after the name.
const SPECS: &[Spec] = &[
    Spec {
        name: "get",
        arity: 2,
        parse: |a| Ok(Command::Get { key: a[0].clone() }),
    },
    Spec {
        name: "set",
        arity: -3,
        parse: parse_set,
    },
    Spec {
        name: "setnx",
        arity: 3,
        parse: |a| {
            Ok(Command::SetNx {
                key: a[0].clone(),
                value: a[1].clone(),
            })
        },
    },
    Spec {
        name: "getset",
        arity: 3,
        parse: |a| {
            Ok(Command::GetSet {
                key: a[0].clone(),
                value: a[1].clone(),
            })
        },
    },
    Spec {
        name: "getdel",
        arity: 2,
        parse: |a| Ok(Command::GetDel { key: a[0].clone() }),
    },
    Spec {
        name: "mget",
        arity: -2,
        parse: |a| Ok(Command::MGet { keys: a.to_vec() }),
    },
    Spec {
        name: "mset",
        arity: -3,
        parse: |a| {
            Ok(Command::MSet {
                pairs: pairs(a, "mset")?,
            })
        },
    },
    Spec {
        name: "append",
        arity: 3,
        parse: |a| {
            Ok(Command::Append {
                key: a[0].clone(),
                value: a[1].clone(),
            })
        },
    },
    Spec {
        name: "strlen",
        arity: 2,
        parse: |a| Ok(Command::StrLen { key: a[0].clone() }),
    },
    Spec {
        name: "setrange",
        arity: 4,
        parse: parse_setrange,
    },
    Spec {
        name: "getrange",
        arity: 4,
        parse: parse_getrange,
    },
    Spec {
        name: "substr",
        arity: 4,
        parse: parse_getrange,
    },
    Spec {
        name: "incr",
        arity: 2,
        parse: |a| Ok(Command::Incr { key: a[0].clone() }),
    },
    Spec {
        name: "incrby",
        arity: 3,
        parse: |a| {
            Ok(Command::IncrBy {
                key: a[0].clone(),
                delta: integer(&a[1])?,
            })
        },
    },
    Spec {
        name: "decr",
        arity: 2,
        parse: |a| Ok(Command::Decr { key: a[0].clone() }),
    },
    Spec {
        name: "decrby",
        arity: 3,
        parse: parse_decrby,
    },
    Spec {
        name: "del",
        arity: -2,
        parse: |a| Ok(Command::Del { keys: a.to_vec() }),
    },
    Spec {
        name: "exists",
        arity: -2,
        parse: |a| Ok(Command::Exists { keys: a.to_vec() }),
    },
    Spec {
        name: "type",
        arity: 2,
        parse: |a| Ok(Command::Type { key: a[0].clone() }),
    },
    Spec {
        name: "dbsize",
        arity: 1,
        parse: |_| Ok(Command::DbSize),
    },
    Spec {
        name: "keys",
        arity: 2,
        parse: |a| {
            Ok(Command::Keys {
                pattern: a[0].clone(),
            })
        },
    },
    Spec {
        name: "scan",
        arity: -2,
        parse: parse_scan,
    },
    Spec {
        name: "randomkey",
        arity: 1,
        parse: |_| Ok(Command::RandomKey),
    },
    Spec {
        name: "flushdb",
        arity: -1,
        parse: |a| {
            Ok(Command::FlushDb {
                mode: flush_mode(a)?,
            })
        },
    },
    Spec {
        name: "flushall",
        arity: -1,
        parse: |a| {
            Ok(Command::FlushAll {
                mode: flush_mode(a)?,
            })
        },
    },
    Spec {
        name: "expire",
        arity: -3,
        parse: parse_expire,
    },
    Spec {
        name: "pexpire",
        arity: -3,
        parse: parse_pexpire,
    },
    Spec {
        name: "ttl",
        arity: 2,
        parse: |a| Ok(Command::Ttl { key: a[0].clone() }),
    },
    Spec {
        name: "pttl",
        arity: 2,
        parse: |a| Ok(Command::PTtl { key: a[0].clone() }),
    },
    Spec {
        name: "persist",
        arity: 2,
        parse: |a| Ok(Command::Persist { key: a[0].clone() }),
    },
    Spec {
        name: "lpush",
        arity: -3,
        parse: |a| {
            Ok(Command::LPush {
                key: a[0].clone(),
                values: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "rpush",
        arity: -3,
        parse: |a| {
            Ok(Command::RPush {
                key: a[0].clone(),
                values: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "lpop",
        arity: -2,
        parse: |a| {
            Ok(Command::LPop {
                key: a[0].clone(),
                count: pop_count(a, "lpop")?,
            })
        },
    },
    Spec {
        name: "rpop",
        arity: -2,
        parse: |a| {
            Ok(Command::RPop {
                key: a[0].clone(),
                count: pop_count(a, "rpop")?,
            })
        },
    },
    Spec {
        name: "lrange",
        arity: 4,
        parse: parse_lrange,
    },
    Spec {
        name: "llen",
        arity: 2,
        parse: |a| Ok(Command::LLen { key: a[0].clone() }),
    },
    Spec {
        name: "hset",
        arity: -4,
        parse: |a| {
            Ok(Command::HSet {
                key: a[0].clone(),
                pairs: pairs(&a[1..], "hset")?,
            })
        },
    },
    Spec {
        name: "hget",
        arity: 3,
        parse: |a| {
            Ok(Command::HGet {
                key: a[0].clone(),
                field: a[1].clone(),
            })
        },
    },
    Spec {
        name: "hdel",
        arity: -3,
        parse: |a| {
            Ok(Command::HDel {
                key: a[0].clone(),
                fields: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "hgetall",
        arity: 2,
        parse: |a| Ok(Command::HGetAll { key: a[0].clone() }),
    },
    Spec {
        name: "hlen",
        arity: 2,
        parse: |a| Ok(Command::HLen { key: a[0].clone() }),
    },
    Spec {
        name: "hincrby",
        arity: 4,
        parse: parse_hincrby,
    },
    // Sets
    Spec {
        name: "sadd",
        arity: -3,
        parse: |a| {
            Ok(Command::SAdd {
                key: a[0].clone(),
                members: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "srem",
        arity: -3,
        parse: |a| {
            Ok(Command::SRem {
                key: a[0].clone(),
                members: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "scard",
        arity: 2,
        parse: |a| Ok(Command::SCard { key: a[0].clone() }),
    },
    Spec {
        name: "sismember",
        arity: 3,
        parse: |a| {
            Ok(Command::SIsMember {
                key: a[0].clone(),
                member: a[1].clone(),
            })
        },
    },
    Spec {
        name: "smismember",
        arity: -3,
        parse: |a| {
            Ok(Command::SMIsMember {
                key: a[0].clone(),
                members: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "smembers",
        arity: 2,
        parse: |a| Ok(Command::SMembers { key: a[0].clone() }),
    },
    Spec {
        name: "spop",
        arity: -2,
        parse: parse_spop,
    },
    Spec {
        name: "srandmember",
        arity: -2,
        parse: parse_srandmember,
    },
    Spec {
        name: "smove",
        arity: 4,
        parse: |a| {
            Ok(Command::SMove {
                source: a[0].clone(),
                destination: a[1].clone(),
                member: a[2].clone(),
            })
        },
    },
    Spec {
        name: "sinter",
        arity: -2,
        parse: |a| Ok(Command::SInter { keys: a.to_vec() }),
    },
    Spec {
        name: "sintercard",
        arity: -3,
        parse: parse_sintercard,
    },
    Spec {
        name: "sinterstore",
        arity: -3,
        parse: |a| {
            Ok(Command::SInterStore {
                destination: a[0].clone(),
                keys: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "sunion",
        arity: -2,
        parse: |a| Ok(Command::SUnion { keys: a.to_vec() }),
    },
    Spec {
        name: "sunionstore",
        arity: -3,
        parse: |a| {
            Ok(Command::SUnionStore {
                destination: a[0].clone(),
                keys: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "sdiff",
        arity: -2,
        parse: |a| Ok(Command::SDiff { keys: a.to_vec() }),
    },
    Spec {
        name: "sdiffstore",
        arity: -3,
        parse: |a| {
            Ok(Command::SDiffStore {
                destination: a[0].clone(),
                keys: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "sscan",
        arity: -3,
        parse: |a| {
            Ok(Command::SScan {
                key: a[0].clone(),
                cursor: sscan_cursor(&a[1])?,
                options: a[2..].to_vec(),
            })
        },
    },
    Spec {
        name: "auth",
        arity: -2,
        parse: parse_auth,
    },
    Spec {
        name: "acl",
        arity: -2,
        parse: parse_acl,
    },
    Spec {
        name: "config",
        arity: -2,
        parse: parse_config,
    },
    // Sorted sets
    Spec {
        name: "zadd",
        arity: -4,
        parse: parse_zadd,
    },
    Spec {
        name: "zincrby",
        arity: 4,
        parse: parse_zincrby,
    },
    Spec {
        name: "zscore",
        arity: 3,
        parse: |a| {
            Ok(Command::ZScore {
                key: a[0].clone(),
                member: a[1].clone(),
            })
        },
    },
    Spec {
        name: "zmscore",
        arity: -3,
        parse: |a| {
            Ok(Command::ZMScore {
                key: a[0].clone(),
                members: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "zcard",
        arity: 2,
        parse: |a| Ok(Command::ZCard { key: a[0].clone() }),
    },
    Spec {
        name: "zcount",
        arity: 4,
        parse: |a| {
            Ok(Command::ZCount {
                key: a[0].clone(),
                range: score_range(&a[1], &a[2])?,
            })
        },
    },
    Spec {
        name: "zlexcount",
        arity: 4,
        parse: |a| {
            Ok(Command::ZLexCount {
                key: a[0].clone(),
                range: lex_range(&a[1], &a[2])?,
            })
        },
    },
    Spec {
        name: "zrange",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRange),
    },
    Spec {
        name: "zrevrange",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRevRange),
    },
    Spec {
        name: "zrangebyscore",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRangeByScore),
    },
    Spec {
        name: "zrevrangebyscore",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRevRangeByScore),
    },
    Spec {
        name: "zrangebylex",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRangeByLex),
    },
    Spec {
        name: "zrevrangebylex",
        arity: -4,
        parse: |a| parse_zrange(a, ZRangeForm::ZRevRangeByLex),
    },
    Spec {
        name: "zrangestore",
        arity: -5,
        parse: parse_zrangestore,
    },
    Spec {
        name: "zrank",
        arity: -3,
        parse: |a| parse_zrank(a, false),
    },
    Spec {
        name: "zrevrank",
        arity: -3,
        parse: |a| parse_zrank(a, true),
    },
    Spec {
        name: "zrem",
        arity: -3,
        parse: |a| {
            Ok(Command::ZRem {
                key: a[0].clone(),
                members: a[1..].to_vec(),
            })
        },
    },
    Spec {
        name: "zremrangebyrank",
        arity: 4,
        parse: |a| {
            Ok(Command::ZRemRange {
                key: a[0].clone(),
                range: ZRangeSpec::Rank {
                    start: integer(&a[1])?,
                    stop: integer(&a[2])?,
                },
            })
        },
    },
    Spec {
        name: "zremrangebyscore",
        arity: 4,
        parse: |a| {
            Ok(Command::ZRemRange {
                key: a[0].clone(),
                range: score_range(&a[1], &a[2])?,
            })
        },
    },
    Spec {
        name: "zremrangebylex",
        arity: 4,
        parse: |a| {
            Ok(Command::ZRemRange {
                key: a[0].clone(),
                range: lex_range(&a[1], &a[2])?,
            })
        },
    },
    Spec {
        name: "zpopmin",
        arity: -2,
        parse: |a| parse_zpop(a, false),
    },
    Spec {
        name: "zpopmax",
        arity: -2,
        parse: |a| parse_zpop(a, true),
    },
    Spec {
        name: "zmpop",
        arity: -4,
        parse: parse_zmpop,
    },
    Spec {
        name: "zunion",
        arity: -3,
        parse: |a| parse_zsetop(a, SetOp::Union, false, "zunion"),
    },
    Spec {
        name: "zinter",
        arity: -3,
        parse: |a| parse_zsetop(a, SetOp::Inter, false, "zinter"),
    },
    Spec {
        name: "zdiff",
        arity: -3,
        parse: |a| parse_zsetop(a, SetOp::Diff, false, "zdiff"),
    },
    Spec {
        name: "zunionstore",
        arity: -4,
        parse: |a| parse_zsetop(a, SetOp::Union, true, "zunionstore"),
    },
    Spec {
        name: "zinterstore",
        arity: -4,
        parse: |a| parse_zsetop(a, SetOp::Inter, true, "zinterstore"),
    },
    Spec {
        name: "zdiffstore",
        arity: -4,
        parse: |a| parse_zsetop(a, SetOp::Diff, true, "zdiffstore"),
    },
    Spec {
        name: "zintercard",
        arity: -3,
        parse: parse_zintercard,
    },
    Spec {
        name: "zrandmember",
        arity: -2,
        parse: parse_zrandmember,
    },
    Spec {
        name: "zscan",
        arity: -3,
        parse: parse_zscan,
    },
];

/// `CONFIG SET requirepass password` (A9); the coordinator answers CONFIG GET itself.
fn parse_config(args: &[Bytes]) -> Result<Command, Error> {
    let (sub, rest) = args.split_first().ok_or(Error::WrongArity("config"))?;
    if word(sub).as_slice() != b"SET" {
        return Err(Error::UnknownSubcommand {
            sub: sanitize(&sub[..sub.len().min(128)]),
            command: "CONFIG",
        });
    }
    match rest {
        [name, password] if word(name).as_slice() == b"REQUIREPASS" => {
            Ok(Command::ConfigSetRequirepass {
                password: password.clone(),
            })
        }
        [] | [_] => Err(Error::WrongArity("config|set")),
        [name, ..] => Err(Error::UnknownConfig(sanitize(&name[..name.len().min(128)]))),
    }
}

/// `AUTH [user] password` (A2).
fn parse_auth(args: &[Bytes]) -> Result<Command, Error> {
    match args {
        [password] => Ok(Command::Auth {
            user: None,
            password: password.clone(),
        }),
        [user, password] => Ok(Command::Auth {
            user: Some(user.clone()),
            password: password.clone(),
        }),
        _ => Err(Error::Syntax),
    }
}

/// `ACL <subcommand> ...` (A8).
fn parse_acl(args: &[Bytes]) -> Result<Command, Error> {
    let (sub, rest) = args.split_first().ok_or(Error::WrongArity("acl"))?;
    let arity = |name: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Error::WrongArity(name))
        }
    };
    match word(sub).as_slice() {
        b"SETUSER" => {
            arity("acl|setuser", !rest.is_empty())?;
            Ok(Command::AclSetUser {
                user: rest[0].clone(),
                rules: rest[1..].to_vec(),
            })
        }
        b"DELUSER" => {
            arity("acl|deluser", !rest.is_empty())?;
            Ok(Command::AclDelUser {
                users: rest.to_vec(),
            })
        }
        b"GETUSER" => {
            arity("acl|getuser", rest.len() == 1)?;
            Ok(Command::AclGetUser {
                user: rest[0].clone(),
            })
        }
        b"LIST" => arity("acl|list", rest.is_empty()).map(|_| Command::AclList),
        b"USERS" => arity("acl|users", rest.is_empty()).map(|_| Command::AclUsers),
        b"WHOAMI" => arity("acl|whoami", rest.is_empty()).map(|_| Command::AclWhoAmI),
        b"CAT" => {
            arity("acl|cat", rest.len() <= 1)?;
            Ok(Command::AclCat {
                category: rest.first().cloned(),
            })
        }
        b"DRYRUN" => {
            arity("acl|dryrun", rest.len() >= 2)?;
            Ok(Command::AclDryRun {
                user: rest[0].clone(),
                args: rest[1..].to_vec(),
            })
        }
        _ => Err(Error::UnknownSubcommand {
            sub: sanitize(&sub[..sub.len().min(128)]),
            command: "ACL",
        }),
    }
}

impl Command {
    /// Parses `args` (`args[0]` is the case-insensitive command name). The error is a
    /// [`Reply::Error`] with Redis 7's text, ready to send to the client.
    pub fn parse(args: &[Bytes]) -> Result<Command, Reply> {
        parse_args(args).map_err(Reply::from)
    }
}

fn parse_args(args: &[Bytes]) -> Result<Command, Error> {
    let Some((name, rest)) = args.split_first() else {
        return Err(unknown_command(&Bytes::new(), &[]));
    };
    let spec = SPECS
        .iter()
        .find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes()))
        .ok_or_else(|| unknown_command(name, rest))?;
    let arity_ok = match usize::try_from(spec.arity) {
        Ok(exact) => args.len() == exact,
        Err(_) => args.len() >= spec.arity.unsigned_abs() as usize,
    };
    if !arity_ok {
        return Err(Error::WrongArity(spec.name));
    }
    (spec.parse)(rest)
}

/// Redis's "unknown command" error: the name and the first 128 bytes of arguments.
fn unknown_command(name: &[u8], rest: &[Bytes]) -> Error {
    const LIMIT: usize = 128;
    let mut quoted = Vec::new();
    for arg in rest {
        if quoted.len() >= LIMIT {
            break;
        }
        let take = arg.len().min(LIMIT - quoted.len());
        quoted.push(b'\'');
        quoted.extend_from_slice(&arg[..take]);
        quoted.extend_from_slice(b"' ");
    }
    Error::UnknownCommand {
        name: sanitize(&name[..name.len().min(LIMIT)]),
        args: sanitize(&quoted),
    }
}

/// Error text is one line: like Redis, turn CR and LF into spaces.
fn sanitize(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], " ")
}

/// Parses a decimal `i64` exactly as Redis's `string2ll` does: no sign other than a
/// leading '-', no spaces, no leading zeros, no "-0".
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, bytes),
    };
    let leading_zero = digits.first() == Some(&b'0') && (digits.len() > 1 || negative);
    if digits.is_empty()
        || digits.len() > 19
        || leading_zero
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// An integer argument.
fn integer(arg: &Bytes) -> Result<i64, Error> {
    parse_i64(arg).ok_or(Error::NotInteger)
}

/// `SETRANGE key offset value`: the offset must be an integer (else Redis's integer error),
/// then non-negative (else `ERR offset is out of range`), before the key is looked at.
fn parse_setrange(a: &[Bytes]) -> Result<Command, Error> {
    let offset = integer(&a[1])?;
    let offset = u64::try_from(offset).map_err(|_| Error::OffsetOutOfRange)?;
    Ok(Command::SetRange {
        key: a[0].clone(),
        offset,
        value: a[2].clone(),
    })
}

/// `GETRANGE key start end` and its old name `SUBSTR`.
fn parse_getrange(a: &[Bytes]) -> Result<Command, Error> {
    Ok(Command::GetRange {
        key: a[0].clone(),
        start: integer(&a[1])?,
        end: integer(&a[2])?,
    })
}

/// Field/value (or key/value) pairs; an odd count is an arity error for `name`.
fn pairs(args: &[Bytes], name: &'static str) -> Result<Vec<(Bytes, Bytes)>, Error> {
    if args.is_empty() || args.len() % 2 != 0 {
        return Err(Error::WrongArity(name));
    }
    Ok(args
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect())
}

/// The option word at `arg`, uppercased for matching.
fn word(arg: &Bytes) -> Vec<u8> {
    arg.to_ascii_uppercase()
}

fn parse_decrby(args: &[Bytes]) -> Result<Command, Error> {
    let delta = integer(&args[1])?;
    if delta == i64::MIN {
        return Err(Error::DecrementOverflow);
    }
    Ok(Command::DecrBy {
        key: args[0].clone(),
        delta,
    })
}

fn parse_lrange(args: &[Bytes]) -> Result<Command, Error> {
    let (start, stop) = (integer(&args[1])?, integer(&args[2])?);
    Ok(Command::LRange {
        key: args[0].clone(),
        start,
        stop,
    })
}

fn parse_hincrby(args: &[Bytes]) -> Result<Command, Error> {
    let delta = integer(&args[2])?;
    Ok(Command::HIncrBy {
        key: args[0].clone(),
        field: args[1].clone(),
        delta,
    })
}

/// LPOP/RPOP's optional count: a non-negative integer; anything else is "must be positive"
/// (Redis's text for a word too, found by the differential test).
fn pop_count(args: &[Bytes], name: &'static str) -> Result<Option<u64>, Error> {
    match args {
        [_] => Ok(None),
        [_, count] => {
            let count = parse_i64(count).ok_or(Error::MustBePositive)?;
            u64::try_from(count)
                .map(Some)
                .map_err(|_| Error::MustBePositive)
        }
        _ => Err(Error::WrongArity(name)),
    }
}

fn flush_mode(args: &[Bytes]) -> Result<Option<FlushMode>, Error> {
    match args {
        [] => Ok(None),
        [mode] => match word(mode).as_slice() {
            b"ASYNC" => Ok(Some(FlushMode::Async)),
            b"SYNC" => Ok(Some(FlushMode::Sync)),
            _ => Err(Error::Syntax),
        },
        _ => Err(Error::Syntax),
    }
}

/// SET's expiry keyword before its value is validated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpiryKind {
    Ex,
    Px,
    ExAt,
    PxAt,
    KeepTtl,
}

/// SET's options as scanned, before the expiry value is validated.
#[derive(Default)]
struct SetOptions {
    condition: Option<SetCondition>,
    get: bool,
    expiry: Option<(ExpiryKind, Bytes)>,
}

fn parse_set(args: &[Bytes]) -> Result<Command, Error> {
    let options = scan_set_options(&args[2..])?;
    let expiry = match options.expiry {
        None => None,
        Some((kind, raw)) => Some(set_expiry(kind, &raw)?),
    };
    Ok(Command::Set {
        key: args[0].clone(),
        value: args[1].clone(),
        condition: options.condition,
        get: options.get,
        expiry,
    })
}

/// Reads SET's options. Like Redis, repeating an option is allowed (the last value
/// wins) but conflicting ones (NX with XX, two different expiry kinds) are a syntax error.
fn scan_set_options(args: &[Bytes]) -> Result<SetOptions, Error> {
    let mut options = SetOptions::default();
    let mut rest = args;
    while let Some((arg, tail)) = rest.split_first() {
        rest = tail;
        match word(arg).as_slice() {
            b"NX" => options.set_condition(SetCondition::Nx)?,
            b"XX" => options.set_condition(SetCondition::Xx)?,
            b"GET" => options.get = true,
            b"KEEPTTL" => options.set_expiry(ExpiryKind::KeepTtl, Bytes::new())?,
            word => {
                let kind = expiry_kind(word).ok_or(Error::Syntax)?;
                let (value, tail) = rest.split_first().ok_or(Error::Syntax)?;
                rest = tail;
                options.set_expiry(kind, value.clone())?;
            }
        }
    }
    Ok(options)
}

/// The expiry keyword that takes a value, if `word` is one.
fn expiry_kind(word: &[u8]) -> Option<ExpiryKind> {
    match word {
        b"EX" => Some(ExpiryKind::Ex),
        b"PX" => Some(ExpiryKind::Px),
        b"EXAT" => Some(ExpiryKind::ExAt),
        b"PXAT" => Some(ExpiryKind::PxAt),
        _ => None,
    }
}

impl SetOptions {
    /// Records NX or XX; the other one already given is a syntax error.
    fn set_condition(&mut self, wanted: SetCondition) -> Result<(), Error> {
        if self.condition.is_some_and(|c| c != wanted) {
            return Err(Error::Syntax);
        }
        self.condition = Some(wanted);
        Ok(())
    }

    /// Records an expiry option; a different kind already given is a syntax error.
    fn set_expiry(&mut self, kind: ExpiryKind, value: Bytes) -> Result<(), Error> {
        if self.expiry.as_ref().is_some_and(|(k, _)| *k != kind) {
            return Err(Error::Syntax);
        }
        self.expiry = Some((kind, value));
        Ok(())
    }
}

/// Validates SET's expiry value: a positive integer, in seconds small enough to become ms.
fn set_expiry(kind: ExpiryKind, raw: &Bytes) -> Result<SetExpiry, Error> {
    if kind == ExpiryKind::KeepTtl {
        return Ok(SetExpiry::KeepTtl);
    }
    let value = integer(raw)?;
    let in_seconds = matches!(kind, ExpiryKind::Ex | ExpiryKind::ExAt);
    if value <= 0 || (in_seconds && value > i64::MAX / 1000) {
        return Err(Error::InvalidExpireTime("set"));
    }
    let value = value.unsigned_abs();
    Ok(match kind {
        ExpiryKind::Ex => SetExpiry::Ex(value),
        ExpiryKind::Px => SetExpiry::Px(value),
        ExpiryKind::ExAt => SetExpiry::ExAt(value),
        ExpiryKind::PxAt | ExpiryKind::KeepTtl => SetExpiry::PxAt(value),
    })
}

fn parse_expire(args: &[Bytes]) -> Result<Command, Error> {
    let condition = expire_condition(&args[2..])?;
    let seconds = integer(&args[1])?;
    if seconds.checked_mul(1000).is_none() {
        return Err(Error::InvalidExpireTime("expire"));
    }
    Ok(Command::Expire {
        key: args[0].clone(),
        seconds,
        condition,
    })
}

fn parse_pexpire(args: &[Bytes]) -> Result<Command, Error> {
    let condition = expire_condition(&args[2..])?;
    let millis = integer(&args[1])?;
    Ok(Command::PExpire {
        key: args[0].clone(),
        millis,
        condition,
    })
}

/// EXPIRE's NX/XX/GT/LT flags (repeats allowed), checked for compatibility like Redis 7.
fn expire_condition(args: &[Bytes]) -> Result<Option<ExpireCondition>, Error> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for arg in args {
        match word(arg).as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => return Err(Error::UnsupportedOption(sanitize(arg))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Error::NxWithOthers);
    }
    if gt && lt {
        return Err(Error::GtWithLt);
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => Some(ExpireCondition::Nx),
        (_, true, true, _) => Some(ExpireCondition::XxGt),
        (_, true, _, true) => Some(ExpireCondition::XxLt),
        (_, true, ..) => Some(ExpireCondition::Xx),
        (_, _, true, _) => Some(ExpireCondition::Gt),
        (_, _, _, true) => Some(ExpireCondition::Lt),
        _ => None,
    })
}

fn parse_scan(args: &[Bytes]) -> Result<Command, Error> {
    let cursor = parse_cursor(&args[0])?;
    let (mut pattern, mut count, mut type_name) = (None, None, None);
    for option in args[1..].chunks(2) {
        let [name, value] = option else {
            return Err(Error::Syntax);
        };
        match word(name).as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => count = Some(scan_count(value)?),
            b"TYPE" => type_name = Some(Bytes::from(value.to_ascii_lowercase())),
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_name,
    })
}

/// A SCAN cursor: an unsigned decimal number.
fn parse_cursor(arg: &Bytes) -> Result<u64, Error> {
    let text = std::str::from_utf8(arg).map_err(|_| Error::InvalidCursor)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidCursor);
    }
    text.parse().map_err(|_| Error::InvalidCursor)
}

/// SCAN's COUNT: an integer of at least 1.
fn scan_count(arg: &Bytes) -> Result<u64, Error> {
    let count = integer(arg)?;
    if count < 1 {
        return Err(Error::Syntax);
    }
    Ok(count.unsigned_abs())
}

// Sets

/// SPOP's optional count: anything but a non-negative integer is "must be positive"
/// (Redis's text for both); more arguments are a syntax error.
fn parse_spop(args: &[Bytes]) -> Result<Command, Error> {
    let count = match args {
        [_] => None,
        [_, count] => {
            let count = parse_i64(count).ok_or(Error::MustBePositive)?;
            Some(u64::try_from(count).map_err(|_| Error::MustBePositive)?)
        }
        _ => return Err(Error::Syntax),
    };
    Ok(Command::SPop {
        key: args[0].clone(),
        count,
    })
}

/// SRANDMEMBER's optional count: any integer but `i64::MIN`.
fn parse_srandmember(args: &[Bytes]) -> Result<Command, Error> {
    let count = match args {
        [_] => None,
        [_, count] => match integer(count)? {
            i64::MIN => return Err(Error::CountOutOfRange),
            count => Some(count),
        },
        _ => return Err(Error::Syntax),
    };
    Ok(Command::SRandMember {
        key: args[0].clone(),
        count,
    })
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`, with Redis's errors in Redis's order.
fn parse_sintercard(args: &[Bytes]) -> Result<Command, Error> {
    let numkeys = parse_i64(&args[0])
        .filter(|&n| n >= 1)
        .ok_or(Error::NumkeysNotPositive)?;
    let rest = &args[1..];
    let numkeys = usize::try_from(numkeys)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or(Error::NumkeysTooMany)?;
    let (keys, mut options) = rest.split_at(numkeys);
    let mut limit = 0;
    while let Some((name, tail)) = options.split_first() {
        match (word(name).as_slice(), tail.split_first()) {
            (b"LIMIT", Some((value, tail))) => {
                let value = parse_i64(value).ok_or(Error::LimitNegative)?;
                limit = u64::try_from(value).map_err(|_| Error::LimitNegative)?;
                options = tail;
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::SInterCard {
        keys: keys.to_vec(),
        limit,
    })
}

/// An SSCAN cursor as Redis 7.0 reads it (`strtoul`): an optional sign then decimal digits,
/// a negative number wrapping around, the empty string meaning 0; nothing else, no overflow.
fn sscan_cursor(arg: &Bytes) -> Result<u64, Error> {
    let (negative, digits) = match arg.split_first() {
        None => return Ok(0),
        Some((b'-', digits)) => (true, digits),
        Some((b'+', digits)) => (false, digits),
        Some(_) => (false, &arg[..]),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidCursor);
    }
    let magnitude = digits
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(Error::InvalidCursor)?;
    Ok(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

// Sorted sets

/// A score argument (ZADD, ZINCRBY).
fn score(arg: &Bytes) -> Result<Score, Error> {
    parse_score(arg).and_then(Score::new).ok_or(Error::NotFloat)
}

/// A `min max` score range.
fn score_range(min: &Bytes, max: &Bytes) -> Result<ZRangeSpec, Error> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(min), Some(max)) => Ok(ZRangeSpec::Score { min, max }),
        _ => Err(Error::ScoreRangeNotFloat),
    }
}

/// A `min max` lex range.
fn lex_range(min: &Bytes, max: &Bytes) -> Result<ZRangeSpec, Error> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(ZRangeSpec::Lex { min, max }),
        _ => Err(Error::LexRangeInvalid),
    }
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ...`, checked in Redis's order.
fn parse_zadd(args: &[Bytes]) -> Result<Command, Error> {
    let mut flags = ZAddFlags::default();
    let mut at = 1;
    while let Some(arg) = args.get(at) {
        match word(arg).as_slice() {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"GT" => flags.gt = true,
            b"LT" => flags.lt = true,
            b"CH" => flags.ch = true,
            b"INCR" => flags.incr = true,
            _ => break,
        }
        at += 1;
    }
    let elements = &args[at..];
    if elements.is_empty() || elements.len() % 2 != 0 {
        return Err(Error::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(Error::XxWithNx);
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(Error::GtLtNx);
    }
    if flags.incr && elements.len() > 2 {
        return Err(Error::IncrOnePair);
    }
    let pairs = elements
        .chunks(2)
        .map(|pair| Ok((score(&pair[0])?, pair[1].clone())))
        .collect::<Result<_, Error>>()?;
    Ok(Command::ZAdd {
        key: args[0].clone(),
        flags,
        pairs,
    })
}

fn parse_zincrby(args: &[Bytes]) -> Result<Command, Error> {
    Ok(Command::ZIncrBy {
        key: args[0].clone(),
        delta: score(&args[1])?,
        member: args[2].clone(),
    })
}

/// ZRANGE's options after `min max`, as Redis's `zrangeGenericCommand` reads them.
struct ZRangeOptions {
    by_score: bool,
    by_lex: bool,
    rev: bool,
    limit: Option<(i64, i64)>,
    withscores: bool,
}

/// Reads the options and the range of a ZRANGE-like command; `preset` is a legacy form's
/// fixed (by_score, by_lex, rev), which then takes no BYSCORE/BYLEX/REV word.
fn zrange_options(
    bounds: (&Bytes, &Bytes),
    options: &[Bytes],
    preset: Option<(bool, bool, bool)>,
    store: bool,
) -> Result<(ZRangeSpec, ZRangeOptions), Error> {
    let (by_score, by_lex, rev) = preset.unwrap_or((false, false, false));
    let mut o = ZRangeOptions {
        by_score,
        by_lex,
        rev,
        limit: None,
        withscores: false,
    };
    let mut at = 0;
    while let Some(arg) = options.get(at) {
        let left = options.len() - at - 1;
        match word(arg).as_slice() {
            b"WITHSCORES" if !store => o.withscores = true,
            b"LIMIT" if left >= 2 => {
                o.limit = Some((integer(&options[at + 1])?, integer(&options[at + 2])?));
                at += 2;
            }
            b"REV" if preset.is_none() && !o.rev => o.rev = true,
            b"BYLEX" if preset.is_none() && !o.by_score && !o.by_lex => o.by_lex = true,
            b"BYSCORE" if preset.is_none() && !o.by_score && !o.by_lex => o.by_score = true,
            _ => return Err(Error::Syntax),
        }
        at += 1;
    }
    let by_rank = !o.by_score && !o.by_lex;
    if by_rank && o.limit.is_some_and(|(_, count)| count != -1) {
        return Err(Error::LimitNeedsByScoreOrLex);
    }
    if o.withscores && o.by_lex {
        return Err(Error::WithScoresWithByLex);
    }
    let (min, max) = if o.rev && !by_rank {
        (bounds.1, bounds.0)
    } else {
        bounds
    };
    let range = if o.by_score {
        score_range(min, max)?
    } else if o.by_lex {
        lex_range(min, max)?
    } else {
        ZRangeSpec::Rank {
            start: integer(min)?,
            stop: integer(max)?,
        }
    };
    Ok((range, o))
}

fn parse_zrange(args: &[Bytes], form: ZRangeForm) -> Result<Command, Error> {
    let preset = match form {
        ZRangeForm::ZRange => None,
        ZRangeForm::ZRevRange => Some((false, false, true)),
        ZRangeForm::ZRangeByScore => Some((true, false, false)),
        ZRangeForm::ZRevRangeByScore => Some((true, false, true)),
        ZRangeForm::ZRangeByLex => Some((false, true, false)),
        ZRangeForm::ZRevRangeByLex => Some((false, true, true)),
    };
    let (range, o) = zrange_options((&args[1], &args[2]), &args[3..], preset, false)?;
    Ok(Command::ZRange {
        form,
        key: args[0].clone(),
        range,
        rev: o.rev,
        limit: o.limit,
        withscores: o.withscores,
    })
}

fn parse_zrangestore(args: &[Bytes]) -> Result<Command, Error> {
    let (range, o) = zrange_options((&args[2], &args[3]), &args[4..], None, true)?;
    Ok(Command::ZRangeStore {
        dst: args[0].clone(),
        src: args[1].clone(),
        range,
        rev: o.rev,
        limit: o.limit,
    })
}

/// `ZRANK key member [WITHSCORE]` (WITHSCORE as in Redis 7.2).
fn parse_zrank(args: &[Bytes], rev: bool) -> Result<Command, Error> {
    let withscore = match args {
        [_, _] => false,
        [_, _, option] if word(option).as_slice() == b"WITHSCORE" => true,
        [_, _, _] => return Err(Error::Syntax),
        _ => return Err(Error::WrongArity(if rev { "zrevrank" } else { "zrank" })),
    };
    Ok(Command::ZRank {
        key: args[0].clone(),
        member: args[1].clone(),
        rev,
        withscore,
    })
}

/// `ZPOPMIN key [count]`: the count a non-negative integer (one error for both checks).
fn parse_zpop(args: &[Bytes], max: bool) -> Result<Command, Error> {
    let count = match args {
        [_] => None,
        [_, count] => {
            let count = parse_i64(count).ok_or(Error::MustBePositive)?;
            Some(u64::try_from(count).map_err(|_| Error::MustBePositive)?)
        }
        _ => return Err(Error::Syntax),
    };
    Ok(Command::ZPop {
        key: args[0].clone(),
        max,
        count,
    })
}

/// A numkeys of at least 1 (else `not_positive`) with that many keys following (else a
/// syntax error): the keys, and the arguments after them.
fn numkeys(args: &[Bytes], not_positive: Error) -> Result<(&[Bytes], &[Bytes]), Error> {
    let n = integer(&args[0])?;
    if n < 1 {
        return Err(not_positive);
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.len() - 1 {
        return Err(Error::Syntax);
    }
    Ok((&args[1..=n], &args[n + 1..]))
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
fn parse_zmpop(args: &[Bytes]) -> Result<Command, Error> {
    // Redis 7.0 reads a bad numkeys as "not positive", and too few arguments as a syntax
    // error.
    let n = parse_i64(&args[0])
        .filter(|&n| n > 0)
        .ok_or(Error::NumkeysNotPositive)?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n >= args.len() - 1 {
        return Err(Error::Syntax);
    }
    let (keys, rest) = (&args[1..=n], &args[n + 1..]);
    let (side, mut options) = rest.split_first().ok_or(Error::Syntax)?;
    let max = match word(side).as_slice() {
        b"MIN" => false,
        b"MAX" => true,
        _ => return Err(Error::Syntax),
    };
    let mut count = 1;
    while let Some((option, tail)) = options.split_first() {
        match (word(option).as_slice(), tail.first()) {
            (b"COUNT", Some(value)) => {
                let n = parse_i64(value).ok_or(Error::CountNotPositive)?;
                count = u64::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(Error::CountNotPositive)?;
                options = &tail[1..];
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::ZMPop {
        keys: keys.to_vec(),
        max,
        count,
    })
}

/// ZUNION/ZINTER/ZDIFF and their STORE forms, options as Redis reads them.
fn parse_zsetop(
    args: &[Bytes],
    op: SetOp,
    store: bool,
    name: &'static str,
) -> Result<Command, Error> {
    let (dst, args) = if store {
        (Some(args[0].clone()), &args[1..])
    } else {
        (None, args)
    };
    let (keys, mut rest) = numkeys(args, Error::NeedOneInputKey(name))?;
    let (mut weights, mut aggregate, mut withscores) = (None, Aggregate::Sum, false);
    while let Some(option) = rest.first() {
        let combines = op != SetOp::Diff;
        match word(option).as_slice() {
            b"WEIGHTS" if combines && rest.len() > keys.len() => {
                let values = &rest[1..=keys.len()];
                let parsed = values
                    .iter()
                    .map(|w| {
                        parse_score(w)
                            .and_then(Score::new)
                            .ok_or(Error::WeightNotFloat)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                weights = Some(parsed);
                rest = &rest[keys.len() + 1..];
            }
            b"AGGREGATE" if combines && rest.len() >= 2 => {
                aggregate = match word(&rest[1]).as_slice() {
                    b"SUM" => Aggregate::Sum,
                    b"MIN" => Aggregate::Min,
                    b"MAX" => Aggregate::Max,
                    _ => return Err(Error::Syntax),
                };
                rest = &rest[2..];
            }
            b"WITHSCORES" if !store => {
                withscores = true;
                rest = &rest[1..];
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::ZSetOp {
        op,
        dst,
        keys: keys.to_vec(),
        weights,
        aggregate,
        withscores,
    })
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`.
fn parse_zintercard(args: &[Bytes]) -> Result<Command, Error> {
    let (keys, mut rest) = numkeys(args, Error::NeedOneInputKey("zintercard"))?;
    let mut limit = 0;
    while let Some(option) = rest.first() {
        match (word(option).as_slice(), rest.get(1)) {
            (b"LIMIT", Some(value)) => {
                let n = parse_i64(value).ok_or(Error::LimitNegative)?;
                limit = u64::try_from(n).map_err(|_| Error::LimitNegative)?;
                rest = &rest[2..];
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::ZInterCard {
        keys: keys.to_vec(),
        limit,
    })
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
fn parse_zrandmember(args: &[Bytes]) -> Result<Command, Error> {
    let (count, withscores) = match args {
        [_] => (None, false),
        [_, count] => (Some(integer(count)?), false),
        [_, count, option] => {
            let count = integer(count)?;
            if word(option).as_slice() != b"WITHSCORES" {
                return Err(Error::Syntax);
            }
            (Some(count), true)
        }
        _ => return Err(Error::Syntax),
    };
    if count == Some(i64::MIN) || (withscores && count.is_some_and(|c| c < -(i64::MAX / 2))) {
        return Err(Error::OutOfRange);
    }
    Ok(Command::ZRandMember {
        key: args[0].clone(),
        count,
        withscores,
    })
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`.
fn parse_zscan(args: &[Bytes]) -> Result<Command, Error> {
    let cursor = parse_cursor(&args[1])?;
    let (mut pattern, mut count) = (None, None);
    for option in args[2..].chunks(2) {
        let [name, value] = option else {
            return Err(Error::Syntax);
        };
        match word(name).as_slice() {
            b"MATCH" => pattern = Some(value.clone()),
            b"COUNT" => count = Some(scan_count(value)?),
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::ZScan {
        key: args[0].clone(),
        cursor,
        pattern,
        count,
    })
}
