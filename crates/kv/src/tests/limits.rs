//! Limits on data (L10-L16).

use bytes::Bytes;

use super::*;
use crate::{EvictionPolicy, Limits};

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
const REPLY_TOO_BIG: &str = "ERR reply exceeds the maximum reply size (max-reply-bytes)";

fn limited(limits: Limits) -> Kv {
    let mut kv = Kv::new();
    kv.limits = limits;
    kv
}

#[test]
fn l10_used_memory_is_kept_incrementally_and_matches_a_full_count() {
    let mut kv = Kv::new();
    let mut state = 0x9e37_79b9_u64;
    for step in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = format!("k{}", state % 300);
        let line = match state % 13 {
            0 => format!("set {key} {}", "v".repeat((state % 50) as usize)),
            1 => format!("append {key} abc"),
            2 => format!("incr {key}"),
            3 => format!("del {key}"),
            4 => format!("lpush {key} a bb ccc"),
            5 => format!("rpop {key} 2"),
            6 => format!("lpop {key}"),
            7 => format!(
                "hset {key} f{} {}",
                state % 7,
                "x".repeat((state % 9) as usize)
            ),
            8 => format!("hdel {key} f{}", state % 7),
            9 => format!("hincrby {key} n 3"),
            10 => format!("getset {key} g{step}"),
            11 => format!("pexpire {key} 5"),
            _ => format!("getdel {key}"),
        };
        kv.call(&line);
        if step % 1000 == 999 {
            kv.now_ms += 10;
            let expired = kv.store.expired_keys(kv.now_ms, 1000);
            kv.store.purge_expired(&expired, kv.now_ms);
        }
        assert_eq!(kv.store.used_memory(), kv.store.approx_bytes(), "{line}");
    }
    kv.call("flushall");
    assert_eq!(kv.store.used_memory(), 0);
}

#[test]
fn l11_noeviction_refuses_growing_writes_with_redis_text_and_serves_reads() {
    let mut kv = limited(Limits {
        maxmemory_bytes: 1000,
        ..Limits::default()
    });
    let value = "x".repeat(400);
    kv.setup(&[&format!("set a {value}"), &format!("set b {value}")]);
    assert!(kv.store.used_memory() <= 1000);
    kv.setup(&[&format!("set c {value}")]);
    assert!(kv.store.used_memory() > 1000);
    for line in ["set d 1", "append a x", "lpush l x", "hset h f v", "incr n"] {
        assert_eq!(kv.call(line), err(OOM), "{line}");
    }
    assert_eq!(kv.call("get a"), bulk(&value));
    assert_eq!(kv.call("exists a b c"), int(3));
    assert_eq!(kv.call("del c"), int(1), "deletes are always allowed");
    assert_eq!(kv.call("set d 1"), Reply::ok());
}

#[test]
fn l13_values_beyond_the_limit_are_refused_on_every_path() {
    let mut kv = limited(Limits {
        max_value_bytes: 10,
        ..Limits::default()
    });
    kv.setup(&["set s 0123456789", "rpush l a", "hset h f v"]);
    for line in [
        "set t 0123456789a",
        "append s x",
        "getset s 0123456789a",
        "setnx u 0123456789a",
        "mset a 1 b 0123456789a",
        "rpush l 0123456789a",
        "lpush l 0123456789a",
        "hset h f 0123456789a",
        "hset h 0123456789a v",
    ] {
        assert_eq!(kv.call(line), err(TOO_BIG), "{line}");
    }
    assert_eq!(kv.call("get s"), bulk("0123456789"));
    assert_eq!(
        kv.call("get a"),
        Reply::Nil,
        "MSET checks every value first"
    );
    assert_eq!(kv.call("llen l"), int(1));
}

#[test]
fn l14_a_reply_beyond_the_limit_is_an_error_and_a_write_still_happens() {
    let mut kv = limited(Limits {
        max_reply_bytes: 1000,
        ..Limits::default()
    });
    let value = "v".repeat(300);
    kv.setup(&[&format!("set k {value}")]);
    assert_eq!(kv.call("mget k k"), bulks(&[&value, &value]));
    assert_eq!(kv.call("mget k k k k"), err(REPLY_TOO_BIG));
    let big = "w".repeat(2000);
    kv.limits.max_value_bytes = 4000;
    assert_eq!(kv.call(&format!("set k {big}")), Reply::ok());
    assert_eq!(kv.call(&format!("getset k {value}")), err(REPLY_TOO_BIG));
    assert_eq!(kv.call("strlen k"), int(300), "the write was applied");
}

