//! Differential test (issue 14): seeded random command sequences over a few keys, sent to a
//! real redis-server and to a tandem cluster, every reply compared byte for byte.
//!
//! The keys share one hash tag (one slot, so multi-key commands run on tandem too) and are
//! few, so types collide and WRONGTYPE happens. Replies Redis leaves unordered (set members,
//! hash fields, KEYS) are compared sorted; random ones (SPOP, SRANDMEMBER, RANDOMKEY) by
//! property, and after a pop both sides are brought back to the same state with what each
//! returned. Each sequence ends by comparing every key's type and value.
//!
//! `TANDEM_DIFF_SEQUENCES` (default 24) sequences of `TANDEM_DIFF_LENGTH` (default 60)
//! commands, from seed `TANDEM_DIFF_SEED` (default fixed): small enough for CI, longer on
//! demand. A mismatch prints the seed, the sequence up to it and both replies.
//!
//! To cover another command, add one [`Entry`] to [`COMMANDS`]: its name, how to build its
//! arguments from the generator, and how to compare its replies.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use tandem_protocol::rng::SplitMix64;

use bytes::Bytes;
use support::{Cluster, RedisServer, RespClient};
use tandem_resp::Frame;

/// The keys, under one hash tag.
const KEYS: [&str; 4] = ["{d}a", "{d}b", "{d}c", "{d}d"];
/// Values and members: short, empty, numbers, and binary bytes (NUL, CR LF, UTF-8).
const VALUES: [&str; 12] = [
    "a", "b", "c", "d", "", "0", "1", "-1", "17", "a\r\nb", "\0x\0", "é",
];
/// Counts and indexes, including negative, zero, huge, and not numbers at all.
const COUNTS: [&str; 14] = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-2",
    "-5",
    "10",
    "-100",
    "x",
    "1.5",
    "9223372036854775807",
    "-9223372036854775808",
    "",
];

/// The sequence's generator: everything in a sequence follows from its seed.
struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    fn one<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn key(&mut self) -> String {
        self.one(&KEYS).to_owned()
    }

    fn value(&mut self) -> String {
        self.one(&VALUES).to_owned()
    }

    fn count(&mut self) -> String {
        self.one(&COUNTS).to_owned()
    }

    /// `1..=max` keys (repeats possible).
    fn keys(&mut self, max: usize) -> Vec<String> {
        (0..1 + self.below(max)).map(|_| self.key()).collect()
    }

    /// `1..=max` values.
    fn values(&mut self, max: usize) -> Vec<String> {
        (0..1 + self.below(max)).map(|_| self.value()).collect()
    }

    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
}

/// How the two replies of a command are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Byte for byte.
    Exact,
    /// An array whose order Redis leaves unspecified (set members, KEYS): compared sorted.
    Unordered,
    /// A field/value array in unspecified order (HGETALL): compared as sorted pairs.
    Pairs,
    /// `[cursor, members]`: a finished scan (cursor 0 on both) compared sorted.
    Scan,
    /// SPOP: members of the set, as many on both sides; then both sides are synced.
    Pop,
    /// SRANDMEMBER: members of the set, the number the count asks for.
    RandomMembers,
    /// RANDOMKEY: nil on both or a key on both.
    RandomKey,
}

/// One command of the generator.
struct Entry {
    /// The command name (for the failure report and the coverage check).
    name: &'static str,
    /// Its arguments, name first.
    build: fn(&mut Rng) -> Vec<String>,
    /// How its replies are compared.
    check: Check,
}

fn line(parts: &[&str], rest: Vec<String>) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).chain(rest).collect()
}

