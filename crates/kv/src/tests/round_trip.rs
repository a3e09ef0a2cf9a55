//! `parse(to_args(c)) == c`, property-style over many generated commands of every kind.

use bytes::Bytes;

use crate::{Command, ExpireCondition, FlushMode, SetCondition, SetExpiry};

/// A small deterministic generator (SplitMix64), so failures replay from the seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }

    /// Arbitrary bytes, sometimes empty, sometimes option-like words to tempt the parser.
    fn bytes(&mut self) -> Bytes {
        const TRICKY: [&str; 8] = ["NX", "ex", "GET", "keepttl", "count", "match", "-1", "0"];
        if self.below(5) == 0 {
            return Bytes::from_static(TRICKY[self.below(8) as usize].as_bytes());
        }
        let len = self.below(6) as usize;
        (0..len)
            .map(|_| self.next() as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    fn list(&mut self) -> Vec<Bytes> {
        (0..1 + self.below(4)).map(|_| self.bytes()).collect()
    }

    fn pairs(&mut self) -> Vec<(Bytes, Bytes)> {
        (0..1 + self.below(3))
            .map(|_| (self.bytes(), self.bytes()))
            .collect()
    }

    fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => i64::MAX,
            1 => i64::MIN + 1,
            _ => (self.next() as i64) >> self.below(64),
        }
    }

    fn positive(&mut self, max: u64) -> u64 {
        1 + self.below(max)
    }

    fn maybe<T>(&mut self, make: impl FnOnce(&mut Gen) -> T) -> Option<T> {
        if self.coin() { Some(make(self)) } else { None }
    }
}

fn set_expiry(g: &mut Gen) -> SetExpiry {
    let max_seconds = i64::MAX as u64 / 1000;
    match g.below(5) {
        0 => SetExpiry::Ex(g.positive(max_seconds)),
        1 => SetExpiry::Px(g.positive(i64::MAX as u64)),
        2 => SetExpiry::ExAt(g.positive(max_seconds)),
        3 => SetExpiry::PxAt(g.positive(i64::MAX as u64)),
        _ => SetExpiry::KeepTtl,
    }
}

fn expire_condition(g: &mut Gen) -> ExpireCondition {
    use ExpireCondition::*;
    [Nx, Xx, Gt, Lt, XxGt, XxLt][g.below(6) as usize]
}

fn flush_mode(g: &mut Gen) -> FlushMode {
    if g.coin() {
        FlushMode::Async
    } else {
        FlushMode::Sync
    }
}

/// One random command of kind `kind` (0..39 covers every variant).
fn command(g: &mut Gen, kind: u64) -> Command {
    use Command::*;
    let key = g.bytes();
    match kind {
        0 => Get { key },
        1 => Set {
            key,
            value: g.bytes(),
            condition: g.maybe(|g| {
                if g.coin() {
                    SetCondition::Nx
                } else {
                    SetCondition::Xx
                }
            }),
            get: g.coin(),
            expiry: g.maybe(set_expiry),
        },
        2 => SetNx {
            key,
            value: g.bytes(),
        },
        3 => GetSet {
            key,
            value: g.bytes(),
        },
        4 => GetDel { key },
        5 => MGet { keys: g.list() },
        6 => MSet { pairs: g.pairs() },
        7 => Append {
            key,
            value: g.bytes(),
        },
        8 => StrLen { key },
        9 => Incr { key },
        10 => IncrBy {
            key,
            delta: g.int(),
        },
        11 => Decr { key },
        12 => DecrBy {
            key,
            delta: g.int(),
        },
        13 => Del { keys: g.list() },
        14 => Exists { keys: g.list() },
        15 => Type { key },
        16 => DbSize,
        17 => Keys { pattern: key },
        18 => Scan {
            cursor: g.next(),
            pattern: g.maybe(Gen::bytes),
            count: g.maybe(|g| g.positive(i64::MAX as u64)),
            type_name: g.maybe(|g| Bytes::from(g.bytes().to_ascii_lowercase())),
        },
        19 => RandomKey,
        20 => FlushDb {
            mode: g.maybe(flush_mode),
        },
        21 => FlushAll {
            mode: g.maybe(flush_mode),
        },
        22 => Expire {
            key,
            seconds: g.int() / 1000,
            condition: g.maybe(expire_condition),
        },
        23 => PExpire {
            key,
            millis: g.int(),
            condition: g.maybe(expire_condition),
        },
        24 => Ttl { key },
        25 => PTtl { key },
        26 => Persist { key },
        27 => LPush {
            key,
            values: g.list(),
        },
        28 => RPush {
            key,
            values: g.list(),
        },
        29 => LPop {
            key,
            count: g.maybe(|g| g.below(i64::MAX as u64)),
        },
        30 => RPop {
            key,
            count: g.maybe(|g| g.below(10)),
        },
        31 => LRange {
            key,
            start: g.int(),
            stop: g.int(),
        },
        32 => LLen { key },
        33 => HSet {
            key,
            pairs: g.pairs(),
        },
        34 => HGet {
            key,
            field: g.bytes(),
        },
        35 => HDel {
            key,
            fields: g.list(),
        },
        36 => HGetAll { key },
        37 => HLen { key },
        _ => HIncrBy {
            key,
            field: g.bytes(),
            delta: g.int(),
        },
    }
}

#[test]
fn parse_to_args_round_trip() {
    let mut g = Gen(0x5eed);
    let mut names = std::collections::BTreeSet::new();
    for i in 0..20_000 {
        let original = command(&mut g, i % 39);
        names.insert(original.name());
        let args = original.to_args();
        assert_eq!(
            Command::parse(&args),
            Ok(original.clone()),
            "case {i}: {args:?}"
        );
    }
    assert_eq!(names.len(), 39, "every command kind was generated");
}
