#!/usr/bin/env python3
"""Writes crates/kv/src/commands_table.rs from a running redis-server 7 (`COMMAND INFO`).

Usage: gen_commands_table.py PORT > crates/kv/src/commands_table.rs

The table lists the commands tandem executes or answers, with Redis's own metadata, and
only the subcommands tandem implements. `cluster_clients.rs` compares the table's COMMAND
INFO with redis-server's again, so a stale or hand-edited table fails a test.
"""
import socket
import sys

# Top-level commands, and for containers the subcommands tandem answers.
COMMANDS = [
    "get", "set", "setnx", "getset", "getdel", "mget", "mset", "append", "strlen", "incr",
    "incrby", "decr", "decrby", "setrange", "getrange", "substr", "del", "exists", "type", "dbsize", "keys", "scan", "randomkey",
    "flushdb", "flushall", "expire", "pexpire", "ttl", "pttl", "persist", "lpush", "rpush",
    "lpop", "rpop", "lrange", "llen", "hset", "hget", "hdel", "hgetall", "hlen", "hincrby",
    # Sets
    "sadd", "srem", "scard", "sismember", "smismember", "smembers", "spop", "srandmember",
    "smove", "sinter", "sintercard", "sinterstore", "sunion", "sunionstore", "sdiff",
    "sdiffstore", "sscan",
    # Sorted sets
    "zadd", "zincrby", "zscore", "zmscore", "zcard", "zcount", "zlexcount", "zrange",
    "zrevrange", "zrangebyscore", "zrevrangebyscore", "zrangebylex", "zrevrangebylex",
    "zrangestore", "zrank", "zrevrank", "zrem", "zremrangebyrank", "zremrangebyscore",
    "zremrangebylex", "zpopmin", "zpopmax", "zmpop", "zunion", "zinter", "zdiff",
    "zunionstore", "zinterstore", "zdiffstore", "zintercard", "zrandmember", "zscan",
    "auth", "hello", "ping", "echo", "select", "quit", "reset", "info", "wait",
    "asking", "readonly", "readwrite",
    "acl", "config", "client", "command", "cluster",
]
SUBCOMMANDS = {
    "acl": ["setuser", "deluser", "getuser", "list", "users", "dryrun", "cat", "whoami"],
    "config": ["set", "get"],
    "client": ["setname", "getname", "id", "setinfo", "info", "list"],
    "command": ["count", "docs", "info", "list", "getkeys"],
    "cluster": ["slots", "nodes", "shards", "info", "keyslot", "myid"],
}


def read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise ValueError(line)


def command(f, sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return read_reply(f)


def pairs(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def strs(items):
    return "&[" + ", ".join('"%s"' % i for i in items) + "]"


def key_spec(spec):
    spec = pairs(spec)
    begin = pairs(spec["begin_search"])
    bspec = pairs(begin["spec"])
    if begin["type"] == "index":
        begin_rs = "BeginSearch::Index(%d)" % bspec["index"]
    elif begin["type"] == "keyword":
        begin_rs = 'BeginSearch::Keyword { keyword: "%s", start_from: %d }' % (
            bspec["keyword"], bspec["startfrom"])
    else:
        begin_rs = "BeginSearch::Unknown"
    find = pairs(spec["find_keys"])
    fspec = pairs(find["spec"])
    if find["type"] == "range":
        find_rs = "FindKeys::Range { last_key: %d, key_step: %d, limit: %d }" % (
            fspec["lastkey"], fspec["keystep"], fspec["limit"])
    elif find["type"] == "keynum":
        find_rs = "FindKeys::Keynum { keynum_index: %d, first_key: %d, key_step: %d }" % (
            fspec["keynumidx"], fspec["firstkey"], fspec["keystep"])
    else:
        find_rs = "FindKeys::Unknown"
    notes = spec.get("notes")
    notes_rs = "None" if notes is None else 'Some("%s")' % notes.replace('"', '\\"')
    return ("KeySpec { notes: %s, flags: %s, begin_search: %s, find_keys: %s }"
            % (notes_rs, strs(spec["flags"]), begin_rs, find_rs))


def entry(info, indent, subcommands):
    name, arity, flags, first, last, step, cats, tips, specs, subs = info
    pad = " " * indent
    out = [pad + "CommandInfo {"]
    out.append(pad + '    name: "%s",' % name)
    out.append(pad + "    arity: %d," % arity)
    out.append(pad + "    flags: %s," % strs(flags))
    out.append(pad + "    first_key: %d," % first)
    out.append(pad + "    last_key: %d," % last)
    out.append(pad + "    step: %d," % step)
    out.append(pad + "    categories: %s," % strs(c.lstrip("@") for c in cats))
    out.append(pad + "    tips: %s," % strs(tips))
    out.append(pad + "    key_specs: &[%s]," % ", ".join(key_spec(s) for s in specs))
    kept = [s for s in subs if s[0].split("|")[1] in subcommands]
    kept.sort(key=lambda s: subcommands.index(s[0].split("|")[1]))
    if kept:
        out.append(pad + "    subcommands: &[")
        for sub in kept:
            out.extend(entry(sub, indent + 8, []))
        out.append(pad + "    ],")
    else:
        out.append(pad + "    subcommands: &[],")
    out.append(pad + "},")
    return out


def main():
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port))
    f = sock.makefile("rb")
    infos = command(f, sock, "COMMAND", "INFO", *COMMANDS)
    version = pairs_from_info(command(f, sock, "INFO", "server"))
    lines = [
        "//! The command table: every command tandem executes or answers, with the metadata Redis",
        "//! 7 gives in `COMMAND INFO` (arity, flags, key positions, ACL categories, key specs).",
        "//!",
        "//! Generated by `crates/tandem/tests/gen_commands_table.py` from redis-server %s; do not"
        % version,
        "//! edit by hand (rustfmt formats it). `cluster_clients.rs` compares it with redis-server's",
        "//! answers again.",
        "",
        "use crate::commands::{BeginSearch, CommandInfo, FindKeys, KeySpec};",
        "",
        "/// Every command, in the order `COMMAND` lists them.",
        "pub const COMMAND_TABLE: &[CommandInfo] = &[",
    ]
    for info in infos:
        if info is None:
            raise SystemExit("redis-server does not know one of the commands")
        lines.extend(entry(info, 4, SUBCOMMANDS.get(info[0], [])))
    lines.append("];")
    print("\n".join(lines))


def pairs_from_info(text):
    for line in text.splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1]
    return "?"


if __name__ == "__main__":
    main()
