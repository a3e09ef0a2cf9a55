use std::collections::BTreeSet;

use bytes::Bytes;

use super::*;

fn scan_page(kv: &mut Kv, line: &str) -> (u64, Vec<Bytes>) {
    let Reply::Array(parts) = kv.call(line) else {
        panic!("scan replies with an array")
    };
    let [Reply::Bulk(cursor), Reply::Array(keys)] = parts.as_slice() else {
        panic!("bad scan reply {parts:?}")
    };
    let cursor = std::str::from_utf8(cursor).unwrap().parse().unwrap();
    let keys = keys
        .iter()
        .map(|k| {
            if let Reply::Bulk(k) = k {
                k.clone()
            } else {
                panic!()
            }
        })
        .collect();
    (cursor, keys)
}

/// Runs a whole SCAN, calling `between` after every page.
fn full_scan(kv: &mut Kv, options: &str, mut between: impl FnMut(&mut Kv, usize)) -> Vec<Bytes> {
    let (mut cursor, mut all, mut pages) = (0, Vec::new(), 0);
    loop {
        let (next, keys) = scan_page(kv, &format!("scan {cursor} {options}"));
        all.extend(keys);
        pages += 1;
        between(kv, pages);
        if next == 0 {
            return all;
        }
        assert!(pages < 10_000, "scan terminates");
        cursor = next;
    }
}

#[test]
fn del_counts_removed_keys_once() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2", "rpush l x"]);
    assert_eq!(kv.call("del a a l missing"), int(2));
    assert_eq!(kv.call("exists a l b"), int(1));
}

#[test]
fn exists_counts_repeats_like_redis() {
    let mut kv = Kv::new();
    kv.setup(&["set a 1"]);
    assert_eq!(kv.call("exists a a a missing"), int(3));
}

#[test]
fn type_names_each_kind() {
    let mut kv = Kv::new();
    kv.setup(&["set s v", "rpush l a", "hset h f v"]);
    for (key, name) in [
        ("s", "string"),
        ("l", "list"),
        ("h", "hash"),
        ("missing", "none"),
    ] {
        assert_eq!(kv.call(&format!("type {key}")), Reply::Simple(name.into()));
    }
}

#[test]
fn dbsize_counts_live_keys_only() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2 c 3", "pexpire a 10"]);
    assert_eq!(kv.call("dbsize"), int(3));
    kv.now_ms += 10;
    assert_eq!(kv.call("dbsize"), int(2));
    assert_eq!(
        kv.store.len(),
        3,
        "the expired key waits in memory for the purge"
    );
}

#[test]
fn keys_matches_glob_in_keyspace_order() {
    let mut kv = Kv::new();
    kv.setup(&["mset user:1 a user:2 b order:1 c", "rpush user:list x"]);
    let Reply::Array(all) = kv.call("keys *") else {
        panic!()
    };
    assert_eq!(all.len(), 4);
    let Reply::Array(users) = kv.call("keys user:?") else {
        panic!()
    };
    assert_eq!(users.len(), 2);
    assert!(users.contains(&bulk("user:1")) && users.contains(&bulk("user:2")));
    assert_eq!(kv.call("keys nothing*"), bulks(&[]));
    let order: Vec<_> = kv
        .store
        .data
        .keys()
        .map(|(_, key)| Reply::Bulk(key.clone()))
        .collect();
    assert_eq!(all, order, "KEYS returns keys in (hash, key) order");
}

#[test]
fn keys_skips_expired_keys() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2", "pexpire a 1"]);
    kv.now_ms += 1;
    assert_eq!(kv.call("keys *"), bulks(&["b"]));
}

#[test]
fn scan_visits_every_key_exactly_once_when_nothing_changes() {
    let mut kv = Kv::new();
    for i in 0..500 {
        kv.setup(&[&format!("set key:{i} v")]);
    }
    let keys = full_scan(&mut kv, "count 7", |_, _| {});
    let distinct: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!((keys.len(), distinct.len()), (500, 500));
}

