use super::*;

#[test]
fn lpush_rpush_build_the_list_in_order() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("rpush l b c"), int(2));
    assert_eq!(kv.call("lpush l a z"), int(4));
    assert_eq!(kv.call("lrange l 0 -1"), bulks(&["z", "a", "b", "c"]));
    assert_eq!(kv.call("llen l"), int(4));
    assert_eq!(kv.call("llen missing"), int(0));
}

#[test]
fn lpop_rpop_single_and_counted() {
    let mut kv = Kv::new();
    kv.setup(&["rpush l a b c d e"]);
    assert_eq!(kv.call("lpop l"), bulk("a"));
    assert_eq!(kv.call("rpop l"), bulk("e"));
    assert_eq!(kv.call("lpop l 2"), bulks(&["b", "c"]));
    assert_eq!(kv.call("rpop l 0"), bulks(&[]));
    assert_eq!(kv.call("rpop l 10"), bulks(&["d"]));
    assert_eq!(kv.call("exists l"), int(0), "an emptied list is deleted");
}

#[test]
fn pop_on_missing_key_is_nil() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("lpop l"), Reply::Nil);
    assert_eq!(kv.call("rpop l 3"), Reply::Nil);
    assert_eq!(kv.call("lpop l 0"), Reply::Nil);
}

#[test]
fn lrange_handles_negative_and_out_of_range_indexes() {
    let mut kv = Kv::new();
    kv.setup(&["rpush l a b c d"]);
    assert_eq!(kv.call("lrange l 1 2"), bulks(&["b", "c"]));
    assert_eq!(kv.call("lrange l -2 -1"), bulks(&["c", "d"]));
    assert_eq!(kv.call("lrange l -100 100"), bulks(&["a", "b", "c", "d"]));
    assert_eq!(kv.call("lrange l 3 1"), bulks(&[]));
    assert_eq!(kv.call("lrange l 4 10"), bulks(&[]));
    assert_eq!(kv.call("lrange l 0 -5"), bulks(&[]));
    assert_eq!(kv.call("lrange missing 0 -1"), bulks(&[]));
    assert_eq!(
        kv.call("lrange l -9223372036854775808 9223372036854775807"),
        bulks(&["a", "b", "c", "d"])
    );
}

#[test]
fn list_commands_on_wrong_type_are_wrongtype() {
    let mut kv = Kv::new();
    kv.setup(&["set s v"]);
    for line in [
        "lpush s a",
        "rpush s a",
        "lpop s",
        "rpop s 2",
        "lrange s 0 1",
        "llen s",
    ] {
        assert_eq!(kv.call(line), err(WRONGTYPE), "{line}");
    }
    assert_eq!(kv.call("get s"), bulk("v"));
}

#[test]
fn push_keeps_ttl_and_push_onto_expired_list_starts_fresh() {
    let mut kv = Kv::new();
    kv.setup(&["rpush l a", "expire l 10", "rpush l b"]);
    assert_eq!(kv.call("ttl l"), int(10));
    kv.now_ms += 10_000;
    assert_eq!(kv.call("rpush l c"), int(1));
    assert_eq!(kv.call("lrange l 0 -1"), bulks(&["c"]));
    assert_eq!(kv.call("ttl l"), int(-1));
}
