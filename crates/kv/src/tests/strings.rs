use bytes::Bytes;

use super::*;
use crate::error::check_string_len;
use crate::limits::DEFAULT_MAX_VALUE_BYTES;

const MAX_STRING_BYTES: usize = DEFAULT_MAX_VALUE_BYTES as usize;

#[test]
fn get_and_set_happy_path() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("get k"), Reply::Nil);
    assert_eq!(kv.call("set k v"), Reply::ok());
    assert_eq!(kv.call("get k"), bulk("v"));
    assert_eq!(kv.call("set k w"), Reply::ok());
    assert_eq!(kv.call("get k"), bulk("w"));
}

#[test]
fn get_on_wrong_type_is_wrongtype() {
    let mut kv = Kv::new();
    kv.setup(&["lpush l a", "hset h f v"]);
    for line in [
        "get l",
        "getset l x",
        "getdel h",
        "append l x",
        "strlen h",
        "incr l",
        "set l v get",
    ] {
        assert_eq!(kv.call(line), err(WRONGTYPE), "{line}");
    }
    assert_eq!(
        kv.call("set l v"),
        Reply::ok(),
        "plain SET overwrites any type"
    );
    assert_eq!(kv.call("type l"), Reply::Simple("string".into()));
}

#[test]
fn set_nx_does_not_overwrite() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("set k 1 nx"), Reply::ok());
    assert_eq!(kv.call("set k 2 nx"), Reply::Nil);
    assert_eq!(kv.call("get k"), bulk("1"));
}

#[test]
fn set_xx_only_overwrites() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("set k 1 xx"), Reply::Nil);
    assert_eq!(kv.call("exists k"), int(0));
    kv.setup(&["set k 1"]);
    assert_eq!(kv.call("set k 2 xx"), Reply::ok());
    assert_eq!(kv.call("get k"), bulk("2"));
}

#[test]
fn set_get_returns_old_value_even_when_condition_fails() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("set k 1 get"), Reply::Nil);
    assert_eq!(kv.call("set k 2 get"), bulk("1"));
    assert_eq!(kv.call("set k 3 nx get"), bulk("2"));
    assert_eq!(kv.call("get k"), bulk("2"));
    assert_eq!(kv.call("set other 3 xx get"), Reply::Nil);
    assert_eq!(kv.call("exists other"), int(0));
}

#[test]
fn set_ex_px_exat_pxat_set_absolute_expiry_from_context_time() {
    let mut kv = Kv::new();
    let now = kv.now_ms;
    kv.setup(&["set a v ex 10", "set b v px 1500"]);
    kv.setup(&[
        &format!("set c v exat {}", now / 1000 + 20),
        &format!("set d v pxat {}", now + 30),
    ]);
    assert_eq!(kv.call("pttl a"), int(10_000));
    assert_eq!(kv.call("pttl b"), int(1500));
    assert_eq!(kv.call("pttl c"), int(20_000));
    assert_eq!(kv.call("pttl d"), int(30));
}

#[test]
fn set_clears_ttl_unless_keepttl() {
    let mut kv = Kv::new();
    kv.setup(&["set k v ex 100", "set k w keepttl"]);
    assert_eq!(kv.call("ttl k"), int(100));
    kv.setup(&["set k x"]);
    assert_eq!(kv.call("ttl k"), int(-1));
}

#[test]
fn set_with_past_absolute_time_removes_the_key() {
    let mut kv = Kv::new();
    kv.setup(&["set k old"]);
    assert_eq!(kv.call("set k v pxat 5"), Reply::ok());
    assert_eq!(kv.call("get k"), Reply::Nil);
    assert!(kv.store.is_empty(), "nothing left in memory to purge");
}

#[test]
fn set_expiry_overflowing_with_context_time_is_invalid() {
    let mut kv = Kv::new();
    assert_eq!(
        kv.call("set k v px 9223372036854775807"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(kv.call("exists k"), int(0));
}

#[test]
fn setnx_getset_getdel() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("setnx k 1"), int(1));
    assert_eq!(kv.call("setnx k 2"), int(0));
    kv.setup(&["expire k 100"]);
    assert_eq!(kv.call("getset k 3"), bulk("1"));
    assert_eq!(kv.call("ttl k"), int(-1), "GETSET clears the TTL");
    assert_eq!(kv.call("getset new 1"), Reply::Nil);
    assert_eq!(kv.call("getdel k"), bulk("3"));
    assert_eq!(kv.call("getdel k"), Reply::Nil);
    assert_eq!(kv.call("exists k"), int(0));
}

