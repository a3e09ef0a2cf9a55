use bytes::Bytes;

use super::*;
use crate::{ExpireCondition, FlushMode, SetCondition, SetExpiry};

#[test]
fn parse_is_case_insensitive_in_names_and_options() {
    assert_eq!(
        cmd("gEt k"),
        Command::Get {
            key: Bytes::from("k")
        }
    );
    let expected = Command::Set {
        key: Bytes::from("k"),
        value: Bytes::from("v"),
        condition: Some(SetCondition::Nx),
        get: true,
        expiry: Some(SetExpiry::Px(5)),
    };
    assert_eq!(cmd("SeT k v nx gEt pX 5"), expected);
}

#[test]
fn parse_unknown_command_uses_redis_7_text() {
    assert_eq!(
        parse_error("foo a b"),
        err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        parse_error("FOO"),
        err("ERR unknown command 'FOO', with args beginning with: ")
    );
    assert_eq!(
        Command::parse(&[]),
        Err(err("ERR unknown command '', with args beginning with: "))
    );
}

#[test]
fn parse_unknown_command_truncates_long_arguments() {
    let long = "x".repeat(300);
    let Reply::Error(text) = parse_error(&format!("nope {long} more")) else {
        panic!("error expected")
    };
    assert_eq!(
        text,
        format!(
            "ERR unknown command 'nope', with args beginning with: '{}' ",
            "x".repeat(128)
        )
    );
}