/// Every command the generator sends, one entry each.
const COMMANDS: &[Entry] = &[
    // Strings
    Entry {
        name: "GET",
        build: |r| vec!["GET".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "SET",
        build: |r| {
            let mut args = vec!["SET".into(), r.key(), r.value()];
            let options = ["NX", "XX", "GET", "KEEPTTL", "EX"];
            if r.coin() {
                let option = r.one(&options);
                args.push(option.into());
                if option == "EX" {
                    args.push(r.count());
                }
            }
            args
        },
        check: Check::Exact,
    },
    Entry {
        name: "SETNX",
        build: |r| vec!["SETNX".into(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "GETSET",
        build: |r| vec!["GETSET".into(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "GETDEL",
        build: |r| vec!["GETDEL".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "APPEND",
        build: |r| vec!["APPEND".into(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "STRLEN",
        build: |r| vec!["STRLEN".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "INCR",
        build: |r| vec!["INCR".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "INCRBY",
        build: |r| vec!["INCRBY".into(), r.key(), r.count()],
        check: Check::Exact,
    },
    Entry {
        name: "DECRBY",
        build: |r| vec!["DECRBY".into(), r.key(), r.count()],
        check: Check::Exact,
    },
    Entry {
        name: "MGET",
        build: |r| line(&["MGET"], r.keys(3)),
        check: Check::Exact,
    },
    Entry {
        name: "MSET",
        build: |r| {
            let pairs = (0..1 + r.below(2)).flat_map(|_| [r.key(), r.value()]);
            line(&["MSET"], pairs.collect())
        },
        check: Check::Exact,
    },
    Entry {
        name: "GETRANGE",
        build: |r| vec!["GETRANGE".into(), r.key(), r.count(), r.count()],
        check: Check::Exact,
    },
    Entry {
        name: "SETRANGE",
        build: |r| {
            let offset = r.one(&["0", "1", "3", "-1", "x"]);
            vec!["SETRANGE".into(), r.key(), offset.into(), r.value()]
        },
        check: Check::Exact,
    },
    // Keyspace
    Entry {
        name: "DEL",
        build: |r| line(&["DEL"], r.keys(2)),
        check: Check::Exact,
    },
    Entry {
        name: "EXISTS",
        build: |r| line(&["EXISTS"], r.keys(3)),
        check: Check::Exact,
    },
    Entry {
        name: "TYPE",
        build: |r| vec!["TYPE".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "EXPIRE",
        build: |r| {
            let seconds = r.one(&["1000", "2000", "x"]);
            vec!["EXPIRE".into(), r.key(), seconds.into()]
        },
        check: Check::Exact,
    },
    Entry {
        name: "PERSIST",
        build: |r| vec!["PERSIST".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "KEYS",
        build: |r| vec!["KEYS".into(), r.one(&["*", "{d}[ab]", "*c"]).into()],
        check: Check::Unordered,
    },
    Entry {
        name: "RANDOMKEY",
        build: |_| vec!["RANDOMKEY".into()],
        check: Check::RandomKey,
    },
    // Lists
    Entry {
        name: "LPUSH",
        build: |r| line(&["LPUSH", &r.key()], r.values(3)),
        check: Check::Exact,
    },
    Entry {
        name: "RPUSH",
        build: |r| line(&["RPUSH", &r.key()], r.values(3)),
        check: Check::Exact,
    },
    Entry {
        name: "LPOP",
        build: |r| {
            let mut args = vec!["LPOP".into(), r.key()];
            if r.coin() {
                args.push(r.count());
            }
            args
        },
        check: Check::Exact,
    },
    Entry {
        name: "RPOP",
        build: |r| {
            let mut args = vec!["RPOP".into(), r.key()];
            if r.coin() {
                args.push(r.count());
            }
            args
        },
        check: Check::Exact,
    },
    Entry {
        name: "LRANGE",
        build: |r| vec!["LRANGE".into(), r.key(), r.count(), r.count()],
        check: Check::Exact,
    },
    Entry {
        name: "LLEN",
        build: |r| vec!["LLEN".into(), r.key()],
        check: Check::Exact,
    },
    // Hashes
    Entry {
        name: "HSET",
        build: |r| {
            let key = r.key();
            let pairs = (0..1 + r.below(2)).flat_map(|_| [r.value(), r.value()]);
            line(&["HSET", &key], pairs.collect())
        },
        check: Check::Exact,
    },
    Entry {
        name: "HGET",
        build: |r| vec!["HGET".into(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "HDEL",
        build: |r| line(&["HDEL", &r.key()], r.values(2)),
        check: Check::Exact,
    },
    Entry {
        name: "HGETALL",
        build: |r| vec!["HGETALL".into(), r.key()],
        check: Check::Pairs,
    },
    Entry {
        name: "HLEN",
        build: |r| vec!["HLEN".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "HINCRBY",
        build: |r| vec!["HINCRBY".into(), r.key(), r.value(), r.count()],
        check: Check::Exact,
    },
    // Sets
    Entry {
        name: "SADD",
        build: |r| line(&["SADD", &r.key()], r.values(4)),
        check: Check::Exact,
    },
    Entry {
        name: "SREM",
        build: |r| line(&["SREM", &r.key()], r.values(3)),
        check: Check::Exact,
    },
    Entry {
        name: "SCARD",
        build: |r| vec!["SCARD".into(), r.key()],
        check: Check::Exact,
    },
    Entry {
        name: "SISMEMBER",
        build: |r| vec!["SISMEMBER".into(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "SMISMEMBER",
        build: |r| line(&["SMISMEMBER", &r.key()], r.values(3)),
        check: Check::Exact,
    },
    Entry {
        name: "SMEMBERS",
        build: |r| vec!["SMEMBERS".into(), r.key()],
        check: Check::Unordered,
    },
    Entry {
        name: "SPOP",
        build: |r| {
            let mut args = vec!["SPOP".into(), r.key()];
            if r.coin() {
                args.push(r.count());
            }
            args
        },
        check: Check::Pop,
    },
    Entry {
        name: "SRANDMEMBER",
        build: |r| {
            let mut args = vec!["SRANDMEMBER".into(), r.key()];
            if r.coin() {
                // Not -9223372036854775807: Redis would try to build that reply.
                args.push(
                    r.one(&[
                        "0",
                        "1",
                        "3",
                        "10",
                        "-1",
                        "-4",
                        "-30",
                        "x",
                        "-9223372036854775808",
                    ])
                    .into(),
                );
            }
            args
        },
        check: Check::RandomMembers,
    },
    Entry {
        name: "SMOVE",
        build: |r| vec!["SMOVE".into(), r.key(), r.key(), r.value()],
        check: Check::Exact,
    },
    Entry {
        name: "SINTER",
        build: |r| line(&["SINTER"], r.keys(3)),
        check: Check::Unordered,
    },
    Entry {
        name: "SINTERCARD",
        build: |r| {
            let keys = r.keys(3);
            // Every word after numkeys keys is an option: a wrong numkeys must not turn an
            // option into a key of another slot (tandem would answer CROSSSLOT).
            let numkeys = match r.below(8) {
                0 => r.one(&["0", "-1", "x"]).to_owned(),
                1 => (keys.len() + 1).to_string(),
                _ => keys.len().to_string(),
            };
            let mut args = line(&["SINTERCARD", &numkeys], keys);
            match r.below(4) {
                _ if numkeys.parse::<usize>().is_ok_and(|n| n > args.len() - 2) => {}
                0 => args.extend(["LIMIT".into(), r.count()]),
                1 => args.push(r.one(&["LIMIT", "foo"]).into()),
                _ => {}
            }
            args
        },
        check: Check::Exact,
    },
    Entry {
        name: "SINTERSTORE",
        build: |r| line(&["SINTERSTORE", &r.key()], r.keys(3)),
        check: Check::Exact,
    },
    Entry {
        name: "SUNION",
        build: |r| line(&["SUNION"], r.keys(3)),
        check: Check::Unordered,
    },
    Entry {
        name: "SUNIONSTORE",
        build: |r| line(&["SUNIONSTORE", &r.key()], r.keys(3)),
        check: Check::Exact,
    },
    Entry {
        name: "SDIFF",
        build: |r| line(&["SDIFF"], r.keys(3)),
        check: Check::Unordered,
    },
    Entry {
        name: "SDIFFSTORE",
        build: |r| line(&["SDIFFSTORE", &r.key()], r.keys(3)),
        check: Check::Exact,
    },
    Entry {
        name: "SSCAN",
        build: |r| {
            let mut args = vec!["SSCAN".into(), r.key(), r.one(&["0", "x", "-"]).into()];
            match r.below(5) {
                0 => args.extend(["MATCH".into(), r.one(&["*", "a*", "[ab]", "\\*"]).into()]),
                1 => args.extend(["COUNT".into(), r.count()]),
                2 => args.push(r.one(&["MATCH", "TYPE", "foo"]).into()),
                _ => {}
            }
            args
        },
        check: Check::Scan,
    },
];

/// The two sides of the comparison.
struct Sides {
    ours: RespClient,
    theirs: RespClient,
}

/// What went wrong, for the report.
struct Mismatch {
    what: String,
    ours: Box<Frame>,
    theirs: Box<Frame>,
}

fn call(client: &mut RespClient, args: &[String]) -> Frame {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    client.call(&args).expect("the server answers")
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The bulk strings of an array reply, sorted; `None` if it is not an array of bulks.
fn sorted_bulks(frame: &Frame) -> Option<Vec<Bytes>> {
    let Frame::Array(items) = frame else {
        return None;
    };
    let mut out = items
        .iter()
        .map(|item| match item {
            Frame::Bulk(b) => Some(b.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    out.sort();
    Some(out)
}

/// The (field, value) pairs of a flat array reply, sorted.
fn sorted_pairs(frame: &Frame) -> Option<Vec<(Bytes, Bytes)>> {
    let Frame::Array(items) = frame else {
        return None;
    };
    let mut pairs = Vec::new();
    for pair in items.chunks(2) {
        match pair {
            [Frame::Bulk(f), Frame::Bulk(v)] => pairs.push((f.clone(), v.clone())),
            _ => return None,
        }
    }
    pairs.sort();
    Some(pairs)
}

/// The members of the set at `key` on Redis, sorted (empty for a missing key or another type).
fn members(client: &mut RespClient, key: &str) -> Vec<Bytes> {
    sorted_bulks(&call(client, &words(&["SMEMBERS", key]))).unwrap_or_default()
}

impl Sides {
    /// Runs one command on both sides and compares the replies by `check`.
    fn run(&mut self, args: &[String], check: Check) -> Result<(), Mismatch> {
        let before = match check {
            Check::Pop | Check::RandomMembers => members(&mut self.theirs, &args[1]),
            _ => Vec::new(),
        };
        let ours = call(&mut self.ours, args);
        let theirs = call(&mut self.theirs, args);
        let fail = |what: &str| Mismatch {
            what: what.to_owned(),
            ours: Box::new(ours.clone()),
            theirs: Box::new(theirs.clone()),
        };
        if ours == theirs {
            return Ok(());
        }
        if matches!(ours, Frame::Error(_)) || matches!(theirs, Frame::Error(_)) {
            return Err(fail("replies differ"));
        }
        match check {
            Check::Exact => Err(fail("replies differ")),
            Check::Unordered => same(sorted_bulks(&ours), sorted_bulks(&theirs), || {
                fail("members differ")
            }),
            Check::Pairs => same(sorted_pairs(&ours), sorted_pairs(&theirs), || {
                fail("pairs differ")
            }),
            Check::Scan => self
                .check_scan(&ours, &theirs, &args[1])
                .map_err(|w| fail(&w)),
            Check::Pop => self
                .check_pop(args, &before, &ours, &theirs)
                .map_err(|w| fail(&w)),
            Check::RandomMembers => {
                check_random(args, &before, &ours, &theirs).map_err(|w| fail(&w))
            }
            Check::RandomKey => match (&ours, &theirs) {
                (Frame::Bulk(_), Frame::Bulk(_)) => Ok(()),
                _ => Err(fail("one side has no key")),
            },
        }
    }

    /// SSCAN: both finished scans give the same members; a scan Redis did not finish in one
    /// call (its cursor depends on its hash table) gives members of the set.
    fn check_scan(&mut self, ours: &Frame, theirs: &Frame, key: &str) -> Result<(), String> {
        let parts = |f: &Frame| match f {
            Frame::Array(items) if items.len() == 2 => {
                Some((items[0].clone(), sorted_bulks(&items[1])?))
            }
            _ => None,
        };
        let (Some((our_cursor, ours)), Some((their_cursor, theirs))) = (parts(ours), parts(theirs))
        else {
            return Err("not a scan reply".into());
        };
        let zero = Frame::Bulk(Bytes::from_static(b"0"));
        if our_cursor != zero {
            return Err("tandem's scan of a small set did not finish in one call".into());
        }
        if their_cursor == zero {
            return if ours == theirs {
                Ok(())
            } else {
                Err("members differ".into())
            };
        }
        let all = members(&mut self.theirs, key);
        if theirs.iter().all(|m| ours.contains(m)) && ours.iter().all(|m| all.contains(m)) {
            Ok(())
        } else {
            Err("scanned members are not the set's".into())
        }
    }

    /// SPOP: the same number of distinct members of the set on both sides; then Redis's set
    /// is made what tandem's became (give back what Redis popped, remove what tandem popped).
    fn check_pop(
        &mut self,
        args: &[String],
        before: &[Bytes],
        ours: &Frame,
        theirs: &Frame,
    ) -> Result<(), String> {
        let as_list = |f: &Frame| match f {
            Frame::Bulk(b) => Some(vec![b.clone()]),
            Frame::Null => Some(Vec::new()),
            other => sorted_bulks(other),
        };
        let (Some(popped_ours), Some(popped_theirs)) = (as_list(ours), as_list(theirs)) else {
            return Err("not members".into());
        };
        check_members(&popped_ours, before, false)?;
        check_members(&popped_theirs, before, false)?;
        if popped_ours.len() != popped_theirs.len() {
            return Err("popped counts differ".into());
        }
        let key = &args[1];
        let give_back = line(&["SADD", key], popped_theirs.iter().map(text).collect());
        let take = line(&["SREM", key], popped_ours.iter().map(text).collect());
        if !popped_theirs.is_empty() {
            call(&mut self.theirs, &give_back);
            call(&mut self.theirs, &take);
        }
        Ok(())
    }

    /// Compares every key's type and value on both sides.
    fn compare_state(&mut self) -> Result<(), Mismatch> {
        for key in KEYS {
            let kind = words(&["TYPE", key]);
            self.run(&kind, Check::Exact)?;
            let Frame::Simple(kind) = call(&mut self.ours, &kind) else {
                continue;
            };
            let (read, check) = match kind.as_str() {
                "string" => (words(&["GET", key]), Check::Exact),
                "list" => (words(&["LRANGE", key, "0", "-1"]), Check::Exact),
                "hash" => (words(&["HGETALL", key]), Check::Pairs),
                "set" => (words(&["SMEMBERS", key]), Check::Unordered),
                _ => continue,
            };
            self.run(&read, check)?;
        }
        Ok(())
    }
}

/// Member bytes as an argument (the generator's values are all UTF-8).
fn text(member: &Bytes) -> String {
    String::from_utf8(member.to_vec()).expect("generated members are UTF-8")
}

fn same<T: PartialEq>(
    a: Option<T>,
    b: Option<T>,
    fail: impl Fn() -> Mismatch,
) -> Result<(), Mismatch> {
    match (a, b) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(fail()),
    }
}

/// Every one of `got` (sorted) is in `set`, and, unless `repeats`, none twice.
fn check_members(got: &[Bytes], set: &[Bytes], repeats: bool) -> Result<(), String> {
    if let Some(stranger) = got.iter().find(|m| !set.contains(m)) {
        return Err(format!("{stranger:?} is not a member"));
    }
    if !repeats && got.windows(2).any(|w| w[0] == w[1]) {
        return Err("a member returned twice".into());
    }
    Ok(())
}

/// SRANDMEMBER: members of the set, as many as the count asks (distinct for a positive
/// count, with repeats for a negative one), or one member or nil without a count.
fn check_random(
    args: &[String],
    before: &[Bytes],
    ours: &Frame,
    theirs: &Frame,
) -> Result<(), String> {
    let Some(count) = args.get(2) else {
        return match (ours, theirs) {
            (Frame::Bulk(a), Frame::Bulk(_)) => {
                check_members(std::slice::from_ref(a), before, false)
            }
            _ => Err("one side has no member".into()),
        };
    };
    let count: i64 = count
        .parse()
        .map_err(|_| "count should have failed on both")?;
    let (Some(a), Some(b)) = (sorted_bulks(ours), sorted_bulks(theirs)) else {
        return Err("not arrays of members".into());
    };
    let expected = if count >= 0 {
        (count as usize).min(before.len())
    } else if before.is_empty() {
        0
    } else {
        count.unsigned_abs() as usize
    };
    if a.len() != expected || b.len() != expected {
        return Err(format!(
            "{} and {} members, {expected} expected",
            a.len(),
            b.len()
        ));
    }
    check_members(&a, before, count < 0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs sequence `seed`; on a mismatch, the report.
fn sequence(
    sides: &mut Sides,
    seed: u64,
    length: usize,
    counts: &mut BTreeMap<&'static str, usize>,
) -> Result<(), String> {
    let mut rng = Rng(SplitMix64::new(seed));
    let flush = words(&["FLUSHALL"]);
    call(&mut sides.ours, &flush);
    call(&mut sides.theirs, &flush);
    let mut sent: Vec<String> = Vec::new();
    let report = |sent: &[String], m: Mismatch| {
        let mut text = format!(
            "differential mismatch: TANDEM_DIFF_SEED={seed} TANDEM_DIFF_SEQUENCES=1 ({})\n",
            m.what
        );
        for (i, cmd) in sent.iter().enumerate() {
            let _ = writeln!(text, "  {i:3}: {cmd}");
        }
        let _ = write!(text, "tandem: {:?}\nredis:  {:?}", m.ours, m.theirs);
        text
    };
    for _ in 0..length {
        let entry = &COMMANDS[rng.below(COMMANDS.len())];
        let args = (entry.build)(&mut rng);
        sent.push(format!("{args:?}"));
        *counts.entry(entry.name).or_default() += 1;
        sides
            .run(&args, entry.check)
            .map_err(|m| report(&sent, m))?;
    }
    sent.push("(final state of every key)".into());
    sides.compare_state().map_err(|m| report(&sent, m))
}

#[test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "needs redis-server on PATH (Debian package redis-server)"
)]
fn random_sequences_reply_like_redis_server() {
    let sequences = env_u64("TANDEM_DIFF_SEQUENCES", 24);
    let length = env_u64("TANDEM_DIFF_LENGTH", 60) as usize;
    let first_seed = env_u64("TANDEM_DIFF_SEED", 0x5e75_0014);
    let redis = RedisServer::start();
    let cluster = Cluster::start(2);
    let mut sides = Sides {
        ours: cluster.client(),
        theirs: redis.client(),
    };
    let mut counts = BTreeMap::new();
    for i in 0..sequences {
        if let Err(report) = sequence(&mut sides, first_seed + i, length, &mut counts) {
            panic!("{report}");
        }
    }
    let total: usize = counts.values().sum();
    eprintln!("{sequences} sequences, {total} commands: {counts:?}");
    if sequences * length as u64 >= 20 * COMMANDS.len() as u64 {
        let missing: Vec<_> = COMMANDS
            .iter()
            .filter(|e| !counts.contains_key(e.name))
            .map(|e| e.name)
            .collect();
        assert!(missing.is_empty(), "never generated: {missing:?}");
    }
}
