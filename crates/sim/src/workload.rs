//! Random client requests over a handful of keys, so that many clients contend on few keys.
//! Values are unique per request, so a lost or duplicated write is visible in later reads.
//! Keys carry hash tags (S1): `{t3}s0` is key `s0` of tag `t3`, in the tag's slot.

use bytes::Bytes;
use tandem_kv::Command;
use tandem_protocol::rng::SplitMix64;

use crate::cluster::Workload;

/// String keys, list keys and hash keys; commands of the wrong type still happen sometimes.
pub const STRING_KEYS: [&str; 3] = ["s0", "s1", "s2"];
/// List keys.
pub const LIST_KEYS: [&str; 2] = ["l0", "l1"];
/// Hash keys.
pub const HASH_KEYS: [&str; 2] = ["h0", "h1"];

/// Set keys (single-key set commands are checked per key like the others; SPOP and
/// SRANDMEMBER are left out: their replies depend on the primary's random number, which the
/// per-key model does not know).
pub const SET_KEYS: [&str; 2] = ["m0", "m1"];

/// Hash tags of a sharded workload: one per sixth of the slot space, so that after a
/// rebalance over 2 or 3 groups every group owns some of the workload's keys.
pub const SHARDED_TAGS: usize = 6;

/// Hash tags of the single-group workload: two slots, so a pipeline may span slots (S1 allows
/// it within one group) while every multi-key command stays in one (S1 refuses it otherwise).
pub const SINGLE_GROUP_TAGS: usize = 2;

/// Every key the single-group workload touches (the linearizability checker's universe).
pub fn universe() -> Vec<Bytes> {
    universe_tagged(&spread_tags(SINGLE_GROUP_TAGS))
}

/// Every key of a workload over `tags`.
pub fn universe_tagged(tags: &[String]) -> Vec<Bytes> {
    let names = STRING_KEYS
        .iter()
        .chain(LIST_KEYS.iter())
        .chain(HASH_KEYS.iter())
        .chain(SET_KEYS.iter());
    tags.iter()
        .flat_map(|t| names.clone().map(move |k| Bytes::from(tagged(t, k))))
        .collect()
}

/// Key `name` under hash tag `tag` (S1: its slot is the tag's).
pub fn tagged(tag: &str, name: &str) -> String {
    format!("{{{tag}}}{name}")
}

/// `n` hash tags whose slots fall in `n` equal parts of the slot space, in order: the first
/// tag `t<i>` (smallest `i`) landing in each part.
pub fn spread_tags(n: usize) -> Vec<String> {
    let n = n.max(1);
    let part = |slot: u16| usize::from(slot) * n / usize::from(tandem_kv::slots::SLOT_COUNT);
    (0..n)
        .map(|p| {
            (0u32..)
                .map(|i| format!("t{i}"))
                .find(|t| part(tandem_kv::slots::key_slot(t.as_bytes())) == p)
                .expect("every part of the slot space has some tag")
        })
        .collect()
}

/// The random workload over every command family of the store. Every key is under a hash
/// tag, and each command draws one tag, so a multi-key command stays in one slot (S1).
#[derive(Debug)]
pub struct RandomWorkload {
    counter: u64,
    think_max_ms: u64,
    tags: Vec<String>,
    /// Sharded: each request draws one tag and touches only keys under it (one slot, so one
    /// group), and keyspace-wide commands (KEYS, FLUSHDB) are left out, since they would reach
    /// one group only. Otherwise each command draws its tag.
    sharded: bool,
    /// The tag of the command (or sharded request) being built.
    tag: usize,
}

impl RandomWorkload {
    /// The single-group workload (keys under [`SINGLE_GROUP_TAGS`] tags); clients pause up to
    /// `think_max_ms` between requests.
    pub fn new(think_max_ms: u64) -> RandomWorkload {
        RandomWorkload {
            counter: 0,
            think_max_ms,
            tags: spread_tags(SINGLE_GROUP_TAGS),
            sharded: false,
            tag: 0,
        }
    }

    /// The workload of a sharded cluster: keys under `tags` (see [`spread_tags`]).
    pub fn sharded(think_max_ms: u64, tags: Vec<String>) -> RandomWorkload {
        RandomWorkload {
            tags,
            sharded: true,
            ..RandomWorkload::new(think_max_ms)
        }
    }

    fn draw_tag(&mut self, rng: &mut SplitMix64) {
        self.tag = rng.below(self.tags.len() as u64) as usize;
    }

    /// Key `name` under the current tag.
    fn key(&self, name: &'static str) -> String {
        tagged(&self.tags[self.tag], name)
    }

    fn unique(&mut self, client: usize) -> String {
        self.counter += 1;
        format!("c{client}n{}", self.counter)
    }