#[test]
fn mget_gives_nil_for_missing_and_other_types() {
    let mut kv = Kv::new();
    kv.setup(&["mset a 1 b 2", "lpush l x"]);
    assert_eq!(
        kv.call("mget a l missing b"),
        Reply::Array(vec![bulk("1"), Reply::Nil, Reply::Nil, bulk("2")])
    );
}

#[test]
fn mset_overwrites_and_clears_ttl() {
    let mut kv = Kv::new();
    kv.setup(&["set a old ex 100", "lpush b x"]);
    assert_eq!(kv.call("mset a 1 b 2 a 3"), Reply::ok());
    assert_eq!(kv.call("mget a b"), bulks(&["3", "2"]));
    assert_eq!(kv.call("ttl a"), int(-1));
}

#[test]
fn append_creates_extends_and_keeps_ttl() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("append k abc"), int(3));
    kv.setup(&["expire k 50"]);
    assert_eq!(kv.call("append k de"), int(5));
    assert_eq!(kv.call("get k"), bulk("abcde"));
    assert_eq!(kv.call("ttl k"), int(50));
    assert_eq!(kv.call("strlen k"), int(5));
    assert_eq!(kv.call("strlen missing"), int(0));
}

#[test]
fn append_beyond_512_mib_is_refused() {
    // vec![0; n] is allocated zeroed and never touched: no real 512 MiB is used.
    let mut kv = Kv::new();
    let big = Bytes::from(vec![0u8; MAX_STRING_BYTES]);
    kv.exec(&Command::Set {
        key: "k".into(),
        value: big,
        condition: None,
        get: false,
        expiry: None,
    });
    assert_eq!(
        kv.call("append k x"),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(kv.call("strlen k"), Reply::count(MAX_STRING_BYTES));
}

#[test]
fn set_beyond_512_mib_is_refused() {
    let mut kv = Kv::new();
    let huge = Bytes::from(vec![0u8; MAX_STRING_BYTES + 1]);
    let reply = kv.exec(&Command::Set {
        key: "k".into(),
        value: huge,
        condition: None,
        get: false,
        expiry: None,
    });
    assert_eq!(
        reply,
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert!(check_string_len(MAX_STRING_BYTES, DEFAULT_MAX_VALUE_BYTES).is_ok());
}

#[test]
fn incr_family_happy_path() {
    let mut kv = Kv::new();
    assert_eq!(kv.call("incr n"), int(1));
    assert_eq!(kv.call("incrby n 10"), int(11));
    assert_eq!(kv.call("decr n"), int(10));
    assert_eq!(kv.call("decrby n 15"), int(-5));
    assert_eq!(kv.call("get n"), bulk("-5"));
    kv.setup(&["expire n 100"]);
    assert_eq!(kv.call("incr n"), int(-4));
    assert_eq!(kv.call("ttl n"), int(100), "INCR keeps the TTL");
}

#[test]
fn incr_rejects_non_integer_values() {
    let mut kv = Kv::new();
    kv.setup(&[
        "set a abc",
        "set b 1.5",
        "set c 01",
        "set d 99999999999999999999",
    ]);
    for key in ["a", "b", "c", "d"] {
        assert_eq!(kv.call(&format!("incr {key}")), err(NOT_INTEGER), "{key}");
    }
}

#[test]
fn incr_overflow_is_an_error_and_changes_nothing() {
    let mut kv = Kv::new();
    kv.setup(&["set n 9223372036854775807", "set m -9223372036854775808"]);
    let overflow = err("ERR increment or decrement would overflow");
    assert_eq!(kv.call("incr n"), overflow);
    assert_eq!(kv.call("decr m"), overflow);
    assert_eq!(kv.call("incrby m -1"), overflow);
    assert_eq!(kv.call("get n"), bulk("9223372036854775807"));
}
