use bytes::Bytes;

use super::*;

#[test]
fn p5_expiry_uses_context_time_only() {
    let mut kv = Kv::new();
    kv.setup(&["set k v px 100"]);
    kv.now_ms += 99;
    assert_eq!(kv.call("get k"), bulk("v"));
    kv.now_ms += 1;
    assert_eq!(
        kv.call("get k"),
        Reply::Nil,
        "expired exactly at now_ms == expires_at_ms"
    );
    kv.now_ms -= 1;
    assert_eq!(
        kv.call("get k"),
        bulk("v"),
        "only the context's time decides, not a clock"
    );
}

#[test]
fn p5_expired_key_is_invisible_but_stays_until_purged() {
    let mut kv = Kv::new();
    kv.setup(&["set k v px 10", "rpush l a", "pexpire l 10"]);
    kv.now_ms += 10;
    for (line, reply) in [
        ("exists k l", int(0)),
        ("ttl k", int(-2)),
        ("type l", Reply::Simple("none".into())),
    ] {
        assert_eq!(kv.call(line), reply, "{line}");
    }
    assert_eq!(
        kv.call("del k"),
        int(0),
        "DEL treats the expired key as absent"
    );
    assert_eq!(kv.store.len(), 2);
    assert_eq!(
        kv.call("set l s nx"),
        Reply::ok(),
        "writes treat it as absent too"
    );
    assert_eq!(kv.call("get l"), bulk("s"));
}

#[test]
fn p5_expired_keys_lists_due_keys_in_expiry_order() {
    let mut kv = Kv::new();
    kv.setup(&[
        "mset a 1 b 2 c 3 d 4",
        "pexpire c 5",
        "pexpire a 5",
        "pexpire b 3",
        "pexpire d 50",
    ]);
    let now = kv.now_ms;
    assert_eq!(kv.store.expired_keys(now + 2, 10), Vec::<Bytes>::new());
    assert_eq!(kv.store.expired_keys(now + 5, 10), args("b a c"));
    assert_eq!(kv.store.expired_keys(now + 5, 2), args("b a"));
}

#[test]
fn p5_purge_expired_deletes_only_keys_still_expired() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2 c 3", "pexpire a 5", "pexpire b 5"]);
    kv.now_ms += 5;
    let due = kv.store.expired_keys(kv.now_ms, 10);
    kv.setup(&["set b fresh"]); // Rewritten after the primary listed it.
    let purged = kv
        .store
        .purge_expired(&[due, args("c missing")].concat(), kv.now_ms);
    assert_eq!(purged, 1);
    assert_eq!(kv.store.len(), 2);
    assert_eq!(kv.call("get b"), bulk("fresh"));
    assert_eq!(kv.store.expired_keys(u64::MAX, 10), Vec::<Bytes>::new());
}

#[test]
fn expire_and_ttl_happy_path() {
    let mut kv = Kv::new();
    kv.setup(&["set k v"]);
    assert_eq!(kv.call("ttl k"), int(-1));
    assert_eq!(kv.call("ttl missing"), int(-2));
    assert_eq!(kv.call("pttl missing"), int(-2));
    assert_eq!(kv.call("expire k 10"), int(1));
    assert_eq!(kv.call("ttl k"), int(10));
    kv.now_ms += 1_400;
    assert_eq!(kv.call("ttl k"), int(9), "8.6 s rounds to 9");
    assert_eq!(kv.call("pttl k"), int(8_600));
    assert_eq!(kv.call("pexpire k 2500"), int(1));
    assert_eq!(kv.call("pttl k"), int(2_500));
    assert_eq!(kv.call("expire missing 10"), int(0));
}

#[test]
fn expire_in_the_past_deletes_the_key() {
    let mut kv = Kv::new();
    kv.setup(&["set a v", "set b v"]);
    assert_eq!(kv.call("expire a 0"), int(1));
    assert_eq!(kv.call("pexpire b -100"), int(1));
    assert_eq!(kv.call("exists a b"), int(0));
    assert!(kv.store.is_empty());
}

#[test]
fn expire_overflowing_with_context_time_is_invalid() {
    let mut kv = Kv::new();
    kv.setup(&["set k v"]);
    assert_eq!(
        kv.call("pexpire k 9223372036854775807"),
        err("ERR invalid expire time in 'pexpire' command")
    );
    assert_eq!(kv.call("ttl k"), int(-1));
}

#[test]
fn expire_nx_xx_gt_lt_conditions() {
    let mut kv = Kv::new();
    kv.setup(&["set k v"]);
    assert_eq!(
        kv.call("expire k 100 xx"),
        int(0),
        "XX needs an existing TTL"
    );
    assert_eq!(
        kv.call("expire k 100 gt"),
        int(0),
        "no TTL counts as infinite for GT"
    );
    assert_eq!(
        kv.call("expire k 100 lt"),
        int(1),
        "no TTL counts as infinite for LT"
    );
    assert_eq!(kv.call("expire k 50 nx"), int(0), "NX needs no TTL");
    assert_eq!(kv.call("expire k 50 gt"), int(0));
    assert_eq!(kv.call("expire k 200 gt"), int(1));
    assert_eq!(kv.call("expire k 300 lt"), int(0));
    assert_eq!(kv.call("expire k 150 xx lt"), int(1));
    assert_eq!(kv.call("ttl k"), int(150));
    assert_eq!(kv.call("expire k 160 xx gt"), int(1));
    assert_eq!(kv.call("persist k"), int(1));
    assert_eq!(kv.call("expire k 10 nx"), int(1));
    assert_eq!(kv.call("ttl k"), int(10));
}

#[test]
fn persist_removes_expiry_only_when_present() {
    let mut kv = Kv::new();
    kv.setup(&["set k v ex 10", "set p v"]);
    assert_eq!(kv.call("persist k"), int(1));
    assert_eq!(kv.call("ttl k"), int(-1));
    assert_eq!(kv.call("persist k"), int(0));
    assert_eq!(kv.call("persist p"), int(0));
    assert_eq!(kv.call("persist missing"), int(0));
    kv.now_ms += 20_000;
    assert_eq!(kv.call("get k"), bulk("v"));
    assert_eq!(
        kv.store.expired_keys(u64::MAX, 10),
        Vec::<Bytes>::new(),
        "the index forgot it"
    );
}

#[test]
fn expiry_index_follows_overwrites() {
    let mut kv = Kv::new();
    kv.setup(&[
        "set k v ex 10",
        "set k w ex 20",
        "set j v ex 5",
        "set j plain",
    ]);
    let now = kv.now_ms;
    assert_eq!(kv.store.expired_keys(now + 10_000, 10), Vec::<Bytes>::new());
    assert_eq!(kv.store.expired_keys(now + 20_000, 10), args("k"));
}