    /// One random command line.
    pub fn line(&mut self, client: usize, rng: &mut SplitMix64) -> String {
        let pick = |rng: &mut SplitMix64, keys: &[&'static str]| {
            keys[rng.below(keys.len() as u64) as usize]
        };
        if !self.sharded {
            self.draw_tag(rng);
        }
        let s = self.key(pick(rng, &STRING_KEYS));
        let l = self.key(pick(rng, &LIST_KEYS));
        let h = self.key(pick(rng, &HASH_KEYS));
        let any = match rng.below(10) {
            0 => l.clone(),
            1 => h.clone(),
            _ => s.clone(),
        };
        let (s0, s1, s2) = (self.key("s0"), self.key("s1"), self.key("s2"));
        let sharded = self.sharded;
        let v = self.unique(client);
        let f = ["f0", "f1", "f2"][rng.below(3) as usize];
        if rng.below(8) == 0 {
            return self.set_line(&v, &any, rng);
        }
        match rng.below(40) {
            0..=5 => format!("GET {s}"),
            6..=9 => format!("SET {s} {v}"),
            10 => format!("SET {s} {v} NX"),
            11 => format!("SET {s} {v} XX GET"),
            12 => format!("SET {s} {v} EX 3600"),
            13 => format!("APPEND {s} ,{v}"),
            14 => format!("INCR {s2}"),
            15 => format!("INCRBY {s2} {}", rng.below(100)),
            16 => format!("GETSET {s} {v}"),
            17 => format!("GETDEL {s}"),
            18 => format!("STRLEN {s}"),
            19 => format!("DEL {any}"),
            20 => format!("EXISTS {any}"),
            21 => format!("TYPE {any}"),
            22 => format!("EXPIRE {any} 7200"),
            23 => format!("PERSIST {any}"),
            24 => format!("TTL {any}"),
            25 => format!("LPUSH {l} {v}"),
            26 => format!("RPUSH {l} {v} {v}x"),
            27 => format!("LPOP {l}"),
            28 => format!("RPOP {l}"),
            29 => format!("LRANGE {l} 0 -1"),
            30 => format!("LLEN {l}"),
            31 => format!("HSET {h} {f} {v}"),
            32 => format!("HGET {h} {f}"),
            33 => format!("HDEL {h} {f}"),
            34 => format!("HGETALL {h}"),
            35 => format!("HINCRBY {h} n {}", rng.below(10)),
            36 => format!("MSET {s0} {v} {s1} {v}b"),
            37 => format!("MGET {s0} {s1} {s2}"),
            38 if sharded => format!("GET {s}"),
            38 => {
                if rng.below(20) == 0 {
                    "FLUSHDB".to_string()
                } else {
                    "KEYS *".to_string()
                }
            }
            _ => format!("SETNX {s} {v}"),
        }
    }
}

impl RandomWorkload {
    /// One random set command; `v` is a unique member, `any` a key of another type.
    fn set_line(&self, v: &str, any: &str, rng: &mut SplitMix64) -> String {
        let (m0, m1) = (self.key(SET_KEYS[0]), self.key(SET_KEYS[1]));
        let m = if rng.below(2) == 0 { &m0 } else { &m1 };
        let member = ["a", "b", "c"][rng.below(3) as usize];
        match rng.below(12) {
            0..=2 => format!("SADD {m} {member} {v}"),
            3 => format!("SADD {any} {member}"),
            4 | 5 => format!("SREM {m} {member} {v}"),
            6 => format!("SISMEMBER {m} {member}"),
            7 => format!("SCARD {m}"),
            8 => format!("SMEMBERS {m}"),
            9 => format!("SMISMEMBER {m} a b c"),
            10 => format!("SUNION {m0} {m1}"),
            _ => format!("SINTERCARD 2 {m0} {m1} LIMIT 2"),
        }
    }
}

/// Parses a command line of the workload (space-separated, no quoting needed).
pub fn parse_line(line: &str) -> Command {
    let args: Vec<Bytes> = line
        .split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    Command::parse(&args)
        .unwrap_or_else(|e| panic!("workload produced an invalid command {line:?}: {e:?}"))
}

impl Workload for RandomWorkload {
    fn next(&mut self, client: usize, rng: &mut SplitMix64) -> Option<Vec<Command>> {
        // Mostly single commands, sometimes a pipelined batch (executed atomically, in order).
        let n = if rng.below(8) == 0 {
            2 + rng.below(3) as usize
        } else {
            1
        };
        if self.sharded {
            self.draw_tag(rng);
        }
        Some(
            (0..n)
                .map(|_| parse_line(&self.line(client, rng)))
                .collect(),
        )
    }

    fn think_ms(&mut self, rng: &mut SplitMix64) -> u64 {
        rng.below(self.think_max_ms + 1)
    }
}
