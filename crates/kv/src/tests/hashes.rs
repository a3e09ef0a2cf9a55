use super::*;

#[test]
fn hset_counts_new_fields_only() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("hset h a 1 b 2"), int(2));
    assert_eq!(kv.call("hset h a 9 c 3 c 4"), int(1));
    assert_eq!(kv.call("hget h a"), bulk("9"));
    assert_eq!(kv.call("hget h c"), bulk("4"));
    assert_eq!(kv.call("hget h missing"), Reply::Nil);
    assert_eq!(kv.call("hget nokey a"), Reply::Nil);
    assert_eq!(kv.call("hlen h"), int(3));
    assert_eq!(kv.call("hlen nokey"), int(0));
}

#[test]
fn hgetall_is_a_map_in_field_order() {
    let mut kv = Kv::new();
    kv.setup(&["hset h b 2 a 1"]);
    assert_eq!(
        kv.call("hgetall h"),
        Reply::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))])
    );
    assert_eq!(kv.call("hgetall nokey"), Reply::Map(Vec::new()));
}

#[test]
fn hdel_removes_fields_and_deletes_empty_hash() {
    let mut kv = Kv::new();
    kv.setup(&["hset h a 1 b 2"]);
    assert_eq!(kv.call("hdel h a a zz"), int(1));
    assert_eq!(kv.call("hdel nokey a"), int(0));
    assert_eq!(kv.call("hdel h b"), int(1));
    assert_eq!(kv.call("exists h"), int(0));
}

#[test]
fn hincrby_happy_path_and_errors() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("hincrby h n 5"), int(5));
    assert_eq!(kv.call("hincrby h n -7"), int(-2));
    kv.setup(&["hset h s abc", "hset h big 9223372036854775807"]);
    assert_eq!(
        kv.call("hincrby h s 1"),
        err("ERR hash value is not an integer")
    );
    assert_eq!(
        kv.call("hincrby h big 1"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(kv.call("hget h big"), bulk("9223372036854775807"));
}

#[test]
fn hash_commands_on_wrong_type_are_wrongtype() {
    let mut kv = Kv::new();
    kv.setup(&["rpush l a"]);
    for line in [
        "hset l f v",
        "hget l f",
        "hdel l f",
        "hgetall l",
        "hlen l",
        "hincrby l f 1",
    ] {
        assert_eq!(kv.call(line), err(WRONGTYPE), "{line}");
    }
    assert_eq!(kv.call("llen l"), int(1));
}