#[test]
fn scan_returns_every_key_present_throughout() {
    let mut kv = Kv::new();
    for i in 0..300 {
        kv.setup(&[&format!("set stable:{i} v"), &format!("set doomed:{i} v")]);
    }
    let keys = full_scan(&mut kv, "count 5", |kv, page| {
        // Churn between pages: delete old keys and add new ones.
        kv.setup(&[
            &format!("del doomed:{page}"),
            &format!("set added:{page} v"),
        ]);
    });
    let seen: BTreeSet<_> = keys.into_iter().collect();
    for i in 0..300 {
        assert!(
            seen.contains(&Bytes::from(format!("stable:{i}"))),
            "stable:{i} missed"
        );
    }
}

#[test]
fn scan_count_bounds_each_page() {
    let mut kv = Kv::new();
    for i in 0..100 {
        kv.setup(&[&format!("set k{i} v")]);
    }
    let (cursor, keys) = scan_page(&mut kv, "scan 0");
    assert!(
        cursor != 0 && keys.len() <= 11,
        "default COUNT is about 10: {}",
        keys.len()
    );
    let (_, keys) = scan_page(&mut kv, "scan 0 count 1000");
    assert_eq!(keys.len(), 100);
}

#[test]
fn scan_filters_by_match_and_type() {
    let mut kv = Kv::new();
    kv.setup(&["mset s1 a s2 b", "rpush l1 x", "hset h1 f v"]);
    let strings: BTreeSet<_> = full_scan(&mut kv, "type string", |_, _| {})
        .into_iter()
        .collect();
    assert_eq!(
        strings,
        BTreeSet::from([Bytes::from("s1"), Bytes::from("s2")])
    );
    assert_eq!(
        full_scan(&mut kv, "match l* count 100", |_, _| {}),
        vec![Bytes::from("l1")]
    );
    assert_eq!(
        full_scan(&mut kv, "type HASH", |_, _| {}),
        vec![Bytes::from("h1")]
    );
    assert!(full_scan(&mut kv, "type zset", |_, _| {}).is_empty());
}

#[test]
fn scan_on_empty_store_or_huge_cursor_finishes() {
    let mut kv = Kv::new();
    assert_eq!(scan_page(&mut kv, "scan 0"), (0, vec![]));
    kv.setup(&["set a 1"]);
    assert_eq!(scan_page(&mut kv, "scan 18446744073709551615"), (0, vec![]));
}

#[test]
fn randomkey_is_deterministic_given_context_random() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("randomkey"), Reply::Nil);
    for i in 0..50 {
        kv.setup(&[&format!("set k{i} v")]);
    }
    let mut seen = Vec::new();
    for step in 0..32 {
        kv.random = step * (u64::MAX / 32);
        let first = kv.call("randomkey");
        assert_eq!(kv.call("randomkey"), first, "same random, same key");
        if !seen.contains(&first) {
            seen.push(first);
        }
    }
    assert!(
        seen.len() > 1,
        "different random values pick different keys"
    );
    kv.random = 0;
    let expected = kv
        .store
        .data
        .keys()
        .next()
        .map(|(_, key)| Reply::Bulk(key.clone()))
        .unwrap();
    assert_eq!(
        kv.call("randomkey"),
        expected,
        "random 0 takes the first key"
    );
}

#[test]
fn randomkey_wraps_around_and_skips_expired() {
    let mut kv = Kv::new();
    kv.setup(&["set a 1", "set b 2", "pexpire b 1"]);
    kv.now_ms += 1;
    for random in [0, 1 << 30, 1 << 61, u64::MAX] {
        kv.random = random;
        assert_eq!(kv.call("randomkey"), bulk("a"));
    }
}

#[test]
fn flushdb_and_flushall_empty_the_store() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2", "expire a 10"]);
    assert_eq!(kv.call("flushdb"), Reply::ok());
    assert!(kv.store.is_empty());
    kv.setup(&["set c 1"]);
    assert_eq!(kv.call("flushall async"), Reply::ok());
    assert_eq!(kv.call("dbsize"), int(0));
    assert_eq!(kv.store.expired_keys(u64::MAX, 10), Vec::<Bytes>::new());
}