#[test]
fn l12_eviction_picks_victims_by_policy() {
    let mut kv = Kv::new();
    for i in 0..200 {
        kv.call(&format!("set k{i} {}", "x".repeat(100)));
    }
    kv.setup(&["pexpire k7 100000", "pexpire k9 500", "pexpire k11 900000"]);
    let ttl = kv
        .store
        .eviction_victims(EvictionPolicy::VolatileTtl, 1, 1, 10);
    assert_eq!(ttl, vec![Bytes::from("k9")]);
    let volatile = kv
        .store
        .eviction_victims(EvictionPolicy::VolatileRandom, 7, 10_000, 10);
    assert_eq!(volatile.len(), 3, "only keys with an expiry: {volatile:?}");
    let all = kv
        .store
        .eviction_victims(EvictionPolicy::AllKeysRandom, 3, 1000, 100);
    assert!(all.len() >= 6 && all.len() <= 8, "{}", all.len());
    let before = kv.store.used_memory();
    assert_eq!(kv.store.evict(&all), all.len());
    assert!(before - kv.store.used_memory() >= 1000);
    assert!(
        kv.store
            .eviction_victims(EvictionPolicy::NoEviction, 3, 1000, 100)
            .is_empty()
    );
}

#[test]
fn l12_lru_prefers_keys_not_used_lately() {
    let mut kv = limited(Limits {
        policy: EvictionPolicy::AllKeysLru,
        ..Limits::default()
    });
    for i in 0..50 {
        kv.call(&format!("set k{i} v"));
    }
    kv.now_ms += 100_000;
    for i in 0..50 {
        if i != 17 {
            kv.call(&format!("get k{i}"));
        }
    }
    let mut hits = 0;
    for seed in 0..50 {
        let victims = kv
            .store
            .eviction_victims(EvictionPolicy::AllKeysLru, seed, 1, 1);
        hits += usize::from(victims == vec![Bytes::from("k17")]);
    }
    assert!(hits >= 5, "the idle key is chosen whenever sampled: {hits}");
}

/// Copies `store` chunk by chunk like a state transfer.
fn transfer(store: &Store, max_bytes: usize) -> (Store, usize) {
    let (mut copy, mut after, mut sent, mut chunks) = (Store::new(), None, None, 0);
    loop {
        let chunk = store.chunk_from(after.as_ref(), sent, max_bytes, 65_536);
        chunks += 1;
        let size: usize = chunk
            .entries
            .iter()
            .map(|(k, e)| crate::limits::entry_bytes(k, e))
            .sum();
        assert!(
            size <= max_bytes.max(2 * 1024),
            "chunk {chunks} is {size} bytes"
        );
        for (key, entry) in chunk.entries {
            copy.insert_piece(key, entry);
        }
        if chunk.done {
            return (copy, chunks);
        }
        assert!(chunk.last_key.is_some());
        after = chunk.last_key;
        sent = chunk.last_sent;
    }
}

#[test]
fn l16_values_bigger_than_a_chunk_travel_in_pieces() {
    let mut kv = Kv::new();
    kv.limits.max_value_bytes = 1 << 30;
    kv.setup(&["set small 1", "pexpire small 100000000"]);
    kv.exec(&Command::Set {
        key: "string".into(),
        value: Bytes::from(vec![7u8; 100_000]),
        condition: None,
        get: false,
        expiry: None,
    });
    let items: Vec<Bytes> = (0..5_000)
        .map(|i| Bytes::from(format!("item{i}")))
        .collect();
    kv.exec(&Command::RPush {
        key: "list".into(),
        values: items,
    });
    let pairs: Vec<(Bytes, Bytes)> = (0..3_000)
        .map(|i| (Bytes::from(format!("f{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    kv.exec(&Command::HSet {
        key: "hash".into(),
        pairs,
    });
    kv.setup(&["pexpire list 100000000"]);
    for i in 0..100 {
        kv.call(&format!("set k{i} v{i}"));
    }
    let (copy, chunks) = transfer(&kv.store, 4096);
    assert!(chunks > 50, "{chunks} chunks");
    assert_eq!(copy.digest(), kv.store.digest());
    assert_eq!(copy.used_memory(), kv.store.used_memory());
    assert_eq!(copy.len(), kv.store.len());
    let (whole, one) = transfer(&kv.store, usize::MAX);
    assert_eq!(one, 1);
    assert_eq!(whole.digest(), kv.store.digest());
}