#[test]
fn parse_wrong_arity_names_the_command_in_lowercase() {
    assert_eq!(
        parse_error("GET"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        parse_error("get a b"),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        parse_error("set k"),
        err("ERR wrong number of arguments for 'set' command")
    );
    assert_eq!(
        parse_error("mset a 1 b"),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        parse_error("hset h f"),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        parse_error("hset h f v g"),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        parse_error("lpop l 1 2"),
        err("ERR wrong number of arguments for 'lpop' command")
    );
    assert_eq!(
        parse_error("dbsize x"),
        err("ERR wrong number of arguments for 'dbsize' command")
    );
    assert_eq!(
        parse_error("lrange l 0"),
        err("ERR wrong number of arguments for 'lrange' command")
    );
}

#[test]
fn parse_set_rejects_conflicting_options() {
    for line in [
        "set k v nx xx",
        "set k v ex 1 px 1",
        "set k v ex 1 keepttl",
        "set k v keepttl exat 5",
        "set k v ex",
        "set k v bogus",
    ] {
        assert_eq!(parse_error(line), err(SYNTAX), "{line}");
    }
    assert_eq!(
        cmd("set k v ex 1 ex 2"),
        cmd("set k v ex 2"),
        "a repeated option keeps the last value"
    );
    assert_eq!(cmd("set k v nx nx"), cmd("set k v nx"));
}

#[test]
fn parse_set_rejects_non_positive_or_non_integer_expiry() {
    let invalid = err("ERR invalid expire time in 'set' command");
    assert_eq!(parse_error("set k v ex 0"), invalid);
    assert_eq!(parse_error("set k v px -5"), invalid);
    assert_eq!(parse_error("set k v exat 0"), invalid);
    assert_eq!(
        parse_error("set k v ex 9223372036854776"),
        invalid,
        "seconds overflow as ms"
    );
    assert_eq!(parse_error("set k v ex ten"), err(NOT_INTEGER));
    assert_eq!(
        parse_error("set k v ex 9223372036854775808"),
        err(NOT_INTEGER)
    );
}

#[test]
fn parse_integers_like_redis_string2ll() {
    use crate::parse::parse_i64;
    assert_eq!(parse_i64(b"0"), Some(0));
    assert_eq!(parse_i64(b"-12"), Some(-12));
    assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"+1",
        b" 1",
        b"1 ",
        b"01",
        b"-0",
        b"1.5",
        b"9223372036854775808",
        b"1e3",
    ] {
        assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn parse_numeric_arguments_report_not_an_integer() {
    for line in [
        "incrby k x",
        "decrby k 1.5",
        "lrange l a 1",
        "lrange l 0 b",
        "hincrby h f x",
        "expire k x",
    ] {
        assert_eq!(parse_error(line), err(NOT_INTEGER), "{line}");
    }
    assert_eq!(
        parse_error("decrby k -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    // Redis 7 answers a word as count of LPOP/RPOP like a negative count.
    for line in ["lpop l -1", "lpop l x", "rpop l 1.5"] {
        assert_eq!(
            parse_error(line),
            err("ERR value is out of range, must be positive"),
            "{line}"
        );
    }
}

#[test]
fn parse_expire_options_follow_redis_7() {
    assert_eq!(
        parse_error("expire k 10 nx xx"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        parse_error("expire k 10 gt lt"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(
        parse_error("pexpire k 10 bogus"),
        err("ERR Unsupported option bogus")
    );
    assert_eq!(
        parse_error("expire k 9223372036854776"),
        err("ERR invalid expire time in 'expire' command")
    );
    let Command::Expire { condition, .. } = cmd("expire k 10 xx gt") else {
        panic!()
    };
    assert_eq!(condition, Some(ExpireCondition::XxGt));
    let Command::PExpire {
        condition, millis, ..
    } = cmd("pexpire k -5 LT")
    else {
        panic!()
    };
    assert_eq!((condition, millis), (Some(ExpireCondition::Lt), -5));
}

#[test]
fn parse_scan_options_and_errors() {
    let expected = Command::Scan {
        cursor: 7,
        pattern: Some(Bytes::from("a*")),
        count: Some(3),
        type_name: Some(Bytes::from("string")),
    };
    assert_eq!(cmd("scan 7 match a* count 3 type STRING"), expected);
    assert_eq!(parse_error("scan x"), err("ERR invalid cursor"));
    assert_eq!(parse_error("scan -1"), err("ERR invalid cursor"));
    assert_eq!(parse_error("scan 0 count 0"), err(SYNTAX));
    assert_eq!(parse_error("scan 0 count x"), err(NOT_INTEGER));
    assert_eq!(parse_error("scan 0 match"), err(SYNTAX));
    assert_eq!(parse_error("scan 0 limit 5"), err(SYNTAX));
}

#[test]
fn parse_flush_modes() {
    assert_eq!(cmd("flushall"), Command::FlushAll { mode: None });
    assert_eq!(
        cmd("flushdb async"),
        Command::FlushDb {
            mode: Some(FlushMode::Async)
        }
    );
    assert_eq!(
        cmd("FLUSHALL SYNC"),
        Command::FlushAll {
            mode: Some(FlushMode::Sync)
        }
    );
    assert_eq!(parse_error("flushdb now"), err(SYNTAX));
    assert_eq!(parse_error("flushdb async sync"), err(SYNTAX));
}

#[test]
fn command_metadata_names_writes_and_keys() {
    assert_eq!(cmd("SET k v").name(), "set");
    assert_eq!(cmd("hincrby h f 1").name(), "hincrby");
    for read in [
        "get k",
        "mget a b",
        "ttl k",
        "pttl k",
        "keys *",
        "scan 0",
        "randomkey",
        "lrange l 0 1",
        "hgetall h",
        "dbsize",
    ] {
        assert!(!cmd(read).is_write(), "{read}");
    }
    for write in [
        "set k v",
        "del k",
        "expire k 1",
        "lpop l",
        "hset h f v",
        "flushall",
        "persist k",
        "incr k",
    ] {
        assert!(cmd(write).is_write(), "{write}");
    }
    let keys = |line: &str| cmd(line).keys().into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(keys("mset a 1 b 2"), args("a b"));
    assert_eq!(keys("del a a b"), args("a a b"));
    assert_eq!(keys("hset h f v"), args("h"));
    assert_eq!(keys("set k v ex 5"), args("k"));
    for keyless in [
        "dbsize",
        "keys *",
        "scan 0",
        "randomkey",
        "flushdb",
        "flushall",
    ] {
        assert!(keys(keyless).is_empty(), "{keyless}");
    }
}

#[test]
fn parse_is_binary_safe() {
    let raw = vec![
        Bytes::from_static(b"set"),
        Bytes::from_static(b"\x00\xff"),
        Bytes::from_static(b"\r\n"),
    ];
    let command = Command::parse(&raw).expect("parses");
    assert_eq!(command.to_args()[1..], raw[1..]);
}
